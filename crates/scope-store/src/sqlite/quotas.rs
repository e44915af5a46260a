//! Counts behind the per-organization quotas in the SQLite backend. `mod.rs`
//! delegates the quota methods of `Store` here.

use scope_domain::OrgId;

use super::{DbResult, SqliteStore};
use crate::StoreResult;

pub(super) async fn count_prompts(store: &SqliteStore, org: OrgId) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prompts WHERE org_id = ?1")
        .bind(org.to_string())
        .fetch_one(&store.read)
        .await
        .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) async fn count_active_api_keys(store: &SqliteStore, org: OrgId, now_ms: i64) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys \
         WHERE org_id = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
    )
    .bind(org.to_string())
    .bind(now_ms)
    .fetch_one(&store.read)
    .await
    .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}
