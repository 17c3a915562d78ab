//! `WebhookReceiver`: a stand-in for a seller's webhook endpoint on 127.0.0.1:0, for the
//! sync tests that need a receiver misbehaving on purpose.
//!
//! It speaks just enough HTTP/1.1 by hand (one request a connection, answered with
//! `Connection: close`) to do what a framework would not let it: answer after a delay
//! longer than the client waits, or read a request and close the connection without an
//! answer. What to do with each request is the test's `Responder`; every request is
//! recorded, with the instant it was read and what the responder chose, before the answer
//! goes out. Threads only (no runtime), so both the async API tests and the binary's
//! synchronous tests can use it. Dropping the receiver stops it.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Longest request head read; a push's head is a few hundred bytes.
const HEAD_BYTES_MAX: usize = 16 * 1024;

/// Largest request body read; a push's body is about two hundred bytes.
const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Longest the receiver waits for a request's bytes before giving up on the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answers this status, with `Retry-After: N` when given.
    Status { status: u16, retry_after_seconds: Option<u32> },
    /// Waits this long, then answers 200 (if the client still listens).
    Slow(Duration),
    /// Closes the connection without answering.
    Drop,
}

impl Answer {
    pub const OK: Answer = Answer::Status { status: 200, retry_after_seconds: None };

    /// A plain status.
    pub fn status(status: u16) -> Answer {
        Answer::Status { status, retry_after_seconds: None }
    }

    /// Whether the receiver took the request in, as a channel would: it answered 2xx, or
    /// it was slow but did answer 200 in the end (the client may have given up).
    pub fn applied(&self) -> bool {
        match self {
            Answer::Status { status, .. } => (200..300).contains(status),
            Answer::Slow(_) => true,
            Answer::Drop => false,
        }
    }

    /// Whether the client hears a 2xx: the answer a push is settled `ok` on.
    pub fn heard_ok(&self) -> bool {
        matches!(self, Answer::Status { status: 200..=299, .. })
    }
}

/// One request as the receiver read it.
#[derive(Clone, Debug)]
pub struct Received {
    /// When its last byte was read.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answer: Answer,
}

impl Received {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Chooses the answer to each request, given the request (its `answer` is not set yet:
/// it reads `Answer::OK`) and how many came before it.
pub type Responder = Box<dyn FnMut(&Received, usize) -> Answer + Send>;

/// A loopback webhook receiver; see the module comment.
pub struct WebhookReceiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl WebhookReceiver {
    /// A receiver answering 200 to everything.
    pub fn start_ok() -> anyhow::Result<WebhookReceiver> {
        WebhookReceiver::start(Box::new(|_, _| Answer::OK))
    }

    /// A receiver on 127.0.0.1:0 whose answers `responder` chooses.
    pub fn start(responder: Responder) -> anyhow::Result<WebhookReceiver> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding the webhook receiver to 127.0.0.1:0")?;
        let addr = listener.local_addr().context("reading the receiver's address")?;
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let responder = Arc::new(Mutex::new(responder));
        let (g, s) = (got.clone(), stop.clone());
        let accept = std::thread::Builder::new()
            .name("webhook-receiver".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (g, r) = (g.clone(), responder.clone());
                    // A connection that cannot get a thread is simply dropped: the client
                    // sees a closed connection, which is one of the faults anyway.
                    let _ = std::thread::Builder::new().name("webhook-conn".into()).spawn(move || serve(conn, &g, &r));
                }
            })
            .context("spawning the receiver's accept thread")?;
        Ok(WebhookReceiver { url: format!("http://{addr}/push"), got, stop, accept: Some(accept), addr })
    }

    /// The URL to give a `webhook` store.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in the order they were read.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request from `conn`, records it and answers it as the responder says.
fn serve(mut conn: TcpStream, got: &Mutex<Vec<Received>>, responder: &Mutex<Responder>) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let Some(mut request) = read_request(&mut conn) else { return };
    // Choose and record under one lock, so that the recorded order is the order of choice.
    let answer = {
        let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
        let answer = (responder.lock().unwrap_or_else(|e| e.into_inner()))(&request, got.len());
        request.answer = answer;
        got.push(request);
        answer
    };
    let (status, retry_after) = match answer {
        Answer::Drop => return,
        Answer::Slow(d) => {
            std::thread::sleep(d);
            (200, None)
        }
        Answer::Status { status, retry_after_seconds } => (status, retry_after_seconds),
    };
    let body = "answer";
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    if let Some(r) = retry_after {
        head.push_str(&format!("retry-after: {r}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Answer",
    }
}

/// One HTTP/1.1 request with a `Content-Length` body, or `None` if the client broke off.
fn read_request(conn: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > HEAD_BYTES_MAX {
            return None;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(BODY_BYTES_MAX);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Received { at: Instant::now(), method, path, headers, body, answer: Answer::OK })
}

/// A seeded generator for responders that draw faults (SplitMix64), so that a fault run
/// is the same run every time.
#[derive(Clone, Debug)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The token-bucket check of a store's requests: for the instants `at` (in order), the
/// largest excess of any window over `burst + rate_per_second × window`, allowing `slack`
/// requests for the jitter between when a request was let go and when it was read. `None`
/// when no window exceeds it; otherwise the worst window's (count, milliseconds).
pub fn rate_excess(at: &[Instant], burst: u32, rate_per_second: u32, slack: u32) -> Option<(usize, u128)> {
    let mut worst = None;
    for i in 0..at.len() {
        for j in i..at.len() {
            let window = at[j].duration_since(at[i]);
            let count = j - i + 1;
            let allowed =
                u128::from(burst) + u128::from(rate_per_second) * window.as_millis() / 1000 + u128::from(slack);
            if count as u128 > allowed {
                worst = Some((count, window.as_millis()));
            }
        }
    }
    worst
}
