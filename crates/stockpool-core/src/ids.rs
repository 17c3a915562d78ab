//! Identifiers and time as the core sees them.
//!
//! The core never allocates ids for catalog objects and never reads a clock: the shell
//! hands both in. Ids are plain `u64` newtypes, scoped to one workspace: a core `State`
//! holds exactly one workspace, so two workspaces can never see each other's rows.
//! `Timestamp` is milliseconds since the Unix epoch, passed into every decision that
//! depends on time (deadlines, order creation).

use serde::{Deserialize, Serialize};
use std::hash::{BuildHasherDefault, Hasher};

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    )*};
}

id_type! {
    /// One seller's account. Every other id lives inside exactly one workspace.
    WorkspaceId,
    /// A merchant SKU (product, material or bundle).
    ItemId,
    /// A place that holds stock.
    WarehouseId,
    /// A connection to one sales channel.
    StoreId,
    /// A store's product or variant mapped to one item.
    ListingId,
    /// A sync rule; its versions share the id.
    RuleId,
    /// An order from a store or from the order API.
    OrderId,
    /// A production card (work to make a made-to-order product).
    CardId,
}

/// A point in time: milliseconds since the Unix epoch. The core never reads a clock;
/// the shell passes `now` into every decision that needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `seconds` after this one (saturating: deadlines never wrap).
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1000)))
    }
}

/// A small, fast hasher for the core's integer-keyed maps. Ids are not attacker-chosen
/// inside the core (the shell assigns them), so the DoS resistance of SipHash buys
/// nothing here while costing a large share of a full recompute.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap` keyed by core ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// `HashSet` of core ids.
pub type IdSet<K> = std::collections::HashSet<K, BuildHasherDefault<IdHasher>>;
