//! SPEC section 5, sync to channels: the push policy, one behaviour per test.
//!
//! Each test drives a `PushPolicy` through `Run`, which writes every decision into a
//! transcript (`@ms store: batch #id [listing=quantity ...]`, `@ms store: nothing, wake
//! @ms`), and `check` compares the transcript with an inline snapshot. Times are
//! milliseconds from 0; store 1 is `shop`, store 2 `etsy`, store 3 `amazon`, store 4 `woo`.

use expect_test::{expect, Expect};
use std::fmt::Write;
use stockpool_core::push::*;
use stockpool_core::{ListingId, Schedule, StoreId, Timestamp};

const SHOP: StoreId = StoreId(1);
const ETSY: StoreId = StoreId(2);
const AMAZON: StoreId = StoreId(3);
const WOO: StoreId = StoreId(4);

fn name(s: StoreId) -> &'static str {
    match s.0 {
        1 => "shop",
        2 => "etsy",
        3 => "amazon",
        _ => "woo",
    }
}

/// A realtime store: batches of `batch_max`, a generous budget, immediate intake.
fn realtime(batch_max: usize) -> PushConfig {
    PushConfig { batch_max, rate: Rate::per_second(100), ..PushConfig::default() }
}

/// A policy, a fake clock and the transcript of what it decided.
struct Run {
    p: PushPolicy,
    now: i64,
    log: String,
}

impl Run {
    fn new() -> Run {
        Run { p: PushPolicy::new(7), now: 0, log: String::new() }
    }

    fn at(&mut self, ms: i64) -> &mut Run {
        self.now = ms;
        self
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.now)
    }

    fn store(&mut self, s: StoreId, config: PushConfig) -> &mut Run {
        self.p.configure_store(s, config, Timestamp(self.now));
        self
    }

    fn settled(&mut self, s: StoreId, l: u64, q: i64) -> &mut Run {
        self.p.set_settled(s, ListingId(l), Figure::quantity(q));
        self
    }

    fn target(&mut self, s: StoreId, l: u64, q: i64) -> &mut Run {
        let now = self.now();
        self.p.set_target(s, ListingId(l), Figure::quantity(q), now);
        self
    }

    /// Claims a batch now and writes it (or when to wake) into the transcript.
    fn poll(&mut self, s: StoreId) -> Option<Batch> {
        let now = self.now();
        match self.p.poll_batch(s, now) {
            Some(b) => {
                let pushes: Vec<String> = b
                    .pushes
                    .iter()
                    .map(|p| {
                        let mut t = format!("l{}={}", p.listing.0, p.figure.quantity);
                        if p.attempt > 1 {
                            let _ = write!(t, " (attempt {})", p.attempt);
                        }
                        if !matches!(p.reason, PushReason::Changed) {
                            let _ = write!(t, " ({:?})", p.reason);
                        }
                        t
                    })
                    .collect();
                let _ = writeln!(self.log, "@{} {}: batch #{} [{}]", self.now, name(s), b.id.0, pushes.join(" "));
                Some(b)
            }
            None => {
                let wake = match self.p.next_wakeup(s) {
                    Some(t) => format!("wake @{}", t.0),
                    None => "nothing pending".to_string(),
                };
                let _ = writeln!(self.log, "@{} {}: nothing, {wake}", self.now, name(s));
                None
            }
        }
    }

    /// Claims a batch and answers every push with `outcome`.
    fn send(&mut self, s: StoreId, outcome: Outcome) -> &mut Run {
        if let Some(b) = self.poll(s) {
            let outcomes: Vec<(ListingId, Outcome)> = b.pushes.iter().map(|p| (p.listing, outcome)).collect();
            let now = self.now();
            self.p.handle_outcomes(s, b.id, &outcomes, now);
        }
        self
    }

    fn ok(&mut self, s: StoreId) -> &mut Run {
        self.send(s, Outcome::Ok)
    }

    /// Polls at every wakeup of `s`, answering Ok, until nothing is pending or `until`.
    fn drive(&mut self, s: StoreId, until: i64) -> &mut Run {
        for _ in 0..100 {
            let Some(t) = self.p.next_wakeup(s) else { break };
            if t.0 > until {
                let _ = writeln!(self.log, "@{} {}: wake @{} is past the end", self.now, name(s), t.0);
                break;
            }
            self.now = self.now.max(t.0);
            self.ok(s);
        }
        self
    }

    fn note(&mut self, text: &str) -> &mut Run {
        let _ = writeln!(self.log, "-- {text}");
        self
    }
}

