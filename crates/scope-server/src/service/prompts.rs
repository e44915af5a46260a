//! Prompts and versions (SPEC §5): viewers read, editors change, admins
//! delete. Lifecycle rules come from `scope_domain::lifecycle` and are
//! enforced inside the store's transactions.

use scope_domain::labels::{self, LabelKind};
use scope_domain::lifecycle::{validate_prompt_name, validate_prompt_type};
use scope_domain::{template, DomainError, ErrorCode, PromptId, Role, VersionId, VersionStatus};
use scope_store::{
    DraftPatch, NewVersion, PromoteRequest, PromotionRow, PromptListQuery, PromptPatch, PromptRow, PromptSummary,
    VersionListQuery, VersionRow,
};
use serde_json::json;

use axum::body::Bytes;

use super::{audit, App, Page, Principal};
use crate::error::{AppError, NotFoundAs};
use crate::runtime::now_ms;
use crate::runtime::prompt_cache::{Label, Served};
use crate::views::VersionView;

pub const MAX_TAGS: usize = 50;
pub const MAX_DESCRIPTION: usize = 10_000;
/// Longest accepted `?q=` search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// A list page stops early, before its `limit`, once its rows' JSON passes
/// this many bytes; `next_cursor` then points past the last row returned, so
/// the shape is unchanged and a client paging on reads everything.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Refuses prompt content over the configured limit (`413`), whatever the
/// request body limit.
fn check_content(app: &App, content: &str) -> Result<(), AppError> {
    let max = app.config.max_prompt_bytes;
    if content.len() > max {
        return Err(DomainError::new(
            ErrorCode::PayloadTooLarge,
            format!("prompt content is {} bytes; the limit is {max} bytes (SCOPE_MAX_PROMPT_BYTES)", content.len()),
        )
        .into());
    }
    Ok(())
}

/// How many bytes `s` takes as a JSON string (serde_json's escaping:
/// quotes, backslashes and control characters), without building it.
fn json_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Room for a row's fixed fields (ids, numbers, timestamps, keys).
const ROW_OVERHEAD: usize = 512;

fn version_json_len(v: &VersionRow) -> usize {
    ROW_OVERHEAD
        + json_len(&v.content)
        + json_len(&v.name)
        + v.metadata.to_string().len()
        + v.variables.iter().chain(&v.tags).chain(&v.labels).map(|t| json_len(t) + 1).sum::<usize>()
}

fn prompt_json_len(s: &PromptSummary) -> usize {
    ROW_OVERHEAD
        + json_len(&s.prompt.name)
        + json_len(&s.prompt.description)
        + s.prompt.tags.iter().map(|t| json_len(t) + 1).sum::<usize>()
}

/// Ends `page` early once its rows pass [`MAX_PAGE_BYTES`] (always keeping
/// the first row, so paging makes progress), pointing the cursor past the
/// last row kept.
fn bound_bytes<T>(mut page: Page<T>, size_of: impl Fn(&T) -> usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let mut total = 0usize;
    let keep = page.data.iter().position(|row| {
        total = total.saturating_add(size_of(row));
        total > MAX_PAGE_BYTES
    });
    if let Some(keep) = keep.map(|k| k.max(1)).filter(|k| *k < page.data.len()) {
        page.data.truncate(keep);
        page.next_cursor = page.data.last().map(cursor_of);
    }
    page
}

fn quota_reached(what: &str, max: u64, setting: &str) -> AppError {
    DomainError::conflict(format!("quota reached: at most {max} {what} ({setting}); nothing was created")).into()
}

