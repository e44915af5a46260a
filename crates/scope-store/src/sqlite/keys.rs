//! API keys in the SQLite backend: keys, their per-day usage counters, the
//! gate sequence the in-memory revocation views poll, and the bulk key
//! import. `mod.rs` delegates the key methods of `Store` here.
//!
//! Every write that revokes a key or gives it an expiry (also at creation)
//! raises its `change_seq` above all others, so `key_gate_changes` reads an
//! index instead of scanning the table.

use scope_domain::{KeyId, OrgId};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::{insert_audit, DbResult, SqliteStore, IMPORT_BATCH_ROWS};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

/// The next value of the key gate sequence.
const NEXT_CHANGE_SEQ: &str = "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM api_keys)";

// ---- statements shared by several methods --------------------------------------------

/// Inserts a key; a key that is born with an expiry (or revoked) gets the next
/// gate sequence number so the revocation views pick it up.
pub(super) async fn insert_key(conn: &mut SqliteConnection, k: &ApiKeyRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO api_keys (key_id, org_id, name, environment, role, secret_digest, created_at, created_by, \
         expires_at, last_used_at, revoked_at, revoked_by, rotated_from, change_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         CASE WHEN ?9 IS NULL AND ?11 IS NULL THEN 0 ELSE {NEXT_CHANGE_SEQ} END)"
    );
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

async fn fetch_key(conn: &mut SqliteConnection, org: OrgId, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("{KEY_COLUMNS} WHERE org_id = ?1 AND key_id = ?2");
    sqlx::query_as::<_, RawKey>(&sql)
        .bind(org.to_string())
        .bind(key.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawKey::into_row)
        .transpose()
}

// ---- keys ------------------------------------------------------------------------------

