//! Prompts in the PostgreSQL backend: prompts, their numbered versions, the
//! promotion history, and the bulk prompt import.
//!
//! Every change to a prompt, its versions or its promotions first locks the
//! prompt row (`SELECT … FOR UPDATE`, [`lock_prompt`]); the statements after
//! it run with fresh READ COMMITTED snapshots, so they see everything the
//! previous holder committed. That serializes version numbering and
//! promotions of one prompt across connections and processes (as SQLite's
//! single writer does), while the partial unique index
//! `prompt_versions_one_published` still guarantees at most one published
//! version whatever happens. Every change announces `prompts:<org>` on the
//! change feed and appends what it did to the event log (`events.rs`, last,
//! just before the commit); a promotion is also a move of the `production`
//! label (`labels.rs` moves the others and calls [`promote_in_tx`] for it).

use std::collections::BTreeSet;

use scope_domain::{DomainError, OrgId, PromptId, VersionId, VersionStatus};
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::{audit::insert_audit, batch_rows, changes, events, DbResult, PgStore};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

// ---- statements shared by several methods --------------------------------------------

/// Locks the prompt row until the end of the transaction and returns its
/// `next_version`; `NotFound` when `prompt` is not a prompt of `org`.
pub(super) async fn lock_prompt(conn: &mut PgConnection, org: OrgId, prompt: PromptId) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT next_version FROM prompts WHERE org_id = $1 AND prompt_id = $2 FOR UPDATE")
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn fetch_version(
    conn: &mut PgConnection,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
) -> StoreResult<Option<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE v.org_id = $1 AND v.prompt_id = $2 AND v.version_id = $3");
    sqlx::query_as::<_, RawVersion>(&sql)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(version.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawVersion::into_row)
        .transpose()
}

/// The status of a version of `prompt` in `org`, or `NotFound`.
async fn version_status(
    conn: &mut PgConnection,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
) -> StoreResult<VersionStatus> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM prompt_versions WHERE org_id = $1 AND prompt_id = $2 AND version_id = $3",
    )
    .bind(org.to_string())
    .bind(prompt.to_string())
    .bind(version.to_string())
    .fetch_optional(conn)
    .await
    .db()?;
    let status = status.ok_or(StoreError::NotFound)?;
    VersionStatus::parse(&status).ok_or_else(|| corrupt("status"))
}

