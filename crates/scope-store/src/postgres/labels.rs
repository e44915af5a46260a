//! Labels in the PostgreSQL backend: where a prompt's labels point, moving and
//! removing them (`production` through the promotion in `prompts.rs`), the
//! label history, and the organization's protected labels.
//!
//! A move is one transaction: the label row, its history row (numbered
//! after the prompt's last one), the audit row and the event. It first locks
//! the prompt row, as every change to a prompt does, so concurrent moves of
//! one label (from any replica) serialize and each records the version it
//! replaced.

use scope_domain::labels::{self, LabelKind};
use scope_domain::{DomainError, OrgId, PromptId, VersionId, VersionStatus};
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::audit::insert_audit;
use super::prompts::{
    fetch_version, insert_label_move, lock_prompt, promote_in_tx, prompt_name, touch_prompt, LabelChange, Promotion,
};
use super::{changes, events, DbResult, PgStore};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

pub(super) async fn list_labels(store: &PgStore, org: OrgId, prompt: PromptId) -> StoreResult<Vec<LabelRow>> {
    sqlx::query_as::<_, RawLabel>(&label_list_sql("$1", "$2"))
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawLabel::into_row)
        .collect()
}

/// Where a stored (non-production) label of `prompt` points, with the
/// version's number.
async fn current_target(
    conn: &mut PgConnection,
    prompt: PromptId,
    label: &str,
) -> StoreResult<Option<(VersionId, i64)>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT l.version_id, v.version FROM prompt_labels l JOIN prompt_versions v ON v.version_id = l.version_id \
         WHERE l.prompt_id = $1 AND l.label = $2",
    )
    .bind(prompt.to_string())
    .bind(label)
    .fetch_optional(conn)
    .await
    .db()?;
    row.map(|(id, n)| parse_id(&id, "version id").map(|id| (id, n))).transpose()
}

/// The published version of `prompt`, with its number.
async fn published(conn: &mut PgConnection, prompt: PromptId) -> StoreResult<Option<(VersionId, i64)>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT version_id, version FROM prompt_versions WHERE prompt_id = $1 AND status = 'published'")
            .bind(prompt.to_string())
            .fetch_optional(conn)
            .await
            .db()?;
    row.map(|(id, n)| parse_id(&id, "version id").map(|id| (id, n))).transpose()
}

fn check_current(label: &str, expected: Option<Option<VersionId>>, now: Option<VersionId>) -> StoreResult<()> {
    match expected {
        Some(e) if e != now => Err(StoreError::Conflict(format!("label '{label}' moved meanwhile; retry"))),
        _ => Ok(()),
    }
}

