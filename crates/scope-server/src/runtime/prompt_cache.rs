//! Serialized prompt versions served from memory on the SDK hot path.
//!
//! `GET /api/v1/prompts/{name}/production|latest` is the call every LLM
//! request of our users makes. Its answer is cached as the exact response
//! bytes with their strong `ETag` and the label they were served as, per
//! organization, name (or id) and *what was asked*: `production` asked by a
//! key of environment `staging` is its own entry (it serves the `staging`
//! version where the prompt has one), never mixed with `production` asked by
//! a production key. Correctness:
//! - every change to a prompt or its versions made through this process bumps
//!   the organization's generation before the change's call returns, which
//!   invalidates all of that organization's entries at once;
//! - changes made by other replicas arrive on the store's change feed
//!   (PostgreSQL `LISTEN`/`NOTIFY`) and invalidate the same way within
//!   milliseconds of their commit;
//! - entries also expire after a short TTL, which bounds staleness where no
//!   feed exists (SQLite shared with the CLI) or while it is reconnecting.
//!
//! Look-ups borrow the name and label (no allocation on a hit); the ETag is
//! computed once, when an entry is made.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderValue;
use parking_lot::RwLock;
use scope_domain::OrgId;
use sha2::{Digest, Sha256};

/// What a caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label<'a> {
    /// The published version.
    Production,
    /// The highest-numbered version.
    Latest,
    /// A label other than `production` and `latest`, asked by name.
    Named(&'a str),
    /// `/production` asked by a key of environment `E` (a label): the version
    /// labelled `E` where the prompt has it, else the published one.
    ProductionFor(&'a str),
}

/// A response ready to send: the body, its strong `ETag` and the label it
/// was served as (`X-Scope-Label`). Cheap to clone (reference-counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub body: Bytes,
    /// `"…"`: 32 hex digits of SHA-256 over the label and the body.
    pub etag: HeaderValue,
    pub label: HeaderValue,
}

impl Served {
    pub fn new(label: &str, body: Bytes) -> Self {
        Self { etag: etag_of(label, &body), label: header_text(label), body }
    }
}

/// A strong entity tag for `body` served as `label`: equal bytes (and
/// label) give equal tags on every replica, so a client revalidating
/// against any replica gets its `304`.
pub fn etag_of(label: &str, body: &[u8]) -> HeaderValue {
    let digest = Sha256::new().chain_update(label.as_bytes()).chain_update([0u8]).chain_update(body).finalize();
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for b in &digest[..16] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push('"');
    header_text(&tag)
}

