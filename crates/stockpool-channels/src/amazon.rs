//! The `amazon` channel (SPEC section 5a): Amazon's Selling Partner API, authorised by a
//! Login with Amazon (LWA) refresh token.
//!
//! Auth: `POST {token host}/auth/o2/token` with `grant_type=refresh_token`,
//! `refresh_token`, `client_id`, `client_secret` (`oauth.rs`); the access token goes in
//! `x-amz-access-token`. The token host is `https://api.amazon.com`, or the store's
//! `base_url` when set. SP-API answers an expired or unknown token with 403 `Unauthorized`
//! (its OpenAPI documents no 401); both 401 and that 403 drop the token and retry once.
//!
//! Out, `realtime` stores: one `PATCH {base}/listings/2021-08-01/items/{seller_id}/{store_sku}
//! ?marketplaceIds=...` per listing with a `merge` patch of
//! `/attributes/fulfillment_availability` (`DEFAULT` channel), at most 5 calls a second
//! (the usage plan of `patchListingsItem`, burst 5): [`REALTIME_LIMITS`], `call_per_item`.
//! The answer's `status` `INVALID` (or `issues` of severity `ERROR`) fails the listing with
//! Amazon's messages.
//!
//! Out, `every_minutes` stores: one `JSON_LISTINGS_FEED` a push (the dispatcher pushes an
//! interval store once an interval), at most [`FEED_MESSAGES_MAX`] messages:
//! `createFeedDocument`, `PUT` the JSON to the document's `url`, `createFeed`. Never a
//! `patchListingsItem`. A feed is processed later by Amazon; an accepted `createFeed` is the
//! attempt's `ok` (the feed id is in its detail).
//!
//! In: `GET {base}/orders/2026-01-01/orders?marketplaceIds=...&lastUpdatedAfter=...
//! &includedData=FULFILLMENT` (`searchOrders`), at most [`POLL_PAGES_MAX`] pages a poll via
//! `paginationToken`. The order items come inline (`orderItems`), so no second call. The
//! cursor is the latest `lastUpdatedTime` seen (while pages remain, also the page token);
//! each poll asks from [`POLL_OVERLAP`] before it, since `lastUpdatedAfter` is inclusive and
//! Amazon's search index lags: a re-read order deduplicates on `{orderId}@{lastUpdatedTime}`.
//! `fulfillment.fulfillmentStatus` `CANCELLED` cancels. The poll rate is the one Amazon
//! reports in `x-amzn-RateLimit-Limit` (documented: 0.0056 a second), `poll_interval_min`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stockpool_core::{Channel, Payment, Timestamp};

use crate::error::{ChannelError, ConfigError, ParseError};
use crate::http::{result_for_status, retry_after_ms, transport_failure, truncate_detail};
use crate::model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PollPage, PolledOrder, PushItem,
};
use crate::oauth::{Grant, TokenCache};
use crate::{BoxFuture, Connector, StoreSettings, POLL_LOOKBACK};

/// The channel's name in messages.
const CHANNEL: &str = "amazon";

/// The SP-API host when the store sets no `base_url` (North America).
pub const DEFAULT_API: &str = "https://sellingpartnerapi-na.amazon.com";
/// The LWA host when the store sets no `base_url`.
pub const DEFAULT_TOKEN_HOST: &str = "https://api.amazon.com";

/// The header that carries the LWA access token.
pub const ACCESS_TOKEN_HEADER: &str = "x-amz-access-token";
/// The header in which SP-API reports an operation's rate (requests a second).
pub const RATE_LIMIT_HEADER: &str = "x-amzn-RateLimit-Limit";

/// Most messages one `JSON_LISTINGS_FEED` carries (the feed schema's `maxItems`).
pub const FEED_MESSAGES_MAX: usize = 25_000;

/// `realtime` stores: `patchListingsItem`, 5 a second, burst 5, one listing a call. A
/// batch is at most a burst's worth.
pub const REALTIME_LIMITS: ChannelLimits =
    ChannelLimits { batch_max: 5, read_batch_max: 0, requests_per_second_milli: 5_000, burst: 5, call_per_item: true };

/// `every_minutes` stores: one feed a push, `createFeed`'s usage plan (0.0083 a second,
/// burst 15).
pub const FEED_LIMITS: ChannelLimits = ChannelLimits {
    batch_max: FEED_MESSAGES_MAX,
    read_batch_max: 0,
    requests_per_second_milli: 8,
    burst: 15,
    call_per_item: false,
};

