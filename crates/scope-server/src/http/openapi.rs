//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every JSON
//! endpoint (the auth API, OAuth and discovery, the Scope API, health),
//! generated with `utoipa` from the handlers' own request, query and view
//! types (`#[derive(ToSchema)]` / `IntoParams` beside them).
//!
//! The operations are declared here, on documentation-only functions named
//! after the handler they describe, so that handler files stay free of long
//! attribute blocks; `crates/scope-cli/tests/api/openapi.rs` fails when a
//! route of `http::router` is missing from the document, or the document
//! names a route the router does not have, and `scripts/schemathesis.sh`
//! checks every documented answer against a live server. Answers that
//! handlers build with `json!` are described by the shape types below
//! (`Me`, `TokenResponse`, …). Errors: every 4xx/5xx of the SPEC §5 mapping
//! is the shared `Error` schema (added per operation by [`CommonErrors`]
//! from what the operation takes); the `/oauth/*` endpoints answer RFC 6749
//! bodies, `OAuthError`.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use scope_domain::{ErrorCode, Role};
use scope_store::KeyStatus;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::conditional::IfNoneMatch;
use super::error::error_response;
use crate::views::{ApiKeyView, UsageDayView, UserView};

/// `GET /api/v1/openapi.json` (public): built once, served with a strong
/// `ETag` (`304` to a matching `If-None-Match`) and cacheable for 5 minutes.
pub async fn serve(inm: IfNoneMatch) -> Response {
    static DOC: OnceLock<Option<Bytes>> = OnceLock::new();
    let Some(body) = DOC.get_or_init(|| serde_json::to_vec(&document()).ok().map(Bytes::from)) else {
        tracing::error!("the OpenAPI document cannot be serialized");
        return error_response(ErrorCode::Internal, "internal error");
    };
    let mut r = inm.respond_json(body.clone());
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

// ---- enumerated strings of the views (`&'static str` fields) ---------------------------

fn string_enum(values: &[&'static str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

const KEY_STATUSES: [KeyStatus; 3] = [KeyStatus::Active, KeyStatus::Revoked, KeyStatus::Expired];

/// `ApiKeyView::status`.
pub fn key_status() -> Object {
    string_enum(&KEY_STATUSES.map(KeyStatus::as_str), "`expired` once `expires_at` has passed")
}

/// `?status=` of the key list: a status, or `all` / empty for every key.
pub fn key_status_filter() -> Object {
    let [a, r, e] = KEY_STATUSES.map(KeyStatus::as_str);
    string_enum(&[a, r, e, "all", ""], "only keys in this status (`all` or empty: every key)")
}

/// `ApiKeyView::review`.
pub fn review_reasons() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(string_enum(&["unused_90_days", "older_than_90_days"], "why the key should be reviewed or rotated"))
        .build()
}

/// `UserView::status`.
pub fn user_status() -> Object {
    string_enum(&["invited", "active"], "`invited`: the invitation is not accepted yet")
}

/// `LabelMoveView::kind`.
pub fn move_kind() -> Object {
    string_enum(&["move", "rollback", "remove"], "what the move did")
}

/// `Hunk::op` of a diff.
pub fn hunk_op() -> Object {
    string_enum(&["equal", "insert", "delete"], "lines in both, only in `to`, only in `from`")
}

/// `onboarding` of a new user.
pub fn onboarding() -> Object {
    string_enum(&["invite", "password"], "`invite` (default): a one-time link; `password`: a one-time password")
}

// ---- shapes of the answers handlers build with `json!` ---------------------------------

/// The SPEC §5 error body: flat fields, and a nested copy the SDKs read.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// An RFC 6749 §5.2 error (the `/oauth/*` endpoints).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OAuthError)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`,
    /// `invalid_scope`, `invalid_target`, `unauthorized_client`,
    /// `insufficient_scope`, `invalid_token`, `temporarily_unavailable`,
    /// `server_error`.
    pub error: String,
    pub error_description: String,
}

/// `/healthz`: `ok`; `/readyz`: `ready`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// `GET /api/v1/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub org_id: String,
    pub org_name: String,
    /// `api_key`, `user` or `system`.
    pub principal_type: String,
    pub principal_id: String,
    pub role: Role,
    /// The key's environment (keys only).
    pub environment: Option<String>,
    /// The user's email (users only).
    pub email: Option<String>,
}

