//! The seam channel sync plugs into: commit, then publish; settling pushes through the
//! writer.
//!
//! A batch that fails after its decisions were taken is made to fail inside the database
//! itself, by a trigger that refuses a row at commit time (slowly, so that readers racing
//! it have every chance to see what must not be seen). Settling drives the writer's
//! `Settle` command the way a dispatcher will.

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use stockpool_core::StoreId;
use stockpool_store::workspace::{PendingPush, PushReason};
use stockpool_store::{Backend, Command, Settle, SettledAttempt, SyncResult};

/// Makes every statement of `kind` (`UPDATE` or `INSERT`) on `table` fail after about half
/// a second, inside the transaction that runs it.
async fn refuse(app: &TestApp, kind: &str, table: &str) {
    let db = app.store.db();
    let name = format!("refuse_{}_{}", kind.to_lowercase(), table);
    let statements = match db.backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER {name} BEFORE {kind} ON {table} BEGIN \
             SELECT RAISE(ABORT, 'refused by the test') FROM \
             (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) FROM c); \
             END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); \
                 RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
            ),
            format!("CREATE TRIGGER {name} BEFORE {kind} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"),
        ],
    };
    for s in statements {
        sqlx::query(&s).execute(&db.pool).await.unwrap();
    }
}

async fn allow(app: &TestApp, kind: &str, table: &str) {
    let name = format!("refuse_{}_{}", kind.to_lowercase(), table);
    let s = match app.store.db().backend {
        Backend::Sqlite => format!("DROP TRIGGER {name}"),
        Backend::Postgres => format!("DROP TRIGGER {name} ON {table}"),
    };
    sqlx::query(&s).execute(&app.store.db().pool).await.unwrap();
}

/// Reads `paths` over and over until `stop` fires; returns every body seen.
fn watch(app: &TestApp, paths: &[&str]) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Vec<Value>>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (client, base, token) = (app.client.clone(), app.base.clone(), app.token.clone());
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        // Bounded: a reader that never hears `stop` ends anyway.
        for _ in 0..100_000 {
            for p in &paths {
                let r = client.get(format!("{base}{p}")).bearer_auth(&token).send().await.unwrap();
                seen.push(r.json::<Value>().await.unwrap());
            }
            if stopped.try_recv().is_ok() {
                break;
            }
        }
        seen
    });
    (stop, task)
}

both!(a_batch_that_fails_at_commit_is_never_seen_and_queues_no_push, |app: TestApp| async move {
    seed_mug(&app).await;
    refuse(&app, "UPDATE", "stock_levels").await;
    let (stop, readers) = watch(&app, &["/api/v1/listings?store=etsy", "/api/v1/items/MUG-RED/stock"]);
    let refused = app
        .post("/api/v1/stock/adjustments", json!({"sku":"MUG-RED","warehouse":"main","delta":30,"reason":"received"}));
    let refused = refused.await;
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    stop.send(()).unwrap();
    let seen = readers.await.unwrap();
    assert!(seen.len() >= 2, "the readers ran during the failing batch");
    for body in &seen {
        let shown = body["data"][0]["published_quantity"].as_i64().or_else(|| body["available"].as_i64());
        assert_eq!(shown, Some(12), "a reader saw a figure that was never committed: {body}");
    }
    // No push carries it: the one queued push still has the committed figure.
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let pushes = app.store.read(ws, |w| w.pending_pushes(w.store_id("etsy").unwrap())).await.unwrap();
    assert_eq!(pushes.iter().map(|p| p.figure.quantity).collect::<Vec<_>>(), vec![12]);
    let rows = app.store.db().fetch_all("SELECT quantity FROM outbox", &[]).await.unwrap();
    assert_eq!(rows.iter().map(|r| sqlx::Row::get::<i64, _>(r, 0)).collect::<Vec<_>>(), vec![12]);
    assert_eq!(app.check().await, Vec::<String>::new());

    // The same change, allowed, is seen at once.
    allow(&app, "UPDATE", "stock_levels").await;
    let ok = app
        .post("/api/v1/stock/adjustments", json!({"sku":"MUG-RED","warehouse":"main","delta":30,"reason":"received"}));
    expect(&ok.await, 201);
    assert_eq!(app.get("/api/v1/listings?store=etsy").await.body["data"][0]["published_quantity"], 42);
});

both!(a_store_that_fails_to_save_is_never_seen, |app: TestApp| async move {
    seed_mug(&app).await;
    refuse(&app, "INSERT", "stores").await;
    let (stop, readers) = watch(&app, &["/api/v1/stores"]);
    let created = app
        .post("/api/v1/stores", json!({"code":"shop","name":"My shop","channel":"manual","schedule":"realtime"}))
        .await;
    assert_eq!(created.status, 500, "{}", created.body);
    // The store row is written as an upsert, which the same trigger refuses.
    let patched = app.send("PATCH", "/api/v1/stores/etsy", Some(json!({"name":"Renamed"}))).await;
    assert_eq!(patched.status, 500, "{}", patched.body);
    stop.send(()).unwrap();
    for body in readers.await.unwrap() {
        let stores: Vec<(&str, &str)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["code"].as_str().unwrap(), s["name"].as_str().unwrap()))
            .collect();
        assert_eq!(stores, vec![("etsy", "Etsy shop")], "a reader saw a store that was never saved");
    }
    assert_eq!(app.get("/api/v1/stores/shop").await.status, 404);
    assert_eq!(app.get("/api/v1/stores/etsy").await.body["name"], "Etsy shop");
    allow(&app, "INSERT", "stores").await;
    let created = app
        .post("/api/v1/stores", json!({"code":"shop","name":"My shop","channel":"manual","schedule":"realtime"}))
        .await;
    expect(&created, 201);
});

