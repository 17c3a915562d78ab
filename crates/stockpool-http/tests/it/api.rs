//! Every endpoint of SPEC section 6, on both backends, with the shapes written there.

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};

both!(spec_section_6_examples_work_as_written, |app: TestApp| async move {
    seed_mug(&app).await;
    expect(&app.post("/api/v1/items", json!({"sku":"CLAY","name":"Clay","kind":"material","unit":"g"})).await, 201);
    expect(
        &app.post("/api/v1/items", json!({"sku":"GLAZE-RED","name":"Red glaze","kind":"material","unit":"g"})).await,
        201,
    );
    let patched = app
        .send("PATCH", "/api/v1/items/MUG-RED", Some(json!({"zero_policy":"request","accept_within_seconds":172800})))
        .await;
    assert_eq!(expect(&patched, 200)["zero_policy"], "request");
    let comps = app
        .send(
            "PUT",
            "/api/v1/items/MUG-RED/components",
            Some(json!({"components":[{"sku":"CLAY","quantity":400},{"sku":"GLAZE-RED","quantity":20}]})),
        )
        .await;
    assert_eq!(expect(&comps, 200)["components"][0], json!({"sku":"CLAY","quantity":400}));
    let stock = app.get("/api/v1/items/MUG-RED/stock").await;
    assert_eq!(
        *expect(&stock, 200),
        json!({"sku":"MUG-RED","warehouses":[{"warehouse":"main","on_hand":12,"reserved":0,"available":12}],"available":12,"capacity":0})
    );
    let hook = app
        .post("/api/v1/stores", json!({"code":"hook","name":"My site","channel":"webhook","url":"http://127.0.0.1:9000/push","secret":"s3cret","schedule":{"every_minutes":10}}))
        .await;
    let hook = expect(&hook, 201);
    assert_eq!(hook["schedule"], json!({"every_minutes": 10}));
    assert!(hook.get("secret").is_none(), "secrets are never shown");
    let listings = app.get("/api/v1/listings?store=etsy&sku=MUG-RED").await;
    let data = &expect(&listings, 200)["data"];
    assert_eq!(data.as_array().unwrap().len(), 1);
    assert_eq!(data[0]["published_quantity"], 12);
    let id = data[0]["id"].as_str().unwrap().to_string();
    let rule = app
        .post(
            "/api/v1/rules",
            json!({"name":"Etsy half","priority":10,"items":{"skus":["MUG-RED"]},"warehouses":["main"],"stores":["etsy"],
                   "sync_rate_percent":50,"stock_threshold":0,"priority_store":null,"safety_stock":null}),
        )
        .await;
    assert_eq!(expect(&rule, 201)["version"], 1);
    assert_eq!(app.get(&format!("/api/v1/listings/{id}")).await.body["published_quantity"], 6);
    let order = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"A-1001","lines":[{"store_sku":"MUG-RED","quantity":2}]}),
        )
        .await;
    let order = expect(&order, 201);
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["lines"][0]["sku"], "MUG-RED");
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][0]["status"], "confirmed");
    assert_eq!(app.get(&format!("/api/v1/listings/{id}")).await.body["published_quantity"], 5);
    let sync = app.post("/api/v1/sync", json!({"store":"etsy"})).await;
    assert_eq!(expect(&sync, 202)["queued"], 1);
    assert_eq!(app.check().await, Vec::<String>::new());
    // Another server on the same database knows the newest figure. The push was queued
    // when the listing was created (12, nothing pushed yet); the rule's move to 6 and the
    // order's to 5 wrote no second push (the queued one will carry the newest figure), and
    // loading recomputes every pending listing's figure from the stored stock: 5. Sync now
    // then wrote the queued push again, with the newest figure and its own reason.
    let (other, _writer) =
        stockpool_store::Storage::open(&app.database_url, stockpool_store::system_clock()).await.unwrap();
    let ws = other.ensure_workspace("test").await.unwrap();
    let published = other
        .read(ws, |w| w.state.listings().map(|l| w.published.get(&l.id).map(|p| p.quantity)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(published, vec![Some(5)]);
    // One pending push, and no settled figure before it.
    let rows = other.db().fetch_all("SELECT quantity, doc FROM outbox", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(sqlx::Row::try_get::<i64, _>(&rows[0], 0).unwrap(), 5);
    let doc: Value = serde_json::from_str(&sqlx::Row::try_get::<String, _>(&rows[0], 1).unwrap()).unwrap();
    assert_eq!(doc["reason"], "sync_now");
    assert_eq!(doc["old_quantity"], Value::Null);
});

both!(an_order_request_is_accepted_or_declined_and_expires_on_time, |app: TestApp| async move {
    seed_mug(&app).await;
    app.send("PATCH", "/api/v1/items/MUG-RED", Some(json!({"zero_policy":"request","accept_within_seconds":60}))).await;
    let o = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"R-1","lines":[{"store_sku":"MUG-RED","quantity":20}]}),
        )
        .await;
    let o = expect(&o, 201).clone();
    assert_eq!((o["status"].as_str(), o["lines"][0]["status"].as_str()), (Some("requested"), Some("requested")));
    assert_eq!(app.get("/api/v1/items/MUG-RED/stock").await.body["available"], 0, "what stock there is stays reserved");
    let accepted = app.post(&format!("/api/v1/orders/{}/accept", o["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(expect(&accepted, 200)["status"], "confirmed");
    assert_eq!(accepted.body["lines"][0]["backordered"], 8);

    let o2 = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"R-2","lines":[{"store_sku":"MUG-RED","quantity":1}]}),
        )
        .await;
    let id2 = expect(&o2, 201)["id"].as_str().unwrap().to_string();
    let declined = app.post(&format!("/api/v1/orders/{id2}/decline"), json!({})).await;
    assert_eq!(expect(&declined, 200)["status"], "declined");
    let again = app.post(&format!("/api/v1/orders/{id2}/accept"), json!({})).await;
    assert!(expect(&again, 409)["detail"].as_str().unwrap().contains("declined"), "{}", again.body);

    let o3 = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"R-3","lines":[{"store_sku":"MUG-RED","quantity":1}]}),
        )
        .await;
    let id3 = expect(&o3, 201)["id"].as_str().unwrap().to_string();
    app.advance_seconds(61);
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get(&format!("/api/v1/orders/{id3}")).await.body["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "expired", "the sweeper expires an unanswered request");
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(payment_after_acceptance_then_fulfil_and_cancel, |app: TestApp| async move {
    seed_mug(&app).await;
    app.send("PATCH", "/api/v1/items/MUG-RED", Some(json!({"zero_policy":"request"}))).await;
    let o = app
        .post("/api/v1/orders", json!({"store":"etsy","external_id":"P-1","lines":[{"store_sku":"MUG-RED","quantity":13}],"payment":"after_acceptance"}))
        .await;
    let id = expect(&o, 201)["id"].as_str().unwrap().to_string();
    assert_eq!(app.post(&format!("/api/v1/orders/{id}/accept"), json!({})).await.body["status"], "awaiting_payment");
    assert_eq!(app.post(&format!("/api/v1/orders/{id}/pay"), json!({})).await.body["status"], "confirmed");
    let not_yet = app.post(&format!("/api/v1/orders/{id}/fulfill"), json!({})).await;
    assert!(expect(&not_yet, 409)["detail"].as_str().unwrap().contains("waits for 1 unit"));
    assert_eq!(app.post(&format!("/api/v1/orders/{id}/cancel"), json!({})).await.body["status"], "cancelled");

    let o = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"F-1","lines":[{"store_sku":"MUG-RED","quantity":3}]}),
        )
        .await;
    let id = expect(&o, 201)["id"].as_str().unwrap().to_string();
    let shipped = app.post(&format!("/api/v1/orders/{id}/fulfill"), json!({})).await;
    assert_eq!(expect(&shipped, 200)["lines"][0]["status"], "fulfilled");
    let stock = app.get("/api/v1/items/MUG-RED/stock").await.body;
    assert_eq!(stock["warehouses"][0], json!({"warehouse":"main","on_hand":9,"reserved":0,"available":9}));
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(the_same_order_delivered_twice_changes_nothing, |app: TestApp| async move {
    seed_mug(&app).await;
    let body = json!({"store":"etsy","external_id":"A-1","lines":[{"store_sku":"MUG-RED","quantity":2}]});
    let first = app.post("/api/v1/orders", body.clone()).await;
    let second = app.post("/api/v1/orders", body).await;
    assert_eq!(expect(&second, 200)["id"], expect(&first, 201)["id"]);
    assert_eq!(app.get("/api/v1/items/MUG-RED/stock").await.body["available"], 10);
    assert_eq!(app.get("/api/v1/orders").await.body["data"].as_array().unwrap().len(), 1);
});