/// The token exchanges of SPEC §4 (`Cache-Control: no-store`).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: String,
}

/// `POST /oauth/token` (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub struct OAuthTokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_in: i64,
    /// The scopes granted, space-separated.
    pub scope: String,
}

/// The form of `POST /oauth/token`.
#[derive(Deserialize, ToSchema)]
pub struct TokenForm {
    /// Only `client_credentials` is supported.
    pub grant_type: String,
    /// The API key id (`client_secret_post`; or HTTP Basic).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated scopes, at most the key's role's.
    pub scope: Option<String>,
    /// RFC 8707: the audience of the token (`aud`).
    pub resource: Option<String>,
    /// Same as `resource`.
    pub audience: Option<String>,
}

/// The form of `POST /oauth/revoke` and `POST /oauth/introspect`.
#[derive(Deserialize, ToSchema)]
pub struct TokenActionForm {
    pub token: String,
    /// Ignored: there are only access tokens.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 7662: `{"active": false}` for a token that is not (or not the
/// caller's organization's); the claims otherwise.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub org: Option<String>,
    pub role: Option<Role>,
    pub env: Option<String>,
    pub token_type: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    pub aud: Option<String>,
}

/// One public signing key (RFC 8037 OKP).
#[derive(Serialize, ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    /// The public key, base64url.
    pub x: String,
}

/// `GET /.well-known/jwks.json`.
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// RFC 8414 metadata.
#[derive(Serialize, ToSchema)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
}

/// The minimal OpenID Connect discovery document.
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
}

/// `GET /api/v1/api-keys/{key_id}/usage`.
#[derive(Serialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    /// Exchanges per day, oldest first.
    pub days: Vec<UsageDayView>,
    pub total: u64,
}

/// `POST /api/v1/api-keys/{key_id}/rotate`: the successor (with its
/// `secret`, shown once) and the key it replaces, now expiring.
#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    pub previous: ApiKeyView,
}

/// `POST /api/v1/users`: the user, and the one-time invitation link or
/// initial password (`Cache-Control: no-store`).
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    pub invitation_url: Option<String>,
    pub invitation_expires_at: Option<String>,
    pub initial_password: Option<String>,
}

/// `POST /api/v1/sessions`: the user and the session's CSRF token (the
/// session itself is the `scope_session` cookie).
#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub user: UserView,
    pub csrf_token: String,
    pub must_change_password: bool,
}

// ---- the document ------------------------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scope",
        description = "Versioned LLM prompt templates served to applications. Applications exchange an API key \
                       for a short-lived JWT at the auth API and read prompts from the Scope API with it.",
        license(name = "Apache-2.0")
    ),
    paths(
        doc::healthz,
        doc::readyz,
        doc::metrics,
        doc::openapi,
        doc::jwks,
        doc::sdk_token,
        doc::applications_login,
        doc::oauth_token,
        doc::oauth_revoke,
        doc::oauth_introspect,
        doc::authorization_server_metadata,
        doc::openid_configuration,
        doc::me,
        doc::list_prompts,
        doc::create_prompt,
        doc::get_prompt,
        doc::update_prompt,
        doc::delete_prompt,
        doc::production,
        doc::latest,
        doc::list_versions,
        doc::create_version,
        doc::get_version,
        doc::update_version,
        doc::promote_version,
        doc::archive_version,
        doc::unarchive_version,
        doc::promotions,
        doc::list_labels,
        doc::get_label,
        doc::put_label,
        doc::delete_label,
        doc::rollback_label,
        doc::label_history,
        doc::diff,
        doc::get_protected_labels,
        doc::put_protected_labels,
        doc::get_audiences,
        doc::put_audiences,
        doc::events,
        doc::list_api_keys,
        doc::create_api_key,
        doc::get_api_key,
        doc::revoke_api_key,
        doc::rotate_api_key,
        doc::api_key_usage,
        doc::audit_events,
        doc::list_users,
        doc::create_user,
        doc::get_user,
        doc::update_user,
        doc::delete_user,
        doc::change_password,
        doc::sign_in,
        doc::sign_out,
    ),
    components(schemas(ErrorBody, OAuthErrorBody)),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags(
        (name = "meta", description = "Health, readiness, metrics, this document, the caller"),
        (name = "auth", description = "API key → JWT exchange (SPEC §4) and the signing keys"),
        (name = "oauth", description = "OAuth 2.0 client credentials, revocation, introspection, discovery"),
        (name = "prompts", description = "Prompts and the SDK-facing reads"),
        (name = "versions", description = "Versions of a prompt and their lifecycle"),
        (name = "labels", description = "Labels, their history, diffs (SPEC §9)"),
        (name = "events", description = "Server-Sent Events of the organization"),
        (name = "api-keys", description = "API keys (admin)"),
        (name = "users", description = "Users, roles and console sessions"),
        (name = "audit", description = "The audit log (admin)"),
        (name = "settings", description = "Organization settings (admin to change)"),
    )
)]
struct ApiDoc;

