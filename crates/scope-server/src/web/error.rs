//! The one HTML error mapping of the console, beside the JSON one in
//! `http::error`: not signed in → the sign-in page, a refused rule → an
//! error page with its status and message, internal errors → a generic page
//! (logged with the request id, never shown).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use scope_domain::ErrorCode;

use super::layout;
use crate::error::AppError;

#[derive(Debug)]
pub enum WebError {
    /// Not signed in: to `/login?next=…`.
    SignIn(String),
    /// Somewhere else first (e.g. the password must be changed).
    Redirect(String),
    App(AppError),
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError::App(e)
    }
}

pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `/login?next=…`, keeping only local paths (no open redirect).
pub fn sign_in_url(next: &str) -> String {
    if next == "/" || !is_local_path(next) {
        "/login".into()
    } else {
        format!("/login?next={}", urlencode(next))
    }
}

/// A path on this site: starts with one `/` (not `//host` or `/\host`).
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.contains(['\r', '\n'])
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e.trim_start_matches('=').to_owned()).unwrap_or_default()
}

/// A rule's refusal (400, 409) re-renders the form with its message and
/// status; anything else is an error page.
pub fn form_failure(e: AppError) -> Result<(StatusCode, String), WebError> {
    match e {
        AppError::Domain(d) if matches!(d.code, ErrorCode::BadRequest | ErrorCode::Conflict) => {
            Ok((StatusCode::from_u16(d.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST), d.message))
        }
        other => Err(other.into()),
    }
}

fn title_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        401 => "Not signed in",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        413 => "Too large",
        429 => "Too many attempts",
        _ => "Something went wrong",
    }
}

/// What an error page says, kept on the response so that the console's
/// middleware can render it again inside the signed-in page shell.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub title: &'static str,
    pub body: maud::Markup,
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = title_for(status);
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (message) }
        p { a href="/prompts" { "Back to Prompts" } }
    };
    let mut r = (status, layout::bare(title, body.clone())).into_response();
    r.extensions_mut().insert(ErrorPage { title, body });
    r
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn(next) => see_other(&sign_in_url(&next)),
            WebError::Redirect(to) => see_other(&to),
            WebError::App(AppError::Unauthorized) => see_other("/login"),
            WebError::App(AppError::Domain(d)) => {
                let status = StatusCode::from_u16(d.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                error_page(status, &d.message)
            }
            WebError::App(AppError::InvalidCredentials) => error_page(StatusCode::UNAUTHORIZED, "Invalid credentials."),
            WebError::App(AppError::RateLimited(secs)) => {
                let mut r = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Too many attempts. Try again in {secs} seconds."),
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            WebError::App(AppError::Unavailable(msg)) => {
                tracing::warn!(error = %msg, "database unavailable");
                let mut r = error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database cannot be reached right now. Try again in a moment.",
                );
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            WebError::App(AppError::Internal(msg)) => {
                tracing::error!(error = %msg, "internal error");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Try again later.")
            }
        }
    }
}
