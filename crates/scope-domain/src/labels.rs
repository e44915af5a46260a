//! Release labels (SPEC §9): names of versions of a prompt, without I/O.
//!
//! - `production` is the published version: moving it is a promotion, with
//!   the promotion rules of [`crate::lifecycle`] (any version may be
//!   promoted; the one it replaces is archived or returned to draft).
//! - `latest` is computed (the highest-numbered version) and cannot be set.
//! - Any other label (`[a-z0-9][a-z0-9_-]{0,63}`) points at one draft or
//!   published version; a version a label points at cannot be archived.
//! - An organization may protect labels: only admins move those.
//! - An API key whose environment is `E` reads label `E` through
//!   `/production` where the prompt has it.

use crate::{DomainError, Role, VersionId, VersionStatus};

/// The published version.
pub const PRODUCTION: &str = "production";
/// The highest-numbered version, computed.
pub const LATEST: &str = "latest";
/// Longest label name.
pub const MAX_LABEL_LEN: usize = 64;
/// Most labels an organization may protect.
pub const MAX_PROTECTED: usize = 100;
/// Longest notes of a move.
pub const MAX_NOTES_CHARS: usize = 2000;

/// Whether `s` has a label's shape: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

/// A label name as given by a caller: 400 unless it has a label's shape.
pub fn validate_label(s: &str) -> Result<(), DomainError> {
    if is_label(s) {
        Ok(())
    } else {
        Err(DomainError::bad_request(format!(
            "'{}' is not a label: labels are 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            truncated(s)
        )))
    }
}

/// What a label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// `production`: the published version.
    Production,
    /// `latest`: computed.
    Latest,
    /// Any other label: stored, moved freely.
    Custom,
}

/// The kind of a (valid) label.
pub fn kind(label: &str) -> LabelKind {
    match label {
        PRODUCTION => LabelKind::Production,
        LATEST => LabelKind::Latest,
        _ => LabelKind::Custom,
    }
}

/// A label a caller asks to move (or roll back): valid, and not `latest`.
pub fn check_movable(label: &str) -> Result<(), DomainError> {
    validate_label(label)?;
    if kind(label) == LabelKind::Latest {
        return Err(DomainError::bad_request("'latest' is computed (the highest-numbered version) and cannot be set"));
    }
    Ok(())
}

/// A label a caller asks to remove: movable, and not `production` (a prompt
/// leaves production only when another version is promoted).
pub fn check_removable(label: &str) -> Result<(), DomainError> {
    check_movable(label)?;
    if kind(label) == LabelKind::Production {
        return Err(DomainError::bad_request("'production' cannot be removed; promote another version to replace it"));
    }
    Ok(())
}

/// Whether `label` may point at a version in `status`: `production` may
/// point at any version (an archived one is promoted back: roll-back); any
/// other label at a draft or published version.
pub fn check_target(label: &str, version: i64, status: VersionStatus) -> Result<(), DomainError> {
    match (kind(label), status) {
        (LabelKind::Latest, _) => check_movable(label),
        (LabelKind::Production, _) | (LabelKind::Custom, VersionStatus::Draft | VersionStatus::Published) => Ok(()),
        (LabelKind::Custom, VersionStatus::Archived) => Err(DomainError::conflict(format!(
            "v{version} is archived; a label points at a draft or published version (unarchive it first)"
        ))),
    }
}

/// Archiving a version that labels point at is refused until they move.
/// `labels` are the stored labels pointing at it (not `production`, whose
/// version is published and refused by the lifecycle rules).
pub fn check_archivable(version: i64, labels: &[String]) -> Result<(), DomainError> {
    if labels.is_empty() {
        return Ok(());
    }
    let names = labels.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ");
    let them = if labels.len() == 1 { "it" } else { "them" };
    Err(DomainError::conflict(format!(
        "v{version} cannot be archived: label{} {names} point{} at it; move {them} first",
        if labels.len() == 1 { "" } else { "s" },
        if labels.len() == 1 { "s" } else { "" },
    )))
}

/// What becomes of the version a promotion replaces: archived when asked,
/// except that a version other labels still point at returns to draft
/// instead (a labelled version is never archived).
pub fn demoted(archive_previous: bool, still_labelled: bool) -> VersionStatus {
    VersionStatus::demoted(archive_previous && !still_labelled)
}

