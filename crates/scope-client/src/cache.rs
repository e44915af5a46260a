//! The in-memory TTL cache of prompt versions, keyed `prompt:{name}:{label|version}`.
//!
//! A hit is a read lock, one hash look-up, one clock read and an `Arc` clone:
//! no allocation (the key is built in a reused thread-local buffer) and no
//! network. Entries are kept past their TTL for the stale-if-error window and
//! for revalidation: an expired entry with an `ETag` is asked about with
//! `If-None-Match`, and a `304` renews it without a download.
//!
//! With `watch` on (see `watch.rs`), an entry fetched while the event
//! stream was live carries that stream session's number, and stays fresh past
//! its TTL (up to the watch max age) for as long as the same session is still
//! live: every change after the fetch would have arrived on that stream and
//! dropped it. The moment the stream is not live (disconnected, silent too
//! long, the task gone), every entry is back to its plain TTL.
//!
//! Events invalidate by prompt. A fetch that was under way when an event for
//! its prompt arrived does not store what it got (it may predate the change):
//! fetches take a [`Ticket`] when they start, and the cache remembers the
//! last invalidations to compare with.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::prompt::{write_cache_key, PromptVersion, Selector};

/// After an event for a prompt, copies of it fetched within this window
/// are kept this long at most (and never on the watch's word): a replica
/// serving the fetch may not have applied the change yet (its own view
/// lags the commit by up to its 1 s cache TTL), so the copy is checked
/// again, cheaply, with its `ETag`.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// How many invalidations are remembered for fetches under way.
const REMEMBERED_INVALIDATIONS: usize = 256;

struct Entry {
    value: Arc<PromptVersion>,
    etag: Option<Arc<str>>,
    fetched_at: Instant,
    ttl: Duration,
    /// The watch session the copy is covered by (0: none, plain TTL).
    session: u64,
    /// Dropped by an event (or a resync): not fresh, but kept for
    /// stale-if-error and its `ETag`.
    invalidated: bool,
}

impl Entry {
    fn is_fresh(&self, age: Duration, max_age: Option<Duration>, watch: &dyn Fn() -> (u64, Duration)) -> bool {
        if self.invalidated {
            return false;
        }
        match max_age {
            // The caller's own bound is strict.
            Some(max) => age < max,
            None if age < self.ttl => true,
            None if self.session != 0 => {
                let (live, max_age) = watch();
                live == self.session && age < max_age
            }
            None => false,
        }
    }
}

/// A fresh hit, and whether it is old enough to refresh in the background.
pub(crate) struct Hit {
    pub value: Arc<PromptVersion>,
    pub refresh_due: bool,
    /// Time since the copy was fetched.
    pub age: Duration,
}

/// Taken when a fetch starts; see the module comment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    seq: u64,
    /// The watch session live when the fetch started (0: none).
    session: u64,
}

/// Which entries an invalidation touched.
#[derive(Debug, Clone)]
enum Touched {
    Prompt { prompt_id: Option<String>, name: Option<String> },
    All,
}

impl Touched {
    fn matches(&self, v: &PromptVersion) -> bool {
        match self {
            Touched::All => true,
            Touched::Prompt { prompt_id, name } => {
                prompt_id.as_deref() == Some(v.prompt_id.as_str()) || name.as_deref() == Some(v.name.as_str())
            }
        }
    }
}

#[derive(Default)]
struct Invalidations {
    /// (sequence number, when, what), oldest first.
    recent: VecDeque<(u64, Instant, Touched)>,
    /// Every invalidation numbered up to this one has been forgotten.
    forgotten_up_to: u64,
}

