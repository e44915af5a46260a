//! Coalesced key usage: `last_used_at` and exchanges per day are counted in
//! memory and written in batches, so a hot key does not write on every
//! exchange.

use std::collections::HashMap;

use parking_lot::Mutex;
use scope_domain::KeyId;
use scope_store::KeyUsageDelta;

/// Pending counts by key and UTC day — the day as a number (days since the
/// epoch), formatted only when the counts are read or flushed, not on every
/// exchange.
#[derive(Debug, Default)]
pub struct UsageCounter {
    pending: Mutex<HashMap<(KeyId, i64), (u64, i64)>>,
}

const DAY_MS: i64 = 86_400_000;

/// UTC day of a timestamp, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// `YYYY-MM-DD` of a day number.
fn day_name(day: i64) -> String {
    day_of(day.saturating_mul(DAY_MS))
}

/// The day number of `YYYY-MM-DD` (a batch put back after a failed write).
fn day_number(name: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis().div_euclid(DAY_MS))
}

impl UsageCounter {
    pub fn record(&self, key: KeyId, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
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
            .map(|((key_id, day), (count, last_used_at))| KeyUsageDelta {
                key_id,
                day: day_name(day),
                count,
                last_used_at,
            })
            .collect()
    }

    /// Puts back a batch that could not be written.
    pub fn restore(&self, batch: Vec<KeyUsageDelta>) {
        let mut p = self.pending.lock();
        for d in batch {
            // Days come from `drain`, so they parse; one that did not would
            // count on the day of its last use.
            let day = day_number(&d.day).unwrap_or(d.last_used_at.div_euclid(DAY_MS));
            let e = p.entry((d.key_id, day)).or_insert((0, d.last_used_at));
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
                *days.entry(day_name(*day)).or_insert(0) += count;
            }
        }
        (last, days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_utc_day_and_survives_a_failed_flush() {
        let usage = UsageCounter::default();
        let key = KeyId::generate();
        // 2026-11-27T23:59:59.999Z, then twice on the 28th.
        let late = 1_795_823_999_999;
        usage.record(key, late);
        usage.record(key, late + 1);
        usage.record(key, late + 5_000);
        let (last, days) = usage.pending_for(&key);
        assert_eq!(last, Some(late + 5_000));
        assert_eq!(days, HashMap::from([("2026-11-27".to_string(), 1), ("2026-11-28".to_string(), 2)]));

        let mut batch = usage.drain();
        batch.sort_by(|a, b| a.day.cmp(&b.day));
        let got: Vec<_> = batch.iter().map(|d| (d.day.as_str(), d.count, d.last_used_at)).collect();
        assert_eq!(got, [("2026-11-27", 1, late), ("2026-11-28", 2, late + 5_000)]);
        assert_eq!(usage.pending_for(&key), (None, HashMap::new()));

        // Put back (the write failed), then more use on the 28th: one entry per day.
        usage.restore(batch);
        usage.record(key, late + 9_000);
        let mut again = usage.drain();
        again.sort_by(|a, b| a.day.cmp(&b.day));
        let got: Vec<_> = again.iter().map(|d| (d.day.as_str(), d.count, d.last_used_at)).collect();
        assert_eq!(got, [("2026-11-27", 1, late), ("2026-11-28", 3, late + 9_000)]);
    }
}
