//! A bounded cache of API key look-ups for the token exchange.
//!
//! The exchange is hit by every application instance; a database read per
//! exchange would dominate its cost. What is cached never changes after
//! creation (organization, digest, role, environment); what can change —
//! revocation and expiry — is checked against the revocation view
//! ([`super::gates`]) on every exchange, so a cached entry can never let a
//! revoked or expired key through.
//!
//! Unknown key ids are cached too (as `None`): otherwise a known key would
//! answer from memory and an unknown one from the database, and the
//! difference in time would tell an attacker which key ids exist.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use scope_domain::KeyId;
use scope_store::ApiKeyRow;

pub struct KeyCache {
    capacity: usize,
    map: RwLock<HashMap<KeyId, Option<Arc<ApiKeyRow>>>>,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, map: RwLock::new(HashMap::new()) }
    }

    /// `None`: not cached; `Some(None)`: known not to exist. Counted as a
    /// hit (either `Some`) or miss of the `key` cache (`/metrics`).
    pub fn get(&self, key: &KeyId) -> Option<Option<Arc<ApiKeyRow>>> {
        let found = self.map.read().get(key).cloned();
        super::metrics::cache_lookup(super::metrics::Cache::Key, found.is_some());
        found
    }

    pub fn insert(&self, key: KeyId, row: Option<Arc<ApiKeyRow>>) {
        let mut map = self.map.write();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, row);
    }

    /// Forget a key (created, so a cached "unknown" must go; or changed).
    pub fn invalidate(&self, key: &KeyId) {
        self.map.write().remove(key);
    }
}
