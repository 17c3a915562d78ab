//! `stockpool demo`: seeds a demo workspace a seller recognises — a small pottery selling
//! on Etsy, Shopify and a market stall — once, and returns a login for it; then
//! `shoppers` plays the emulated channels: a shopper orders every few seconds on one of the
//! stores, and the potter restocks what runs low, so the numbers on the dashboard move.

use serde_json::json;
use stockpool_store::exec::Command;
use stockpool_store::Storage;

pub const WORKSPACE: &str = "demo";
pub const EMAIL: &str = "demo@stockpool.local";
pub const PASSWORD: &str = "stockpool-demo";

pub struct Login {
    pub email: String,
    pub password: String,
    pub token: String,
}

fn cmd<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// Seeds the demo workspace unless it already has items; returns a login either way.
pub async fn seed(store: &Storage) -> anyhow::Result<Login> {
    let ws = store.ensure_workspace(WORKSPACE).await?;
    let seeded = store.read(ws, |w| w.state.items().next().is_some()).await?;
    if !seeded {
        let mut c = vec![
            Command::CreateWarehouse(cmd(json!({"code": "studio", "name": "Studio"}))?),
            Command::CreateWarehouse(cmd(json!({"code": "shed", "name": "Garden shed"}))?),
        ];
        for (sku, name, kind, unit) in [
            ("CLAY", "Stoneware clay", "material", "g"),
            ("GLAZE-RED", "Red glaze", "material", "g"),
            ("GLAZE-BLUE", "Blue glaze", "material", "g"),
            ("MUG-RED", "Red mug", "product", "pcs"),
            ("MUG-BLUE", "Blue mug", "product", "pcs"),
            ("PLATE", "Side plate", "product", "pcs"),
            ("SET-BREAKFAST", "Breakfast set (mug + plate)", "bundle", "pcs"),
        ] {
            c.push(Command::CreateItem(cmd(json!({"sku": sku, "name": name, "kind": kind, "unit": unit}))?));
        }
        c.push(Command::PutComponents(
            "MUG-RED".into(),
            cmd(json!({"components": [{"sku": "CLAY", "quantity": 400}, {"sku": "GLAZE-RED", "quantity": 20}]}))?,
        ));
        c.push(Command::PutComponents(
            "MUG-BLUE".into(),
            cmd(json!({"components": [{"sku": "CLAY", "quantity": 400}, {"sku": "GLAZE-BLUE", "quantity": 20}]}))?,
        ));
        c.push(Command::PutComponents(
            "SET-BREAKFAST".into(),
            cmd(json!({"components": [{"sku": "MUG-BLUE", "quantity": 1}, {"sku": "PLATE", "quantity": 1}]}))?,
        ));
        c.push(Command::PatchItem(
            "MUG-RED".into(),
            cmd(json!({"stock_plus_capacity": true, "make_action": "production_card"}))?,
        ));
        c.push(Command::PatchItem("PLATE".into(), cmd(json!({"zero_policy": "request"}))?));
        for (sku, wh, q) in [
            ("CLAY", "studio", 10_000),
            ("GLAZE-RED", "studio", 500),
            ("GLAZE-BLUE", "studio", 300),
            ("MUG-RED", "studio", 4),
            ("MUG-BLUE", "studio", 12),
            ("MUG-BLUE", "shed", 6),
            ("PLATE", "shed", 9),
        ] {
            c.push(Command::Adjust(cmd(json!({"sku": sku, "warehouse": wh, "delta": q, "reason": "received"}))?));
        }
        c.push(Command::CreateStore(cmd(
            json!({"code": "etsy", "name": "Etsy shop", "channel": "etsy", "schedule": "realtime"}),
        )?));
        c.push(Command::CreateStore(cmd(
            json!({"code": "shop", "name": "Own Shopify shop", "channel": "shopify", "schedule": "realtime"}),
        )?));
        c.push(Command::CreateStore(cmd(
            json!({"code": "stall", "name": "Market stall", "channel": "manual", "schedule": {"every_minutes": 60}}),
        )?));
        let mut listings = Vec::new();
        for store in ["etsy", "shop", "stall"] {
            for (i, sku) in ["MUG-RED", "MUG-BLUE", "PLATE", "SET-BREAKFAST"].iter().enumerate() {
                listings.push(json!({"store": store, "external_id": format!("{store}-{}", 1000 + i), "sku": sku}));
            }
        }
        c.push(Command::CreateListings(cmd(json!(listings))?));
        c.push(Command::CreateRule(cmd(json!({
            "name": "Keep the last mugs for the own shop", "priority": 10, "items": {"prefix": "MUG-"},
            "warehouses": ["studio", "shed"], "stores": ["etsy", "shop", "stall"], "sync_rate_percent": 100,
            "stock_threshold": 2, "priority_store": "shop", "safety_stock": 5,
        }))?));
        c.push(Command::CreateRule(cmd(json!({
            "name": "Etsy gets half of the plates", "priority": 20, "items": {"skus": ["PLATE"]},
            "warehouses": ["shed"], "stores": ["etsy"], "sync_rate_percent": 50,
        }))?));
        c.push(Command::CreateOrder(cmd(
            json!({"store": "etsy", "external_id": "E-2001", "lines": [{"store_sku": "MUG-BLUE", "quantity": 2}]}),
        )?));
        c.push(Command::CreateOrder(cmd(json!({"store": "shop", "external_id": "S-3001", "lines": [{"store_sku": "MUG-RED", "quantity": 6}, {"store_sku": "SET-BREAKFAST", "quantity": 1}]}))?));
        store.execute(ws, Command::Batch(c)).await?;
    }
    store.create_user(WORKSPACE, EMAIL, PASSWORD).await?;
    let token = store.create_token(WORKSPACE).await?;
    Ok(Login { email: EMAIL.into(), password: PASSWORD.into(), token })
}

