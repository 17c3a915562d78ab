//! `stockpool demo`: seeds a demo workspace a seller recognises — a small pottery selling
//! on its own website, on a makers' market site and at a market stall — once, and returns
//! a login for it; then `Shoppers` plays the channels. The website and the market are
//! emulated webhook shops (`stockpool_emulators::WebhookShop`) on loopback: stockpool
//! pushes every listing's figure to them, signed, and their shoppers buy only what their
//! shop shows, placing signed orders at `POST /webhooks/webhook/{store}` like a real site
//! would. The stall is `manual`: its shopper buys only what the dashboard says the stall
//! shows. The potter restocks what runs low, so the numbers on the dashboard move and
//! nothing is sold that a channel did not show.

use serde_json::json;
use stockpool_emulators::{Faults, ShopConfig, WebhookShop};
use stockpool_store::exec::Command;
use stockpool_store::Storage;

pub const WORKSPACE: &str = "demo";
pub const EMAIL: &str = "demo@stockpool.local";
pub const PASSWORD: &str = "stockpool-demo";

/// The demo's emulated webhook shops: store code, name, and the secret both sides sign
/// with (a demo's, printed nowhere else).
pub const SHOPS: [(&str, &str, &str); 2] =
    [("site", "Own website", "demo-site-secret"), ("market", "Makers' market", "demo-market-secret")];

pub struct Login {
    pub email: String,
    pub password: String,
    pub token: String,
}

fn cmd<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// Starts the emulated webhook shops, one per `SHOPS` entry, on loopback.
pub async fn start_shops() -> anyhow::Result<Vec<WebhookShop>> {
    let mut shops = Vec::new();
    for (code, _, secret) in SHOPS {
        let config = ShopConfig { store: code.into(), secret: secret.into(), faults: Faults::default() };
        shops.push(WebhookShop::start(config).await?);
    }
    Ok(shops)
}

/// Seeds the demo workspace unless it already has items, points its webhook stores at
/// `shops` (their ports change every run), and returns a login either way.
pub async fn seed(store: &Storage, shops: &[WebhookShop]) -> anyhow::Result<Login> {
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
        for shop in shops {
            let name = SHOPS.iter().find(|s| s.0 == shop.store()).map_or("Webhook shop", |s| s.1);
            let secret = SHOPS.iter().find(|s| s.0 == shop.store()).map_or("", |s| s.2);
            c.push(Command::CreateStore(cmd(json!({"code": shop.store(), "name": name, "channel": "webhook",
                "url": shop.url(), "secret": secret, "schedule": "realtime"}))?));
        }
        c.push(Command::CreateStore(cmd(
            json!({"code": "stall", "name": "Market stall", "channel": "manual", "schedule": {"every_minutes": 60}}),
        )?));
        let mut listings = Vec::new();
        for store in ["site", "market", "stall"] {
            for (i, sku) in ["MUG-RED", "MUG-BLUE", "PLATE", "SET-BREAKFAST"].iter().enumerate() {
                listings.push(json!({"store": store, "external_id": format!("{store}-{}", 1000 + i), "sku": sku}));
            }
        }
        c.push(Command::CreateListings(cmd(json!(listings))?));
        c.push(Command::CreateRule(cmd(json!({
            "name": "Keep the last mugs for the own shop", "priority": 10, "items": {"prefix": "MUG-"},
            "warehouses": ["studio", "shed"], "stores": ["site", "market", "stall"], "sync_rate_percent": 100,
            "stock_threshold": 2, "priority_store": "site", "safety_stock": 5,
        }))?));
        c.push(Command::CreateRule(cmd(json!({
            "name": "The market gets half of the plates", "priority": 20, "items": {"skus": ["PLATE"]},
            "warehouses": ["shed"], "stores": ["market"], "sync_rate_percent": 50,
        }))?));
        c.push(Command::CreateOrder(cmd(
            json!({"store": "market", "external_id": "M-2001", "lines": [{"store_sku": "MUG-BLUE", "quantity": 2}]}),
        )?));
        c.push(Command::CreateOrder(cmd(json!({"store": "site", "external_id": "S-3001", "lines": [{"store_sku": "MUG-RED", "quantity": 6}, {"store_sku": "SET-BREAKFAST", "quantity": 1}]}))?));
        store.execute(ws, Command::Batch(c)).await?;
    } else {
        // A demo database from an earlier run: its shops listen on new ports now.
        let mut c = Vec::new();
        for shop in shops {
            let secret = SHOPS.iter().find(|s| s.0 == shop.store()).map_or("", |s| s.2);
            c.push(Command::PatchStore(shop.store().into(), cmd(json!({"url": shop.url(), "secret": secret}))?));
        }
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

/// The emulated channels of the demo: forever, a shopper on the website, the market or
/// the stall buys one or two of something that channel shows (or leaves when it shows
/// nothing), every `SHOPPER_INTERVAL`, and what runs low is restocked (every tenth tick).
/// Webhook shops' orders arrive over HTTP, signed, like a real site's; the stall's go in
/// through the order path as the dashboard's would. Runs until the process stops; a
/// refused order is logged, never fatal.
pub async fn shoppers(store: Storage, server: std::net::SocketAddr, shops: Vec<WebhookShop>) {
    let Ok(ws) = store.ensure_workspace(WORKSPACE).await else { return };
    let http = reqwest::Client::new();
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
        let external_id = format!("DEMO-{}-{n}", std::process::id());
        let pick = (next() % (shops.len() as u64 + 1)) as usize;
        if let Some(shop) = shops.get(pick) {
            let shown: Vec<(String, i64)> =
                shop.shown_all().into_iter().filter(|(_, s)| s.quantity > 0).map(|(k, s)| (k, s.quantity)).collect();
            if shown.is_empty() {
                continue;
            }
            let (sku, available) = &shown[(next() % shown.len() as u64) as usize];
            let quantity = 1 + (next() % (*available).min(2) as u64) as i64;
            let (body, signature) = shop.signed_order(&external_id, &[(sku, quantity)]);
            let sent = http
                .post(format!("http://{server}/webhooks/webhook/{}", shop.store()))
                .header("content-type", "application/json")
                .header("x-stockpool-signature", signature)
                .header("x-stockpool-delivery", &external_id)
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), store = shop.store(), "a demo shop's order was refused"),
                Err(e) => tracing::warn!(error = %e, store = shop.store(), "a demo shop could not send its order"),
            }
        } else {
            // The stall shows what the dashboard says it shows.
            let shown: Vec<(String, i64)> = store
                .read(ws, |w| {
                    w.state
                        .listings()
                        .filter(|l| w.store_code(l.store) == "stall")
                        .map(|l| (l.store_sku.clone(), w.published.get(&l.id).map_or(0, |p| p.quantity)))
                        .filter(|(_, q)| *q > 0)
                        .collect()
                })
                .await
                .unwrap_or_default();
            if shown.is_empty() {
                continue;
            }
            let (sku, available) = &shown[(next() % shown.len() as u64) as usize];
            let quantity = 1 + (next() % (*available).min(2) as u64) as i64;
            let order = json!({"store": "stall", "external_id": external_id,
                               "lines": [{"store_sku": sku, "quantity": quantity}]});
            let placed = match cmd(order) {
                Ok(input) => {
                    store.execute(ws, Command::CreateOrder(input)).await.map(|_| ()).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = placed {
                tracing::warn!(error = %e, "the stall's order was refused");
            }
        }
        if n % 10 == 9 {
            restock(&store, ws).await;
        }
    }
}

/// The potter restocks what runs low.
async fn restock(store: &Storage, ws: i64) {
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