pub(super) async fn insert_api_key(store: &SqliteStore, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    insert_key(&mut tx, key).await?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn get_api_key(store: &SqliteStore, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow> {
    let mut conn = store.read.acquire().await.db()?;
    fetch_key(&mut conn, org, key).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn find_api_key(store: &SqliteStore, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("{KEY_COLUMNS} WHERE key_id = ?1");
    sqlx::query_as::<_, RawKey>(&sql)
        .bind(key.to_string())
        .fetch_optional(&store.read)
        .await
        .db()?
        .map(RawKey::into_row)
        .transpose()
}

pub(super) async fn list_api_keys(
    store: &SqliteStore,
    org: OrgId,
    query: &KeyListQuery,
) -> StoreResult<Vec<ApiKeyRow>> {
    let cursor = id_cursor::<KeyId>(&query.page.cursor)?;
    let mut qb = QueryBuilder::<Sqlite>::new(KEY_COLUMNS);
    qb.push(" WHERE org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND key_id < ").push_bind(c);
    }
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
            qb.push(" AND revoked_at IS NULL AND expires_at <= ").push_bind(query.now_ms);
        }
    }
    qb.push(" ORDER BY key_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
    qb.build_query_as::<RawKey>().fetch_all(&store.read).await.db()?.into_iter().map(RawKey::into_row).collect()
}

pub(super) async fn revoke_api_key(
    store: &SqliteStore,
    org: OrgId,
    key: KeyId,
    by: &str,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<ApiKeyRow> {
    let mut tx = store.begin().await?;
    let sql = format!(
        "UPDATE api_keys SET revoked_at = ?1, revoked_by = ?2, change_seq = {NEXT_CHANGE_SEQ} \
         WHERE org_id = ?3 AND key_id = ?4 AND revoked_at IS NULL"
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
        // Already revoked: nothing changes, nothing is audited.
        tx.rollback().await.db()?;
        return Ok(row);
    }
    insert_audit(&mut tx, audit).await?;
    super::events::append(&mut tx, &[NewEvent::key_revoked(org, key, now_ms)]).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn rotate_api_key(
    store: &SqliteStore,
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
    let current = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
    if current.revoked_at.is_some() {
        return Err(StoreError::Conflict("the API key is revoked".into()));
    }
    insert_key(&mut tx, successor).await?;
    let expires_at = current.expires_at.map_or(old_expires_at, |e| e.min(old_expires_at));
    let sql = format!(
        "UPDATE api_keys SET expires_at = ?1, change_seq = {NEXT_CHANGE_SEQ} WHERE org_id = ?2 AND key_id = ?3"
    );
    sqlx::query(&sql).bind(expires_at).bind(org.to_string()).bind(old.to_string()).execute(&mut *tx).await.db()?;
    insert_audit(&mut tx, audit).await?;
    let row = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn record_key_usage(store: &SqliteStore, usage: &[KeyUsageDelta]) -> StoreResult<()> {
    if usage.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    for u in usage {
        let key = u.key_id.to_string();
        let count = i64::try_from(u.count).unwrap_or(i64::MAX);
        // Unknown keys are skipped (the key may have been deleted with its org).
        sqlx::query(
            "INSERT INTO api_key_usage (key_id, day, count) \
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM api_keys WHERE key_id = ?1) \
             ON CONFLICT (key_id, day) DO UPDATE SET count = count + excluded.count",
        )
        .bind(&key)
        .bind(&u.day)
        .bind(count)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?1) WHERE key_id = ?2")
            .bind(u.last_used_at)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .db()?;
    }
    tx.commit().await.db()
}

pub(super) async fn key_usage(
    store: &SqliteStore,
    org: OrgId,
    key: KeyId,
    since_day: &str,
) -> StoreResult<Vec<UsageDay>> {
    let mut conn = store.read.acquire().await.db()?;
    let exists: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE org_id = ?1 AND key_id = ?2)")
        .bind(org.to_string())
        .bind(key.to_string())
        .fetch_one(&mut *conn)
        .await
        .db()?;
    if exists == 0 {
        return Err(StoreError::NotFound);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT u.day, u.count FROM api_key_usage u JOIN api_keys k ON k.key_id = u.key_id \
         WHERE k.org_id = ?1 AND u.key_id = ?2 AND u.day >= ?3 ORDER BY u.day ASC",
    )
    .bind(org.to_string())
    .bind(key.to_string())
    .bind(since_day)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(rows.into_iter().map(|(day, count)| UsageDay { day, count: u64::try_from(count).unwrap_or(0) }).collect())
}

pub(super) async fn prune_key_usage(store: &SqliteStore, before_day: &str) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM api_key_usage WHERE day < ?1")
        .bind(before_day)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(n)
}

pub(super) async fn key_gate_changes(store: &SqliteStore, after_seq: i64) -> StoreResult<Vec<KeyGateRow>> {
    let rows: Vec<RawGate> = if after_seq <= 0 {
        // Every key that is revoked or has an expiry carries a change_seq
        // above 0 (every writer assigns one), so the index on change_seq
        // finds them without scanning the table: this call runs on each
        // poll of a server that has not yet seen any gated key, and a
        // full scan of a million keys there cost most of a core.
        sqlx::query_as(
            "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
             WHERE change_seq > 0 AND (revoked_at IS NOT NULL OR expires_at IS NOT NULL) ORDER BY change_seq",
        )
        .fetch_all(&store.read)
        .await
        .db()?
    } else {
        sqlx::query_as(
            "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
             WHERE change_seq > ?1 ORDER BY change_seq",
        )
        .bind(after_seq)
        .fetch_all(&store.read)
        .await
        .db()?
    };
    rows.into_iter().map(RawGate::into_row).collect()
}

pub(super) async fn import_api_keys(store: &SqliteStore, keys: &[ApiKeyRow]) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    insert_keys(&mut tx, keys).await?;
    tx.commit().await.db()
}

/// Inserts many keys as given, in multi-row batches, inside the caller's
/// transaction (bulk import, `Store::import`). Same gate rule as
/// [`insert_key`]: each key born revoked or with an expiry gets the next
/// sequence number, in the order given, so the revocation views pick it up.
pub(super) async fn insert_keys(conn: &mut SqliteConnection, keys: &[ApiKeyRow]) -> StoreResult<()> {
    let mut seq: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(change_seq), 0) FROM api_keys").fetch_one(&mut *conn).await.db()?;
    for chunk in keys.chunks(IMPORT_BATCH_ROWS) {
        let mut rows = Vec::with_capacity(chunk.len());
        for k in chunk {
            let change_seq = if k.expires_at.is_none() && k.revoked_at.is_none() {
                0
            } else {
                seq += 1;
                seq
            };
            rows.push((k, change_seq));
        }
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO api_keys (key_id, org_id, name, environment, role, secret_digest, created_at, \
             created_by, expires_at, last_used_at, revoked_at, revoked_by, rotated_from, change_seq) ",
        );
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
