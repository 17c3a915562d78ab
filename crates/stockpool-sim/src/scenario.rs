//! Scenarios: the TOML files a seller edits to describe their shop to the simulator.
//!
//! A scenario names the channels (how fast each reports orders, how fast and how often it
//! can be pushed, how many shoppers it brings), the SKUs (popularity, stock, restock
//! policy, bills of materials for made-to-order products), the daily cycle and flash
//! sales, and the parameters of the rules compared. `Scenario::parse` checks it once, at
//! the edge, and every later step trusts it. See docs/simulation.md for every field.

use anyhow::{bail, Context};
use serde::Deserialize;
use stockpool_core::Channel;

/// Milliseconds in a second, an hour and a day.
pub const SECOND_MS: i64 = 1000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// Longest simulation: ten years. A bound on the event loop and on memory.
pub const DAYS_MAX: u32 = 3660;
/// Most SKUs in one scenario.
pub const SKUS_MAX: usize = 100_000;
/// Most channels in one scenario.
pub const CHANNELS_MAX: usize = 16;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Simulated days.
    pub days: u32,
    pub channels: Vec<ChannelSpec>,
    #[serde(default)]
    pub skus: Vec<SkuSpec>,
    /// Many similar SKUs at once (the 1,000-SKU scenarios).
    #[serde(default)]
    pub generate: Option<Generate>,
    /// Shoppers per hour of the day, in percent of the mean (24 values, mean about 100).
    #[serde(default = "flat_cycle")]
    pub daily_cycle_percent: Vec<u32>,
    #[serde(default)]
    pub flash_sales: Vec<FlashSale>,
    #[serde(default)]
    pub orders: OrderShape,
    #[serde(default)]
    pub rules: RuleParams,
    /// The SKU drawn in the charts; the most popular listed SKU when absent.
    #[serde(default)]
    pub chart_sku: Option<String>,
}

fn flat_cycle() -> Vec<u32> {
    vec![100; 24]
}

/// One sales channel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub code: String,
    /// `shopify`, `woocommerce`, `etsy`, `amazon`, `ebay`, `webhook` or `manual`.
    pub channel: String,
    /// Shoppers per day over all SKUs, before the daily cycle.
    pub shoppers_per_day: f64,
    /// Delay from a shopper's order until stockpool hears of it: uniform in `[min, max]`.
    pub order_latency_seconds: [i64; 2],
    /// For a polled channel: orders are seen at the next poll, every this many seconds.
    #[serde(default)]
    pub order_poll_seconds: i64,
    /// The push rate limit: at most one push (of up to `push_batch_max` listings) per
    /// this many seconds.
    #[serde(default = "one")]
    pub push_every_seconds: i64,
    #[serde(default = "one")]
    pub push_batch_max: usize,
    /// Delay from a push until the channel shows it.
    #[serde(default)]
    pub push_latency_seconds: i64,
    /// For a channel that applies inventory in batches (Amazon feeds): pushes show only at
    /// the next multiple of this many seconds.
    #[serde(default)]
    pub feed_every_seconds: i64,
    /// This channel's share of stock under the static split, in percent.
    #[serde(default)]
    pub split_percent: u32,
}

fn one<T: From<u8>>() -> T {
    T::from(1)
}

impl ChannelSpec {
    pub fn core_channel(&self) -> anyhow::Result<Channel> {
        Ok(match self.channel.as_str() {
            "shopify" => Channel::Shopify,
            "woocommerce" => Channel::Woocommerce,
            "etsy" => Channel::Etsy,
            "amazon" => Channel::Amazon,
            "ebay" => Channel::Ebay,
            "webhook" => Channel::Webhook,
            "manual" => Channel::Manual,
            other => bail!("channel {}: unknown channel kind {other:?}", self.code),
        })
    }

    /// Worst case from a change until this channel shows it, in seconds.
    pub fn sync_seconds(&self) -> i64 {
        self.push_every_seconds + self.push_latency_seconds + self.feed_every_seconds
    }

    /// Worst case from an order until stockpool hears of it, in seconds.
    pub fn order_seconds(&self) -> i64 {
        self.order_latency_seconds[1] + self.order_poll_seconds
    }
}

