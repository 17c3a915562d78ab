//! Seeded fault injection: what an emulator does instead of answering normally.
//!
//! A `Faults` names, in percent of requests, how often to answer 429 (with a
//! `Retry-After` when set), 503, or to answer only after a delay. The draws come from a
//! seeded generator, so a run with the same seed and the same requests in the same order
//! injects the same faults. The default injects nothing.

use std::time::Duration;

/// How often an emulator misbehaves, in percent of requests (each checked in turn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Seeds the draws.
    pub seed: u64,
    /// Answer 429 Too Many Requests.
    pub throttle_percent: u8,
    /// The `Retry-After` (seconds) sent with a 429; none when `None`.
    pub retry_after_secs: Option<u32>,
    /// Answer 503 Service Unavailable.
    pub error_percent: u8,
    /// Answer normally, but only after `slow`.
    pub slow_percent: u8,
    pub slow: Duration,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Throttle { retry_after_secs: Option<u32> },
    Error,
    Slow(Duration),
}

/// The draws of one emulator.
#[derive(Debug)]
pub struct FaultDraws {
    faults: Faults,
    state: u64,
}

impl FaultDraws {
    pub fn new(faults: Faults) -> FaultDraws {
        FaultDraws { faults, state: faults.seed }
    }

    /// SplitMix64: small, seeded, and good enough to spread faults.
    fn next_percent(&mut self) -> u8 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % 100) as u8
    }

    /// The fault for the next request.
    pub fn draw(&mut self) -> Fault {
        let f = self.faults;
        if f.throttle_percent > 0 && self.next_percent() < f.throttle_percent {
            return Fault::Throttle { retry_after_secs: f.retry_after_secs };
        }
        if f.error_percent > 0 && self.next_percent() < f.error_percent {
            return Fault::Error;
        }
        if f.slow_percent > 0 && self.next_percent() < f.slow_percent {
            return Fault::Slow(f.slow);
        }
        Fault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_by_default() {
        let mut d = FaultDraws::new(Faults::default());
        assert!((0..1000).all(|_| d.draw() == Fault::None));
    }

    #[test]
    fn the_same_seed_injects_the_same_faults_at_about_the_asked_rate() {
        let faults = Faults { seed: 7, throttle_percent: 10, error_percent: 10, ..Faults::default() };
        let (mut a, mut b) = (FaultDraws::new(faults), FaultDraws::new(faults));
        let draws: Vec<Fault> = (0..2000).map(|_| a.draw()).collect();
        assert_eq!(draws, (0..2000).map(|_| b.draw()).collect::<Vec<_>>());
        let throttled = draws.iter().filter(|f| matches!(f, Fault::Throttle { .. })).count();
        assert!((100..300).contains(&throttled), "{throttled} of 2000 throttled, asked 10 %");
    }
}
