//! Audit events: built here, written by the store in the same transaction as
//! the change they describe.

use scope_domain::Role;
use scope_store::AuditRow;

use super::{App, Page, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;

pub fn event(p: &Principal, action: &str, target: impl ToString, details: serde_json::Value) -> AuditRow {
    AuditRow {
        event_id: format!("evt_{}", ulid::Ulid::new()),
        org_id: p.org,
        actor: p.actor.id(),
        action: action.to_owned(),
        target: target.to_string(),
        at: now_ms(),
        details,
    }
}

/// The audit log, newest first (admins).
pub async fn list(app: &App, p: &Principal, page: scope_store::PageQuery) -> Result<Page<AuditRow>, AppError> {
    p.require(Role::Admin)?;
    let rows = app.store.list_audit(p.org, &page).await?;
    Ok(Page::from_rows(rows, &page, |r: &AuditRow| r.event_id.clone()))
}
