//! Conditional reads of the SDK-facing GETs (SPEC §9): every answer carries
//! a strong `ETag` (and, for a label, `X-Scope-Label` naming the label
//! served); a request whose `If-None-Match` names the current tag gets
//! `304 Not Modified` with no body. On the hot path the tag comes with the
//! cached bytes (`runtime::prompt_cache::Served`), so revalidating costs a
//! header comparison.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::runtime::prompt_cache::{etag_of, Served};

/// The label a version was served as.
pub static X_SCOPE_LABEL: HeaderName = HeaderName::from_static("x-scope-label");

static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The request's `If-None-Match`, if any.
pub struct IfNoneMatch(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(parts.headers.get(header::IF_NONE_MATCH).cloned()))
    }
}

impl IfNoneMatch {
    /// Whether `etag` is among the tags asked about (`*` matches any).
    /// `If-None-Match` compares weakly (RFC 9110 §13.1.2): `W/"x"` matches
    /// `"x"`.
    pub fn matches(&self, etag: &HeaderValue) -> bool {
        let Some(value) = self.0.as_ref().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let etag = etag.as_bytes();
        value.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag)
    }

    /// A cached answer: `304` when the client has it, else `200` with it.
    pub fn respond(&self, served: Served) -> Response {
        let tags = [(header::ETAG, served.etag.clone()), (X_SCOPE_LABEL.clone(), served.label)];
        if self.matches(&served.etag) {
            return (StatusCode::NOT_MODIFIED, tags).into_response();
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON.clone())], tags, served.body).into_response()
    }

    /// A JSON answer made for this request (not cached): its tag is
    /// computed here.
    pub fn respond_json(&self, body: Bytes) -> Response {
        let etag = etag_of("", &body);
        if self.matches(&etag) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON.clone()), (header::ETAG, etag)], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(v: &'static str) -> IfNoneMatch {
        IfNoneMatch(Some(HeaderValue::from_static(v)))
    }

    #[test]
    fn matching() {
        let tag = HeaderValue::from_static("\"abc\"");
        assert!(inm("\"abc\"").matches(&tag));
        assert!(inm("W/\"abc\"").matches(&tag));
        assert!(inm("\"x\", \"abc\"").matches(&tag));
        assert!(inm("*").matches(&tag));
        assert!(!inm("\"abcd\"").matches(&tag));
        assert!(!inm("abc").matches(&tag));
        assert!(!IfNoneMatch(None).matches(&tag));
    }

    #[test]
    fn not_modified_has_no_body() {
        let served = Served::new("staging", Bytes::from_static(b"{}"));
        let r = IfNoneMatch(Some(served.etag.clone())).respond(served.clone());
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers().get(&X_SCOPE_LABEL), Some(&HeaderValue::from_static("staging")));
        assert_eq!(r.headers().get(header::ETAG), Some(&served.etag));
        let r = IfNoneMatch(None).respond(served);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get(header::CONTENT_TYPE), Some(&JSON));
    }
}
