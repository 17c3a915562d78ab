//! The one test binary of stockpool-channels (one per crate keeps link time down).
//!
//! Connectors are tested against real loopback receivers (`receiver.rs`), so what goes on
//! the wire is what a seller's endpoint would see.

mod amazon;
mod config;
mod ebay;
mod etsy;
mod inbound;
mod oauth;
mod push;
mod receiver;
mod tidy;
mod woocommerce;
