//! API secret generation and storage form (server side).
//!
//! A secret is 43 base62 characters drawn uniformly from the OS CSPRNG
//! (43 · log2(62) ≈ 256.03 bits). Only its SHA-256 digest is stored; a slow
//! password hash buys nothing for a 256-bit random value and would cap token
//! throughput. Digests are compared in constant time.

use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret_format::{self, BASE62, BODY_LEN, PREFIX};

/// SHA-256 digest of a secret: the only form in which secrets are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

/// A freshly generated API secret. The plain value is wrapped so it cannot be
/// logged by accident; it is exposed once, in the create/rotate response.
pub struct NewSecret {
    pub plain: SecretString,
    pub digest: SecretDigest,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(..)")
    }
}

/// A new random secret in the published format.
pub fn generate() -> NewSecret {
    let mut body = String::with_capacity(secret_format::TOTAL_LEN);
    body.push_str(PREFIX);
    let mut produced = 0;
    let mut buf = [0u8; 64];
    while produced < BODY_LEN {
        OsRng.fill_bytes(&mut buf);
        for &b in &buf {
            // Rejection sampling keeps the distribution uniform: 248 = 4·62.
            if b < 248 && produced < BODY_LEN {
                body.push(BASE62[(b % 62) as usize] as char);
                produced += 1;
            }
        }
    }
    let sum = secret_format::checksum(&body);
    body.push('_');
    body.push_str(&sum);
    let digest = SecretDigest::of(&body);
    NewSecret { plain: SecretString::from(body), digest }
}

/// Expose the plain secret (only for the one response that shows it).
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret_format::is_well_formed;

    #[test]
    fn generated_secrets_have_the_published_format() {
        let re_like = |s: &str| {
            s.len() == 57
                && s.starts_with("secret_")
                && s.as_bytes()[50] == b'_'
                && s[7..50].bytes().all(|b| b.is_ascii_alphanumeric())
                && s[51..].bytes().all(|b| b.is_ascii_alphanumeric())
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let s = generate();
            let plain = expose(&s.plain).to_owned();
            assert!(re_like(&plain), "{plain}");
            assert!(is_well_formed(&plain));
            assert!(s.digest.matches(&SecretDigest::of(&plain)));
            assert!(seen.insert(plain));
        }
    }

    #[test]
    fn digest_compare_and_debug_do_not_leak() {
        let s = generate();
        let other = generate();
        assert!(!s.digest.matches(&other.digest));
        assert_eq!(format!("{:?}", s), "NewSecret(..)");
        assert_eq!(format!("{:?}", s.digest), "SecretDigest(..)");
    }
}
