//! Labels (SPEC §9): listing, moving, removing and rolling back a prompt's
//! labels, the label history (the release log), the diff of two versions,
//! and the organization's protected labels. Viewers read; editors move
//! labels that are not protected; admins move any and set the protection.
//! The rules are `scope_domain::labels`; each move is one store
//! transaction with its history row, audit row and event.

use scope_domain::labels::{self, LabelKind, LastMove, VersionRef};
use scope_domain::{DomainError, Role, VersionId};
use scope_store::{LabelMoveKind, LabelMoveQuery, LabelMoveRow, LabelRow, MoveLabelRequest, PromptSummary, VersionRow};
use serde_json::json;

use super::prompts::find;
use super::{audit, App, Page, Principal};
use crate::error::{AppError, NotFoundAs};
use crate::runtime::now_ms;

/// The highest role the caller may act with (its role, narrowed by a
/// bearer token's scope).
fn acting_role(p: &Principal) -> Role {
    [Role::Admin, Role::Editor].into_iter().find(|r| p.require(*r).is_ok()).unwrap_or(Role::Viewer)
}

/// Whether the caller may move `label`: editors any label the organization
/// does not protect, admins every label. The refusal (403) names the label.
pub async fn check_may_move(app: &App, p: &Principal, label: &str) -> Result<(), AppError> {
    p.require(Role::Editor)?;
    let role = acting_role(p);
    if role.allows(Role::Admin) {
        return Ok(());
    }
    let protected = app.store.protected_labels(p.org).await?;
    labels::check_may_move(role, label, &protected).map_err(Into::into)
}

/// A prompt's labels with the organization's protected set.
pub struct Labels {
    pub prompt: PromptSummary,
    pub labels: Vec<LabelRow>,
    pub protected: Vec<String>,
}

pub async fn list(app: &App, p: &Principal, name: &str) -> Result<Labels, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    let labels = app.store.list_labels(p.org, prompt.prompt.prompt_id).await?;
    let protected = app.store.protected_labels(p.org).await?;
    Ok(Labels { prompt, labels, protected })
}

/// The version `r` names in `prompt`: an id, a number, or a label
/// (`production`, `latest`, any other).
pub async fn resolve(
    app: &App,
    p: &Principal,
    prompt: &PromptSummary,
    r: VersionRef<'_>,
) -> Result<VersionRow, AppError> {
    let pid = prompt.prompt.prompt_id;
    let name = &prompt.prompt.name;
    let missing = |what: String| AppError::from(DomainError::not_found(what));
    match r {
        VersionRef::Id(v) => app.store.get_version(p.org, pid, v).await.not_found_as("version"),
        VersionRef::Number(n) => {
            // The page of versions below n + 1, newest first, holds n first
            // if it exists (numbers start at 1; the largest i64 has no
            // successor to page from).
            let Some(below) = n.checked_add(1).filter(|_| n >= 1) else {
                return Err(missing(format!("prompt '{name}' has no v{n}")));
            };
            let query = scope_store::VersionListQuery {
                page: scope_store::PageQuery { limit: 1, cursor: Some(below.to_string()) },
                include_archived: true,
            };
            let rows = app.store.list_versions(p.org, pid, &query).await?;
            rows.into_iter().find(|v| v.version == n).ok_or_else(|| missing(format!("prompt '{name}' has no v{n}")))
        }
        VersionRef::Label(l) => match labels::kind(l) {
            LabelKind::Production => app.store.production_version(p.org, pid).await?.ok_or_else(|| {
                DomainError::new(
                    scope_domain::ErrorCode::NoProductionVersion,
                    format!("prompt '{name}' has no production version"),
                )
                .into()
            }),
            LabelKind::Latest => app
                .store
                .latest_version(p.org, pid)
                .await?
                .ok_or_else(|| missing(format!("prompt '{name}' has no versions"))),
            LabelKind::Custom => {
                let found = app.store.list_labels(p.org, pid).await?.into_iter().find(|x| x.label == l);
                match found {
                    Some(x) => app.store.get_version(p.org, pid, x.version_id).await.not_found_as("version"),
                    None => Err(missing(format!("prompt '{name}' has no label '{l}'"))),
                }
            }
        },
    }
}

/// Where to move a label: a version id, or a version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Id(String),
    Number(i64),
}

pub struct MoveLabel {
    pub target: Target,
    pub notes: Option<String>,
    /// `production` only (as promote's): archive the version it replaces.
    pub archive_previous: Option<bool>,
}

fn move_request(p: &Principal, label: &str, to: Option<VersionId>, kind: LabelMoveKind) -> MoveLabelRequest {
    MoveLabelRequest {
        label: label.to_owned(),
        to,
        kind,
        if_current: None,
        notes: None,
        archive_previous: true,
        actor: p.actor.id(),
        now_ms: now_ms(),
        move_id: format!("lbm_{}", scope_domain::ids::next_ulid()),
        promotion_id: format!("prm_{}", scope_domain::ids::next_ulid()),
    }
}

/// The audit action of a move of `label`.
fn action(label: &str, kind: LabelMoveKind) -> &'static str {
    match (labels::kind(label), kind) {
        (_, LabelMoveKind::Rollback) => "label.rolled_back",
        (_, LabelMoveKind::Remove) => "label.removed",
        (LabelKind::Production, LabelMoveKind::Move) => "version.promoted",
        (_, LabelMoveKind::Move) => "label.moved",
    }
}

