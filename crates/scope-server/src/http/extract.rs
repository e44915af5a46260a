//! Extractors that resolve the caller and parse input before a handler runs,
//! turning every rejection into the SPEC error body (400, 401, 413).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use scope_domain::{DomainError, ErrorCode};
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::service::sessions::{self, Session};
use crate::service::{auth, App, Principal};

fn body_error(r: BytesRejection) -> AppError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        DomainError::new(ErrorCode::PayloadTooLarge, "request body is too large").into()
    } else {
        DomainError::bad_request("could not read the request body").into()
    }
}

/// The raw body, with the size limit mapped to 413.
pub async fn read_body(req: Request, state: &Arc<App>) -> Result<Bytes, AppError> {
    Bytes::from_request(req, state).await.map_err(body_error)
}

/// A JSON body. Requires `Content-Type: application/json` when a body is
/// present; an empty body reads as `{}` so that calls like revoke or promote
/// need none. Malformed or wrongly typed JSON is a 400 naming the problem.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<App>) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
        let body = read_body(req, state).await?;
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
        if body != b"{}" && is_json != Some(true) {
            return Err(DomainError::bad_request("expected a JSON body with Content-Type: application/json").into());
        }
        serde_json::from_slice(body)
            .map(ApiJson)
            .map_err(|e| DomainError::bad_request(format!("invalid JSON body: {e}")).into())
    }
}

/// Query-string parameters; bad values are a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(ApiQuery)
            .map_err(|e| DomainError::bad_request(format!("invalid query string: {e}")).into())
    }
}

/// The caller: `Authorization: Bearer <jwt>`, or else a console session
/// cookie. With a session, a state-changing request must carry the session's
/// CSRF token in `X-CSRF-Token` and come from this origin, and a user whose
/// initial password is one-time may do nothing else until it is changed.
impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(header::AUTHORIZATION) {
            let header = header.to_str().map_err(|_| AppError::Unauthorized)?;
            let (scheme, token) = header.split_once(' ').ok_or(AppError::Unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AppError::Unauthorized);
            }
            return auth::authenticate(app, token.trim());
        }
        let session = Session::from_request_parts(parts, app).await?;
        if !is_safe(&parts.method) {
            check_session_write(&session, &parts.headers)?;
        }
        sessions::require_password_current(&session)?;
        Ok(session.principal)
    }
}

/// A console session from the `scope_session` cookie (no CSRF check: the
/// console's form handlers check the token sent in the form).
impl FromRequestParts<Arc<App>> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        if let Some(cached) = parts.extensions.get::<Session>() {
            return Ok(cached.clone());
        }
        let token = cookie(&parts.headers, sessions::COOKIE).ok_or(AppError::Unauthorized)?;
        let session = sessions::resolve(app, &token).await?;
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// A state-changing JSON request made with a session: same-origin and
/// carrying the session's CSRF token in `X-CSRF-Token`.
pub fn check_session_write(session: &Session, headers: &HeaderMap) -> Result<(), AppError> {
    check_origin(headers)?;
    sessions::check_csrf(session, headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
}

pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of cookie `name`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Refuses a cross-site state-changing request (defence in depth beside the
/// CSRF token and `SameSite`): `Sec-Fetch-Site` (set by the browser, not by
/// page scripts) must be same-origin or none (a typed URL); without it,
/// `Origin`, when sent, must name this host.
pub fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let refused = || AppError::from(DomainError::forbidden("cross-origin request refused"));
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err(refused()) };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let authority = origin.split_once("://").map(|(_, a)| a).ok_or_else(refused)?;
        if !authority.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    Ok(())
}

/// The client's address, for the failed-attempt limiters and the logs: the
/// TCP peer, or behind a trusted proxy (`--trusted-proxies`) the right-most
/// `X-Forwarded-For` hop that is not one (`net::TrustedProxies`).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Arc<App>> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(app.config.trusted_proxies.client_addr(peer, &parts.headers)))
    }
}

/// Path parameters; a rejection (e.g. invalid percent-encoding) is a 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| DomainError::bad_request(format!("invalid path: {e}")).into())
    }
}