pub(crate) struct PromptCache {
    entries: RwLock<HashMap<String, Entry>>,
    /// Keys with a background refresh in flight.
    refreshing: Mutex<HashSet<String>>,
    max_entries: usize,
    /// How long past its TTL an entry is kept (stale-if-error, revalidation).
    retain_stale: Duration,
    /// Numbers the invalidations; read by every [`Ticket`].
    seq: AtomicU64,
    invalidations: Mutex<Invalidations>,
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

/// No watch: sessions are never live.
pub(crate) fn no_watch() -> (u64, Duration) {
    (0, Duration::ZERO)
}

impl PromptCache {
    pub(crate) fn new(max_entries: usize, retain_stale: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            max_entries: max_entries.max(1),
            retain_stale,
            seq: AtomicU64::new(0),
            invalidations: Mutex::new(Invalidations::default()),
        }
    }

    /// A fresh copy: at most `max_age` old when given (the caller's strict
    /// bound), else within the entry's TTL or covered by the live watch
    /// session. `watch` returns the live session (0 when none) and the watch
    /// max age; it is only called for an entry past its TTL. `refresh_ahead`
    /// is the fraction of the TTL after which a hit asks for a background
    /// refresh (never for a copy the watch covers).
    pub(crate) fn get_fresh(
        &self,
        key: &str,
        max_age: Option<Duration>,
        refresh_ahead: Option<f64>,
        watch: &dyn Fn() -> (u64, Duration),
    ) -> Option<Hit> {
        let entries = self.entries.read();
        let e = entries.get(key)?;
        let age = e.fetched_at.elapsed();
        if !e.is_fresh(age, max_age, watch) {
            return None;
        }
        let ttl = max_age.unwrap_or(e.ttl);
        // A copy the live watch session covers needs no refresh ahead.
        let covered = max_age.is_none() && e.session != 0 && watch().0 == e.session;
        let refresh_due = refresh_ahead.is_some_and(|f| age >= ttl.mul_f64(f)) && !covered;
        Some(Hit { value: Arc::clone(&e.value), refresh_due, age })
    }

    /// The last good copy if its TTL ended less than `max_stale` ago.
    pub(crate) fn get_stale(&self, key: &str, max_stale: Duration) -> Option<(Arc<PromptVersion>, Duration)> {
        let entries = self.entries.read();
        let e = entries.get(key)?;
        let age = e.fetched_at.elapsed();
        (age < e.ttl.saturating_add(max_stale)).then(|| (Arc::clone(&e.value), age))
    }

    /// The `ETag` of the copy held for `key`, fresh or not.
    pub(crate) fn etag(&self, key: &str) -> Option<Arc<str>> {
        self.entries.read().get(key).and_then(|e| e.etag.clone())
    }

    /// What a fetch starting now needs to store its result.
    pub(crate) fn ticket(&self, live_session: u64) -> Ticket {
        Ticket { seq: self.seq.load(Ordering::Acquire), session: live_session }
    }

    /// Store a fetched copy, unless an invalidation of its prompt happened
    /// since `ticket` was taken. Returns whether it was stored.
    pub(crate) fn insert(
        &self,
        key: String,
        value: Arc<PromptVersion>,
        etag: Option<String>,
        ttl: Duration,
        ticket: Ticket,
        live_session: u64,
    ) -> bool {
        let Some((ttl, session)) = self.admit(&value, ttl, ticket, live_session) else {
            return false;
        };
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
        let entry =
            Entry { value, etag: etag.map(Arc::from), fetched_at: Instant::now(), ttl, session, invalidated: false };
        entries.insert(key, entry);
        true
    }

    /// The server answered `304` for the copy held for `key`: it is current
    /// again (same checks as [`insert`](Self::insert)). `None` when the
    /// entry is gone or an event touched it meanwhile.
    pub(crate) fn renew(
        &self,
        key: &str,
        ttl: Duration,
        ticket: Ticket,
        live_session: u64,
    ) -> Option<Arc<PromptVersion>> {
        let value = Arc::clone(&self.entries.read().get(key)?.value);
        let (ttl, session) = self.admit(&value, ttl, ticket, live_session)?;
        let mut entries = self.entries.write();
        let e = entries.get_mut(key)?;
        if !Arc::ptr_eq(&e.value, &value) {
            return None;
        }
        e.fetched_at = Instant::now();
        e.ttl = ttl;
        e.session = session;
        e.invalidated = false;
        Some(value)
    }

