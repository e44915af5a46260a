//! `/api/v1/prompts/{name}/labels…`, the label history, the diff of two
//! versions, and `/api/v1/settings/protected-labels` (SPEC §9).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scope_domain::DomainError;
use serde::Deserialize;

use super::conditional::IfNoneMatch;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::service::labels::{self, MoveLabel, Target};
use crate::service::prompts::{self, Ask};
use crate::service::{diff, page, App, Principal};
use crate::views::{
    DiffSideView, DiffView, LabelMoveView, LabelView, LabelsView, ListView, ProtectedLabelsView, VersionView,
};

pub async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    let l = labels::list(&app, &p, &name).await?;
    Ok(Json(LabelsView { data: l.labels.iter().map(|x| LabelView::new(x, &l.protected)).collect() }))
}

/// SDK-facing: the version a label points at, conditional like
/// `/production` (no environment substitution: the label asked is served).
pub async fn get(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, label)): ApiPath<(String, String)>,
    inm: IfNoneMatch,
) -> Result<Response, AppError> {
    Ok(inm.respond(prompts::serve(&app, &p, &name, Ask::Label(&label)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LabelMove)]
pub struct PutBody {
    version_id: Option<String>,
    /// Instead of `version_id`: the version number.
    version: Option<i64>,
    notes: Option<String>,
    /// `production` only, as promote's (default true).
    archive_previous: Option<bool>,
}

/// Points the label at a version (creating the label); for `production`,
/// a promotion. Answers the version it now points at.
pub async fn put(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, label)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<PutBody>,
) -> Result<impl IntoResponse, AppError> {
    let target = match (b.version_id, b.version) {
        (Some(id), None) => Target::Id(id),
        (None, Some(n)) => Target::Number(n),
        _ => return Err(DomainError::bad_request("give exactly one of version_id and version").into()),
    };
    let m = MoveLabel { target, notes: b.notes, archive_previous: b.archive_previous };
    Ok(Json(VersionView::from(&labels::set(&app, &p, &name, &label, m).await?)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, label)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    labels::remove(&app, &p, &name, &label).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LabelRollback)]
pub struct RollbackBody {
    notes: Option<String>,
}

/// Back to where the label pointed before its last move; answers the
/// version it now points at.
pub async fn rollback(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath((name, label)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<RollbackBody>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(VersionView::from(&labels::rollback(&app, &p, &name, &label, b.notes).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    label: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn history(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> Result<impl IntoResponse, AppError> {
    let label = q.label.filter(|l| !l.is_empty());
    let pg = labels::history(&app, &p, &name, label, page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(LabelMoveView::from).collect(), next_cursor: pg.next_cursor }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    from: String,
    to: String,
}

/// `?from=&to=`: version ids, numbers or labels.
pub async fn diff(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffParams>,
) -> Result<impl IntoResponse, AppError> {
    let (a, b) = labels::diff_versions(&app, &p, &name, &q.from, &q.to).await?;
    Ok(Json(DiffView { from: DiffSideView::from(&a), to: DiffSideView::from(&b), diff: diff::compute(&a, &b) }))
}

pub async fn get_protected(State(app): State<Arc<App>>, p: Principal) -> Result<impl IntoResponse, AppError> {
    Ok(Json(ProtectedLabelsView { labels: labels::protected(&app, &p).await? }))
}

pub async fn put_protected(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiJson(b): ApiJson<ProtectedLabelsView>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(ProtectedLabelsView { labels: labels::set_protected(&app, &p, &b.labels).await? }))
}
