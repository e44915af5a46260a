//! API keys in the PostgreSQL backend: keys, their per-day usage counters,
//! the gate sequence the in-memory revocation views poll, and the bulk key
//! import.
//!
//! Every write that revokes a key or gives it an expiry (also at creation)
//! raises its `change_seq` above all others, so `key_gate_changes` reads an
//! index instead of scanning the table. With several writers that is not
//! enough: a poller that has seen number n asks for `> n`, so a number must
//! never become visible after a higher one. Each such write therefore first
//! takes the transaction-scoped advisory lock [`GATE_LOCK`], then computes
//! `MAX(change_seq) + 1` in a later statement (whose snapshot sees every
//! earlier holder's commit): numbers are assigned and committed in one
//! order.

use std::collections::BTreeMap;

use scope_domain::{KeyId, OrgId};
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::{audit::insert_audit, batch_rows, changes, DbResult, PgStore, GATE_LOCK};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

/// The next value of the key gate sequence (under [`GATE_LOCK`]).
const NEXT_CHANGE_SEQ: &str = "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM api_keys)";

const INSERT_KEY_COLUMNS: &str = "INSERT INTO api_keys (key_id, org_id, name, environment, role, secret_digest, \
     created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by, rotated_from, change_seq) ";

// ---- statements shared by several methods --------------------------------------------

/// Takes the gate lock until the end of the transaction; announces the
/// change on the feed (delivered at commit). Call before assigning a
/// `change_seq`.
pub(super) async fn lock_gates(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(GATE_LOCK).execute(&mut *conn).await.db()?;
    changes::gates_changed(conn).await
}

/// Whether a key is born with a gate (revoked or with an expiry).
fn gated(k: &ApiKeyRow) -> bool {
    k.expires_at.is_some() || k.revoked_at.is_some()
}

/// Inserts a key; a key that is born with an expiry (or revoked) gets the next
/// gate sequence number so the revocation views pick it up.
pub(super) async fn insert_key(conn: &mut PgConnection, k: &ApiKeyRow) -> StoreResult<()> {
    let change_seq = if gated(k) {
        lock_gates(conn).await?;
        NEXT_CHANGE_SEQ
    } else {
        "0"
    };
    let sql =
        format!("{INSERT_KEY_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {change_seq})");
    sqlx::query(&sql)
        .bind(k.key_id.to_string())
        .bind(k.org_id.to_string())
        .bind(&k.name)
        .bind(&k.environment)
        .bind(k.role.as_str())
        .bind(&k.secret_digest[..])
        .bind(k.created_at)
        .bind(&k.created_by)
        .bind(k.expires_at)
        .bind(k.last_used_at)
        .bind(k.revoked_at)
        .bind(&k.revoked_by)
        .bind(k.rotated_from.map(|id| id.to_string()))
        .execute(conn)
        .await
        .db()?;
    Ok(())
}

