//! The server application lives in `stockpool-http` (so tests can start it in-process);
//! this module keeps the binary's paths short.

pub use stockpool_http::app::{shutdown_signal, Application};
