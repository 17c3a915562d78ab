//! The testkit's own tests, one binary as the style guide asks: `pg` checks the throwaway
//! PostgreSQL cluster, `server` checks `ServerProcess` against the `fake-stockpool` stand-in,
//! `receiver` checks `WebhookReceiver`.

mod pg;
mod receiver;
mod server;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)).is_ok()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
