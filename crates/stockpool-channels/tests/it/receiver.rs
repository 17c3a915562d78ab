//! Loopback receivers for the push tests, and the fixtures they share.
//!
//! `Receiver` is a small axum server on `127.0.0.1:0` that records every request and
//! answers from a script; `Silent` accepts connections and never answers (for the
//! timeout); `refused_url` names a port nobody listens on. Servers are stopped when their
//! value is dropped, so no test leaves a task behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use stockpool_channels::{http_client, PushItem, StoreSettings, WebhookConnector};
use stockpool_core::{ListingId, Timestamp};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The store's secret in every test.
pub const SECRET: &str = "s3cret";

/// 2024-05-01T12:00:00.000Z, the caller's clock in every test.
pub const NOW: Timestamp = Timestamp(1_714_564_800_000);

/// A timeout long enough for any loopback answer on a loaded machine.
pub const GENEROUS_TIMEOUT: Duration = Duration::from_secs(20);

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: String::new() }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Vec<Reply>>,
}

/// A receiver whose n-th request gets the n-th reply, and every later one the last.
pub struct Receiver {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(replies: Vec<Reply>) -> Receiver {
        assert!(!replies.is_empty(), "a receiver needs at least one reply");
        let shared = Shared { requests: Arc::default(), replies: Arc::new(replies) };
        let requests = shared.requests.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(record).with_state(shared);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { base, requests, task }
    }

    /// The URL stores push to.
    pub fn url(&self) -> String {
        format!("{}/push", self.base)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let n = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(Recorded { method, path: uri.path().to_string(), headers, body: body.to_vec() });
        requests.len() - 1
    };
    let reply = &shared.replies[n.min(shared.replies.len() - 1)];
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    response.body(Body::from(reply.body.clone())).unwrap()
}

/// Accepts connections and holds them open without ever answering.
pub struct Silent {
    pub url: String,
    task: JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Silent { url, task }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL on a loopback port that was free a moment ago and is closed now.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/push")
}

pub fn settings(url: &str) -> StoreSettings {
    StoreSettings {
        code: "hook".to_string(),
        url: Some(url.to_string()),
        secret: Some(SECRET.to_string()),
        ..StoreSettings::default()
    }
}

pub fn webhook_with_timeout(url: &str, timeout: Duration) -> WebhookConnector {
    WebhookConnector::new(&settings(url), http_client().unwrap(), timeout).unwrap()
}

pub fn webhook(url: &str) -> WebhookConnector {
    webhook_with_timeout(url, GENEROUS_TIMEOUT)
}

/// The n-th listing of the tests' store.
pub fn item(n: u64, quantity: i64) -> PushItem {
    PushItem {
        listing: ListingId(n),
        public_id: format!("lst_1_{n}"),
        external_id: format!("ext-{n}"),
        store_sku: format!("MUG-{n}-S"),
        sku: format!("MUG-{n}"),
        quantity,
        sell_when_out_of_stock: false,
        show_backorder: false,
        settled: None,
    }
}