/// Runs one move and refreshes what caches the prompt.
async fn apply(
    app: &App,
    p: &Principal,
    prompt: &PromptSummary,
    req: &MoveLabelRequest,
) -> Result<Option<VersionRow>, AppError> {
    let pid = prompt.prompt.prompt_id;
    let target = req.to.map_or_else(|| pid.to_string(), |v| v.to_string());
    let details = json!({
        "prompt_id": pid.to_string(),
        "label": req.label,
        "notes": req.notes,
        "if_current": req.if_current.map(|c| c.map(|v| v.to_string())),
    });
    let ev = audit::event(p, action(&req.label, req.kind), target, details);
    let moved = app.store.move_label(p.org, pid, req, &ev).await.not_found_as("prompt")?;
    app.prompts_changed(p.org);
    Ok(moved)
}

/// Points `label` at a version (creating it), as `PUT …/labels/{label}`.
/// For `production` this is a promotion.
pub async fn set(app: &App, p: &Principal, name: &str, label: &str, m: MoveLabel) -> Result<VersionRow, AppError> {
    labels::check_movable(label)?;
    labels::validate_notes(m.notes.as_deref())?;
    if m.archive_previous.is_some() && labels::kind(label) != LabelKind::Production {
        return Err(DomainError::bad_request("archive_previous applies to the production label only").into());
    }
    check_may_move(app, p, label).await?;
    let prompt = find(app, p, name).await?;
    let to = match &m.target {
        Target::Id(id) => id.parse::<VersionId>().map_err(|_| DomainError::not_found("version not found"))?,
        Target::Number(n) => resolve(app, p, &prompt, VersionRef::Number(*n)).await?.version_id,
    };
    let mut req = move_request(p, label, Some(to), LabelMoveKind::Move);
    req.notes = m.notes;
    req.archive_previous = m.archive_previous.unwrap_or(true);
    apply(app, p, &prompt, &req).await?.ok_or_else(|| AppError::Internal("a move returned no version".into()))
}

/// Removes `label` (not `production`), as `DELETE …/labels/{label}`.
pub async fn remove(app: &App, p: &Principal, name: &str, label: &str) -> Result<(), AppError> {
    labels::check_removable(label)?;
    check_may_move(app, p, label).await?;
    let prompt = find(app, p, name).await?;
    let req = move_request(p, label, None, LabelMoveKind::Remove);
    apply(app, p, &prompt, &req).await?;
    Ok(())
}

/// Moves `label` back to the version it pointed at before its last move,
/// recorded as a move of its own (with `notes`). Rolling back twice returns
/// to where it started. 409 when there is nothing to go back to, or when
/// the label moved between the look-up and the move.
pub async fn rollback(
    app: &App,
    p: &Principal,
    name: &str,
    label: &str,
    notes: Option<String>,
) -> Result<VersionRow, AppError> {
    labels::check_movable(label)?;
    labels::validate_notes(notes.as_deref())?;
    check_may_move(app, p, label).await?;
    let prompt = find(app, p, name).await?;
    let query =
        LabelMoveQuery { page: scope_store::PageQuery { limit: 1, cursor: None }, label: Some(label.to_owned()) };
    let last = app.store.list_label_moves(p.org, prompt.prompt.prompt_id, &query).await?.into_iter().next();
    let to = labels::rollback_target(
        label,
        last.as_ref().map(|m| LastMove { from: m.from_version_id, to: m.to_version_id }),
    )?;
    let mut req = move_request(p, label, Some(to), LabelMoveKind::Rollback);
    // Only from where the last move left it: a move made meanwhile is not
    // undone blindly.
    req.if_current = Some(last.and_then(|m| m.to_version_id));
    req.notes = notes;
    apply(app, p, &prompt, &req).await?.ok_or_else(|| AppError::Internal("a rollback returned no version".into()))
}

/// The label history of a prompt, newest first, optionally of one label.
pub async fn history(
    app: &App,
    p: &Principal,
    name: &str,
    label: Option<String>,
    page: scope_store::PageQuery,
) -> Result<Page<LabelMoveRow>, AppError> {
    p.require(Role::Viewer)?;
    if let Some(l) = &label {
        labels::validate_label(l)?;
    }
    let prompt = find(app, p, name).await?;
    let query = LabelMoveQuery { page: page.clone(), label };
    let rows = app.store.list_label_moves(p.org, prompt.prompt.prompt_id, &query).await?;
    Ok(Page::from_rows(rows, &page, |m: &LabelMoveRow| m.seq.to_string()))
}

/// Two versions of one prompt, named by id, number or label.
pub async fn diff_versions(
    app: &App,
    p: &Principal,
    name: &str,
    from: &str,
    to: &str,
) -> Result<(VersionRow, VersionRow), AppError> {
    p.require(Role::Viewer)?;
    let (from, to) = (VersionRef::parse(from)?, VersionRef::parse(to)?);
    let prompt = find(app, p, name).await?;
    Ok((resolve(app, p, &prompt, from).await?, resolve(app, p, &prompt, to).await?))
}

pub async fn protected(app: &App, p: &Principal) -> Result<Vec<String>, AppError> {
    p.require(Role::Admin)?;
    Ok(app.store.protected_labels(p.org).await?)
}

/// Replaces the protected labels (admins); returns them as stored.
pub async fn set_protected(app: &App, p: &Principal, wanted: &[String]) -> Result<Vec<String>, AppError> {
    p.require(Role::Admin)?;
    let set = labels::validate_protected(wanted)?;
    let before = app.store.protected_labels(p.org).await?;
    let ev = audit::event(p, "settings.protected_labels_updated", p.org, json!({"from": before, "to": set}));
    app.store.set_protected_labels(p.org, &set, &ev).await?;
    Ok(set)
}