/// `bearer` (a JWT from the auth API), `session` (the console's cookie;
/// state-changing requests also need `X-CSRF-Token`), `basic` (OAuth
/// `client_secret_basic`: the key id and secret).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description =
            Some("An access token from /v1/auth/sdk-token, /v1/auth/applications/login or /oauth/token".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("OAuth client_secret_basic: the API key id and its secret".into());
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
        let session = ApiKeyValue::with_description(
            crate::service::sessions::COOKIE,
            "The console's session cookie (POST /api/v1/sessions); state-changing requests also send X-CSRF-Token",
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(session)));
    }
}

/// Adds the SPEC §5 error answers an operation can give, from what it
/// takes: 400 for a body or parameters, 401/403 when it needs a caller, 404
/// for an id in its path, 413 for a body, 500 always, 503 when it reads the
/// database. The `/oauth/*` endpoints declare their RFC 6749 errors
/// themselves.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.starts_with("/oauth/") {
                continue;
            }
            let static_answer = matches!(path.as_str(), "/healthz" | "/metrics" | "/api/v1/openapi.json");
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |status: u16, description: &str| {
                    op.responses.responses.entry(status.to_string()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build(),
                            )
                            .build()
                            .into()
                    });
                };
                if has_body || has_params {
                    add(400, "Malformed or invalid input (`bad_request`)");
                }
                if secured {
                    add(401, "Missing, invalid, expired or revoked credentials (`unauthorized`)");
                    add(403, "The caller's role or token scope does not allow this (`forbidden`)");
                }
                if path.contains('{') {
                    add(404, "No such resource in the caller's organization (`not_found`)");
                }
                if has_body {
                    add(413, "The body is over the size limit (`payload_too_large`)");
                }
                add(500, "Internal error (`internal`; the message says nothing more)");
                if !static_answer {
                    add(503, "The database is unreachable (`internal`, `Retry-After: 1`)");
                }
            }
        }
    }
}

/// Documentation-only functions: one per operation of `http::router`,
/// named after its handler.
#[allow(dead_code)]
mod doc {
    use super::*;
    use crate::http::{
        api_keys, auth, events as ev, labels as lb, meta as mt, prompts as pr, users as us, versions as vs,
    };
    use crate::views::{
        AudiencesBody, AudiencesView, AuditView, DiffView, LabelMoveView, LabelsView, ListView, PromotionView,
        PromptView, ProtectedLabelsView, VersionView,
    };

    // ---- meta ----

    /// Liveness: the process answers.
    #[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Alive", body = Status)))]
    pub fn healthz() {}

    /// Readiness: the database answers.
    #[utoipa::path(get, path = "/readyz", tag = "meta", responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ))]
    pub fn readyz() {}

    /// Prometheus metrics (text exposition; no label names an id or secret).
    #[utoipa::path(get, path = "/metrics", tag = "meta", responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    ))]
    pub fn metrics() {}

    /// This document.
    #[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
        params(("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
        responses(
            (status = 200, description = "The OpenAPI 3.1 document", body = Object,
                headers(("ETag" = String, description = "Strong tag of the document"))),
            (status = 304, description = "Not modified"),
        ))]
    pub fn openapi() {}

    /// The caller: organization, principal (user or key), role.
    #[utoipa::path(get, path = "/api/v1/me", tag = "meta", security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The caller", body = Me)))]
    pub fn me() {}

    // ---- auth API ----

