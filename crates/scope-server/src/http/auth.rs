//! Auth API handlers: the three token-exchange endpoints and the JWKS. Each
//! exchange's outcome is counted (`scope_token_exchanges_total`), malformed
//! requests included.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiJson, ClientIp};
use super::oauth::{self, TokenFailure};
use super::openapi::TokenResponse;
use crate::error::AppError;
use crate::runtime::metrics::{self, ExchangeOutcome};
use crate::service::auth::{exchange, Credentials, IssuedToken};
use crate::service::App;

/// Counts how the exchange ended.
fn counted(result: Result<IssuedToken, AppError>) -> Result<IssuedToken, AppError> {
    metrics::token_exchange(ExchangeOutcome::of(&result));
    result
}

/// The SPEC §4 answer, serialised straight from its documented type (the
/// same bytes as a `json!` object: the keys in this order).
fn token_response(t: IssuedToken) -> impl IntoResponse {
    let body = TokenResponse { access_token: t.access_token, expires_in: t.expires_in, token_type: "Bearer".into() };
    ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SdkTokenBody {
    account_id: String,
    key_id: String,
    key_secret: String,
}

/// `POST /v1/auth/sdk-token` (SDK 0.1).
pub async fn sdk_token(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    body: Result<ApiJson<SdkTokenBody>, AppError>,
) -> Result<impl IntoResponse, AppError> {
    let result = match body {
        Ok(ApiJson(b)) => {
            exchange(&app, ip, Credentials { org: Some(&b.account_id), key_id: &b.key_id, secret: &b.key_secret }).await
        }
        Err(e) => Err(e),
    };
    counted(result).map(token_response)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    account_id: String,
    client_id: String,
    client_secret: String,
}

/// `POST /v1/auth/applications/login` (SDK 0.2).
pub async fn applications_login(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    body: Result<ApiJson<LoginBody>, AppError>,
) -> Result<impl IntoResponse, AppError> {
    let result = match body {
        Ok(ApiJson(b)) => {
            let creds = Credentials { org: Some(&b.account_id), key_id: &b.client_id, secret: &b.client_secret };
            exchange(&app, ip, creds).await
        }
        Err(e) => Err(e),
    };
    counted(result).map(token_response)
}

/// `POST /oauth/token`: RFC 6749 §4.4 client credentials, with `scope` and
/// an audience; RFC 6749 answers (`oauth`). The key names its organization.
pub async fn oauth_token(State(app): State<Arc<App>>, ClientIp(ip): ClientIp, req: Request) -> Response {
    let (header_used, result) = oauth::token(&app, ip, req).await;
    let result = match result {
        Ok(t) => counted(Ok(t)).map_err(TokenFailure::Exchange),
        Err(TokenFailure::Exchange(e)) => counted(Err(e)).map_err(TokenFailure::Exchange),
        Err(refused @ TokenFailure::Refused(_)) => {
            metrics::token_exchange(ExchangeOutcome::BadRequest);
            Err(refused)
        }
    };
    oauth::token_response(result, header_used)
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(app.signing.keyset().jwks()))
}
