//! Audiences an organization allows in its tokens' `aud` (RFC 8707), in the
//! PostgreSQL backend.

use scope_domain::OrgId;

use super::{audit::insert_audit, DbResult, PgStore};
use crate::model::*;
use crate::StoreResult;

pub(super) async fn list_audiences(store: &PgStore, org: OrgId) -> StoreResult<Vec<String>> {
    sqlx::query_scalar("SELECT audience FROM org_audiences WHERE org_id = $1 ORDER BY audience")
        .bind(org.to_string())
        .fetch_all(&store.pool)
        .await
        .db()
}

/// Replaces the set: values kept keep their `created_at`/`created_by`, new
/// ones get the audit row's time and actor.
pub(super) async fn set_audiences(
    store: &PgStore,
    org: OrgId,
    audiences: &[String],
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // Two replicas replacing the set at once: the organization row orders them.
    sqlx::query("SELECT 1 FROM orgs WHERE org_id = $1 FOR UPDATE")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query("DELETE FROM org_audiences WHERE org_id = $1 AND NOT (audience = ANY($2))")
        .bind(org.to_string())
        .bind(audiences)
        .execute(&mut *tx)
        .await
        .db()?;
    for audience in audiences {
        sqlx::query(
            "INSERT INTO org_audiences (org_id, audience, created_at, created_by) VALUES ($1, $2, $3, $4) \
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
