//! The event log in the PostgreSQL backend: appending inside a change's
//! transaction, reading past a position (one organization's, or every
//! organization's for a process's fan-out), its bounds, and pruning.
//!
//! Positions come from a sequence, drawn while holding the transaction-
//! scoped advisory lock [`EVENT_LOCK`](super::EVENT_LOCK), which every
//! writer takes as its last lock, right before it commits: numbers are then
//! handed out in commit order, so a reader that has seen position n never
//! misses a later commit below n (a plain sequence would let a transaction
//! that drew n-1 commit after one that drew n). Appending also announces
//! `events` on the change feed, so other replicas read the log at once.

use scope_domain::OrgId;
use sqlx::postgres::PgConnection;

use super::{changes, DbResult, PgStore, EVENT_LOCK};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

/// Appends `events` inside the caller's transaction, in order. Call it last,
/// after every other statement that takes a lock: it holds the event lock
/// until the commit.
pub(super) async fn append(conn: &mut PgConnection, events: &[NewEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENT_LOCK).execute(&mut *conn).await.db()?;
    for e in events {
        sqlx::query("INSERT INTO events (org_id, event_type, at, data) VALUES ($1, $2, $3, $4)")
            .bind(e.org_id.to_string())
            .bind(e.event_type)
            .bind(e.at)
            .bind(json_text(&e.data)?)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    changes::events_changed(conn).await
}

pub(super) async fn list_events(store: &PgStore, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
    let sql = format!("{EVENT_COLUMNS} WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
    sqlx::query_as::<_, RawEvent>(&sql)
        .bind(org.to_string())
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, MAX_EVENT_PAGE)))
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect()
}

pub(super) async fn event_feed(store: &PgStore, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
    let sql = format!("{EVENT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2");
    sqlx::query_as::<_, RawEvent>(&sql)
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, MAX_EVENT_PAGE)))
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect()
}

pub(super) async fn event_bounds(store: &PgStore) -> StoreResult<EventBounds> {
    let (pruned_through, max_seq): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT pruned_through FROM event_log WHERE id = 1), (SELECT COALESCE(MAX(seq), 0) FROM events)",
    )
    .fetch_one(&store.pool)
    .await
    .db()?;
    Ok(EventBounds { pruned_through, head: pruned_through.max(max_seq) })
}

pub(super) async fn prune_events(store: &PgStore, before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let through: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE at < $1")
        .bind(before_ms)
        .fetch_one(&mut *tx)
        .await
        .db()?;
    let Some(through) = through else {
        tx.rollback().await.db()?;
        return Ok(0);
    };
    let n =
        sqlx::query("DELETE FROM events WHERE at < $1").bind(before_ms).execute(&mut *tx).await.db()?.rows_affected();
    sqlx::query("UPDATE event_log SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 1")
        .bind(through)
        .execute(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()?;
    Ok(n)
}
