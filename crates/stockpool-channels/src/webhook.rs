//! The generic `webhook` channel (SPEC sections 5 and 5a): a seller's own site or script.
//!
//! Out: one signed JSON POST per listing to the store's `url`,
//! `{"store","listing","store_sku","sku","quantity","sent_at"}` with
//! `X-Stockpool-Signature: sha256=<hex HMAC-SHA256 of the body with the store secret>`.
//! In: `POST /webhooks/webhook/{store}` carries the body of `POST /api/v1/orders` without
//! `store`, signed the same way; `{"external_id": ..., "cancel": true}` cancels.
//!
//! The receiver is the seller's, so nothing about its rate is documented: we declare a
//! modest one (`WEBHOOK_LIMITS`) and let its 429s slow us further.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stockpool_core::{Channel, Payment, Qty, Timestamp};

use crate::error::{ConfigError, ParseError, SignatureError};
use crate::http::{read_body_start, result_for_status, retry_after_ms, transport_failure, truncate_detail};
use crate::model::{Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PushItem};
use crate::sign::{hmac_sha256, verify_hmac_sha256, TAG_BYTES};
use crate::time::rfc3339;
use crate::{BoxFuture, Connector, HeaderMap, StoreSettings};

/// The header that signs our pushes and the orders the store sends us.
pub const SIGNATURE_HEADER: &str = "x-stockpool-signature";

/// What the signature header's value starts with; the only scheme accepted.
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// The header a receiver may set to name a delivery. Optional: without it (or with one
/// that is unusable, see [`DELIVERY_ID_CHARS_MAX`]) a redelivery is still harmless, since
/// the intake takes each `(store, external_id)` once.
pub const DELIVERY_HEADER: &str = "x-stockpool-delivery";

/// Longest delivery id kept; a longer one is treated as absent rather than cut, because
/// two ids cut to the same prefix would wrongly look like one delivery.
pub const DELIVERY_ID_CHARS_MAX: usize = 200;

/// What we promise a seller's receiver: one listing a request (SPEC section 5), at most
/// ten requests a second with a burst of ten. A small shop's endpoint takes that easily,
/// and a full "Sync now" of a few thousand listings still finishes within minutes. Each
/// request is one token of the rate (`call_per_item`); at this rate a batch is one listing,
/// so a slow answer never holds back a request the bucket already let go (see `limits_at`
/// for the batches of a faster store).
pub const WEBHOOK_LIMITS: ChannelLimits = ChannelLimits {
    batch_max: 1,
    read_batch_max: 0,
    requests_per_second_milli: 10_000,
    burst: 10,
    call_per_item: true,
};

/// Most listings in one batch (and one burst) at a high `push_rate_per_second`.
pub const WEBHOOK_BATCH_MAX: usize = 50;

/// The limits at the store's `push_rate_per_second`: that rate, and a burst (and batch)
/// of a twentieth of a second's worth, between `WEBHOOK_LIMITS`' ten and
/// `WEBHOOK_BATCH_MAX`. A batch is settled with one commit, so a fast store needs batches
/// big enough for the commits to keep up; its requests still go one after another. The
/// price: when a batch's first answers are slow, its last requests go late and can meet
/// the next batch's, a moment over the rate (docs/limits.md); sending a batch's requests
/// at once would close that and is the next step.
pub fn limits_at(push_rate_per_second: Option<u32>) -> ChannelLimits {
    match push_rate_per_second {
        Some(rate) => {
            let rate = rate.max(1);
            let burst = (rate / 20).clamp(WEBHOOK_LIMITS.burst, WEBHOOK_BATCH_MAX as u32);
            ChannelLimits {
                requests_per_second_milli: u64::from(rate) * 1000,
                burst,
                // Up to 100 a second one listing a batch keeps up (as at the default rate).
                batch_max: if rate <= 100 { 1 } else { burst as usize },
                ..WEBHOOK_LIMITS
            }
        }
        None => WEBHOOK_LIMITS,
    }
}

/// The connector of one `webhook` store.
#[derive(Clone)]
pub struct WebhookConnector {
    store: String,
    /// Where pushes go; `None` for a connector built only to take webhooks (`receiving`).
    url: Option<Url>,
    secret: Vec<u8>,
    client: reqwest::Client,
    request_timeout: Duration,
    limits: ChannelLimits,
}

/// The secret never reaches a log.
impl fmt::Debug for WebhookConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConnector")
            .field("store", &self.store)
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The body of a push, fields in SPEC section 5's order.
#[derive(Serialize)]
struct PushBody<'a> {
    store: &'a str,
    listing: &'a str,
    store_sku: &'a str,
    sku: &'a str,
    quantity: Qty,
    sent_at: &'a str,
}

