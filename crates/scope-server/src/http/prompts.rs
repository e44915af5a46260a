//! `/api/v1/prompts` handlers for prompts themselves, and the SDK-facing
//! version reads (conditional: `ETag` / `If-None-Match`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scope_store::PromptPatch;
use serde::Deserialize;

use super::conditional::IfNoneMatch;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::service::prompts::{self, Ask, NewPrompt};
use crate::service::{page, App, Principal};
use crate::views::{ListView, PromptView, VersionView};

// ---- SDK-facing ---------------------------------------------------------------------

/// `/production`: for a key bound to an environment, that environment's
/// label where the prompt has it (`X-Scope-Label` says which).
pub async fn production(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    Ok(inm.respond(prompts::serve(&app, &p, &name, Ask::Production).await?))
}

pub async fn latest(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    Ok(inm.respond(prompts::serve(&app, &p, &name, Ask::Latest).await?))
}

// ---- management ---------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PromptCreate)]
pub struct CreateBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,255}$")]
    name: String,
    content: String,
    description: Option<String>,
    tags: Option<Vec<String>>,
    prompt_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

pub async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, AppError> {
    let req = NewPrompt {
        name: b.name,
        content: b.content,
        description: b.description,
        tags: b.tags,
        prompt_type: b.prompt_type,
        metadata: b.metadata,
    };
    let (summary, v1) = prompts::create(&app, &p, req).await?;
    let mut view = PromptView::from(&summary);
    view.version = Some(VersionView::from(&v1));
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    tag: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<impl IntoResponse, AppError> {
    let tag = q.tag.filter(|t| !t.is_empty());
    let search = q.q.filter(|t| !t.is_empty());
    let pg = prompts::list(&app, &p, tag, search, page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(PromptView::from).collect(), next_cursor: pg.next_cursor }))
}

pub async fn get(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(PromptView::from(&prompts::get(&app, &p, &name).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PromptPatch)]
pub struct PatchBody {
    description: Option<String>,
    tags: Option<Vec<String>>,
}

pub async fn update(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<impl IntoResponse, AppError> {
    let patch = PromptPatch { description: b.description, tags: b.tags };
    Ok(Json(PromptView::from(&prompts::update(&app, &p, &name, patch).await?)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    prompts::delete(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