/// One SKU.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuSpec {
    pub sku: String,
    /// `product` (default) or `material`. Materials are not listed.
    #[serde(default = "product")]
    pub kind: String,
    /// Relative weight of shoppers choosing it.
    #[serde(default = "one_f")]
    pub popularity: f64,
    /// On hand at the start.
    #[serde(default)]
    pub stock: i64,
    /// Restock `reorder_quantity` when available plus on order falls to this (off below 0).
    #[serde(default = "minus_one")]
    pub reorder_point: i64,
    #[serde(default)]
    pub reorder_quantity: i64,
    #[serde(default)]
    pub lead_time_days: f64,
    /// Made to order from these: `stock_plus_capacity` is on.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
}

fn product() -> String {
    "product".into()
}
fn one_f() -> f64 {
    1.0
}
fn minus_one() -> i64 {
    -1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    pub sku: String,
    pub quantity: i64,
}

/// `count` generated products `PREFIX-0001`..., popularity falling as 1/rank (Zipf), each
/// stocked for `cover_days` of its own demand and reordered at `lead_time_days` of demand.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub count: usize,
    #[serde(default = "sku_prefix")]
    pub prefix: String,
    pub cover_days: f64,
    pub lead_time_days: f64,
}

fn sku_prefix() -> String {
    "SKU".into()
}

/// Extra shoppers on one channel for a while, for SKUs with a prefix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashSale {
    pub channel: String,
    /// Hours since the start.
    pub start_hour: f64,
    pub hours: f64,
    pub shoppers_per_hour: f64,
    #[serde(default)]
    pub sku_prefix: String,
}

/// What a shopper's order looks like.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderShape {
    /// Chance (percent) that a shopper buys a second SKU, and again a third.
    pub multi_line_percent: u32,
    /// Weights of buying 1, 2, 3, ... units of a line.
    pub quantity_weights: Vec<u32>,
}

impl Default for OrderShape {
    fn default() -> Self {
        OrderShape { multi_line_percent: 10, quantity_weights: vec![85, 12, 3] }
    }
}

/// Parameters of the rules the simulator compares.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleParams {
    /// `threshold`: publish 0 everywhere below this.
    pub stock_threshold: i64,
    /// `priority_store`: the store that keeps selling below `safety_stock`; the first
    /// channel when absent.
    pub priority_store: Option<String>,
    pub safety_stock: i64,
    /// `sync_50`'s rate.
    pub sync_rate_percent: u8,
    /// `buffer_auto`: the window over which the simulated shell measures each store's
    /// recent sales velocity, in hours.
    pub velocity_window_hours: i64,
}

