//! JWT signing keys: generated on first start, stored (encrypted with a key
//! derived from `SCOPE_MASTER_KEY` when one is configured), rotated by
//! `scope signing-keys rotate` with overlap: a retired key stays in the JWKS
//! and keeps verifying until every token it signed has expired.
//!
//! With a master key, keys found stored in clear (written before one was
//! configured) are encrypted in place on load; without one, a database that
//! already holds encrypted keys is never given a plaintext key.

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

/// Shortest accepted master key, in characters.
pub const MIN_MASTER_KEY_CHARS: usize = 32;
/// Fewest distinct characters in an accepted master key: rules out
/// `aaaa…` and `abab…` that pass the length check with no entropy.
const MIN_MASTER_KEY_DISTINCT: usize = 8;

/// Checks that a master key looks like a random secret: at least
/// [`MIN_MASTER_KEY_CHARS`] characters, not a repetition of a few. The
/// message says how to make one and never contains the key.
pub fn validate_master_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if chars == 0 {
        return Err("the master key is empty: unset SCOPE_MASTER_KEY / SCOPE_MASTER_KEY_FILE, or give a key of \
                    at least 32 random characters (e.g. `openssl rand -base64 32`)"
            .into());
    }
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if chars < MIN_MASTER_KEY_CHARS || distinct.len() < MIN_MASTER_KEY_DISTINCT {
        return Err(format!(
            "the master key is too weak ({chars} characters, {} distinct): it must be at least \
             {MIN_MASTER_KEY_CHARS} characters of random text, at least {MIN_MASTER_KEY_DISTINCT} of them distinct, \
             since it is all that protects the token-signing keys at rest; generate one with \
             `openssl rand -base64 32`",
            distinct.len()
        ));
    }
    Ok(())
}

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

fn config_error(message: impl Into<String>) -> AppError {
    AppError::Domain(scope_domain::DomainError::bad_request(message))
}

/// Checks `master` against the stored keys before anything is written with
/// it: without a master key, a database holding encrypted keys must not get
/// a plaintext one; with one, it must open the encrypted keys already there
/// (a mistyped key would otherwise leave keys under two master keys).
fn check_master(rows: &[SigningKeyRow], master: Option<&SecretString>) -> Result<(), AppError> {
    let Some(encrypted) = rows.iter().filter(|r| r.encrypted).max_by_key(|r| r.created_at) else {
        return Ok(());
    };
    match master {
        None => Err(config_error(
            "the stored signing keys are encrypted, and no master key is set: refusing to write a signing key \
             in clear; set SCOPE_MASTER_KEY or SCOPE_MASTER_KEY_FILE to the master key the server uses",
        )),
        Some(_) => open(master, encrypted).map(|_| ()).map_err(|_| {
            config_error(
                "the master key does not decrypt the stored signing keys: set SCOPE_MASTER_KEY or \
                 SCOPE_MASTER_KEY_FILE to the master key they were encrypted with",
            )
        }),
    }
}

/// Encrypts, in place, every key of `rows` still stored in clear. Returns
/// the ids of the keys this call sealed (another process may seal some
/// first). Logs the ids, never key material.
async fn seal_plaintext(
    store: &dyn Store,
    rows: &[SigningKeyRow],
    master: &SecretString,
) -> Result<Vec<String>, AppError> {
    let mut sealed_kids = Vec::new();
    for row in rows.iter().filter(|r| !r.encrypted) {
        let seed = open(None, row)?;
        let (sealed, _) = seal(Some(master), &row.kid, &seed)?;
        if store.seal_signing_key(&row.kid, &sealed).await? {
            tracing::warn!(kid = %row.kid, "signing key was stored in clear; encrypted it with the master key");
            sealed_kids.push(row.kid.clone());
        }
    }
    Ok(sealed_kids)
}

/// Creates and stores a new active signing key (retiring the others).
///
/// Refuses (writing nothing) when the database holds encrypted keys and no
/// master key is given, or a master key that does not open them. With a
/// master key, keys still stored in clear are encrypted first.
pub async fn rotate(store: &dyn Store, master: Option<&SecretString>) -> Result<String, AppError> {
    let rows = store.list_signing_keys().await?;
    check_master(&rows, master)?;
    if let Some(master) = master {
        seal_plaintext(store, &rows, master).await?;
    }
    insert_new(store, master).await
}

async fn insert_new(store: &dyn Store, master: Option<&SecretString>) -> Result<String, AppError> {
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

/// Says, in the log and on stderr (whatever the log format or filter), that
/// the signing keys are stored unencrypted.
fn warn_plaintext() {
    const MESSAGE: &str = "token-signing keys are stored UNENCRYPTED in the database: anyone who can read it \
                           (or a backup or export of it) can mint valid tokens for every organization. Set \
                           SCOPE_MASTER_KEY_FILE (or SCOPE_MASTER_KEY) to at least 32 random characters \
                           (e.g. `openssl rand -base64 32`); the keys are encrypted on the next start.";
    tracing::warn!("{MESSAGE}");
    eprintln!("WARNING: {MESSAGE}");
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
    ///
    /// With a master key, keys stored in clear are encrypted in place
    /// first; without one, a loud warning says the keys are in clear.
    pub async fn load(store: &dyn Store, master: Option<SecretString>, ttl_ms: i64) -> Result<Self, AppError> {
        if let Some(m) = &master {
            validate_master_key(m.expose_secret()).map_err(config_error)?;
        }
        let mut rows = store.list_signing_keys().await?;
        if rows.is_empty() {
            insert_new(store, master.as_ref()).await?;
            rows = store.list_signing_keys().await?;
        }
        match &master {
            Some(m) if rows.iter().any(|r| !r.encrypted) => {
                check_master(&rows, master.as_ref())?;
                let sealed = seal_plaintext(store, &rows, m).await?;
                if !sealed.is_empty() {
                    tracing::warn!(
                        count = sealed.len(),
                        "encrypted signing keys that were stored in clear; copies made before (backups, exports, \
                         free pages of the database file) still hold them: run `scope signing-keys rotate` so that \
                         they stop signing"
                    );
                }
                rows = store.list_signing_keys().await?;
            }
            Some(_) => {}
            None if rows.iter().any(|r| !r.encrypted) => warn_plaintext(),
            None => {}
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
    fn weak_master_keys_are_refused_without_echoing_them() {
        assert!(validate_master_key("").is_err());
        assert!(validate_master_key("short-but-varied-key").is_err());
        let repeated = "ab".repeat(32);
        let err = validate_master_key(&repeated).err().unwrap_or_default();
        assert!(err.contains("too weak") && !err.contains(&repeated), "{err}");
        assert!(validate_master_key("q3Jx9fLr2V+u8mWcT1zYpKd5sN0hGaEe4bQ7oRiUyX8=").is_ok());
        assert!(validate_master_key("correct horse battery staple, pinned on a wall").is_ok());
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
