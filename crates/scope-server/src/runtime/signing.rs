//! JWT signing keys: generated on first start, stored (encrypted with a key
//! derived from `SCOPE_MASTER_KEY` when one is configured), rotated by
//! `scope signing-keys rotate` with overlap: a retired key stays in the JWKS
//! and keeps verifying until every token it signed has expired.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use parking_lot::RwLock;
use rand::RngCore;
use scope_domain::jwt::{KeySet, Signer25519};
use scope_store::{SigningKeyRow, Store};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::error::AppError;
use crate::runtime::now_ms;

/// Derives the AEAD key from the master key.
fn cipher(master: &SecretString) -> Result<ChaCha20Poly1305, AppError> {
    let hk = Hkdf::<Sha256>::new(Some(b"scope-signing-keys-v1"), master.expose_secret().as_bytes());
    let mut key = [0u8; 32];
    hk.expand(b"chacha20poly1305", &mut key).map_err(|_| AppError::Internal("key derivation failed".into()))?;
    Ok(ChaCha20Poly1305::new(&key.into()))
}

fn seal(master: Option<&SecretString>, kid: &str, seed: &[u8; 32]) -> Result<(Vec<u8>, bool), AppError> {
    let Some(master) = master else {
        return Ok((seed.to_vec(), false));
    };
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher(master)?
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: seed, aad: kid.as_bytes() })
        .map_err(|_| AppError::Internal("signing key encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok((out, true))
}

fn open(master: Option<&SecretString>, row: &SigningKeyRow) -> Result<[u8; 32], AppError> {
    let plain = if row.encrypted {
        let master = master.ok_or_else(|| {
            AppError::Internal(
                "signing keys are encrypted: set SCOPE_MASTER_KEY to the master key used to create them".into(),
            )
        })?;
        if row.private_key.len() < 12 {
            return Err(AppError::Internal("stored signing key is corrupt".into()));
        }
        let (nonce, ct) = row.private_key.split_at(12);
        cipher(master)?
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: row.kid.as_bytes() })
            .map_err(|_| AppError::Internal("cannot decrypt signing key: wrong SCOPE_MASTER_KEY".into()))?
    } else {
        row.private_key.clone()
    };
    <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| AppError::Internal("stored signing key is corrupt".into()))
}

/// Creates and stores a new active signing key (retiring the others).
pub async fn rotate(store: &dyn Store, master: Option<&SecretString>) -> Result<String, AppError> {
    let kid = format!("sk_{}", ulid::Ulid::new());
    let signer = Signer25519::generate(kid.clone());
    let (private_key, encrypted) = seal(master, &kid, &signer.seed())?;
    let row = SigningKeyRow {
        kid: kid.clone(),
        public_key: signer.public().to_vec(),
        private_key,
        encrypted,
        created_at: now_ms(),
        retired_at: None,
    };
    store.insert_signing_key(&row).await?;
    Ok(kid)
}

/// The active signer and the set of public keys that still verify.
pub struct SigningKeys {
    master: Option<SecretString>,
    ttl_ms: i64,
    active: RwLock<Arc<Signer25519>>,
    keyset: RwLock<Arc<KeySet>>,
    loaded: RwLock<Vec<String>>,
}

impl SigningKeys {
    /// Loads the keys, creating the first one on an empty database.
    pub async fn load(store: &dyn Store, master: Option<SecretString>, ttl_ms: i64) -> Result<Self, AppError> {
        let mut rows = store.list_signing_keys().await?;
        if rows.is_empty() {
            rotate(store, master.as_ref()).await?;
            rows = store.list_signing_keys().await?;
        }
        let (active, keyset) = Self::build(&rows, master.as_ref(), ttl_ms)?;
        let loaded = rows.iter().map(|r| r.kid.clone()).collect();
        Ok(Self {
            master,
            ttl_ms,
            active: RwLock::new(Arc::new(active)),
            keyset: RwLock::new(Arc::new(keyset)),
            loaded: RwLock::new(loaded),
        })
    }

    fn build(
        rows: &[SigningKeyRow],
        master: Option<&SecretString>,
        ttl_ms: i64,
    ) -> Result<(Signer25519, KeySet), AppError> {
        let now = now_ms();
        // Newest non-retired key signs.
        let active_row = rows
            .iter()
            .filter(|r| r.retired_at.is_none())
            .max_by_key(|r| r.created_at)
            .ok_or_else(|| AppError::Internal("no active signing key".into()))?;
        let signer = Signer25519::from_seed(active_row.kid.clone(), &open(master, active_row)?);
        let mut set = KeySet::default();
        for r in rows {
            // A retired key verifies until the last token it signed expires
            // (plus a minute of clock skew between replicas).
            let still_needed = r.retired_at.is_none_or(|at| at + ttl_ms + 60_000 > now);
            if let (true, Ok(pk)) = (still_needed, <[u8; 32]>::try_from(r.public_key.as_slice())) {
                set.insert(r.kid.clone(), &pk);
            }
        }
        Ok((signer, set))
    }

    /// Re-reads the keys when the stored set changed (rotation by the CLI or
    /// another replica) or retired keys aged out.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), AppError> {
        let rows = store.list_signing_keys().await?;
        let kids: Vec<String> = rows.iter().map(|r| r.kid.clone()).collect();
        let (active, keyset) = Self::build(&rows, self.master.as_ref(), self.ttl_ms)?;
        if *self.loaded.read() != kids || keyset.len() != self.keyset.read().len() {
            *self.active.write() = Arc::new(active);
            *self.keyset.write() = Arc::new(keyset);
            *self.loaded.write() = kids;
        }
        Ok(())
    }

    pub fn signer(&self) -> Arc<Signer25519> {
        self.active.read().clone()
    }

    pub fn keyset(&self) -> Arc<KeySet> {
        self.keyset.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, private_key: Vec<u8>, encrypted: bool) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.into(),
            public_key: vec![0; 32],
            private_key,
            encrypted,
            created_at: 0,
            retired_at: None,
        }
    }

    #[test]
    fn seal_and_open_round_trip() {
        let master = SecretString::from("correct horse battery staple");
        let seed = [7u8; 32];
        let (sealed, enc) = seal(Some(&master), "k1", &seed).unwrap_or_default();
        assert!(enc);
        assert!(!sealed.windows(32).any(|w| w == seed));
        assert_eq!(open(Some(&master), &row("k1", sealed.clone(), true)).ok(), Some(seed));
        // Wrong master key, wrong kid (AAD), or no master key: refused.
        let wrong = SecretString::from("wrong");
        assert!(open(Some(&wrong), &row("k1", sealed.clone(), true)).is_err());
        assert!(open(Some(&master), &row("k2", sealed.clone(), true)).is_err());
        assert!(open(None, &row("k1", sealed, true)).is_err());
        // Unencrypted storage.
        let (plain, enc) = seal(None, "k1", &seed).unwrap_or_default();
        assert!(!enc);
        assert_eq!(open(None, &row("k1", plain, false)).ok(), Some(seed));
    }
}