/// `searchOrders`' documented rate in millionths of a request a second (0.0056).
pub const SEARCH_ORDERS_RATE_MICRO: u64 = 5_600;

/// Most `searchOrders` pages one poll reads (well inside the burst of 20).
pub const POLL_PAGES_MAX: usize = 5;

/// Orders a page asks for (`maxResultsPerPage`, at most 100).
pub const PAGE_SIZE: u32 = 100;

/// How far before the cursor a poll asks from.
pub const POLL_OVERLAP: Duration = Duration::from_secs(120);

/// Most bytes of an answer read (a page of 100 full orders is well under this).
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The product type sent with every patch: SPEC 5a's `PRODUCT` (Amazon takes it for a
/// patch of offer attributes on any listing).
pub const PRODUCT_TYPE: &str = "PRODUCT";

/// The content type of the feed document.
pub const FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// The wire shapes we send and read, as the OpenAPI documents give them.
pub mod wire {
    use super::*;

    /// One `fulfillment_availability` value.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Availability {
        pub fulfillment_channel_code: String,
        pub quantity: i64,
    }

    /// A JSON Patch operation of `patchListingsItem` and of a feed's `PATCH` message.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Patch {
        pub op: String,
        pub path: String,
        pub value: Vec<Availability>,
    }

    /// `ListingsItemPatchRequest`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PatchRequest {
        pub product_type: String,
        pub patches: Vec<Patch>,
    }

    /// The merge of one quantity.
    pub fn quantity_patch(quantity: i64) -> Vec<Patch> {
        vec![Patch {
            op: "merge".into(),
            path: "/attributes/fulfillment_availability".into(),
            value: vec![Availability { fulfillment_channel_code: "DEFAULT".into(), quantity }],
        }]
    }

    /// `ListingsItemSubmissionResponse`.
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SubmissionResponse {
        #[serde(default)]
        pub sku: String,
        #[serde(default)]
        pub status: String,
        #[serde(default)]
        pub submission_id: String,
        #[serde(default)]
        pub issues: Vec<Issue>,
    }

    /// One issue Amazon found with a submission.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct Issue {
        #[serde(default)]
        pub code: String,
        #[serde(default)]
        pub message: String,
        #[serde(default)]
        pub severity: String,
    }

    /// SP-API's `ErrorList`.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct ErrorList {
        #[serde(default)]
        pub errors: Vec<ApiError>,
    }

    /// One SP-API error.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct ApiError {
        #[serde(default)]
        pub code: String,
        #[serde(default)]
        pub message: String,
        #[serde(default)]
        pub details: Option<String>,
    }

    /// `createFeedDocument`'s answer.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FeedDocument {
        pub feed_document_id: String,
        pub url: String,
    }

    /// `createFeed`'s answer.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreatedFeed {
        pub feed_id: String,
    }

    /// `searchOrders`' answer: the orders kept raw (each is stored as it came).
    #[derive(Clone, Debug, Deserialize)]
    pub struct SearchOrders {
        pub orders: Vec<Value>,
        #[serde(default)]
        pub pagination: Option<Pagination>,
    }

    /// The page token.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Pagination {
        #[serde(default)]
        pub next_token: Option<String>,
    }

    /// An order (2026-01-01 `Order`), the fields we read.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Order {
        pub order_id: String,
        #[serde(default)]
        pub last_updated_time: Option<String>,
        #[serde(default)]
        pub fulfillment: Option<Fulfillment>,
        #[serde(default)]
        pub order_items: Vec<OrderItem>,
    }

    /// `OrderFulfillment`.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Fulfillment {
        #[serde(default)]
        pub fulfillment_status: Option<String>,
    }

    /// `OrderItem`.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OrderItem {
        #[serde(default)]
        pub order_item_id: Option<String>,
        pub quantity_ordered: i64,
        #[serde(default)]
        pub product: Option<Product>,
    }

    /// `ItemProduct`.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Product {
        #[serde(default)]
        pub asin: Option<String>,
        #[serde(default)]
        pub seller_sku: Option<String>,
    }
}

/// The cursor: the latest `lastUpdatedTime` seen, and while a search is being paged, the
/// `lastUpdatedAfter` it was started with and its page token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Latest `lastUpdatedTime` seen (RFC 3339).
    seen: Option<String>,
    /// The paged search's `lastUpdatedAfter` and `paginationToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paging: Option<(String, String)>,
}

