//! Failed-attempt limiter: a fixed one-minute window per key (a client
//! address for the token exchange and sign-in, an account for sign-in).
//! Successes are never limited, so a busy application is not throttled;
//! guessing is.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use parking_lot::Mutex;

const WINDOW_MS: i64 = 60_000;

#[derive(Debug)]
pub struct FailureLimiter<K = IpAddr> {
    limit: u32,
    windows: Mutex<HashMap<K, (i64, u32)>>,
}

impl<K: Hash + Eq> FailureLimiter<K> {
    pub fn new(limit: u32) -> Self {
        Self { limit, windows: Mutex::new(HashMap::new()) }
    }

    /// `Some(retry_after_seconds)` when `key` is over its limit.
    pub fn check(&self, key: &K, now_ms: i64) -> Option<u64> {
        let w = self.windows.lock();
        match w.get(key) {
            Some(&(start, count)) if now_ms - start < WINDOW_MS && count >= self.limit => {
                Some((((start + WINDOW_MS - now_ms) + 999) / 1000).max(1) as u64)
            }
            _ => None,
        }
    }

    pub fn record_failure(&self, key: K, now_ms: i64) {
        let mut w = self.windows.lock();
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
        }
        let e = w.entry(key).or_insert((now_ms, 0));
        if now_ms - e.0 >= WINDOW_MS {
            *e = (now_ms, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_n_failures_in_window() {
        let l = FailureLimiter::new(3);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(l.check(&ip, 1000), None);
            l.record_failure(ip, 1000);
        }
        assert_eq!(l.check(&ip, 1000), Some(60));
        assert_eq!(l.check(&ip, 31_000), Some(30));
        assert_eq!(l.check(&ip, 61_000), None);
    }
}