/// Whether a caller with `role` may move `label` of an organization that
/// protects `protected`: editors move any label that is not protected,
/// admins any label. The refusal names the label.
pub fn check_may_move(role: Role, label: &str, protected: &[String]) -> Result<(), DomainError> {
    if !role.allows(Role::Editor) {
        return Err(DomainError::forbidden(format!("moving label '{label}' requires the editor role")));
    }
    if role.allows(Role::Admin) || !protected.iter().any(|p| p == label) {
        return Ok(());
    }
    Err(DomainError::forbidden(format!("label '{label}' is protected: only admins may move it")))
}

/// The protected-labels setting as given: valid labels, not `latest`
/// (which nobody moves), at most [`MAX_PROTECTED`], duplicates dropped,
/// sorted.
pub fn validate_protected(labels: &[String]) -> Result<Vec<String>, DomainError> {
    if labels.len() > MAX_PROTECTED {
        return Err(DomainError::bad_request(format!("at most {MAX_PROTECTED} labels can be protected")));
    }
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        check_movable(l)?;
        out.push(l.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Notes of a move: at most [`MAX_NOTES_CHARS`] characters.
pub fn validate_notes(notes: Option<&str>) -> Result<(), DomainError> {
    if notes.is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        return Err(DomainError::bad_request(format!("notes must be at most {MAX_NOTES_CHARS} characters")));
    }
    Ok(())
}

/// One move of a label, as far as a rollback needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastMove {
    /// Where the label pointed before the move (`None`: it did not exist).
    pub from: Option<VersionId>,
    /// Where the move left it (`None`: the label was removed).
    pub to: Option<VersionId>,
}

/// Where a rollback of `label` goes: back to the version it pointed at
/// before its last move. 409 when it has never moved, or pointed at nothing
/// before (the move created it: remove it instead).
pub fn rollback_target(label: &str, last: Option<LastMove>) -> Result<VersionId, DomainError> {
    match last {
        None => Err(DomainError::conflict(format!("label '{label}' has never moved: nothing to roll back to"))),
        Some(LastMove { from: None, .. }) => Err(DomainError::conflict(format!(
            "label '{label}' pointed at no version before its last move: nothing to roll back to"
        ))),
        Some(LastMove { from: Some(v), .. }) => Ok(v),
    }
}

/// The label an API key of `environment` reads through `/production`:
/// `Some(E)` when the environment is a label other than `production` and
/// `latest` (`staging`, `eu`, …), `None` (production itself) otherwise —
/// empty, `production`, or not a label's shape.
pub fn label_for_environment(environment: Option<&str>) -> Option<&str> {
    let env = environment?;
    (is_label(env) && kind(env) == LabelKind::Custom).then_some(env)
}

/// A version named in a request: its id (`v_…`), its number (`3`), or a
/// label (`production`, `staging`, `latest`). A label made of digits only
/// reads as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef<'a> {
    Id(VersionId),
    Number(i64),
    Label(&'a str),
}

impl<'a> VersionRef<'a> {
    pub fn parse(s: &'a str) -> Result<Self, DomainError> {
        if VersionId::looks_like(s) {
            return s
                .parse()
                .map(VersionRef::Id)
                .map_err(|_| DomainError::not_found(format!("version '{}' not found", truncated(s))));
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .map(|n| VersionRef::Number(i64::from(n)))
                .map_err(|_| DomainError::bad_request("version number out of range"));
        }
        if is_label(s) {
            return Ok(VersionRef::Label(s));
        }
        Err(DomainError::bad_request(format!(
            "'{}' names no version: give a version id (v_…), a version number or a label",
            truncated(s)
        )))
    }
}

