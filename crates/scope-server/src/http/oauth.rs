//! The OAuth 2.0 endpoints, answered the way OAuth client libraries and
//! gateways expect (not with the SPEC §5 error body, which the JSON
//! endpoints keep):
//!
//! - `POST /oauth/token` (RFC 6749 §4.4; the handler is `auth::oauth_token`,
//!   which counts each exchange), `POST /oauth/revoke` (RFC 7009),
//!   `POST /oauth/introspect` (RFC 7662): forms only
//!   (`application/x-www-form-urlencoded`), errors as RFC 6749 §5.2 bodies
//!   `{"error","error_description"}`, `Cache-Control: no-store` and
//!   `Pragma: no-cache` on every answer;
//! - client authentication in exactly one place: HTTP Basic
//!   (`client_secret_basic`) or `client_id` + `client_secret` in the form
//!   (`client_secret_post`); both at once is `invalid_request` (a form
//!   `client_id` equal to the Basic one is tolerated, as some libraries send
//!   it). Every authentication failure — none sent, malformed, unknown key,
//!   wrong secret, revoked or expired key — is the same 401 `invalid_client`
//!   body, with `WWW-Authenticate: Basic` when the client used the
//!   `Authorization` header;
//! - discovery: `/.well-known/oauth-authorization-server` (RFC 8414) and a
//!   minimal `/.well-known/openid-configuration`, whose issuer is the tokens'
//!   `iss`;
//! - RFC 6750 challenges on the Scope API ([`wants_bare_challenge`]).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use scope_domain::{ErrorCode, Scope};
use serde_json::{json, Value};

use super::extract::{read_body, ClientIp};
use crate::error::AppError;
use crate::service::auth::{self, Credentials, IssuedToken};
use crate::service::oauth::{self as service, GrantError, TokenRequest};
use crate::service::App;