#[track_caller]
fn check(script: impl FnOnce(&mut Run), expected: Expect) {
    let mut run = Run::new();
    script(&mut run);
    expected.assert_eq(&run.log);
}

#[test]
fn one_pending_push_per_listing_carries_the_latest_value() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 9);
            r.target(SHOP, 1, 8).target(SHOP, 1, 7).target(SHOP, 1, 6);
            r.ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=6]
            @0 shop: nothing, nothing pending
        "#]],
    );
}

#[test]
fn a_target_moved_while_in_flight_goes_after_the_outcome_never_before() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 9).target(SHOP, 1, 8);
            let b = r.poll(SHOP).unwrap();
            r.target(SHOP, 1, 7).note("l1 is in flight with 8: 7 waits");
            r.poll(SHOP);
            r.p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Ok)], r.now());
            r.ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=8]
            -- l1 is in flight with 8: 7 waits
            @0 shop: nothing, nothing pending
            @0 shop: batch #2 [l1=7]
        "#]],
    );
}

#[test]
fn a_round_trip_to_the_settled_figure_is_no_push() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 5);
            r.target(SHOP, 1, 3).target(SHOP, 1, 5).note("back to what the channel shows");
            r.poll(SHOP);
            r.note("in flight, the comparison waits for the outcome");
            r.target(SHOP, 1, 3);
            let b = r.poll(SHOP).unwrap();
            r.target(SHOP, 1, 5);
            r.p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Ok)], r.now());
            r.ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            -- back to what the channel shows
            @0 shop: nothing, nothing pending
            -- in flight, the comparison waits for the outcome
            @0 shop: batch #1 [l1=3]
            @0 shop: batch #2 [l1=5]
            @0 shop: nothing, nothing pending
        "#]],
    );
}

#[test]
fn batches_hold_at_most_batch_max_oldest_queued_first() {
    check(
        |r| {
            r.store(SHOP, realtime(2));
            for l in [5, 3, 4, 1, 2] {
                r.target(SHOP, l, 10 + l as i64);
            }
            r.ok(SHOP).ok(SHOP).ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l5=15 l3=13]
            @0 shop: batch #2 [l4=14 l1=11]
            @0 shop: batch #3 [l2=12]
            @0 shop: nothing, nothing pending
        "#]],
    );
}

#[test]
fn no_batch_leaves_beyond_the_bucket_and_next_wakeup_says_when_it_refills() {
    check(
        |r| {
            // Burst of 2 calls, then one call every 1.5 s.
            r.store(SHOP, PushConfig { batch_max: 1, rate: Rate { burst: 2, refill: 2, per_ms: 3000 }, ..realtime(1) });
            for l in 1..=4 {
                r.target(SHOP, l, 1);
            }
            r.ok(SHOP).ok(SHOP).ok(SHOP);
            r.at(1499).ok(SHOP);
            r.at(1500).ok(SHOP).ok(SHOP);
            r.drive(SHOP, 10_000);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=1]
            @0 shop: batch #2 [l2=1]
            @0 shop: nothing, wake @1500
            @1499 shop: nothing, wake @1500
            @1500 shop: batch #3 [l3=1]
            @1500 shop: nothing, wake @3000
            @3000 shop: batch #4 [l4=1]
        "#]],
    );
}

