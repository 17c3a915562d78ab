//! `stockpool demo`: seeds a demo workspace a seller recognises — a small pottery selling
//! on its own website, on a makers' market site, in a Shopify shop, in a WooCommerce shop
//! and at a market stall — once, and returns a login for it; then `shoppers` plays the
//! channels. The website and the market are emulated webhook shops
//! (`stockpool_emulators::WebhookShop`), the Shopify and WooCommerce shops the emulators of
//! those APIs (`ShopifyShop`, `WooSite`), all on loopback: stockpool pushes every listing's
//! figure to them through the channel's own API, and their shoppers buy only what their
//! shop shows, each order coming back as the channel's signed webhook. The stall is
//! `manual`: its shopper buys only what the dashboard says the stall shows. The potter
//! restocks what runs low, so the numbers on the dashboard move and nothing is sold that
//! a channel did not show.

use serde_json::json;
use stockpool_emulators::shopify::{ShopifyConfig, ShopifyShop};
use stockpool_emulators::woocommerce::{Stock, WooConfig, WooSite};
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

/// The products every demo channel lists, in listing order.
pub const PRODUCTS: [&str; 4] = ["MUG-RED", "MUG-BLUE", "PLATE", "SET-BREAKFAST"];

/// The emulated Shopify shop's variant ids of `PRODUCTS`, and the WooCommerce shop's
/// product ids.
pub const SHOPIFY_VARIANTS: [u64; 4] = [44_001, 44_002, 44_003, 44_004];
pub const WOO_PRODUCTS: [u64; 4] = [301, 302, 303, 304];

/// Every emulated channel of the demo.
pub struct Shops {
    pub webhook: Vec<WebhookShop>,
    pub shopify: ShopifyShop,
    pub woo: WooSite,
}

/// Starts the emulated shops on loopback: one webhook shop per `SHOPS` entry, a Shopify
/// shop and a WooCommerce shop holding the demo's products (at 0 until stockpool pushes).
pub async fn start_shops() -> anyhow::Result<Shops> {
    let mut webhook = Vec::new();
    for (code, _, secret) in SHOPS {
        let config = ShopConfig { store: code.into(), secret: secret.into(), faults: Faults::default() };
        webhook.push(WebhookShop::start(config).await?);
    }
    let shopify = ShopifyShop::start(ShopifyConfig {
        shop_domain: "pottery-demo.myshopify.com".into(),
        client_secret: "demo-shopify-secret".into(),
        ..ShopifyConfig::default()
    })
    .await?;
    let woo = WooSite::start(WooConfig::new("ck_demo", "cs_demo", "demo-woo-secret")).await?;
    for (i, sku) in PRODUCTS.iter().enumerate() {
        shopify.seed_variant(SHOPIFY_VARIANTS[i], sku, 0);
        woo.seed_product(WOO_PRODUCTS[i], sku, Stock::managed(0));
    }
    Ok(Shops { webhook, shopify, woo })
}

/// What the demo's Shopify and WooCommerce stores hold: where the emulators listen (new
/// ports every run), their credentials and webhook secrets.
fn marketplace_settings(shops: &Shops) -> [(&'static str, serde_json::Value); 2] {
    [
        (
            "shopify",
            json!({"base_url": shops.shopify.base_url(), "credentials": shops.shopify.credentials(),
                   "secret": shops.shopify.config().client_secret}),
        ),
        (
            "woo",
            json!({"base_url": shops.woo.base_url(),
                   "credentials": {"consumer_key": "ck_demo", "consumer_secret": "cs_demo"},
                   "secret": "demo-woo-secret"}),
        ),
    ]
}

/// Seeds the demo workspace unless it already has items, points its webhook stores at
/// `shops` (their ports change every run), and returns a login either way.
pub async fn seed(store: &Storage, all: &Shops) -> anyhow::Result<Login> {
    let shops = &all.webhook;
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
        for ((code, mut settings), (name, channel)) in
            marketplace_settings(all).into_iter().zip([("Shopify shop", "shopify"), ("WooCommerce shop", "woocommerce")])
        {
            settings["code"] = code.into();
            settings["name"] = name.into();
            settings["channel"] = channel.into();
            settings["schedule"] = "realtime".into();
            c.push(Command::CreateStore(cmd(settings)?));
        }
        let mut listings = Vec::new();
        for store in ["site", "market", "stall"] {
            for (i, sku) in PRODUCTS.iter().enumerate() {
                listings.push(json!({"store": store, "external_id": format!("{store}-{}", 1000 + i), "sku": sku}));
            }
        }
        for (i, sku) in PRODUCTS.iter().enumerate() {
            listings.push(json!({"store": "shopify", "external_id": SHOPIFY_VARIANTS[i].to_string(), "sku": sku}));
            listings.push(json!({"store": "woo", "external_id": WOO_PRODUCTS[i].to_string(), "sku": sku}));
        }
        c.push(Command::CreateListings(cmd(json!(listings))?));
        c.push(Command::CreateRule(cmd(json!({
            "name": "Keep the last mugs for the own shop", "priority": 10, "items": {"prefix": "MUG-"},
            "warehouses": ["studio", "shed"], "stores": ["site", "market", "stall", "shopify", "woo"],
            "sync_rate_percent": 100,
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
        for (code, settings) in marketplace_settings(all) {
            c.push(Command::PatchStore(code.into(), cmd(settings)?));
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
pub async fn shoppers(store: Storage, server: std::net::SocketAddr, all: Shops) {
    let shops = &all.webhook;
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
        // The webhook shops, then Shopify, WooCommerce and the stall.
        let pick = (next() % (shops.len() as u64 + 3)) as usize;
        if pick == shops.len() || pick == shops.len() + 1 {
            let shopify = pick == shops.len();
            let shown: Vec<(usize, i64)> = (0..PRODUCTS.len())
                .filter_map(|i| {
                    let q = if shopify {
                        all.shopify.available(SHOPIFY_VARIANTS[i])
                    } else {
                        all.woo.quantity(&WOO_PRODUCTS[i].to_string())
                    };
                    q.filter(|q| *q > 0).map(|q| (i, q))
                })
                .collect();
            if shown.is_empty() {
                continue;
            }
            let (i, available) = shown[(next() % shown.len() as u64) as usize];
            let quantity = 1 + (next() % available.min(2) as u64) as i64;
            let order_id = 7_000_000 + n;
            let sent = if shopify {
                let url = format!("http://{server}/webhooks/shopify/shopify");
                let body = stockpool_emulators::shopify::order_body(
                    order_id,
                    &[(Some(SHOPIFY_VARIANTS[i]), Some(PRODUCTS[i]), quantity)],
                );
                all.shopify.send_webhook(&url, "orders/create", &external_id, &body).await
            } else {
                let url = format!("http://{server}/webhooks/woocommerce/woo");
                let body = stockpool_emulators::woocommerce::order_body(
                    order_id,
                    "processing",
                    &[(WOO_PRODUCTS[i], 0, PRODUCTS[i], quantity)],
                );
                all.woo.send_webhook(&url, "order.created", &body).await
            };
            let store = if shopify { "shopify" } else { "woo" };
            match sent {
                Ok(status) if (200..300).contains(&status) => {}
                Ok(status) => tracing::warn!(status, store, "a demo shop's order was refused"),
                Err(e) => tracing::warn!(error = %e, store, "a demo shop could not send its order"),
            }
        } else if let Some(shop) = shops.get(pick) {
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
