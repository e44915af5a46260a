//! The shape of an API secret: `secret_` + 43 base62 characters + `_` + a
//! 6-character base62 CRC32 of everything before that last underscore.
//!
//! The checksum lets secret scanners, the SDK and the server reject a mistyped
//! or truncated secret without a database look-up. This part is shared with the
//! SDK; generation and digests live in [`crate::secret`] (server feature).

pub const PREFIX: &str = "secret_";
pub const BODY_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
/// Total length: `secret_` (7) + 43 + `_` (1) + 6.
pub const TOTAL_LEN: usize = PREFIX.len() + BODY_LEN + 1 + CHECKSUM_LEN;

/// The regular expression secret scanners can use (published in the README).
pub const SCAN_REGEX: &str = r"\bsecret_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}\b";

pub(crate) const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 of a CRC32, left-padded with '0' to six characters.
pub fn checksum(payload: &str) -> String {
    let mut n = u64::from(crc32fast::hash(payload.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        // 62^6 > 2^32, so six digits always suffice.
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` has the shape of a Scope secret and its checksum matches.
/// Runs in time that depends only on the length of `s`, never on the stored
/// secret, so it leaks nothing.
pub fn is_well_formed(s: &str) -> bool {
    if s.len() != TOTAL_LEN || !s.is_ascii() || !s.starts_with(PREFIX) {
        return false;
    }
    let (payload, rest) = s.split_at(PREFIX.len() + BODY_LEN);
    let body = &payload[PREFIX.len()..];
    let Some(sum) = rest.strip_prefix('_') else {
        return false;
    };
    is_base62(body) && is_base62(sum) && checksum(payload) == sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_six_base62_chars() {
        for p in ["", "a", "secret_abc", "secret_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            let c = checksum(p);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(checksum("secret_a"), checksum("secret_b"));
    }

    #[test]
    fn rejects_malformed() {
        let body = "A".repeat(BODY_LEN);
        let payload = format!("{PREFIX}{body}");
        let good = format!("{payload}_{}", checksum(&payload));
        assert!(is_well_formed(&good));
        // One character changed in the body.
        let typo = good.replacen('A', "B", 1);
        assert!(!is_well_formed(&typo));
        // Truncated.
        assert!(!is_well_formed(&good[..good.len() - 1]));
        // Wrong prefix.
        assert!(!is_well_formed(&good.replacen("secret_", "sekret_", 1)));
        // Non-base62 body of the right length.
        let bad_payload = format!("{PREFIX}{}-", "A".repeat(BODY_LEN - 1));
        assert!(!is_well_formed(&format!("{bad_payload}_{}", checksum(&bad_payload))));
        assert!(!is_well_formed(""));
        // Multibyte input of the right byte length must not panic.
        let odd = "é".repeat(TOTAL_LEN / 2) + "x";
        assert!(!is_well_formed(&odd));
    }
}
