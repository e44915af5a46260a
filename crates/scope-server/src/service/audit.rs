//! Audit events: built here, written by the store in the same transaction as
//! the change they describe.

use scope_domain::{DomainError, Role};
use scope_store::{AuditQuery, AuditRow};

use super::{App, Page, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;

pub fn event(p: &Principal, action: &str, target: impl ToString, details: serde_json::Value) -> AuditRow {
    AuditRow {
        event_id: format!("evt_{}", scope_domain::ids::next_ulid()),
        org_id: p.org,
        actor: p.actor.id(),
        action: action.to_owned(),
        target: target.to_string(),
        at: now_ms(),
        details,
    }
}

/// The audit log, newest first, filtered (admins).
pub async fn list(app: &App, p: &Principal, query: AuditQuery) -> Result<Page<AuditRow>, AppError> {
    p.require(Role::Admin)?;
    for (name, v) in [("actor", &query.actor), ("action", &query.action), ("target", &query.target)] {
        if v.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(DomainError::bad_request(format!("{name} must be at most 200 characters")).into());
        }
    }
    let rows = app.store.list_audit(p.org, &query).await?;
    Ok(Page::from_rows(rows, &query.page, |r: &AuditRow| r.event_id.clone()))
}
