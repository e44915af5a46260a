//! The in-memory TTL cache of prompt versions, keyed `prompt:{name}:{label|version}`.
//!
//! A hit is a read lock, one hash look-up, one clock read and an `Arc` clone:
//! no allocation (the key is built in a reused thread-local buffer) and no
//! network. Entries are kept past their TTL for the stale-if-error window.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::prompt::{write_cache_key, PromptVersion, Selector};

struct Entry {
    value: Arc<PromptVersion>,
    fetched_at: Instant,
    ttl: Duration,
}

/// A fresh hit, and whether it is old enough to refresh in the background.
pub(crate) struct Hit {
    pub value: Arc<PromptVersion>,
    pub refresh_due: bool,
    /// Time since the copy was fetched.
    pub age: Duration,
}

pub(crate) struct PromptCache {
    entries: RwLock<HashMap<String, Entry>>,
    /// Keys with a background refresh in flight.
    refreshing: Mutex<HashSet<String>>,
    max_entries: usize,
    /// How long past its TTL an entry is kept for stale-if-error.
    retain_stale: Duration,
}

thread_local! {
    static KEY_BUF: RefCell<String> = RefCell::new(String::with_capacity(128));
}

/// Run `f` with the cache key of (`name`, `selector`), built in a reused
/// thread-local buffer so that a cache hit does not allocate.
pub(crate) fn with_key<R>(name: &str, selector: Selector<'_>, mut f: impl FnMut(&str) -> R) -> R {
    let fast = KEY_BUF.try_with(|buf| {
        let mut buf = buf.try_borrow_mut().ok()?;
        write_cache_key(&mut buf, name, selector);
        Some(f(&buf))
    });
    match fast {
        Ok(Some(r)) => r,
        // Re-entered, or the thread-local is being destroyed: use the heap.
        _ => f(&crate::prompt::cache_key(name, selector)),
    }
}

impl PromptCache {
    pub(crate) fn new(max_entries: usize, retain_stale: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            max_entries: max_entries.max(1),
            retain_stale,
        }
    }

    /// A copy at most `max_age` old (the entry's own TTL when `None`).
    /// `refresh_ahead` is the fraction of the TTL after which a hit asks for
    /// a background refresh.
    pub(crate) fn get_fresh(&self, key: &str, max_age: Option<Duration>, refresh_ahead: Option<f64>) -> Option<Hit> {
        let entries = self.entries.read();
        let e = entries.get(key)?;
        let age = e.fetched_at.elapsed();
        let ttl = max_age.unwrap_or(e.ttl);
        if age >= ttl {
            return None;
        }
        let refresh_due = refresh_ahead.is_some_and(|f| age >= ttl.mul_f64(f));
        Some(Hit { value: Arc::clone(&e.value), refresh_due, age })
    }

    /// The last good copy if it expired less than `max_stale` ago.
    pub(crate) fn get_stale(&self, key: &str, max_stale: Duration) -> Option<(Arc<PromptVersion>, Duration)> {
        let entries = self.entries.read();
        let e = entries.get(key)?;
        let age = e.fetched_at.elapsed();
        (age < e.ttl.saturating_add(max_stale)).then(|| (Arc::clone(&e.value), age))
    }

    pub(crate) fn insert(&self, key: String, value: Arc<PromptVersion>, ttl: Duration) {
        let mut entries = self.entries.write();
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            let retain = self.retain_stale;
            entries.retain(|_, e| e.fetched_at.elapsed() < e.ttl.saturating_add(retain));
            if entries.len() >= self.max_entries {
                let oldest = entries.iter().min_by_key(|(_, e)| e.fetched_at).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, Entry { value, fetched_at: Instant::now(), ttl });
    }

    pub(crate) fn clear(&self) {
        self.entries.write().clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Claim the right to refresh `key` in the background; false when a
    /// refresh is already running.
    pub(crate) fn start_refresh(&self, key: &str) -> bool {
        let mut r = self.refreshing.lock();
        if r.contains(key) {
            false
        } else {
            r.insert(key.to_owned());
            true
        }
    }

    pub(crate) fn end_refresh(&self, key: &str) {
        self.refreshing.lock().remove(key);
    }
}