pub fn validate_tags(tags: &[String]) -> Result<Vec<String>, AppError> {
    if tags.len() > MAX_TAGS {
        return Err(DomainError::bad_request(format!("at most {MAX_TAGS} tags")).into());
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let n = t.chars().count();
        if !(1..=64).contains(&n) || t.chars().any(char::is_control) {
            return Err(DomainError::bad_request("each tag must be 1-64 characters").into());
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn validate_description(d: &str) -> Result<(), AppError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(
            DomainError::bad_request(format!("description must be at most {MAX_DESCRIPTION} characters")).into()
        );
    }
    Ok(())
}

fn validate_metadata(m: &serde_json::Value) -> Result<(), AppError> {
    if m.is_object() {
        Ok(())
    } else {
        Err(DomainError::bad_request("metadata must be a JSON object").into())
    }
}

pub struct NewPrompt {
    pub name: String,
    pub content: String,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub prompt_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Finds a prompt of the caller's organization by name or `pmt_` id.
pub async fn find(app: &App, p: &Principal, name_or_id: &str) -> Result<PromptSummary, AppError> {
    app.store.get_prompt(p.org, name_or_id).await.not_found_as("prompt")
}

fn parse_version_id(s: &str) -> Result<VersionId, AppError> {
    s.parse().map_err(|_| DomainError::not_found("version not found").into())
}

// ---- SDK-facing ---------------------------------------------------------------------

pub async fn production(app: &App, p: &Principal, name: &str) -> Result<VersionRow, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    app.store.production_version(p.org, prompt.prompt.prompt_id).await?.ok_or_else(|| {
        DomainError::new(
            ErrorCode::NoProductionVersion,
            format!("prompt '{}' has no production version", prompt.prompt.name),
        )
        .into()
    })
}

pub async fn latest(app: &App, p: &Principal, name: &str) -> Result<VersionRow, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    app.store
        .latest_version(p.org, prompt.prompt.prompt_id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("prompt '{}' has no versions", prompt.prompt.name)).into())
}

pub async fn version(app: &App, p: &Principal, name: &str, version_id: &str) -> Result<VersionRow, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    let vid = parse_version_id(version_id)?;
    app.store.get_version(p.org, prompt.prompt.prompt_id, vid).await.not_found_as("version")
}

/// The version a label of `name` points at (`None`: the prompt has no
/// such label). Not `production` or `latest`.
async fn labelled(app: &App, p: &Principal, name: &str, label: &str) -> Result<Option<VersionRow>, AppError> {
    let prompt = find(app, p, name).await?;
    let labels = app.store.list_labels(p.org, prompt.prompt.prompt_id).await?;
    match labels.into_iter().find(|l| l.label == label) {
        Some(l) => Ok(Some(app.store.get_version(p.org, prompt.prompt.prompt_id, l.version_id).await?)),
        None => Ok(None),
    }
}

/// What an SDK-facing read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask<'a> {
    /// `/production`: for a key bound to environment `E`, the version
    /// labelled `E` where the prompt has that label (SPEC §9).
    Production,
    /// `/latest`.
    Latest,
    /// `/labels/{label}`: exactly that label (`production` and `latest`
    /// included, with no environment substitution).
    Label(&'a str),
}

/// An SDK-facing read as a ready response (body, `ETag`, the label served),
/// from memory when the cache holds a current copy (see
/// `runtime::prompt_cache`); the database is read only on a miss.
pub async fn serve(app: &App, p: &Principal, name: &str, ask: Ask<'_>) -> Result<Served, AppError> {
    p.require(Role::Viewer)?;
    let key = match ask {
        Ask::Production => match labels::label_for_environment(p.environment.as_deref()) {
            Some(env) => Label::ProductionFor(env),
            None => Label::Production,
        },
        Ask::Latest => Label::Latest,
        Ask::Label(l) => {
            labels::validate_label(l)?;
            match labels::kind(l) {
                LabelKind::Production => Label::Production,
                LabelKind::Latest => Label::Latest,
                LabelKind::Custom => Label::Named(l),
            }
        }
    };
    if let Some(served) = app.prompts.get(p.org, name, key) {
        return Ok(served);
    }
    let generation = app.prompts.begin(&p.org);
    let (row, served_as) = match key {
        Label::Production => (production(app, p, name).await?, labels::PRODUCTION),
        Label::Latest => (latest(app, p, name).await?, labels::LATEST),
        Label::Named(l) => match labelled(app, p, name, l).await? {
            Some(v) => (v, l),
            None => return Err(DomainError::not_found(format!("prompt '{name}' has no label '{l}'")).into()),
        },
        Label::ProductionFor(env) => match labelled(app, p, name, env).await? {
            Some(v) => (v, env),
            None => (production(app, p, name).await?, labels::PRODUCTION),
        },
    };
    let body =
        Bytes::from(serde_json::to_vec(&VersionView::from(&row)).map_err(|e| AppError::Internal(e.to_string()))?);
    let served = Served::new(served_as, body);
    app.prompts.insert(p.org, name, key, generation, served.clone());
    Ok(served)
}

