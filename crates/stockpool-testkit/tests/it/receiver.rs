//! `WebhookReceiver` answers as its responder says and records what it read, and
//! `rate_excess` tells a paced stream of requests from one that exceeds its bucket.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use stockpool_testkit::receiver::{rate_excess, Seeded};
use stockpool_testkit::{Answer, WebhookReceiver};

/// Sends one POST with `body` and returns everything the receiver wrote back.
fn post(url: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /push HTTP/1.1\r\nHost: {addr}\r\nX-Stockpool-Signature: sha256=ab\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer
}

#[test]
fn the_receiver_answers_as_told_and_records_each_request() {
    let script = [Answer::Status { status: 429, retry_after_seconds: Some(3) }, Answer::Drop, Answer::OK];
    let r = WebhookReceiver::start(Box::new(move |_, n| script[n.min(2)])).unwrap();
    let first = post(r.url(), r#"{"quantity":7}"#);
    assert!(first.starts_with("HTTP/1.1 429 ") && first.contains("retry-after: 3\r\n"), "{first}");
    assert_eq!(post(r.url(), "{}"), "", "a dropped request gets no answer at all");
    assert!(post(r.url(), "{}").starts_with("HTTP/1.1 200 "));
    let got = r.received();
    assert_eq!(got.len(), 3);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/push"));
    assert_eq!(got[0].body, br#"{"quantity":7}"#);
    assert_eq!(got[0].header("x-stockpool-signature"), Some("sha256=ab"));
    assert_eq!(got.iter().map(|g| g.answer).collect::<Vec<_>>(), script.to_vec());
    assert!(!got[1].answer.applied() && got[2].answer.heard_ok());
}

#[test]
fn a_slow_answer_comes_after_its_delay() {
    let r = WebhookReceiver::start(Box::new(|_, _| Answer::Slow(Duration::from_millis(300)))).unwrap();
    let started = Instant::now();
    assert!(post(r.url(), "{}").starts_with("HTTP/1.1 200 "));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(r.received()[0].answer.applied() && !r.received()[0].answer.heard_ok());
}

#[test]
fn rate_excess_finds_a_window_over_the_bucket() {
    let t0 = Instant::now();
    let at = |ms: &[u64]| ms.iter().map(|m| t0 + Duration::from_millis(*m)).collect::<Vec<_>>();
    // Ten a second, evenly, after a burst of ten: within burst 10, rate 10.
    let paced: Vec<u64> = (0..10).map(|_| 0).chain((1..=30).map(|i| i * 100)).collect();
    assert_eq!(rate_excess(&at(&paced), 10, 10, 0), None);
    // Twelve at once exceed a burst of ten even with one of slack.
    assert_eq!(rate_excess(&at(&[0; 12]), 10, 10, 1), Some((12, 0)));
    // Twenty within one second exceed 10 + 10.
    let fast: Vec<u64> = (0..22).map(|i| i * 45).collect();
    assert!(rate_excess(&at(&fast), 10, 10, 1).is_some());
}

#[test]
fn the_seeded_generator_repeats_itself() {
    let draws = |seed| {
        let mut g = Seeded::new(seed);
        (0..5).map(|_| g.below(100)).collect::<Vec<_>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(7), draws(8));
}
