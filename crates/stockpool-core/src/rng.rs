//! `SplitMix64`: the one small seeded generator the workspace uses where it needs
//! repeatable pseudo-randomness (the push policy's jitter, the benchmarks' catalogs and
//! orders). Seeded by the caller, so the core still reads nothing from the OS; never for
//! anything secret.

/// SplitMix64 (Steele, Lea and Flood's constants): fast, 64 bits of state, good enough
/// for jitter and test data.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` for `n > 0` (0 for `n == 0`); the modulo bias is below 2^-40 for
    /// the sizes it is used at.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// Uniform in `0..=max` (0 for `max <= 0`).
    pub fn up_to(&mut self, max: i64) -> i64 {
        if max <= 0 {
            return 0;
        }
        self.below(max as u64 + 1) as i64
    }
}
