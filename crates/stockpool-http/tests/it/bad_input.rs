//! Bad input of every kind gets a clear 4xx problem and changes nothing (SPEC section 7).

use crate::both;
use crate::helpers::*;
use serde_json::{json, Value};

/// What "nothing changed" compares: stock, orders, rules, listings and the ledger check.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/items/MUG-RED/stock",
        "/api/v1/orders",
        "/api/v1/rules",
        "/api/v1/listings",
        "/api/v1/items",
        "/api/v1/stores",
        "/api/v1/warehouses",
    ] {
        out.push(app.get(path).await.body);
    }
    out
}

both!(each_bad_request_is_a_problem_and_changes_nothing, |app: TestApp| async move {
    seed_mug(&app).await;
    let before = snapshot(&app).await;
    let long = "x".repeat(300);
    let order = |lines: Value| json!({"store":"etsy","external_id":"B-1","lines":lines});
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/orders",
            order(json!([{"store_sku":"MUG-RED","quantity":0}])),
            422,
            "quantity must be between 1",
        ),
        (
            "POST",
            "/api/v1/orders",
            order(json!([{"store_sku":"MUG-RED","quantity":-3}])),
            422,
            "quantity must be between 1",
        ),
        ("POST", "/api/v1/orders", order(json!([])), 422, "at least one line"),
        (
            "PATCH",
            "/api/v1/stores/etsy",
            json!({"push_rate_per_second": 0}),
            422,
            "push_rate_per_second must be 1 to 1000 pushes a second, not 0",
        ),
        (
            "POST",
            "/api/v1/stores",
            json!({"code":"fast","name":"Fast","channel":"manual","push_rate_per_second": 5000}),
            422,
            "not 5000",
        ),
        (
            "PATCH",
            "/api/v1/stores/etsy",
            json!({"reconcile_every_minutes": 0}),
            422,
            "reconcile_every_minutes must be 1 to 10080 minutes, not 0",
        ),
        (
            "POST",
            "/api/v1/stores",
            json!({"code":"slow","name":"Slow","channel":"manual","poll_every_seconds": 86401}),
            422,
            "poll_every_seconds must be 1 to 86400 seconds, not 86401",
        ),
        (
            "POST",
            "/api/v1/orders",
            json!({"store":"nope","external_id":"B-1","lines":[{"store_sku":"MUG-RED","quantity":1}]}),
            422,
            "unknown store nope",
        ),
        (
            "POST",
            "/api/v1/orders",
            json!({"store":"etsy","external_id":long,"lines":[{"store_sku":"MUG-RED","quantity":1}]}),
            422,
            "characters long",
        ),
        ("POST", "/api/v1/orders", json!({"store":"etsy","lines":[]}), 400, "external_id"),
        (
            "POST",
            "/api/v1/stock/adjustments",
            json!({"sku":"NOPE","warehouse":"main","delta":1}),
            422,
            "unknown item NOPE",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"nowhere","delta":1}),
            422,
            "unknown warehouse nowhere",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":-13}),
            422,
            "on hand would become -1",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":0}),
            422,
            "a delta of 0 changes nothing",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments",
            json!({"sku":"MUG-RED","warehouse":"main","delta":1,"set":3}),
            422,
            "exactly one of delta or set",
        ),
        ("POST", "/api/v1/items", json!({"sku": long, "name":"x"}), 422, "at most 128"),
        ("POST", "/api/v1/items", json!({"sku":"MUG-RED","name":"again"}), 409, "already exists"),
        ("POST", "/api/v1/items", json!({"sku":"X","kind":"spaceship"}), 400, "unknown variant"),
        (
            "PUT",
            "/api/v1/items/MUG-RED/components",
            json!({"components":[{"sku":"MUG-RED","quantity":1}]}),
            422,
            "cannot be a component of itself",
        ),
        (
            "PUT",
            "/api/v1/items/MUG-RED/components",
            json!({"components":[{"sku":"GHOST","quantity":1}]}),
            422,
            "unknown item GHOST",
        ),
        (
            "POST",
            "/api/v1/listings",
            json!({"store":"etsy","external_id":"1234567","sku":"MUG-RED","store_sku":"OTHER"}),
            409,
            "already exists",
        ),
        ("POST", "/api/v1/listings", json!({"store":"etsy","external_id":"9","sku":"NOPE"}), 422, "unknown item NOPE"),
        ("POST", "/api/v1/stores", json!({"code":"hook2","name":"x","channel":"webhook"}), 422, "needs a url"),
        (
            "POST",
            "/api/v1/stores",
            json!({"code":"s","name":"x","channel":"etsy","schedule":{"every_minutes":0}}),
            422,
            "every_minutes must be between 1 and 1440",
        ),
        // Each invalid rule of SPEC section 3.
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"sync_rate_percent":0}),
            422,
            "sync_rate_percent must be between 1 and 100, got 0",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"sync_rate_percent":101}),
            422,
            "sync_rate_percent must be between 1 and 100, got 101",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"priority_store":"hook","safety_stock":5}),
            422,
            "priority_store hook must be one of the rule's stores",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"stock_threshold":5,"priority_store":"etsy","safety_stock":5}),
            422,
            "safety_stock (5) must be greater than stock_threshold (5)",
        ),
        ("POST", "/api/v1/rules", json!({"name":"r","warehouses":[],"stores":["etsy"]}), 422, "at least one warehouse"),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["nope"]}),
            422,
            "unknown store nope",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"items":{"skus":["NOPE"]}}),
            422,
            "unknown item NOPE",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name":"r","warehouses":["main"],"stores":["etsy"],"stock_threshold":-1}),
            422,
            "stock_threshold must be 0 or more",
        ),
    ];
    for (method, path, body, status, says) in cases {
        let res = app.send(method, path, Some(body.clone())).await;
        problem(&res, status, says);
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.check().await, Vec::<String>::new());
});

