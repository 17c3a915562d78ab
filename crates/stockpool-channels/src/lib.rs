//! stockpool-channels: the channels know the channels' APIs.
//!
//! This crate is the part of the shell that speaks HTTP to sales channels (SPEC sections 5
//! and 5a): one connector per channel pushes published quantities, reads them back where
//! the channel allows, polls orders, and verifies and parses the webhooks the channel
//! sends us. It holds no database, writes no SQL and renders none of our JSON views: the
//! caller (the sync dispatcher and the webhook intake) owns the outbox, the inbox, the
//! sync records and every decision about when to push; a connector only turns a batch into
//! HTTP calls and the answers into [`Attempt`]s and [`InboundEvent`]s. It reads no wall
//! clock either: the time a push is stamped with comes in as an argument.
//!
//! Files:
//! - `lib.rs`: the [`Connector`] trait and [`connector`], which builds one for a store.
//! - `model.rs`: the data that crosses the trait (pushes, attempts, inbound orders, limits).
//! - `error.rs`: the error enums, each message a sentence.
//! - `http.rs`: the shared `reqwest::Client`, the timeouts and what an answer means.
//! - `oauth.rs`: OAuth 2 refresh-token grants and the access-token cache (Etsy, Amazon, eBay).
//! - `sign.rs`: HMAC-SHA256 signing and constant-time verification.
//! - `time.rs`: RFC 3339 from a `Timestamp`, without a date library.
//! - `webhook.rs`: the generic `webhook` channel.
//! - `shopify.rs`: the `shopify` channel (Admin GraphQL, cost-paced; signed webhooks).
//! - `manual.rs`: why the `manual` channel has no connector.
//! - `woocommerce.rs`: the `woocommerce` channel (REST `wc/v3`, batch pushes, webhooks).
//! - `amazon.rs`: the `amazon` channel (SP-API: listings patches or a listings feed, searchOrders polled, LWA).
//! - `ebay.rs`: the `ebay` channel (Sell Inventory bulk pushes, 207 per listing, polled
//!   Fulfillment orders).
//! - `etsy.rs`: the `etsy` channel (Open API v3 inventory GET+PUT, polled receipts, OAuth).

pub mod amazon;
pub mod ebay;
mod error;
pub mod etsy;
pub mod http;
mod manual;
mod model;
pub mod oauth;
pub mod shopify;
mod sign;
mod time;
pub mod webhook;
pub mod woocommerce;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::{ChannelError, ConfigError, ParseError, SignatureError};
pub use http::{
    http_client, http_client_for_node, http_client_for_node_with, http_client_with, ClientTimeouts, CONNECT_TIMEOUT,
    NODE_HEADER, REQUEST_TIMEOUT,
};
pub use model::{
    Attempt, AttemptResult, ChannelLimits, InboundEvent, InboundLine, InboundOrder, PollPage, PolledOrder, PushItem,
    ReadItem, StoreSettings, POLL_LOOKBACK,
};
pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
/// The HTTP client every connector shares (`http_client`): named here so that callers
/// hold one without depending on reqwest themselves.
pub use reqwest::Client as HttpClient;
pub use webhook::WebhookConnector;
pub use woocommerce::WoocommerceConnector;

use stockpool_core::{Channel, ListingId, Qty, Timestamp};

/// A future a [`Connector`] returns: boxed, so that the trait stays object-safe, and
/// `Send`, so that a dispatcher can run it on any worker thread.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a read-back found: each listing asked about with the channel's quantity, `None`
/// when the channel no longer knows the listing.
pub type ReadBack = Vec<(ListingId, Option<Qty>)>;