#[test]
fn a_batch_costs_per_call_and_per_push_and_is_cut_to_what_the_bucket_holds() {
    check(
        |r| {
            // Shopify-like: 10 points at most, 1 point a second; a call costs 1 + 2 a push.
            let config = PushConfig {
                batch_max: 250,
                rate: Rate { burst: 10, refill: 1, per_ms: 1000 },
                cost_per_batch: 1,
                cost_per_push: 2,
                ..PushConfig::default()
            };
            r.store(SHOP, config);
            for l in 1..=6 {
                r.target(SHOP, l, 1);
            }
            r.note("a full bucket covers 4 pushes (9 points), not 6 (13)");
            r.ok(SHOP).ok(SHOP);
            r.drive(SHOP, 60_000);
        },
        expect![[r#"
            -- a full bucket covers 4 pushes (9 points), not 6 (13)
            @0 shop: batch #1 [l1=1 l2=1 l3=1 l4=1]
            @0 shop: nothing, wake @4000
            @4000 shop: batch #2 [l5=1 l6=1]
        "#]],
    );
}

#[test]
fn the_channels_reported_budget_overrides_the_declared_one() {
    check(
        |r| {
            r.store(SHOP, PushConfig { rate: Rate::per_second(10), ..realtime(1) });
            r.target(SHOP, 1, 1).target(SHOP, 2, 1);
            r.p.report_rate(
                SHOP,
                RateReport { available: Some(0), rate: Some(Rate { burst: 4, refill: 1, per_ms: 2000 }) },
                r.now(),
            );
            r.note("the channel says: 0 left, 1 call per 2 s");
            r.ok(SHOP);
            r.drive(SHOP, 10_000);
        },
        expect![[r#"
            -- the channel says: 0 left, 1 call per 2 s
            @0 shop: nothing, wake @2000
            @2000 shop: batch #1 [l1=1]
            @4000 shop: batch #2 [l2=1]
        "#]],
    );
}

#[test]
fn throttle_holds_the_whole_store_until_retry_after() {
    check(
        |r| {
            r.store(SHOP, realtime(1));
            r.target(SHOP, 1, 1).target(SHOP, 2, 2);
            let b = r.poll(SHOP).unwrap();
            r.note("429 with Retry-After: 5 s");
            r.p.throttle(SHOP, 5000, r.now());
            r.p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Retry { retry_after_ms: Some(5000) })], r.now());
            r.at(4999).ok(SHOP);
            r.at(5000).ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=1]
            -- 429 with Retry-After: 5 s
            @4999 shop: nothing, wake @5000
            @5000 shop: batch #2 [l2=2]
            @5000 shop: batch #3 [l1=1 (attempt 2) (Retry)]
        "#]],
    );
}

/// The retry delays of one listing failing `n` times in a row, with `seed`.
fn retry_delays(seed: u64, n: usize) -> Vec<i64> {
    let mut p = PushPolicy::new(seed);
    let config = PushConfig { backoff_base_ms: 1000, backoff_max_ms: 16_000, ..realtime(1) };
    p.configure_store(SHOP, config, Timestamp(0));
    p.set_target(SHOP, ListingId(1), Figure::quantity(1), Timestamp(0));
    let mut now = Timestamp(0);
    let mut out = Vec::new();
    for attempt in 1..=n {
        now = p.next_wakeup(SHOP).unwrap().max(now);
        let b = p.poll_batch(SHOP, now).unwrap();
        assert_eq!(b.pushes[0].attempt as usize, attempt);
        p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Retry { retry_after_ms: None })], now);
        out.push(p.retry_at(ListingId(1), now).unwrap().0 - now.0);
    }
    out
}

#[test]
fn backoff_grows_is_capped_and_jittered_by_the_seed() {
    let a = retry_delays(1, 8);
    assert_eq!(a, retry_delays(1, 8), "the same seed gives the same delays");
    assert_ne!(a, retry_delays(2, 8), "another seed gives other delays");
    // Equal jitter: between half and all of min(16 s, 1 s x 2^(n-1)).
    for (i, d) in a.iter().enumerate() {
        let exp = (1000i64 << i).min(16_000);
        assert!(exp / 2 <= *d && *d <= exp, "retry {}: {d} ms outside [{}, {exp}]", i + 1, exp / 2);
    }
    assert!(a.windows(2).all(|w| w[0] <= w[1] || w[1] >= 8000), "grows until the cap: {a:?}");
    assert!(a[4..].iter().all(|d| *d >= 8000 && *d <= 16_000), "capped: {a:?}");
}

#[test]
fn one_failing_listing_does_not_block_the_others() {
    check(
        |r| {
            r.store(SHOP, PushConfig { backoff_base_ms: 10_000, ..realtime(10) });
            r.target(SHOP, 1, 1);
            r.send(SHOP, Outcome::Retry { retry_after_ms: None });
            r.target(SHOP, 2, 2).target(SHOP, 3, 3);
            r.ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=1]
            @0 shop: batch #2 [l2=2 l3=3]
            @0 shop: nothing, wake @7835
        "#]],
    );
}

#[test]
fn a_refused_figure_is_not_retried_until_the_target_moves_or_sync_now() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 0);
            r.target(SHOP, 1, 5).send(SHOP, Outcome::Failed);
            r.at(60_000).ok(SHOP);
            r.target(SHOP, 1, 5).note("the same figure again: still refused").ok(SHOP);
            r.target(SHOP, 1, 4).note("the target moved").ok(SHOP);
            r.note("Sync now pushes it although the channel has it").p.queue_all(SHOP, Timestamp(60_000));
            r.ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=5]
            @60000 shop: nothing, nothing pending
            -- the same figure again: still refused
            @60000 shop: nothing, nothing pending
            -- the target moved
            @60000 shop: batch #2 [l1=4]
            -- Sync now pushes it although the channel has it
            @60000 shop: batch #3 [l1=4 (SyncNow)]
            @60000 shop: nothing, nothing pending
        "#]],
    );
}

