//! The HTTP API's behaviour, spawned for real on a random port, on SQLite and on
//! PostgreSQL (a throwaway cluster started by the suite): one test binary.

mod amazon;
mod api;
mod bad_input;
mod concurrency;
mod dashboard;
mod ebay;
mod etsy;
mod faults;
mod hardening;
mod helpers;
mod inbound;
mod nodes;
mod seam;
mod shopify;
mod sync;
mod woocommerce;
