//! The errors connectors return, each message a sentence a seller or an operator can act on.
//!
//! A push has no error type on purpose: every way a push goes wrong is an `Attempt`
//! result, recorded per listing, so one failing listing never hides the others.

/// A store's settings that cannot make a connector. Reported when the store is loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the {channel} connector is not built yet, so store {store} cannot be pushed or polled")]
    NotBuiltYet { channel: &'static str, store: String },
    #[error("store {store} is a webhook store without a url; set the url stockpool should POST quantities to")]
    MissingUrl { store: String },
    #[error("store {store} has the url {url:?}, which is not an absolute http URL: {reason}")]
    BadUrl { store: String, url: String, reason: String },
    #[error("store {store} is a webhook store without a secret; set the secret that signs our pushes and its orders")]
    MissingSecret { store: String },
    #[error("store {store} is a {channel} store without a base_url; set it to the site's address, e.g. http://shop.example.com")]
    MissingBaseUrl { channel: &'static str, store: String },
    #[error("store {store}'s {channel} credentials lack {field}; {hint}")]
    MissingCredential { channel: &'static str, store: String, field: &'static str, hint: &'static str },
    #[error("store {store}'s credentials have {field} {value:?}, which is not {expected}")]
    BadCredential { store: String, field: &'static str, value: String, expected: &'static str },
    #[error("store {store} is a {channel} store without a secret; set the secret the channel signs its webhooks with")]
    MissingWebhookSecret { channel: &'static str, store: String },
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("the node id {0:?} cannot be sent as a header; use letters, digits, '.', '-' and '_'")]
    NodeId(String),
}

/// A call a connector could not make or the channel would not answer, outside pushes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    #[error("the {channel} channel offers no {what}")]
    Unsupported { channel: &'static str, what: &'static str },
    /// 429: wait `retry_after_ms` when given, then ask again.
    #[error("the {channel} channel asked us to slow down (429); ask again later")]
    Throttled { channel: &'static str, retry_after_ms: Option<i64> },
    /// 5xx, a timeout, a connection error or an unreadable answer: ask again later.
    #[error("the {channel} channel could not answer: {detail}")]
    Unavailable { channel: &'static str, detail: String },
    /// Any other refusal (401, 4xx): asking again would be refused again.
    #[error("the {channel} channel refused the call: {detail}")]
    Refused { channel: &'static str, status: Option<u16>, detail: String },
    #[error("the call to the channel failed: {detail}")]
    Call { detail: String },
    /// The channel refused our credentials and refreshing them was refused too: nothing
    /// works until the seller connects the store again (`Connector::auth_refused`).
    #[error("the {channel} channel refused store {store}'s credentials: {detail}; connect the store again")]
    AuthRefused { channel: &'static str, store: String, detail: String },
}

/// A webhook delivery whose signature does not prove it comes from the channel. The
/// intake answers 401 and keeps nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the delivery has no {header} header, so it cannot be shown to come from the store")]
    Missing { header: &'static str },
    #[error("the delivery has {header} more than once; exactly one signature is expected")]
    Repeated { header: &'static str },
    #[error("the {header} header must start with {prefix} followed by the hex digest")]
    WrongPrefix { header: &'static str, prefix: &'static str },
    #[error("the {header} header's digest must be {digits} hex digits")]
    Malformed { header: &'static str, digits: usize },
    #[error("the {header} signature does not match the body; check that both sides use the store's secret")]
    Mismatch { header: &'static str },
    #[error("the {channel} channel sends no webhooks; its orders are polled")]
    NoWebhooks { channel: &'static str },
    #[error("the {header} header must be the base64 of a {bytes}-byte digest")]
    NotBase64 { header: &'static str, bytes: usize },
}

/// A verified delivery whose body is not what the channel documents. The raw body stays
/// in the inbox, so a fixed parser can replay it (`stockpool inbox replay`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not valid JSON: {reason}")]
    NotJson { reason: String },
    #[error("the body is {found}, but an order is a JSON object as POST /api/v1/orders takes it")]
    NotAnObject { found: &'static str },
    #[error("the body is not an order as POST /api/v1/orders takes it: {reason}")]
    NotAnOrder { reason: String },
    #[error("{field} must be a non-empty string or a whole number")]
    BadId { field: String },
    #[error("the order has no lines; send lines, or \"cancel\": true to cancel it")]
    NoLines,
    #[error("line {line} names no listing; give its store_sku or its external_id")]
    LineWithoutListing { line: usize },
    #[error("line {line} gives both store_sku and external_id; give one of them")]
    LineWithTwoListings { line: usize },
    #[error("line {line} has quantity {quantity}; a quantity must be at least 1")]
    QuantityNotPositive { line: usize, quantity: i64 },
    #[error("the body names store {body}, but it was delivered to store {store}; leave store out")]
    StoreMismatch { body: String, store: String },
    #[error("the {channel} channel sends no webhooks; its orders are polled")]
    NoWebhooks { channel: &'static str },
    #[error("the {channel} channel is not polled; its orders come by webhook")]
    NotPolled { channel: &'static str },
    #[error("the polled order is not what the {channel} channel documents: {reason}")]
    BadPolledOrder { channel: &'static str, reason: String },
}