impl Default for RuleParams {
    fn default() -> Self {
        RuleParams {
            stock_threshold: 3,
            priority_store: None,
            safety_stock: 5,
            sync_rate_percent: 50,
            velocity_window_hours: 24,
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text).context("the scenario is not valid TOML for stockpool simulate")?;
        s.validate()?;
        Ok(s)
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("in scenario {}", path.display()))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.days == 0 || self.days > DAYS_MAX {
            bail!("days must be between 1 and {DAYS_MAX}, got {}", self.days);
        }
        if self.channels.is_empty() || self.channels.len() > CHANNELS_MAX {
            bail!("a scenario needs between 1 and {CHANNELS_MAX} channels");
        }
        for (i, c) in self.channels.iter().enumerate() {
            c.core_channel()?;
            if self.channels[..i].iter().any(|o| o.code == c.code) {
                bail!("channel {} is named twice", c.code);
            }
            let [lo, hi] = c.order_latency_seconds;
            if lo < 0 || hi < lo {
                bail!("channel {}: order_latency_seconds must be [min, max] with 0 <= min <= max", c.code);
            }
            if c.push_every_seconds < 0
                || c.push_latency_seconds < 0
                || c.feed_every_seconds < 0
                || c.order_poll_seconds < 0
            {
                bail!("channel {}: intervals and latencies must be 0 or more", c.code);
            }
            if c.push_batch_max == 0 {
                bail!("channel {}: push_batch_max must be at least 1", c.code);
            }
            if !(c.shoppers_per_day >= 0.0 && c.shoppers_per_day.is_finite()) {
                bail!("channel {}: shoppers_per_day must be 0 or more", c.code);
            }
        }
        let split: u32 = self.channels.iter().map(|c| c.split_percent).sum();
        if split != 0 && split != 100 {
            bail!("split_percent over the channels must add up to 100 (or be left out), got {split}");
        }
        if self.daily_cycle_percent.len() != 24 {
            bail!("daily_cycle_percent needs 24 values, one per hour, got {}", self.daily_cycle_percent.len());
        }
        if self.skus.is_empty() && self.generate.is_none() {
            bail!("a scenario needs [[skus]] or [generate]");
        }
        if self.skus.len() + self.generate.as_ref().map_or(0, |g| g.count) > SKUS_MAX {
            bail!("a scenario has at most {SKUS_MAX} SKUs");
        }
        for (i, s) in self.skus.iter().enumerate() {
            if self.skus[..i].iter().any(|o| o.sku == s.sku) {
                bail!("SKU {} is named twice", s.sku);
            }
            if !matches!(s.kind.as_str(), "product" | "material") {
                bail!("SKU {}: kind must be product or material", s.sku);
            }
            if s.stock < 0
                || s.reorder_quantity < 0
                || !(s.lead_time_days >= 0.0 && s.lead_time_days.is_finite())
                || !(s.popularity >= 0.0 && s.popularity.is_finite())
            {
                bail!("SKU {}: stock, reorder_quantity, lead_time_days and popularity must be 0 or more", s.sku);
            }
            for c in &s.components {
                if !self.skus[..i].iter().any(|o| o.sku == c.sku) || c.quantity <= 0 {
                    bail!(
                        "SKU {}: component {} must be a SKU listed above it, with a quantity of 1 or more",
                        s.sku,
                        c.sku
                    );
                }
            }
        }
        for f in &self.flash_sales {
            if !self.channels.iter().any(|c| c.code == f.channel) {
                bail!("flash sale on unknown channel {}", f.channel);
            }
            let ok = |x: f64| x >= 0.0 && x.is_finite();
            if !(ok(f.start_hour) && ok(f.hours) && ok(f.shoppers_per_hour)) {
                bail!("flash sale on {}: start_hour, hours and shoppers_per_hour must be 0 or more", f.channel);
            }
        }
        if let Some(g) = &self.generate {
            if g.count == 0 || !(g.cover_days > 0.0 && g.cover_days.is_finite()) {
                bail!("[generate] needs count of 1 or more and cover_days above 0");
            }
            if !(g.lead_time_days >= 0.0 && g.lead_time_days.is_finite()) {
                bail!("[generate] lead_time_days must be 0 or more");
            }
            crate::catalog::check_prefix(&g.prefix)?;
        }
        if let Some(p) = &self.rules.priority_store {
            if !self.channels.iter().any(|c| &c.code == p) {
                bail!("rules.priority_store {p} is not a channel of the scenario");
            }
        }
        // The priority store rule has no threshold, so SPEC's "safety_stock greater than
        // stock_threshold" means 1 or more here.
        if self.rules.safety_stock < 1 {
            bail!("rules.safety_stock must be 1 or more, got {}", self.rules.safety_stock);
        }
        if self.rules.stock_threshold < 0 {
            bail!("rules.stock_threshold must be 0 or more, got {}", self.rules.stock_threshold);
        }
        if !(1..=24 * 28).contains(&self.rules.velocity_window_hours) {
            bail!("rules.velocity_window_hours must be between 1 and 672, got {}", self.rules.velocity_window_hours);
        }
        if !(1..=100).contains(&self.rules.sync_rate_percent) {
            bail!("rules.sync_rate_percent must be between 1 and 100");
        }
        if self.orders.quantity_weights.is_empty() || self.orders.quantity_weights.iter().all(|w| *w == 0) {
            bail!("orders.quantity_weights needs at least one weight above 0");
        }
        if self.orders.multi_line_percent > 100 {
            bail!("orders.multi_line_percent must be between 0 and 100");
        }
        Ok(())
    }
}