// ---- management ---------------------------------------------------------------------

pub async fn create(app: &App, p: &Principal, req: NewPrompt) -> Result<(PromptSummary, VersionRow), AppError> {
    p.require(Role::Editor)?;
    validate_prompt_name(&req.name)?;
    check_content(app, &req.content)?;
    let description = req.description.unwrap_or_default();
    validate_description(&description)?;
    let tags = validate_tags(&req.tags.unwrap_or_default())?;
    let prompt_type = req.prompt_type.unwrap_or_else(|| "text".into());
    validate_prompt_type(&prompt_type)?;
    let metadata = req.metadata.unwrap_or_else(|| json!({}));
    validate_metadata(&metadata)?;
    let max = app.config.max_prompts_per_org;
    if app.store.count_prompts(p.org).await? >= max {
        return Err(quota_reached("prompts per organization", max, "SCOPE_MAX_PROMPTS_PER_ORG"));
    }
    let now = now_ms();
    let prompt = PromptRow {
        prompt_id: PromptId::generate(),
        org_id: p.org,
        name: req.name.clone(),
        description,
        tags: tags.clone(),
        created_at: now,
        updated_at: now,
        created_by: p.actor.id(),
    };
    let v1 = VersionRow {
        version_id: VersionId::generate(),
        prompt_id: prompt.prompt_id,
        org_id: p.org,
        name: prompt.name.clone(),
        version: 1,
        variables: template::variables(&req.content),
        content: req.content,
        status: VersionStatus::Draft,
        prompt_type,
        metadata,
        tags,
        created_at: now,
        updated_at: now,
        created_by: p.actor.id(),
        promoted_at: None,
        promoted_by: None,
        labels: Vec::new(),
    };
    let ev = audit::event(p, "prompt.created", prompt.prompt_id, json!({"name": prompt.name}));
    app.store.create_prompt(&prompt, &v1, &ev).await?;
    app.prompts_changed(p.org);
    let summary =
        PromptSummary { prompt, latest_version: Some(1), production_version: None, production_version_id: None };
    Ok((summary, v1))
}

pub async fn list(
    app: &App,
    p: &Principal,
    tag: Option<String>,
    q: Option<String>,
    page: scope_store::PageQuery,
) -> Result<Page<PromptSummary>, AppError> {
    p.require(Role::Viewer)?;
    if q.as_deref().is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
        return Err(DomainError::bad_request(format!("q must be at most {MAX_QUERY_CHARS} characters")).into());
    }
    let query = PromptListQuery { page: page.clone(), tag, q };
    let rows = app.store.list_prompts(p.org, &query).await?;
    let cursor_of = |s: &PromptSummary| s.prompt.prompt_id.to_string();
    Ok(bound_bytes(Page::from_rows(rows, &page, cursor_of), prompt_json_len, cursor_of))
}

pub async fn get(app: &App, p: &Principal, name: &str) -> Result<PromptSummary, AppError> {
    p.require(Role::Viewer)?;
    find(app, p, name).await
}