    /// `None`: do not store (an invalidation of this prompt since the
    /// ticket). Else the TTL and watch session to store with.
    fn admit(&self, value: &PromptVersion, ttl: Duration, ticket: Ticket, live: u64) -> Option<(Duration, u64)> {
        let inv = self.invalidations.lock();
        if ticket.seq < inv.forgotten_up_to {
            return None;
        }
        let mut ttl = ttl;
        let mut session = if ticket.session != 0 && ticket.session == live { live } else { 0 };
        for (seq, at, touched) in inv.recent.iter().rev() {
            if !touched.matches(value) {
                continue;
            }
            if *seq > ticket.seq {
                return None;
            }
            let since = at.elapsed();
            if since < SETTLE {
                ttl = ttl.min(SETTLE - since);
                session = 0;
            }
            break;
        }
        Some((ttl, session))
    }

    fn remember(&self, touched: Touched) {
        let mut inv = self.invalidations.lock();
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        inv.recent.push_back((seq, Instant::now(), touched));
        while inv.recent.len() > REMEMBERED_INVALIDATIONS {
            if let Some((s, _, _)) = inv.recent.pop_front() {
                inv.forgotten_up_to = s;
            }
        }
    }

    /// An event touched a prompt: every entry of it (by id or name) stops
    /// being fresh; `remove` drops them altogether (the prompt is gone).
    /// Returns how many entries were touched.
    pub(crate) fn invalidate_prompt(&self, prompt_id: Option<&str>, name: Option<&str>, remove: bool) -> usize {
        let touched = Touched::Prompt { prompt_id: prompt_id.map(str::to_owned), name: name.map(str::to_owned) };
        self.remember(touched.clone());
        let mut entries = self.entries.write();
        let mut n = 0;
        entries.retain(|_, e| {
            if !touched.matches(&e.value) {
                return true;
            }
            n += 1;
            e.invalidated = true;
            !remove
        });
        n
    }

    /// Every entry stops being fresh (kept for revalidation and
    /// stale-if-error); fetches under way do not store.
    pub(crate) fn invalidate_all(&self) {
        self.remember(Touched::All);
        for e in self.entries.write().values_mut() {
            e.invalidated = true;
        }
    }

