//! The audit log in the SQLite backend: writing one event on its own and the
//! filtered, paged listing. Events written as part of another change go
//! through `mod.rs`'s `insert_audit` inside that change's transaction.

use scope_domain::OrgId;
use sqlx::{QueryBuilder, Sqlite};

use super::{DbResult, SqliteStore};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

pub(super) async fn insert_audit(store: &SqliteStore, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    super::insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn list_audit(store: &SqliteStore, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let cursor = text_cursor(&query.page.cursor, "evt_")?;
    // An empty filter value (`?actor=`) filters nothing.
    let given = |f: &Option<String>| f.clone().filter(|v| !v.is_empty());
    let mut qb = QueryBuilder::<Sqlite>::new(AUDIT_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND event_id < ").push_bind(c);
    }
    if let Some(actor) = given(&query.actor) {
        qb.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = given(&query.action) {
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
    qb.build_query_as::<RawAudit>().fetch_all(&store.read).await.db()?.into_iter().map(RawAudit::into_row).collect()
}
