//! The revocation view: which keys are revoked or carry an expiry.
//!
//! A JWT stays valid only while its key is active. Checking that in the
//! database on every request would cost a query per call, so each server
//! keeps the (small) set of keys that are revoked or have an expiry in memory.
//! A revoke in this process updates the view before the revoke call returns;
//! changes made by other processes (CLI, replicas) arrive by polling
//! `key_gate_changes` every `gate_poll_interval`. How long a revocation made
//! elsewhere took to arrive is observed as
//! `scope_revocation_propagation_seconds`.
//!
//! The view only ever tightens: once a key is seen revoked here it stays
//! revoked, and an expiry only moves earlier, whatever order poll results,
//! pushed changes and local revokes arrive in (a poll that read before a
//! revoke and applies after it must not reopen the key).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use scope_domain::KeyId;
use scope_store::KeyGateRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gate {
    revoked: bool,
    expires_at: Option<i64>,
}

#[derive(Debug, Default)]
pub struct KeyGates {
    inner: RwLock<Inner>,
    /// Set by the first [`apply`](KeyGates::apply): the initial load, whose
    /// revocations are history, not news.
    loaded: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    gates: HashMap<KeyId, Gate>,
    last_seq: i64,
}

impl KeyGates {
    /// Whether tokens of `key` may be honoured at `now_ms`.
    pub fn is_active(&self, key: &KeyId, now_ms: i64) -> bool {
        match self.inner.read().gates.get(key) {
            None => true,
            Some(g) => !g.revoked && g.expires_at.is_none_or(|e| e > now_ms),
        }
    }

    /// The expiry known for `key`, if any (tokens never outlive their key).
    pub fn expires_at(&self, key: &KeyId) -> Option<i64> {
        self.inner.read().gates.get(key).and_then(|g| g.expires_at)
    }

    pub fn last_seq(&self) -> i64 {
        self.inner.read().last_seq
    }

