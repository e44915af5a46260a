//! The web console: server-rendered pages (maud) for people, served by the
//! same process as the APIs. Handlers here are as thin as the JSON ones: they
//! resolve the session (`Ctx`), call the same `service::…` functions with the
//! session's `Principal`, and render. Roles and tenancy live in the services,
//! for the console and the API alike. The contract of the pages (routes,
//! labels, ids) is `docs/CONSOLE.md`.

pub mod api_keys;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
pub mod labels;
pub mod layout;
pub mod prompts;
pub mod users;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::service::sessions;
use crate::service::App;

/// The console's routes (merged into the main router by `http::router`).
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/prompts") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/invite/{token}", get(auth::invite_page).post(auth::accept_invite))
        .route("/account/password", get(auth::password_page).post(auth::change_password))
        .route("/settings", get(|| async { Redirect::to("/settings/api-keys") }))
        .route("/settings/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/settings/api-keys/new", get(api_keys::new_form))
        .route("/settings/api-keys/{key_id}", get(api_keys::detail))
        .route("/settings/api-keys/{key_id}/revoke", get(api_keys::revoke_confirm).post(api_keys::revoke))
        .route("/settings/api-keys/{key_id}/rotate", get(api_keys::rotate_confirm).post(api_keys::rotate))
        .route("/settings/users", get(users::list).post(users::invite))
        .route("/settings/users/{user_id}/role", post(users::change_role))
        .route("/settings/users/{user_id}/remove", get(users::remove_confirm).post(users::remove))
        .route("/audit", get(audit::list))
        .route("/prompts", get(prompts::list).post(prompts::create))
        .route("/prompts/new", get(prompts::new_form))
        .route("/prompts/{name}", get(prompts::detail))
        .route("/prompts/{name}/diff", get(prompts::diff))
        .route("/prompts/{name}/versions", post(prompts::create_version))
        .route("/prompts/{name}/versions/{version_id}/edit", get(prompts::edit_form).post(prompts::edit))
        .route("/prompts/{name}/versions/{version_id}/promote", get(prompts::promote_confirm).post(prompts::promote))
        .route("/prompts/{name}/versions/{version_id}/archive", post(prompts::archive))
        .route("/prompts/{name}/versions/{version_id}/unarchive", post(prompts::unarchive))
        .route("/prompts/{name}/move-label", get(labels::move_confirm))
        .route("/prompts/{name}/labels/{label}", post(labels::move_label))
        .route("/prompts/{name}/labels/{label}/rollback", get(labels::rollback_confirm).post(labels::rollback))
        .route("/prompts/{name}/labels/{label}/remove", get(labels::remove_confirm).post(labels::remove))
        .route("/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn_with_state(app, signed_in_error_pages))
        .layer(middleware::from_fn(security_headers))
}

/// Error pages (403, 404, …) are rendered without knowing who is signed in;
/// for a signed-in user, this renders them again inside the usual header
/// with navigation and sign-out.
async fn signed_in_error_pages(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let token = crate::http::extract::cookie(req.headers(), sessions::COOKIE);
    let resp = next.run(req).await;
    let (Some(page), Some(token)) = (resp.extensions().get::<error::ErrorPage>().cloned(), token) else {
        return resp;
    };
    let Ok(session) = sessions::resolve(&app, &token).await else {
        return resp;
    };
    let ctx = extract::Ctx { app, session };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let html = layout::page(&ctx, layout::Section::Error, page.title, page.body).0;
    Response::from_parts(parts, axum::body::Body::from(html))
}

/// The content security policy of every console page: nothing but this
/// origin, no inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers for every console response; pages are never cached
/// (some show a secret once), assets set their own caching.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it, browsers send `Origin: null` on same-site
    // form posts, which the origin check must refuse. `same-origin` still
    // keeps invitation links and ids out of other sites' logs.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}
