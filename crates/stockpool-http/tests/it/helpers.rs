//! `spawn_app`: the real `Application` on 127.0.0.1:0 over a fresh database, and a
//! `TestApp` with request helpers. `both!` writes each test once for both backends.

use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use stockpool_core::Timestamp;
use stockpool_http::Application;
use stockpool_store::Storage;
use stockpool_testkit::PgCluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub store: Storage,
    pub database_url: String,
    /// Milliseconds since the epoch the server reads as now.
    pub clock: Arc<AtomicI64>,
    _dir: Option<tempfile::TempDir>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn database(backend: Backend, name: &str) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (format!("sqlite://{}/stockpool.db", dir.path().display()), Some(dir))
        }
        Backend::Postgres => {
            let name = name.to_string();
            let url = tokio::task::spawn_blocking(move || PgCluster::shared().fresh_database_url(&name))
                .await
                .unwrap()
                .unwrap();
            (url, None)
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let (database_url, dir) = database(backend, "api").await;
    spawn_on(database_url, dir).await
}

pub async fn spawn_on(database_url: String, dir: Option<tempfile::TempDir>) -> TestApp {
    spawn_on_with(database_url, dir, stockpool_worker::WorkerOptions::default()).await
}

/// `spawn_app` with the workers tuned (the fault tests shorten the channel timeouts).
pub async fn spawn_app_with(backend: Backend, options: stockpool_worker::WorkerOptions) -> TestApp {
    let (database_url, dir) = database(backend, "api").await;
    spawn_on_with(database_url, dir, options).await
}

pub async fn spawn_on_with(
    database_url: String,
    dir: Option<tempfile::TempDir>,
    options: stockpool_worker::WorkerOptions,
) -> TestApp {
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let clock = Arc::new(AtomicI64::new(start));
    let c = clock.clone();
    let (store, _writer) = Storage::open(&database_url, Arc::new(move || Timestamp(c.load(Ordering::SeqCst))))
        .await
        .expect("database opens");
    let token = store.create_token("test").await.unwrap();
    // The workers' clock runs on by itself (their buckets refill by it) and moves with
    // `advance_seconds` as the server's does.
    let moved = clock.clone();
    let worker_clock: stockpool_store::Clock = Arc::new(move || {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        Timestamp(wall + (moved.load(Ordering::SeqCst) - start))
    });
    let app = Application::build(store.clone(), "127.0.0.1:0")
        .await
        .unwrap()
        .with_worker_options(options)
        .with_worker_clock(worker_clock);
    let base = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp { base, token, client: reqwest::Client::new(), store, database_url, clock, _dir: dir, _stop: stop }
}

/// A response: status and JSON body (problem details included).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

impl TestApp {
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Res {
        self.send_as(&self.token.clone(), method, path, body).await
    }

    pub async fn send_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Res {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method.parse().unwrap(), url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        to_res(req.send().await.expect("request is sent")).await
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.send("POST", path, Some(body)).await
    }

    /// Every sync record of the workspace (of `store` when given), oldest first, read
    /// page by page through `next_cursor`.
    pub async fn sync_records(&self, store: Option<&str>) -> Vec<Value> {
        let filter = store.map(|s| format!("store={s}&")).unwrap_or_default();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/sync-records?{filter}limit=1000&cursor={c}"),
                None => format!("/api/v1/sync-records?{filter}limit=1000"),
            };
            let page = self.get(&path).await;
            out.extend(page.body["data"].as_array().expect("a page of sync records").iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Another workspace's token on the same server.
    pub async fn other_token(&self) -> String {
        self.store.create_token("other").await.unwrap()
    }

    /// Moves the server's clock forward.
    pub fn advance_seconds(&self, s: i64) {
        self.clock.fetch_add(s * 1000, Ordering::SeqCst);
    }

    /// The `stockpool check` findings of the database.
    pub async fn check(&self) -> Vec<String> {
        self.store.check().await.unwrap()
    }
}

pub async fn to_res(r: reqwest::Response) -> Res {
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Res { status, body, content_type }
}

/// Asserts a response's status, printing the body when it differs.
#[track_caller]
pub fn expect(res: &Res, status: u16) -> &Value {
    assert_eq!(res.status, status, "body: {}", res.body);
    &res.body
}

/// Writes `async fn $name(app: TestApp)` once and runs it as a test on each backend.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
}

/// The pottery of SPEC section 6's examples: warehouse `main`, `MUG-RED` with 12, Etsy.
pub async fn seed_mug(app: &TestApp) {
    expect(&app.post("/api/v1/warehouses", serde_json::json!({"code":"main","name":"Main warehouse"})).await, 201);
    expect(
        &app.post("/api/v1/items", serde_json::json!({"sku":"MUG-RED","name":"Red mug","kind":"product","unit":"pcs"}))
            .await,
        201,
    );
    expect(
        &app.post(
            "/api/v1/stock/adjustments",
            serde_json::json!({"sku":"MUG-RED","warehouse":"main","delta":12,"reason":"received"}),
        )
        .await,
        201,
    );
    expect(
        &app.post(
            "/api/v1/stores",
            serde_json::json!({"code":"etsy","name":"Etsy shop","channel":"etsy","schedule":"realtime"}),
        )
        .await,
        201,
    );
    expect(
        &app.post(
            "/api/v1/listings",
            serde_json::json!({"store":"etsy","external_id":"1234567","store_sku":"MUG-RED","sku":"MUG-RED"}),
        )
        .await,
        201,
    );
}

/// The value of the unlabelled series `name` on `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> i64 {
    let text = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Asserts an RFC 9457 problem with `status` whose detail says `says`.
#[track_caller]
pub fn problem(res: &Res, status: u16, says: &str) {
    assert_eq!(res.status, status, "body: {}", res.body);
    assert_eq!(res.content_type, "application/problem+json", "body: {}", res.body);
    assert_eq!(res.body["status"], status);
    let detail = res.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(says), "{detail:?} should say {says:?}");
}
