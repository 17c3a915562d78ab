//! The scenario's SKUs resolved into one list: explicit `[[skus]]` first, then the
//! generated ones, with indices in place of names, restock policies in milliseconds, and
//! the popularity tables shoppers draw from.

use crate::rng::Rng;
use crate::scenario::{Scenario, DAY_MS};
use anyhow::bail;
use std::collections::HashMap;

/// One SKU as the simulator uses it.
#[derive(Clone, Debug)]
pub struct SkuDef {
    pub sku: String,
    pub material: bool,
    pub popularity: f64,
    pub stock: i64,
    /// Restock when available plus on order is at or below this; off below 0.
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub lead_time_ms: i64,
    /// (SKU index, quantity per unit).
    pub components: Vec<(usize, i64)>,
}

impl SkuDef {
    pub fn listed(&self) -> bool {
        !self.material
    }
}

/// Every SKU, plus cumulative popularity weights over the listed ones.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub skus: Vec<SkuDef>,
    /// Listed SKU indices.
    pub listed: Vec<usize>,
    /// SKU to index, for replayed order histories.
    by_sku: HashMap<String, usize>,
}

/// A popularity table over a subset of listed SKUs (flash sales pick from a prefix).
#[derive(Clone, Debug)]
pub struct Picker {
    skus: Vec<usize>,
    cumulative: Vec<u64>,
}

impl Picker {
    pub fn new(catalog: &Catalog, filter: impl Fn(&SkuDef) -> bool) -> Picker {
        let mut skus = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for &i in &catalog.listed {
            let s = &catalog.skus[i];
            if filter(s) {
                total += (s.popularity * 1e6).round().max(0.0) as u64;
                skus.push(i);
                cumulative.push(total);
            }
        }
        Picker { skus, cumulative }
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.last().copied().unwrap_or(0) == 0
    }

    /// A SKU by popularity.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().expect("a non-empty picker");
        let r = rng.below(total);
        let at = self.cumulative.partition_point(|c| *c <= r);
        self.skus[at]
    }
}

/// A generated SKU prefix must leave room for the number within the core's code length.
pub fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.trim().is_empty() || prefix.len() > 64 {
        bail!("[generate] prefix must be 1 to 64 characters, got {prefix:?}");
    }
    Ok(())
}

impl Catalog {
    pub fn new(s: &Scenario) -> anyhow::Result<Catalog> {
        let mut skus: Vec<SkuDef> = Vec::new();
        for x in &s.skus {
            let components = x
                .components
                .iter()
                .map(|c| (skus.iter().position(|o| o.sku == c.sku).expect("validated"), c.quantity))
                .collect();
            skus.push(SkuDef {
                sku: x.sku.clone(),
                material: x.kind == "material",
                popularity: if x.kind == "material" { 0.0 } else { x.popularity },
                stock: x.stock,
                reorder_point: x.reorder_point,
                reorder_quantity: x.reorder_quantity,
                lead_time_ms: (x.lead_time_days * DAY_MS as f64).round() as i64,
                components,
            });
        }
        if let Some(g) = &s.generate {
            // Demand per day of rank r: total shoppers x (1/r) / H(n) x mean units per line.
            let harmonic: f64 = (1..=g.count).map(|r| 1.0 / r as f64).sum();
            let shoppers: f64 = s.channels.iter().map(|c| c.shoppers_per_day).sum();
            let weights = &s.orders.quantity_weights;
            let mean_units = weights.iter().enumerate().map(|(i, w)| (i + 1) as f64 * f64::from(*w)).sum::<f64>()
                / weights.iter().map(|w| f64::from(*w)).sum::<f64>();
            let lines_per_shopper = 1.0 + f64::from(s.orders.multi_line_percent) / 100.0;
            for r in 1..=g.count {
                let popularity = 1.0 / r as f64;
                let per_day = shoppers * popularity / harmonic * mean_units * lines_per_shopper;
                let sku = format!("{}-{:05}", g.prefix, r);
                if skus.iter().any(|o| o.sku == sku) {
                    bail!("generated SKU {sku} is also listed in [[skus]]");
                }
                let reorder_point = (per_day * g.lead_time_days).ceil() as i64;
                let reorder_quantity = ((per_day * g.cover_days).ceil() as i64).max(1);
                skus.push(SkuDef {
                    sku,
                    material: false,
                    popularity,
                    stock: reorder_quantity,
                    reorder_point,
                    reorder_quantity,
                    lead_time_ms: (g.lead_time_days * DAY_MS as f64).round() as i64,
                    components: Vec::new(),
                });
            }
        }
        let listed: Vec<usize> = (0..skus.len()).filter(|i| skus[*i].listed()).collect();
        if listed.is_empty() {
            bail!("a scenario needs at least one product to sell");
        }
        let by_sku = skus.iter().enumerate().map(|(i, s)| (s.sku.clone(), i)).collect();
        let c = Catalog { skus, listed, by_sku };
        if Picker::new(&c, |_| true).is_empty() {
            bail!("every product has popularity 0: no shopper would come");
        }
        Ok(c)
    }

    pub fn index(&self, sku: &str) -> Option<usize> {
        self.by_sku.get(sku).copied()
    }

    /// The listed SKU shoppers choose most.
    pub fn most_popular(&self) -> usize {
        let mut best = self.listed[0];
        for &i in &self.listed {
            if self.skus[i].popularity > self.skus[best].popularity {
                best = i;
            }
        }
        best
    }
}
