//! Shoppers: generated from the scenario and a seed, or replayed from a seller's orders.
//!
//! Traffic is made once per run, before any strategy sees it, so every strategy faces
//! exactly the same shoppers at the same instants with the same order latencies. A
//! shopper is what someone wanted; what they got depends on what the channel showed.

use crate::catalog::{Catalog, Picker};
use crate::rng::Rng;
use crate::scenario::{Scenario, DAY_MS, HOUR_MS, SECOND_MS};
use anyhow::{bail, Context};

/// One shopper arriving on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shopper {
    /// Milliseconds since the start.
    pub at: i64,
    pub channel: usize,
    /// (SKU index, units wanted), distinct SKUs.
    pub lines: Vec<(usize, i64)>,
    /// Milliseconds since the start when stockpool hears of the order, if there is one.
    pub reported_at: i64,
}

/// Most lines one generated shopper wants.
const LINES_PER_SHOPPER_MAX: usize = 3;

/// Generates every shopper of the scenario, in time order.
pub fn generate(s: &Scenario, catalog: &Catalog, seed: u64) -> Vec<Shopper> {
    let end = i64::from(s.days) * DAY_MS;
    let all = Picker::new(catalog, |_| true);
    let mut out = Vec::new();
    for (ci, c) in s.channels.iter().enumerate() {
        let mut rng = Rng::derive(seed, 1 + ci as u64);
        // Rate is constant within each hour; exponential gaps are memoryless, so starting
        // afresh at each hour boundary is exact.
        let hours = end / HOUR_MS;
        for h in 0..hours {
            let per_hour = c.shoppers_per_day / 24.0 * f64::from(s.daily_cycle_percent[(h % 24) as usize]) / 100.0;
            arrivals(&mut rng, h * HOUR_MS, (h + 1) * HOUR_MS, per_hour, |rng, at| {
                out.push(shopper(s, catalog, &all, rng, ci, at));
            });
        }
    }
    for (fi, f) in s.flash_sales.iter().enumerate() {
        let ci = s.channels.iter().position(|c| c.code == f.channel).expect("validated");
        let picker = Picker::new(catalog, |d| d.sku.starts_with(&f.sku_prefix));
        if picker.is_empty() {
            continue;
        }
        let mut rng = Rng::derive(seed, 1000 + fi as u64);
        let start = (f.start_hour * HOUR_MS as f64).round() as i64;
        let stop = (start + (f.hours * HOUR_MS as f64).round() as i64).min(end);
        arrivals(&mut rng, start, stop, f.shoppers_per_hour, |rng, at| {
            out.push(shopper(s, catalog, &picker, rng, ci, at));
        });
    }
    out.sort_by_key(|sh| (sh.at, sh.channel));
    out
}

/// Poisson arrivals at `per_hour` in `[from, to)`.
fn arrivals(rng: &mut Rng, from: i64, to: i64, per_hour: f64, mut f: impl FnMut(&mut Rng, i64)) {
    if per_hour <= 0.0 {
        return;
    }
    let mean_ms = HOUR_MS as f64 / per_hour;
    let mut t = from as f64;
    loop {
        t += rng.exponential(mean_ms);
        if t >= to as f64 {
            return;
        }
        f(rng, t as i64);
    }
}

fn shopper(s: &Scenario, catalog: &Catalog, picker: &Picker, rng: &mut Rng, channel: usize, at: i64) -> Shopper {
    let mut lines: Vec<(usize, i64)> = Vec::new();
    let first = picker.pick(rng);
    lines.push((first, quantity(s, rng)));
    while lines.len() < LINES_PER_SHOPPER_MAX && rng.percent(s.orders.multi_line_percent) {
        let sku = catalog.listed[rng.below(catalog.listed.len() as u64) as usize];
        let q = quantity(s, rng);
        if !lines.iter().any(|(o, _)| *o == sku) {
            lines.push((sku, q));
        }
    }
    let reported_at = report_time(s, rng, channel, at);
    Shopper { at, channel, lines, reported_at }
}

fn quantity(s: &Scenario, rng: &mut Rng) -> i64 {
    let w = &s.orders.quantity_weights;
    let total: u64 = w.iter().map(|x| u64::from(*x)).sum();
    let mut r = rng.below(total);
    for (i, x) in w.iter().enumerate() {
        if r < u64::from(*x) {
            return i as i64 + 1;
        }
        r -= u64::from(*x);
    }
    1
}

/// When stockpool hears of an order taken at `at`: the channel's latency, then its next poll.
fn report_time(s: &Scenario, rng: &mut Rng, channel: usize, at: i64) -> i64 {
    let c = &s.channels[channel];
    let [lo, hi] = c.order_latency_seconds;
    let t = at + rng.between(lo * SECOND_MS, hi * SECOND_MS);
    if c.order_poll_seconds > 0 {
        let p = c.order_poll_seconds * SECOND_MS;
        (t + p - 1) / p * p
    } else {
        t
    }
}