#[test]
fn stale_compare_and_set_takes_the_channels_quantity_and_pushes_again_at_once() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 5);
            r.target(SHOP, 1, 3);
            let b = r.poll(SHOP).unwrap();
            assert_eq!(b.pushes[0].settled, Some(Figure::quantity(5)), "compare-and-set expects what was last told");
            r.p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Stale { channel_quantity: 4 })], r.now());
            let again = r.poll(SHOP).unwrap();
            assert_eq!(again.pushes[0].settled, Some(Figure::quantity(4)));
            r.p.handle_outcomes(SHOP, again.id, &[(ListingId(1), Outcome::Ok)], r.now());
            r.ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=3]
            @0 shop: batch #2 [l1=3 (Stale)]
            @0 shop: nothing, nothing pending
        "#]],
    );
}

#[test]
fn drift_found_by_reconciliation_is_pushed_back_only_if_it_differs() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).settled(SHOP, 1, 5).settled(SHOP, 2, 5);
            r.target(SHOP, 1, 5).target(SHOP, 2, 5);
            r.note("the channel shows 7 for l1 and 5 for l2");
            let now = r.now();
            r.p.drift(SHOP, ListingId(1), 7, now);
            r.p.drift(SHOP, ListingId(2), 5, now);
            r.ok(SHOP).ok(SHOP);
            r.note("a batch's read-back finds l1 at 6");
            r.target(SHOP, 1, 4);
            r.send(SHOP, Outcome::Drift { channel_quantity: 6 });
            r.ok(SHOP);
        },
        expect![[r#"
            -- the channel shows 7 for l1 and 5 for l2
            @0 shop: batch #1 [l1=5 (Drift)]
            @0 shop: nothing, nothing pending
            -- a batch's read-back finds l1 at 6
            @0 shop: batch #2 [l1=4]
            @0 shop: batch #3 [l1=4 (Drift)]
        "#]],
    );
}

