//! stockpool-emulators: sales channels played on loopback.
//!
//! Each emulator is a real HTTP server bound to `127.0.0.1:0` that takes the calls a
//! connector makes, checks them at least as strictly as the channel does (a request the
//! channel would refuse, the emulator refuses), and keeps what a shopper on that channel
//! would see. Tests, `stockpool bench --sync` and `stockpool demo` drive them; none of
//! them shares code with `stockpool-channels`, so a connector's mistake is not mirrored
//! by the emulator that judges it (signatures are checked with code of their own here).
//!
//! Files:
//! - `webhook.rs`: the generic `webhook` channel (SPEC section 5): a seller's own site
//!   that takes signed pushes and signs the orders it sends back.
//! - `shopify.rs`: a Shopify shop: Admin GraphQL (parsed for real, cost bucket,
//!   compare-and-set, idempotency keys) and the webhooks it signs.
//! - `woocommerce.rs`: a WooCommerce site (REST `wc/v3` batches and reads, Basic auth,
//!   the batch cap, signed webhooks and the ping).
//! - `amazon.rs`: an Amazon seller account (SP-API listings patches, the listings feed
//!   flow with its upload URL, searchOrders; LWA tokens that expire; usage-plan rates).
//! - `ebay.rs`: an eBay seller account (the OAuth token endpoint, Sell Inventory bulk
//!   updates with 207 answers and getOffer, Fulfillment getOrders with its filter).
//! - `etsy.rs`: an Etsy shop (Open API v3 inventory GET/PUT, listing state, receipts,
//!   rotating OAuth refresh tokens, the rate headers and 429).
//! - `post.rs`: the webhook `POST` the emulators send, on a raw connection.
//! - `faults.rs`: seeded fault injection (429, 5xx, slow answers) shared by emulators.

pub mod amazon;
pub mod ebay;
pub mod etsy;
pub mod faults;
mod post;
pub mod shopify;
pub mod webhook;
pub mod woocommerce;

pub use ebay::{EbayConfig, EbaySeller};
pub use faults::Faults;
pub use webhook::{Received, ShopConfig, Shown, WebhookShop};
pub use woocommerce::{WooConfig, WooSite};