pub async fn update(app: &App, p: &Principal, name: &str, patch: PromptPatch) -> Result<PromptSummary, AppError> {
    p.require(Role::Editor)?;
    if let Some(d) = &patch.description {
        validate_description(d)?;
    }
    let patch = PromptPatch { tags: patch.tags.map(|t| validate_tags(&t)).transpose()?, ..patch };
    let prompt = find(app, p, name).await?;
    let ev = audit::event(p, "prompt.updated", prompt.prompt.prompt_id, json!({}));
    app.store.update_prompt(p.org, prompt.prompt.prompt_id, &patch, now_ms(), &ev).await.not_found_as("prompt")?;
    app.prompts_changed(p.org);
    find(app, p, &prompt.prompt.prompt_id.to_string()).await
}

pub async fn delete(app: &App, p: &Principal, name: &str) -> Result<(), AppError> {
    p.require(Role::Admin)?;
    let prompt = find(app, p, name).await?;
    let ev = audit::event(p, "prompt.deleted", prompt.prompt.prompt_id, json!({"name": prompt.prompt.name}));
    app.store.delete_prompt(p.org, prompt.prompt.prompt_id, &ev).await.not_found_as("prompt")?;
    app.prompts_changed(p.org);
    Ok(())
}

pub struct NewVersionReq {
    pub content: Option<String>,
    pub copy_from: Option<String>,
    pub prompt_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

pub async fn create_version(app: &App, p: &Principal, name: &str, req: NewVersionReq) -> Result<VersionRow, AppError> {
    p.require(Role::Editor)?;
    if let Some(c) = &req.content {
        check_content(app, c)?;
    }
    if let Some(t) = &req.prompt_type {
        validate_prompt_type(t)?;
    }
    if let Some(m) = &req.metadata {
        validate_metadata(m)?;
    }
    let copy_from = match &req.copy_from {
        Some(s) => Some(s.parse::<VersionId>().map_err(|_| DomainError::not_found("copy_from version not found"))?),
        None => None,
    };
    let prompt = find(app, p, name).await?;
    let max = app.config.max_versions_per_prompt;
    // Numbers are never reused and versions never deleted: the highest
    // number is how many the prompt has had.
    if prompt.latest_version.is_some_and(|n| u64::try_from(n).unwrap_or(0) >= max) {
        return Err(quota_reached("versions per prompt", max, "SCOPE_MAX_VERSIONS_PER_PROMPT"));
    }
    if let (Some(source), None) = (copy_from, &req.content) {
        // The copy is held to the limit too (it may have been lowered since
        // the source was written).
        let source =
            app.store.get_version(p.org, prompt.prompt.prompt_id, source).await.not_found_as("copy_from version")?;
        check_content(app, &source.content)?;
    }
    let vid = VersionId::generate();
    let new = NewVersion {
        version_id: vid,
        content: req.content,
        prompt_type: req.prompt_type,
        metadata: req.metadata,
        copy_from,
        created_by: p.actor.id(),
        now_ms: now_ms(),
    };
    let ev = audit::event(p, "version.created", vid, json!({"prompt_id": prompt.prompt.prompt_id.to_string()}));
    let v =
        app.store.create_version(p.org, prompt.prompt.prompt_id, &new, &ev).await.not_found_as("copy_from version")?;
    app.prompts_changed(p.org);
    Ok(v)
}

pub async fn update_draft(
    app: &App,
    p: &Principal,
    name: &str,
    version_id: &str,
    patch: DraftPatch,
) -> Result<VersionRow, AppError> {
    p.require(Role::Editor)?;
    if let Some(c) = &patch.content {
        check_content(app, c)?;
    }
    if let Some(t) = &patch.prompt_type {
        validate_prompt_type(t)?;
    }
    if let Some(m) = &patch.metadata {
        validate_metadata(m)?;
    }
    let prompt = find(app, p, name).await?;
    let vid = parse_version_id(version_id)?;
    let ev = audit::event(p, "version.updated", vid, json!({"prompt_id": prompt.prompt.prompt_id.to_string()}));
    let v = app
        .store
        .update_draft(p.org, prompt.prompt.prompt_id, vid, &patch, now_ms(), &ev)
        .await
        .not_found_as("version")?;
    app.prompts_changed(p.org);
    Ok(v)
}

pub async fn promote(
    app: &App,
    p: &Principal,
    name: &str,
    version_id: &str,
    notes: Option<String>,
    archive_previous: Option<bool>,
) -> Result<VersionRow, AppError> {
    p.require(Role::Editor)?;
    if notes.as_deref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(DomainError::bad_request("notes must be at most 2000 characters").into());
    }
    let prompt = find(app, p, name).await?;
    // Promoting moves the `production` label, which may be protected.
    super::labels::check_may_move(app, p, labels::PRODUCTION).await?;
    let vid = parse_version_id(version_id)?;
    let req = PromoteRequest {
        notes: notes.clone(),
        archive_previous: archive_previous.unwrap_or(true),
        actor: p.actor.id(),
        now_ms: now_ms(),
        promotion_id: format!("prm_{}", scope_domain::ids::next_ulid()),
    };
    let ev = audit::event(
        p,
        "version.promoted",
        vid,
        json!({"prompt_id": prompt.prompt.prompt_id.to_string(), "notes": notes}),
    );
    let v = app.store.promote(p.org, prompt.prompt.prompt_id, vid, &req, &ev).await.not_found_as("version")?;
    app.prompts_changed(p.org);
    Ok(v)
}