pub(super) async fn move_label(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    req: &MoveLabelRequest,
    audit: &AuditRow,
) -> StoreResult<Option<VersionRow>> {
    let label = req.label.as_str();
    labels::check_movable(label)?;
    if req.to.is_none() {
        labels::check_removable(label)?;
    }
    let mut tx = store.begin().await?;
    // Concurrent moves of this prompt's labels wait here, one after the other.
    lock_prompt(&mut tx, org, prompt).await?;
    let name = prompt_name(&mut tx, org, prompt).await?;
    let target = match req.to {
        Some(v) => Some(
            fetch_version(&mut tx, org, prompt, v).await?.ok_or_else(|| DomainError::not_found("version not found"))?,
        ),
        None => None,
    };
    if let Some(t) = &target {
        labels::check_target(label, t.version, t.status)?;
    }

    let events = if labels::kind(label) == LabelKind::Production {
        let target = target.as_ref().ok_or_else(|| StoreError::Internal("production cannot be removed".into()))?;
        let now = published(&mut tx, prompt).await?;
        check_current(label, req.if_current, now.map(|(id, _)| id))?;
        if target.status == VersionStatus::Published {
            tx.rollback().await.db()?;
            return Ok(Some(target.clone()));
        }
        let promotion = Promotion {
            archive_previous: req.archive_previous,
            actor: &req.actor,
            now_ms: req.now_ms,
            promotion_id: &req.promotion_id,
            move_id: &req.move_id,
            kind: req.kind,
            notes: req.notes.as_deref(),
        };
        promote_in_tx(&mut tx, target, &promotion).await?
    } else {
        let now = current_target(&mut tx, prompt, label).await?;
        check_current(label, req.if_current, now.map(|(id, _)| id))?;
        let to = target.as_ref().map(|t| (t.version_id, t.version));
        match to {
            Some((v, _)) if now.map(|(id, _)| id) == Some(v) => {
                // Already there: nothing moves, nothing is recorded.
                tx.rollback().await.db()?;
                return Ok(target);
            }
            Some((v, _)) => {
                sqlx::query(
                    "INSERT INTO prompt_labels (prompt_id, label, org_id, version_id, moved_at, moved_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (prompt_id, label) DO UPDATE SET version_id = excluded.version_id, \
                     moved_at = excluded.moved_at, moved_by = excluded.moved_by",
                )
                .bind(prompt.to_string())
                .bind(label)
                .bind(org.to_string())
                .bind(v.to_string())
                .bind(req.now_ms)
                .bind(&req.actor)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            None => {
                if now.is_none() {
                    return Err(DomainError::not_found(format!("prompt '{name}' has no label '{label}'")).into());
                }
                sqlx::query("DELETE FROM prompt_labels WHERE prompt_id = $1 AND label = $2")
                    .bind(prompt.to_string())
                    .bind(label)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
        }
        let change = LabelChange { label, kind: req.kind, from: now, to };
        insert_label_move(&mut tx, org, prompt, &change, &req.move_id, &req.actor, req.now_ms, req.notes.as_deref())
            .await?;
        touch_prompt(&mut tx, org, prompt, req.now_ms).await?;
        vec![NewEvent::label_moved(org, prompt, &name, label, now, to, req.now_ms)]
    };
    insert_audit(&mut tx, audit).await?;
    changes::prompts_changed(&mut tx, org).await?;
    let row = match req.to {
        Some(v) => Some(fetch_version(&mut tx, org, prompt, v).await?.ok_or(StoreError::NotFound)?),
        None => None,
    };
    events::append(&mut tx, &events).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn list_label_moves(
    store: &PgStore,
    org: OrgId,
    prompt: PromptId,
    query: &LabelMoveQuery,
) -> StoreResult<Vec<LabelMoveRow>> {
    let cursor = number_cursor(&query.page.cursor)?;
    let mut qb = QueryBuilder::<Postgres>::new(LABEL_MOVE_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    qb.push(" AND prompt_id = ").push_bind(prompt.to_string());
    if let Some(label) = &query.label {
        qb.push(" AND label = ").push_bind(label.clone());
    }
    if let Some(c) = cursor {
        qb.push(" AND seq < ").push_bind(c);
    }
    qb.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawLabelMove>()
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawLabelMove::into_row)
        .collect()
}

pub(super) async fn protected_labels(store: &PgStore, org: OrgId) -> StoreResult<Vec<String>> {
    sqlx::query_scalar("SELECT label FROM protected_labels WHERE org_id = $1 ORDER BY label")
        .bind(org.to_string())
        .fetch_all(&store.pool)
        .await
        .db()
}

pub(super) async fn set_protected_labels(
    store: &PgStore,
    org: OrgId,
    labels: &[String],
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // Two replicas replacing the set at once: the organization row orders them.
    sqlx::query("SELECT 1 FROM orgs WHERE org_id = $1 FOR UPDATE")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query("DELETE FROM protected_labels WHERE org_id = $1").bind(org.to_string()).execute(&mut *tx).await.db()?;
    for label in labels {
        sqlx::query("INSERT INTO protected_labels (org_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(org.to_string())
            .bind(label)
            .execute(&mut *tx)
            .await
            .db()?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}
