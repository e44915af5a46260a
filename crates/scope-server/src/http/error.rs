//! The one place where errors become HTTP responses (SPEC §5 error body;
//! the OAuth endpoints answer RFC 6749 bodies instead, `oauth::OAuthError`).
//!
//! The body carries no request id, so that equal errors have byte-identical
//! bodies (the id is in the `X-Request-ID` header). Internal errors are
//! logged (inside the request span, which carries the request id) and
//! answered with a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use scope_domain::ErrorCode;

use crate::error::AppError;

/// `{"code","message","error":{"code","message"}}`.
pub fn error_body(code: ErrorCode, message: &str) -> String {
    let inner = serde_json::json!({ "code": code.as_str(), "message": message });
    let outer = serde_json::json!({ "code": code.as_str(), "message": message, "error": inner });
    outer.to_string()
}

pub fn error_response(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], error_body(code, message))
        .into_response()
}

/// 503: the database cannot be reached; retry in a second.
pub fn unavailable_response() -> Response {
    let mut r = error_response(ErrorCode::Internal, "service temporarily unavailable; retry shortly");
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Domain(d) => {
                let mut r = error_response(d.code, &d.message);
                // RFC 6750 §3.1: a token narrowed below what the call needs.
                if let Some(scope) = d.required_scope {
                    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                }
                r
            }
            AppError::InvalidCredentials => error_response(ErrorCode::InvalidCredentials, "invalid credentials"),
            AppError::Unauthorized => {
                let mut r = error_response(ErrorCode::Unauthorized, "missing, invalid or expired access token");
                // RFC 6750 §3.1 (a request that sent no credentials at all
                // gets a bare `Bearer`: `oauth::wants_bare_challenge`).
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\""),
                );
                r
            }
            AppError::RateLimited(secs) => {
                let mut r = error_response(ErrorCode::RateLimited, "too many attempts; retry later");
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            AppError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                unavailable_response()
            }
            AppError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                error_response(ErrorCode::Internal, "internal error")
            }
        }
    }
}