pub(super) async fn touch_prompt(
    conn: &mut PgConnection,
    org: OrgId,
    prompt: PromptId,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE prompts SET updated_at = $1 WHERE org_id = $2 AND prompt_id = $3")
        .bind(now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .execute(conn)
        .await
        .db()?;
    Ok(())
}

/// Inserts prompts with multi-row INSERTs, each with its `next_version`.
pub(super) async fn insert_prompts(conn: &mut PgConnection, prompts: &[(&PromptRow, i64)]) -> StoreResult<()> {
    for chunk in prompts.chunks(batch_rows(9)) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (p, next) in chunk {
            rows.push((*p, json_text(&p.tags)?, *next));
        }
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO prompts (prompt_id, org_id, name, description, tags, next_version, created_at, \
             updated_at, created_by) ",
        );
        qb.push_values(rows, |mut b, (p, tags, next)| {
            b.push_bind(p.prompt_id.to_string())
                .push_bind(p.org_id.to_string())
                .push_bind(p.name.as_str())
                .push_bind(p.description.as_str())
                .push_bind(tags)
                .push_bind(next)
                .push_bind(p.created_at)
                .push_bind(p.updated_at)
                .push_bind(p.created_by.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Inserts versions as given (status, number, promotion fields) with
/// multi-row INSERTs; `variables` is each version's JSON variable list.
pub(super) async fn insert_versions(conn: &mut PgConnection, versions: &[(&VersionRow, String)]) -> StoreResult<()> {
    for chunk in versions.chunks(batch_rows(14)) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (v, variables) in chunk {
            rows.push((*v, variables.as_str(), json_text(&v.metadata)?));
        }
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, \
             status, prompt_type, metadata, created_at, updated_at, created_by, promoted_at, promoted_by) ",
        );
        qb.push_values(rows, |mut b, (v, variables, metadata)| {
            b.push_bind(v.version_id.to_string())
                .push_bind(v.prompt_id.to_string())
                .push_bind(v.org_id.to_string())
                .push_bind(v.version)
                .push_bind(v.content.as_str())
                .push_bind(variables)
                .push_bind(v.status.as_str())
                .push_bind(v.prompt_type.as_str())
                .push_bind(metadata)
                .push_bind(v.created_at)
                .push_bind(v.updated_at)
                .push_bind(v.created_by.as_str())
                .push_bind(v.promoted_at)
                .push_bind(v.promoted_by.as_deref());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

// ---- prompts ---------------------------------------------------------------------------

pub(super) async fn create_prompt(
    store: &PgStore,
    prompt: &PromptRow,
    v1: &VersionRow,
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO prompts (prompt_id, org_id, name, description, tags, next_version, created_at, updated_at, \
         created_by) VALUES ($1, $2, $3, $4, $5, 2, $6, $7, $8)",
    )
    .bind(prompt.prompt_id.to_string())
    .bind(prompt.org_id.to_string())
    .bind(&prompt.name)
    .bind(&prompt.description)
    .bind(json_text(&prompt.tags)?)
    .bind(prompt.created_at)
    .bind(prompt.updated_at)
    .bind(&prompt.created_by)
    .execute(&mut *tx)
    .await
    .db()?;
    // v1 is always a draft numbered 1 of this prompt; its variables follow its content.
    let variables = scope_domain::template::variables(&v1.content);
    sqlx::query(
        "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, status, \
         prompt_type, metadata, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, 1, $4, $5, 'draft', $6, $7, $8, $9, $10)",
    )
    .bind(v1.version_id.to_string())
    .bind(prompt.prompt_id.to_string())
    .bind(prompt.org_id.to_string())
    .bind(&v1.content)
    .bind(json_text(&variables)?)
    .bind(&v1.prompt_type)
    .bind(json_text(&v1.metadata)?)
    .bind(v1.created_at)
    .bind(v1.updated_at)
    .bind(&v1.created_by)
    .execute(&mut *tx)
    .await
    .db()?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, prompt.org_id).await?;
    let created =
        VersionRow { prompt_id: prompt.prompt_id, org_id: prompt.org_id, name: prompt.name.clone(), ..v1.clone() };
    events::append(&mut tx, &[NewEvent::version_created(&created, v1.created_at)]).await?;
    tx.commit().await.db()
}

pub(super) async fn get_prompt(store: &PgStore, org: OrgId, name_or_id: &str) -> StoreResult<PromptSummary> {
    let by_id = if PromptId::looks_like(name_or_id) { name_or_id.parse::<PromptId>().ok() } else { None };
    let raw = match by_id {
        Some(id) => {
            let sql = format!("{PROMPT_SELECT} WHERE p.org_id = $1 AND p.prompt_id = $2");
            sqlx::query_as::<_, RawPrompt>(&sql)
                .bind(org.to_string())
                .bind(id.to_string())
                .fetch_optional(&store.pool)
                .await
                .db()?
        }
        None => {
            let sql = format!("{PROMPT_SELECT} WHERE p.org_id = $1 AND p.name = $2");
            sqlx::query_as::<_, RawPrompt>(&sql)
                .bind(org.to_string())
                .bind(name_or_id)
                .fetch_optional(&store.pool)
                .await
                .db()?
        }
    };
    raw.ok_or(StoreError::NotFound)?.into_summary()
}

pub(super) async fn list_prompts(
    store: &PgStore,
    org: OrgId,
    query: &PromptListQuery,
) -> StoreResult<Vec<PromptSummary>> {
    let cursor = id_cursor::<PromptId>(&query.page.cursor)?;
    let mut qb = QueryBuilder::<Postgres>::new(PROMPT_SELECT);
    qb.push(" WHERE p.org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND p.prompt_id < ").push_bind(c);
    }
    if let Some(tag) = &query.tag {
        // Tags are a JSON array of strings kept as text.
        qb.push(" AND p.tags::jsonb @> jsonb_build_array(").push_bind(tag.clone()).push("::text)");
    }
    if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
        let pattern = like_contains(q);
        qb.push(" AND (p.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR p.description ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    qb.push(" ORDER BY p.prompt_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawPrompt>()
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawPrompt::into_summary)
        .collect()
}

pub(super) async fn update_prompt(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    patch: &PromptPatch,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<()> {
    let tags = patch.tags.as_ref().map(json_text).transpose()?;
    let mut tx = store.begin().await?;
    lock_prompt(&mut tx, org, prompt).await?;
    sqlx::query(
        "UPDATE prompts SET description = COALESCE($1, description), tags = COALESCE($2, tags), \
         updated_at = $3 WHERE org_id = $4 AND prompt_id = $5",
    )
    .bind(patch.description.as_deref())
    .bind(tags)
    .bind(now_ms)
    .bind(org.to_string())
    .bind(prompt.to_string())
    .execute(&mut *tx)
    .await
    .db()?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    let name = prompt_name(&mut tx, org, prompt).await?;
    events::append(&mut tx, &[NewEvent::prompt_updated(org, prompt, &name, now_ms)]).await?;
    tx.commit().await.db()
}

pub(super) async fn delete_prompt(store: &PgStore, org: OrgId, prompt: PromptId, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    lock_prompt(&mut tx, org, prompt).await?;
    let name = prompt_name(&mut tx, org, prompt).await?;
    // Versions and promotions go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM prompts WHERE org_id = $1 AND prompt_id = $2")
        .bind(org.to_string())
        .bind(prompt.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    events::append(&mut tx, &[NewEvent::prompt_deleted(org, prompt, &name, audit.at)]).await?;
    tx.commit().await.db()
}

// ---- versions ----------------------------------------------------------------------------

pub(super) async fn create_version(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    new: &NewVersion,
    audit: &AuditRow,
) -> StoreResult<VersionRow> {
    let mut tx = store.begin().await?;
    let next = lock_prompt(&mut tx, org, prompt).await?;

    let source = match new.copy_from {
        Some(from) => Some(fetch_version(&mut tx, org, prompt, from).await?.ok_or(StoreError::NotFound)?),
        None => None,
    };
    let content = new.content.clone().or_else(|| source.as_ref().map(|s| s.content.clone())).unwrap_or_default();
    let prompt_type = new
        .prompt_type
        .clone()
        .or_else(|| source.as_ref().map(|s| s.prompt_type.clone()))
        .unwrap_or_else(|| "text".to_owned());
    let metadata = new
        .metadata
        .clone()
        .or_else(|| source.as_ref().map(|s| s.metadata.clone()))
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let variables = scope_domain::template::variables(&content);

    sqlx::query(
        "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, status, \
         prompt_type, metadata, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8, $9, $9, $10)",
    )
    .bind(new.version_id.to_string())
    .bind(prompt.to_string())
    .bind(org.to_string())
    .bind(next)
    .bind(&content)
    .bind(json_text(&variables)?)
    .bind(&prompt_type)
    .bind(json_text(&metadata)?)
    .bind(new.now_ms)
    .bind(&new.created_by)
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query(
        "UPDATE prompts SET next_version = next_version + 1, updated_at = $1 WHERE org_id = $2 AND prompt_id = $3",
    )
    .bind(new.now_ms)
    .bind(org.to_string())
    .bind(prompt.to_string())
    .execute(&mut *tx)
    .await
    .db()?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    let row = fetch_version(&mut tx, org, prompt, new.version_id).await?.ok_or(StoreError::NotFound)?;
    events::append(&mut tx, &[NewEvent::version_created(&row, new.now_ms)]).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn get_version(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
) -> StoreResult<VersionRow> {
    let mut conn = store.pool.acquire().await.db()?;
    fetch_version(&mut conn, org, prompt, version).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn production_version(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
) -> StoreResult<Option<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE v.org_id = $1 AND v.prompt_id = $2 AND v.status = 'published'");
    sqlx::query_as::<_, RawVersion>(&sql)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawVersion::into_row)
        .transpose()
}

pub(super) async fn latest_version(store: &PgStore, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE v.org_id = $1 AND v.prompt_id = $2 ORDER BY v.version DESC LIMIT 1");
    sqlx::query_as::<_, RawVersion>(&sql)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawVersion::into_row)
        .transpose()
}

pub(super) async fn list_versions(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    query: &VersionListQuery,
) -> StoreResult<Vec<VersionRow>> {
    let cursor = number_cursor(&query.page.cursor)?;
    let mut qb = QueryBuilder::<Postgres>::new(VERSION_SELECT);
    qb.push(" WHERE v.org_id = ").push_bind(org.to_string());
    qb.push(" AND v.prompt_id = ").push_bind(prompt.to_string());
    if let Some(c) = cursor {
        qb.push(" AND v.version < ").push_bind(c);
    }
    if !query.include_archived {
        qb.push(" AND v.status <> 'archived'");
    }
    qb.push(" ORDER BY v.version DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawVersion>().fetch_all(&store.pool).await.db()?.into_iter().map(RawVersion::into_row).collect()
}

pub(super) async fn update_draft(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
    patch: &DraftPatch,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<VersionRow> {
    let variables = patch.content.as_deref().map(|c| json_text(&scope_domain::template::variables(c))).transpose()?;
    let metadata = patch.metadata.as_ref().map(json_text).transpose()?;
    let mut tx = store.begin().await?;
    lock_prompt(&mut tx, org, prompt).await?;
    version_status(&mut tx, org, prompt, version).await?.check_editable()?;
    sqlx::query(
        "UPDATE prompt_versions SET content = COALESCE($1, content), variables = COALESCE($2, variables), \
         prompt_type = COALESCE($3, prompt_type), metadata = COALESCE($4, metadata), updated_at = $5 \
         WHERE org_id = $6 AND prompt_id = $7 AND version_id = $8",
    )
    .bind(patch.content.as_deref())
    .bind(variables)
    .bind(patch.prompt_type.as_deref())
    .bind(metadata)
    .bind(now_ms)
    .bind(org.to_string())
    .bind(prompt.to_string())
    .bind(version.to_string())
    .execute(&mut *tx)
    .await
    .db()?;
    touch_prompt(&mut tx, org, prompt, now_ms).await?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
    events::append(&mut tx, &[NewEvent::version_updated(&row, now_ms)]).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn promote(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
    req: &PromoteRequest,
    audit: &AuditRow,
) -> StoreResult<VersionRow> {
    let mut tx = store.begin().await?;
    // Concurrent promotions of this prompt wait here, one after the other.
    lock_prompt(&mut tx, org, prompt).await?;
    let target = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
    if target.status == VersionStatus::Published {
        tx.rollback().await.db()?;
        return Ok(target);
    }
    let promotion = Promotion {
        archive_previous: req.archive_previous,
        actor: &req.actor,
        now_ms: req.now_ms,
        promotion_id: &req.promotion_id,
        move_id: &move_id_of(&req.promotion_id),
        kind: LabelMoveKind::Move,
        notes: req.notes.as_deref(),
    };
    let events = promote_in_tx(&mut tx, &target, &promotion).await?;
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
    events::append(&mut tx, &events).await?;
    tx.commit().await.db()?;
    Ok(row)
}

/// How a promotion is made and recorded.
pub(super) struct Promotion<'a> {
    pub(super) archive_previous: bool,
    pub(super) actor: &'a str,
    pub(super) now_ms: i64,
    /// The promotion-history row.
    pub(super) promotion_id: &'a str,
    /// The label-history row (`production`).
    pub(super) move_id: &'a str,
    pub(super) kind: LabelMoveKind,
    pub(super) notes: Option<&'a str>,
}

/// The label-history id of a promotion made through the promote call
/// (the migration gives earlier promotions the same ids).
pub(super) fn move_id_of(promotion_id: &str) -> String {
    format!("lbm_{}", promotion_id.strip_prefix("prm_").unwrap_or(promotion_id))
}

/// Promotes `target` (not the published version) inside the caller's
/// transaction, which holds the prompt's lock: the published version is
/// archived (or returned to draft, also when other labels still point at
/// it), the target published, and the promotion- and label-history rows
/// written. Returns the events to append; the caller writes the audit row.
pub(super) async fn promote_in_tx(
    conn: &mut PgConnection,
    target: &VersionRow,
    p: &Promotion<'_>,
) -> StoreResult<Vec<NewEvent>> {
    let (org, prompt) = (target.org_id, target.prompt_id);
    let previous: Option<(String, i64)> = sqlx::query_as(
        "SELECT version_id, version FROM prompt_versions \
         WHERE org_id = $1 AND prompt_id = $2 AND status = 'published'",
    )
    .bind(org.to_string())
    .bind(prompt.to_string())
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let previous = previous.map(|(id, n)| parse_id::<VersionId>(&id, "version id").map(|id| (id, n))).transpose()?;

    // Demote first: the partial unique index allows one published row.
    let mut demoted = None;
    if let Some((prev_id, _)) = &previous {
        let labelled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prompt_labels WHERE version_id = $1")
            .bind(prev_id.to_string())
            .fetch_one(&mut *conn)
            .await
            .db()?;
        let status = scope_domain::labels::demoted(p.archive_previous, labelled > 0);
        sqlx::query(
            "UPDATE prompt_versions SET status = $1, updated_at = $2 \
             WHERE org_id = $3 AND prompt_id = $4 AND version_id = $5",
        )
        .bind(status.as_str())
        .bind(p.now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(prev_id.to_string())
        .execute(&mut *conn)
        .await
        .db()?;
        demoted = Some((*prev_id, status));
    }
    sqlx::query(
        "UPDATE prompt_versions SET status = $1, promoted_at = $2, promoted_by = $3, updated_at = $2 \
         WHERE org_id = $4 AND prompt_id = $5 AND version_id = $6",
    )
    .bind(target.status.after_promote().as_str())
    .bind(p.now_ms)
    .bind(p.actor)
    .bind(org.to_string())
    .bind(prompt.to_string())
    .bind(target.version_id.to_string())
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query(
        "INSERT INTO promotions (promotion_id, prompt_id, org_id, version_id, version, previous_version_id, \
         previous_version, promoted_by, promoted_at, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(p.promotion_id)
    .bind(prompt.to_string())
    .bind(org.to_string())
    .bind(target.version_id.to_string())
    .bind(target.version)
    .bind(previous.map(|(id, _)| id.to_string()))
    .bind(previous.map(|(_, n)| n))
    .bind(p.actor)
    .bind(p.now_ms)
    .bind(p.notes)
    .execute(&mut *conn)
    .await
    .db()?;
    let to = Some((target.version_id, target.version));
    let change = LabelChange { label: scope_domain::labels::PRODUCTION, kind: p.kind, from: previous, to };
    insert_label_move(&mut *conn, org, prompt, &change, p.move_id, p.actor, p.now_ms, p.notes).await?;
    touch_prompt(&mut *conn, org, prompt, p.now_ms).await?;
    let mut events = vec![NewEvent::label_moved(
        org,
        prompt,
        &target.name,
        scope_domain::labels::PRODUCTION,
        previous,
        to,
        p.now_ms,
    )];
    if let Some((prev_id, VersionStatus::Archived)) = demoted {
        if let Some(prev) = fetch_version(&mut *conn, org, prompt, prev_id).await? {
            events.push(NewEvent::version_archived(&prev, p.now_ms));
        }
    }
    Ok(events)
}

/// One move of a label, as recorded.
pub(super) struct LabelChange<'a> {
    pub(super) label: &'a str,
    pub(super) kind: LabelMoveKind,
    pub(super) from: Option<(VersionId, i64)>,
    pub(super) to: Option<(VersionId, i64)>,
}

/// Writes a label-history row of `prompt`, numbered after its last one (the
/// caller holds the prompt's lock, so numbers follow the commit order).
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_label_move(
    conn: &mut PgConnection,
    org: OrgId,
    prompt: PromptId,
    c: &LabelChange<'_>,
    move_id: &str,
    actor: &str,
    now_ms: i64,
    notes: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO label_moves (move_id, prompt_id, org_id, seq, label, kind, from_version_id, from_version, \
         to_version_id, to_version, moved_by, moved_at, notes) \
         VALUES ($1, $2, $3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM label_moves WHERE prompt_id = $2), \
         $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(move_id)
    .bind(prompt.to_string())
    .bind(org.to_string())
    .bind(c.label)
    .bind(c.kind.as_str())
    .bind(c.from.map(|(id, _)| id.to_string()))
    .bind(c.from.map(|(_, n)| n))
    .bind(c.to.map(|(id, _)| id.to_string()))
    .bind(c.to.map(|(_, n)| n))
    .bind(actor)
    .bind(now_ms)
    .bind(notes)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// The name of a prompt of `org`, or `NotFound`.
pub(super) async fn prompt_name(conn: &mut PgConnection, org: OrgId, prompt: PromptId) -> StoreResult<String> {
    sqlx::query_scalar("SELECT name FROM prompts WHERE org_id = $1 AND prompt_id = $2")
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn set_archived(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
    to_archived: bool,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<VersionRow> {
    let mut tx = store.begin().await?;
    // Label moves hold the same lock: a label cannot land on the version
    // between the check below and the update.
    lock_prompt(&mut tx, org, prompt).await?;
    let current = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
    let next = if to_archived { current.status.archive()? } else { current.status.unarchive()? };
    if next != current.status {
        if next == VersionStatus::Archived {
            let labels: Vec<String> =
                sqlx::query_scalar("SELECT label FROM prompt_labels WHERE version_id = $1 ORDER BY label")
                    .bind(version.to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .db()?;
            scope_domain::labels::check_archivable(current.version, &labels)?;
        }
        sqlx::query(
            "UPDATE prompt_versions SET status = $1, updated_at = $2 \
             WHERE org_id = $3 AND prompt_id = $4 AND version_id = $5",
        )
        .bind(next.as_str())
        .bind(now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(version.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
        touch_prompt(&mut tx, org, prompt, now_ms).await?;
        insert_audit(&mut tx, audit).await?;
        changes::prompts_changed(&mut tx, org).await?;
    }
    let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
    if next != current.status {
        let event = if next == VersionStatus::Archived {
            NewEvent::version_archived(&row, now_ms)
        } else {
            NewEvent::version_updated(&row, now_ms)
        };
        events::append(&mut tx, &[event]).await?;
    }
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn list_promotions(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    query: &PageQuery,
) -> StoreResult<Vec<PromotionRow>> {
    let cursor = text_cursor(&query.cursor, "prm_")?;
    let mut qb = QueryBuilder::<Postgres>::new(PROMOTION_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    qb.push(" AND prompt_id = ").push_bind(prompt.to_string());
    if let Some(c) = cursor {
        qb.push(" AND promotion_id < ").push_bind(c);
    }
    qb.push(" ORDER BY promotion_id DESC LIMIT ").push_bind(i64::from(query.limit));
    qb.build_query_as::<RawPromotion>()
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawPromotion::into_row)
        .collect()
}

// ---- bulk import -----------------------------------------------------------------------------

pub(super) async fn import_prompts(store: &PgStore, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
    if prompts.is_empty() {
        return Ok(());
    }
    for (p, versions) in prompts {
        let published = versions.iter().filter(|v| v.status == VersionStatus::Published).count();
        let foreign = versions.iter().any(|v| v.prompt_id != p.prompt_id || v.org_id != p.org_id);
        if published > 1 || foreign {
            return Err(StoreError::Domain(DomainError::bad_request(
                "each imported version must belong to its prompt, with at most one published",
            )));
        }
    }
    let prompt_rows: Vec<(&PromptRow, i64)> =
        prompts.iter().map(|(p, versions)| (p, versions.iter().map(|v| v.version).max().unwrap_or(0) + 1)).collect();
    let mut version_rows = Vec::new();
    for v in prompts.iter().flat_map(|(_, vs)| vs.iter()) {
        version_rows.push((v, json_text(&scope_domain::template::variables(&v.content))?));
    }
    let orgs: BTreeSet<OrgId> = prompts.iter().map(|(p, _)| p.org_id).collect();

    let mut tx = store.begin().await?;
    insert_prompts(&mut tx, &prompt_rows).await?;
    insert_versions(&mut tx, &version_rows).await?;
    for org in orgs {
        changes::prompts_changed(&mut tx, org).await?;
    }
    tx.commit().await.db()
}