impl WebhookConnector {
    /// A connector for the store `settings` describe, which needs its `url` (absolute,
    /// `http`) and `secret`. `base_url` and `credentials` do not apply to this channel and
    /// are ignored. Every push gives up after `request_timeout` (production:
    /// `REQUEST_TIMEOUT`).
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<WebhookConnector, ConfigError> {
        let store = settings.code.clone();
        let url_text = settings.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let url_text = url_text.ok_or_else(|| ConfigError::MissingUrl { store: store.clone() })?;
        let bad_url = |reason: String| ConfigError::BadUrl { store: store.clone(), url: url_text.to_string(), reason };
        let url = Url::parse(url_text).map_err(|e| bad_url(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(bad_url(format!("the scheme is {other}, and only http and https are supported"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad_url("it names no host".to_string()));
        }
        let secret = settings.secret.as_deref().filter(|s| !s.is_empty());
        let secret = secret.ok_or_else(|| ConfigError::MissingSecret { store: store.clone() })?;
        let limits = limits_at(settings.push_rate_per_second);
        Ok(WebhookConnector {
            store,
            url: Some(url),
            secret: secret.as_bytes().to_vec(),
            client,
            request_timeout,
            limits,
        })
    }

    /// A connector that only takes the store's webhooks (verify, parse, delivery id): it
    /// needs the `secret` alone, so a store whose `url` cannot be pushed to (missing or
    /// malformed) still takes its orders in. It refuses to push.
    pub fn receiving(settings: &StoreSettings, client: reqwest::Client) -> Result<WebhookConnector, ConfigError> {
        let store = settings.code.clone();
        let secret = settings.secret.as_deref().filter(|s| !s.is_empty());
        let secret = secret.ok_or_else(|| ConfigError::MissingSecret { store: store.clone() })?;
        Ok(WebhookConnector {
            store,
            url: None,
            secret: secret.as_bytes().to_vec(),
            client,
            request_timeout: crate::REQUEST_TIMEOUT,
            limits: WEBHOOK_LIMITS,
        })
    }

    /// The `X-Stockpool-Signature` value for `body`: `sha256=` and the lowercase hex digest.
    pub fn signature(&self, body: &[u8]) -> String {
        format!("{SIGNATURE_PREFIX}{}", hex::encode(hmac_sha256(&self.secret, body)))
    }

    async fn push_one(&self, item: &PushItem, sent_at: &str, now: Timestamp) -> Attempt {
        let Some(url) = &self.url else {
            return Attempt {
                result: AttemptResult::Failed,
                status_code: None,
                detail: Some(format!("store {}'s connector was built to take webhooks only, not to push", self.store)),
                duration_ms: 0,
            };
        };
        let body = PushBody {
            store: &self.store,
            listing: &item.public_id,
            store_sku: &item.store_sku,
            sku: &item.sku,
            quantity: item.quantity,
            sent_at,
        };
        let body = serde_json::to_vec(&body).expect("a struct of strings and an integer always serializes");
        let signature = self.signature(&body);
        let started = tokio::time::Instant::now();
        let sent = self
            .client
            .post(url.clone())
            .timeout(self.request_timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let (result, status_code, detail) = match sent {
            Err(error) => {
                let (result, detail) = transport_failure(error, self.request_timeout);
                (result, None, Some(detail))
            }
            Ok(response) => {
                let status = response.status();
                let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let retry_after = header(RETRY_AFTER).and_then(|v| retry_after_ms(&v, now));
                let location = header(LOCATION);
                let message = read_body_start(response).await;
                let result = result_for_status(status, retry_after);
                let detail = match result {
                    AttemptResult::Ok => None,
                    _ if status.is_redirection() => Some(format!(
                        "the receiver redirected to {}; stockpool follows only 307 and 308 redirects that stay on \
                         the store's host and port",
                        location.as_deref().unwrap_or("nowhere (no Location header)")
                    )),
                    _ => truncate_detail(&message)
                        .or_else(|| Some(format!("the receiver answered {status} without a message"))),
                };
                (result, Some(status.as_u16()), detail)
            }
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            store = %self.store, listing = %item.listing, quantity = item.quantity,
            result = result.as_str(), status_code, duration_ms, "webhook push"
        );
        Attempt { result, status_code, detail, duration_ms }
    }
}

impl Connector for WebhookConnector {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    /// `WEBHOOK_LIMITS`, at the store's `push_rate_per_second` when it sets one: SPEC names
    /// no rate for a seller's own site, so the seller may choose it.
    fn limits(&self) -> ChannelLimits {
        self.limits
    }

    /// One request per item, one after another. Once the receiver answers 429, the rest
    /// of the batch is not sent: each gets a `Throttled` attempt without a status code,
    /// since the whole store waits. Every other outcome leaves the next item unaffected.
    /// The receiver sees none of `settled`, `sell_when_out_of_stock` or `show_backorder`:
    /// SPEC section 5 fixes its body, and the zero policy already chose the quantity.
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let sent_at = rfc3339(now);
            let mut attempts = Vec::with_capacity(batch.len());
            let mut throttled = None;
            for item in batch {
                if let Some(retry_after_ms) = throttled {
                    attempts.push(Attempt {
                        result: AttemptResult::Throttled { retry_after_ms },
                        status_code: None,
                        detail: Some(
                            "not sent: the receiver answered 429 to an earlier listing of this batch, so the store \
                             waits"
                                .to_string(),
                        ),
                        duration_ms: 0,
                    });
                    continue;
                }
                let attempt = self.push_one(item, &sent_at, now).await;
                if let AttemptResult::Throttled { retry_after_ms } = attempt.result {
                    throttled = Some(retry_after_ms);
                }
                attempts.push(attempt);
            }
            attempts
        })
    }

    /// Exactly one `X-Stockpool-Signature: sha256=<64 hex digits, either case>`, checked
    /// against the HMAC-SHA256 of the raw body in constant time.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        const HEADER: &str = "X-Stockpool-Signature";
        let mut values = headers.get_all(SIGNATURE_HEADER).iter();
        let value = values.next().ok_or(SignatureError::Missing { header: HEADER })?;
        if values.next().is_some() {
            return Err(SignatureError::Repeated { header: HEADER });
        }
        let malformed = SignatureError::Malformed { header: HEADER, digits: 2 * TAG_BYTES };
        let value = value.to_str().map_err(|_| malformed.clone())?;
        let digest = value
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(SignatureError::WrongPrefix { header: HEADER, prefix: SIGNATURE_PREFIX })?;
        if digest.len() != 2 * TAG_BYTES {
            return Err(malformed);
        }
        let tag = hex::decode(digest).map_err(|_| malformed)?;
        if verify_hmac_sha256(&self.secret, body, &tag) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch { header: HEADER })
        }
    }

    /// The order API's body without `store` (a `store` that names this store is
    /// tolerated), or `{"external_id": ..., "cancel": true}`. Ids may be strings or whole
    /// numbers. Unknown fields are ignored. Quantities must be at least 1 here; their
    /// upper bound, like the number of lines, is the order path's (the core's `Limits`).
    fn parse_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        let _ = headers;
        // Two steps, so that syntax and shape get their own messages: serde would read an
        // array as a struct's fields in order and complain about its first element.
        let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson { reason: e.to_string() })?;
        let found = match &value {
            Value::Object(_) => None,
            Value::Array(_) => Some("an array"),
            Value::String(_) => Some("a string"),
            Value::Number(_) => Some("a number"),
            Value::Bool(_) => Some("a boolean"),
            Value::Null => Some("null"),
        };
        if let Some(found) = found {
            return Err(ParseError::NotAnObject { found });
        }
        let wire = WireOrder::deserialize(value).map_err(|e| ParseError::NotAnOrder { reason: e.to_string() })?;
        if let Some(named) = wire.store.filter(|s| *s != self.store) {
            return Err(ParseError::StoreMismatch { body: named, store: self.store.clone() });
        }
        let external_id = id_text(&wire.external_id, || "external_id".to_string())?;
        if wire.cancel {
            return Ok(vec![InboundEvent::Cancel { external_id }]);
        }
        if wire.lines.is_empty() {
            return Err(ParseError::NoLines);
        }
        let mut lines = Vec::with_capacity(wire.lines.len());
        // Lines are numbered from 1 in messages, as a seller counts them.
        for (n, line) in (1..).zip(wire.lines) {
            let store_sku = line.store_sku.filter(|s| !s.trim().is_empty());
            let listing_id = match line.external_id {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(id) => Some(id_text(&id, || format!("line {n}'s external_id"))?),
            };
            if store_sku.is_some() && listing_id.is_some() {
                return Err(ParseError::LineWithTwoListings { line: n });
            }
            if store_sku.is_none() && listing_id.is_none() {
                return Err(ParseError::LineWithoutListing { line: n });
            }
            if line.quantity < 1 {
                return Err(ParseError::QuantityNotPositive { line: n, quantity: line.quantity });
            }
            lines.push(InboundLine { store_sku, external_id: listing_id, quantity: line.quantity });
        }
        Ok(vec![InboundEvent::Order(InboundOrder {
            external_id,
            lines,
            payment: wire.payment,
            pay_within_seconds: wire.pay_within_seconds,
        })])
    }

    /// `X-Stockpool-Delivery` when the receiver sends one (visible ASCII, at most
    /// `DELIVERY_ID_CHARS_MAX` characters), else `None`: the intake then relies on taking
    /// each `(store, external_id)` once, which makes a redelivery harmless anyway.
    fn delivery_id(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(DELIVERY_HEADER)?.to_str().ok()?.trim();
        (!value.is_empty() && value.len() <= DELIVERY_ID_CHARS_MAX).then(|| value.to_string())
    }
}

/// An inbound webhook body, as loosely typed as the messages need.
#[derive(Deserialize)]
struct WireOrder {
    #[serde(default)]
    store: Option<String>,
    external_id: Value,
    #[serde(default)]
    cancel: bool,
    #[serde(default)]
    lines: Vec<WireLine>,
    #[serde(default)]
    payment: Payment,
    #[serde(default)]
    pay_within_seconds: Option<i64>,
}

#[derive(Deserialize)]
struct WireLine {
    #[serde(default)]
    store_sku: Option<String>,
    #[serde(default)]
    external_id: Option<Value>,
    quantity: Qty,
}

/// An id sent as a non-blank string or a whole number, as text.
fn id_text(value: &Value, field: impl FnOnce() -> String) -> Result<String, ParseError> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(ParseError::BadId { field: field() }),
    }
}
