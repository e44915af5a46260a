//! Passwords of console users: Argon2id (the `argon2` crate's defaults, the
//! OWASP-recommended m = 19 MiB, t = 2, p = 1), hashed and verified on the
//! blocking pool so a sign-in never stalls the request workers. Also the
//! random one-time secrets of the console (session ids, invitation tokens,
//! initial passwords).

use argon2::password_hash::{rand_core::OsRng as PhOsRng, SaltString};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use rand::{Rng, RngCore};
use scope_domain::DomainError;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in bytes (bounds the hashing work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn validate_new_password(password: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::bad_request(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ))
        .into());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(
            DomainError::bad_request(format!("the password must have at most {MAX_PASSWORD_BYTES} bytes")).into()
        );
    }
    Ok(())
}

/// PHC string of an Argon2id hash.
pub fn hash_password(password: &SecretString) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut PhOsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AppError::Internal("password hashing failed".into()))
}

/// [`hash_password`] on the blocking pool.
pub async fn hash_password_async(password: SecretString) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AppError::Internal("password hashing task failed".into()))?
}

/// A hash no password matches, verified against when the account is unknown
/// or has no password yet, so that those cases cost what a wrong password
/// costs.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&SecretString::from(random_token())).unwrap_or_else(|_| {
            // Parameters as `Argon2::default()`; any valid PHC string will do.
            "$argon2id$v=19$m=19456,t=2,p=1$c2NvcGVkdW1teXNhbHQ$2aVrBlLZd1mT9NE8l3x8Cq9rM4mB3D4w2U2TYdZ5Hk0".to_owned()
        })
    })
}

/// Whether `password` matches `stored` (a PHC string, or empty for "no
/// password"). Always does one Argon2 verification.
pub async fn verify_password(password: SecretString, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let has_password = !stored.is_empty();
        let phc = if has_password { stored.as_str() } else { dummy_hash() };
        let ok = match PasswordHash::new(phc) {
            Ok(parsed) => Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        };
        ok && has_password
    })
    .await
    .unwrap_or(false)
}

/// 256 random bits from the OS, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token: the only form in which session ids and invitation
/// tokens are stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A readable random password (24 characters, ≈ 137 bits), for bootstrap
/// admins and one-time initial passwords.
pub fn random_password() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let s: String = (0..24).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    SecretString::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let pw = SecretString::from("correct horse battery");
        let h = hash_password(&pw).unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(pw, h.clone()).await);
        assert!(!verify_password(SecretString::from("wrong horse battery"), h).await);
        // No password set: nothing matches, not even the empty string.
        assert!(!verify_password(SecretString::from(""), String::new()).await);
    }

    #[test]
    fn tokens_are_random_and_digests_fixed_size() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_ne!(token_digest(&a), token_digest(&b));
    }

    #[test]
    fn password_policy() {
        assert!(validate_new_password("short").is_err());
        assert!(validate_new_password("twelve chars").is_ok());
        assert!(validate_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