/// The one body of every client-authentication failure.
const INVALID_CLIENT: &str = "client authentication failed";

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// `WWW-Authenticate` to send with it.
    challenge: Option<HeaderValue>,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self { status, error, description: description.into(), challenge: None, retry_after: None }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client`, the same body whatever failed; the Basic
    /// challenge when the client authenticated (or tried to) with the
    /// `Authorization` header.
    pub fn invalid_client(header_used: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
        if header_used {
            e.challenge = Some(HeaderValue::from_static("Basic realm=\"scope\", charset=\"UTF-8\""));
        }
        e
    }

    /// Maps what the exchange (or the server) answered.
    pub fn from_app(e: AppError, header_used: bool) -> Self {
        match e {
            AppError::InvalidCredentials | AppError::Unauthorized => Self::invalid_client(header_used),
            AppError::RateLimited(secs) => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "too many failed attempts; retry later",
                );
                e.retry_after = Some(secs);
                e
            }
            AppError::Domain(d) if d.code == ErrorCode::PayloadTooLarge => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", d.message)
            }
            AppError::Domain(d) if d.code == ErrorCode::Forbidden => {
                Self::new(StatusCode::FORBIDDEN, "unauthorized_client", d.message)
            }
            AppError::Domain(d) => Self::invalid_request(d.message),
            AppError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "service temporarily unavailable; retry shortly",
                );
                e.retry_after = Some(1);
                e
            }
            AppError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
            }
        }
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let r = (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string());
    no_store(r.into_response())
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut r = json_response(self.status, &body);
        if let Some(c) = self.challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

// ---- forms and client authentication -----------------------------------------------------

/// The parameters of a form, each at most once (RFC 6749 §3.2); empty ones
/// count as absent, unknown ones are ignored.
struct Form(Vec<(String, String)>);

impl Form {
    async fn read(app: &Arc<App>, req: Request) -> Result<Form, AppError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|mime| mime == "application/x-www-form-urlencoded");
        let body = read_body(req, app).await?;
        if !is_form {
            return Err(scope_domain::DomainError::bad_request(
                "expected a form body with Content-Type: application/x-www-form-urlencoded",
            )
            .into());
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| scope_domain::DomainError::bad_request("the form body cannot be decoded"))?;
        Ok(Form(pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect()))
    }

    /// The one value of `name`; repeated is `invalid_request`.
    fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request(format!("the parameter {name} is repeated")));
        }
        Ok(first)
    }
}

/// Percent-decodes a Basic credential part (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
}

/// A client's id and secret, from wherever it sent them.
struct ClientCreds {
    id: String,
    secret: String,
}

impl ClientCreds {
    fn credentials(&self) -> Credentials<'_> {
        Credentials { org: None, key_id: &self.id, secret: &self.secret }
    }
}

/// How the client authenticated.
enum ClientAuth {
    Creds(ClientCreds),
    /// Nothing usable (none sent, a malformed Basic header, another scheme):
    /// `invalid_client` like any failure.
    Failed,
}

/// The client credentials of a request: Basic or the form, not both.
fn client_auth(headers: &HeaderMap, form: &Form) -> Result<ClientAuth, OAuthError> {
    let form_id = form.get("client_id")?;
    let form_secret = form.get("client_secret")?;
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Ok(match (form_id, form_secret) {
            (Some(id), Some(secret)) => ClientAuth::Creds(ClientCreds { id: id.to_owned(), secret: secret.to_owned() }),
            _ => ClientAuth::Failed,
        });
    };
    let basic = authorization
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, v)| v.trim());
    let Some(basic) = basic else {
        return Ok(ClientAuth::Failed);
    };
    let decoded = STANDARD.decode(basic).ok().and_then(|d| String::from_utf8(d).ok());
    let Some((id, secret)) =
        decoded.as_deref().and_then(|d| d.split_once(':')).and_then(|(i, s)| Some((form_decode(i)?, form_decode(s)?)))
    else {
        return Ok(ClientAuth::Failed);
    };
    if form_secret.is_some() || form_id.is_some_and(|f| f != id) {
        return Err(OAuthError::invalid_request(
            "send the client credentials either with HTTP Basic or in the form, not both",
        ));
    }
    Ok(ClientAuth::Creds(ClientCreds { id, secret }))
}

// ---- the token endpoint ------------------------------------------------------------------

/// How a token request failed: in the exchange (counted like the JSON
/// endpoints' failures) or before it, as an RFC 6749 refusal.
pub enum TokenFailure {
    Exchange(AppError),
    Refused(OAuthError),
}

/// One `POST /oauth/token`: whether the client used the `Authorization`
/// header, and the outcome.
pub async fn token(app: &Arc<App>, ip: IpAddr, req: Request) -> (bool, Result<IssuedToken, TokenFailure>) {
    let header_used = req.headers().contains_key(header::AUTHORIZATION);
    (header_used, token_inner(app, ip, req).await)
}

async fn token_inner(app: &Arc<App>, ip: IpAddr, req: Request) -> Result<IssuedToken, TokenFailure> {
    let refused = TokenFailure::Refused;
    let headers = req.headers().clone();
    let form = Form::read(app, req).await.map_err(TokenFailure::Exchange)?;
    match form.get("grant_type").map_err(refused)? {
        None => return Err(refused(OAuthError::invalid_request("grant_type is required"))),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(refused(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the only grant type is client_credentials",
            )))
        }
    }
    let creds = match client_auth(&headers, &form).map_err(refused)? {
        ClientAuth::Creds(c) => c,
        ClientAuth::Failed => return Err(TokenFailure::Exchange(AppError::InvalidCredentials)),
    };
    let scope = form.get("scope").map_err(refused)?;
    let resource = match form.0.iter().filter(|(k, _)| k == "resource").count() {
        0 | 1 => form.get("resource").map_err(refused)?,
        _ => return Err(refused(invalid_target("one resource per token"))),
    };
    let audience = match (resource, form.get("audience").map_err(refused)?) {
        (Some(r), Some(a)) if r != a => {
            return Err(refused(OAuthError::invalid_request("resource and audience name different audiences")))
        }
        (r, a) => r.or(a),
    };
    service::client_credentials(app, ip, creds.credentials(), TokenRequest { scope, audience }).await.map_err(|e| {
        match e {
            GrantError::Client(e) => TokenFailure::Exchange(e),
            GrantError::InvalidScope(m) => refused(OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", m)),
            GrantError::InvalidTarget(m) => refused(invalid_target(m)),
        }
    })
}

fn invalid_target(description: impl Into<Cow<'static, str>>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
}

/// The answer to a token request (RFC 6749 §5.1 / §5.2).
pub fn token_response(result: Result<IssuedToken, TokenFailure>, header_used: bool) -> Response {
    match result {
        Ok(t) => json_response(
            StatusCode::OK,
            &json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "scope": t.scope.to_string(),
            }),
        ),
        Err(TokenFailure::Exchange(e)) => OAuthError::from_app(e, header_used).into_response(),
        Err(TokenFailure::Refused(e)) => e.into_response(),
    }
}

// ---- revocation and introspection --------------------------------------------------------

/// `POST /oauth/revoke` (RFC 7009): `token` (and an optional
/// `token_type_hint`, ignored: there are only access tokens). 200 with an
/// empty body whether or not there was anything to revoke.
pub async fn revoke(State(app): State<Arc<App>>, ClientIp(ip): ClientIp, req: Request) -> Response {
    let header_used = req.headers().contains_key(header::AUTHORIZATION);
    match revoke_inner(&app, ip, req).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(TokenFailure::Exchange(e)) => OAuthError::from_app(e, header_used).into_response(),
        Err(TokenFailure::Refused(e)) => e.into_response(),
    }
}

async fn revoke_inner(app: &Arc<App>, ip: IpAddr, req: Request) -> Result<(), TokenFailure> {
    let headers = req.headers().clone();
    let form = Form::read(app, req).await.map_err(TokenFailure::Exchange)?;
    let creds = match client_auth(&headers, &form).map_err(TokenFailure::Refused)? {
        ClientAuth::Creds(c) => c,
        ClientAuth::Failed => return Err(TokenFailure::Exchange(AppError::InvalidCredentials)),
    };
    let token = form
        .get("token")
        .map_err(TokenFailure::Refused)?
        .ok_or_else(|| TokenFailure::Refused(OAuthError::invalid_request("token is required")))?;
    service::revoke(app, ip, creds.credentials(), token).await.map_err(TokenFailure::Exchange)
}

/// `POST /oauth/introspect` (RFC 7662): `token`; the caller authenticates
/// with an admin key of the token's organization, as a client (Basic or
/// form) or with a bearer token of such a key (scope `keys:admin`).
pub async fn introspect(State(app): State<Arc<App>>, ClientIp(ip): ClientIp, req: Request) -> Response {
    let header_used = req.headers().contains_key(header::AUTHORIZATION);
    match introspect_inner(&app, ip, req).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(TokenFailure::Exchange(e)) => OAuthError::from_app(e, header_used).into_response(),
        Err(TokenFailure::Refused(e)) => e.into_response(),
    }
}

async fn introspect_inner(app: &Arc<App>, ip: IpAddr, req: Request) -> Result<Value, TokenFailure> {
    let headers = req.headers().clone();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let form = Form::read(app, req).await.map_err(TokenFailure::Exchange)?;
    let caller = match bearer {
        Some(t) => {
            if form.get("client_id").map_err(TokenFailure::Refused)?.is_some()
                || form.get("client_secret").map_err(TokenFailure::Refused)?.is_some()
            {
                return Err(TokenFailure::Refused(OAuthError::invalid_request(
                    "send either a bearer token or client credentials, not both",
                )));
            }
            auth::authenticate(app, &t).map_err(|_| TokenFailure::Refused(invalid_token()))?
        }
        None => match client_auth(&headers, &form).map_err(TokenFailure::Refused)? {
            ClientAuth::Creds(c) => {
                let client =
                    auth::authenticate_client(app, ip, &c.credentials()).await.map_err(TokenFailure::Exchange)?;
                service::principal_of(&client)
            }
            ClientAuth::Failed => return Err(TokenFailure::Exchange(AppError::InvalidCredentials)),
        },
    };
    let token = form
        .get("token")
        .map_err(TokenFailure::Refused)?
        .ok_or_else(|| TokenFailure::Refused(OAuthError::invalid_request("token is required")))?;
    service::introspect(app, &caller, token).map_err(|e| match e {
        AppError::Domain(d) if d.required_scope.is_some() => {
            let mut e = OAuthError::new(StatusCode::FORBIDDEN, "insufficient_scope", d.message);
            e.challenge = Some(HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"keys:admin\""));
            TokenFailure::Refused(e)
        }
        other => TokenFailure::Exchange(other),
    })
}

/// A bearer token presented to the introspection endpoint was refused.
fn invalid_token() -> OAuthError {
    let mut e = OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", "missing, invalid or expired access token");
    e.challenge = Some(HeaderValue::from_static("Bearer error=\"invalid_token\""));
    e
}

// ---- discovery ---------------------------------------------------------------------------

fn scopes_supported() -> Vec<&'static str> {
    Scope::ALL.iter().map(|s| s.as_str()).collect()
}

fn discovery(body: Value) -> Response {
    let r = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        body.to_string(),
    );
    r.into_response()
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn authorization_server_metadata(State(app): State<Arc<App>>) -> Response {
    let iss = app.issuer();
    let methods = ["client_secret_basic", "client_secret_post"];
    discovery(json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        // No authorization endpoint: no response type.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "scopes_supported": scopes_supported(),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": methods,
    }))
}

/// `GET /.well-known/openid-configuration`: the minimum gateways that only
/// know OIDC discovery read (issuer, JWKS, the signing algorithm).
pub async fn openid_configuration(State(app): State<Arc<App>>) -> Response {
    let iss = app.issuer();
    discovery(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes_supported(),
    }))
}

// ---- RFC 6750 on the Scope API -----------------------------------------------------------

/// Whether a 401 answer to this request gets a bare `Bearer` challenge: a
/// request to the Scope API (`/api/v1/…`) that presented no credentials at
/// all. RFC 6750 §3.1 gives no error code when the client did not try (the
/// error mapping says `invalid_token`, right for a token that was presented
/// and refused). Decided when the request comes in, applied by
/// [`bare_bearer_challenge`] to its answer (both from the telemetry layer,
/// which every request passes through: no route layer of its own).
pub fn wants_bare_challenge(req: &Request) -> bool {
    req.uri().path().starts_with("/api/v1/") && !req.headers().contains_key(header::AUTHORIZATION)
}

/// See [`wants_bare_challenge`].
pub fn bare_bearer_challenge(resp: &mut Response) {
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
}

/// `GET /api/v1/org/audiences`: the audiences the organization allows in
/// its tokens' `aud`.
pub async fn get_audiences(
    State(app): State<Arc<App>>,
    p: crate::service::Principal,
) -> Result<axum::Json<crate::views::AudiencesView>, AppError> {
    Ok(axum::Json(crate::views::AudiencesView { data: service::org_audiences(&app, &p).await? }))
}

/// `PUT /api/v1/org/audiences` (admins): replaces them.
pub async fn put_audiences(
    State(app): State<Arc<App>>,
    p: crate::service::Principal,
    super::extract::ApiJson(b): super::extract::ApiJson<crate::views::AudiencesBody>,
) -> Result<axum::Json<crate::views::AudiencesView>, AppError> {
    Ok(axum::Json(crate::views::AudiencesView { data: service::set_org_audiences(&app, &p, &b.audiences).await? }))
}