impl Cursor {
    /// A bare time stamp (no pages left) or the JSON form.
    fn parse(text: &str) -> Option<Cursor> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text).ok();
        }
        parse_rfc3339(text).map(|_| Cursor { seen: Some(text.to_string()), paging: None })
    }

    fn render(&self) -> Option<String> {
        match (&self.seen, &self.paging) {
            (None, None) => None,
            (Some(seen), None) => Some(seen.clone()),
            _ => serde_json::to_string(self).ok(),
        }
    }
}

/// The connector of one `amazon` store.
#[derive(Clone)]
pub struct AmazonConnector {
    inner: Arc<Inner>,
}

struct Inner {
    store: String,
    api: String,
    seller_id: String,
    marketplace_id: String,
    feed: bool,
    tokens: TokenCache,
    client: reqwest::Client,
    request_timeout: Duration,
    /// `searchOrders`' rate as last reported, millionths of a request a second.
    search_rate_micro: AtomicU64,
}

impl fmt::Debug for AmazonConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmazonConnector")
            .field("store", &self.inner.store)
            .field("api", &self.inner.api)
            .field("feed", &self.inner.feed)
            .finish_non_exhaustive()
    }
}

/// A credential given as a non-empty string or a number.
fn credential(credentials: Option<&Value>, field: &'static str, store: &str) -> Result<String, ConfigError> {
    match credentials.and_then(|c| c.get(field)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ConfigError::MissingCredential {
            channel: CHANNEL,
            store: store.to_string(),
            field,
            hint: "set it in the store's credentials (Seller Central and the app's LWA credentials)",
        }),
    }
}

/// The store's `base_url` without its trailing slash, checked, or `None`.
fn base(settings: &StoreSettings) -> Result<Option<String>, ConfigError> {
    let Some(text) = settings.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let bad = |reason: String| ConfigError::BadUrl { store: settings.code.clone(), url: text.to_string(), reason };
    let url = Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it must be an absolute http or https URL with a host".to_string()));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_string()))
}

impl AmazonConnector {
    /// A connector for the store: `seller_id`, `marketplace_id`, `client_id`,
    /// `client_secret` and `refresh_token` are required. A store with `every_minutes` set
    /// pushes by feed.
    pub fn new(
        settings: &StoreSettings,
        client: reqwest::Client,
        request_timeout: Duration,
    ) -> Result<AmazonConnector, ConfigError> {
        let store = settings.code.clone();
        let creds = settings.credentials.as_ref();
        let seller_id = credential(creds, "seller_id", &store)?;
        let marketplace_id = credential(creds, "marketplace_id", &store)?;
        let client_id = credential(creds, "client_id", &store)?;
        let client_secret = credential(creds, "client_secret", &store)?;
        let _ = credential(creds, "refresh_token", &store)?;
        let base = base(settings)?;
        let api = base.clone().unwrap_or_else(|| DEFAULT_API.to_string());
        let token_host = base.unwrap_or_else(|| DEFAULT_TOKEN_HOST.to_string());
        let grant = Grant {
            channel: CHANNEL,
            store: store.clone(),
            token_url: format!("{token_host}/auth/o2/token"),
            form: vec![("client_id", client_id), ("client_secret", client_secret)],
            basic: None,
        };
        let mut credentials = creds.cloned().unwrap_or(Value::Null);
        if let Some(Value::Number(n)) = credentials.get("refresh_token").cloned() {
            credentials["refresh_token"] = Value::String(n.to_string());
        }
        let tokens = TokenCache::new(grant, &credentials, request_timeout)?;
        Ok(AmazonConnector {
            inner: Arc::new(Inner {
                store,
                api,
                seller_id,
                marketplace_id,
                feed: settings.every_minutes.is_some(),
                tokens,
                client,
                request_timeout,
                search_rate_micro: AtomicU64::new(SEARCH_ORDERS_RATE_MICRO),
            }),
        })
    }

