//! A stand-in for the `stockpool` binary that speaks its `serve` command line and answers
//! `GET /readyz`, so the testkit can test `ServerProcess` without building the real server.
//!
//! `FAKE_STOCKPOOL_NEVER_READY=1` makes `/readyz` answer 503 forever, to test the timeout.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

/// Bound on the request head we read; probes send a few hundred bytes.
const REQUEST_BYTES_MAX: usize = 8 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| args.iter().position(|arg| arg == flag).and_then(|i| args.get(i + 1)).cloned();
    let (Some("serve"), Some(database), Some(listen)) =
        (args.first().map(String::as_str), value_of("--database"), value_of("--listen"))
    else {
        eprintln!("usage: fake-stockpool serve --database URL --listen ADDR");
        std::process::exit(2);
    };
    let never_ready = std::env::var_os("FAKE_STOCKPOOL_NEVER_READY").is_some();
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("fake-stockpool: binding {listen}: {error}");
            std::process::exit(1);
        }
    };
    println!("fake-stockpool: listening on {listen} with database {database}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_BYTES_MAX {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
        let is_readyz = request.starts_with(b"GET /readyz ");
        let (status, body) = match (is_readyz, never_ready) {
            (true, false) => ("200 OK", "ready"),
            (true, true) => ("503 Service Unavailable", "not ready"),
            (false, _) => ("404 Not Found", "not found"),
        };
        let response =
            format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let _ = stream.write_all(response.as_bytes());
    }
}
