//! JWT parsing and verification (scope-domain `jwt.rs`, SPEC §4) with a real
//! Ed25519 key.
//!
//! Properties:
//! - any text given as a token: `verify` never panics, and when it accepts,
//!   the signature really is the key's over the first two segments
//!   (checked here with `verify_strict`), `iss` is ours and `exp` is ahead;
//! - a token signed for any claims verifies to exactly those claims (or is
//!   refused as expired / of another issuer, never anything else);
//! - a signed token changed in any way (a byte, a cut, a new header with any
//!   `alg`/`kid`, new claims, another signature, segments moved) is refused.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use scope_domain::jwt::{Claims, JwtError, KeySet, Signer25519};
use scope_domain::Role;

const ISSUER: &str = "https://scope.test";
const NOW: i64 = 1_800_000_000;

#[derive(Debug, Arbitrary)]
enum Change {
    None,
    Byte { at: u16, to: u8 },
    Cut(u16),
    Insert { at: u16, byte: u8 },
    Header { alg: String, kid: Option<String>, extra: Option<String> },
    ClaimsJson(String),
    Signature(Vec<u8>),
    Reorder(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    raw: String,
    sub: String,
    org: String,
    role: u8,
    env: String,
    iat: i64,
    exp: i64,
    jti: String,
    scope: Option<String>,
    aud: Option<String>,
    /// Sign with the second key of the set instead of the first.
    second_key: bool,
    change: Change,
}

struct Keys {
    signers: [Signer25519; 2],
    publics: [VerifyingKey; 2],
    set: KeySet,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let signers = [Signer25519::from_seed("k1".into(), &[7; 32]), Signer25519::from_seed("k2".into(), &[9; 32])];
        let mut set = KeySet::default();
        for s in &signers {
            assert!(set.insert(s.kid.clone(), &s.public()));
        }
        let publics = [0, 1].map(|i| VerifyingKey::from_bytes(&signers[i].public()).expect("public key"));
        Keys { signers, publics, set }
    })
}

/// The independent check of an accepted token.
fn really_signed(token: &str) -> bool {
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(sig) = B64.decode(s) else { return false };
    let Ok(sig) = Signature::from_slice(&sig) else { return false };
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    keys().publics.iter().any(|k| k.verify_strict(signed, &sig).is_ok())
}

fn check_accepted(token: &str) {
    if let Ok(claims) = keys().set.verify(token, ISSUER, NOW) {
        assert!(really_signed(token), "accepted a token the keys did not sign: {token}");
        assert_eq!(claims.iss, ISSUER);
        assert!(claims.exp > NOW);
    }
}

fuzz_target!(|input: Input| {
    let k = keys();
    check_accepted(&input.raw);

    let role = match input.role % 3 {
        0 => Role::Viewer,
        1 => Role::Editor,
        _ => Role::Admin,
    };
    let claims = Claims {
        iss: ISSUER.into(),
        sub: input.sub,
        org: input.org,
        role,
        env: input.env,
        iat: input.iat,
        exp: input.exp,
        jti: input.jti,
        scope: input.scope,
        aud: input.aud,
    };
    let signer = &k.signers[usize::from(input.second_key)];
    let token = signer.sign(&claims);
    let expected = if claims.exp > NOW { Ok(claims.clone()) } else { Err(JwtError::Expired) };
    assert_eq!(k.set.verify(&token, ISSUER, NOW), expected);
    assert_eq!(k.set.verify(&token, "https://other.test", NOW), Err(JwtError::Issuer));

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let changed = match input.change {
        Change::None => return,
        Change::Byte { at, to } => {
            let mut b = token.clone().into_bytes();
            let at = at as usize % b.len();
            b[at] = to;
            String::from_utf8_lossy(&b).into_owned()
        }
        Change::Cut(n) => token[..n as usize % token.len()].to_owned(),
        Change::Insert { at, byte } => {
            let mut b = token.clone().into_bytes();
            b.insert(at as usize % (b.len() + 1), byte);
            String::from_utf8_lossy(&b).into_owned()
        }
        Change::Header { alg, kid, extra } => {
            let mut h = serde_json::json!({ "alg": alg, "typ": "JWT" });
            if let Some(kid) = kid {
                h["kid"] = kid.into();
            }
            if let Some(extra) = extra {
                h["x"] = extra.into();
            }
            let h = B64.encode(serde_json::to_vec(&h).expect("json"));
            format!("{h}.{}.{}", parts[1], parts[2])
        }
        Change::ClaimsJson(c) => format!("{}.{}.{}", parts[0], B64.encode(c), parts[2]),
        Change::Signature(s) => format!("{}.{}.{}", parts[0], parts[1], B64.encode(s)),
        Change::Reorder(n) => match n % 4 {
            0 => format!("{}.{}.{}", parts[1], parts[0], parts[2]),
            1 => format!("{}.{}", parts[0], parts[1]),
            2 => format!("{token}.{}", parts[2]),
            _ => format!("{}.{}.{}", parts[0], parts[1], parts[1]),
        },
    };
    if changed != token {
        let got = k.set.verify(&changed, ISSUER, NOW);
        assert!(got.is_err(), "a changed token verified: {changed} (from {token})");
    }
    check_accepted(&changed);
});
