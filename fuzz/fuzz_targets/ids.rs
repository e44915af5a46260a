//! Identifier parsing (scope-domain `ids.rs`, SPEC §2).
//!
//! Properties, for each id type and any text:
//! - parsing never panics; text that parses has a canonical form (`Display`:
//!   the prefix + 26 upper-case Crockford base32 characters) that parses to
//!   the same id and prints the same again;
//! - JSON deserialisation agrees with `FromStr`, and serialisation writes the
//!   canonical form;
//! - no canonical id of one type parses as another type;
//! - any 128-bit value survives print → parse.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scope_domain::{KeyId, OrgId, PromptId, UserId, VersionId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use ulid::Ulid;

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    value: u128,
}

const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn canonical_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| rest.len() == 26 && rest.chars().all(|c| CROCKFORD.contains(c)))
}

fn check<T>(text: &str, value: u128, prefix: &str, from_ulid: fn(Ulid) -> T, others: &[fn(&str) -> bool])
where
    T: FromStr + Display + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Copy,
{
    let json = serde_json::to_string(text).expect("json string");
    let parsed = text.parse::<T>().ok();
    let deserialized = serde_json::from_str::<T>(&json).ok();
    assert_eq!(parsed, deserialized, "FromStr and Deserialize disagree on {text:?}");
    if let Some(id) = parsed {
        let canonical = id.to_string();
        assert!(canonical_shape(&canonical, prefix), "{canonical}");
        assert_eq!(canonical.parse::<T>().ok(), Some(id), "{text:?} → {canonical} does not round-trip");
        assert_eq!(canonical.parse::<T>().ok().map(|x| x.to_string()), Some(canonical.clone()));
        assert_eq!(serde_json::to_string(&id).expect("serialize"), format!("\"{canonical}\""));
        for other in others {
            assert!(!other(&canonical), "{canonical} parses as another kind of id");
        }
    }
    let id = from_ulid(Ulid(value));
    let printed = id.to_string();
    assert!(canonical_shape(&printed, prefix), "{printed}");
    assert_eq!(printed.parse::<T>().ok(), Some(id));
    for other in others {
        assert!(!other(&printed), "{printed} parses as another kind of id");
    }
}

fuzz_target!(|input: Input| {
    let org: fn(&str) -> bool = |s| s.parse::<OrgId>().is_ok();
    let key: fn(&str) -> bool = |s| s.parse::<KeyId>().is_ok();
    let pmt: fn(&str) -> bool = |s| s.parse::<PromptId>().is_ok();
    let ver: fn(&str) -> bool = |s| s.parse::<VersionId>().is_ok();
    let usr: fn(&str) -> bool = |s| s.parse::<UserId>().is_ok();
    let (t, v) = (input.text.as_str(), input.value);
    check(t, v, OrgId::PREFIX, OrgId::from_ulid, &[key, pmt, ver, usr]);
    check(t, v, KeyId::PREFIX, KeyId::from_ulid, &[org, pmt, ver, usr]);
    check(t, v, PromptId::PREFIX, PromptId::from_ulid, &[org, key, ver, usr]);
    check(t, v, VersionId::PREFIX, VersionId::from_ulid, &[org, key, pmt, usr]);
    check(t, v, UserId::PREFIX, UserId::from_ulid, &[org, key, pmt, ver]);
});
