//! The revocation view: which keys are revoked or carry an expiry.
//!
//! A JWT stays valid only while its key is active. Checking that in the
//! database on every request would cost a query per call, so each server
//! keeps the (small) set of keys that are revoked or have an expiry in memory.
//! A revoke in this process updates the view before the revoke call returns;
//! changes made by other processes (CLI, replicas) arrive by polling
//! `key_gate_changes` every `gate_poll_interval`.

use std::collections::HashMap;

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

    /// Applies rows from the store (poll or local change).
    pub fn apply(&self, rows: &[KeyGateRow]) {
        if rows.is_empty() {
            return;
        }
        let mut inner = self.inner.write();
        for r in rows {
            if r.revoked || r.expires_at.is_some() {
                inner.gates.insert(r.key_id, Gate { revoked: r.revoked, expires_at: r.expires_at });
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
    }
}