/// What every channel implements: push quantities, read them back, poll orders, and take
/// the channel's webhooks.
///
/// The async methods return a [`BoxFuture`] rather than using `async fn` in the trait:
/// `async fn` (and `impl Future` in the signature) makes a trait impossible to use as
/// `dyn Connector`, and the dispatcher wants one `Arc<dyn Connector>` per store whatever
/// its channel, while the worker tests want to plug in a scripted connector of their own
/// without this crate knowing about it (which an enum over the channels would forbid).
/// The price is one allocation per call, nothing beside an HTTP round trip.
///
/// A connector is built per store (see [`connector`]) and is cheap to share: it holds the
/// store's settings and a handle to the shared `reqwest::Client`.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The channel this connector speaks.
    fn channel(&self) -> Channel;

    /// The limits the channel documents (or, for the generic webhook, that we choose).
    /// The caller chunks batches by `batch_max` and paces calls by the rate.
    fn limits(&self) -> ChannelLimits;

    /// Pushes `batch`, at most `limits().batch_max` items, and returns one [`Attempt`] per
    /// item, in the order of `batch`. `now` is the caller's clock: it stamps what the
    /// channel is sent and turns an HTTP-date `Retry-After` into a delay. A push never
    /// fails as a whole: every way an item can go wrong is its attempt's result.
    fn push<'a>(&'a self, batch: &'a [PushItem], now: Timestamp) -> BoxFuture<'a, Vec<Attempt>>;

    /// Reads the channel's current quantity of each item, for reconciliation and for
    /// compare-and-set. `None` for a listing the channel no longer knows. The default
    /// answers [`ChannelError::Unsupported`]: not every channel lets us read back.
    fn read_back<'a>(&'a self, items: &'a [ReadItem]) -> BoxFuture<'a, Result<ReadBack, ChannelError>> {
        let _ = items;
        let channel = self.channel();
        Box::pin(async move { Err(ChannelError::Unsupported { channel: channel_name(channel), what: "read back" }) })
    }

    /// Fetches the orders changed since `cursor` (`None`: the store's first poll, which
    /// looks back `POLL_LOOKBACK` from `now`). The cursor is the connector's own text
    /// (the poller keeps it durably, per store, and hands back the page's `next_cursor`
    /// once every order of the page is kept and applied). `now` is the caller's clock. The
    /// default answers [`ChannelError::Unsupported`]: channels that send webhooks are not
    /// polled.
    fn poll_orders<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<PollPage, ChannelError>> {
        let _ = (cursor, now);
        let channel = self.channel();
        Box::pin(
            async move { Err(ChannelError::Unsupported { channel: channel_name(channel), what: "order polling" }) },
        )
    }

    /// Turns one polled order's raw JSON (a [`PolledOrder`]'s `body`, kept in the inbox
    /// before it is parsed) into events. Called again on stored bodies by `stockpool
    /// inbox replay`, so it must depend on nothing but its argument. The default refuses:
    /// a channel that is not polled has no polled orders.
    fn parse_polled(&self, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        let _ = body;
        Err(ParseError::NotPolled { channel: channel_name(self.channel()) })
    }

    /// The shortest time between two polls the channel allows, as it last reported it at
    /// run time (Amazon's `x-amzn-RateLimit-Limit`) or else as it documents it; `None`
    /// when it sets none. The poller never polls a store faster than this, whatever its
    /// `poll_every_seconds`.
    fn poll_interval_min(&self) -> Option<std::time::Duration> {
        None
    }

    /// The store's credentials as they stand now, when a call changed them since the
    /// connector was built (an OAuth refresh: a new access token, and on channels whose
    /// refresh tokens rotate, a new refresh token), else `None`. The caller stores them
    /// (sealed like every credential) before it builds the store's connector again, so a
    /// rotated refresh token is never lost.
    fn rotated_credentials(&self) -> Option<serde_json::Value> {
        None
    }

    /// Why the channel no longer lets us in, when a token refresh was refused (a revoked
    /// app, a refresh token that expired): the caller pauses the store with this sentence
    /// in its status instead of calling again and again. `None` while the store's
    /// credentials work.
    fn auth_refused(&self) -> Option<String> {
        None
    }

    /// Checks that a webhook delivery comes from the channel. The intake answers 401 and
    /// keeps nothing when this fails. The default refuses every delivery, so a channel
    /// that sends no webhooks cannot be fed forged ones.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let _ = (headers, body);
        Err(SignatureError::NoWebhooks { channel: channel_name(self.channel()) })
    }

    /// Turns a verified delivery's raw body into events. Called again on stored bodies by
    /// `stockpool inbox replay`, so it must depend on nothing but its arguments.
    fn parse_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
        let _ = (headers, body);
        Err(ParseError::NoWebhooks { channel: channel_name(self.channel()) })
    }

    /// The channel's id of a delivery, when it sends one, for deduplicating redeliveries.
    fn delivery_id(&self, headers: &HeaderMap) -> Option<String> {
        let _ = headers;
        None
    }
}

