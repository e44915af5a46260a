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
use scope_store::AuditQuery;

/// Alive. The body is a constant: load balancers poll this route, so it
/// builds no JSON value per request.
pub async fn healthz() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"))],
        r#"{"status":"ok"}"#,
    )
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
    let (principal_type, principal_id, email) = match p.actor {
        Actor::Key(k) => ("api_key", k.to_string(), None),
        Actor::User(u) => ("user", u.to_string(), app.store.get_user(p.org, u).await.ok().map(|u| u.email)),
        Actor::System => ("system", "system".to_owned(), None),
    };
    Ok(Json(json!({
        "org_id": p.org.to_string(),
        "org_name": org.name,
        "principal_type": principal_type,
        "principal_id": principal_id,
        "role": p.role,
        "environment": p.environment,
        "email": email,
    })))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
}

impl AuditParams {
    /// Empty values mean "no filter" (what an empty form field sends).
    pub fn into_query(self) -> Result<AuditQuery, AppError> {
        let opt = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let time = |field: &str, v: Option<String>| -> Result<Option<i64>, AppError> {
            opt(v).map(|s| super::api_keys::parse_time(field, &s)).transpose()
        };
        Ok(AuditQuery {
            page: page(self.limit, opt(self.cursor))?,
            actor: opt(self.actor),
            action: opt(self.action),
            target: opt(self.target),
            since_ms: time("since", self.since)?,
            until_ms: time("until", self.until)?,
        })
    }
}

/// `GET /api/v1/audit-events?actor=&action=&target=&since=&until=` (admin).
pub async fn audit_events(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> Result<impl IntoResponse, AppError> {
    let pg = audit::list(&app, &p, q.into_query()?).await?;
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
