//! Criterion benchmarks of the core: a full recompute of 1,000,000 listings and 100,000
//! order decisions, on a catalog with bundles and 3-level bills of materials.
//!
//! Run: `cargo bench -p stockpool-core --bench core`. Figures go in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stockpool_core::build::Builder;
use stockpool_core::*;

/// A deterministic generator, so every run benches the same catalog.
use stockpool_core::rng::SplitMix64 as Rng;

/// The benchmark catalog: `items` items in 3 warehouses, listed on `stores` stores.
/// 20 % raw materials, 10 % sub-assemblies (2 materials each), 30 % stocked products,
/// 30 % made-to-order products (a sub-assembly and a material: 3 levels, with
/// `stock_plus_capacity`), 10 % bundles of two products. A few rules with rates,
/// thresholds and a priority store.
fn catalog(items: usize, stores: usize, listed: bool) -> (State, Vec<StoreId>, Vec<String>) {
    let mut rng = Rng(42);
    let mut b = Builder::new();
    let ws: Vec<WarehouseId> = (0..3).map(|i| b.warehouse(&format!("W{i}"))).collect();
    let channels = [Channel::Shopify, Channel::Etsy, Channel::Amazon, Channel::Ebay, Channel::Woocommerce];
    let ss: Vec<StoreId> = (0..stores).map(|i| b.store(&format!("S{i}"), channels[i % channels.len()])).collect();
    let n_mat = items / 5;
    let n_sub = items / 10;
    let n_stock = items * 3 / 10;
    let n_made = items * 3 / 10;
    let mut skus = Vec::with_capacity(items);
    for i in 0..items {
        let (sku, kind) = if i < n_mat {
            (format!("MAT-{i}"), ItemKind::Material)
        } else if i < n_mat + n_sub {
            (format!("SUB-{i}"), ItemKind::Material)
        } else if i < n_mat + n_sub + n_stock {
            (format!("PRD-{i}"), ItemKind::Product)
        } else if i < n_mat + n_sub + n_stock + n_made {
            (format!("MTO-{i}"), ItemKind::Product)
        } else {
            (format!("BDL-{i}"), ItemKind::Bundle)
        };
        b.item(&sku, kind);
        skus.push(sku);
    }
    for i in 0..items {
        let sku = skus[i].clone();
        if i < n_mat || (n_mat + n_sub..n_mat + n_sub + n_stock).contains(&i) {
            for w in &ws {
                b.stock(&sku, *w, rng.below(50) as i64 + 1);
            }
        } else if i < n_mat + n_sub {
            let (a, c) = (rng.below(n_mat as u64) as usize, rng.below(n_mat as u64) as usize);
            let list: Vec<(&str, i64)> = if a == c { vec![(&skus[a], 2)] } else { vec![(&skus[a], 2), (&skus[c], 1)] };
            b.components(&sku, &list);
        } else if i < n_mat + n_sub + n_stock {
        } else if i < n_mat + n_sub + n_stock + n_made {
            let sub = n_mat + rng.below(n_sub as u64) as usize;
            let mat = rng.below(n_mat as u64) as usize;
            b.components(&sku, &[(&skus[sub], 1), (&skus[mat], 3)]);
            b.edit(&sku, |it| it.stock_plus_capacity = true);
        } else {
            let base = n_mat + n_sub;
            let (p, q) = (base + rng.below(n_stock as u64) as usize, base + rng.below(n_stock as u64) as usize);
            let list: Vec<(&str, i64)> = if p == q { vec![(&skus[p], 2)] } else { vec![(&skus[p], 1), (&skus[q], 1)] };
            b.components(&sku, &list);
        }
    }
    if listed {
        for s in &ss {
            for sku in &skus {
                b.listing(*s, sku);
            }
        }
    }
    b.rule("products half on marketplaces", &ws[..2], &ss[2..4.min(ss.len())], |r| {
        r.priority = 1;
        r.sync_rate_percent = 50;
        r.items = ItemsSelector::Prefix("PRD-".into());
    });
    b.rule("made to order with threshold", &ws, &ss, |r| {
        r.priority = 2;
        r.stock_threshold = 3;
        r.priority_store = Some(ss[0]);
        r.safety_stock = Some(10);
        r.items = ItemsSelector::Prefix("MTO-".into());
    });
    (b.state, ss, skus)
}

fn recompute(c: &mut Criterion) {
    let (state, _, _) = catalog(100_000, 10, true);
    let n = state.listings().count() as u64;
    assert_eq!(n, 1_000_000);
    let mut g = c.benchmark_group("published_quantity");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("recompute_all_1m_listings", |bch| bch.iter(|| state.recompute_all().len()));
    g.finish();
}

fn orders(c: &mut Criterion) {
    let (state, stores, skus) = catalog(100_000, 10, true);
    let mut rng = Rng(7);
    // Orders for stocked products, made-to-order products and bundles, 1 to 3 lines.
    let sellable: Vec<&String> = skus.iter().filter(|s| !s.starts_with("MAT-") && !s.starts_with("SUB-")).collect();
    let news: Vec<NewOrder> = (0..100_000)
        .map(|i| {
            let store = stores[rng.below(stores.len() as u64) as usize];
            let lines = (0..1 + rng.below(3))
                .map(|_| {
                    let sku = sellable[rng.below(sellable.len() as u64) as usize];
                    NewLine {
                        store_sku: sku.clone(),
                        listing: state.listing_by_store_sku(store, sku).map(|l| l.id),
                        quantity: 1 + rng.below(3) as i64,
                    }
                })
                .collect();
            NewOrder {
                store,
                external_id: format!("B-{i}"),
                lines,
                payment: Payment::Immediate,
                pay_within_seconds: None,
                source: OrderSource::Channel,
            }
        })
        .collect();
    let mut g = c.benchmark_group("orders");
    g.sample_size(10);
    g.throughput(Throughput::Elements(news.len() as u64));
    g.bench_function("decide_and_apply_100k_orders", |bch| {
        bch.iter_batched(
            || {
                let mut s = state.clone();
                s.set_keep_ledger(false);
                s
            },
            |mut s| {
                for (i, new) in news.iter().enumerate() {
                    match s.take_order(new, Timestamp(i as i64)).expect("valid order") {
                        Intake::Created { change, .. } => s.apply(&change),
                        Intake::Duplicate { .. } => unreachable!(),
                    }
                }
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, recompute, orders);
criterion_main!(benches);
