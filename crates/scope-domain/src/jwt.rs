//! Compact JWS tokens signed with Ed25519 (`alg: EdDSA`), as SPEC §4 fixes.
//!
//! Kept here, without I/O, so the rules are unit-tested: only `EdDSA` is
//! accepted (never `none` or an HMAC algorithm), the `kid` must name a known
//! public key, the signature must verify, `iss` must match and `exp` must be in
//! the future.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{KeyId, OrgId, Role};

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The API key id.
    pub sub: String,
    pub org: String,
    pub role: Role,
    pub env: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The granted scopes, space-separated (RFC 8693 §4.2). Absent in tokens
    /// issued before scopes existed: those carry their role's full set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The audience asked for with `resource`/`audience` (RFC 7519 `aud`);
    /// absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    pub fn key_id(&self) -> Option<KeyId> {
        self.sub.parse().ok()
    }
    pub fn org_id(&self) -> Option<OrgId> {
        self.org.parse().ok()
    }
    /// The scopes granted: the `scope` claim, or the role's full set when
    /// the token has none; `None` when the claim cannot be read.
    pub fn scopes(&self) -> Option<crate::ScopeSet> {
        match &self.scope {
            Some(s) => crate::ScopeSet::parse(s).ok(),
            None => Some(crate::ScopeSet::of_role(self.role)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Why a token was refused. The HTTP layer answers all of them with the same
/// 401; the distinction is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKid,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("token expired")]
    Expired,
}

/// A private signing key with its key id.
///
/// Tokens are signed by AWS-LC (`aws-lc-rs`), whose Ed25519 uses
/// s2n-bignum's verified x86-64/AArch64 field arithmetic and signs in about
/// half the time of ed25519-dalek's portable fixed-base multiplication
/// (`docs/BENCHMARKS.md`, "Third pass"); the signing is half of a token
/// exchange's CPU. Ed25519 signatures are deterministic, so both libraries
/// produce the same bytes (a unit test checks it); ed25519-dalek keeps
/// generating keys, exposing the seed and public key, verifying tokens, and
/// signs when AWS-LC refuses the key or fails (neither is expected).
pub struct Signer25519 {
    pub kid: String,
    key: SigningKey,
    fast: Option<aws_lc_rs::signature::Ed25519KeyPair>,
    /// The token header, `{"alg":"EdDSA","typ":"JWT","kid":…}` base64url
    /// encoded: the same for every token this key signs.
    header_b64: String,
}

impl std::fmt::Debug for Signer25519 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer25519").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Signer25519 {
    pub fn generate(kid: String) -> Self {
        Self::with_key(kid, SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn from_seed(kid: String, seed: &[u8; 32]) -> Self {
        Self::with_key(kid, SigningKey::from_bytes(seed))
    }

    fn with_key(kid: String, key: SigningKey) -> Self {
        let header = Header { alg: "EdDSA".into(), typ: Some("JWT".into()), kid: Some(kid.clone()) };
        // Serialising this plain struct cannot fail.
        let header_b64 = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        // Built from the seed and checked against dalek's public key, so the
        // two can never sign as different keys.
        let seed = zeroize::Zeroizing::new(key.to_bytes());
        let fast =
            aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(&*seed, &key.verifying_key().to_bytes())
                .ok();
        Self { kid, key, fast, header_b64 }
    }

    /// The Ed25519 signature of `message`: AWS-LC's, or dalek's when there is
    /// no AWS-LC key or it fails (the same bytes either way).
    fn signature(&self, message: &[u8]) -> [u8; 64] {
        if let Some(sig) = self.fast.as_ref().and_then(|k| k.try_sign(message).ok()) {
            if let Ok(bytes) = <[u8; 64]>::try_from(sig.as_ref()) {
                return bytes;
            }
        }
        self.key.sign(message).to_bytes()
    }

    /// The 32-byte private seed, for storage (encrypted when a master key is
    /// configured). Never log it.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn sign(&self, claims: &Claims) -> String {
        // Serialising this plain struct cannot fail.
        let c = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = String::with_capacity(self.header_b64.len() + 1 + c.len().div_ceil(3) * 4 + 1 + 86);
        out.push_str(&self.header_b64);
        out.push('.');
        B64.encode_string(c, &mut out);
        let sig = self.signature(out.as_bytes());
        out.push('.');
        B64.encode_string(sig, &mut out);
        out
    }
}

/// Public keys by `kid`, used to verify tokens.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    pub fn insert(&mut self, kid: String, public: &[u8; 32]) -> bool {
        match VerifyingKey::from_bytes(public) {
            Ok(k) => {
                self.keys.insert(kid, k);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS document (`GET /.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        let keys: Vec<serde_json::Value> = kids
            .into_iter()
            .filter_map(|kid| {
                self.keys.get(kid).map(|k| {
                    serde_json::json!({
                        "kty": "OKP",
                        "crv": "Ed25519",
                        "alg": "EdDSA",
                        "use": "sig",
                        "kid": kid,
                        "x": B64.encode(k.to_bytes()),
                    })
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Verify signature, algorithm, `kid`, `iss` and `exp` (at time `now`,
    /// seconds since the epoch).
    pub fn verify(&self, token: &str, issuer: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header: Header = serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(JwtError::Algorithm);
        }
        let kid = header.kid.ok_or(JwtError::UnknownKid)?;
        let key = self.keys.get(&kid).ok_or(JwtError::UnknownKid)?;
        let sig_bytes = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let sig = Signature::from_slice(&sig_bytes).map_err(|_| JwtError::Signature)?;
        let signed_len = h.len() + 1 + c.len();
        key.verify(&token.as_bytes()[..signed_len], &sig).map_err(|_| JwtError::Signature)?;
        let claims: Claims = serde_json::from_slice(&B64.decode(c).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
        if claims.iss != issuer {
            return Err(JwtError::Issuer);
        }
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: "http://scope.test".into(),
            sub: KeyId::generate().to_string(),
            org: OrgId::generate().to_string(),
            role: Role::Viewer,
            env: "production".into(),
            iat: 1000,
            exp,
            jti: "j1".into(),
            scope: Some("prompts:read".into()),
            aud: None,
        }
    }

    fn setup() -> (Signer25519, KeySet) {
        let s = Signer25519::generate("k1".into());
        let mut set = KeySet::default();
        set.insert(s.kid.clone(), &s.public());
        (s, set)
    }

    #[test]
    fn sign_and_verify() {
        let (s, set) = setup();
        let c = claims(5000);
        let t = s.sign(&c);
        assert_eq!(set.verify(&t, "http://scope.test", 2000), Ok(c));
    }

    #[test]
    fn aws_lc_signs_the_same_bytes_as_dalek() {
        for seed in [[0u8; 32], [7u8; 32], [0xff; 32]] {
            let s = Signer25519::from_seed("k1".into(), &seed);
            assert!(s.fast.is_some(), "AWS-LC accepts every 32-byte seed");
            for len in [0, 1, 64, 320, 1000] {
                let message = vec![b'a' + (len % 26) as u8; len];
                assert_eq!(s.signature(&message), s.key.sign(&message).to_bytes(), "seed {seed:?}, {len} bytes");
            }
        }
        // And a whole token verifies with dalek.
        let (s, set) = setup();
        assert!(s.fast.is_some());
        let c = claims(5000);
        assert_eq!(set.verify(&s.sign(&c), "http://scope.test", 2000), Ok(c));
    }

    #[test]
    fn the_header_names_the_algorithm_type_and_key() {
        let (s, _) = setup();
        let t = s.sign(&claims(5000));
        let header = B64.decode(t.split('.').next().unwrap_or_default()).unwrap_or_default();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap_or_default();
        assert_eq!(header, serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}));
        assert_eq!(t.split('.').count(), 3);
    }

    #[test]
    fn rejects_expired_wrong_issuer_and_tampering() {
        let (s, set) = setup();
        let t = s.sign(&claims(5000));
        assert_eq!(set.verify(&t, "http://scope.test", 5000), Err(JwtError::Expired));
        assert_eq!(set.verify(&t, "http://other", 2000), Err(JwtError::Issuer));
        // Edit the claims (role → admin) but keep the signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(5000);
        c.role = Role::Admin;
        let forged = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&c).unwrap_or_default()), parts[2]);
        assert_eq!(set.verify(&forged, "http://scope.test", 2000), Err(JwtError::Signature));
        assert_eq!(set.verify("a.b", "http://scope.test", 2000), Err(JwtError::Malformed));
        assert_eq!(set.verify("", "http://scope.test", 2000), Err(JwtError::Malformed));
    }

    #[test]
    fn rejects_alg_none_hs256_and_unknown_kid() {
        let (_, set) = setup();
        let c = B64.encode(serde_json::to_vec(&claims(5000)).unwrap_or_default());
        for alg in ["none", "HS256", "RS256"] {
            let h = B64.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            assert_eq!(set.verify(&format!("{h}.{c}."), "http://scope.test", 2000), Err(JwtError::Algorithm));
        }
        let other = Signer25519::generate("k2".into());
        let t = other.sign(&claims(5000));
        assert_eq!(set.verify(&t, "http://scope.test", 2000), Err(JwtError::UnknownKid));
        // Same kid, different key: bad signature.
        let imposter = Signer25519::generate("k1".into());
        let t = imposter.sign(&claims(5000));
        assert_eq!(set.verify(&t, "http://scope.test", 2000), Err(JwtError::Signature));
    }

    #[test]
    fn scope_and_audience_round_trip_and_old_tokens_carry_their_role() {
        let (s, set) = setup();
        let mut c = claims(5000);
        c.aud = Some("https://billing.example".into());
        let back = set.verify(&s.sign(&c), "http://scope.test", 2000);
        assert_eq!(back.as_ref().map(|b| b.aud.clone()), Ok(Some("https://billing.example".into())));
        assert_eq!(back.ok().and_then(|b| b.scopes()), Some(crate::ScopeSet::of_role(Role::Viewer)));
        // A token signed before the claim existed: its role's full set.
        c.scope = None;
        c.role = Role::Editor;
        let json = serde_json::to_string(&c).unwrap_or_default();
        assert!(!json.contains("\"scope\""), "{json}");
        let back = set.verify(&s.sign(&c), "http://scope.test", 2000).ok().and_then(|b| b.scopes());
        assert_eq!(back, Some(crate::ScopeSet::of_role(Role::Editor)));
        c.scope = Some("prompts:read nonsense".into());
        assert_eq!(c.scopes(), None);
    }

    #[test]
    fn jwks_lists_public_keys() {
        let (s, set) = setup();
        let j = set.jwks();
        assert_eq!(j["keys"][0]["kid"], "k1");
        assert_eq!(j["keys"][0]["crv"], "Ed25519");
        assert_eq!(j["keys"][0]["x"], B64.encode(s.public()));
    }
}