/// Seconds between two emulated shoppers.
pub const SHOPPER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(4);
/// Below this many available units a stocked product is restocked by `RESTOCK_UNITS`.
pub const RESTOCK_BELOW: i64 = 3;
pub const RESTOCK_UNITS: i64 = 6;

/// The emulated channels of the demo: forever, a shopper on Etsy, the Shopify shop or the
/// stall orders one listing every `SHOPPER_INTERVAL`, and what runs low is restocked
/// (every tenth tick). Orders go through the same intake as a channel's would. Runs until
/// the process stops; a refused order is logged, never fatal.
pub async fn shoppers(store: Storage) {
    let Ok(ws) = store.ensure_workspace(WORKSPACE).await else { return };
    let mut seed: u64 = 0x5EED_0FD3_3000_0001;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tick = tokio::time::interval(SHOPPER_INTERVAL);
    tick.tick().await;
    for n in 0u64.. {
        tick.tick().await;
        let store_code = ["etsy", "shop", "stall"][(next() % 3) as usize];
        let sku = ["MUG-RED", "MUG-BLUE", "PLATE", "SET-BREAKFAST"][(next() % 4) as usize];
        let order = json!({"store": store_code, "external_id": format!("DEMO-{}-{n}", std::process::id()),
                           "lines": [{"store_sku": sku, "quantity": 1 + next() % 2}]});
        let placed = match cmd(order) {
            Ok(input) => store.execute(ws, Command::CreateOrder(input)).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = placed {
            tracing::warn!(error = %e, "demo shopper's order was refused");
        }
        if n % 10 == 9 {
            for (sku, wh) in [("MUG-BLUE", "studio"), ("PLATE", "shed")] {
                let low = store
                    .read(ws, |w| {
                        w.state
                            .item_by_sku(sku)
                            .map(|i| w.state.stock_levels(i.id).iter().map(|(_, l)| l.available()).sum::<i64>())
                            .unwrap_or(0)
                            < RESTOCK_BELOW
                    })
                    .await
                    .unwrap_or(false);
                if low {
                    let adj = json!({"sku": sku, "warehouse": wh, "delta": RESTOCK_UNITS, "reason": "received"});
                    if let Ok(input) = cmd(adj) {
                        let _ = store.execute(ws, Command::Adjust(input)).await;
                    }
                }
            }
        }
    }
}
