//! Serialized prompt versions served from memory on the SDK hot path.
//!
//! `GET /api/v1/prompts/{name}/production|latest` is the call every LLM
//! request of our users makes. Its answer is cached as the exact response
//! bytes, per organization, name (or id) and label. Correctness:
//! - every change to a prompt or its versions made through this process bumps
//!   the organization's generation before the change's call returns, which
//!   invalidates all of that organization's entries at once;
//! - changes made by other replicas arrive on the store's change feed
//!   (PostgreSQL `LISTEN`/`NOTIFY`) and invalidate the same way within
//!   milliseconds of their commit;
//! - entries also expire after a short TTL, which bounds staleness where no
//!   feed exists (SQLite shared with the CLI) or while it is reconnecting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use parking_lot::RwLock;
use scope_domain::OrgId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Production,
    Latest,
}

struct Entry {
    generation: u64,
    at: Instant,
    body: Bytes,
}

/// Entries of one organization and label, by prompt name or id.
type Group = HashMap<Box<str>, Entry>;

pub struct PromptCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<(OrgId, Label), Group>>,
    generations: RwLock<HashMap<OrgId, u64>>,
    /// Bumped by [`invalidate_all`](Self::invalidate_all); part of every
    /// organization's generation.
    epoch: std::sync::atomic::AtomicU64,
}

impl PromptCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: RwLock::new(HashMap::new()),
            generations: RwLock::new(HashMap::new()),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Both parts only grow, so their sum changes whenever either does.
    fn generation(&self, org: &OrgId) -> u64 {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        epoch + self.generations.read().get(org).copied().unwrap_or(0)
    }

    /// The current generation, to be read before loading from the store and
    /// passed to [`insert`](Self::insert): an entry loaded while a change was
    /// being made is then never stored as current.
    pub fn begin(&self, org: &OrgId) -> u64 {
        self.generation(org)
    }

    /// Counted as a hit or miss of the `prompt` cache (`/metrics`; with the
    /// cache disabled every look-up is a miss).
    pub fn get(&self, org: OrgId, name: &str, label: Label) -> Option<Bytes> {
        let found = self.lookup(org, name, label);
        super::metrics::cache_lookup(super::metrics::Cache::Prompt, found.is_some());
        found
    }

    fn lookup(&self, org: OrgId, name: &str, label: Label) -> Option<Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation(&org);
        let entries = self.entries.read();
        let e = entries.get(&(org, label))?.get(name)?;
        (e.generation == generation && e.at.elapsed() < self.ttl).then(|| e.body.clone())
    }

    pub fn insert(&self, org: OrgId, name: &str, label: Label, generation: u64, body: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write();
        let total: usize = entries.values().map(HashMap::len).sum();
        if total >= self.capacity {
            entries.clear();
        }
        entries.entry((org, label)).or_default().insert(name.into(), Entry { generation, at: Instant::now(), body });
    }

    /// Called on every change of any prompt or version of `org`, made here
    /// or pushed by another replica.
    pub fn invalidate_org(&self, org: OrgId) {
        *self.generations.write().entry(org).or_insert(0) += 1;
    }

    /// Forgets everything (the change feed reconnected: changes may have
    /// been missed). Loads that began before are never stored as current.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.entries.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_and_generation_race() {
        let c = PromptCache::new(Duration::from_secs(60), 10);
        let org = OrgId::generate();
        let g = c.begin(&org);
        c.insert(org, "p", Label::Production, g, Bytes::from_static(b"v1"));
        assert_eq!(c.get(org, "p", Label::Production).as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get(org, "p", Label::Latest), None);
        assert_eq!(c.get(OrgId::generate(), "p", Label::Production), None);
        c.invalidate_org(org);
        assert_eq!(c.get(org, "p", Label::Production), None);
        // Loaded before a change, stored after it: never served.
        let stale = c.begin(&org);
        c.invalidate_org(org);
        c.insert(org, "p", Label::Production, stale, Bytes::from_static(b"old"));
        assert_eq!(c.get(org, "p", Label::Production), None);
        // Forgetting everything also refuses loads that began before.
        let g = c.begin(&org);
        c.insert(org, "p", Label::Production, g, Bytes::from_static(b"v2"));
        let stale = c.begin(&org);
        c.invalidate_all();
        assert_eq!(c.get(org, "p", Label::Production), None);
        c.insert(org, "p", Label::Production, stale, Bytes::from_static(b"old"));
        assert_eq!(c.get(org, "p", Label::Production), None);
    }

    #[test]
    fn ttl_expires() {
        let c = PromptCache::new(Duration::from_millis(1), 10);
        let org = OrgId::generate();
        c.insert(org, "p", Label::Latest, 0, Bytes::from_static(b"x"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get(org, "p", Label::Latest), None);
    }
}
