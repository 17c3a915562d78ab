//! No oversell under racing requests: 200 concurrent single-unit orders for 50 units.

use crate::both;
use crate::helpers::*;
use serde_json::json;

pub async fn race(app: &TestApp, orders: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..orders {
        let client = app.client.clone();
        let url = format!("{}/api/v1/orders", app.base);
        let token = app.token.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"store":"etsy","external_id": format!("RACE-{i}"),"lines":[{"store_sku":"MUG-RED","quantity":1}]});
            to_res(client.post(url).bearer_auth(token).json(&body).send().await.unwrap()).await
        }));
    }
    let (mut confirmed, mut oversold) = (0, 0);
    for t in tasks {
        let res = t.await.unwrap();
        assert_eq!(res.status, 201, "{}", res.body);
        match res.body["lines"][0]["status"].as_str().unwrap() {
            "confirmed" => confirmed += 1,
            "oversold" => oversold += 1,
            other => panic!("unexpected line status {other}"),
        }
    }
    (confirmed, oversold)
}

both!(two_hundred_concurrent_orders_for_fifty_units_confirm_exactly_fifty, |app: TestApp| async move {
    seed_mug(&app).await;
    expect(
        &app.post("/api/v1/stock/adjustments", json!({"sku":"MUG-RED","warehouse":"main","set":50,"reason":"counted"}))
            .await,
        201,
    );
    let (confirmed, oversold) = race(&app, 200).await;
    assert_eq!((confirmed, oversold), (50, 150));
    let stock = app.get("/api/v1/items/MUG-RED/stock").await.body;
    assert_eq!(stock["warehouses"][0], json!({"warehouse":"main","on_hand":50,"reserved":50,"available":0}));
    assert_eq!(
        app.get("/api/v1/orders?status=needs_attention&limit=1000").await.body["data"].as_array().unwrap().len(),
        150
    );
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(the_guard_in_the_statement_refuses_what_a_stale_decision_would_break, |app: TestApp| async move {
    seed_mug(&app).await;
    // Someone changes the database behind the server's back: its cached workspace still
    // believes 12 are on hand. The core decides on that, and the guard in the stock
    // update is what stops the oversell.
    app.store.db().fetch_all("UPDATE stock_levels SET on_hand = 1", &[]).await.unwrap();
    let res = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"STALE","lines":[{"store_sku":"MUG-RED","quantity":5}]}),
        )
        .await;
    assert_eq!(res.status, 500, "{}", res.body);
    assert_eq!(res.content_type, "application/problem+json");
    let rows = app.store.db().fetch_all("SELECT count(*) FROM orders", &[]).await.unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&rows[0], 0).unwrap(), 0, "nothing of the order was written");
    let rows = app.store.db().fetch_all("SELECT on_hand, reserved FROM stock_levels", &[]).await.unwrap();
    let level: (i64, i64) = (sqlx::Row::try_get(&rows[0], 0).unwrap(), sqlx::Row::try_get(&rows[0], 1).unwrap());
    assert_eq!(level, (1, 0));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_at_once_on_a_fresh_postgres_database_migrate_it_once() {
    let (url, _dir) = database(Backend::Postgres, "migrate").await;
    let mut opens = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        opens.push(tokio::spawn(async move {
            stockpool_store::Storage::open(&url, stockpool_store::system_clock()).await.map(|(store, _)| store)
        }));
    }
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().expect("every server starts"));
    }
    let rows =
        stores[0].db().fetch_all("SELECT count(*), count(DISTINCT version) FROM schema_version", &[]).await.unwrap();
    let (all, distinct): (i64, i64) =
        (sqlx::Row::try_get(&rows[0], 0).unwrap(), sqlx::Row::try_get(&rows[0], 1).unwrap());
    assert_eq!(all, distinct, "each version applied once");
    assert!(all >= 2);
}

both!(a_write_from_another_process_is_seen_at_the_next_read_and_decision, |app: TestApp| async move {
    use stockpool_store::exec::Command;
    use stockpool_store::model::AdjustmentInput;
    seed_mug(&app).await;
    let adjust = |delta: i64| {
        Command::Adjust(AdjustmentInput {
            sku: "MUG-RED".into(),
            warehouse: "main".into(),
            delta: Some(delta),
            set: None,
            reason: Some("received".into()),
        })
    };
    // Another process on the same database (the CLI beside a running server, or a second
    // `serve` on PostgreSQL) receives 8 more mugs: 20 in all.
    let (other, _writer) =
        stockpool_store::Storage::open(&app.database_url, stockpool_store::system_clock()).await.unwrap();
    let ws = other.ensure_workspace("test").await.unwrap();
    other.execute(ws, adjust(8)).await.unwrap();
    // This server's next read shows it ...
    assert_eq!(app.get("/api/v1/items/MUG-RED/stock").await.body["available"], 20);
    // ... and it decides on what is committed, not on what it had cached (12): 15 confirm.
    let order = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"X-1","lines":[{"store_sku":"MUG-RED","quantity":15}]}),
        )
        .await;
    assert_eq!(expect(&order, 201)["status"], "confirmed");
    // And the other process's next write starts from this order's reservation.
    let stock = other.execute(ws, adjust(1)).await.unwrap();
    assert_eq!(stock.body["warehouses"][0], json!({"warehouse":"main","on_hand":21,"reserved":15,"available":6}));
    assert_eq!(app.check().await, Vec::<String>::new());
});
