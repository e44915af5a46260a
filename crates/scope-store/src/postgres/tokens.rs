//! Revoked access tokens in the PostgreSQL backend (RFC 7009): one row per
//! revoked `jti` until the token would have expired. A revocation takes the
//! transaction-scoped advisory lock [`TOKEN_LOCK`] before its INSERT draws
//! the next `change_seq` from the identity, so numbers are drawn and
//! committed in one order and a poller asking for `> n` misses nothing; it
//! announces itself on the change feed (`tokens`), delivered at commit.

use super::{audit::insert_audit, changes, DbResult, PgStore, TOKEN_LOCK};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

pub(super) async fn revoke_token(store: &PgStore, t: &RevokedTokenRow, audit: &AuditRow) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(TOKEN_LOCK).execute(&mut *tx).await.db()?;
    let inserted = sqlx::query(
        "INSERT INTO revoked_tokens (jti, org_id, key_id, expires_at, revoked_at, revoked_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
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
        // Already revoked: nothing changes, nothing is audited or announced.
        tx.rollback().await.db()?;
        return Ok(false);
    }
    insert_audit(&mut tx, audit).await?;
    changes::tokens_changed(&mut tx).await?;
    tx.commit().await.db()?;
    Ok(true)
}

pub(super) async fn revoked_token_changes(
    store: &PgStore,
    after_seq: i64,
    now_ms: i64,
) -> StoreResult<Vec<RevokedTokenRow>> {
    let rows: Vec<RawRevokedToken> = if after_seq <= 0 {
        let sql = format!("{REVOKED_TOKEN_COLUMNS} WHERE expires_at > $1 ORDER BY change_seq");
        sqlx::query_as(&sql).bind(now_ms).fetch_all(&store.pool).await.db()?
    } else {
        let sql = format!("{REVOKED_TOKEN_COLUMNS} WHERE change_seq > $1 ORDER BY change_seq");
        sqlx::query_as(&sql).bind(after_seq).fetch_all(&store.pool).await.db()?
    };
    rows.into_iter().map(RawRevokedToken::into_row).collect()
}

pub(super) async fn prune_revoked_tokens(store: &PgStore, before_ms: i64) -> StoreResult<u64> {
    let n = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
        .bind(before_ms)
        .execute(&store.pool)
        .await
        .db()?
        .rows_affected();
    Ok(n)
}
