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
pub mod telemetry;
pub mod users;
pub mod versions;

use std::sync::Arc;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::service::App;

pub fn router(app: Arc<App>) -> Router {
    // The Scope API's routes carry their `/api/v1` prefix themselves and are
    // merged, not nested: a nested router strips the prefix from every
    // request's URI (a new `Uri` per request) and routes twice.
    let api = Router::new()
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/me", get(meta::me))
        .route("/api/v1/prompts", get(prompts::list).post(prompts::create))
        .route("/api/v1/prompts/{name}", get(prompts::get).patch(prompts::update).delete(prompts::delete))
        .route("/api/v1/prompts/{name}/production", get(prompts::production))
        .route("/api/v1/prompts/{name}/latest", get(prompts::latest))
        .route("/api/v1/prompts/{name}/versions", get(versions::list).post(versions::create))
        .route("/api/v1/prompts/{name}/versions/{version_id}", get(versions::get).patch(versions::update))
        .route("/api/v1/prompts/{name}/versions/{version_id}/promote", post(versions::promote))
        .route("/api/v1/prompts/{name}/versions/{version_id}/archive", post(versions::archive))
        .route("/api/v1/prompts/{name}/versions/{version_id}/unarchive", post(versions::unarchive))
        .route("/api/v1/prompts/{name}/promotions", get(versions::promotions))
        .route("/api/v1/prompts/{name}/labels", get(labels::list))
        .route("/api/v1/prompts/{name}/labels/{label}", get(labels::get).put(labels::put).delete(labels::delete))
        .route("/api/v1/prompts/{name}/labels/{label}/rollback", post(labels::rollback))
        .route("/api/v1/prompts/{name}/label-history", get(labels::history))
        .route("/api/v1/prompts/{name}/diff", get(labels::diff))
        .route("/api/v1/settings/protected-labels", get(labels::get_protected).put(labels::put_protected))
        .route("/api/v1/org/audiences", get(oauth::get_audiences).put(oauth::put_audiences))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api/v1/api-keys/{key_id}", get(api_keys::get))
        .route("/api/v1/api-keys/{key_id}/revoke", post(api_keys::revoke))
        .route("/api/v1/api-keys/{key_id}/rotate", post(api_keys::rotate))
        .route("/api/v1/api-keys/{key_id}/usage", get(api_keys::usage))
        .route("/api/v1/audit-events", get(meta::audit_events))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{user_id}", get(users::get).patch(users::update).delete(users::delete))
        .route("/api/v1/me/password", put(users::change_password))
        .route("/api/v1/sessions", post(users::sign_in))
        .route("/api/v1/sessions/current", delete(users::sign_out));

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
        .merge(api)
        .merge(crate::web::router(app.clone()))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(telemetry::TelemetryLayer::new(max_body))
        .with_state(app)
}
