//! The revoked-token view: access tokens revoked one by one (RFC 7009), by
//! `jti`, until they would have expired anyway.
//!
//! Every bearer request checks it, so it lives in memory like the key gates:
//! a revocation made here is marked before the revoke call returns; those
//! made by other processes arrive through the change feed (PostgreSQL) and,
//! as the safety net, by polling `revoked_token_changes` every
//! `gate_poll_interval`. Entries whose token has expired are dropped by
//! [`prune`](RevokedTokens::prune): an expired token is refused anyway.

use std::collections::HashMap;

use parking_lot::RwLock;
use scope_store::RevokedTokenRow;

#[derive(Debug, Default)]
pub struct RevokedTokens {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `jti` → the token's expiry (Unix ms).
    jtis: HashMap<Box<str>, i64>,
    last_seq: i64,
}

impl RevokedTokens {
    /// Whether the token with this `jti` was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        let inner = self.inner.read();
        !inner.jtis.is_empty() && inner.jtis.contains_key(jti)
    }

    pub fn last_seq(&self) -> i64 {
        self.inner.read().last_seq
    }

    /// Applies rows from the store (initial load, poll or pushed change).
    pub fn apply(&self, rows: &[RevokedTokenRow], now_ms: i64) {
        if rows.is_empty() {
            return;
        }
        let mut inner = self.inner.write();
        for r in rows {
            if r.expires_at > now_ms {
                inner.jtis.insert(r.jti.as_str().into(), r.expires_at);
            }
            inner.last_seq = inner.last_seq.max(r.change_seq);
        }
    }

    /// Marks a token revoked right away (before its row is polled).
    pub fn mark(&self, jti: &str, expires_at: i64) {
        self.inner.write().jtis.insert(jti.into(), expires_at);
    }

    /// Forgets tokens that have expired by `now_ms`.
    pub fn prune(&self, now_ms: i64) {
        let mut inner = self.inner.write();
        if !inner.jtis.is_empty() {
            inner.jtis.retain(|_, exp| *exp > now_ms);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().jtis.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scope_domain::{KeyId, OrgId};

    fn row(jti: &str, expires_at: i64, change_seq: i64) -> RevokedTokenRow {
        RevokedTokenRow {
            jti: jti.into(),
            org_id: OrgId::generate(),
            key_id: KeyId::generate(),
            expires_at,
            revoked_at: 0,
            revoked_by: "system".into(),
            change_seq,
        }
    }

    #[test]
    fn marks_applies_and_prunes() {
        let v = RevokedTokens::default();
        assert!(!v.is_revoked("a"));
        v.mark("a", 100);
        assert!(v.is_revoked("a"));
        v.apply(&[row("b", 200, 3), row("old", 10, 4)], 50);
        assert!(v.is_revoked("b"));
        assert!(!v.is_revoked("old"), "already expired: not kept");
        assert_eq!(v.last_seq(), 4);
        v.prune(150);
        assert!(!v.is_revoked("a") && v.is_revoked("b"));
        assert_eq!(v.len(), 1);
    }
}
