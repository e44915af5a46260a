//! Coalesced key usage: `last_used_at` and exchanges per day are counted in
//! memory and written in batches, so a hot key does not write on every
//! exchange.

use std::collections::HashMap;

use parking_lot::Mutex;
use scope_domain::KeyId;
use scope_store::KeyUsageDelta;

#[derive(Debug, Default)]
pub struct UsageCounter {
    pending: Mutex<HashMap<(KeyId, String), (u64, i64)>>,
}

/// UTC day of a timestamp, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

impl UsageCounter {
    pub fn record(&self, key: KeyId, now_ms: i64) {
        let day = day_of(now_ms);
        let mut p = self.pending.lock();
        let e = p.entry((key, day)).or_insert((0, now_ms));
        e.0 += 1;
        e.1 = e.1.max(now_ms);
    }

    /// Takes everything pending.
    pub fn drain(&self) -> Vec<KeyUsageDelta> {
        let taken = std::mem::take(&mut *self.pending.lock());
        taken
            .into_iter()
            .map(|((key_id, day), (count, last_used_at))| KeyUsageDelta { key_id, day, count, last_used_at })
            .collect()
    }

    /// Puts back a batch that could not be written.
    pub fn restore(&self, batch: Vec<KeyUsageDelta>) {
        let mut p = self.pending.lock();
        for d in batch {
            let e = p.entry((d.key_id, d.day)).or_insert((0, d.last_used_at));
            e.0 += d.count;
            e.1 = e.1.max(d.last_used_at);
        }
    }

    /// Not yet flushed: latest use of `key`, and counts per day.
    pub fn pending_for(&self, key: &KeyId) -> (Option<i64>, HashMap<String, u64>) {
        let p = self.pending.lock();
        let mut last = None;
        let mut days = HashMap::new();
        for ((k, day), (count, at)) in p.iter() {
            if k == key {
                last = Some(last.map_or(*at, |l: i64| l.max(*at)));
                *days.entry(day.clone()).or_insert(0) += count;
            }
        }
        (last, days)
    }
}
