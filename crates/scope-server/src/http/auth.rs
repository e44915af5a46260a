//! Auth API handlers: the three token-exchange endpoints and the JWKS. Each
//! exchange's outcome is counted (`scope_token_exchanges_total`), malformed
//! requests included.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use scope_domain::DomainError;
use serde::Deserialize;
use serde_json::json;

use super::extract::{read_body, ApiJson, ClientIp};
use crate::error::AppError;
use crate::runtime::metrics::{self, ExchangeOutcome};
use crate::service::auth::{exchange, Credentials, IssuedToken};
use crate::service::App;

/// Counts how the exchange ended.
fn counted(result: Result<IssuedToken, AppError>) -> Result<IssuedToken, AppError> {
    metrics::token_exchange(ExchangeOutcome::of(&result));
    result
}

fn token_response(t: IssuedToken) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        Json(json!({ "access_token": t.access_token, "expires_in": t.expires_in, "token_type": "Bearer" })),
    )
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
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

#[derive(Deserialize)]
struct OAuthForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Percent-decodes a Basic credential part (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
}

/// `POST /oauth/token`: RFC 6749 §4.4 client credentials, with the client in
/// the form or in HTTP Basic; the key names its organization.
pub async fn oauth_token(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Result<impl IntoResponse, AppError> {
    counted(oauth_exchange(&app, ip, req).await).map(token_response)
}

async fn oauth_exchange(app: &Arc<App>, ip: std::net::IpAddr, req: Request) -> Result<IssuedToken, AppError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, v)| v.trim().to_owned());
    let body = read_body(req, app).await?;
    if !content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(DomainError::bad_request("expected Content-Type: application/x-www-form-urlencoded").into());
    }
    let form: OAuthForm =
        serde_urlencoded::from_bytes(&body).map_err(|e| DomainError::bad_request(format!("invalid form body: {e}")))?;
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(DomainError::bad_request("grant_type must be client_credentials").into());
    }
    let (client_id, client_secret) = match (basic, form.client_id, form.client_secret) {
        (Some(b), None, None) => {
            let decoded = STANDARD.decode(b).ok().and_then(|d| String::from_utf8(d).ok());
            let (id, secret) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .and_then(|(i, s)| Some((form_decode(i)?, form_decode(s)?)))
                .ok_or_else(|| DomainError::bad_request("malformed HTTP Basic credentials"))?;
            (id, secret)
        }
        (None, Some(id), Some(secret)) => (id, secret),
        (Some(_), _, _) => {
            return Err(DomainError::bad_request(
                "send client credentials either in HTTP Basic or in the form, not both",
            )
            .into())
        }
        _ => return Err(DomainError::bad_request("client_id and client_secret are required").into()),
    };
    let creds = Credentials { org: None, key_id: &client_id, secret: &client_secret };
    exchange(app, ip, creds).await
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(app.signing.keyset().jwks()))
}