both!(unmapped_and_oversold_lines_are_kept_and_need_attention, |app: TestApp| async move {
    seed_mug(&app).await;
    let o = app
        .post("/api/v1/orders", json!({"store":"etsy","external_id":"X-1","lines":[{"store_sku":"MUG-RED","quantity":15},{"store_sku":"NOPE","quantity":1}]}))
        .await;
    let o = expect(&o, 201);
    assert_eq!(o["status"], "needs_attention");
    assert_eq!(o["lines"][0]["status"], "oversold");
    assert_eq!(o["lines"][0]["oversold"], 3);
    assert_eq!(o["lines"][1]["status"], "unmapped");
    let listed = app.get("/api/v1/orders?status=needs_attention").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
});

both!(every_resource_lists_gets_and_changes, |app: TestApp| async move {
    seed_mug(&app).await;
    assert_eq!(expect(&app.get("/api/v1/warehouses").await, 200)["data"][0]["code"], "main");
    assert_eq!(expect(&app.get("/api/v1/warehouses/main").await, 200)["name"], "Main warehouse");
    assert_eq!(expect(&app.get("/api/v1/items").await, 200)["data"][0]["sku"], "MUG-RED");
    assert_eq!(expect(&app.get("/api/v1/items/MUG-RED").await, 200)["kind"], "product");
    assert_eq!(expect(&app.get("/api/v1/items/MUG-RED/components").await, 200)["components"], json!([]));
    assert_eq!(expect(&app.get("/api/v1/stores").await, 200)["data"][0]["code"], "etsy");
    let patched = app.send("PATCH", "/api/v1/stores/etsy", Some(json!({"enabled": false}))).await;
    assert_eq!(expect(&patched, 200)["enabled"], false);
    let l = app.get("/api/v1/listings").await.body["data"][0].clone();
    assert_eq!(l["published_quantity"], 0, "a disabled store publishes 0");
    app.send("PATCH", "/api/v1/stores/etsy", Some(json!({"enabled": true}))).await;
    let id = l["id"].as_str().unwrap();
    let explain = app.get(&format!("/api/v1/listings/{id}/explain")).await;
    let explain = expect(&explain, 200);
    assert_eq!(explain["published_quantity"], 12);
    assert_eq!(explain["steps"][1]["parts"][0], json!({"warehouse":"main","available":12,"capacity":0}));
    assert!(explain["text"].as_str().unwrap().contains("pool of available = 12 (main: 12)"), "{}", explain["text"]);

    let bulk = app
        .post("/api/v1/listings/bulk", json!({"listings":[{"store":"etsy","external_id":"b-1","store_sku":"B1","sku":"MUG-RED"},{"store":"etsy","external_id":"b-2","store_sku":"B2","sku":"MUG-RED"}]}))
        .await;
    assert_eq!(expect(&bulk, 201)["data"].as_array().unwrap().len(), 2);

    let rule = app.post("/api/v1/rules", json!({"name":"r","priority":1,"items":"all","warehouses":["main"],"stores":["etsy"],"sync_rate_percent":25})).await;
    let rid = expect(&rule, 201)["id"].as_str().unwrap().to_string();
    assert_eq!(expect(&app.get("/api/v1/rules").await, 200)["data"][0]["id"], rid.as_str());
    let v2 = app.send("PUT", &format!("/api/v1/rules/{rid}"), Some(json!({"name":"r","priority":1,"items":{"prefix":"MUG-"},"warehouses":["main"],"stores":["etsy"],"sync_rate_percent":50}))).await;
    assert_eq!(expect(&v2, 200)["version"], 2);
    assert_eq!(expect(&app.get(&format!("/api/v1/rules/{rid}")).await, 200)["items"], json!({"prefix":"MUG-"}));
    assert_eq!(app.get(&format!("/api/v1/listings/{id}")).await.body["rule"], json!({"id": rid, "version": 2}));
    expect(&app.send("DELETE", &format!("/api/v1/rules/{rid}"), None).await, 200);
    expect(&app.get(&format!("/api/v1/rules/{rid}")).await, 404);

    // Production cards: make to stock.
    for (sku, kind) in [("CLAY", "material"), ("MUG-BLUE", "product")] {
        expect(&app.post("/api/v1/items", json!({"sku": sku, "name": sku, "kind": kind})).await, 201);
    }
    app.send("PUT", "/api/v1/items/MUG-BLUE/components", Some(json!({"components":[{"sku":"CLAY","quantity":400}]})))
        .await;
    app.post("/api/v1/stock/adjustments", json!({"sku":"CLAY","warehouse":"main","set":1000,"reason":"counted"})).await;
    assert_eq!(app.get("/api/v1/items/MUG-BLUE/stock").await.body["capacity"], 2);
    let card = app.post("/api/v1/production-cards", json!({"sku":"MUG-BLUE","warehouse":"main","quantity":2})).await;
    let cid = expect(&card, 201)["id"].as_str().unwrap().to_string();
    assert_eq!(card.body["status"], "pending");
    assert_eq!(app.get("/api/v1/items/MUG-BLUE/stock").await.body["capacity"], 0, "a pending card holds its clay");
    assert_eq!(expect(&app.get("/api/v1/production-cards").await, 200)["data"][0]["id"], cid.as_str());
    assert_eq!(
        app.post(&format!("/api/v1/production-cards/{cid}/start"), json!({})).await.body["status"],
        "in_progress"
    );
    assert_eq!(app.post(&format!("/api/v1/production-cards/{cid}/done"), json!({})).await.body["status"], "done");
    assert_eq!(expect(&app.get(&format!("/api/v1/production-cards/{cid}")).await, 200)["status"], "done");
    expect(&app.post(&format!("/api/v1/production-cards/{cid}/cancel"), json!({})).await, 409);
    assert_eq!(app.get("/api/v1/items/MUG-BLUE/stock").await.body["available"], 2);

    let records = app.get("/api/v1/sync-records?store=etsy").await;
    assert_eq!(expect(&records, 200)["next_cursor"], Value::Null);
    let off = app.send("PUT", "/api/v1/settings", Some(json!({"sync_enabled": false}))).await;
    assert_eq!(expect(&off, 200)["sync_enabled"], false);
    assert_eq!(app.get(&format!("/api/v1/listings/{id}")).await.body["published_quantity"], 0);
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(lists_page_with_a_cursor, |app: TestApp| async move {
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    for i in 0..5 {
        expect(&app.post("/api/v1/items", json!({"sku": format!("SKU-{i}"), "name": "x"})).await, 201);
    }
    let p1 = app.get("/api/v1/items?limit=2").await;
    assert_eq!(p1.body["data"].as_array().unwrap().len(), 2);
    let c = p1.body["next_cursor"].as_str().unwrap().to_string();
    let p2 = app.get(&format!("/api/v1/items?limit=2&cursor={c}")).await;
    assert_eq!(p2.body["data"][0]["sku"], "SKU-2");
    let p3 = app.get(&format!("/api/v1/items?limit=2&cursor={}", p2.body["next_cursor"].as_str().unwrap())).await;
    assert_eq!((p3.body["data"].as_array().unwrap().len(), &p3.body["next_cursor"]), (1, &Value::Null));
});

both!(health_readiness_metrics_openapi_and_dashboard, |app: TestApp| async move {
    seed_mug(&app).await;
    let c = reqwest::Client::new();
    assert_eq!(c.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{}/readyz", app.base)).send().await.unwrap().status(), 200);
    let metrics = c.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("# TYPE stockpool_outbox_pending gauge\nstockpool_outbox_pending 1\n"), "{metrics}");
    assert!(metrics.contains("stockpool_commands_total "));
    let page = c.get(format!("{}/", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("stockpool"));
    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(expect(&doc, 200)["openapi"], "3.1.0");
    // Every documented operation is answered by the router (not the fallback, not 405).
    for route in stockpool_http::ROUTES {
        let path = route.path.replace("{code}", "main").replace("{sku}", "MUG-RED").replace("{id}", "lst_0_0");
        let res = app.send(&route.method.to_uppercase(), &format!("/api/v1{path}"), None).await;
        assert_ne!(res.status, 405, "{} {path}", route.method);
        assert_ne!(res.body["detail"], "there is nothing at this path", "{} {path}", route.method);
    }
});

both!(channel_secrets_and_credentials_are_encrypted_at_rest, |app: TestApp| async move {
    let hook = app
        .post(
            "/api/v1/stores",
            json!({"code":"hook","name":"My site","channel":"webhook","url":"http://127.0.0.1:9000/push",
                   "secret":"s3cret-hook","credentials":{"api_key":"k-123456"}}),
        )
        .await;
    let hook = expect(&hook, 201);
    assert_eq!(hook["has_secret"], true);
    assert!(!hook.to_string().contains("s3cret-hook") && !hook.to_string().contains("k-123456"), "never shown");
    let rows = app.store.db().fetch_all("SELECT doc FROM stores", &[]).await.unwrap();
    let doc: String = sqlx_text(&rows[0]);
    assert!(doc.contains("sealed:v1:"), "{doc}");
    assert!(
        !doc.contains("s3cret-hook") && !doc.contains("k-123456"),
        "the database holds no secret in the clear: {doc}"
    );
    // Another server on the same database (and key) opens them.
    let (other, _writer) =
        stockpool_store::Storage::open(&app.database_url, stockpool_store::system_clock()).await.unwrap();
    let ws = other.ensure_workspace("test").await.unwrap();
    let (secret, credentials) = other
        .read(ws, |w| {
            let s = w.state.stores().find(|s| s.code == "hook").unwrap().id;
            let extra = &w.store_extra[&s];
            (extra.secret.clone(), extra.credentials.clone())
        })
        .await
        .unwrap();
    assert_eq!(secret.as_deref(), Some("s3cret-hook"));
    assert_eq!(credentials, Some(json!({"api_key":"k-123456"})));
    let patched = app.send("PATCH", "/api/v1/stores/hook", Some(json!({"credentials":"not an object"}))).await;
    expect(&patched, 422);
});

fn sqlx_text(row: &sqlx::any::AnyRow) -> String {
    use sqlx::Row;
    row.try_get::<String, _>(0).unwrap()
}

both!(a_buffer_auto_rule_holds_back_what_the_faster_store_may_sell, |app: TestApp| async move {
    expect(&app.post("/api/v1/warehouses", json!({"code":"main","name":"Main"})).await, 201);
    expect(&app.post("/api/v1/items", json!({"sku":"MUG-RED","name":"Red mug"})).await, 201);
    expect(
        &app.post(
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":200,"reason":"received"}),
        )
        .await,
        201,
    );
    let mut ids = Vec::new();
    for (code, channel) in [("shop", "shopify"), ("etsy", "etsy")] {
        expect(&app.post("/api/v1/stores", json!({"code":code,"name":code,"channel":channel})).await, 201);
        let l =
            app.post("/api/v1/listings", json!({"store":code,"external_id":format!("{code}-1"),"sku":"MUG-RED"})).await;
        ids.push(expect(&l, 201)["id"].as_str().unwrap().to_string());
    }
    let rule = app
        .post(
            "/api/v1/rules",
            json!({"name":"Auto","priority":1,"items":"all","warehouses":["main"],"stores":["shop","etsy"],"buffer":"auto"}),
        )
        .await;
    assert_eq!(expect(&rule, 201)["buffer"], "auto");
    // No sales yet: nothing to hold back.
    for id in &ids {
        assert_eq!(app.get(&format!("/api/v1/listings/{id}")).await.body["published_quantity"], 200);
    }
    // The own shop sells fastest (90 a day); Etsy sells too. What the shop may sell in
    // Etsy's blind window (the shop's order latency plus Etsy's sync latency) is held back.
    for (store, n, q) in [("shop", 0, 30), ("shop", 1, 30), ("shop", 2, 30), ("etsy", 3, 2)] {
        let o = app
            .post(
                "/api/v1/orders",
                json!({"store":store,"external_id":format!("B-{n}"),"lines":[{"store_sku":"MUG-RED","quantity":q}]}),
            )
            .await;
        expect(&o, 201);
    }
    let shop = app.get(&format!("/api/v1/listings/{}", ids[0])).await.body["published_quantity"].as_i64().unwrap();
    let etsy = app.get(&format!("/api/v1/listings/{}", ids[1])).await.body["published_quantity"].as_i64().unwrap();
    assert_eq!(shop, 108, "the fastest store is favoured and shows the whole pool");
    let explain = app.get(&format!("/api/v1/listings/{}/explain", ids[1])).await;
    assert!(
        etsy < shop,
        "Etsy holds back what the shop may sell before Etsy hears: {etsy} vs {shop}\n{}",
        explain.body
    );
    let explain = app.get(&format!("/api/v1/listings/{}/explain", ids[1])).await;
    assert!(expect(&explain, 200).to_string().contains("buffer"), "{}", explain.body);
    // A day later the sales have left the window: the sweeper forgets them and Etsy shows
    // the whole pool again.
    app.advance_seconds(86_400 + 1);
    let mut etsy_later = etsy;
    for _ in 0..100 {
        etsy_later =
            app.get(&format!("/api/v1/listings/{}", ids[1])).await.body["published_quantity"].as_i64().unwrap();
        if etsy_later == shop {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(etsy_later, shop, "old sales no longer hold anything back");
    assert_eq!(app.check().await, Vec::<String>::new());
});
