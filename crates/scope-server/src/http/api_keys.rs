//! `/api/v1/api-keys` handlers: extract, call the service, shape the answer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use scope_domain::{DomainError, Role};
use scope_store::KeyStatus;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::users::no_store;
use crate::error::AppError;
use crate::runtime::now_ms;
use crate::service::api_keys::{self, CreatedKey, NewKey};
use crate::service::{page, App, Principal};
use crate::views::{ApiKeyView, ListView, UsageDayView};

pub fn parse_time(field: &str, s: &str) -> Result<i64, AppError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|_| DomainError::bad_request(format!("{field} must be an RFC 3339 timestamp")).into())
}

fn created_view(c: &CreatedKey) -> ApiKeyView {
    let mut v = ApiKeyView::new(&c.key, now_ms());
    v.secret = Some(c.secret.expose_secret().to_owned());
    v
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyCreate)]
pub struct CreateBody {
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    environment: Option<String>,
    role: Option<Role>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

pub async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, AppError> {
    let expires_at = b.expires_at.as_deref().map(|s| parse_time("expires_at", s)).transpose()?;
    let req = NewKey { name: b.name, environment: b.environment, role: b.role, expires_at };
    let created = api_keys::create(&app, &p, req).await?;
    Ok(no_store((StatusCode::CREATED, Json(created_view(&created))).into_response()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(schema_with = crate::http::openapi::key_status_filter)]
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<impl IntoResponse, AppError> {
    let status = match q.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(
            KeyStatus::parse(s).ok_or_else(|| DomainError::bad_request("status must be active, revoked or expired"))?,
        ),
    };
    let pg = api_keys::list(&app, &p, status, page(q.limit, q.cursor)?).await?;
    let now = now_ms();
    Ok(Json(ListView { data: pg.data.iter().map(|k| ApiKeyView::new(k, now)).collect(), next_cursor: pg.next_cursor }))
}

pub async fn get(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(key_id): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    let k = api_keys::get(&app, &p, &key_id).await?;
    Ok(Json(ApiKeyView::new(&k, now_ms())))
}

pub async fn revoke(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(key_id): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    let k = api_keys::revoke(&app, &p, &key_id).await?;
    Ok(Json(ApiKeyView::new(&k, now_ms())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyRotate)]
pub struct RotateBody {
    grace_seconds: Option<u64>,
}

pub async fn rotate(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(key_id): ApiPath<String>,
    ApiJson(b): ApiJson<RotateBody>,
) -> Result<impl IntoResponse, AppError> {
    let (old, created) = api_keys::rotate(&app, &p, &key_id, b.grace_seconds).await?;
    let mut body = serde_json::to_value(created_view(&created)).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "previous".into(),
            serde_json::to_value(ApiKeyView::new(&old, now_ms())).map_err(|e| AppError::Internal(e.to_string()))?,
        );
    }
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    days: Option<u32>,
}

pub async fn usage(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(key_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<impl IntoResponse, AppError> {
    let (key_id, days) = api_keys::usage(&app, &p, &key_id, q.days.unwrap_or(30)).await?;
    let total: u64 = days.iter().map(|d| d.count).sum();
    let days: Vec<UsageDayView> = days.iter().map(UsageDayView::from).collect();
    Ok(Json(json!({ "key_id": key_id.to_string(), "days": days, "total": total })))
}