pub async fn set_archived(
    app: &App,
    p: &Principal,
    name: &str,
    version_id: &str,
    archived: bool,
) -> Result<VersionRow, AppError> {
    p.require(Role::Editor)?;
    let prompt = find(app, p, name).await?;
    let vid = parse_version_id(version_id)?;
    let action = if archived { "version.archived" } else { "version.unarchived" };
    let ev = audit::event(p, action, vid, json!({"prompt_id": prompt.prompt.prompt_id.to_string()}));
    let v = app
        .store
        .set_archived(p.org, prompt.prompt.prompt_id, vid, archived, now_ms(), &ev)
        .await
        .not_found_as("version")?;
    app.prompts_changed(p.org);
    Ok(v)
}

pub async fn list_versions(
    app: &App,
    p: &Principal,
    name: &str,
    include_archived: bool,
    page: scope_store::PageQuery,
) -> Result<Page<VersionRow>, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    let cursor_of = |v: &VersionRow| v.version.to_string();
    // Read in chunks of as many rows as surely fit in a page, and stop
    // once the page is full: a page of the largest versions never holds
    // more than about two pages' worth of contents in memory.
    let chunk = (MAX_PAGE_BYTES / app.config.max_prompt_bytes.max(1)).clamp(1, 200) as u32;
    let mut rows: Vec<VersionRow> = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = page.cursor.clone();
    loop {
        let want = page.limit.saturating_sub(rows.len() as u32).min(chunk);
        let query = VersionListQuery { page: scope_store::PageQuery { limit: want, cursor }, include_archived };
        let got = app.store.list_versions(p.org, prompt.prompt.prompt_id, &query).await?;
        let read = got.len();
        bytes = got.iter().fold(bytes, |b, v| b.saturating_add(version_json_len(v)));
        rows.extend(got);
        // Past the byte bound with two rows or more, `bound_bytes` ends the
        // page before the last row read, so a next cursor is given.
        let full = rows.len() >= page.limit as usize || (bytes > MAX_PAGE_BYTES && rows.len() >= 2);
        if read < want as usize || full {
            break;
        }
        cursor = rows.last().map(cursor_of);
    }
    Ok(bound_bytes(Page::from_rows(rows, &page, cursor_of), version_json_len, cursor_of))
}

pub async fn promotions(
    app: &App,
    p: &Principal,
    name: &str,
    page: scope_store::PageQuery,
) -> Result<Page<PromotionRow>, AppError> {
    p.require(Role::Viewer)?;
    let prompt = find(app, p, name).await?;
    let rows = app.store.list_promotions(p.org, prompt.prompt.prompt_id, &page).await?;
    Ok(Page::from_rows(rows, &page, |r: &PromotionRow| r.promotion_id.clone()))
}