/// The workspace id behind the test token, and a store's id.
async fn ids(app: &TestApp, store: &str) -> (i64, StoreId) {
    let ws = app.store.ensure_workspace("test").await.unwrap();
    let code = store.to_string();
    let store = app.store.read(ws, move |w| w.store_id(&code).unwrap()).await.unwrap();
    (ws, store)
}

async fn pending(app: &TestApp, ws: i64, store: StoreId) -> Vec<PendingPush> {
    app.store.read(ws, move |w| w.pending_pushes(store)).await.unwrap()
}

/// What a dispatcher reports for one pushed listing.
fn attempt(p: &PendingPush, result: SyncResult) -> SettledAttempt {
    SettledAttempt {
        listing: p.listing,
        pushed: p.figure,
        old_quantity: p.settled.map(|s| s.quantity),
        reason: p.meta.reason.as_str(),
        result,
        status_code: Some(if result == SyncResult::Ok { 200 } else { 503 }),
        detail: None,
        attempt: p.meta.attempts + 1,
        next_attempt_at: None,
        claimed_generation: p.meta.generation,
    }
}

async fn settle(app: &TestApp, ws: i64, store: StoreId, attempts: Vec<SettledAttempt>) {
    app.store.execute(ws, Command::Settle(Settle { store, attempts, fence: None })).await.unwrap();
}

async fn adjust(app: &TestApp, delta: i64) {
    let body = json!({"sku":"MUG-RED","warehouse":"main","delta":delta,"reason":"count"});
    expect(&app.post("/api/v1/stock/adjustments", body).await, 201);
}

async fn outbox(app: &TestApp) -> Vec<(i64, i64, i64)> {
    let rows = app.store.db().fetch_all("SELECT quantity, attempts, generation FROM outbox", &[]).await.unwrap();
    rows.iter()
        .map(|r| (sqlx::Row::get::<i64, _>(r, 0), sqlx::Row::get::<i64, _>(r, 1), sqlx::Row::get::<i64, _>(r, 2)))
        .collect()
}

