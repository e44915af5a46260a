//! Token-signing keys in the PostgreSQL backend. They belong to the
//! deployment, not to an organization. Every change announces
//! `signing_keys` on the change feed.

use super::{changes, DbResult, PgStore, SIGNING_LOCK};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

pub(super) async fn list_signing_keys(store: &PgStore) -> StoreResult<Vec<SigningKeyRow>> {
    let sql = format!("{SIGNING_COLUMNS} ORDER BY created_at DESC, kid DESC");
    Ok(sqlx::query_as::<_, RawSigningKey>(&sql)
        .fetch_all(&store.pool)
        .await
        .db()?
        .into_iter()
        .map(RawSigningKey::into_row)
        .collect())
}

pub(super) async fn insert_signing_key(store: &PgStore, row: &SigningKeyRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // Two replicas rotating at once: the second waits here, then its UPDATE
    // (a new snapshot) retires the key the first one inserted, so exactly
    // one key stays active.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNING_LOCK).execute(&mut *tx).await.db()?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(row.created_at)
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.kid)
    .bind(&row.public_key[..])
    .bind(&row.private_key[..])
    .bind(row.encrypted)
    .bind(row.created_at)
    .bind(row.retired_at)
    .execute(&mut *tx)
    .await
    .db()?;
    changes::signing_keys_changed(&mut tx).await?;
    tx.commit().await.db()
}

pub(super) async fn delete_signing_keys_retired_before(store: &PgStore, before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    if n > 0 {
        changes::signing_keys_changed(&mut tx).await?;
    }
    tx.commit().await.db()?;
    Ok(n)
}

pub(super) async fn seal_signing_key(store: &PgStore, kid: &str, sealed: &[u8]) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNING_LOCK).execute(&mut *tx).await.db()?;
    let n = sqlx::query("UPDATE signing_keys SET private_key = $1, encrypted = TRUE WHERE kid = $2 AND NOT encrypted")
        .bind(sealed)
        .bind(kid)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    if n > 0 {
        changes::signing_keys_changed(&mut tx).await?;
    }
    tx.commit().await.db()?;
    Ok(n > 0)
}
