//! A bounded cache of tokens whose signature was already verified.
//!
//! Verifying an Ed25519 signature costs more than the rest of a prompt fetch,
//! and an SDK sends the same token for up to an hour. The cache maps the full
//! token text to its claims; a hit still checks `exp` and the key's revocation
//! gate on every request, so caching never extends a token's life. When the
//! cache is full it is cleared (bounded memory, simple, and the next requests
//! simply verify again).
//!
//! The map hashes its keys — whole tokens, ~300 bytes — with foldhash
//! (seeded at random per process) rather than SipHash, which cost 4 % of a
//! prompt fetch. Only tokens whose signature verified are inserted, so
//! nobody outside can choose keys to collide.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use scope_domain::jwt::Claims;
use scope_domain::{KeyId, OrgId};

/// What a verified token says, parsed once.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub key_id: KeyId,
    pub org_id: OrgId,
}

pub struct TokenCache {
    capacity: usize,
    map: RwLock<HashMap<Box<str>, Arc<VerifiedToken>, foldhash::fast::RandomState>>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, map: RwLock::new(HashMap::default()) }
    }

    /// Counted as a hit or miss of the `token` cache (`/metrics`).
    pub fn get(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        let found = self.map.read().get(token).cloned();
        super::metrics::cache_lookup(super::metrics::Cache::Token, found.is_some());
        found
    }

    pub fn insert(&self, token: &str, verified: Arc<VerifiedToken>) {
        let mut map = self.map.write();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token.into(), verified);
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
