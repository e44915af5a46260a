//! `/api/v1/users` and `/api/v1/sessions` handlers: extract, call the
//! service, shape the answer. Secrets shown once (initial password,
//! invitation link) are answered with `Cache-Control: no-store`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scope_domain::{DomainError, Role};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::extract::{check_origin, check_session_write, ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::error::AppError;
use crate::service::sessions::{self, Session};
use crate::service::users::{self, NewUser, Onboarding};
use crate::service::{page, App, Principal};
use crate::views::{ts, ListView, UserView};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<impl IntoResponse, AppError> {
    let pg = users::list(&app, &p, page(q.limit, q.cursor)?).await?;
    Ok(Json(ListView { data: pg.data.iter().map(UserView::from).collect(), next_cursor: pg.next_cursor }))
}

pub async fn get(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(user_id): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(UserView::from(&users::get(&app, &p, &user_id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserCreate)]
pub struct CreateBody {
    #[schema(format = Email)]
    email: String,
    role: Option<Role>,
    /// `invite` (default): a one-time link; `password`: a one-time initial
    /// password.
    #[schema(schema_with = crate::http::openapi::onboarding)]
    onboarding: Option<String>,
}

/// The public base URL links are built on.
pub fn public_base(app: &App) -> String {
    app.issuer()
}

pub fn invitation_url(app: &App, token: &SecretString) -> String {
    format!("{}/invite/{}", public_base(app), token.expose_secret())
}

/// For every answer that carries a secret or a token: `Cache-Control:
/// no-store`, and `Pragma: no-cache` for HTTP/1.0 caches (RFC 6749 §5.1
/// asks the same of token answers).
pub fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub fn parse_onboarding(s: Option<&str>) -> Result<Onboarding, AppError> {
    match s {
        None | Some("invite") => Ok(Onboarding::Invite),
        Some("password") => Ok(Onboarding::InitialPassword),
        Some(_) => Err(DomainError::bad_request("onboarding must be invite or password").into()),
    }
}

pub async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, AppError> {
    let onboarding = parse_onboarding(b.onboarding.as_deref())?;
    let created =
        users::create(&app, &p, NewUser { email: b.email, role: b.role.unwrap_or_default(), onboarding }).await?;
    let mut body =
        serde_json::to_value(UserView::from(&created.user)).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Some(obj) = body.as_object_mut() {
        if let Some((token, expires_at)) = &created.invitation {
            obj.insert("invitation_url".into(), json!(invitation_url(&app, token)));
            obj.insert("invitation_expires_at".into(), json!(ts(*expires_at)));
        }
        if let Some(pw) = &created.initial_password {
            obj.insert("initial_password".into(), json!(pw.expose_secret()));
        }
    }
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserPatch)]
pub struct PatchBody {
    role: Role,
}

pub async fn update(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<impl IntoResponse, AppError> {
    Ok(Json(UserView::from(&users::change_role(&app, &p, &user_id, b.role).await?)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    p: Principal,
    ApiPath(user_id): ApiPath<String>,
) -> Result<impl IntoResponse, AppError> {
    users::remove(&app, &p, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PasswordChange)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `PUT /api/v1/me/password` (a signed-in user; CSRF-checked like every
/// state-changing session request). Allowed while the initial password is
/// one-time: it is how it gets changed.
pub async fn change_password(
    State(app): State<Arc<App>>,
    session: Session,
    headers: axum::http::HeaderMap,
    ApiJson(b): ApiJson<PasswordBody>,
) -> Result<impl IntoResponse, AppError> {
    check_session_write(&session, &headers)?;
    users::change_own_password(
        &app,
        &session.principal,
        Some(&session.digest),
        SecretString::from(b.current_password),
        SecretString::from(b.new_password),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignInBody {
    email: String,
    password: String,
}

fn cookie_attributes(app: &App) -> &'static str {
    if public_base(app).starts_with("https://") {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

fn set_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `r` with the `Set-Cookie` of a new session (`Secure` when the public URL
/// is https).
pub fn with_session_cookie(app: &App, r: Response, token: &str, max_age_secs: u64) -> Response {
    set_cookie(r, &format!("{}={token}; Max-Age={max_age_secs}{}", sessions::COOKIE, cookie_attributes(app)))
}

/// `r` with a `Set-Cookie` that removes the session cookie.
pub fn without_session_cookie(app: &App, r: Response) -> Response {
    set_cookie(r, &format!("{}=; Max-Age=0{}", sessions::COOKIE, cookie_attributes(app)))
}

/// `POST /api/v1/sessions {email, password}`: signs in, sets the session
/// cookie, and answers the user and the session's CSRF token.
pub async fn sign_in(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    ApiJson(b): ApiJson<SignInBody>,
) -> Result<Response, AppError> {
    check_origin(&headers)?;
    let new = sessions::sign_in(&app, ip, &b.email, SecretString::from(b.password)).await?;
    let token = new.token.expose_secret();
    let body = json!({
        "user": UserView::from(&new.user),
        "csrf_token": sessions::csrf_token_for(token),
        "must_change_password": new.user.must_change_password,
    });
    let r = no_store((StatusCode::CREATED, Json(body)).into_response());
    Ok(with_session_cookie(&app, r, token, new.max_age_secs))
}

/// `DELETE /api/v1/sessions/current`: signs out (CSRF-checked).
pub async fn sign_out(
    State(app): State<Arc<App>>,
    session: Session,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    check_session_write(&session, &headers)?;
    sessions::sign_out(&app, &session).await?;
    Ok(without_session_cookie(&app, StatusCode::NO_CONTENT.into_response()))
}
