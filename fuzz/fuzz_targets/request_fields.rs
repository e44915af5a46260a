//! What the server's JSON request bodies go through (issue 9). The request
//! structs themselves are private to scope-server's handlers, so this target
//! feeds arbitrary JSON to serde_json and each field's value to the public
//! scope-domain validation those handlers call:
//! - prompt names (`validate_prompt_name`): accepted exactly when 1-255
//!   characters of `[A-Za-z0-9._-]` (checked independently here);
//! - key names (`validate_key_name`): never accepted empty, over 128
//!   characters, or with control characters, bidirectional overrides or
//!   isolates (terminal and display escapes);
//! - `role` and version `status`: only the wire names, which print back the
//!   same; `prompt_type`: only `text` or `chat`;
//! - `scope` (`ScopeSet::parse`): a parsed set prints canonically and parses
//!   back to itself, and never holds a name outside the three scopes;
//! - labels, notes, protected-label lists and version references
//!   (`labels.rs`): labels exactly `[a-z0-9][a-z0-9_-]{0,63}`, notes at most
//!   2 000 characters, protected lists sorted, de-duplicated and without
//!   `latest`; version references never panic and read as what they look like.
//! Nothing here may panic, whatever the JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scope_domain::labels::{self, VersionRef};
use scope_domain::lifecycle::{validate_key_name, validate_prompt_name, validate_prompt_type};
use scope_domain::{Role, ScopeSet, VersionStatus};
use serde_json::Value;

fn prompt_name_ok(s: &str) -> bool {
    (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn escapes(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

fn check_string(s: &str) {
    assert_eq!(validate_prompt_name(s).is_ok(), prompt_name_ok(s), "prompt name {s:?}");

    if validate_key_name(s).is_ok() {
        let n = s.chars().count();
        assert!((1..=128).contains(&n) && !s.trim().is_empty(), "key name {s:?}");
        assert!(!s.chars().any(escapes), "key name with an escape accepted: {s:?}");
    }

    assert_eq!(validate_prompt_type(s).is_ok(), s == "text" || s == "chat", "prompt_type {s:?}");

    let role = serde_json::from_value::<Role>(Value::String(s.to_owned()));
    assert_eq!(role.is_ok(), matches!(s, "viewer" | "editor" | "admin"), "role {s:?}");
    if let Ok(r) = role {
        assert_eq!(r.as_str(), s);
    }
    if let Some(st) = VersionStatus::parse(s) {
        assert_eq!(st.as_str(), s);
    }

    if let Ok(set) = ScopeSet::parse(s) {
        let printed = set.to_string();
        assert_eq!(ScopeSet::parse(&printed), Ok(set), "{s:?} → {printed:?}");
        for name in printed.split(' ') {
            assert!(matches!(name, "prompts:read" | "prompts:write" | "keys:admin"), "{printed:?}");
        }
        for name in s.split(' ').filter(|n| !n.is_empty()) {
            assert!(printed.split(' ').any(|p| p == name), "{name} of {s:?} lost in {printed:?}");
        }
    }

    assert_eq!(labels::validate_label(s).is_ok(), label_ok(s), "label {s:?}");
    assert_eq!(labels::validate_notes(Some(s)).is_ok(), s.chars().count() <= 2000, "notes");
    match VersionRef::parse(s) {
        Ok(VersionRef::Id(id)) => assert_eq!(s.parse(), Ok(id)),
        Ok(VersionRef::Number(n)) => assert!(n >= 0 && s.bytes().all(|b| b.is_ascii_digit())),
        Ok(VersionRef::Label(l)) => assert!(l == s && label_ok(s)),
        Err(_) => {}
    }
}

fn walk(v: &Value, depth: usize) {
    match v {
        Value::String(s) => check_string(s),
        Value::Object(m) => {
            for (k, x) in m {
                check_string(k);
                if depth < 8 {
                    walk(x, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            let strings: Vec<String> = a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect();
            if let Ok(protected) = labels::validate_protected(&strings) {
                assert!(protected.windows(2).all(|w| w[0] < w[1]), "not sorted/unique: {protected:?}");
                assert!(protected.iter().all(|l| label_ok(l) && l != "latest"), "{protected:?}");
                assert!(protected.len() <= strings.len());
            }
            if depth < 8 {
                for x in a {
                    walk(x, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Any body: parsed or refused, never a panic; typed fields likewise.
    let _ = serde_json::from_slice::<Role>(data);
    let _ = serde_json::from_slice::<VersionStatus>(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        walk(&v, 0);
    }
    // The bytes as a field value too.
    if let Ok(s) = std::str::from_utf8(data) {
        check_string(s);
    }
});