/// Inserts many keys with multi-row INSERTs; keys born with a gate get
/// consecutive sequence numbers above all others. For imports.
pub(super) async fn insert_keys(conn: &mut PgConnection, keys: &[ApiKeyRow]) -> StoreResult<()> {
    let mut seq: i64 = 0;
    if keys.iter().any(gated) {
        lock_gates(conn).await?;
        seq =
            sqlx::query_scalar("SELECT COALESCE(MAX(change_seq), 0) FROM api_keys").fetch_one(&mut *conn).await.db()?;
    }
    for chunk in keys.chunks(batch_rows(14)) {
        let mut rows = Vec::with_capacity(chunk.len());
        for k in chunk {
            let change_seq = if gated(k) {
                seq += 1;
                seq
            } else {
                0
            };
            rows.push((k, change_seq));
        }
        let mut qb = QueryBuilder::<Postgres>::new(INSERT_KEY_COLUMNS);
        qb.push_values(rows, |mut b, (k, change_seq)| {
            b.push_bind(k.key_id.to_string())
                .push_bind(k.org_id.to_string())
                .push_bind(k.name.as_str())
                .push_bind(k.environment.as_str())
                .push_bind(k.role.as_str())
                .push_bind(&k.secret_digest[..])
                .push_bind(k.created_at)
                .push_bind(k.created_by.as_str())
                .push_bind(k.expires_at)
                .push_bind(k.last_used_at)
                .push_bind(k.revoked_at)
                .push_bind(k.revoked_by.as_deref())
                .push_bind(k.rotated_from.map(|id| id.to_string()))
                .push_bind(change_seq);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn fetch_key(conn: &mut PgConnection, org: OrgId, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("{KEY_COLUMNS} WHERE org_id = $1 AND key_id = $2");
    sqlx::query_as::<_, RawKey>(&sql)
        .bind(org.to_string())
        .bind(key.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawKey::into_row)
        .transpose()
}

// ---- keys ---------------------------------------------------------------------------------

pub(super) async fn insert_api_key(store: &PgStore, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    insert_key(&mut tx, key).await?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn get_api_key(store: &PgStore, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow> {
    let mut conn = store.pool.acquire().await.db()?;
    fetch_key(&mut conn, org, key).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn find_api_key(store: &PgStore, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("{KEY_COLUMNS} WHERE key_id = $1");
    sqlx::query_as::<_, RawKey>(&sql)
        .bind(key.to_string())
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawKey::into_row)
        .transpose()
}

pub(super) async fn list_api_keys(store: &PgStore, org: OrgId, query: &KeyListQuery) -> StoreResult<Vec<ApiKeyRow>> {
    let cursor = id_cursor::<KeyId>(&query.page.cursor)?;
    let mut qb = QueryBuilder::<Postgres>::new(KEY_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND key_id < ").push_bind(c);
    }
    // The revoked and expired filters match the partial indexes
    // api_keys_org_revoked and api_keys_org_expiring.
    match query.status {
        None => {}
        Some(KeyStatus::Active) => {
            qb.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                .push_bind(query.now_ms)
                .push(")");
        }
        Some(KeyStatus::Revoked) => {
            qb.push(" AND revoked_at IS NOT NULL");
        }
        Some(KeyStatus::Expired) => {
            qb.push(" AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ").push_bind(query.now_ms);
        }
    }
    qb.push(" ORDER BY key_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawKey>().fetch_all(&store.pool).await.db()?.into_iter().map(RawKey::into_row).collect()
}

pub(super) async fn revoke_api_key(
    store: &PgStore,
    org: OrgId,
    key: KeyId,
    by: &str,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<ApiKeyRow> {
    let mut tx = store.begin().await?;
    lock_gates(&mut tx).await?;
    let sql = format!(
        "UPDATE api_keys SET revoked_at = $1, revoked_by = $2, change_seq = {NEXT_CHANGE_SEQ} \
         WHERE org_id = $3 AND key_id = $4 AND revoked_at IS NULL"
    );
    let changed = sqlx::query(&sql)
        .bind(now_ms)
        .bind(by)
        .bind(org.to_string())
        .bind(key.to_string())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    let row = fetch_key(&mut tx, org, key).await?.ok_or(StoreError::NotFound)?;
    if changed == 0 {
        // Already revoked: nothing changes, nothing is audited or announced.
        tx.rollback().await.db()?;
        return Ok(row);
    }
    insert_audit(&mut tx, audit).await?;
    super::events::append(&mut tx, &[NewEvent::key_revoked(org, key, now_ms)]).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn rotate_api_key(
    store: &PgStore,
    org: OrgId,
    old: KeyId,
    old_expires_at: i64,
    successor: &ApiKeyRow,
    audit: &AuditRow,
) -> StoreResult<ApiKeyRow> {
    if successor.org_id != org {
        return Err(StoreError::Internal("the successor key belongs to another organization".into()));
    }
    let mut tx = store.begin().await?;
    // Revocations and rotations of the same key are serialized by the gate
    // lock: the old key read below is the committed one.
    lock_gates(&mut tx).await?;
    let current = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
    if current.revoked_at.is_some() {
        return Err(StoreError::Conflict("the API key is revoked".into()));
    }
    insert_key(&mut tx, successor).await?;
    let expires_at = current.expires_at.map_or(old_expires_at, |e| e.min(old_expires_at));
    let sql = format!(
        "UPDATE api_keys SET expires_at = $1, change_seq = {NEXT_CHANGE_SEQ} WHERE org_id = $2 AND key_id = $3"
    );
    sqlx::query(&sql).bind(expires_at).bind(org.to_string()).bind(old.to_string()).execute(&mut *tx).await.db()?;
    insert_audit(&mut tx, audit).await?;
    let row = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await.db()?;
    Ok(row)
}

// ---- usage ---------------------------------------------------------------------------------

pub(super) async fn record_key_usage(store: &PgStore, usage: &[KeyUsageDelta]) -> StoreResult<()> {
    if usage.is_empty() {
        return Ok(());
    }
    // One row per (key, day) and one time per key — an upsert may not touch a
    // row twice — in key order, the order in which rows are locked below.
    let mut per_day: BTreeMap<(String, &str), i64> = BTreeMap::new();
    let mut last_used: BTreeMap<String, i64> = BTreeMap::new();
    for u in usage {
        let key = u.key_id.to_string();
        let count = i64::try_from(u.count).unwrap_or(i64::MAX);
        let total = per_day.entry((key.clone(), u.day.as_str())).or_insert(0);
        *total = total.saturating_add(count);
        let last = last_used.entry(key).or_insert(u.last_used_at);
        *last = (*last).max(u.last_used_at);
    }

    let mut tx = store.begin().await?;
    // Lock the keys first, in key order: flushes from several replicas over
    // the same keys then queue instead of deadlocking, and a key deleted
    // meanwhile is simply not returned (its usage is skipped).
    let wanted: Vec<String> = last_used.keys().cloned().collect();
    let present: Vec<String> =
        sqlx::query_scalar("SELECT key_id FROM api_keys WHERE key_id = ANY($1) ORDER BY key_id FOR NO KEY UPDATE")
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await
            .db()?;
    if present.is_empty() {
        tx.rollback().await.db()?;
        return Ok(());
    }
    let present: std::collections::BTreeSet<String> = present.into_iter().collect();

    let (mut keys, mut days, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for ((key, day), count) in &per_day {
        if present.contains(key) {
            keys.push(key.as_str());
            days.push(*day);
            counts.push(*count);
        }
    }
    sqlx::query(
        "INSERT INTO api_key_usage (key_id, day, count) \
         SELECT u.key_id, u.day, u.count FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(key_id, day, count) \
         ORDER BY u.key_id, u.day \
         ON CONFLICT (key_id, day) DO UPDATE SET count = api_key_usage.count + EXCLUDED.count",
    )
    .bind(&keys)
    .bind(&days)
    .bind(&counts)
    .execute(&mut *tx)
    .await
    .db()?;

    let (mut keys, mut times) = (Vec::new(), Vec::new());
    for (key, at) in &last_used {
        if present.contains(key) {
            keys.push(key.as_str());
            times.push(*at);
        }
    }
    // Never lowers it: flushes may arrive out of order.
    sqlx::query(
        "UPDATE api_keys AS k SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at) \
         FROM UNNEST($1::text[], $2::bigint[]) AS u(key_id, at) WHERE k.key_id = u.key_id",
    )
    .bind(&keys)
    .bind(&times)
    .execute(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()
}

pub(super) async fn key_usage(store: &PgStore, org: OrgId, key: KeyId, since_day: &str) -> StoreResult<Vec<UsageDay>> {
    let mut conn = store.pool.acquire().await.db()?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE org_id = $1 AND key_id = $2)")
        .bind(org.to_string())
        .bind(key.to_string())
        .fetch_one(&mut *conn)
        .await
        .db()?;
    if !exists {
        return Err(StoreError::NotFound);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT u.day, u.count FROM api_key_usage u JOIN api_keys k ON k.key_id = u.key_id \
         WHERE k.org_id = $1 AND u.key_id = $2 AND u.day >= $3 ORDER BY u.day ASC",
    )
    .bind(org.to_string())
    .bind(key.to_string())
    .bind(since_day)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(rows.into_iter().map(|(day, count)| UsageDay { day, count: u64::try_from(count).unwrap_or(0) }).collect())
}

pub(super) async fn prune_key_usage(store: &PgStore, before_day: &str) -> StoreResult<u64> {
    let n = sqlx::query("DELETE FROM api_key_usage WHERE day < $1")
        .bind(before_day)
        .execute(&store.pool)
        .await
        .db()?
        .rows_affected();
    Ok(n)
}

// ---- gates ---------------------------------------------------------------------------------

pub(super) async fn key_gate_changes(store: &PgStore, after_seq: i64) -> StoreResult<Vec<KeyGateRow>> {
    let rows: Vec<RawGate> = if after_seq <= 0 {
        // Every key that is revoked or has an expiry carries a change_seq
        // above 0 (every writer assigns one), so the index on change_seq
        // finds them without scanning the table: this call runs on each
        // poll of a server that has not yet seen any gated key.
        sqlx::query_as(
            "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
             WHERE change_seq > 0 AND (revoked_at IS NOT NULL OR expires_at IS NOT NULL) ORDER BY change_seq",
        )
        .fetch_all(&store.pool)
        .await
        .db()?
    } else {
        sqlx::query_as(
            "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
             WHERE change_seq > $1 ORDER BY change_seq",
        )
        .bind(after_seq)
        .fetch_all(&store.pool)
        .await
        .db()?
    };
    rows.into_iter().map(RawGate::into_row).collect()
}

// ---- bulk import -----------------------------------------------------------------------------

pub(super) async fn import_api_keys(store: &PgStore, keys: &[ApiKeyRow]) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    insert_keys(&mut tx, keys).await?;
    tx.commit().await.db()
}