    pub(crate) fn clear(&self) {
        self.remember(Touched::All);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn version(prompt_id: &str, name: &str) -> Arc<PromptVersion> {
        let v = serde_json::json!({
            "prompt_id": prompt_id, "version_id": "v_01JD8X3Q7V9W0K2M4N6P8R0T2V", "name": name, "version": 1,
            "content": "x", "status": "published", "created_at": "2025-01-02T03:04:05Z",
            "updated_at": "2025-01-02T03:04:05Z",
        });
        Arc::new(serde_json::from_value(v).unwrap())
    }

    const TTL: Duration = Duration::from_secs(300);

    #[test]
    fn a_fetch_overtaken_by_an_event_for_its_prompt_is_not_stored() {
        let c = PromptCache::new(100, Duration::ZERO);
        let ticket = c.ticket(0);
        // An event for another prompt does not matter...
        c.invalidate_prompt(Some("pmt_b"), Some("b"), false);
        assert!(c.insert("prompt:a:production".into(), version("pmt_a", "a"), None, TTL, ticket, 0));
        // ...one for this prompt (by id, or by name) does.
        let ticket = c.ticket(0);
        c.invalidate_prompt(Some("pmt_a"), None, false);
        assert!(!c.insert("prompt:a:production".into(), version("pmt_a", "a"), None, TTL, ticket, 0));
        let ticket = c.ticket(0);
        c.invalidate_prompt(None, Some("a"), false);
        assert!(!c.insert("prompt:pmt_a:latest".into(), version("pmt_a", "a"), None, TTL, ticket, 0));
        // So does a resync, and a forgotten history.
        let ticket = c.ticket(0);
        c.invalidate_all();
        assert!(!c.insert("prompt:a:production".into(), version("pmt_a", "a"), None, TTL, ticket, 0));
        let ticket = c.ticket(0);
        for i in 0..=REMEMBERED_INVALIDATIONS {
            c.invalidate_prompt(None, Some(&format!("other{i}")), false);
        }
        assert!(!c.insert("prompt:a:production".into(), version("pmt_a", "a"), None, TTL, ticket, 0));
    }

    #[test]
    fn events_make_exactly_their_prompts_entries_stale() {
        let c = PromptCache::new(100, Duration::from_secs(60));
        let t = c.ticket(0);
        c.insert("prompt:a:production".into(), version("pmt_a", "a"), Some("\"1\"".into()), TTL, t, 0);
        c.insert("prompt:pmt_a:staging".into(), version("pmt_a", "a"), None, TTL, t, 0);
        c.insert("prompt:b:production".into(), version("pmt_b", "b"), None, TTL, t, 0);
        assert_eq!(c.invalidate_prompt(Some("pmt_a"), Some("a"), false), 2);
        assert!(c.get_fresh("prompt:a:production", None, None, &no_watch).is_none());
        assert!(c.get_fresh("prompt:pmt_a:staging", None, None, &no_watch).is_none());
        assert!(c.get_fresh("prompt:b:production", None, None, &no_watch).is_some());
        // Stale, but kept: its ETag for revalidation, stale-if-error.
        assert_eq!(c.etag("prompt:a:production").as_deref(), Some("\"1\""));
        assert!(c.get_stale("prompt:a:production", Duration::from_secs(60)).is_some());
        // A deletion removes them.
        assert_eq!(c.invalidate_prompt(Some("pmt_a"), None, true), 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn past_its_ttl_an_entry_is_fresh_only_under_its_live_session() {
        let c = PromptCache::new(100, Duration::ZERO);
        let ttl = Duration::ZERO;
        let t = c.ticket(7);
        assert!(c.insert("k".into(), version("pmt_a", "a"), None, ttl, t, 7));
        let live = |s: u64| move || (s, Duration::from_secs(3600));
        assert!(c.get_fresh("k", None, None, &live(7)).is_some());
        assert!(c.get_fresh("k", None, None, &live(0)).is_none(), "stream down: plain TTL");
        assert!(c.get_fresh("k", None, None, &live(8)).is_none(), "a later session does not cover it");
        assert!(c.get_fresh("k", Some(Duration::ZERO), None, &live(7)).is_none(), "a per-call bound is strict");
        let short = || (7, Duration::ZERO);
        assert!(c.get_fresh("k", None, None, &short).is_none(), "past the watch max age");
        // Fetched under a session that ended before it was stored: not covered.
        let t = c.ticket(7);
        assert!(c.insert("k2".into(), version("pmt_b", "b"), None, ttl, t, 0));
        assert!(c.get_fresh("k2", None, None, &live(7)).is_none());
    }

    #[test]
    fn a_copy_fetched_just_after_an_event_is_checked_again_soon() {
        let c = PromptCache::new(100, Duration::ZERO);
        c.invalidate_prompt(Some("pmt_a"), None, false);
        let t = c.ticket(3);
        assert!(c.insert("k".into(), version("pmt_a", "a"), None, TTL, t, 3));
        let live = || (3, Duration::from_secs(3600));
        let hit = c.get_fresh("k", None, None, &live).unwrap();
        assert!(hit.age < SETTLE);
        let entries = c.entries.read();
        let e = entries.get("k").unwrap();
        assert!(e.ttl <= SETTLE && e.session == 0, "{:?} {}", e.ttl, e.session);
    }
}
