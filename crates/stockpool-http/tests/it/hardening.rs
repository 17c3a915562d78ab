//! Hardening (issue 15): logins that reveal nothing and cannot be flooded, every error a
//! problem document whichever layer sends it, filters that refuse values that do not
//! exist, and the dashboard's protective headers.

use crate::both;
use crate::helpers::*;
use stockpool_http::attempts::{FAILURES_PER_ADDRESS, FAILURE_WINDOW_MS, LOGIN_FAILURES_PER_ACCOUNT};

const EMAIL: &str = "potter@example.com";
const PASSWORD: &str = "clay and glaze";

/// A browser that follows no redirects, so a successful login is its 303.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Posts the login form (with a matching CSRF cookie and field) and answers the status,
/// the `Retry-After` header and the page.
async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Option<u64>, String) {
    let body = format!("email={}&password={}&csrf=tok", email.replace('@', "%40"), password.replace(' ', "+"));
    let res = browser()
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "sp_login_csrf=tok")
        .body(body)
        .send()
        .await
        .unwrap();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (res.status().as_u16(), retry, res.text().await.unwrap())
}

both!(an_unknown_email_costs_the_same_password_check_as_a_known_one, |app: TestApp| async move {
    app.store.create_user("test", EMAIL, PASSWORD).await.unwrap();
    assert_eq!(metric(&app, "stockpool_password_checks_total").await, 0);
    assert_eq!(login(&app, EMAIL, "wrong password").await.0, 401);
    assert_eq!(metric(&app, "stockpool_password_checks_total").await, 1);
    // Answered the same, after the same work: nothing tells which emails exist.
    let (status, _, page) = login(&app, "nobody@example.com", "wrong password").await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong email or password."), "{page}");
    assert_eq!(metric(&app, "stockpool_password_checks_total").await, 2);
});

both!(failed_logins_make_the_account_wait_even_with_the_right_password, |app: TestApp| async move {
    app.store.create_user("test", EMAIL, PASSWORD).await.unwrap();
    app.store.create_user("test", "glazer@example.com", PASSWORD).await.unwrap();
    for _ in 0..LOGIN_FAILURES_PER_ACCOUNT {
        assert_eq!(login(&app, EMAIL, "wrong password").await.0, 401);
    }
    let checks = metric(&app, "stockpool_password_checks_total").await;
    let (status, retry, page) = login(&app, EMAIL, PASSWORD).await;
    assert_eq!(status, 429, "{page}");
    let retry = retry.expect("a Retry-After");
    assert!(retry > 0 && retry <= (FAILURE_WINDOW_MS / 1000) as u64, "{retry}");
    assert!(page.contains("Too many failed logins"), "{page}");
    // Refused before any hashing: a flood costs the server no Argon2 work.
    assert_eq!(metric(&app, "stockpool_password_checks_total").await, checks);
    // Another account from the same address still logs in.
    assert_eq!(login(&app, "glazer@example.com", PASSWORD).await.0, 303);
    // Once the window has passed, the right password works again.
    app.advance_seconds(FAILURE_WINDOW_MS / 1000 + 1);
    assert_eq!(login(&app, EMAIL, PASSWORD).await.0, 303);
});

both!(wrong_api_tokens_make_the_address_wait, |app: TestApp| async move {
    for i in 0..FAILURES_PER_ADDRESS {
        let res = app.send_as(&format!("sp_wrong{i}"), "GET", "/api/v1/items", None).await;
        problem(&res, 401, "API token");
    }
    let url = format!("{}/api/v1/items", app.base);
    let res = app.client.get(&url).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= (FAILURE_WINDOW_MS / 1000) as u64, "{retry}");
    problem(&to_res(res).await, 429, "too many wrong credentials");
    app.advance_seconds(FAILURE_WINDOW_MS / 1000 + 1);
    expect(&app.get("/api/v1/items").await, 200);
});

both!(every_error_of_any_layer_is_a_problem_with_a_sentence, |app: TestApp| async move {
    // A method the path does not take: axum's 405 has no body.
    let res = app.send("DELETE", "/api/v1/items", None).await;
    problem(&res, 405, "does not take DELETE");
    let raw = app.client.post(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(raw.status(), 405);
    assert!(raw.headers().get("allow").is_some(), "the Allow header is kept");
    problem(&to_res(raw).await, 405, "does not take POST");
    // A query string that does not parse: axum's rejection is plain text.
    problem(&app.get("/api/v1/orders?limit=many").await, 400, "not valid");
    // The body limit's 413 is covered by `bad_input.rs` (a large body races the server's
    // early answer, so it is sent there as the limit allows).
});

both!(filters_refuse_values_that_do_not_exist_and_the_scheme_is_any_case, |app: TestApp| async move {
    problem(&app.get("/api/v1/orders?status=bogus").await, 422, "status must be one of");
    expect(&app.get("/api/v1/orders?status=needs_attention").await, 200);
    problem(&app.get("/api/v1/sync-records?result=bogus").await, 422, "result must be one of");
    expect(&app.get("/api/v1/sync-records?result=drift").await, 200);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let res = app
            .client
            .get(format!("{}/api/v1/items", app.base))
            .header("authorization", format!("{scheme} {}", app.token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "scheme {scheme}");
    }
});

both!(dashboard_pages_forbid_framing_sniffing_and_caching, |app: TestApp| async move {
    // Kept whole: a closure that only read `app.base` would drop the server at once.
    let app = app;
    for path in ["/login", "/"] {
        let res = browser().get(format!("{}{path}", app.base)).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(h.get("referrer-policy").is_some(), "{path}");
    }
    let page = browser().get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"viewport\""), "readable on a phone: {page}");
});

/// Reads until the server closes the connection; how long that took, at most `bound`.
async fn closed_within(stream: &mut tokio::net::TcpStream, bound: std::time::Duration) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_and_an_idle_connection_are_closed() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(Backend::Sqlite).await;
    let address = app.base.trim_start_matches("http://").to_string();
    let bound = stockpool_http::serve::HEADER_READ_TIMEOUT * 3;
    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A kept-alive connection that asks nothing more after its first answer.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (slow_closed, idle_closed) = tokio::join!(closed_within(&mut slow, bound), closed_within(&mut idle, bound));
    assert!(slow_closed.is_some(), "a client that never finishes its headers is cut off");
    assert!(idle_closed.is_some(), "an idle kept-alive connection is closed");
    // The server goes on serving.
    expect(&app.get("/healthz").await, 200);
}