/// Most rows a replayed order history may have.
pub const REPLAY_ROWS_MAX: usize = 10_000_000;

/// Reads a seller's order history as shoppers: a CSV with the header
/// `time,channel,sku,quantity[,order]`. `time` is seconds since the start of the
/// simulation or a UTC date-time `YYYY-MM-DD HH:MM[:SS]` (or with a `T` and a `Z`), counted
/// from midnight of the first row's day. Rows of one channel with the same `order` are one
/// shopper's lines. Returns the shoppers and the days they span.
pub fn replay(s: &Scenario, catalog: &Catalog, csv: &str, seed: u64) -> anyhow::Result<(Vec<Shopper>, u32)> {
    let mut rows = csv.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = rows.next().context("the order history is empty")?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(ti), Some(ci), Some(si), Some(qi)) = (col("time"), col("channel"), col("sku"), col("quantity")) else {
        bail!("the order history needs a header with time, channel, sku and quantity (and optionally order)");
    };
    let oi = col("order");
    let mut origin: Option<i64> = None;
    let mut parsed: Vec<(i64, usize, String, usize, i64)> = Vec::new();
    for (n, line) in rows {
        if parsed.len() >= REPLAY_ROWS_MAX {
            bail!("the order history has more than {REPLAY_ROWS_MAX} rows");
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let at_line = || format!("line {}", n + 1);
        let time = get(ti);
        let at = match time.parse::<i64>() {
            Ok(secs) => secs * SECOND_MS,
            Err(_) => {
                let abs = parse_datetime(time).with_context(|| format!("{}: time {time:?}", at_line()))?;
                let o = *origin.get_or_insert(abs - abs.rem_euclid(DAY_MS));
                abs - o
            }
        };
        if at < 0 {
            bail!("{}: time is before the start", at_line());
        }
        let channel = s
            .channels
            .iter()
            .position(|c| c.code == get(ci))
            .with_context(|| format!("{}: unknown channel {:?}", at_line(), get(ci)))?;
        let sku = catalog
            .index(get(si))
            .filter(|i| catalog.skus[*i].listed())
            .with_context(|| format!("{}: unknown or unlisted SKU {:?}", at_line(), get(si)))?;
        let q: i64 = get(qi)
            .parse()
            .ok()
            .filter(|q| *q > 0)
            .with_context(|| format!("{}: quantity must be 1 or more", at_line()))?;
        let order = oi.map(|i| get(i).to_string()).filter(|o| !o.is_empty()).unwrap_or_else(|| format!("row{n}"));
        parsed.push((at, channel, order, sku, q));
    }
    // Group rows into shoppers by (channel, order), keeping the first row's time.
    let mut out: Vec<Shopper> = Vec::new();
    let mut index: std::collections::BTreeMap<(usize, String), usize> = std::collections::BTreeMap::new();
    for (at, channel, order, sku, q) in parsed {
        match index.get(&(channel, order.clone())) {
            Some(&i) => {
                let lines = &mut out[i].lines;
                match lines.iter_mut().find(|(s, _)| *s == sku) {
                    Some(l) => l.1 += q,
                    None => lines.push((sku, q)),
                }
            }
            None => {
                index.insert((channel, order), out.len());
                out.push(Shopper { at, channel, lines: vec![(sku, q)], reported_at: 0 });
            }
        }
    }
    let mut rng = Rng::derive(seed, 99);
    out.sort_by_key(|sh| (sh.at, sh.channel));
    for sh in &mut out {
        sh.reported_at = report_time(s, &mut rng, sh.channel, sh.at);
    }
    let last = out.last().map_or(0, |sh| sh.at);
    let days = (last / DAY_MS + 1) as u32;
    Ok((out, days))
}

/// `YYYY-MM-DD HH:MM[:SS]` (also `T` between and an optional `Z`) as ms since the epoch, UTC.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse()).collect::<Result<_, _>>()?;
    let t: Vec<i64> = time.split(':').map(|x| x.parse()).collect::<Result<_, _>>()?;
    if d.len() != 3 || !(2..=3).contains(&t.len()) {
        bail!("expected YYYY-MM-DD HH:MM[:SS]");
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(0..24).contains(&t[0]) || !(0..60).contains(&t[1]) {
        bail!("date or time out of range");
    }
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = t.get(2).copied().unwrap_or(0);
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60 * SECOND_MS + secs * SECOND_MS)
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn dates_count_from_the_epoch() {
        assert_eq!(parse_datetime("1970-01-01 00:00").unwrap(), 0);
        assert_eq!(parse_datetime("2025-01-01T00:00:00Z").unwrap(), 1_735_689_600_000);
        assert_eq!(parse_datetime("2024-03-01 01:02:03").unwrap(), 1_709_254_923_000);
    }
}
