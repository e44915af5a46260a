//! Health, identity, audit log and the JSON 404/405.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scope_domain::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use super::error::error_response;
use super::extract::ApiQuery;
use crate::error::AppError;
use crate::service::{audit, page, Actor, App, Principal};
use crate::views::{AuditView, ListView};

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let mut r = error_response(ErrorCode::Internal, "database unavailable");
            *r.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

/// `GET /api/v1/me`.
pub async fn me(State(app): State<Arc<App>>, p: Principal) -> Result<impl IntoResponse, AppError> {
    let org = app.store.get_org(p.org).await?;
    let (principal_type, principal_id) = match p.actor {
        Actor::Key(k) => ("api_key", k.to_string()),
        Actor::User(u) => ("user", u.to_string()),
        Actor::System => ("system", "system".to_owned()),
    };
    Ok(Json(json!({
        "org_id": p.org.to_string(),
        "org_name": org.name,
        "principal_type": principal_type,
        "principal_id": principal_id,
        "role": p.role,
        "environment": p.environment,
    })))
}

#[derive(Deserialize)]
pub struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/audit-events` (admin).
pub async fn audit_events(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<impl IntoResponse, AppError> {
    let pg = audit::list(&app, &p, page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(AuditView::from).collect(), next_cursor: pg.next_cursor }))
}

pub async fn not_found() -> Response {
    error_response(ErrorCode::NotFound, "no such route")
}

pub async fn method_not_allowed() -> Response {
    let mut r = error_response(ErrorCode::BadRequest, "method not allowed on this route");
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}
