//! The event log in the SQLite backend: appending inside a change's
//! transaction, reading past a position (one organization's, or every
//! organization's for a process's fan-out), its bounds, and pruning.
//!
//! `seq` is an `AUTOINCREMENT` key: never handed out twice, also after
//! pruning, and the single writer commits in number order, so a reader that
//! has seen n never misses a later commit below n.

use scope_domain::OrgId;
use sqlx::sqlite::SqliteConnection;

use super::{DbResult, SqliteStore};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

/// Appends `events` inside the caller's transaction, in order.
pub(super) async fn append(conn: &mut SqliteConnection, events: &[NewEvent]) -> StoreResult<()> {
    for e in events {
        sqlx::query("INSERT INTO events (org_id, event_type, at, data) VALUES (?1, ?2, ?3, ?4)")
            .bind(e.org_id.to_string())
            .bind(e.event_type)
            .bind(e.at)
            .bind(json_text(&e.data)?)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

pub(super) async fn list_events(
    store: &SqliteStore,
    org: OrgId,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<EventRow>> {
    let sql = format!("{EVENT_COLUMNS} WHERE org_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    sqlx::query_as::<_, RawEvent>(&sql)
        .bind(org.to_string())
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, MAX_EVENT_PAGE)))
        .fetch_all(&store.read)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect()
}

pub(super) async fn event_feed(store: &SqliteStore, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
    let sql = format!("{EVENT_COLUMNS} WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    sqlx::query_as::<_, RawEvent>(&sql)
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, MAX_EVENT_PAGE)))
        .fetch_all(&store.read)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect()
}

pub(super) async fn event_bounds(store: &SqliteStore) -> StoreResult<EventBounds> {
    let (pruned_through, max_seq): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT pruned_through FROM event_log WHERE id = 1), (SELECT COALESCE(MAX(seq), 0) FROM events)",
    )
    .fetch_one(&store.read)
    .await
    .db()?;
    Ok(EventBounds { pruned_through, head: pruned_through.max(max_seq) })
}

pub(super) async fn prune_events(store: &SqliteStore, before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let through: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE at < ?1")
        .bind(before_ms)
        .fetch_one(&mut *tx)
        .await
        .db()?;
    let Some(through) = through else {
        tx.rollback().await.db()?;
        return Ok(0);
    };
    let n =
        sqlx::query("DELETE FROM events WHERE at < ?1").bind(before_ms).execute(&mut *tx).await.db()?.rows_affected();
    sqlx::query("UPDATE event_log SET pruned_through = MAX(pruned_through, ?1) WHERE id = 1")
        .bind(through)
        .execute(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()?;
    Ok(n)
}
