//! Limits on failed credentials: wrong dashboard passwords per account and per client
//! address, wrong API tokens per client address (SPEC section 8's "limits on everything").
//!
//! A fixed window per key: once a key has failed `max` times within `window_ms`, every
//! attempt under it is answered 429 with `Retry-After` (the seconds left in the window)
//! before any password is hashed or token looked up, even with the right credential, so
//! a flood costs the server almost nothing. A successful login clears its account's
//! count. The table holds at most `KEYS_MAX` keys; past that, windows that have ended are
//! dropped, and then keys still under their limit, so a flood of new keys cannot push out
//! a key that is locked. Time is the store's clock (`Storage::now`), so tests move it.

use std::collections::HashMap;
use std::sync::Mutex;

/// Wrong passwords for one email before its logins wait.
pub const LOGIN_FAILURES_PER_ACCOUNT: u32 = 10;
/// Wrong passwords or API tokens from one client address before it waits (generous: a
/// shop's staff may share one address).
pub const FAILURES_PER_ADDRESS: u32 = 100;
/// The window both counts run over.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Keys the table holds (accounts and addresses together).
pub const KEYS_MAX: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Window {
    start: i64,
    failures: u32,
}

/// One kind of failed attempt, counted per key.
#[derive(Debug)]
pub struct Attempts {
    max: u32,
    window_ms: i64,
    keys: Mutex<HashMap<String, Window>>,
}

impl Attempts {
    pub fn new(max: u32, window_ms: i64) -> Attempts {
        Attempts { max, window_ms, keys: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` to wait when `key` has used up its failures in this window.
    pub fn check(&self, key: &str, now: i64) -> Result<(), u64> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get(key) {
            Some(w) if w.failures >= self.max && now - w.start < self.window_ms => {
                let left_ms = w.start + self.window_ms - now;
                Err(((left_ms + 999) / 1000).max(1) as u64)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: &str, now: i64) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.contains_key(key) && keys.len() >= KEYS_MAX {
            let window_ms = self.window_ms;
            keys.retain(|_, w| now - w.start < window_ms);
            if keys.len() >= KEYS_MAX {
                let max = self.max;
                keys.retain(|_, w| w.failures >= max);
            }
            if keys.len() >= KEYS_MAX {
                return;
            }
        }
        let w = keys.entry(key.to_string()).or_insert(Window { start: now, failures: 0 });
        if now - w.start >= self.window_ms {
            *w = Window { start: now, failures: 0 };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Forgets `key`'s failures (a successful login).
    pub fn clear(&self, key: &str) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// The failure counts of one server.
#[derive(Debug)]
pub struct Limits {
    pub accounts: Attempts,
    pub addresses: Attempts,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            accounts: Attempts::new(LOGIN_FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS),
            addresses: Attempts::new(FAILURES_PER_ADDRESS, FAILURE_WINDOW_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_waits_after_its_failures_until_the_window_ends() {
        let a = Attempts::new(3, 60_000);
        for _ in 0..3 {
            assert_eq!(a.check("k", 1_000), Ok(()));
            a.fail("k", 1_000);
        }
        assert_eq!(a.check("k", 1_000), Err(60));
        assert_eq!(a.check("k", 60_500), Err(1));
        assert_eq!(a.check("other", 1_000), Ok(()));
        assert_eq!(a.check("k", 61_000), Ok(()));
        a.fail("k", 61_000);
        assert_eq!(a.check("k", 61_000), Ok(()), "a new window counts from zero");
        a.clear("k");
        assert_eq!(a.check("k", 61_000), Ok(()));
    }
}
