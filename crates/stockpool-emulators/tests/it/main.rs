//! The emulators' own tests: each refuses what its channel would refuse.

mod webhook;
mod woocommerce;
