//! Failed-attempt limiter: failures per key (a client address bucket, a
//! client and API key pair, an account) over a sliding one-minute window.
//!
//! Memory is bounded and nothing is ever scanned: counts live in two
//! generations, the current minute and the one before. When a minute ends
//! the current map becomes the previous one and the old previous map is
//! dropped whole (after the lock is released), so expiry costs O(1) under
//! the lock. A key's count is its current failures plus the previous
//! minute's, weighted by how much of that minute still overlaps the sliding
//! window. At most `capacity` keys are tracked per minute; a key that finds
//! the table full is reported over its limit (`record_failure` says so):
//! callers that verify credentials first lose nothing by that, since only
//! failures are ever refused.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use parking_lot::Mutex;

const WINDOW_MS: i64 = 60_000;

/// Keys tracked per minute by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct FailureLimiter<K = IpAddr> {
    limit: u32,
    capacity: usize,
    state: Mutex<Generations<K>>,
}

#[derive(Debug)]
struct Generations<K> {
    /// Start of the current minute (ms).
    start: i64,
    current: HashMap<K, u32>,
    previous: HashMap<K, u32>,
}

impl<K> Generations<K> {
    /// Moves to the minute holding `now`; the map that falls out is
    /// returned, to be dropped outside the lock.
    fn rotate(&mut self, now_ms: i64) -> Option<HashMap<K, u32>> {
        let elapsed = now_ms - self.start;
        if elapsed < WINDOW_MS {
            return None;
        }
        self.start += elapsed - elapsed.rem_euclid(WINDOW_MS);
        let current = std::mem::take(&mut self.current);
        let expired = if elapsed < 2 * WINDOW_MS {
            std::mem::replace(&mut self.previous, current)
        } else {
            // A minute or more went by with nothing recorded: both are stale.
            let previous = std::mem::take(&mut self.previous);
            drop(current);
            previous
        };
        Some(expired)
    }
}

impl<K: Hash + Eq> FailureLimiter<K> {
    pub fn new(limit: u32) -> Self {
        Self::with_capacity(limit, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(limit: u32, capacity: usize) -> Self {
        let state = Generations { start: 0, current: HashMap::new(), previous: HashMap::new() };
        Self { limit, capacity, state: Mutex::new(state) }
    }

    /// The failures counted for `key` over the minute up to `now`.
    fn weighted(&self, g: &Generations<K>, key: &K, now_ms: i64) -> f64 {
        let current = g.current.get(key).copied().unwrap_or(0);
        let previous = g.previous.get(key).copied().unwrap_or(0);
        let overlap = (WINDOW_MS - (now_ms - g.start)).clamp(0, WINDOW_MS) as f64 / WINDOW_MS as f64;
        f64::from(current) + f64::from(previous) * overlap
    }

    /// Seconds until the current minute ends (at least 1): when a limited
    /// key may try again.
    fn retry_after(g: &Generations<K>, now_ms: i64) -> u64 {
        (((g.start + WINDOW_MS - now_ms) + 999) / 1000).max(1) as u64
    }

    /// `Some(retry_after_seconds)` when `key` has used its allowance: its
    /// next failure would be past the limit.
    pub fn check(&self, key: &K, now_ms: i64) -> Option<u64> {
        let mut g = self.state.lock();
        let expired = g.rotate(now_ms);
        let over = self.weighted(&g, key, now_ms) >= f64::from(self.limit);
        let retry = over.then(|| Self::retry_after(&g, now_ms));
        drop(g);
        drop(expired);
        retry
    }

    /// Counts one failure of `key`. `Some(retry_after_seconds)` when this
    /// failure is past the key's allowance (`limit` a minute), or could not
    /// be counted because the table is full.
    pub fn record_failure(&self, key: K, now_ms: i64) -> Option<u64> {
        let mut g = self.state.lock();
        let expired = g.rotate(now_ms);
        let full = g.current.len() >= self.capacity && !g.current.contains_key(&key);
        let over = if full {
            true
        } else {
            let weighted = self.weighted(&g, &key, now_ms);
            let count = g.current.entry(key).or_insert(0);
            *count = count.saturating_add(1);
            weighted + 1.0 > f64::from(self.limit)
        };
        let retry = over.then(|| Self::retry_after(&g, now_ms));
        drop(g);
        drop(expired);
        retry
    }

    /// Keys tracked now (both minutes).
    pub fn tracked(&self) -> usize {
        let g = self.state.lock();
        g.current.len() + g.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        [192, 0, 2, last].into()
    }

    #[test]
    fn limits_after_n_failures_in_window() {
        let l = FailureLimiter::new(3);
        for i in 0..4 {
            let over = l.record_failure(ip(1), 1000);
            assert_eq!(over.is_some(), i == 3, "three failures are allowed, the fourth is over");
            assert_eq!(l.check(&ip(1), 1000).is_some(), i >= 2);
        }
        assert_eq!(l.check(&ip(1), 1000), Some(59));
        assert_eq!(l.check(&ip(1), 30_000), Some(30));
        assert_eq!(l.check(&ip(2), 1000), None, "other keys are not limited");
    }

    #[test]
    fn the_window_slides_instead_of_resetting() {
        let l = FailureLimiter::new(4);
        for _ in 0..8 {
            l.record_failure(ip(1), 50_000);
        }
        // Just after the minute turns, most of those failures still count.
        assert!(l.check(&ip(1), 61_000).is_some());
        // Two thirds of a minute later, a third of them do (8 / 3).
        assert_eq!(l.check(&ip(1), 100_000), None);
        assert_eq!(l.record_failure(ip(1), 100_000), None, "8 / 3 + 1 of 4");
        assert!(l.record_failure(ip(1), 100_000).is_some(), "8 / 3 + 2 of 4");
        // Two minutes later nothing does.
        assert_eq!(l.check(&ip(1), 200_000), None);
    }

    #[test]
    fn memory_is_bounded_and_old_minutes_are_dropped_whole() {
        let l = FailureLimiter::with_capacity(5, 100);
        for i in 0..100u32 {
            assert_eq!(l.record_failure(i, 1000), None);
        }
        assert_eq!(l.tracked(), 100);
        // A full table: a new key cannot be counted, and is told so.
        assert!(l.record_failure(1000, 1000).is_some());
        // Known keys still are.
        assert_eq!(l.record_failure(7, 1000), None);
        assert_eq!(l.tracked(), 100);
        // The next minute starts empty; the one before is kept for weighting.
        assert_eq!(l.record_failure(1000, 61_000), None);
        assert_eq!(l.tracked(), 101);
        // Two minutes on, the first minute is gone.
        assert_eq!(l.check(&0, 121_000), None);
        assert_eq!(l.tracked(), 1);
        assert_eq!(l.check(&0, 500_000), None);
        assert_eq!(l.tracked(), 0);
    }
}