both!(malformed_json_oversize_bodies_and_wrong_content_type_are_refused, |app: TestApp| async move {
    seed_mug(&app).await;
    let before = snapshot(&app).await;
    let raw = |body: Vec<u8>, ct: &'static str| {
        app.client
            .post(format!("{}/api/v1/orders", app.base))
            .bearer_auth(&app.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(&to_res(raw(b"{\"store\": \"etsy\",".to_vec(), "application/json").await.unwrap()).await, 400, "not valid");
    problem(&to_res(raw(b"{}".to_vec(), "text/plain").await.unwrap()).await, 415, "Content-Type: application/json");
    // An oversize body is refused from its Content-Length, before it is read: speak raw
    // HTTP so the answer is read even though the body is never sent (a client that keeps
    // writing would race the server closing the connection).
    let status_line = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = app.base.trim_start_matches("http://").to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/orders HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
            app.token,
            2 * 1024 * 1024
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n =
            tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer)).await.unwrap().unwrap();
        String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_string()
    };
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    assert_eq!(snapshot(&app).await, before);
});

both!(no_token_or_a_wrong_token_gets_401, |app: TestApp| async move {
    seed_mug(&app).await;
    let none = to_res(app.client.get(format!("{}/api/v1/items", app.base)).send().await.unwrap()).await;
    problem(&none, 401, "Bearer");
    problem(&app.send_as("sp_wrong", "GET", "/api/v1/items", None).await, 401, "valid API token");
    problem(
        &app.send_as(
            "sp_wrong",
            "POST",
            "/api/v1/orders",
            Some(json!({"store":"etsy","external_id":"W","lines":[{"store_sku":"MUG-RED","quantity":1}]})),
        )
        .await,
        401,
        "valid API token",
    );
    assert_eq!(app.get("/api/v1/orders").await.body["data"], json!([]));
});

both!(another_workspaces_objects_answer_404, |app: TestApp| async move {
    seed_mug(&app).await;
    let order = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"A-1","lines":[{"store_sku":"MUG-RED","quantity":1}]}),
        )
        .await;
    let oid = expect(&order, 201)["id"].as_str().unwrap().to_string();
    let lid = app.get("/api/v1/listings").await.body["data"][0]["id"].as_str().unwrap().to_string();
    let rule = app.post("/api/v1/rules", json!({"name":"r","warehouses":["main"],"stores":["etsy"]})).await;
    let rid = expect(&rule, 201)["id"].as_str().unwrap().to_string();
    let other = app.other_token().await;
    for path in [
        format!("/api/v1/orders/{oid}"),
        format!("/api/v1/listings/{lid}"),
        format!("/api/v1/listings/{lid}/explain"),
        format!("/api/v1/rules/{rid}"),
        "/api/v1/items/MUG-RED".to_string(),
        "/api/v1/items/MUG-RED/stock".to_string(),
        "/api/v1/warehouses/main".to_string(),
        "/api/v1/stores/etsy".to_string(),
    ] {
        problem(&app.send_as(&other, "GET", &path, None).await, 404, "was not found");
    }
    problem(&app.send_as(&other, "POST", &format!("/api/v1/orders/{oid}/cancel"), None).await, 404, "was not found");
    problem(
        &app.send_as(
            &other,
            "PUT",
            &format!("/api/v1/rules/{rid}"),
            Some(json!({"name":"x","warehouses":["main"],"stores":["etsy"]})),
        )
        .await,
        404,
        "was not found",
    );
    assert_eq!(app.get(&format!("/api/v1/orders/{oid}")).await.body["status"], "confirmed");
    assert_eq!(app.send_as(&other, "GET", "/api/v1/orders", None).await.body["data"], json!([]));
});
