//! The shared HTTP client and what a channel's answer means.
//!
//! One `reqwest::Client` serves every connector of a process (its connection pool is the
//! point of sharing it). Every call has a timeout, redirects never leave the origin, and
//! what comes back is read within a bound: a channel's answer can be slow, huge or
//! hostile, and none of that may stall a dispatcher or fill its memory. The helpers here
//! turn a status, a `Retry-After` and a body into an `Attempt`'s parts, the same way for
//! every connector.

use std::error::Error as StdError;
use std::time::{Duration, UNIX_EPOCH};

use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode, Url};
use stockpool_core::Timestamp;

use crate::error::ConfigError;
use crate::model::AttemptResult;

/// Longest one call to a channel may take, from connecting to the last byte of the
/// answer. Channels answer a push in well under a second; ten seconds lets a slow one
/// finish without letting a hung one hold a store's pushes (the dispatcher retries a
/// timed-out call with backoff, as SPEC section 5 asks).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest the TCP connect (and, for https, its TLS handshake) may take. Shorter than
/// `REQUEST_TIMEOUT`: a host that does not accept within five seconds is down, and
/// finding out early leaves the call's time for a slow answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection is kept. Realtime stores push every few seconds
/// and reuse it; a store pushed every ten minutes would only find it closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most redirects one call follows. A channel that redirects at all does so once (a moved
/// path); a loop must end.
pub const REDIRECTS_MAX: usize = 3;

/// Most bytes of an answer's body that are read. Only its start is kept (as a sync
/// record's `detail`); reading on would let a receiver fill our memory.
pub const RESPONSE_BODY_BYTES_MAX: usize = 16 * 1024;

/// Most characters of a channel's message kept in an attempt's `detail`: enough for any
/// error sentence, short enough that sync records stay small.
pub const DETAIL_CHARS_MAX: usize = 500;

/// Longest wait a `Retry-After` can impose, one hour. A longer one (or a date far ahead)
/// is clamped, so a confused receiver cannot park a store for days; the dispatcher's own
/// backoff takes over if the channel is still unhappy after the hour.
pub const RETRY_AFTER_MS_MAX: i64 = 3_600_000;

/// The `User-Agent` of every call, so a channel's logs can tell who is calling.
pub const USER_AGENT: &str = concat!("stockpool/", env!("CARGO_PKG_VERSION"));

/// The timeouts of a client; [`http_client`] uses the named defaults. Tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// See [`CONNECT_TIMEOUT`].
    pub connect: Duration,
    /// The whole call, a backstop behind each connector's per-call timeout. See
    /// [`REQUEST_TIMEOUT`].
    pub request: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> ClientTimeouts {
        ClientTimeouts { connect: CONNECT_TIMEOUT, request: REQUEST_TIMEOUT }
    }
}

/// The client every connector shares, with the default timeouts.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    http_client_with(ClientTimeouts::default())
}

/// The header naming the node that sent a call (several `serve` processes on one
/// database): operators and receivers can tell which node pushed what.
pub const NODE_HEADER: &str = "x-stockpool-node";

/// The client every connector of node `node` shares: [`http_client`]'s, and every call
/// names the node in [`NODE_HEADER`]. A node id that is not a valid header value is
/// refused.
pub fn http_client_for_node(node: &str) -> Result<reqwest::Client, ConfigError> {
    http_client_for_node_with(node, ClientTimeouts::default())
}

/// [`http_client_for_node`] with `timeouts` instead of the defaults (the fault tests
/// shorten them).
pub fn http_client_for_node_with(node: &str, timeouts: ClientTimeouts) -> Result<reqwest::Client, ConfigError> {
    let value = reqwest::header::HeaderValue::from_str(node).map_err(|_| ConfigError::NodeId(node.to_string()))?;
    build(timeouts, Some(value))
}

/// The client every connector shares: `User-Agent: stockpool/<version>`, connect and
/// overall timeouts, and redirects followed only when they keep the method and body (307,
/// 308), stay on the origin the call started at, and number at most [`REDIRECTS_MAX`].
pub fn http_client_with(timeouts: ClientTimeouts) -> Result<reqwest::Client, ConfigError> {
    build(timeouts, None)
}

fn build(timeouts: ClientTimeouts, node: Option<reqwest::header::HeaderValue>) -> Result<reqwest::Client, ConfigError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(node) = node {
        headers.insert(NODE_HEADER, node);
    }
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .redirect(redirect_policy())
        .build()
        .map_err(ConfigError::HttpClient)
}

