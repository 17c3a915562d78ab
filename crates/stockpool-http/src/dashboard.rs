//! The dashboard at `/`: a seller logs in with email and password and sees what every
//! listing shows, which orders wait for them and each store's last pushes, and accepts or
//! declines order requests.
//!
//! Security: passwords are checked against Argon2id hashes (`stockpool user create`); a
//! login opens a server-side session whose cookie is `HttpOnly; Secure; SameSite=Strict`
//! (browsers keep `Secure` cookies on `http://localhost` too; anywhere else, serve it
//! behind HTTPS); every form carries the session's CSRF token, and a post without the
//! right one is refused with 403 and changes nothing. The login form is protected the same
//! way with a short-lived double-submit cookie. Every text shown is HTML-escaped. Pages are
//! rendered here, server-side, from the same views the API returns.

use crate::error::ApiError;
use crate::{App, ClientAddress};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::fmt::Write as _;
use stockpool_core::OrderStatus;
use stockpool_store::auth::Session;
use stockpool_store::exec::Command;
use stockpool_store::model::{public_id, Kind, OrderAction};

/// The session cookie.
pub const SESSION_COOKIE: &str = "sp_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "sp_login_csrf";
/// Rows of each table shown at most (the API pages through the rest).
pub const DASHBOARD_ROWS_MAX: usize = 200;

/// Sync records shown for each store under "Last pushes", newest first.
pub const LAST_PUSHES_SHOWN: i64 = 5;
/// Largest form accepted, in bytes.
pub const FORM_BYTES_MAX: usize = 8 * 1024;

/// HTML-escapes `s` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}")
}

/// What a dashboard page may load and do: its own inline style and nothing else (no
/// script, no frames around it, forms only to us).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every dashboard answer: no framing, no sniffing, no caching (pages show a
/// session's data and a CSRF token), no referrer leaving the site.
pub async fn page_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    res
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} · stockpool</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;width:100%;margin-bottom:2rem}}td,th{{text-align:left;padding:.3rem .5rem;\
         border-bottom:1px solid #ddd}}td.n{{text-align:right}}form.inline{{display:inline}}</style>\n</head>\n<body>\n{}\n</body>\n</html>\n",
        escape(title),
        body
    )
}

async fn session(app: &App, headers: &HeaderMap) -> Result<Option<(String, Session)>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    Ok(app.store.session(token).await?.map(|s| (token.to_string(), s)))
}

fn random_token() -> Result<String, ApiError> {
    stockpool_store::auth::random_hex(24).map_err(ApiError::from)
}

