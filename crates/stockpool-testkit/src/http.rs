//! A minimal HTTP/1.1 GET over a plain `std::net::TcpStream`, enough for readiness probes
//! and health checks without pulling an HTTP client into every test build.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// Responses larger than this are cut off: probes only need the status line, and a bound
/// keeps a misbehaving server from filling the test's memory.
const RESPONSE_BYTES_MAX: u64 = 1024 * 1024;

/// The status and raw body of one HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code from the status line, such as 200.
    pub status: u16,
    /// Everything after the header block, as sent (chunked bodies are not decoded).
    pub body: String,
}

/// Sends `GET path` to `addr` with `Connection: close` and reads the whole response.
///
/// `timeout` bounds the connect and each read and write.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<HttpResponse> {
    let what = || format!("GET http://{addr}{path}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("{}: connecting", what()))?;
    stream.set_read_timeout(Some(timeout)).with_context(|| format!("{}: setting the read timeout", what()))?;
    stream.set_write_timeout(Some(timeout)).with_context(|| format!("{}: setting the write timeout", what()))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).with_context(|| format!("{}: sending the request", what()))?;

    let mut raw = Vec::new();
    stream
        .take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut raw)
        .with_context(|| format!("{}: reading the response", what()))?;
    let text = String::from_utf8_lossy(&raw);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("{}: the response has no valid status line: {status_line:?}", what()))?;
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok(HttpResponse { status, body })
}
