//! `/api/v1/prompts/{name}/versions/...` and promotion history handlers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scope_store::DraftPatch;
use serde::Deserialize;

use super::conditional::IfNoneMatch;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::service::prompts::{self, NewVersionReq};
use crate::service::{page, App, Principal};
use crate::views::{ListView, PromotionView, VersionView};

/// SDK-facing: one version, with a strong `ETag` (`304` to a matching
/// `If-None-Match`).
pub async fn get(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, version_id)): ApiPath<(String, String)>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    let v = prompts::version(&app, &p, &name, &version_id).await?;
    let body = serde_json::to_vec(&VersionView::from(&v)).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(inm.respond_json(body.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    include_archived: Option<bool>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<impl IntoResponse, AppError> {
    let pg =
        prompts::list_versions(&app, &p, &name, q.include_archived.unwrap_or(false), page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(VersionView::from).collect(), next_cursor: pg.next_cursor }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VersionCreate)]
pub struct CreateBody {
    content: Option<String>,
    copy_from: Option<String>,
    prompt_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

pub async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, AppError> {
    let req =
        NewVersionReq { content: b.content, copy_from: b.copy_from, prompt_type: b.prompt_type, metadata: b.metadata };
    let v = prompts::create_version(&app, &p, &name, req).await?;
    Ok((StatusCode::CREATED, Json(VersionView::from(&v))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VersionPatch)]
pub struct PatchBody {
    content: Option<String>,
    prompt_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

pub async fn update(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, version_id)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<impl IntoResponse, AppError> {
    let patch = DraftPatch { content: b.content, prompt_type: b.prompt_type, metadata: b.metadata };
    Ok(Json(VersionView::from(&prompts::update_draft(&app, &p, &name, &version_id, patch).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Promote)]
pub struct PromoteBody {
    notes: Option<String>,
    archive_previous: Option<bool>,
}

pub async fn promote(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, version_id)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<PromoteBody>,
) -> Result<impl IntoResponse, AppError> {
    let v = prompts::promote(&app, &p, &name, &version_id, b.notes, b.archive_previous).await?;
    Ok(Json(VersionView::from(&v)))
}

pub async fn archive(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, version_id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(VersionView::from(&prompts::set_archived(&app, &p, &name, &version_id, true).await?)))
}

pub async fn unarchive(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, version_id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(VersionView::from(&prompts::set_archived(&app, &p, &name, &version_id, false).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn promotions(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<impl IntoResponse, AppError> {
    let pg = prompts::promotions(&app, &p, &name, page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(PromotionView::from).collect(), next_cursor: pg.next_cursor }))
}