/// `GET /`: the dashboard, or a redirect to the login.
pub async fn home(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some((_, s)) = session(&app, &headers).await? else { return Ok(Redirect::to("/login").into_response()) };
    let csrf = escape(&s.csrf);
    let body = app
        .store
        .read(s.workspace, |w| {
            let mut b = String::new();
            let _ = write!(
                b,
                "<h1>stockpool</h1><p>Signed in as {} · <form class=\"inline\" method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>Log out</button></form></p>",
                escape(&s.email)
            );
            b.push_str("<h2>Orders waiting for you</h2><table><tr><th>order</th><th>store</th><th>status</th><th>lines</th><th></th></tr>");
            let waiting = w.state.orders().filter(|o| {
                matches!(o.status, OrderStatus::Requested | OrderStatus::NeedsAttention | OrderStatus::AwaitingPayment)
            });
            for o in waiting.take(DASHBOARD_ROWS_MAX) {
                let id = public_id(Kind::Order, w.id, o.id.0);
                let lines: Vec<String> = o
                    .lines
                    .iter()
                    .map(|l| format!("{} x {} ({})", l.quantity, escape(&l.store_sku), l.status.as_str()))
                    .collect();
                let actions = if o.status == OrderStatus::Requested {
                    ["accept", "decline"]
                        .iter()
                        .map(|a| {
                            format!(
                                "<form class=\"inline\" method=\"post\" action=\"/dashboard/orders/{}/{a}\">\
                                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>{a}</button></form>",
                                escape(&id)
                            )
                        })
                        .collect::<String>()
                } else {
                    String::new()
                };
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                    escape(&o.external_id),
                    escape(&w.store_code(o.store)),
                    o.status.as_str(),
                    lines.join(", ")
                );
            }
            b.push_str("</table><h2>What each listing shows</h2><table><tr><th>store</th><th>SKU</th><th>store SKU</th><th>published</th><th></th></tr>");
            for l in w.state.listings().take(DASHBOARD_ROWS_MAX) {
                let quantity = w.published.get(&l.id).map(|p| p.quantity).unwrap_or(0);
                let id = public_id(Kind::Listing, w.id, l.id.0);
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{quantity}</td>\
                     <td><a href=\"/api/v1/listings/{}/explain\">why?</a></td></tr>",
                    escape(&w.store_code(l.store)),
                    escape(&w.sku(l.item)),
                    escape(&l.store_sku),
                    escape(&id)
                );
            }
            b.push_str("</table>");
            let stores: Vec<(i64, String)> = w.state.stores().map(|st| (st.id.0 as i64, st.code.clone())).collect();
            let skus: std::collections::HashMap<i64, String> =
                w.state.items().map(|i| (i.id.0 as i64, i.sku.clone())).collect();
            (b, stores, skus)
        })
        .await?;
    let (mut body, stores, skus) = body;
    body.push_str("<h2>Last pushes</h2>");
    for (id, code) in stores.iter().take(DASHBOARD_ROWS_MAX) {
        let records = app.store.last_sync_records(s.workspace, *id, LAST_PUSHES_SHOWN).await?;
        let _ = write!(body, "<h3>{}</h3>", escape(code));
        if records.is_empty() {
            body.push_str("<p>Nothing pushed yet.</p>");
            continue;
        }
        body.push_str(
            "<table><tr><th>when</th><th>SKU</th><th>from</th><th>to</th><th>result</th><th>detail</th></tr>",
        );
        for r in records {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                stockpool_store::workspace::millis_to_rfc3339(r.created_at),
                escape(skus.get(&r.item).map_or("?", String::as_str)),
                r.old_quantity.map_or_else(|| "-".to_string(), |q| q.to_string()),
                r.new_quantity,
                escape(&r.result),
                escape(r.detail.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</table>");
    }
    Ok(Html(page("Dashboard", &body)).into_response())
}

fn login_page(status: StatusCode, message: Option<&str>) -> Result<Response, ApiError> {
    let csrf = random_token()?;
    let note = message.map(|m| format!("<p role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    let body = format!(
        "<h1>stockpool</h1>{note}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label>Email <input name=\"email\" type=\"email\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button>Log in</button></p></form>"
    );
    let mut res = (status, Html(page("Log in", &body))).into_response();
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /login`.
pub async fn login_form() -> Result<Response, ApiError> {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > FORM_BYTES_MAX {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the form is not valid: {e}")))
}

/// `POST /login`: checks the login form's CSRF pair and the password; opens a session.
pub async fn login(
    State(app): State<App>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let f: LoginForm = form(&body)?;
    if f.csrf.is_empty() || cookie(&headers, LOGIN_CSRF_COOKIE) != Some(f.csrf.as_str()) {
        return login_page(StatusCode::FORBIDDEN, Some("The form expired. Please try again."));
    }
    // Checked before any hashing: a flood of guesses costs a lookup each.
    let account = f.email.trim().to_lowercase();
    let now = app.store.now().0;
    let limited = app.limits.accounts.check(&account, now).and(app.limits.addresses.check(&address, now));
    if let Err(wait) = limited {
        let minutes = wait.div_ceil(60);
        let message =
            format!("Too many failed logins. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" });
        let mut res = login_page(StatusCode::TOO_MANY_REQUESTS, Some(&message))?;
        res.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return Ok(res);
    }
    let Some(ws) = app.store.verify_user(&f.email, &f.password).await? else {
        app.limits.accounts.fail(&account, now);
        app.limits.addresses.fail(&address, now);
        return login_page(StatusCode::UNAUTHORIZED, Some("Wrong email or password."));
    };
    app.limits.accounts.clear(&account);
    let token = app.store.create_session(ws, &f.email).await?;
    let mut res = Redirect::to("/").into_response();
    let max_age = stockpool_store::auth::SESSION_SECONDS;
    for c in [set_cookie(SESSION_COOKIE, &token, max_age), set_cookie(LOGIN_CSRF_COOKIE, "", 0)] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// The session of a form post, with its CSRF token checked.
async fn checked(app: &App, headers: &HeaderMap, body: &Bytes) -> Result<(String, Session), ApiError> {
    let f: CsrfForm = form(body)?;
    let Some((token, s)) = session(app, headers).await? else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "log in first"));
    };
    if f.csrf != s.csrf {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the form's CSRF token does not match this session"));
    }
    Ok((token, s))
}

/// `POST /logout`.
pub async fn logout(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let (token, _) = checked(&app, &headers, &body).await?;
    app.store.end_session(&token).await?;
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `POST /dashboard/orders/{id}/{accept|decline}`.
pub async fn order_action(
    State(app): State<App>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, s) = checked(&app, &headers, &body).await?;
    let action = match action.as_str() {
        "accept" => OrderAction::Accept,
        "decline" => OrderAction::Decline,
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "the dashboard can accept or decline an order")),
    };
    app.store.execute(s.workspace, Command::Order(id, action)).await?;
    Ok(Redirect::to("/").into_response())
}
