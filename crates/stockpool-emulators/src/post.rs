//! The one HTTP request an emulator makes: a webhook `POST` to the server under test.
//!
//! The emulators have no HTTP client library (tidy: only stockpool-channels and the
//! binary have one), and a webhook is one request on a fresh connection, so they write
//! it themselves: plain HTTP/1.1 on loopback, `Connection: close`, bounded in time and in
//! the answer's size.

use std::time::Duration;

/// Longest a webhook post may take, connection to answer.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of an answer the site's client reads.
const ANSWER_BYTES_MAX: u64 = 1024 * 1024;

/// A plain HTTP/1.1 `POST` of `body` to `url` (`http://host:port/path`), `Connection:
/// close`; the status answered. Bounded by [`POST_TIMEOUT`].
pub(crate) async fn post(url: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid("emulators post to http:// URLs only"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        stream.take(ANSWER_BYTES_MAX).read_to_end(&mut answer).await?;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "the answer has no status line"))?;
        Ok::<u16, std::io::Error>(status)
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the webhook post timed out"))?
}
