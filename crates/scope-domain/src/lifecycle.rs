//! Version lifecycle rules (SPEC §5): draft → published → archived, with
//! unarchive back to draft. Published and archived versions are immutable.

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    Draft,
    Published,
    Archived,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Draft => "draft",
            VersionStatus::Published => "published",
            VersionStatus::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "published" => Some(Self::Published),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }

    /// Content, metadata and type may change only while a draft.
    pub fn check_editable(self) -> Result<(), DomainError> {
        match self {
            VersionStatus::Draft => Ok(()),
            other => Err(DomainError::conflict(format!("version is {}; only drafts can be edited", other.as_str()))),
        }
    }

    /// Any version may be promoted; promoting the published one again is a
    /// no-op the caller reports as success. Archived versions may be promoted
    /// directly (roll-back).
    pub fn after_promote(self) -> VersionStatus {
        VersionStatus::Published
    }

    /// What happens to the previously published version when another is
    /// promoted.
    pub fn demoted(archive_previous: bool) -> VersionStatus {
        if archive_previous {
            VersionStatus::Archived
        } else {
            VersionStatus::Draft
        }
    }

    /// Archive: drafts only (SPEC: "archive (draft only)").
    pub fn archive(self) -> Result<VersionStatus, DomainError> {
        match self {
            VersionStatus::Draft => Ok(VersionStatus::Archived),
            VersionStatus::Archived => Ok(VersionStatus::Archived),
            VersionStatus::Published => {
                Err(DomainError::conflict("the published version cannot be archived; promote another version first"))
            }
        }
    }

    /// Unarchive: back to draft; a published version is a conflict.
    pub fn unarchive(self) -> Result<VersionStatus, DomainError> {
        match self {
            VersionStatus::Archived | VersionStatus::Draft => Ok(VersionStatus::Draft),
            VersionStatus::Published => Err(DomainError::conflict("the published version cannot be unarchived")),
        }
    }
}

/// Prompt names: 1–255 characters of `[A-Za-z0-9._-]`.
pub fn validate_prompt_name(name: &str) -> Result<(), DomainError> {
    let ok_len = (1..=255).contains(&name.len());
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(DomainError::bad_request("name must be 1-255 characters of A-Z, a-z, 0-9, '.', '_' or '-'"))
    }
}

/// Characters that print nothing and can change how the text around them
/// shows in a terminal or a page: control characters (Unicode Cc: ESC starts
/// terminal escape sequences), line and paragraph separators (Zl, Zp), and
/// the format characters (Cf) that reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, the byte-order mark,
/// interlinear annotation, tag characters).
pub fn is_non_printing(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// API key names: 1–128 characters, not all blank, none of them
/// [non-printing](is_non_printing) (names are shown by `scope keys list` in
/// a terminal and in the console).
pub fn validate_key_name(name: &str) -> Result<(), DomainError> {
    let n = name.chars().count();
    if !(1..=128).contains(&n) || name.trim().is_empty() {
        return Err(DomainError::bad_request("name must be 1-128 characters"));
    }
    if name.chars().any(is_non_printing) {
        return Err(DomainError::bad_request(
            "name must not contain control, bidirectional or other non-printing characters",
        ));
    }
    Ok(())
}

/// Prompt type: `text` or `chat`.
pub fn validate_prompt_type(t: &str) -> Result<(), DomainError> {
    match t {
        "text" | "chat" => Ok(()),
        _ => Err(DomainError::bad_request("prompt_type must be 'text' or 'chat'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionStatus::*;

    #[test]
    fn key_names_refuse_non_printing_characters() {
        for ok in ["ci", "prod key (eu-west)", "clé de production", "鍵", "a b", "emoji 🔑"] {
            assert_eq!(validate_key_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "x\u{1b}[2Jcleared",
            "line\nbreak",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}31m",
            "admin\u{202e}txt.exe",
            "iso\u{2066}late",
            "zero\u{200b}width",
            "bom\u{feff}",
            "sep\u{2028}",
            "tag\u{e0041}",
        ] {
            let e = validate_key_name(bad).err();
            assert_eq!(e.map(|e| e.code), Some(crate::ErrorCode::BadRequest), "{bad:?}");
        }
        assert!(validate_key_name(&"k".repeat(128)).is_ok());
        assert!(validate_key_name(&"k".repeat(129)).is_err());
    }

    #[test]
    fn only_drafts_are_editable() {
        assert!(Draft.check_editable().is_ok());
        assert!(Published.check_editable().is_err());
        assert!(Archived.check_editable().is_err());
    }

    #[test]
    fn archive_and_unarchive_rules() {
        assert_eq!(Draft.archive(), Ok(Archived));
        assert!(Published.archive().is_err());
        assert_eq!(Archived.unarchive(), Ok(Draft));
        assert!(Published.unarchive().is_err());
        assert_eq!(VersionStatus::demoted(true), Archived);
        assert_eq!(VersionStatus::demoted(false), Draft);
        assert_eq!(Archived.after_promote(), Published);
    }

    #[test]
    fn names() {
        assert!(validate_prompt_name("greeting.v2_final-x").is_ok());
        assert!(validate_prompt_name("").is_err());
        assert!(validate_prompt_name("has space").is_err());
        assert!(validate_prompt_name(&"a".repeat(256)).is_err());
        assert!(validate_prompt_name(&"a".repeat(255)).is_ok());
        assert!(validate_key_name("x").is_ok());
        assert!(validate_key_name("").is_err());
        assert!(validate_key_name(&"é".repeat(128)).is_ok());
        assert!(validate_key_name(&"é".repeat(129)).is_err());
    }
}
