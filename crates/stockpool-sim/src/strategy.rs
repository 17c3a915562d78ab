//! The rules a seller chooses between, each as the sync rules it gives stockpool-core.
//!
//! Every strategy runs the same catalog, stock and shoppers; only the rules (and for the
//! static split, the warehouses) differ. The oracle is not a rule a seller can choose: it
//! is the full pool with instant sync and instant orders, the most any rule could sell.

use clap::ValueEnum;
use std::fmt;

/// One way to decide what each channel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Strategy {
    /// Stock divided between channels by `split_percent`, each channel its own warehouse.
    StaticSplit,
    /// The whole pool shown everywhere.
    FullPool,
    /// `sync_rate_percent` (50 by default) of the pool everywhere.
    #[value(name = "sync_50")]
    Sync50,
    /// The whole pool, and 0 everywhere below `stock_threshold`.
    Threshold,
    /// The whole pool; below `safety_stock` only the priority store sells.
    PriorityStore,
    /// The whole pool, less what `buffer: auto` holds back per store.
    BufferAuto,
    /// Full pool with instant sync and instant orders: the yardstick for fill rate.
    Oracle,
}

impl Strategy {
    /// Every strategy, in the order the report lists them.
    pub const ALL: [Strategy; 7] = [
        Strategy::StaticSplit,
        Strategy::FullPool,
        Strategy::Sync50,
        Strategy::Threshold,
        Strategy::PriorityStore,
        Strategy::BufferAuto,
        Strategy::Oracle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::StaticSplit => "static_split",
            Strategy::FullPool => "full_pool",
            Strategy::Sync50 => "sync_50",
            Strategy::Threshold => "threshold",
            Strategy::PriorityStore => "priority_store",
            Strategy::BufferAuto => "buffer_auto",
            Strategy::Oracle => "oracle",
        }
    }

    /// Whether channels see stockpool's number at once and report orders at once.
    pub fn is_instant(self) -> bool {
        self == Strategy::Oracle
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
