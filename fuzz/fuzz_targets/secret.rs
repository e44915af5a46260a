//! API secret parsing and checksum (scope-domain `secret_format.rs`,
//! `secret.rs`, SPEC §2).
//!
//! Properties:
//! - `is_well_formed` never panics, and accepts only `secret_` + 43 base62 +
//!   `_` + the base62 CRC32 of what precedes it (checked independently here);
//! - a secret built from any 43 base62 characters with its checksum is
//!   accepted, and changing any one character of it, or cutting or extending
//!   it, is refused (CRC32 catches every error burst of up to 32 bits);
//! - digests: equal secrets match, different ones do not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scope_domain::secret::SecretDigest;
use scope_domain::secret_format::{checksum, is_well_formed, BODY_LEN, CHECKSUM_LEN, PREFIX, TOTAL_LEN};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Arbitrary)]
struct Input {
    /// Arbitrary text given as a secret.
    raw: String,
    /// Bytes turned into a 43-character base62 body.
    body: [u8; BODY_LEN],
    /// Where to change one character, and to what.
    at: u8,
    to: u8,
}

fn shape_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == TOTAL_LEN
        && s.starts_with(PREFIX)
        && b[PREFIX.len()..PREFIX.len() + BODY_LEN].iter().all(u8::is_ascii_alphanumeric)
        && b[PREFIX.len() + BODY_LEN] == b'_'
        && b[TOTAL_LEN - CHECKSUM_LEN..].iter().all(u8::is_ascii_alphanumeric)
}

/// The CRC32 in base62, computed here without the crate's helper.
fn sum62(payload: &str) -> String {
    let mut n = crc32fast::hash(payload.as_bytes()) as u64;
    let mut digits = vec![b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits).expect("ascii")
}

fuzz_target!(|input: Input| {
    // Arbitrary text.
    let ok = is_well_formed(&input.raw);
    let expected = shape_ok(&input.raw) && {
        let (payload, sum) = input.raw.split_at(PREFIX.len() + BODY_LEN);
        sum[1..] == sum62(payload)
    };
    assert_eq!(ok, expected, "is_well_formed({:?})", input.raw);
    let c = checksum(&input.raw);
    assert_eq!(c, sum62(&input.raw));
    assert!(c.len() == CHECKSUM_LEN && c.bytes().all(|b| b.is_ascii_alphanumeric()));

    // A well-built secret is accepted; any one-character change is not.
    let body: String = input.body.iter().map(|b| BASE62[(*b % 62) as usize] as char).collect();
    let payload = format!("{PREFIX}{body}");
    let good = format!("{payload}_{}", checksum(&payload));
    assert!(is_well_formed(&good), "{good}");
    let mut bytes = good.clone().into_bytes();
    let at = input.at as usize % bytes.len();
    if bytes[at] != input.to {
        bytes[at] = input.to;
        if let Ok(typo) = String::from_utf8(bytes) {
            assert!(!is_well_formed(&typo), "one change at {at} still accepted: {typo}");
        }
    }
    assert!(!is_well_formed(&good[..good.len() - 1]));
    assert!(!is_well_formed(&format!("{good}0")));

    // Digests.
    let d = SecretDigest::of(&good);
    assert!(d.matches(&SecretDigest::of(&good)));
    assert_eq!(SecretDigest::from_bytes(d.as_bytes()).map(|x| x.matches(&d)), Some(true));
    if input.raw != good {
        assert!(!SecretDigest::of(&input.raw).matches(&d));
    }
});
