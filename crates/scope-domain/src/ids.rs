//! Prefixed ULID identifiers (`org_…`, `key_…`, …) as distinct types, so that a
//! key id can never be passed where an organization id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::DomainError;

/// A new ULID, strictly greater than every other one made by this process:
/// lists ordered by id ("newest first") then keep the order of creation even
/// for ids made within the same millisecond (plain `Ulid::new()` orders those
/// at random). Across processes, ids still order by time to the millisecond.
pub fn next_ulid() -> Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Only fails when 2^80 ids were made in one millisecond.
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new identifier from the current time and OS randomness,
            /// ordered after every other one made by this process.
            pub fn generate() -> Self {
                Self(next_ulid())
            }

            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            pub fn ulid(&self) -> Ulid {
                self.0
            }

            /// Whether `s` looks like this kind of identifier.
            pub fn looks_like(s: &str) -> bool {
                s.starts_with($prefix)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix($prefix)
                    .and_then(|rest| Ulid::from_string(rest).ok())
                    .map(Self)
                    .ok_or_else(|| {
                        DomainError::bad_request(format!(
                            "invalid {}: expected '{}' followed by a ULID", $what, $prefix
                        ))
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: DomainError| serde::de::Error::custom(e.message))
            }
        }
    };
}

prefixed_id!(
    /// An organization (tenant).
    OrgId, "org_", "organization id"
);
prefixed_id!(
    /// The public half of an API key.
    KeyId, "key_", "API key id"
);
prefixed_id!(
    /// A prompt.
    PromptId, "pmt_", "prompt id"
);
prefixed_id!(
    /// One version of a prompt.
    VersionId, "v_", "version id"
);
prefixed_id!(
    /// A human user.
    UserId, "usr_", "user id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_increase_within_a_millisecond() {
        let ids: Vec<KeyId> = (0..1000).map(|_| KeyId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids made in a row must sort in creation order");
        assert!(ids.windows(2).all(|w| w[0].to_string() < w[1].to_string()), "also as text (what the store orders by)");
    }

    #[test]
    fn round_trips_and_rejects_wrong_prefix() {
        let k = KeyId::generate();
        let s = k.to_string();
        assert!(s.starts_with("key_"));
        assert_eq!(s.len(), 4 + 26);
        assert_eq!(s.parse::<KeyId>(), Ok(k));
        assert!(s.replace("key_", "org_").parse::<KeyId>().is_err());
        assert!("key_notaulid".parse::<KeyId>().is_err());
        assert!("".parse::<OrgId>().is_err());
        let json = serde_json::to_string(&k).unwrap_or_default();
        assert_eq!(json, format!("\"{s}\""));
    }
}
