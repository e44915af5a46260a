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
//!
//! Memory is bounded three ways, because the names come from callers:
//! - a `pmt_` id is keyed by the id it parses to, never by its spelling (ULID
//!   text accepts either case and several aliases of each character, so one
//!   prompt has thousands of spellings that all reach it); a prompt name is
//!   keyed as sent, which is exactly how the store looks it up, so only names
//!   that exist ever make an entry;
//! - by entries and by bytes (bodies plus a per-entry overhead): an insert
//!   that would pass either bound first empties the cache (cheap, and
//!   refilled from the database within one request per prompt);
//! - a body above a size threshold is never cached: it is served from the
//!   database each time, so one huge prompt cannot fill the byte budget.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderValue;
use parking_lot::RwLock;
use scope_domain::{OrgId, PromptId};
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

/// Default bound on the bytes held (bodies plus [`ENTRY_OVERHEAD`] each).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default size above which a body is not cached.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// What an entry costs besides its body and name: map slots, the entry, the
/// two header values.
const ENTRY_OVERHEAD: usize = 160;

struct Entry {
    generation: u64,
    at: Instant,
    served: Served,
    /// Counted against the byte bound.
    cost: usize,
}

/// How the path named the prompt: by its id (keyed canonically, whatever
/// the spelling) or by its name (keyed as sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject<'a> {
    Id(PromptId),
    Name(&'a str),
}

impl<'a> Subject<'a> {
    /// The same rule as the store's look-up: text that parses as a `pmt_` id
    /// is that id; anything else is a name.
    fn of(name: &'a str) -> Self {
        if PromptId::looks_like(name) {
            if let Ok(id) = name.parse::<PromptId>() {
                return Subject::Id(id);
            }
        }
        Subject::Name(name)
    }

    /// Bytes of the key itself (an id is inline).
    fn key_bytes(&self) -> usize {
        match self {
            Subject::Id(_) => 0,
            Subject::Name(n) => n.len(),
        }
    }
}

/// Entries of one organization and one thing asked, by prompt id or name.
#[derive(Default)]
struct Group {
    by_id: HashMap<PromptId, Entry>,
    by_name: HashMap<Box<str>, Entry>,
}

impl Group {
    fn get(&self, subject: Subject<'_>) -> Option<&Entry> {
        match subject {
            Subject::Id(id) => self.by_id.get(&id),
            Subject::Name(n) => self.by_name.get(n),
        }
    }

    fn insert(&mut self, subject: Subject<'_>, entry: Entry) -> Option<Entry> {
        match subject {
            Subject::Id(id) => self.by_id.insert(id, entry),
            Subject::Name(n) => self.by_name.insert(n.into(), entry),
        }
    }

    fn remove(&mut self, subject: Subject<'_>) -> Option<Entry> {
        match subject {
            Subject::Id(id) => self.by_id.remove(&id),
            Subject::Name(n) => self.by_name.remove(n),
        }
    }
}

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
    /// Sum of the entries' costs, for the byte bound.
    bytes: usize,
}

pub struct PromptCache {
    ttl: Duration,
    capacity: usize,
    max_bytes: usize,
    max_entry_bytes: usize,
    entries: RwLock<Entries>,
    generations: RwLock<HashMap<OrgId, u64>>,
    /// Bumped by [`invalidate_all`](Self::invalidate_all); part of every
    /// organization's generation.
    epoch: std::sync::atomic::AtomicU64,
}

impl PromptCache {
    /// A cache of at most `capacity` entries, with the default byte bounds
    /// ([`with_byte_limits`](Self::with_byte_limits) to change them).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            entries: RwLock::new(Entries::default()),
            generations: RwLock::new(HashMap::new()),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Bounds the bytes held (`max_bytes`) and the largest body cached
    /// (`max_entry_bytes`; larger ones are served uncached).
    pub fn with_byte_limits(mut self, max_bytes: usize, max_entry_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self.max_entry_bytes = max_entry_bytes;
        self
    }

