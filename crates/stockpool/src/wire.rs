//! The bench's load-phase HTTP client: one plain HTTP/1.1 keep-alive connection per bench
//! client, each request written from a head built once, each answer parsed with
//! `httparse` and read to the end of its `Content-Length`.
//!
//! Why not reqwest here (it still seeds the catalog): the bench's clients run on the same
//! two cores as the server, so every microsecond a client spends is taken from the server
//! under test. reqwest's pool, URL handling and header maps cost more CPU per request than
//! this, so the load phase uses a lean client, as `wrk` and `pgbench` are lean. It speaks
//! only what the bench needs: POST with a JSON body, answers with a `Content-Length` (the
//! server never streams an order's answer), `Connection: close` honoured by reconnecting.

use std::io::{self, Write as _};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer head plus body read before the answer is refused.
pub const ANSWER_BYTES_MAX: usize = 1 << 20;
/// Most headers parsed in one answer.
pub const ANSWER_HEADERS_MAX: usize = 32;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a request failed; `kind` names it for the report.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("transport: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection before answering")]
    Closed,
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    #[error("answer over {ANSWER_BYTES_MAX} bytes")]
    TooLarge,
}

impl WireError {
    /// A short name for the bench's error tally.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Connect(_) => "connect",
            WireError::Io(_) | WireError::Closed => "transport",
            WireError::Malformed(_) => "malformed answer",
            WireError::TooLarge => "answer too large",
        }
    }
}

/// Where requests go and the head every request starts with.
#[derive(Debug)]
pub struct Target {
    /// `host:port` to connect to.
    authority: String,
    /// Request line and fixed headers, up to and including `Content-Length: `.
    head: Vec<u8>,
}

impl Target {
    /// A POST target for `path` on `base` (`http://HOST:PORT`), sending `authorization`.
    pub fn post(base: &str, path: &str, authorization: &str) -> anyhow::Result<Target> {
        let url = reqwest::Url::parse(base).map_err(|e| anyhow::anyhow!("the server URL {base:?}: {e}"))?;
        if url.scheme() != "http" {
            anyhow::bail!("the bench's load phase speaks plain HTTP/1.1; {base:?} is not an http:// URL");
        }
        let host = url.host_str().ok_or_else(|| anyhow::anyhow!("the server URL {base:?} has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {authorization}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
        )
        .into_bytes();
        Ok(Target { authority, head })
    }
}

/// One answer: its status and body (borrowed from the connection's buffer).
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

/// One keep-alive connection, opened at the first request and again after any failure.
pub struct Conn {
    target: Arc<Target>,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Conn {
        Conn { target, stream: None, out: Vec::new(), buf: Vec::new() }
    }

    /// Opens the connection now if it is not open (else at the first request).
    pub async fn connect(&mut self) -> Result<(), WireError> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.target.authority).await.map_err(WireError::Connect)?;
            s.set_nodelay(true).map_err(WireError::Connect)?;
            self.stream = Some(s);
        }
        Ok(())
    }

    /// Drops the connection (after a timeout the answer may still arrive; never reuse it).
    pub fn reset(&mut self) {
        self.stream = None;
    }

    /// POSTs `body` and reads the whole answer. Any failure drops the connection.
    pub async fn post(&mut self, body: &[u8]) -> Result<Answer<'_>, WireError> {
        match self.exchange(body).await {
            Ok((status, start, end, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(Answer { status, body: &self.buf[start..end] })
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    /// Returns the status, the body's range in `buf` and whether the server closes.
    async fn exchange(&mut self, body: &[u8]) -> Result<(u16, usize, usize, bool), WireError> {
        self.connect().await?;
        let stream = self.stream.as_mut().expect("connected above");
        self.out.clear();
        self.out.extend_from_slice(&self.target.head);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{}\r\n\r\n", body.len());
        self.out.extend_from_slice(body);
        stream.write_all(&self.out).await?;

        self.buf.clear();
        let (status, start, len, close) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            read_more(stream, &mut self.buf).await?;
        };
        let end = start.checked_add(len).filter(|&e| e <= ANSWER_BYTES_MAX).ok_or(WireError::TooLarge)?;
        while self.buf.len() < end {
            read_more(stream, &mut self.buf).await?;
        }
        if self.buf.len() > end {
            return Err(WireError::Malformed("bytes after the answer's body"));
        }
        Ok((status, start, end, close))
    }
}

/// Reads what the socket has into `buf`, refusing to grow it past the limit.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), WireError> {
    if buf.len() >= ANSWER_BYTES_MAX {
        return Err(WireError::TooLarge);
    }
    buf.reserve(READ_CHUNK);
    if stream.read_buf(buf).await? == 0 {
        return Err(WireError::Closed);
    }
    Ok(())
}

/// Parses an answer's head: `None` until it is complete, then the status, where the body
/// starts, its length, and whether the server will close the connection.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize, bool)>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; ANSWER_HEADERS_MAX];
    let mut res = httparse::Response::new(&mut headers);
    let start = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(WireError::Malformed("not an HTTP/1.1 answer")),
    };
    let status = res.code.ok_or(WireError::Malformed("no status"))?;
    let mut len = None;
    let mut close = res.version == Some(0);
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            len = Some(v.ok_or(WireError::Malformed("bad Content-Length"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(WireError::Malformed("a streamed (chunked) answer"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some((status, start, len.ok_or(WireError::Malformed("no Content-Length"))?, close)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_only_once_complete() {
        let a = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(parse_head(&a[..20]).unwrap().is_none());
        let (status, start, len, close) = parse_head(a).unwrap().unwrap();
        assert_eq!((status, &a[start..start + len], close), (201, &b"{}"[..], false));
    }

    #[test]
    fn chunked_or_lengthless_answers_are_refused_and_close_is_seen() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(chunked), Err(WireError::Malformed(_))));
        let lengthless = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(parse_head(lengthless), Err(WireError::Malformed(_))));
        let close = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_head(close).unwrap().unwrap(), (503, close.len(), 0, true));
    }

    #[test]
    fn only_plain_http_targets_are_accepted() {
        let t = Target::post("http://127.0.0.1:8080/", "/api/v1/orders", "Bearer x").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert!(String::from_utf8(t.head).unwrap().starts_with("POST /api/v1/orders HTTP/1.1\r\n"));
        assert!(Target::post("https://example.com", "/", "Bearer x").is_err());
    }
}