    /// Applies rows from the store (poll or local change). The first call is
    /// the initial load; after it, each revocation this view did not know
    /// observes its propagation lag (`now - revoked_at`). Revokes made here
    /// were marked before their rows arrive, so they observe nothing.
    pub fn apply(&self, rows: &[KeyGateRow]) {
        let initial = !self.loaded.swap(true, Ordering::Relaxed);
        if rows.is_empty() {
            return;
        }
        let now = super::now_ms();
        let mut inner = self.inner.write();
        for r in rows {
            let known = inner.gates.get(&r.key_id).is_some_and(|g| g.revoked);
            if let (Some(revoked_at), true, false, false) = (r.revoked_at, r.revoked, known, initial) {
                super::metrics::revocation_seen(revoked_at, now);
            }
            // Monotonic: a poll may have read its rows before a revoke (or
            // a rotation's expiry) that this view already knows about, and
            // applying them late must never make the key usable again. The
            // store only ever sets `revoked_at` and lowers `expires_at`, so
            // "revoked if either says so" and "the earlier expiry" are what
            // the database holds now.
            let known_gate = inner.gates.get(&r.key_id).copied();
            let revoked = r.revoked || known_gate.is_some_and(|g| g.revoked);
            let expires_at = match (r.expires_at, known_gate.and_then(|g| g.expires_at)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if revoked || expires_at.is_some() {
                inner.gates.insert(r.key_id, Gate { revoked, expires_at });
            } else {
                inner.gates.remove(&r.key_id);
            }
            inner.last_seq = inner.last_seq.max(r.change_seq);
        }
    }

    /// Marks a key revoked right away (before the store's sequence is seen).
    pub fn mark_revoked(&self, key: KeyId) {
        let mut inner = self.inner.write();
        let g = inner.gates.entry(key).or_insert(Gate { revoked: true, expires_at: None });
        g.revoked = true;
    }

    /// Sets or lowers a key's expiry right away.
    pub fn mark_expiry(&self, key: KeyId, expires_at: i64) {
        let mut inner = self.inner.write();
        let g = inner.gates.entry(key).or_insert(Gate { revoked: false, expires_at: None });
        g.expires_at = Some(g.expires_at.map_or(expires_at, |e| e.min(expires_at)));
    }

    pub fn len(&self) -> usize {
        self.inner.read().gates.len()
    }

    /// Revoked keys in the view (for `/metrics`; walks the view).
    pub fn revoked_count(&self) -> usize {
        self.inner.read().gates.values().filter(|g| g.revoked).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_and_expired_are_inactive() {
        let g = KeyGates::default();
        let a = KeyId::generate();
        let b = KeyId::generate();
        let c = KeyId::generate();
        assert!(g.is_active(&a, 0));
        g.mark_revoked(a);
        assert!(!g.is_active(&a, 0));
        g.mark_expiry(b, 100);
        assert!(g.is_active(&b, 99));
        assert!(!g.is_active(&b, 100));
        g.apply(&[KeyGateRow { key_id: c, revoked: false, revoked_at: None, expires_at: Some(50), change_seq: 7 }]);
        assert!(!g.is_active(&c, 60));
        assert_eq!(g.last_seq(), 7);
        assert_eq!(g.revoked_count(), 1);
    }

    /// A poll reads its rows, a revoke in this process commits and marks
    /// the key, then the poll applies what it read before the revoke (the
    /// key with its expiry, not revoked): the key must stay revoked. Same
    /// for a rotation's expiry overtaken by a stale row without one.
    #[test]
    fn a_stale_poll_never_reopens_a_revoked_key() {
        let g = KeyGates::default();
        g.apply(&[]);
        let now = crate::runtime::now_ms();
        let (a, b, c) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
        let stale = [
            KeyGateRow {
                key_id: a,
                revoked: false,
                revoked_at: None,
                expires_at: Some(now + 86_400_000),
                change_seq: 5,
            },
            KeyGateRow { key_id: b, revoked: false, revoked_at: None, expires_at: None, change_seq: 6 },
            KeyGateRow {
                key_id: c,
                revoked: false,
                revoked_at: None,
                expires_at: Some(now + 86_400_000),
                change_seq: 7,
            },
        ];
        g.mark_revoked(a);
        g.mark_revoked(b);
        g.mark_expiry(c, now - 1);
        g.apply(&stale);
        assert!(!g.is_active(&a, now), "a revoked key was reopened by a poll read before the revoke");
        assert!(!g.is_active(&b, now), "a stale row without expiry removed the revoked gate");
        assert!(!g.is_active(&c, now), "a stale row moved the expiry later");
        assert_eq!(g.expires_at(&c), Some(now - 1));
        assert_eq!(g.revoked_count(), 2);
        // The revoke's own row arriving later changes nothing.
        g.apply(&[KeyGateRow { key_id: a, revoked: true, revoked_at: Some(now), expires_at: None, change_seq: 8 }]);
        assert!(!g.is_active(&a, now));
        assert_eq!(g.last_seq(), 8);
    }

    #[test]
    fn only_revocations_learned_after_the_initial_load_observe_their_lag() {
        use crate::runtime::metrics::{get, tests::sample, REVOCATION_PROPAGATION};
        let row = |key_id, revoked_at: i64, change_seq| KeyGateRow {
            key_id,
            revoked: true,
            revoked_at: Some(revoked_at),
            expires_at: None,
            change_seq,
        };
        let g = KeyGates::default();
        let now = crate::runtime::now_ms();
        let (old, local, remote) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
        let count = || sample(&get().render(), &format!("{REVOCATION_PROPAGATION}_count")).unwrap_or(0.0);
        // Other tests of this process may observe revocations too, but none
        // with a lag over 300 s: the initial load's day-old revoke would be
        // the only sample above the last bucket.
        let above_last_bucket = || {
            let text = get().render();
            let n = |series: String| sample(&text, &series).unwrap_or(0.0);
            n(format!("{REVOCATION_PROPAGATION}_count")) - n(format!("{REVOCATION_PROPAGATION}_bucket{{le=\"300\"}}"))
        };
        let before = count();
        g.apply(&[row(old, now - 86_400_000, 1)]);
        g.mark_revoked(local);
        g.apply(&[row(local, now, 2), row(remote, now - 300, 3)]);
        g.apply(&[row(remote, now - 300, 4)]);
        assert!(count() - before >= 1.0, "the revoke learned from the store is observed");
        assert_eq!(above_last_bucket(), 0.0, "the initial load is not news");
        assert!(!g.is_active(&old, now) && !g.is_active(&local, now) && !g.is_active(&remote, now));
    }
}
