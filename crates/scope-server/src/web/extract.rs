//! Extractors of the console: the signed-in session (`Ctx`, else a redirect
//! to the sign-in page), CSRF-checked forms, and path/query parameters whose
//! rejections become HTML error pages.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use scope_domain::DomainError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::WebError;
use crate::error::AppError;
use crate::http::extract::{check_origin, read_body};
use crate::service::sessions::{self, Session};
use crate::service::{App, Principal};

/// Pages a user with a one-time initial password may still open.
const ALLOWED_BEFORE_PASSWORD_CHANGE: &[&str] = &["/account/password", "/logout"];

/// The signed-in user of a console request.
pub struct Ctx {
    pub app: Arc<App>,
    pub session: Session,
}

impl Ctx {
    pub fn p(&self) -> &Principal {
        &self.session.principal
    }
}

impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let session = match Session::from_request_parts(parts, app).await {
            Ok(s) => s,
            Err(AppError::Unauthorized) => return Err(WebError::SignIn(next)),
            Err(e) => return Err(e.into()),
        };
        if session.user.must_change_password && !ALLOWED_BEFORE_PASSWORD_CHANGE.contains(&parts.uri.path()) {
            return Err(WebError::Redirect("/account/password".into()));
        }
        Ok(Ctx { app: app.clone(), session })
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted by a signed-in user: same-origin, carrying the session's
/// CSRF token in the hidden `csrf` field, else 403.
pub struct SessionForm<T> {
    pub ctx: Ctx,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Arc<App>> for SessionForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, app).await?;
        check_origin(&parts.headers)?;
        let bytes = read_body(Request::from_parts(parts, body), app).await?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        sessions::check_csrf(&ctx.session, Some(&csrf))?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        Ok(SessionForm { ctx, form })
    }
}

/// The form of a button that only posts the CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

/// A form posted without a session (sign-in, invitation): same-origin only.
pub struct PublicForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for PublicForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        check_origin(req.headers())?;
        let bytes = read_body(req, app).await?;
        serde_urlencoded::from_bytes(&bytes).map(PublicForm).map_err(bad_form)
    }
}

fn bad_form(e: serde_urlencoded::de::Error) -> WebError {
    AppError::from(DomainError::bad_request(format!("invalid form: {e}"))).into()
}

/// Path parameters; a rejection is a 400 page.
pub struct WebPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for WebPath<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| WebPath(p.0))
            .map_err(|e| AppError::from(DomainError::bad_request(format!("invalid path: {e}"))).into())
    }
}

/// Query parameters; a rejection is a 400 page.
pub struct WebQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for WebQuery<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(WebQuery)
            .map_err(|e| AppError::from(DomainError::bad_request(format!("invalid query string: {e}"))).into())
    }
}

/// Empty form fields mean "not given".
pub fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