#[test]
fn every_minutes_sends_one_round_of_every_pending_listing_per_period() {
    check(
        |r| {
            let config = PushConfig { schedule: Schedule::EveryMinutes(10), ..realtime(2) };
            r.store(AMAZON, config);
            for l in 1..=3 {
                r.target(AMAZON, l, 1);
            }
            r.note("one round: every pending listing, in batches of 2");
            r.ok(AMAZON).ok(AMAZON);
            r.at(60_000).target(AMAZON, 4, 1).target(AMAZON, 1, 2);
            r.ok(AMAZON);
            r.drive(AMAZON, 3_600_000);
        },
        expect![[r#"
            -- one round: every pending listing, in batches of 2
            @0 amazon: batch #1 [l1=1 l2=1]
            @0 amazon: batch #2 [l3=1]
            @60000 amazon: nothing, wake @600000
            @600000 amazon: batch #3 [l4=1 l1=2]
        "#]],
    );
}

#[test]
fn a_paused_store_claims_nothing_while_its_targets_coalesce() {
    check(
        |r| {
            r.store(SHOP, PushConfig { paused: true, ..realtime(10) });
            r.target(SHOP, 1, 3).target(SHOP, 1, 2).ok(SHOP);
            assert_eq!(r.p.pending(SHOP), 1);
            r.p.set_paused(SHOP, false);
            r.note("unpaused").ok(SHOP).ok(SHOP);
        },
        expect![[r#"
            @0 shop: nothing, nothing pending
            -- unpaused
            @0 shop: batch #1 [l1=2]
            @0 shop: nothing, nothing pending
        "#]],
    );
}

/// shop takes webhooks; etsy is polled, with a bound of 6 minutes.
fn shop_and_polled_etsy(r: &mut Run) {
    r.store(SHOP, realtime(10));
    r.store(ETSY, PushConfig { intake: IntakeMode::polled(180), ..realtime(10) });
    r.settled(SHOP, 1, 5).settled(SHOP, 2, 5);
}

#[test]
fn an_increase_waits_for_a_slow_polled_store_and_a_decrease_does_not() {
    check(
        |r| {
            shop_and_polled_etsy(r);
            r.at(1000).target(SHOP, 1, 8).target(SHOP, 2, 4);
            r.ok(SHOP).ok(SHOP);
            r.note("etsy's poll that started before the increase completes: not enough");
            r.p.intake_caught_up(ETSY, Timestamp(999));
            r.at(2000).ok(SHOP);
            r.note("a poll that started at the increase completes");
            r.p.intake_caught_up(ETSY, Timestamp(1000));
            r.ok(SHOP);
        },
        expect![[r#"
            @1000 shop: batch #1 [l2=4]
            @1000 shop: nothing, wake @361000
            -- etsy's poll that started before the increase completes: not enough
            @2000 shop: nothing, wake @361000
            -- a poll that started at the increase completes
            @2000 shop: batch #2 [l1=8]
        "#]],
    );
}

#[test]
fn an_increase_waits_at_most_the_bound_under_a_stream_of_increases() {
    check(
        |r| {
            shop_and_polled_etsy(r);
            r.note("etsy never reports: the bound runs from the first increase");
            for (i, t) in [0, 100_000, 200_000, 300_000, 359_999].into_iter().enumerate() {
                r.at(t).target(SHOP, 1, 6 + i as i64).ok(SHOP);
            }
            r.drive(SHOP, 3_600_000);
        },
        expect![[r#"
            -- etsy never reports: the bound runs from the first increase
            @0 shop: nothing, wake @360000
            @100000 shop: nothing, wake @360000
            @200000 shop: nothing, wake @360000
            @300000 shop: nothing, wake @360000
            @359999 shop: nothing, wake @360000
            @360000 shop: batch #1 [l1=10]
        "#]],
    );
}

/// shop takes the order API; woo takes webhooks, with a bound of 2 minutes.
fn shop_and_webhook_woo(r: &mut Run) {
    r.store(SHOP, realtime(10));
    r.store(WOO, PushConfig { intake: IntakeMode::webhooks(60), ..realtime(10) });
    r.settled(SHOP, 1, 5).settled(SHOP, 2, 5);
}

#[test]
fn an_increase_waits_while_a_webhook_delivery_is_unprocessed_and_goes_once_it_is() {
    check(
        |r| {
            shop_and_webhook_woo(r);
            r.note("no delivery waiting: the increase goes at once");
            r.at(1000).target(SHOP, 1, 8).ok(SHOP);
            r.note("a delivery of woo is received and not yet processed");
            r.p.intake_backlog(WOO, true);
            r.at(2000).target(SHOP, 1, 9).target(SHOP, 2, 4).ok(SHOP).ok(SHOP);
            r.note("it is processed");
            r.p.intake_backlog(WOO, false);
            r.at(3000).ok(SHOP);
        },
        expect![[r#"
            -- no delivery waiting: the increase goes at once
            @1000 shop: batch #1 [l1=8]
            -- a delivery of woo is received and not yet processed
            @2000 shop: batch #2 [l2=4]
            @2000 shop: nothing, wake @122000
            -- it is processed
            @3000 shop: batch #3 [l1=9]
        "#]],
    );
}

#[test]
fn an_increase_waits_for_a_stuck_webhook_delivery_at_most_its_bound() {
    check(
        |r| {
            shop_and_webhook_woo(r);
            r.p.intake_backlog(WOO, true);
            r.note("woo's delivery is never processed: the bound runs from the increase");
            r.at(0).target(SHOP, 1, 6).ok(SHOP);
            r.at(60_000).target(SHOP, 1, 7).ok(SHOP);
            r.drive(SHOP, 3_600_000);
        },
        expect![[r#"
            -- woo's delivery is never processed: the bound runs from the increase
            @0 shop: nothing, wake @120000
            @60000 shop: nothing, wake @120000
            @120000 shop: batch #1 [l1=7]
        "#]],
    );
}

#[test]
fn a_workspace_of_immediate_stores_pushes_increases_at_once() {
    check(
        |r| {
            r.store(SHOP, realtime(10)).store(ETSY, realtime(10));
            r.settled(SHOP, 1, 5).settled(ETSY, 2, 5);
            r.target(SHOP, 1, 8).target(ETSY, 2, 9);
            r.ok(SHOP).ok(ETSY);
        },
        expect![[r#"
            @0 shop: batch #1 [l1=8]
            @0 etsy: batch #2 [l2=9]
        "#]],
    );
}

#[test]
fn a_listing_never_pushed_goes_at_once_whatever_the_guard() {
    check(
        |r| {
            shop_and_polled_etsy(r);
            r.target(SHOP, 9, 8).ok(SHOP);
        },
        expect![[r#"
            @0 shop: batch #1 [l9=8]
        "#]],
    );
}

#[test]
fn push_limits_hold_at_the_limit_and_cut_one_past_it() {
    let l = stockpool_core::Limits::DEFAULT;
    let mut p = PushPolicy::new(1);
    let configured = |p: &mut PushPolicy, config: PushConfig| {
        p.configure_store(SHOP, config, Timestamp(0));
        *p.config(SHOP).unwrap()
    };
    for (asked, got) in [(l.push_batch_max, l.push_batch_max), (l.push_batch_max + 1, l.push_batch_max)] {
        assert_eq!(configured(&mut p, PushConfig { batch_max: asked, ..realtime(1) }).batch_max, got);
    }
    for (asked, got) in
        [(l.intake_bound_ms_max, l.intake_bound_ms_max), (l.intake_bound_ms_max + 1, l.intake_bound_ms_max)]
    {
        let c = configured(&mut p, PushConfig { intake: IntakeMode::Reported { bound_ms: asked }, ..realtime(1) });
        assert_eq!(c.intake, IntakeMode::Reported { bound_ms: got });
    }
    for (asked, got) in [(l.backoff_ms_max, l.backoff_ms_max), (l.backoff_ms_max + 1, l.backoff_ms_max)] {
        assert_eq!(configured(&mut p, PushConfig { backoff_max_ms: asked, ..realtime(1) }).backoff_max_ms, got);
    }
    assert_eq!(IntakeMode::polled(300), IntakeMode::Reported { bound_ms: 600_000 });
    assert_eq!(IntakeMode::polled(301), IntakeMode::Reported { bound_ms: 600_000 }, "never more than 10 minutes");
    assert_eq!(IntakeMode::polled(60), IntakeMode::Reported { bound_ms: 120_000 }, "twice the polling interval");
    assert_eq!(
        IntakeMode::webhooks(60),
        IntakeMode::Webhooks { bound_ms: 120_000 },
        "a webhook store's bound is the same"
    );
    assert_eq!(IntakeMode::webhooks(301), IntakeMode::Webhooks { bound_ms: 600_000 });
    let c = configured(
        &mut p,
        PushConfig { intake: IntakeMode::Webhooks { bound_ms: l.intake_bound_ms_max + 1 }, ..realtime(1) },
    );
    assert_eq!(c.intake, IntakeMode::Webhooks { bound_ms: l.intake_bound_ms_max });
    for (asked, got) in [(l.retry_after_ms_max, l.retry_after_ms_max), (l.retry_after_ms_max + 1, l.retry_after_ms_max)]
    {
        let mut p = PushPolicy::new(1);
        p.configure_store(SHOP, realtime(1), Timestamp(0));
        p.set_target(SHOP, ListingId(1), Figure::quantity(1), Timestamp(0));
        p.throttle(SHOP, asked, Timestamp(0));
        assert_eq!(p.next_wakeup(SHOP), Some(Timestamp(got)));
    }
}

// ---- property: random workspaces, targets and faults converge ---------------------------

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// One store: batch_max, burst, refill period, cost per push, polled bound (None:
    /// immediate), every_minutes schedule.
    type StoreSeed = (usize, i64, i64, i64, Option<i64>, bool);

    #[derive(Clone, Debug)]
    enum Op {
        Target {
            listing: u8,
            quantity: i64,
        },
        Advance {
            ms: i64,
        },
        Claim {
            store: u8,
        },
        /// Answers the store's batch in flight; one fault per push, from its seed.
        Answer {
            store: u8,
            faults: Vec<u8>,
            quantity: i64,
        },
        CaughtUp {
            store: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), 0i64..8).prop_map(|(listing, quantity)| Op::Target { listing, quantity }),
            2 => (0i64..3000).prop_map(|ms| Op::Advance { ms }),
            3 => any::<u8>().prop_map(|store| Op::Claim { store }),
            3 => (any::<u8>(), prop::collection::vec(any::<u8>(), 4), 0i64..8)
                .prop_map(|(store, faults, quantity)| Op::Answer { store, faults, quantity }),
            1 => any::<u8>().prop_map(|store| Op::CaughtUp { store }),
        ]
    }

    fn store_seed() -> impl Strategy<Value = StoreSeed> {
        (1usize..=3, 2i64..=4, 200i64..=2000, 0i64..=1, prop::option::of(0i64..=5000), prop::bool::weighted(0.2))
    }

    /// The model: what each channel shows, what each batch cost, and every target version.
    struct Model {
        p: PushPolicy,
        now: i64,
        stores: Vec<(StoreId, PushConfig)>,
        /// Listing -> its store.
        listings: Vec<(ListingId, StoreId)>,
        channel: BTreeMap<ListingId, i64>,
        /// Per listing: the current target's version, and the newest version ever sent.
        version: BTreeMap<ListingId, (u64, i64)>,
        sent: BTreeMap<ListingId, u64>,
        /// Per store: (when, cost) of every batch claimed.
        spent: BTreeMap<StoreId, Vec<(i64, i64)>>,
        flying: BTreeMap<StoreId, Batch>,
    }

    impl Model {
        fn claim(&mut self, s: StoreId) -> Result<(), TestCaseError> {
            if self.flying.contains_key(&s) {
                prop_assert!(self.p.poll_batch(s, Timestamp(self.now)).is_none(), "two batches in flight on {s}");
                return Ok(());
            }
            let Some(b) = self.p.poll_batch(s, Timestamp(self.now)) else { return Ok(()) };
            let config = self.stores.iter().find(|(id, _)| *id == s).unwrap().1;
            prop_assert!(!b.pushes.is_empty() && b.pushes.len() <= config.batch_max, "batch of {}", b.pushes.len());
            for push in &b.pushes {
                let (v, q) = self.version[&push.listing];
                prop_assert_eq!(push.figure.quantity, q, "a push carries the newest target");
                let before = self.sent.insert(push.listing, v).unwrap_or(0);
                prop_assert!(v >= before, "{} sent version {v} after {before}", push.listing);
            }
            self.spent.entry(s).or_default().push((self.now, config.cost(b.pushes.len())));
            // Token bucket, starting full: over any run of batches, what they cost is at
            // most the burst plus what the period between the first and last refilled.
            let spent = &self.spent[&s];
            let r = config.rate;
            for i in 0..spent.len() {
                let total: i64 = spent[i..].iter().map(|(_, c)| c).sum();
                let window = spent.last().unwrap().0 - spent[i].0;
                prop_assert!(total <= r.burst + window * r.refill / r.per_ms, "over budget on {s}: {spent:?}");
            }
            self.flying.insert(s, b);
            Ok(())
        }

        fn answer(&mut self, s: StoreId, faults: &[u8], quantity: i64) {
            let Some(b) = self.flying.remove(&s) else { return };
            let mut outcomes = Vec::new();
            let mut throttled = None;
            for (i, push) in b.pushes.iter().enumerate() {
                let l = push.listing;
                let o = match faults[i % faults.len()] % 8 {
                    0 => {
                        throttled = Some(i64::from(faults[0]) * 10);
                        Outcome::Retry { retry_after_ms: throttled }
                    }
                    1 => Outcome::Retry { retry_after_ms: None },
                    2 => {
                        // Another process changed the quantity: compare-and-set refuses.
                        self.channel.insert(l, quantity);
                        Outcome::Stale { channel_quantity: quantity }
                    }
                    3 => {
                        // A timeout after the channel applied it.
                        self.channel.insert(l, push.figure.quantity);
                        Outcome::Retry { retry_after_ms: None }
                    }
                    _ => {
                        self.channel.insert(l, push.figure.quantity);
                        Outcome::Ok
                    }
                };
                outcomes.push((l, o));
            }
            if let Some(ms) = throttled {
                self.p.throttle(s, ms, Timestamp(self.now));
            }
            self.p.handle_outcomes(s, b.id, &outcomes, Timestamp(self.now));
        }

        fn answer_ok(&mut self, s: StoreId) {
            if let Some(b) = self.flying.remove(&s) {
                let outcomes: Vec<(ListingId, Outcome)> = b
                    .pushes
                    .iter()
                    .map(|p| {
                        self.channel.insert(p.listing, p.figure.quantity);
                        (p.listing, Outcome::Ok)
                    })
                    .collect();
                self.p.handle_outcomes(s, b.id, &outcomes, Timestamp(self.now));
            }
        }
    }

    fn run(stores: &[StoreSeed], per_store: usize, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut m = Model {
            p: PushPolicy::new(42),
            now: 0,
            stores: Vec::new(),
            listings: Vec::new(),
            channel: BTreeMap::new(),
            version: BTreeMap::new(),
            sent: BTreeMap::new(),
            spent: BTreeMap::new(),
            flying: BTreeMap::new(),
        };
        for (i, (batch_max, burst, period, per_push, bound, every)) in stores.iter().enumerate() {
            let s = StoreId(i as u64 + 1);
            let config = PushConfig {
                schedule: if *every { Schedule::EveryMinutes(1) } else { Schedule::Realtime },
                batch_max: *batch_max,
                rate: Rate { burst: *burst, refill: 1, per_ms: *period },
                cost_per_batch: 1,
                cost_per_push: *per_push,
                backoff_base_ms: 100,
                backoff_max_ms: 5000,
                intake: bound.map_or(IntakeMode::Immediate, |b| IntakeMode::Reported { bound_ms: b }),
                paused: false,
            };
            m.p.configure_store(s, config, Timestamp(0));
            m.stores.push((s, config));
            for j in 0..per_store {
                let l = ListingId((i * 10 + j) as u64 + 1);
                m.listings.push((l, s));
                m.channel.insert(l, 3);
                m.p.set_settled(s, l, Figure::quantity(3));
                m.version.insert(l, (0, 3));
            }
        }
        for op in ops {
            match op {
                Op::Target { listing, quantity } => {
                    let (l, s) = m.listings[*listing as usize % m.listings.len()];
                    let (v, q) = m.version[&l];
                    if q != *quantity {
                        m.version.insert(l, (v + 1, *quantity));
                    }
                    m.p.set_target(s, l, Figure::quantity(*quantity), Timestamp(m.now));
                }
                Op::Advance { ms } => m.now += ms,
                Op::Claim { store } => {
                    let s = m.stores[*store as usize % m.stores.len()].0;
                    m.claim(s)?;
                }
                Op::Answer { store, faults, quantity } => {
                    let s = m.stores[*store as usize % m.stores.len()].0;
                    m.answer(s, faults, *quantity);
                }
                Op::CaughtUp { store } => {
                    let s = m.stores[*store as usize % m.stores.len()].0;
                    m.p.intake_caught_up(s, Timestamp(m.now));
                }
            }
        }
        // Quiet: every outcome is Ok from now on, time moves to each wakeup.
        let ids: Vec<StoreId> = m.stores.iter().map(|(s, _)| *s).collect();
        for s in &ids {
            m.answer_ok(*s);
        }
        let mut steps = 0;
        loop {
            steps += 1;
            prop_assert!(steps < 10_000, "no quiet after 10,000 steps");
            let next = ids.iter().filter_map(|s| m.p.next_wakeup(*s).map(|t| (t, *s))).min();
            let Some((t, s)) = next else { break };
            m.now = m.now.max(t.0);
            m.claim(s)?;
            prop_assert!(m.flying.contains_key(&s), "woken at {} for {s}, nothing claimed", m.now);
            m.answer_ok(s);
        }
        for (l, _) in &m.listings {
            let want = m.p.target(*l).map_or(3, |f| f.quantity);
            prop_assert_eq!(m.channel[l], want, "{} shows the last target", l);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn every_channel_ends_at_its_last_target_and_never_goes_back(
            stores in prop::collection::vec(store_seed(), 1..=3),
            per_store in 1usize..=4,
            ops in prop::collection::vec(op(), 1..80),
        ) {
            run(&stores, per_store, &ops)?;
        }
    }
}

#[test]
fn a_read_back_spends_one_call_of_the_budget_and_never_overlaps_a_batch() {
    let t = Timestamp;
    let mut p = PushPolicy::new(7);
    // Two calls of burst, one more a second.
    let config = PushConfig { rate: Rate { burst: 2, refill: 1, per_ms: 1000 }, ..realtime(10) };
    p.configure_store(SHOP, config, t(0));
    p.set_target(SHOP, ListingId(1), Figure::quantity(5), t(0));
    let b = p.poll_batch(SHOP, t(0)).expect("the first batch goes at once");
    assert!(!p.poll_read(SHOP, t(0)), "no read while a batch is out");
    assert_eq!(p.next_read_at(SHOP), None);
    p.handle_outcomes(SHOP, b.id, &[(ListingId(1), Outcome::Ok)], t(10));

    assert!(p.poll_read(SHOP, t(10)), "the read takes the second call of the burst");
    p.set_target(SHOP, ListingId(2), Figure::quantity(3), t(20));
    assert!(p.poll_batch(SHOP, t(20)).is_none(), "no batch while the read is out");
    assert_eq!(p.next_wakeup(SHOP), None, "nothing to wake for until the read returns");
    assert!(!p.poll_read(SHOP, t(20)), "one read at a time");
    p.read_done(SHOP);

    assert!(p.poll_batch(SHOP, t(20)).is_none(), "the bucket is spent");
    let refilled = p.next_wakeup(SHOP).expect("a push is pending");
    assert_eq!(p.next_read_at(SHOP), Some(refilled), "a read waits for the same refill");
    assert!(p.poll_read(SHOP, refilled));
    p.read_done(SHOP);

    p.throttle(SHOP, 5000, refilled);
    let held = p.next_read_at(SHOP).expect("not paused");
    assert!(held >= t(refilled.0 + 5000), "a throttle holds reads too: {held:?}");
    assert!(!p.poll_read(SHOP, t(refilled.0 + 4999)));
}
