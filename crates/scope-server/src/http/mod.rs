//! HTTP: routes, middleware, extractors and the error mapping. Handlers are
//! thin: extract, call `service`, shape the answer with `views`.

pub mod api_keys;
pub mod auth;
pub mod conditional;
pub mod error;
pub mod events;
pub mod extract;
pub mod labels;
pub mod meta;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod prompts;
pub mod users;
pub mod versions;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use scope_domain::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::service::App;
use extract::RequestId;
        .route("/openapi.json", get(openapi::serve))

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/me", get(meta::me))
        .route("/prompts", get(prompts::list).post(prompts::create))
        .route("/prompts/{name}", get(prompts::get).patch(prompts::update).delete(prompts::delete))
        .route("/prompts/{name}/production", get(prompts::production))
        .route("/prompts/{name}/latest", get(prompts::latest))
        .route("/prompts/{name}/versions", get(versions::list).post(versions::create))
        .route("/prompts/{name}/versions/{version_id}", get(versions::get).patch(versions::update))
        .route("/prompts/{name}/versions/{version_id}/promote", post(versions::promote))
        .route("/prompts/{name}/versions/{version_id}/archive", post(versions::archive))
        .route("/prompts/{name}/versions/{version_id}/unarchive", post(versions::unarchive))
        .route("/prompts/{name}/promotions", get(versions::promotions))
        .route("/prompts/{name}/labels", get(labels::list))
        .route("/prompts/{name}/labels/{label}", get(labels::get).put(labels::put).delete(labels::delete))
        .route("/prompts/{name}/labels/{label}/rollback", post(labels::rollback))
        .route("/prompts/{name}/label-history", get(labels::history))
        .route("/prompts/{name}/diff", get(labels::diff))
        .route("/settings/protected-labels", get(labels::get_protected).put(labels::put_protected))
        .route("/org/audiences", get(oauth::get_audiences).put(oauth::put_audiences))
        .route("/events", get(events::stream))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/{key_id}", get(api_keys::get))
        .route("/api-keys/{key_id}/revoke", post(api_keys::revoke))
        .route("/api-keys/{key_id}/rotate", post(api_keys::rotate))
        .route("/api-keys/{key_id}/usage", get(api_keys::usage))
        .route("/audit-events", get(meta::audit_events))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{user_id}", get(users::get).patch(users::update).delete(users::delete))
        .route("/me/password", put(users::change_password))
        .route("/sessions", post(users::sign_in))
        .route("/sessions/current", delete(users::sign_out))
        .layer(middleware::from_fn(oauth::bearer_challenge));

    let max_body = app.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(metrics::serve))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/sdk-token", post(auth::sdk_token))
        .route("/v1/auth/applications/login", post(auth::applications_login))
        .route("/oauth/token", post(auth::oauth_token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/.well-known/oauth-authorization-server", get(oauth::authorization_server_metadata))
        .route("/.well-known/openid-configuration", get(oauth::openid_configuration))
        .nest("/api/v1", api)
        .merge(crate::web::router(app.clone()))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            error::error_response(ErrorCode::Internal, "internal error")
        }))
        .layer(middleware::from_fn(request_id))
        .with_state(app)
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// The request path as logged: an invitation link's path is its secret, so
/// only its route is written.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/invite/") {
        "/invite/{token}"
    } else {
        path
    }
}

/// Echoes the client's `X-Request-ID` (or assigns one), and runs the request
/// inside a span carrying it, so every log line of the request names it.
/// Headers are never logged: they carry tokens. Also counts and times the
/// request for `/metrics`, labelled by the matched route's template (never
/// the path: `/invite/{token}`'s path is a secret).
async fn request_id(mut req: Request, next: Next) -> Response {
    let id =
        req.headers().get(&X_REQUEST_ID).and_then(valid_request_id).unwrap_or_else(|| ulid::Ulid::new().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id);
    let method = crate::runtime::metrics::method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = async move {
        let started = std::time::Instant::now();
        let resp = next.run(req).await;
        let (status, elapsed) = (resp.status().as_u16(), started.elapsed());
        tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "response");
        let route = route.as_ref().map(MatchedPath::as_str);
        crate::runtime::metrics::get().observe_request(method, route, status, elapsed);
        resp
    }
    .instrument(span)
    .await
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}
