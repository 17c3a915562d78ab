//! The dashboard at `/`: login with a hashed password, a secure session cookie, and CSRF
//! tokens on every form; a seller sees published quantities and answers order requests.

use crate::both;
use crate::helpers::*;
use serde_json::json;

/// A browser-like client that keeps no cookies by itself and follows no redirects, so
/// the test sees every Set-Cookie and Location.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// The value of `name="csrf"` in a page.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

both!(a_seller_logs_in_sees_the_pool_and_answers_a_request_with_csrf, |app: TestApp| async move {
    seed_mug(&app).await;
    app.send("PATCH", "/api/v1/items/MUG-RED", Some(json!({"zero_policy":"request"}))).await;
    let o = app
        .post(
            "/api/v1/orders",
            json!({"store":"etsy","external_id":"R-<b>1</b>","lines":[{"store_sku":"MUG-RED","quantity":20}]}),
        )
        .await;
    let order_id = expect(&o, 201)["id"].as_str().unwrap().to_string();
    app.store.create_user("test", "potter@example.com", "clay and glaze").await.unwrap();
    let b = browser();

    // Not logged in: to the login page, which sets the login form's CSRF cookie.
    let res = b.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    let res = b.get(format!("{}/login", app.base)).send().await.unwrap();
    let login_cookie = set_cookies(&res).into_iter().find(|c| c.starts_with("sp_login_csrf=")).unwrap();
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let form_csrf = csrf_in(&res.text().await.unwrap());

    // A wrong password, and a login form without its CSRF cookie, are refused.
    let post_login = |password: &str, cookie: Option<&str>| {
        let mut req = b
            .post(format!("{}/login", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("email=potter%40example.com&password={}&csrf={form_csrf}", password.replace(' ', "+")));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    assert_eq!(post_login("wrong password", Some(&login_cookie)).await.unwrap().status(), 401);
    assert_eq!(post_login("clay and glaze", None).await.unwrap().status(), 403);

    // The right password opens a session with a secure cookie.
    let res = post_login("clay and glaze", Some(&login_cookie)).await.unwrap();
    assert_eq!(res.status(), 303);
    let session = set_cookies(&res).into_iter().find(|c| c.starts_with("sp_session=")).unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    let session = session.split(';').next().unwrap().to_string();

    // The dashboard shows what each listing publishes and the waiting request, escaped.
    let page = b.get(format!("{}/", app.base)).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("MUG-RED"), "{page}");
    assert!(page.contains("R-&lt;b&gt;1&lt;/b&gt;") && !page.contains("<b>1</b>"), "text is escaped: {page}");
    // Each store's last pushes: an Etsy store has no connector yet, so nothing was pushed.
    assert!(page.contains("<h2>Last pushes</h2><h3>etsy</h3><p>Nothing pushed yet.</p>"), "{page}");
    let csrf = csrf_in(&page);

    // Accepting without the session's CSRF token is refused and changes nothing.
    let accept = |token: String| {
        b.post(format!("{}/dashboard/orders/{order_id}/accept", app.base))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={token}"))
            .send()
    };
    assert_eq!(accept("forged".into()).await.unwrap().status(), 403);
    assert_eq!(app.get(&format!("/api/v1/orders/{order_id}")).await.body["status"], "requested");
    assert_eq!(accept(csrf.clone()).await.unwrap().status(), 303);
    assert_eq!(app.get(&format!("/api/v1/orders/{order_id}")).await.body["status"], "confirmed");

    // Logging out ends the session.
    let res = b
        .post(format!("{}/logout", app.base))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = b.get(format!("{}/", app.base)).header("cookie", &session).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login");
});