/// Labels and tags are ASCII by construction; anything else is dropped.
fn header_text(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

struct Entry {
    generation: u64,
    at: Instant,
    served: Served,
}

/// Entries of one organization and one thing asked, by prompt name or id.
type Group = HashMap<Box<str>, Entry>;

#[derive(Default)]
struct OrgEntries {
    production: Group,
    latest: Group,
    /// By label.
    named: HashMap<Box<str>, Group>,
    /// By the asking key's environment.
    production_for: HashMap<Box<str>, Group>,
}

impl OrgEntries {
    fn group(&self, label: Label<'_>) -> Option<&Group> {
        match label {
            Label::Production => Some(&self.production),
            Label::Latest => Some(&self.latest),
            Label::Named(l) => self.named.get(l),
            Label::ProductionFor(env) => self.production_for.get(env),
        }
    }

    fn group_mut(&mut self, label: Label<'_>) -> &mut Group {
        match label {
            Label::Production => &mut self.production,
            Label::Latest => &mut self.latest,
            Label::Named(l) => self.named.entry(l.into()).or_default(),
            Label::ProductionFor(env) => self.production_for.entry(env.into()).or_default(),
        }
    }
}

#[derive(Default)]
struct Entries {
    orgs: HashMap<OrgId, OrgEntries>,
    /// Entries held, for the capacity bound.
    len: usize,
}

pub struct PromptCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<Entries>,
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
            entries: RwLock::new(Entries::default()),
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
    pub fn get(&self, org: OrgId, name: &str, label: Label<'_>) -> Option<Served> {
        let found = self.lookup(org, name, label);
        super::metrics::cache_lookup(super::metrics::Cache::Prompt, found.is_some());
        found
    }

    fn lookup(&self, org: OrgId, name: &str, label: Label<'_>) -> Option<Served> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation(&org);
        let entries = self.entries.read();
        let e = entries.orgs.get(&org)?.group(label)?.get(name)?;
        (e.generation == generation && e.at.elapsed() < self.ttl).then(|| e.served.clone())
    }

    pub fn insert(&self, org: OrgId, name: &str, label: Label<'_>, generation: u64, served: Served) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write();
        let replacing = entries.orgs.get(&org).and_then(|o| o.group(label)).is_some_and(|g| g.contains_key(name));
        if !replacing && entries.len >= self.capacity {
            *entries = Entries::default();
        }
        let entry = Entry { generation, at: Instant::now(), served };
        let added = entries.orgs.entry(org).or_default().group_mut(label).insert(name.into(), entry).is_none();
        entries.len += usize::from(added);
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
        *self.entries.write() = Entries::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(body: &'static [u8]) -> Served {
        Served::new("production", Bytes::from_static(body))
    }

    fn body(s: Option<Served>) -> Option<Bytes> {
        s.map(|s| s.body)
    }

    #[test]
    fn invalidation_and_generation_race() {
        let c = PromptCache::new(Duration::from_secs(60), 10);
        let org = OrgId::generate();
        let g = c.begin(&org);
        c.insert(org, "p", Label::Production, g, served(b"v1"));
        assert_eq!(body(c.get(org, "p", Label::Production)).as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get(org, "p", Label::Latest), None);
        assert_eq!(c.get(OrgId::generate(), "p", Label::Production), None);
        c.invalidate_org(org);
        assert_eq!(c.get(org, "p", Label::Production), None);
        // Loaded before a change, stored after it: never served.
        let stale = c.begin(&org);
        c.invalidate_org(org);
        c.insert(org, "p", Label::Production, stale, served(b"old"));
        assert_eq!(c.get(org, "p", Label::Production), None);
        // Forgetting everything also refuses loads that began before.
        let g = c.begin(&org);
        c.insert(org, "p", Label::Production, g, served(b"v2"));
        let stale = c.begin(&org);
        c.invalidate_all();
        assert_eq!(c.get(org, "p", Label::Production), None);
        c.insert(org, "p", Label::Production, stale, served(b"old"));
        assert_eq!(c.get(org, "p", Label::Production), None);
    }

    #[test]
    fn what_was_asked_is_part_of_the_key() {
        let c = PromptCache::new(Duration::from_secs(60), 100);
        let org = OrgId::generate();
        let g = c.begin(&org);
        c.insert(org, "p", Label::Production, g, served(b"prod"));
        c.insert(org, "p", Label::ProductionFor("staging"), g, Served::new("staging", Bytes::from_static(b"stg")));
        c.insert(org, "p", Label::Named("staging"), g, Served::new("staging", Bytes::from_static(b"named")));
        assert_eq!(body(c.get(org, "p", Label::Production)).as_deref(), Some(&b"prod"[..]));
        let for_staging = c.get(org, "p", Label::ProductionFor("staging"));
        assert_eq!(for_staging.as_ref().map(|s| s.label.as_bytes()), Some(&b"staging"[..]));
        assert_eq!(body(for_staging).as_deref(), Some(&b"stg"[..]));
        assert_eq!(c.get(org, "p", Label::ProductionFor("eu")), None);
        assert_eq!(body(c.get(org, "p", Label::Named("staging"))).as_deref(), Some(&b"named"[..]));
        assert_eq!(c.get(org, "p", Label::Named("canary")), None);
        c.invalidate_org(org);
        assert_eq!(c.get(org, "p", Label::ProductionFor("staging")), None);
    }

    #[test]
    fn etags_are_strong_and_follow_label_and_body() {
        let a = Served::new("production", Bytes::from_static(b"x"));
        assert_eq!(a.etag, Served::new("production", Bytes::from_static(b"x")).etag);
        assert_ne!(a.etag, Served::new("production", Bytes::from_static(b"y")).etag);
        assert_ne!(a.etag, Served::new("staging", Bytes::from_static(b"x")).etag);
        let tag = a.etag.to_str().unwrap_or_default();
        assert!(tag.len() == 34 && tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
    }

    #[test]
    fn capacity_bounds_entries() {
        let c = PromptCache::new(Duration::from_secs(60), 3);
        let org = OrgId::generate();
        for name in ["a", "b", "c", "a"] {
            c.insert(org, name, Label::Latest, 0, served(b"x"));
        }
        assert!(c.get(org, "b", Label::Latest).is_some(), "replacing an entry does not count twice");
        c.insert(org, "d", Label::Latest, 0, served(b"x"));
        assert!(c.get(org, "b", Label::Latest).is_none(), "full: cleared");
        assert!(c.get(org, "d", Label::Latest).is_some());
    }

    #[test]
    fn ttl_expires() {
        let c = PromptCache::new(Duration::from_millis(1), 10);
        let org = OrgId::generate();
        c.insert(org, "p", Label::Latest, 0, served(b"x"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get(org, "p", Label::Latest), None);
    }
}