/// Redirects are followed only when they keep the method and the body (307 and 308) and
/// stay on the origin (scheme, host and port) the call started at, at most
/// [`REDIRECTS_MAX`] times. A 301, 302 or 303 would turn a push into a `GET` whose 200
/// says nothing about the quantity, and another origin would receive a signed body meant
/// for the store's receiver. Any other redirect is not followed: the 3xx comes back as
/// the answer, and the push fails with the `Location` in its detail.
fn redirect_policy() -> Policy {
    Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status(), StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT);
        let same_origin = attempt.previous().first().is_some_and(|first| same_origin(first, attempt.url()));
        if keeps_body && same_origin && attempt.previous().len() <= REDIRECTS_MAX {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// What a push's answer means, the same for every channel (SPEC section 5a): 2xx is
/// done; 429 holds the whole store; 5xx, 408 (the receiver timed out), 409 (a conflict
/// that may clear) and 425 are tried again; any other status (4xx, or a redirect we do
/// not follow) fails this listing. Connectors with a token to refresh handle 401 before
/// asking this.
pub(crate) fn result_for_status(status: StatusCode, retry_after_ms: Option<i64>) -> AttemptResult {
    match status.as_u16() {
        200..=299 => AttemptResult::Ok,
        429 => AttemptResult::Throttled { retry_after_ms },
        408 | 409 | 425 | 500..=599 => AttemptResult::Retry { retry_after_ms },
        _ => AttemptResult::Failed,
    }
}

/// The delay a `Retry-After` value asks for, in milliseconds: delay-seconds, or an
/// HTTP-date measured from `now`. A value that is neither (or a date already past, as
/// zero) is read as absent, and the wait is clamped to [`RETRY_AFTER_MS_MAX`].
pub(crate) fn retry_after_ms(value: &str, now: Timestamp) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "very long", not "absent".
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        let ms = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1000);
        return Some(ms.min(RETRY_AFTER_MS_MAX));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Some(at_ms.saturating_sub(now.0).clamp(0, RETRY_AFTER_MS_MAX))
}

/// A channel's message cut to [`DETAIL_CHARS_MAX`] characters (marked with `…` when cut),
/// or `None` when it says nothing.
pub(crate) fn truncate_detail(message: &str) -> Option<String> {
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    match message.char_indices().nth(DETAIL_CHARS_MAX) {
        None => Some(message.to_string()),
        Some((cut, _)) => Some(format!("{}…", &message[..cut])),
    }
}

/// The start of an answer's body, at most [`RESPONSE_BODY_BYTES_MAX`] bytes, as text
/// (invalid UTF-8 replaced). A body that breaks off (timeout, reset) yields what came;
/// the status has already said what the answer means.
pub(crate) async fn read_body_start(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < RESPONSE_BODY_BYTES_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_BODY_BYTES_MAX - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// What went wrong on a call that got no answer, as an attempt's result and detail:
/// always `Retry` (SPEC section 5a: timeouts and connection errors are tried again). The
/// URL is left out of the detail: a receiver's URL may carry a token of its own.
pub(crate) fn transport_failure(error: reqwest::Error, timeout: Duration) -> (AttemptResult, String) {
    let error = error.without_url();
    let detail = if error.is_timeout() {
        format!("the channel did not answer within {} ms", timeout.as_millis())
    } else if error.is_connect() {
        format!("could not connect to the channel: {}", error_chain(&error))
    } else {
        format!("the call failed before an answer came: {}", error_chain(&error))
    };
    (AttemptResult::Retry { retry_after_ms: None }, detail)
}

/// An error and its sources, joined with ": ", without repeating a source whose text its
/// parent already includes.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-05-01T12:00:00Z.
    const NOW: Timestamp = Timestamp(1_714_564_800_000);

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(retry_after_ms("3", NOW), Some(3000));
        assert_eq!(retry_after_ms(" 0 ", NOW), Some(0));
        assert_eq!(retry_after_ms("86400", NOW), Some(RETRY_AFTER_MS_MAX));
        assert_eq!(retry_after_ms("99999999999999999999999", NOW), Some(RETRY_AFTER_MS_MAX));
    }

    #[test]
    fn retry_after_as_a_date() {
        assert_eq!(retry_after_ms("Wed, 01 May 2024 12:00:30 GMT", NOW), Some(30_000));
        // A date in the past means "now".
        assert_eq!(retry_after_ms("Wed, 01 May 2024 11:00:00 GMT", NOW), Some(0));
        assert_eq!(retry_after_ms("Thu, 01 May 2025 12:00:00 GMT", NOW), Some(RETRY_AFTER_MS_MAX));
    }

    #[test]
    fn retry_after_unreadable_is_absent() {
        for value in ["", "soon", "-5", "1.5", "Wed, 32 May 2024 12:00:30 GMT", "2024-05-01T12:00:30Z"] {
            assert_eq!(retry_after_ms(value, NOW), None, "{value:?}");
        }
    }

    #[test]
    fn statuses() {
        let check = |status: u16, expected: AttemptResult| {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(result_for_status(status, Some(5)), expected, "{status}");
        };
        check(200, AttemptResult::Ok);
        check(204, AttemptResult::Ok);
        check(429, AttemptResult::Throttled { retry_after_ms: Some(5) });
        check(503, AttemptResult::Retry { retry_after_ms: Some(5) });
        check(500, AttemptResult::Retry { retry_after_ms: Some(5) });
        check(409, AttemptResult::Retry { retry_after_ms: Some(5) });
        check(408, AttemptResult::Retry { retry_after_ms: Some(5) });
        check(400, AttemptResult::Failed);
        check(401, AttemptResult::Failed);
        check(404, AttemptResult::Failed);
        check(302, AttemptResult::Failed);
    }

    #[test]
    fn details_are_bounded() {
        assert_eq!(truncate_detail("  \n "), None);
        assert_eq!(truncate_detail(" sku unknown \n").as_deref(), Some("sku unknown"));
        let long = "é".repeat(DETAIL_CHARS_MAX + 10);
        let cut = truncate_detail(&long).unwrap();
        assert_eq!(cut.chars().count(), DETAIL_CHARS_MAX + 1);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(DETAIL_CHARS_MAX);
        assert_eq!(truncate_detail(&exact), Some(exact));
    }

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(USER_AGENT, format!("stockpool/{}", env!("CARGO_PKG_VERSION")));
    }
}
