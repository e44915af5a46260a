//! Audiences an organization allows in its tokens' `aud` (RFC 8707), in the
//! SQLite backend.

use scope_domain::OrgId;

use super::{insert_audit, DbResult, SqliteStore};
use crate::model::*;
use crate::StoreResult;

pub(super) async fn list_audiences(store: &SqliteStore, org: OrgId) -> StoreResult<Vec<String>> {
    sqlx::query_scalar("SELECT audience FROM org_audiences WHERE org_id = ?1 ORDER BY audience")
        .bind(org.to_string())
        .fetch_all(&store.read)
        .await
        .db()
}

/// Replaces the set: values kept keep their `created_at`/`created_by`, new
/// ones get the audit row's time and actor.
pub(super) async fn set_audiences(
    store: &SqliteStore,
    org: OrgId,
    audiences: &[String],
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let current: Vec<String> = sqlx::query_scalar("SELECT audience FROM org_audiences WHERE org_id = ?1")
        .bind(org.to_string())
        .fetch_all(&mut *tx)
        .await
        .db()?;
    for gone in current.iter().filter(|a| !audiences.contains(a)) {
        sqlx::query("DELETE FROM org_audiences WHERE org_id = ?1 AND audience = ?2")
            .bind(org.to_string())
            .bind(gone)
            .execute(&mut *tx)
            .await
            .db()?;
    }
    for audience in audiences {
        sqlx::query(
            "INSERT INTO org_audiences (org_id, audience, created_at, created_by) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(org.to_string())
        .bind(audience)
        .bind(audit.at)
        .bind(&audit.actor)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}
