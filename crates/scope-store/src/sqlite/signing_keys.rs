//! Token-signing keys in the SQLite backend. They belong to the deployment,
//! not to an organization. `mod.rs` delegates the signing-key methods of
//! `Store` here.

use super::{DbResult, SqliteStore};
use crate::common::*;
use crate::model::*;
use crate::StoreResult;

pub(super) async fn list_signing_keys(store: &SqliteStore) -> StoreResult<Vec<SigningKeyRow>> {
    let sql = format!("{SIGNING_COLUMNS} ORDER BY created_at DESC, kid DESC");
    Ok(sqlx::query_as::<_, RawSigningKey>(&sql)
        .fetch_all(&store.read)
        .await
        .db()?
        .into_iter()
        .map(RawSigningKey::into_row)
        .collect())
}

pub(super) async fn insert_signing_key(store: &SqliteStore, row: &SigningKeyRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL")
        .bind(row.created_at)
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at, retired_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&row.kid)
    .bind(&row.public_key[..])
    .bind(&row.private_key[..])
    .bind(i64::from(row.encrypted))
    .bind(row.created_at)
    .bind(row.retired_at)
    .execute(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()
}

pub(super) async fn delete_signing_keys_retired_before(store: &SqliteStore, before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(n)
}

pub(super) async fn seal_signing_key(store: &SqliteStore, kid: &str, sealed: &[u8]) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("UPDATE signing_keys SET private_key = ?1, encrypted = 1 WHERE kid = ?2 AND encrypted = 0")
        .bind(sealed)
        .bind(kid)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(n > 0)
}