    /// The public signing keys, to verify tokens offline.
    #[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
        responses((status = 200, description = "JSON Web Key Set", body = Jwks)))]
    pub fn jwks() {}

    /// API key → JWT (SDK 0.1).
    #[utoipa::path(post, path = "/v1/auth/sdk-token", tag = "auth", request_body = auth::SdkTokenBody, responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 401, description = "Any credential failure, one body (`invalid_credentials`)", body = ErrorBody),
        (status = 429, description = "Too many failed attempts (`Retry-After`)", body = ErrorBody),
    ))]
    pub fn sdk_token() {}

    /// API key → JWT (SDK 0.2).
    #[utoipa::path(post, path = "/v1/auth/applications/login", tag = "auth", request_body = auth::LoginBody, responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 401, description = "Any credential failure, one body (`invalid_credentials`)", body = ErrorBody),
        (status = 429, description = "Too many failed attempts (`Retry-After`)", body = ErrorBody),
    ))]
    pub fn applications_login() {}

    /// RFC 6749 §4.4 client credentials (organization taken from the key).
    #[utoipa::path(post, path = "/oauth/token", tag = "oauth",
        request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
        security(("basic" = []), ()),
        responses(
            (status = 200, description = "A token", body = OAuthTokenResponse),
            (status = 400, description = "invalid_request, unsupported_grant_type, invalid_scope, invalid_target", body = OAuthErrorBody),
            (status = 401, description = "invalid_client, whatever failed", body = OAuthErrorBody),
            (status = 403, description = "unauthorized_client", body = OAuthErrorBody),
            (status = 413, description = "invalid_request: the body is too large", body = OAuthErrorBody),
            (status = 429, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
            (status = 500, description = "server_error", body = OAuthErrorBody),
            (status = 503, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
        ))]
    pub fn oauth_token() {}

    /// RFC 7009: revokes one access token of the client's organization.
    #[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
        request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
        security(("basic" = []), ()),
        responses(
            (status = 200, description = "Revoked, or nothing to revoke (empty body)"),
            (status = 400, description = "invalid_request", body = OAuthErrorBody),
            (status = 401, description = "invalid_client", body = OAuthErrorBody),
            (status = 403, description = "unauthorized_client", body = OAuthErrorBody),
            (status = 413, description = "invalid_request: the body is too large", body = OAuthErrorBody),
            (status = 429, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
            (status = 500, description = "server_error", body = OAuthErrorBody),
            (status = 503, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
        ))]
    pub fn oauth_revoke() {}

    /// RFC 7662: an admin key of the token's organization asks about it.
    #[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
        request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
        security(("basic" = []), ("bearer" = []), ()),
        responses(
            (status = 200, description = "What the token is", body = Introspection),
            (status = 400, description = "invalid_request", body = OAuthErrorBody),
            (status = 401, description = "invalid_client or invalid_token", body = OAuthErrorBody),
            (status = 403, description = "unauthorized_client or insufficient_scope", body = OAuthErrorBody),
            (status = 413, description = "invalid_request: the body is too large", body = OAuthErrorBody),
            (status = 429, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
            (status = 500, description = "server_error", body = OAuthErrorBody),
            (status = 503, description = "temporarily_unavailable (`Retry-After`)", body = OAuthErrorBody),
        ))]
    pub fn oauth_introspect() {}

    /// RFC 8414 discovery.
    #[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
        responses((status = 200, description = "Authorization server metadata", body = AuthorizationServerMetadata)))]
    pub fn authorization_server_metadata() {}

    /// Minimal OpenID Connect discovery (issuer, JWKS, algorithm).
    #[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
        responses((status = 200, description = "OpenID configuration", body = OpenIdConfiguration)))]
    pub fn openid_configuration() {}

    // ---- prompts ----

    /// Prompts, with their latest and production version numbers.
    #[utoipa::path(get, path = "/api/v1/prompts", tag = "prompts", params(pr::ListParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of prompts", body = ListView<PromptView>)))]
    pub fn list_prompts() {}

    /// Creates a prompt and its v1 draft (editor).
    #[utoipa::path(post, path = "/api/v1/prompts", tag = "prompts", request_body = pr::CreateBody,
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 201, description = "The prompt, with its v1 draft in `version`", body = PromptView),
            (status = 409, description = "A prompt of that name exists (`conflict`)", body = ErrorBody),
        ))]
    pub fn create_prompt() {}

    #[utoipa::path(get, path = "/api/v1/prompts/{name}", tag = "prompts", params(("name" = String, Path, description = "Prompt name or id")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The prompt", body = PromptView)))]
    pub fn get_prompt() {}

    /// Changes the description or tags (editor).
    #[utoipa::path(patch, path = "/api/v1/prompts/{name}", tag = "prompts", params(("name" = String, Path, description = "Prompt name or id")),
        request_body = pr::PatchBody, security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The prompt", body = PromptView)))]
    pub fn update_prompt() {}

    /// Deletes the prompt and its versions (admin).
    #[utoipa::path(delete, path = "/api/v1/prompts/{name}", tag = "prompts", params(("name" = String, Path, description = "Prompt name or id")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 204, description = "Deleted")))]
    pub fn delete_prompt() {}

    /// SDK-facing: the published version (for a key bound to environment
    /// `E`, label `E` where the prompt has it).
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/production", tag = "prompts",
        params(("name" = String, Path, description = "Prompt name or id"),
               ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version", body = VersionView, headers(
                ("ETag" = String, description = "Strong tag of the body"),
                ("X-Scope-Label" = String, description = "The label served"))),
            (status = 304, description = "Not modified"),
            (status = 404, description = "No such prompt (`not_found`) or no production version (`no_production_version`)", body = ErrorBody),
        ))]
    pub fn production() {}

    /// SDK-facing: the highest-numbered version, any status.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/latest", tag = "prompts",
        params(("name" = String, Path, description = "Prompt name or id"),
               ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version", body = VersionView, headers(
                ("ETag" = String, description = "Strong tag of the body"),
                ("X-Scope-Label" = String, description = "The label served"))),
            (status = 304, description = "Not modified"),
        ))]
    pub fn latest() {}

    // ---- versions ----

    /// Versions, newest first.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/versions", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), vs::ListParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of versions", body = ListView<VersionView>)))]
    pub fn list_versions() {}

    /// The next version, as a draft (editor).
    #[utoipa::path(post, path = "/api/v1/prompts/{name}/versions", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id")),
        request_body = vs::CreateBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 201, description = "The new draft", body = VersionView),
            (status = 409, description = "Conflict (`conflict`)", body = ErrorBody),
        ))]
    pub fn create_version() {}

    /// SDK-facing: one version.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/versions/{version_id}", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"),
               ("version_id" = String, Path, description = "Version id (`v_…`)"),
               ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version", body = VersionView,
                headers(("ETag" = String, description = "Strong tag of the body"))),
            (status = 304, description = "Not modified"),
        ))]
    pub fn get_version() {}

    /// Edits a draft (editor).
    #[utoipa::path(patch, path = "/api/v1/prompts/{name}/versions/{version_id}", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), ("version_id" = String, Path, description = "Version id")),
        request_body = vs::PatchBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The draft", body = VersionView),
            (status = 409, description = "Not a draft (`conflict`)", body = ErrorBody),
        ))]
    pub fn update_version() {}

    /// Publishes the version; the previous one is archived, or back to draft
    /// with `archive_previous: false` (editor).
    #[utoipa::path(post, path = "/api/v1/prompts/{name}/versions/{version_id}/promote", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), ("version_id" = String, Path, description = "Version id")),
        request_body = vs::PromoteBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The promoted version", body = VersionView),
            (status = 409, description = "Archived versions cannot be promoted (`conflict`)", body = ErrorBody),
        ))]
    pub fn promote_version() {}

    /// Archives a draft (editor).
    #[utoipa::path(post, path = "/api/v1/prompts/{name}/versions/{version_id}/archive", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), ("version_id" = String, Path, description = "Version id")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The archived version", body = VersionView),
            (status = 409, description = "Published, or a label points at it (`conflict`)", body = ErrorBody),
        ))]
    pub fn archive_version() {}

    /// Back to draft (editor).
    #[utoipa::path(post, path = "/api/v1/prompts/{name}/versions/{version_id}/unarchive", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), ("version_id" = String, Path, description = "Version id")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The draft", body = VersionView),
            (status = 409, description = "Published (`conflict`)", body = ErrorBody),
        ))]
    pub fn unarchive_version() {}

    /// Promotion history, newest first.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/promotions", tag = "versions",
        params(("name" = String, Path, description = "Prompt name or id"), vs::PageParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of promotions", body = ListView<PromotionView>)))]
    pub fn promotions() {}

    // ---- labels ----

    #[utoipa::path(get, path = "/api/v1/prompts/{name}/labels", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The prompt's labels", body = LabelsView)))]
    pub fn list_labels() {}

    /// SDK-facing: the version a label points at.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/labels/{label}", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"),
               ("label" = String, Path, description = "`production`, `latest` or a label"),
               ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version", body = VersionView, headers(
                ("ETag" = String, description = "Strong tag of the body"),
                ("X-Scope-Label" = String, description = "The label served"))),
            (status = 304, description = "Not modified"),
        ))]
    pub fn get_label() {}

    /// Points the label at a version (editor; admin for a protected label).
    #[utoipa::path(put, path = "/api/v1/prompts/{name}/labels/{label}", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"), ("label" = String, Path, description = "The label", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
        request_body = lb::PutBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version it now points at", body = VersionView),
            (status = 409, description = "Conflict (`conflict`)", body = ErrorBody),
        ))]
    pub fn put_label() {}

    /// Removes a label (not `production`).
    #[utoipa::path(delete, path = "/api/v1/prompts/{name}/labels/{label}", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"), ("label" = String, Path, description = "The label", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 204, description = "Removed"),
            (status = 409, description = "Conflict (`conflict`)", body = ErrorBody),
        ))]
    pub fn delete_label() {}

    /// Back to the version before the label's last move.
    #[utoipa::path(post, path = "/api/v1/prompts/{name}/labels/{label}/rollback", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"), ("label" = String, Path, description = "The label", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
        request_body = lb::RollbackBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The version it now points at", body = VersionView),
            (status = 409, description = "Nothing to roll back to (`conflict`)", body = ErrorBody),
        ))]
    pub fn rollback_label() {}

    /// Every move of the prompt's labels, newest first.
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/label-history", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"), lb::HistoryParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of moves", body = ListView<LabelMoveView>)))]
    pub fn label_history() {}

    /// The difference between two versions (ids, numbers or labels).
    #[utoipa::path(get, path = "/api/v1/prompts/{name}/diff", tag = "labels",
        params(("name" = String, Path, description = "Prompt name or id"), lb::DiffParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The diff", body = DiffView)))]
    pub fn diff() {}

    // ---- settings ----

    #[utoipa::path(get, path = "/api/v1/settings/protected-labels", tag = "settings",
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "Labels only admins may move", body = ProtectedLabelsView)))]
    pub fn get_protected_labels() {}

    /// Replaces the protected labels (admin).
    #[utoipa::path(put, path = "/api/v1/settings/protected-labels", tag = "settings", request_body = ProtectedLabelsView,
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "Labels only admins may move", body = ProtectedLabelsView)))]
    pub fn put_protected_labels() {}

    #[utoipa::path(get, path = "/api/v1/org/audiences", tag = "settings",
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "Audiences allowed in the organization's tokens", body = AudiencesView)))]
    pub fn get_audiences() {}

    /// Replaces the allowed audiences (admin).
    #[utoipa::path(put, path = "/api/v1/org/audiences", tag = "settings", request_body = AudiencesBody,
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "Audiences allowed in the organization's tokens", body = AudiencesView)))]
    pub fn put_audiences() {}

    // ---- events ----

    /// Server-Sent Events of the caller's organization (docs/EVENTS.md).
    #[utoipa::path(get, path = "/api/v1/events", tag = "events",
        params(ev::Params, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String)))]
    pub fn events() {}

    // ---- API keys ----

    /// Keys, newest first; never a secret (admin).
    #[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(api_keys::ListParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of keys", body = ListView<ApiKeyView>)))]
    pub fn list_api_keys() {}

    /// Creates a key; its `secret` is in this answer only (admin).
    #[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = api_keys::CreateBody,
        security(("bearer" = []), ("session" = [])),
        responses((status = 201, description = "The key, with `secret`", body = ApiKeyView)))]
    pub fn create_api_key() {}

    #[utoipa::path(get, path = "/api/v1/api-keys/{key_id}", tag = "api-keys",
        params(("key_id" = String, Path, description = "Key id (`key_…`)")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The key", body = ApiKeyView)))]
    pub fn get_api_key() {}

    /// Revokes the key (idempotent).
    #[utoipa::path(post, path = "/api/v1/api-keys/{key_id}/revoke", tag = "api-keys",
        params(("key_id" = String, Path, description = "Key id (`key_…`)")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The key, revoked", body = ApiKeyView)))]
    pub fn revoke_api_key() {}

    /// Creates the successor (new secret, shown once); the old key expires
    /// after the grace period (default 24 h).
    #[utoipa::path(post, path = "/api/v1/api-keys/{key_id}/rotate", tag = "api-keys",
        params(("key_id" = String, Path, description = "Key id (`key_…`)")),
        request_body = api_keys::RotateBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 201, description = "The successor with `secret`, and `previous`", body = RotatedKey),
            (status = 409, description = "The key is revoked or expired (`conflict`)", body = ErrorBody),
        ))]
    pub fn rotate_api_key() {}

    /// Exchanges per day.
    #[utoipa::path(get, path = "/api/v1/api-keys/{key_id}/usage", tag = "api-keys",
        params(("key_id" = String, Path, description = "Key id (`key_…`)"), api_keys::UsageParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "Exchanges per day", body = KeyUsage)))]
    pub fn api_key_usage() {}

    // ---- audit ----

    /// The audit log, newest first (admin).
    #[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(mt::AuditParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of events", body = ListView<AuditView>)))]
    pub fn audit_events() {}

    // ---- users ----

    /// Users of the organization (admin).
    #[utoipa::path(get, path = "/api/v1/users", tag = "users", params(us::PageParams),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "A page of users", body = ListView<UserView>)))]
    pub fn list_users() {}

    /// Adds a user, with a one-time invitation link or initial password (admin).
    #[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = us::CreateBody,
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 201, description = "The user", body = CreatedUser),
            (status = 409, description = "A user with that email exists (`conflict`)", body = ErrorBody),
        ))]
    pub fn create_user() {}

    #[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
        params(("user_id" = String, Path, description = "User id (`usr_…`)")),
        security(("bearer" = []), ("session" = [])),
        responses((status = 200, description = "The user", body = UserView)))]
    pub fn get_user() {}

    /// Changes the user's role (admin).
    #[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users",
        params(("user_id" = String, Path, description = "User id (`usr_…`)")),
        request_body = us::PatchBody, security(("bearer" = []), ("session" = [])),
        responses(
            (status = 200, description = "The user", body = UserView),
            (status = 409, description = "The last admin (`conflict`)", body = ErrorBody),
        ))]
    pub fn update_user() {}

    /// Removes the user (admin).
    #[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users",
        params(("user_id" = String, Path, description = "User id (`usr_…`)")),
        security(("bearer" = []), ("session" = [])),
        responses(
            (status = 204, description = "Removed"),
            (status = 409, description = "The last admin (`conflict`)", body = ErrorBody),
        ))]
    pub fn delete_user() {}

    /// Changes the signed-in user's password (a console session only).
    #[utoipa::path(put, path = "/api/v1/me/password", tag = "users", request_body = us::PasswordBody,
        security(("session" = [])),
        responses((status = 204, description = "Changed")))]
    pub fn change_password() {}

    /// Signs in: sets the `scope_session` cookie.
    #[utoipa::path(post, path = "/api/v1/sessions", tag = "users", request_body = us::SignInBody,
        responses(
            (status = 201, description = "Signed in", body = SignedIn,
                headers(("Set-Cookie" = String, description = "The session cookie"))),
            (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = ErrorBody),
            (status = 403, description = "A cross-origin request (`forbidden`)", body = ErrorBody),
            (status = 429, description = "Too many failed attempts (`Retry-After`)", body = ErrorBody),
        ))]
    pub fn sign_in() {}

    /// Signs out (a console session only).
    #[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "users",
        security(("session" = [])),
        responses((status = 204, description = "Signed out")))]
    pub fn sign_out() {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// The shape types describe what `error::error_body` really writes.
    #[test]
    fn error_schema_matches_the_error_body() {
        let body = super::super::error::error_body(ErrorCode::NoProductionVersion, "none");
        let parsed: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.code, ErrorCode::NoProductionVersion);
        assert_eq!(parsed.error.message, "none");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_error_schema() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["Error"].is_object(), "{doc}");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