/// `s`, cut to 80 characters for error messages.
fn truncated(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(80).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use VersionStatus::*;

    #[test]
    fn label_shape() {
        for ok in ["production", "staging", "eu-west_2", "0", "a", &"a".repeat(64)] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in ["", "Staging", "-x", "_x", "a b", "a.b", "é", &"a".repeat(65)] {
            assert!(!is_label(bad), "{bad}");
            assert_eq!(validate_label(bad).map_err(|e| e.code), Err(ErrorCode::BadRequest));
        }
    }

    #[test]
    fn latest_is_never_set_and_production_never_removed() {
        assert_eq!(check_movable("latest").map_err(|e| e.code), Err(ErrorCode::BadRequest));
        assert!(check_movable("production").is_ok());
        assert!(check_movable("staging").is_ok());
        assert_eq!(check_removable("production").map_err(|e| e.code), Err(ErrorCode::BadRequest));
        assert_eq!(check_removable("latest").map_err(|e| e.code), Err(ErrorCode::BadRequest));
        assert!(check_removable("canary").is_ok());
    }

    #[test]
    fn targets() {
        assert!(check_target("production", 1, Archived).is_ok());
        assert!(check_target("production", 1, Draft).is_ok());
        assert!(check_target("staging", 1, Draft).is_ok());
        assert!(check_target("staging", 1, Published).is_ok());
        let e = check_target("staging", 7, Archived).err().map(|e| (e.code, e.message.contains("v7")));
        assert_eq!(e, Some((ErrorCode::Conflict, true)));
    }

    #[test]
    fn labelled_versions_are_not_archived() {
        assert!(check_archivable(3, &[]).is_ok());
        let e = check_archivable(3, &["staging".into()]).err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("v3 cannot be archived: label 'staging' points at it; move it first"));
        let e = check_archivable(3, &["canary".into(), "staging".into()]).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("v3 cannot be archived: labels 'canary', 'staging' point at it; move them first")
        );
        assert_eq!(demoted(true, false), Archived);
        assert_eq!(demoted(true, true), Draft);
        assert_eq!(demoted(false, false), Draft);
    }

    #[test]
    fn protection() {
        let protected = vec!["production".to_owned()];
        assert!(check_may_move(Role::Editor, "staging", &protected).is_ok());
        assert!(check_may_move(Role::Admin, "production", &protected).is_ok());
        let e = check_may_move(Role::Editor, "production", &protected).err();
        assert_eq!(e.as_ref().map(|e| e.code), Some(ErrorCode::Forbidden));
        assert!(e.is_some_and(|e| e.message.contains("'production'")));
        assert_eq!(check_may_move(Role::Viewer, "staging", &[]).map_err(|e| e.code), Err(ErrorCode::Forbidden));
        let set = validate_protected(&["staging".into(), "production".into(), "staging".into()]);
        assert_eq!(set, Ok(vec!["production".to_owned(), "staging".to_owned()]));
        assert!(validate_protected(&["latest".into()]).is_err());
        assert!(validate_protected(&["Nope".into()]).is_err());
        assert!(validate_protected(&vec!["a".to_owned(); 101]).is_err());
    }

    #[test]
    fn rollback_goes_back_one_move() {
        let (a, b) = (VersionId::generate(), VersionId::generate());
        assert_eq!(rollback_target("s", Some(LastMove { from: Some(a), to: Some(b) })), Ok(a));
        assert_eq!(rollback_target("s", Some(LastMove { from: Some(a), to: None })), Ok(a));
        assert!(rollback_target("s", Some(LastMove { from: None, to: Some(b) })).is_err());
        assert!(rollback_target("s", None).is_err());
    }

    #[test]
    fn environments() {
        assert_eq!(label_for_environment(Some("staging")), Some("staging"));
        assert_eq!(label_for_environment(Some("eu")), Some("eu"));
        assert_eq!(label_for_environment(Some("production")), None);
        assert_eq!(label_for_environment(Some("latest")), None);
        assert_eq!(label_for_environment(Some("")), None);
        assert_eq!(label_for_environment(Some("Staging")), None);
        assert_eq!(label_for_environment(None), None);
    }

    #[test]
    fn version_refs() {
        let v = VersionId::generate();
        assert_eq!(VersionRef::parse(&v.to_string()), Ok(VersionRef::Id(v)));
        assert_eq!(VersionRef::parse("3"), Ok(VersionRef::Number(3)));
        assert_eq!(VersionRef::parse("staging"), Ok(VersionRef::Label("staging")));
        assert_eq!(VersionRef::parse("v_nope").map_err(|e| e.code), Err(ErrorCode::NotFound));
        assert_eq!(VersionRef::parse("99999999999").map_err(|e| e.code), Err(ErrorCode::BadRequest));
        assert_eq!(VersionRef::parse("Nope!").map_err(|e| e.code), Err(ErrorCode::BadRequest));
    }
}
