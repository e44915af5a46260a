//! Revoked access tokens in the SQLite backend (RFC 7009): one row per
//! revoked `jti` until the token would have expired. The single writer
//! commits in `change_seq` order, and AUTOINCREMENT never reuses a number
//! after pruning, so a poller asking for `> n` misses nothing.

use super::{insert_audit, DbResult, SqliteStore};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

pub(super) async fn revoke_token(store: &SqliteStore, t: &RevokedTokenRow, audit: &AuditRow) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO revoked_tokens (jti, org_id, key_id, expires_at, revoked_at, revoked_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&t.jti)
    .bind(t.org_id.to_string())
    .bind(t.key_id.to_string())
    .bind(t.expires_at)
    .bind(t.revoked_at)
    .bind(&t.revoked_by)
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    if inserted == 0 {
        // Already revoked: nothing changes, nothing is audited.
        tx.rollback().await.db()?;
        return Ok(false);
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()?;
    Ok(true)
}

pub(super) async fn revoked_token_changes(
    store: &SqliteStore,
    after_seq: i64,
    now_ms: i64,
) -> StoreResult<Vec<RevokedTokenRow>> {
    let rows: Vec<RawRevokedToken> = if after_seq <= 0 {
        let sql = format!("{REVOKED_TOKEN_COLUMNS} WHERE expires_at > ?1 ORDER BY change_seq");
        sqlx::query_as(&sql).bind(now_ms).fetch_all(&store.read).await.db()?
    } else {
        let sql = format!("{REVOKED_TOKEN_COLUMNS} WHERE change_seq > ?1 ORDER BY change_seq");
        sqlx::query_as(&sql).bind(after_seq).fetch_all(&store.read).await.db()?
    };
    rows.into_iter().map(RawRevokedToken::into_row).collect()
}

pub(super) async fn prune_revoked_tokens(store: &SqliteStore, before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(n)
}