both!(a_settled_push_leaves_the_outbox_and_becomes_what_the_channel_has, |app: TestApp| async move {
    seed_mug(&app).await;
    let (ws, etsy) = ids(&app, "etsy").await;
    let queued = pending(&app, ws, etsy).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].figure.quantity, queued[0].settled, queued[0].meta.reason),
        (12, None, PushReason::StockChange)
    );
    settle(&app, ws, etsy, vec![attempt(&queued[0], SyncResult::Ok)]).await;
    assert_eq!(pending(&app, ws, etsy).await, vec![]);
    assert_eq!(outbox(&app).await, vec![]);
    // A round trip away from what the channel has and back is no push.
    adjust(&app, -1).await;
    assert_eq!(outbox(&app).await.len(), 1);
    adjust(&app, 1).await;
    assert_eq!(outbox(&app).await, vec![], "12 -> 11 -> 12 needs no push");

    // The figure moves while its push is out: the row stays, for the newest figure.
    adjust(&app, -2).await;
    let claimed = pending(&app, ws, etsy).await;
    assert_eq!(claimed[0].figure.quantity, 10);
    adjust(&app, -3).await;
    settle(&app, ws, etsy, vec![attempt(&claimed[0], SyncResult::Ok)]).await;
    let again = pending(&app, ws, etsy).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].figure.quantity, again[0].settled.map(|s| s.quantity)), (7, Some(10)));

    // A retry keeps the row, with its attempt and when to try next; another process
    // reading the database sees the same.
    let mut retry = attempt(&again[0], SyncResult::Retry);
    retry.next_attempt_at = Some(stockpool_core::Timestamp(app.store.now().0 + 4000));
    settle(&app, ws, etsy, vec![retry]).await;
    let (other, _writer) =
        stockpool_store::Storage::open(&app.database_url, stockpool_store::system_clock()).await.unwrap();
    let seen = other.read(ws, move |w| w.pending_pushes(etsy)).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].meta.attempts, seen[0].meta.next_attempt_at),
        (1, Some(stockpool_core::Timestamp(app.store.now().0 + 4000)))
    );
    assert_eq!(seen[0].settled.map(|s| s.quantity), Some(10), "the settled figure is durable");

    // Refused by the channel: not tried again until the figure moves.
    let mut failed = attempt(&seen[0], SyncResult::Failed);
    failed.status_code = Some(400);
    failed.detail = Some("quantity is not allowed".into());
    settle(&app, ws, etsy, vec![failed]).await;
    assert_eq!(outbox(&app).await, vec![]);
    adjust(&app, -1).await;
    assert_eq!(pending(&app, ws, etsy).await[0].figure.quantity, 6);

    // Stale: the channel had another quantity; it becomes the settled one and the push
    // stays queued.
    let p = pending(&app, ws, etsy).await;
    settle(&app, ws, etsy, vec![attempt(&p[0], SyncResult::Stale { channel_quantity: 3 })]).await;
    let p = pending(&app, ws, etsy).await;
    assert_eq!((p[0].figure.quantity, p[0].settled.map(|s| s.quantity)), (6, Some(3)));

    // Every attempt is a sync record with SPEC section 6's fields.
    let records = expect(&app.get("/api/v1/sync-records?store=etsy").await, 200).clone();
    let results: Vec<(&str, i64, Option<i64>)> = records["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["result"].as_str().unwrap(), r["new_quantity"].as_i64().unwrap(), r["old_quantity"].as_i64()))
        .collect();
    assert_eq!(
        results,
        vec![
            ("ok", 12, None),
            ("ok", 10, Some(12)),
            ("retry", 7, Some(10)),
            ("failed", 7, Some(10)),
            ("stale", 6, Some(10))
        ]
    );
    let failed = &records["data"][3];
    assert_eq!(
        (failed["status_code"].as_i64(), failed["detail"].as_str()),
        (Some(400), Some("quantity is not allowed"))
    );
    for key in [
        "id",
        "store",
        "listing",
        "sku",
        "old_quantity",
        "new_quantity",
        "reason",
        "rule",
        "result",
        "status_code",
        "detail",
        "attempt",
        "created_at",
    ] {
        assert!(records["data"][0].get(key).is_some(), "a sync record has {key}: {}", records["data"][0]);
    }
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(a_sync_now_while_a_push_is_out_still_gets_its_push, |app: TestApp| async move {
    seed_mug(&app).await;
    let (ws, etsy) = ids(&app, "etsy").await;
    let claimed = pending(&app, ws, etsy).await;
    assert_eq!(claimed.len(), 1);
    // Sync now rewrites the row while the push of the same figure is out...
    expect(&app.post("/api/v1/sync", serde_json::json!({"store": "etsy"})).await, 202);
    let rewritten = pending(&app, ws, etsy).await;
    assert_eq!(rewritten[0].meta.reason, PushReason::SyncNow);
    assert!(rewritten[0].meta.generation > claimed[0].meta.generation);
    // ...and that push's settle leaves it: Sync now asked for a push after its commit.
    settle(&app, ws, etsy, vec![attempt(&claimed[0], SyncResult::Ok)]).await;
    let kept = pending(&app, ws, etsy).await;
    assert_eq!((kept.len(), kept[0].meta.reason), (1, PushReason::SyncNow), "{kept:?}");
    assert_eq!(kept[0].settled.map(|s| s.quantity), Some(12), "the channel has the figure now");
    // The push Sync now asked for settles it.
    settle(&app, ws, etsy, vec![attempt(&kept[0], SyncResult::Ok)]).await;
    assert_eq!(pending(&app, ws, etsy).await, vec![]);
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(settling_costs_no_workspace_load_and_records_page_by_cursor, |app: TestApp| async move {
    seed_mug(&app).await;
    let (ws, etsy) = ids(&app, "etsy").await;
    let mut commits = app.store.commits();
    let loads = app.store.metrics().workspace_loads.load(Ordering::Relaxed);
    let rounds = 120;
    for i in 0..rounds {
        adjust(&app, if i % 2 == 0 { 5 } else { -2 }).await;
        let queued = pending(&app, ws, etsy).await;
        assert_eq!(queued.len(), 1, "round {i}");
        settle(&app, ws, etsy, vec![attempt(&queued[0], SyncResult::Ok)]).await;
    }
    assert!(commits.has_changed().unwrap(), "committed batches move the watch dispatchers wait on");
    commits.mark_unchanged();
    assert_eq!(
        app.store.metrics().workspace_loads.load(Ordering::Relaxed),
        loads,
        "no settle, no read and no write reloaded the workspace"
    );
    assert_eq!(outbox(&app).await, vec![]);
    // The settled figure went into the listing row.
    let rows = app.store.db().fetch_all("SELECT published_quantity FROM listings", &[]).await.unwrap();
    let expected = 12 + (rounds / 2) * 5 - (rounds / 2) * 2;
    assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], 0), expected);

    // One record a round (the first settles the push queued when the listing was made),
    // 50 to a page.
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/sync-records?limit=50&cursor={c}"),
            None => "/api/v1/sync-records?limit=50".to_string(),
        };
        let page = expect(&app.get(&path).await, 200).clone();
        ids.extend(page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), rounds as usize);
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    let bad = app.get("/api/v1/sync-records?cursor=nonsense").await;
    assert_eq!(bad.status, 400);
});