/// Builds the connector for one store, or `None` for a channel that has none (`manual`:
/// see `manual.rs`). Settings the channel needs and lacks are a [`ConfigError`], so a
/// misconfigured store is reported when it is loaded, not at its first push.
pub fn connector(
    channel: Channel,
    settings: StoreSettings,
    client: reqwest::Client,
) -> Result<Option<Arc<dyn Connector>>, ConfigError> {
    connector_with(channel, settings, client, REQUEST_TIMEOUT)
}

/// [`connector`] with every call giving up after `request_timeout` instead of
/// [`REQUEST_TIMEOUT`] (the fault tests shorten it).
pub fn connector_with(
    channel: Channel,
    settings: StoreSettings,
    client: reqwest::Client,
    request_timeout: std::time::Duration,
) -> Result<Option<Arc<dyn Connector>>, ConfigError> {
    match channel {
        Channel::Webhook => {
            let connector = WebhookConnector::new(&settings, client, request_timeout)?;
            Ok(Some(Arc::new(connector)))
        }
        Channel::Manual => manual::connector(&settings),
        Channel::Woocommerce => Ok(Some(Arc::new(WoocommerceConnector::new(&settings, client, request_timeout)?))),
        Channel::Shopify => Ok(Some(Arc::new(shopify::ShopifyConnector::new(&settings, client, request_timeout)?))),
        Channel::Amazon => Ok(Some(Arc::new(amazon::AmazonConnector::new(&settings, client, request_timeout)?))),
        Channel::Ebay => Ok(Some(Arc::new(ebay::EbayConnector::new(&settings, client, request_timeout)?))),
        Channel::Etsy => Ok(Some(Arc::new(etsy::EtsyConnector::new(&settings, client, request_timeout)?))),
    }
}

/// Builds the connector that takes one store's webhooks (verify, parse, delivery id),
/// or `None` for a channel that sends none. Unlike [`connector`] it needs only what
/// checking a signature needs: a `webhook` store whose `url` cannot be pushed to still
/// takes its orders in.
pub fn receiver(
    channel: Channel,
    settings: StoreSettings,
    client: reqwest::Client,
) -> Result<Option<Arc<dyn Connector>>, ConfigError> {
    match channel {
        Channel::Webhook => Ok(Some(Arc::new(WebhookConnector::receiving(&settings, client)?))),
        Channel::Woocommerce => Ok(Some(Arc::new(WoocommerceConnector::receiving(&settings, client)?))),
        _ => connector(channel, settings, client),
    }
}

/// Whether stockpool pushes quantities to stores of `channel` (a connector is built for
/// it): dispatchers look only at such stores' pending pushes.
pub fn pushes_to(channel: Channel) -> bool {
    matches!(
        channel,
        Channel::Webhook | Channel::Shopify | Channel::Woocommerce | Channel::Amazon | Channel::Etsy | Channel::Ebay
    )
}

/// Whether stockpool polls `channel` for its orders (SPEC section 5a: Etsy receipts,
/// Amazon and eBay orders) rather than taking them by webhook.
pub fn polls(channel: Channel) -> bool {
    matches!(channel, Channel::Etsy | Channel::Amazon | Channel::Ebay)
}

/// The channel's name as SPEC and the API spell it (`shopify`, `webhook`, ...).
pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Shopify => "shopify",
        Channel::Woocommerce => "woocommerce",
        Channel::Etsy => "etsy",
        Channel::Amazon => "amazon",
        Channel::Ebay => "ebay",
        Channel::Webhook => "webhook",
        Channel::Manual => "manual",
    }
}