    /// Entries held (`scope_prompt_cache_entries`).
    pub fn len(&self) -> usize {
        self.entries.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, bodies plus overhead (`scope_prompt_cache_bytes`).
    pub fn bytes(&self) -> usize {
        self.entries.read().bytes
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
        let e = entries.orgs.get(&org)?.group(label)?.get(Subject::of(name))?;
        (e.generation == generation && e.at.elapsed() < self.ttl).then(|| e.served.clone())
    }

    pub fn insert(&self, org: OrgId, name: &str, label: Label<'_>, generation: u64, served: Served) {
        if self.ttl.is_zero() {
            return;
        }
        let subject = Subject::of(name);
        let cost = served.body.len() + subject.key_bytes() + ENTRY_OVERHEAD;
        let mut entries = self.entries.write();
        if served.body.len() > self.max_entry_bytes {
            // Too large to keep: also drop what an earlier, smaller body of
            // the same prompt left behind.
            let old = entries.orgs.get_mut(&org).map(|o| o.group_mut(label)).and_then(|g| g.remove(subject));
            if let Some(old) = old {
                entries.len = entries.len.saturating_sub(1);
                entries.bytes = entries.bytes.saturating_sub(old.cost);
            }
            return;
        }
        let old_cost = entries.orgs.get(&org).and_then(|o| o.group(label)).and_then(|g| g.get(subject)).map(|e| e.cost);
        let len_after = entries.len + usize::from(old_cost.is_none());
        let bytes_after = entries.bytes.saturating_sub(old_cost.unwrap_or(0)) + cost;
        if len_after > self.capacity || bytes_after > self.max_bytes {
            *entries = Entries::default();
        }
        let entry = Entry { generation, at: Instant::now(), served, cost };
        let old = entries.orgs.entry(org).or_default().group_mut(label).insert(subject, entry);
        match old {
            Some(old) => entries.bytes = entries.bytes.saturating_sub(old.cost),
            None => entries.len += 1,
        }
        entries.bytes += cost;
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

    /// Every spelling the ULID decoder accepts for one id: either case of
    /// each letter, and the first character's aliases (only its low two
    /// bits survive the 128-bit decode).
    fn spellings(id: PromptId, n: usize) -> Vec<String> {
        let canonical = id.ulid().to_string();
        let mut out = std::collections::BTreeSet::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        while out.len() < n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut text: String = canonical
                .chars()
                .enumerate()
                .map(|(i, c)| if (seed >> (i % 64)) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                .collect();
            let first = ["0", "8", "G", "g", "R", "r"][(seed % 6) as usize];
            if canonical.starts_with('0') {
                text.replace_range(0..1, first);
            }
            out.insert(format!("pmt_{text}"));
        }
        out.into_iter().collect()
    }

    #[test]
    fn every_spelling_of_an_id_is_one_entry() {
        let c = PromptCache::new(Duration::from_secs(60), 100_000);
        let org = OrgId::generate();
        let id = PromptId::generate();
        let g = c.begin(&org);
        c.insert(org, &id.to_string(), Label::Production, g, served(b"body"));
        let (len, bytes) = (c.len(), c.bytes());
        let variants = spellings(id, 1000);
        assert_eq!(variants.len(), 1000);
        for v in &variants {
            assert_eq!(v.parse::<PromptId>().ok(), Some(id), "{v} is a spelling of {id}");
            assert_eq!(body(c.get(org, v, Label::Production)).as_deref(), Some(&b"body"[..]), "{v}");
            c.insert(org, v, Label::Production, g, served(b"body"));
        }
        assert_eq!((c.len(), c.bytes()), (len, bytes), "spellings of one id made entries of their own");
        // A name is its own key (exactly as the store looks names up).
        c.insert(org, "greeting", Label::Production, g, served(b"body"));
        assert_eq!(c.len(), len + 1);
        assert_eq!(c.get(org, "Greeting", Label::Production), None);
        // `pmt_` text that is not an id is a name.
        c.insert(org, "pmt_not-an-id", Label::Production, g, served(b"x"));
        assert!(c.get(org, "pmt_not-an-id", Label::Production).is_some());
        assert_eq!(c.len(), len + 2);
    }

    #[test]
    fn bytes_are_bounded_and_large_bodies_are_not_cached() {
        let c = PromptCache::new(Duration::from_secs(60), 100_000).with_byte_limits(10_000, 2_000);
        let org = OrgId::generate();
        let body = Bytes::from(vec![b'x'; 1_500]);
        let mut most = 0;
        for i in 0..50 {
            c.insert(org, &format!("p{i}"), Label::Latest, 0, Served::new("latest", body.clone()));
            assert!(c.bytes() <= 10_000, "{} bytes held", c.bytes());
            most = most.max(c.len());
        }
        assert_eq!(most, 6, "filled up to the byte bound, then started over");
        assert!(c.get(org, "p49", Label::Latest).is_some(), "the newest entry is kept");
        // Above the per-entry threshold: served, never held; a smaller
        // earlier body of the same prompt is dropped with it.
        let before = (c.len(), c.bytes());
        c.insert(org, "p49", Label::Latest, 0, Served::new("latest", Bytes::from(vec![b'y'; 2_001])));
        assert_eq!(c.get(org, "p49", Label::Latest), None);
        assert_eq!(c.len(), before.0 - 1);
        assert!(c.bytes() < before.1);
        c.invalidate_all();
        assert_eq!((c.len(), c.bytes()), (0, 0));
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
