//! The audit log in the PostgreSQL backend: the statement that writes an
//! event inside another change's transaction, writing one event on its own,
//! and the filtered, paged listing.

use scope_domain::OrgId;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::{DbResult, PgStore};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

/// Writes `a` on `conn` (inside the caller's transaction).
pub(super) async fn insert_audit(conn: &mut PgConnection, a: &AuditRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (event_id, org_id, actor, action, target, at, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.event_id)
    .bind(a.org_id.to_string())
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target)
    .bind(a.at)
    .bind(json_text(&a.details)?)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// Writes one event on its own (e.g. a failed sign-in).
pub(super) async fn insert_audit_event(store: &PgStore, audit: &AuditRow) -> StoreResult<()> {
    let mut conn = store.pool.acquire().await.db()?;
    insert_audit(&mut conn, audit).await
}

pub(super) async fn list_audit(store: &PgStore, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let cursor = text_cursor(&query.page.cursor, "evt_")?;
    // An empty filter value (`?actor=`) filters nothing.
    let given = |f: &Option<String>| f.clone().filter(|v| !v.is_empty());
    let mut qb = QueryBuilder::<Postgres>::new(AUDIT_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND event_id < ").push_bind(c);
    }
    if let Some(actor) = given(&query.actor) {
        qb.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = given(&query.action) {
        // Byte-wise range (the column is COLLATE "C"), served by the
        // audit_events_action index.
        match prefix_range(&action) {
            Some((from, to)) => {
                qb.push(" AND action >= ").push_bind(from).push(" AND action < ").push_bind(to);
            }
            None => {
                qb.push(" AND action = ").push_bind(action);
            }
        }
    }
    if let Some(target) = given(&query.target) {
        qb.push(" AND target = ").push_bind(target);
    }
    if let Some(since) = query.since_ms {
        qb.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = query.until_ms {
        qb.push(" AND at < ").push_bind(until);
    }
    qb.push(" ORDER BY event_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawAudit>().fetch_all(&store.pool).await.db()?.into_iter().map(RawAudit::into_row).collect()
}
