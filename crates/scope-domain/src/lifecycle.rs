//! Version lifecycle rules (SPEC §5): draft → published → archived, with
//! unarchive back to draft. Published and archived versions are immutable.

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// API key names: 1–128 characters.
pub fn validate_key_name(name: &str) -> Result<(), DomainError> {
    let n = name.chars().count();
    if (1..=128).contains(&n) && !name.trim().is_empty() {
        Ok(())
    } else {
        Err(DomainError::bad_request("name must be 1-128 characters"))
    }
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
