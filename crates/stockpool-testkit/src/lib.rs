//! Test infrastructure for stockpool's own tests: a throwaway PostgreSQL cluster
//! (`PgCluster`), the real `stockpool` binary as a child process (`ServerProcess`), a
//! webhook receiver that misbehaves on cue (`WebhookReceiver`), and the small helpers they
//! share (`free_port`, `temp_dir`, `http_get`).
//!
//! This crate is a dev-dependency only. Errors are `anyhow` with context naming what was
//! attempted, because a failing test should say which step of its setup broke. Every wait
//! here is bounded, so a broken environment fails a test instead of hanging it.

mod http;
mod pg;
mod proc;
pub mod receiver;
mod server;

pub use http::{http_get, HttpResponse};
pub use pg::PgCluster;
pub use receiver::{Answer, Received, WebhookReceiver};
pub use server::{ServerBuilder, ServerProcess};

use anyhow::Context as _;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and releasing it, so another process may take it
/// before the caller binds it; `PgCluster` and `ServerProcess` retry with a new port when
/// that happens.
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0 to find a free TCP port")?;
    let port = listener.local_addr().context("reading the address of the port-0 listener")?.port();
    Ok(port)
}

/// Creates a fresh temporary directory that is removed when the returned value is dropped.
pub fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("stockpool-test-").tempdir().context("creating a temporary directory")
}