    /// Sends a call with the access token; on 401 (or SP-API's 403 `Unauthorized`) drops
    /// the token and sends it once more with a fresh one.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Result<Response, reqwest::Error>, ChannelError> {
        let mut retried = false;
        loop {
            let token = self.inner.tokens.access_token(&self.inner.client).await?;
            let sent = build().timeout(self.inner.request_timeout).header(ACCESS_TOKEN_HEADER, &token).send().await;
            match sent {
                Ok(r) if !retried && token_refused(&r) => {
                    self.inner.tokens.invalidate(&token);
                    retried = true;
                }
                other => return Ok(other),
            }
        }
    }

    fn marketplace_query(&self) -> [(&'static str, String); 1] {
        [("marketplaceIds", self.inner.marketplace_id.clone())]
    }

    /// One `patchListingsItem`.
    async fn patch(&self, item: &PushItem, now: Timestamp) -> Attempt {
        let started = tokio::time::Instant::now();
        let elapsed = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let sku = item.store_sku.trim();
        if sku.is_empty() {
            return not_sent("the listing has no store_sku, the seller SKU Amazon's listings are patched by".into());
        }
        let Ok(mut url) = Url::parse(&self.inner.api) else {
            return not_sent(format!("the API address {:?} is not a URL", self.inner.api));
        };
        url.path_segments_mut()
            .map(|mut p| {
                p.extend(["listings", "2021-08-01", "items", &self.inner.seller_id, sku]);
            })
            .ok();
        url.query_pairs_mut().extend_pairs(self.marketplace_query());
        let body =
            wire::PatchRequest { product_type: PRODUCT_TYPE.into(), patches: wire::quantity_patch(item.quantity) };
        let body = serde_json::to_vec(&body).expect("a patch serializes");
        let sent = self
            .send(|| self.inner.client.patch(url.clone()).header(CONTENT_TYPE, "application/json").body(body.clone()))
            .await;
        let response = match sent {
            Err(e) => return channel_failure(e, elapsed()),
            Ok(Err(e)) => {
                let (result, detail) = transport_failure(e, self.inner.request_timeout);
                return Attempt { result, status_code: None, detail: Some(detail), duration_ms: elapsed() };
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let retry_after = self.retry_after(&response, now);
        let text = read_bounded(response).await;
        let code = Some(status.as_u16());
        if !status.is_success() {
            let (result, detail) = failure(status, retry_after, &text);
            return Attempt { result, status_code: code, detail: Some(detail), duration_ms: elapsed() };
        }
        let answer = text.ok().and_then(|t| serde_json::from_slice::<wire::SubmissionResponse>(&t).ok());
        let Some(answer) = answer else {
            let detail = "Amazon answered the patch with a body that is not a submission response".to_string();
            return Attempt {
                result: AttemptResult::Retry { retry_after_ms: None },
                status_code: code,
                detail: Some(detail),
                duration_ms: elapsed(),
            };
        };
        let errors: Vec<String> = answer
            .issues
            .iter()
            .filter(|i| i.severity.eq_ignore_ascii_case("ERROR"))
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect();
        if answer.status == "INVALID" || !errors.is_empty() {
            let detail = format!("Amazon refused the patch ({}): {}", answer.status, errors.join("; "));
            return Attempt {
                result: AttemptResult::Failed,
                status_code: code,
                detail: truncate_detail(&detail),
                duration_ms: elapsed(),
            };
        }
        let detail = (!answer.submission_id.is_empty()).then(|| format!("submission {}", answer.submission_id));
        Attempt { result: AttemptResult::Ok, status_code: code, detail, duration_ms: elapsed() }
    }

    /// The `JSON_LISTINGS_FEED` document of `batch`.
    pub fn feed_document(&self, batch: &[PushItem]) -> Value {
        let messages: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(n, item)| {
                json!({
                    "messageId": n + 1,
                    "sku": item.store_sku.trim(),
                    "operationType": "PATCH",
                    "productType": PRODUCT_TYPE,
                    "patches": wire::quantity_patch(item.quantity),
                })
            })
            .collect();
        json!({
            "header": {"sellerId": self.inner.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": messages,
        })
    }

    /// One feed for the whole batch: every attempt shares its outcome.
    async fn push_feed(&self, batch: &[PushItem], now: Timestamp) -> Vec<Attempt> {
        let started = tokio::time::Instant::now();
        let elapsed = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut attempts: Vec<Option<Attempt>> = vec![None; batch.len()];
        let mut sent: Vec<PushItem> = Vec::new();
        let mut sent_at: Vec<usize> = Vec::new();
        for (n, item) in batch.iter().enumerate() {
            if item.store_sku.trim().is_empty() {
                attempts[n] = Some(not_sent("the listing has no store_sku, the seller SKU a feed names".into()));
            } else if sent.len() >= FEED_MESSAGES_MAX {
                attempts[n] = Some(Attempt {
                    result: AttemptResult::Retry { retry_after_ms: None },
                    status_code: None,
                    detail: Some(format!("a feed carries at most {FEED_MESSAGES_MAX} messages; sent with the next")),
                    duration_ms: 0,
                });
            } else {
                sent.push(item.clone());
                sent_at.push(n);
            }
        }
        if !sent.is_empty() {
            let outcome = self.feed_calls(&sent, now).await;
            let attempt = match outcome {
                Ok(feed_id) => Attempt {
                    result: AttemptResult::Ok,
                    status_code: Some(202),
                    detail: Some(format!("sent in feed {feed_id}")),
                    duration_ms: elapsed(),
                },
                Err(mut a) => {
                    a.duration_ms = elapsed();
                    a
                }
            };
            for n in sent_at {
                attempts[n] = Some(attempt.clone());
            }
        }
        attempts.into_iter().map(|a| a.expect("every listing has its attempt")).collect()
    }

    /// createFeedDocument, upload, createFeed: the feed id, or the attempt that failed.
    async fn feed_calls(&self, batch: &[PushItem], now: Timestamp) -> Result<String, Attempt> {
        let api = &self.inner.api;
        let document = serde_json::to_vec(&self.feed_document(batch)).expect("a feed serializes");
        let body = serde_json::to_vec(&json!({"contentType": FEED_CONTENT_TYPE})).expect("json");
        let created: wire::FeedDocument = self
            .json_call(
                || {
                    self.inner
                        .client
                        .post(format!("{api}/feeds/2021-06-30/documents"))
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                now,
            )
            .await?;
        // The upload URL is presigned: no access token goes with it.
        let upload = self
            .inner
            .client
            .put(&created.url)
            .timeout(self.inner.request_timeout)
            .header(CONTENT_TYPE, FEED_CONTENT_TYPE)
            .body(document)
            .send()
            .await;
        match upload {
            Err(e) => {
                let (result, detail) = transport_failure(e, self.inner.request_timeout);
                return Err(Attempt { result, status_code: None, detail: Some(detail), duration_ms: 0 });
            }
            Ok(r) if !r.status().is_success() => {
                let status = r.status();
                let retry = self.retry_after(&r, now);
                let text = read_bounded(r).await;
                let (result, detail) = failure(status, retry, &text);
                return Err(Attempt {
                    result,
                    status_code: Some(status.as_u16()),
                    detail: Some(format!("the feed upload failed: {detail}")),
                    duration_ms: 0,
                });
            }
            Ok(_) => {}
        }
        let body = serde_json::to_vec(&json!({
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [self.inner.marketplace_id],
            "inputFeedDocumentId": created.feed_document_id,
        }))
        .expect("json");
        let feed: wire::CreatedFeed = self
            .json_call(
                || {
                    self.inner
                        .client
                        .post(format!("{api}/feeds/2021-06-30/feeds"))
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                now,
            )
            .await?;
        Ok(feed.feed_id)
    }

    /// A call whose success is a JSON body of type `T`.
    async fn json_call<T: serde::de::DeserializeOwned>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        now: Timestamp,
    ) -> Result<T, Attempt> {
        let response = match self.send(build).await {
            Err(e) => return Err(channel_failure(e, 0)),
            Ok(Err(e)) => {
                let (result, detail) = transport_failure(e, self.inner.request_timeout);
                return Err(Attempt { result, status_code: None, detail: Some(detail), duration_ms: 0 });
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let retry = self.retry_after(&response, now);
        let text = read_bounded(response).await;
        if !status.is_success() {
            let (result, detail) = failure(status, retry, &text);
            return Err(Attempt { result, status_code: Some(status.as_u16()), detail: Some(detail), duration_ms: 0 });
        }
        text.ok().and_then(|t| serde_json::from_slice(&t).ok()).ok_or_else(|| Attempt {
            result: AttemptResult::Retry { retry_after_ms: None },
            status_code: Some(status.as_u16()),
            detail: Some("Amazon answered with a body that is not what its API documents".to_string()),
            duration_ms: 0,
        })
    }

    /// `Retry-After` when sent; on a 429 without one, a wait of one request at the rate
    /// the answer reports in `x-amzn-RateLimit-Limit`.
    fn retry_after(&self, response: &Response, now: Timestamp) -> Option<i64> {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(ms) = header(RETRY_AFTER.as_str()).and_then(|v| retry_after_ms(&v, now)) {
            return Some(ms);
        }
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let rate = header(RATE_LIMIT_HEADER).and_then(|v| v.trim().parse::<f64>().ok()).filter(|r| *r > 0.0)?;
        Some(((1000.0 / rate).ceil() as i64).min(crate::http::RETRY_AFTER_MS_MAX))
    }

    /// One `searchOrders` page: the orders, the next token.
    async fn search_page(
        &self,
        after: &str,
        token: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ChannelError> {
        let mut url = Url::parse(&format!("{}/orders/2026-01-01/orders", self.inner.api))
            .map_err(|e| ChannelError::Call { detail: format!("the orders URL could not be built: {e}") })?;
        {
            let mut q = url.query_pairs_mut();
            q.extend_pairs(self.marketplace_query());
            q.append_pair("lastUpdatedAfter", after);
            q.append_pair("includedData", "FULFILLMENT");
            q.append_pair("maxResultsPerPage", &PAGE_SIZE.to_string());
            if let Some(token) = token {
                q.append_pair("paginationToken", token);
            }
        }
        let response = self.send(|| self.inner.client.get(url.clone())).await?.map_err(|e| {
            ChannelError::Unavailable { channel: CHANNEL, detail: transport_failure(e, self.inner.request_timeout).1 }
        })?;
        let status = response.status();
        if let Some(rate) = response
            .headers()
            .get(RATE_LIMIT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0)
        {
            let micro = (rate * 1_000_000.0).round().clamp(1.0, 1e12) as u64;
            self.inner.search_rate_micro.store(micro, Ordering::Relaxed);
        }
        // A read has no clock to measure an HTTP-date from: only delay-seconds count.
        let retry = self.retry_after(&response, Timestamp(0));
        let text = read_bounded(response).await;
        if !status.is_success() {
            let (result, detail) = failure(status, retry, &text);
            return Err(match result {
                AttemptResult::Throttled { retry_after_ms } => {
                    ChannelError::Throttled { channel: CHANNEL, retry_after_ms }
                }
                AttemptResult::Retry { .. } => ChannelError::Unavailable { channel: CHANNEL, detail },
                _ => ChannelError::Refused { channel: CHANNEL, status: Some(status.as_u16()), detail },
            });
        }
        let page = text.ok().and_then(|t| serde_json::from_slice::<wire::SearchOrders>(&t).ok()).ok_or_else(|| {
            ChannelError::Unavailable {
                channel: CHANNEL,
                detail: "Amazon answered searchOrders with a body that is not a SearchOrdersResponse".to_string(),
            }
        })?;
        let next = page.pagination.and_then(|p| p.next_token).filter(|t| !t.is_empty());
        Ok((page.orders, next))
    }
}

/// Whether an answer says the access token is no good: 401, or SP-API's 403 whose error
/// code is `Unauthorized` (an expired or unknown token).
fn token_refused(response: &Response) -> bool {
    match response.status().as_u16() {
        401 => true,
        // SP-API marks a refused token in `x-amzn-ErrorType` as well as in the body; the
        // body is not read here, so the header decides, and without it any 403 counts.
        403 => response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("Unauthorized") || v.contains("Token")),
        _ => false,
    }
}

/// A push that could not get a token.
fn channel_failure(e: ChannelError, duration_ms: u64) -> Attempt {
    let result = match &e {
        ChannelError::Throttled { retry_after_ms, .. } => AttemptResult::Throttled { retry_after_ms: *retry_after_ms },
        ChannelError::Unavailable { .. } => AttemptResult::Retry { retry_after_ms: None },
        _ => AttemptResult::Failed,
    };
    Attempt { result, status_code: None, detail: Some(e.to_string()), duration_ms }
}

/// An attempt that never went out.
fn not_sent(detail: String) -> Attempt {
    Attempt { result: AttemptResult::Failed, status_code: None, detail: Some(detail), duration_ms: 0 }
}

/// An answer's body, at most [`RESPONSE_BYTES_MAX`] bytes; `Err` with what came when it is
/// longer or breaks off.
async fn read_bounded(mut response: Response) -> Result<Vec<u8>, Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
                    let room = RESPONSE_BYTES_MAX - body.len();
                    body.extend_from_slice(&chunk[..room]);
                    return Err(body);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(body),
        }
    }
}

/// What a refused call means, with Amazon's error messages in the detail.
fn failure(status: StatusCode, retry_after: Option<i64>, text: &Result<Vec<u8>, Vec<u8>>) -> (AttemptResult, String) {
    let bytes = match text {
        Ok(b) | Err(b) => b,
    };
    let said = serde_json::from_slice::<wire::ErrorList>(bytes)
        .ok()
        .filter(|e| !e.errors.is_empty())
        .map(|e| {
            e.errors
                .iter()
                .map(|e| match &e.details {
                    Some(d) if !d.is_empty() => format!("{}: {} ({d})", e.code, e.message),
                    _ => format!("{}: {}", e.code, e.message),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .or_else(|| truncate_detail(&String::from_utf8_lossy(&bytes[..bytes.len().min(2048)])));
    let said = said.map_or_else(String::new, |s| format!(": {s}"));
    let detail = format!("Amazon answered {status}{said}");
    (result_for_status(status, retry_after), truncate_detail(&detail).unwrap_or(detail))
}

/// Seconds since the epoch of an RFC 3339 time stamp (`Z` or an offset, fractions
/// dropped), for years 1970 to 9999.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = text.get(from..to)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (y, mo, d, h, mi, s) = (num(0, 4)?, num(5, 7)?, num(8, 10)?, num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if b[13] != b':'
        || b[16] != b':'
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[3..4], ":") => {
            let sign = match &rest[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh = rest[1..3].parse::<i64>().ok()?;
            let om = rest[4..6].parse::<i64>().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s - offset)
}

/// The time stamp we send: `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_seconds(seconds: i64) -> String {
    let text = crate::time::rfc3339(Timestamp(seconds.saturating_mul(1000)));
    // `...SS.mmmZ` -> `...SSZ`.
    match text.rsplit_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => text,
    }
}

/// Turns one order's JSON (2026-01-01 `Order`) into events: `CANCELLED` cancels, anything
/// else is the order with one line per item (by seller SKU, else by ASIN).
pub fn parse_order(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let bad = |reason: String| ParseError::BadPolledOrder { channel: CHANNEL, reason };
    let order: wire::Order = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let external_id = order.order_id.trim().to_string();
    if external_id.is_empty() {
        return Err(bad("orderId is empty".to_string()));
    }
    let status = order.fulfillment.as_ref().and_then(|f| f.fulfillment_status.as_deref()).unwrap_or("");
    if status == "CANCELLED" {
        return Ok(vec![InboundEvent::Cancel { external_id }]);
    }
    let mut lines = Vec::new();
    for (n, item) in order.order_items.iter().enumerate() {
        if item.quantity_ordered < 1 {
            continue;
        }
        let product = item.product.as_ref();
        let text = |s: Option<&String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let store_sku = text(product.and_then(|p| p.seller_sku.as_ref()));
        let asin = text(product.and_then(|p| p.asin.as_ref()));
        let (store_sku, external_id) = match (store_sku, asin) {
            (Some(sku), _) => (Some(sku), None),
            (None, Some(asin)) => (None, Some(asin)),
            (None, None) => {
                let id = item.order_item_id.as_deref().unwrap_or("?");
                return Err(bad(format!("order item {n} ({id}) names neither a sellerSku nor an ASIN")));
            }
        };
        lines.push(InboundLine { store_sku, external_id, quantity: item.quantity_ordered });
    }
    if lines.is_empty() {
        return Ok(vec![InboundEvent::Ignored(format!(
            "Amazon order {external_id} ({status}) has no items to reserve yet"
        ))]);
    }
    Ok(vec![InboundEvent::Order(InboundOrder {
        external_id,
        lines,
        payment: Payment::Immediate,
        pay_within_seconds: None,
    })])
}

impl Connector for AmazonConnector {
    fn channel(&self) -> Channel {
        Channel::Amazon
    }

    /// [`REALTIME_LIMITS`], or [`FEED_LIMITS`] for an `every_minutes` store.
    fn limits(&self) -> ChannelLimits {
        if self.inner.feed {
            FEED_LIMITS
        } else {
            REALTIME_LIMITS
        }
    }

    /// Realtime: one patch per listing, one after another (the dispatcher paces them).
    /// Interval stores: one feed with every listing.
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            if self.inner.feed {
                return self.push_feed(batch, now).await;
            }
            let mut attempts = Vec::with_capacity(batch.len());
            for item in batch {
                let attempt = self.patch(item, now).await;
                let throttled = matches!(attempt.result, AttemptResult::Throttled { .. });
                attempts.push(attempt.clone());
                if throttled {
                    // The store waits: the rest of the batch is not sent now.
                    for _ in attempts.len()..batch.len() {
                        attempts.push(Attempt { duration_ms: 0, ..attempt.clone() });
                    }
                    break;
                }
            }
            attempts
        })
    }

    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<PollPage, ChannelError>> {
        Box::pin(async move {
            let mut state = match cursor {
                Some(text) => Cursor::parse(text).ok_or_else(|| ChannelError::Call {
                    detail: format!("the store's poll cursor {text:?} is not an Amazon cursor"),
                })?,
                None => Cursor::default(),
            };
            let lookback = POLL_LOOKBACK.as_secs() as i64;
            let overlap = POLL_OVERLAP.as_secs() as i64;
            let (after, mut token) = match &state.paging {
                Some((after, token)) => (after.clone(), Some(token.clone())),
                None => {
                    let from = match state.seen.as_deref().and_then(parse_rfc3339) {
                        Some(seen) => seen - overlap,
                        None => now.0.div_euclid(1000) - lookback,
                    };
                    (rfc3339_seconds(from), None)
                }
            };
            let mut orders: Vec<(i64, String, PolledOrder)> = Vec::new();
            let mut pages = 0;
            loop {
                let (page, next) = self.search_page(&after, token.as_deref()).await?;
                pages += 1;
                for order in page {
                    let id = order.get("orderId").and_then(Value::as_str).unwrap_or("").to_string();
                    let updated = order.get("lastUpdatedTime").and_then(Value::as_str).unwrap_or("").to_string();
                    let at = parse_rfc3339(&updated).unwrap_or(i64::MIN);
                    if at != i64::MIN && state.seen.as_deref().and_then(parse_rfc3339).is_none_or(|s| at > s) {
                        state.seen = Some(updated.clone());
                    }
                    let body = serde_json::to_vec(&order).expect("a JSON value serializes");
                    orders.push((at, id.clone(), PolledOrder { delivery_id: format!("{id}@{updated}"), body }));
                }
                token = next;
                if token.is_none() || pages >= POLL_PAGES_MAX {
                    break;
                }
            }
            orders.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let more = token.is_some();
            state.paging = token.map(|t| (after, t));
            Ok(PollPage { orders: orders.into_iter().map(|o| o.2).collect(), next_cursor: state.render(), more })
        })
    }

    fn parse_polled(&self, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        parse_order(body)
    }

    /// One request at `searchOrders`' rate (as last reported in `x-amzn-RateLimit-Limit`).
    fn poll_interval_min(&self) -> Option<Duration> {
        let micro = self.inner.search_rate_micro.load(Ordering::Relaxed).max(1);
        Some(Duration::from_micros(1_000_000_000_000u64.div_ceil(micro)))
    }

    fn rotated_credentials(&self) -> Option<Value> {
        self.inner.tokens.rotated_credentials()
    }

    fn auth_refused(&self) -> Option<String> {
        self.inner.tokens.refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_round_trip() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-12-25T14:45:00Z"), Some(1_735_137_900));
        assert_eq!(parse_rfc3339("2024-12-25T14:45:00.250Z"), Some(1_735_137_900));
        assert_eq!(parse_rfc3339("2024-12-25T15:45:00+01:00"), Some(1_735_137_900));
        assert_eq!(rfc3339_seconds(1_735_137_900), "2024-12-25T14:45:00Z");
        for bad in ["", "2024-12-25", "2024-13-25T14:45:00Z", "2024-12-25T14:45:00", "2024-12-25T14:45:00.Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let bare = Cursor::parse("2024-12-25T14:45:00Z").unwrap();
        assert_eq!(bare.render().as_deref(), Some("2024-12-25T14:45:00Z"));
        let paged = Cursor {
            seen: Some("2024-12-25T14:45:00Z".into()),
            paging: Some(("2024-12-24T14:45:00Z".into(), "tok".into())),
        };
        assert_eq!(Cursor::parse(&paged.render().unwrap()), Some(paged));
        assert_eq!(Cursor::parse("yesterday"), None);
    }

    #[test]
    fn the_poll_floor_is_one_request_at_the_documented_rate() {
        let micro = SEARCH_ORDERS_RATE_MICRO;
        assert_eq!(1_000_000_000_000u64.div_ceil(micro) / 1_000_000, 178);
    }
}
