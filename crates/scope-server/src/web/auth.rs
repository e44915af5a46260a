//! Sign-in, sign-out, invitation acceptance and password change pages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::{is_local_path, see_other, WebError};
use super::extract::{Ctx, NoFields, PublicForm, SessionForm, WebPath, WebQuery};
use super::layout::{self, form_error, Section};
use crate::error::AppError;
use crate::http::extract::ClientIp;
use crate::http::users::{with_session_cookie, without_session_cookie};
use crate::service::passwords::MIN_PASSWORD_CHARS;
use crate::service::sessions::{self, NewSession};
use crate::service::{users, App};

#[derive(Deserialize, Default)]
pub struct NextParam {
    next: Option<String>,
}

fn login_form(next: Option<&str>, email: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.narrow {
            h1 { "Sign in" }
            (form_error(error))
            form method="post" action="/login" {
                @if let Some(n) = next.filter(|n| is_local_path(n)) {
                    input type="hidden" name="next" value=(n);
                }
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
        }
    }
}

pub async fn login_page(WebQuery(q): WebQuery<NextParam>) -> Response {
    layout::bare("Sign in", login_form(q.next.as_deref(), "", None)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// Sets the session cookie on a redirect.
fn signed_in(app: &App, new: &NewSession, to: &str) -> Response {
    with_session_cookie(app, see_other(to), new.token.expose_secret(), new.max_age_secs)
}

pub async fn login(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    PublicForm(f): PublicForm<LoginForm>,
) -> Result<Response, WebError> {
    match sessions::sign_in(&app, ip, &f.email, SecretString::from(f.password)).await {
        Ok(new) => {
            let to = if new.user.must_change_password {
                "/account/password".to_owned()
            } else {
                f.next.filter(|n| is_local_path(n)).unwrap_or_else(|| "/prompts".to_owned())
            };
            Ok(signed_in(&app, &new, &to))
        }
        Err(AppError::RateLimited(secs)) => {
            let msg = format!("Too many attempts. Try again in {secs} seconds.");
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                layout::bare("Sign in", login_form(f.next.as_deref(), &f.email, Some(&msg))),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(r)
        }
        Err(AppError::Domain(_)) | Err(AppError::InvalidCredentials) => {
            let body = login_form(f.next.as_deref(), &f.email, Some("Invalid email or password."));
            Ok((StatusCode::UNAUTHORIZED, layout::bare("Sign in", body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(
    State(app): State<Arc<App>>,
    SessionForm { ctx, .. }: SessionForm<NoFields>,
) -> Result<Response, WebError> {
    sessions::sign_out(&app, &ctx.session).await?;
    Ok(without_session_cookie(&app, see_other("/login")))
}

fn invite_form(token: &str, email: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.narrow {
            h1 { "Welcome to Scope" }
            p { "Choose a password for " strong { (email) } "." }
            (form_error(error))
            form method="post" action={ "/invite/" (token) } {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="new-password" minlength=(MIN_PASSWORD_CHARS) required autofocus;
                label for="confirm" { "Confirm password" }
                input #confirm type="password" name="confirm" autocomplete="new-password" required;
                p.hint { "At least " (MIN_PASSWORD_CHARS) " characters." }
                button.primary type="submit" { "Set password" }
            }
        }
    }
}

pub async fn invite_page(State(app): State<Arc<App>>, WebPath(token): WebPath<String>) -> Result<Response, WebError> {
    let pending = users::pending_invitation(&app, &token).await?;
    Ok(layout::bare("Accept invitation", invite_form(&token, &pending.email, None)).into_response())
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn accept_invite(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    WebPath(token): WebPath<String>,
    PublicForm(f): PublicForm<SetPasswordForm>,
) -> Result<Response, WebError> {
    let pending = users::pending_invitation(&app, &token).await?;
    let retry = |msg: &str| {
        (StatusCode::BAD_REQUEST, layout::bare("Accept invitation", invite_form(&token, &pending.email, Some(msg))))
            .into_response()
    };
    if f.password != f.confirm {
        return Ok(retry("The two passwords differ."));
    }
    let user = match users::accept_invitation(&app, &token, SecretString::from(f.password.clone())).await {
        Ok(u) => u,
        Err(AppError::Domain(d)) if d.code == scope_domain::ErrorCode::BadRequest => return Ok(retry(&d.message)),
        Err(e) => return Err(e.into()),
    };
    let new = sessions::sign_in(&app, ip, &user.email, SecretString::from(f.password)).await?;
    Ok(signed_in(&app, &new, "/prompts"))
}

fn password_form(ctx: &Ctx, error: Option<&str>) -> maud::Markup {
    html! {
        section.narrow {
            h1 { "Change password" }
            @if ctx.session.user.must_change_password {
                p.notice { "Your initial password was for one use only. Choose your own to continue." }
            }
            (form_error(error))
            form method="post" action="/account/password" {
                (layout::csrf_input(ctx))
                label for="current" { "Current password" }
                input #current type="password" name="current" autocomplete="current-password" required;
                label for="new" { "New password" }
                input #new type="password" name="new" autocomplete="new-password" minlength=(MIN_PASSWORD_CHARS) required;
                label for="confirm" { "Confirm new password" }
                input #confirm type="password" name="confirm" autocomplete="new-password" required;
                p.hint { "At least " (MIN_PASSWORD_CHARS) " characters. Your other sessions end." }
                button.primary type="submit" { "Change password" }
            }
        }
    }
}

pub async fn password_page(ctx: Ctx) -> Response {
    layout::page(&ctx, Section::Account, "Change password", password_form(&ctx, None)).into_response()
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(SessionForm { ctx, form: f }: SessionForm<PasswordForm>) -> Result<Response, WebError> {
    let retry = |ctx: &Ctx, msg: &str| {
        (StatusCode::BAD_REQUEST, layout::page(ctx, Section::Account, "Change password", password_form(ctx, Some(msg))))
            .into_response()
    };
    if f.new != f.confirm {
        return Ok(retry(&ctx, "The two new passwords differ."));
    }
    let result = users::change_own_password(
        &ctx.app,
        ctx.p(),
        Some(&ctx.session.digest),
        SecretString::from(f.current),
        SecretString::from(f.new),
    )
    .await;
    match result {
        Ok(()) => Ok(see_other("/prompts")),
        Err(AppError::Domain(d)) if d.code == scope_domain::ErrorCode::BadRequest => Ok(retry(&ctx, &d.message)),
        Err(e) => Err(e.into()),
    }
}
