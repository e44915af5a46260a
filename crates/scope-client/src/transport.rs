//! One HTTP exchange with retries, hooks, tracing and the SPEC's error
//! mapping. Nothing here logs a header: the bearer token travels only inside
//! reqwest's `bearer_auth` (which marks the header sensitive).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::Instrument;

use crate::error::{is_permanent_transport_error, ApiError, Chain, Error};
use crate::hooks::{ErrorEvent, Hooks, RequestEvent, ResponseEvent};
use crate::retry::{is_retryable_status, parse_retry_after, RetryPolicy};
use crate::token::TokenManager;

pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";
pub(crate) const ENVIRONMENT_HEADER: &str = "x-scope-environment";
/// The API error code of a 404 for a prompt that exists but has no
/// published version.
pub(crate) const CODE_NO_PRODUCTION_VERSION: &str = "no_production_version";

/// What a request is for; decides how a 404 reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    TokenExchange,
    /// The event stream of `watch`.
    Events,
    Prompt {
        name: &'a str,
    },
}

pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub body: Option<&'a serde_json::Value>,
    pub target: Target<'a>,
    /// An `ETag` to revalidate: sent as `If-None-Match`, and a `304` is then
    /// an answer ([`Reply::NotModified`]) rather than an error.
    pub if_none_match: Option<&'a str>,
}

/// A successful answer.
pub(crate) enum Reply<T> {
    /// `2xx` with its decoded body and `ETag`.
    Body(T, Option<String>),
    /// `304` to an `If-None-Match`: the copy held is current.
    NotModified,
}

/// An error body is read up to this much (only its message is used).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A failed attempt, before the retry decision.
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The response said 401 (only meaningful with a bearer token).
    unauthorized: bool,
    retryable: bool,
    retry_after: Option<Duration>,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    /// Per attempt, set on each request so that it holds with a
    /// caller-supplied `reqwest::Client` too.
    timeout: Duration,
    retry: RetryPolicy,
    hooks: Hooks,
    environment: Option<HeaderValue>,
    /// Longest response body read; a longer one is
    /// [`Error::ResponseTooLarge`].
    max_body: usize,
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
        hooks: Hooks,
        environment: Option<HeaderValue>,
        max_body: usize,
    ) -> Self {
        Self { http, timeout, retry, hooks, environment, max_body }
    }

    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    pub(crate) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// A request with the SDK's headers (not sent; no timeout set).
    pub(crate) fn builder(&self, method: Method, url: &Url, request_id: &str) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .request(method, url.clone())
            .header(USER_AGENT, crate::client::USER_AGENT)
            .header(REQUEST_ID_HEADER, request_id);
        if let Some(env) = &self.environment {
            rb = rb.header(ENVIRONMENT_HEADER, env.clone());
        }
        rb
    }

    /// Send without credentials (the token exchange), retrying transient
    /// failures.
    pub(crate) async fn send_unauthenticated<T: DeserializeOwned>(&self, req: &Request<'_>) -> Result<T, Error> {
        let request_id = new_request_id();
        let mut retry = 0u32;
        loop {
            match self.attempt(req, None, &request_id, retry).await {
                Ok(Reply::Body(v, _)) => return Ok(v),
                Ok(Reply::NotModified) => return Err(not_modified_unasked(&request_id)),
                Err(f) => match self.retry_delay(retry, &f) {
                    Some(wait) => {
                        self.report_error(req, &request_id, retry, &f.error, true);
                        sleep(wait).await;
                        retry += 1;
                    }
                    None => {
                        self.report_error(req, &request_id, retry, &f.error, false);
                        return Err(f.error);
                    }
                },
            }
        }
    }

    /// Send with a bearer token from `tokens`, retrying transient failures; a
    /// 401 makes the token manager refresh once, then the request is repeated
    /// (that repeat is not counted as a retry).
    pub(crate) async fn send_authenticated<T: DeserializeOwned>(
        &self,
        tokens: &TokenManager,
        req: &Request<'_>,
    ) -> Result<Reply<T>, Error> {
        let request_id = new_request_id();
        let mut retry = 0u32;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            let token = tokens.token(self).await?;
            let outcome = self.attempt(req, Some(token.value()), &request_id, attempt).await;
            attempt += 1;
            match outcome {
                Ok(v) => return Ok(v),
                Err(f) if f.unauthorized && !refreshed => {
                    self.report_error(req, &request_id, attempt - 1, &f.error, true);
                    tracing::debug!(request_id = %request_id, "token refused with 401; refreshing once");
                    refreshed = true;
                    tokens.refresh_rejected(self, token.generation()).await?;
                }
                Err(f) => match self.retry_delay(retry, &f) {
                    Some(wait) => {
                        self.report_error(req, &request_id, attempt - 1, &f.error, true);
                        sleep(wait).await;
                        retry += 1;
                    }
                    None => {
                        self.report_error(req, &request_id, attempt - 1, &f.error, false);
                        return Err(f.error);
                    }
                },
            }
        }
    }

    fn retry_delay(&self, retry: u32, f: &Failure) -> Option<Duration> {
        if !f.retryable {
            return None;
        }
        self.retry.delay(retry, f.retry_after, &mut rand::thread_rng())
    }

    fn report_error(&self, req: &Request<'_>, request_id: &str, attempt: u32, error: &Error, will_retry: bool) {
        if will_retry {
            tracing::debug!(request_id = %request_id, attempt, error = %error.chain(), "attempt failed; will retry");
        } else {
            tracing::debug!(request_id = %request_id, attempt, error = %error.chain(), "request failed");
        }
        if let Some(hook) = &self.hooks.on_error {
            let rid = error.request_id().unwrap_or(request_id);
            hook(&ErrorEvent {
                method: req.method.as_str(),
                url: req.url.as_str(),
                request_id: rid,
                attempt,
                error,
                will_retry,
            });
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        req: &Request<'_>,
        bearer: Option<&SecretString>,
        request_id: &str,
        attempt: u32,
    ) -> Result<Reply<T>, Failure> {
        let span = tracing::debug_span!(
            "scope_client.http",
            http.method = %req.method,
            url = %req.url,
            request_id = %request_id,
            attempt,
            http.status = tracing::field::Empty,
        );
        async {
            if let Some(hook) = &self.hooks.on_request {
                hook(&RequestEvent { method: req.method.as_str(), url: req.url.as_str(), request_id, attempt });
            }
            let started = Instant::now();
            let mut rb = self
                .builder(req.method.clone(), req.url, request_id)
                .timeout(self.timeout)
                .header(ACCEPT, "application/json");
            if let Some(tag) = req.if_none_match {
                rb = rb.header(IF_NONE_MATCH, tag);
            }
            if let Some(token) = bearer {
                rb = rb.bearer_auth(token.expose_secret());
            }
            if let Some(body) = req.body {
                rb = rb.json(body);
            }
            let resp = rb.send().await.map_err(|e| transport_failure(e, request_id))?;
            let status = resp.status().as_u16();
            tracing::Span::current().record("http.status", status);
            let headers = resp.headers().clone();
            let rid = header_str(&headers, REQUEST_ID_HEADER).unwrap_or(request_id).to_owned();
            if resp.url() != req.url {
                // Only a caller-supplied reqwest::Client follows redirects
                // (the SDK's own never does): refuse what came from elsewhere.
                return Err(redirect_failure(status, Some(resp.url().as_str()), req.url, rid));
            }
            let ok = (200..300).contains(&status) || (status == 304 && req.if_none_match.is_some());
            let limit = if ok { self.max_body } else { self.max_body.min(MAX_ERROR_BODY) };
            let body = read_body(resp, limit, !ok, &rid).await?;
            if let Some(hook) = &self.hooks.on_response {
                hook(&ResponseEvent {
                    method: req.method.as_str(),
                    url: req.url.as_str(),
                    request_id: &rid,
                    attempt,
                    status,
                    elapsed: started.elapsed(),
                });
            }
            if status == 304 && req.if_none_match.is_some() {
                return Ok(Reply::NotModified);
            }
            if (300..400).contains(&status) {
                return Err(redirect_failure(status, header_str(&headers, LOCATION.as_str()), req.url, rid));
            }
            if (200..300).contains(&status) {
                let etag = header_str(&headers, ETAG.as_str()).map(str::to_owned);
                return serde_json::from_slice::<T>(&body).map(|v| Reply::Body(v, etag)).map_err(|e| Failure {
                    error: Error::Decode(ApiError {
                        status: Some(status),
                        code: None,
                        message: format!("unexpected response body: {e}"),
                        request_id: Some(rid.clone()),
                    }),
                    unauthorized: false,
                    retryable: false,
                    retry_after: None,
                });
            }
            let retry_after =
                header_str(&headers, RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, SystemTime::now()));
            Err(Failure {
                error: error_from_status(status, &body, rid, retry_after, req.target),
                unauthorized: status == 401 && bearer.is_some(),
                retryable: is_retryable_status(status),
                retry_after,
            })
        }
        .instrument(span)
        .await
    }
}

/// Read a body of at most `limit` bytes: a longer one is
/// [`Error::ResponseTooLarge`], or, with `truncate` (error bodies, read only
/// for their message), cut at the limit.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
    truncate: bool,
    request_id: &str,
) -> Result<Vec<u8>, Failure> {
    let too_large = || Failure {
        error: Error::ResponseTooLarge { limit, request_id: Some(request_id.to_owned()) },
        unauthorized: false,
        retryable: false,
        retry_after: None,
    };
    let announced = resp.content_length().and_then(|n| usize::try_from(n).ok());
    if announced.is_some_and(|n| n > limit) && !truncate {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0).min(limit));
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_failure(e, request_id))? {
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A `3xx`: never followed, since the request may carry the API secret (the
/// token exchange) or a token, and a `307`/`308` would send it again to
/// wherever the `Location` points.
fn redirect_failure(status: u16, location: Option<&str>, url: &Url, request_id: String) -> Failure {
    let to = location.map(|l| format!(" to {l}")).unwrap_or_default();
    let message = format!(
        "{url} redirected{to} (HTTP {status}); redirects are not followed, so that credentials are never sent \
         elsewhere: set SCOPE_API_URL / SCOPE_AUTH_API_URL to the final address"
    );
    Failure {
        error: Error::Http(ApiError { status: Some(status), code: None, message, request_id: Some(request_id) }),
        unauthorized: false,
        retryable: false,
        retry_after: None,
    }
}

fn not_modified_unasked(request_id: &str) -> Error {
    Error::Http(ApiError {
        status: Some(304),
        code: None,
        message: "304 Not Modified to a request without If-None-Match".to_owned(),
        request_id: Some(request_id.to_owned()),
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

pub(crate) fn new_request_id() -> String {
    ulid::Ulid::new().to_string()
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

pub(crate) fn transport_failure(e: reqwest::Error, request_id: &str) -> Failure {
    let request_id = Some(request_id.to_owned());
    let (error, retryable) = if e.is_timeout() {
        (Error::Timeout { request_id, source: Arc::new(e) }, true)
    } else if e.is_builder() {
        let message = Chain(&e).to_string();
        (Error::Validation(ApiError { status: None, code: None, message, request_id }), false)
    } else {
        // Connect, request, body and decode-level transport errors: the
        // connection failed somewhere on the way. A refused certificate (or
        // another TLS handshake failure) fails the same way every time.
        let retryable = !is_permanent_transport_error(&e);
        (Error::Connection { request_id, source: Arc::new(e) }, retryable)
    };
    Failure { error, unauthorized: false, retryable, retry_after: None }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    error: Option<NestedError>,
}

#[derive(Deserialize, Default)]
struct NestedError {
    code: Option<String>,
    message: Option<String>,
}

/// Map an error response to the SDK's error type (SPEC §5 body:
/// `{"code","message","error":{"code","message"}}`).
pub(crate) fn error_from_status(
    status: u16,
    body: &[u8],
    request_id: String,
    retry_after: Option<Duration>,
    target: Target<'_>,
) -> Error {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let nested = parsed.error.unwrap_or_default();
    let code = nested.code.or(parsed.code);
    let message = nested.message.or(parsed.message).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
        if text.is_empty() {
            reason.to_owned()
        } else {
            format!("{reason}: {}", truncate(text, 200))
        }
    });
    let detail = ApiError { status: Some(status), code, message, request_id: Some(request_id) };
    match status {
        400 | 413 | 422 => Error::Validation(detail),
        401 => Error::Authentication(detail),
        403 => Error::Authorization(detail),
        404 => match target {
            // The server tells a prompt without a published version apart
            // from a missing prompt by its code, not its message.
            Target::Prompt { name } if detail.code.as_deref() == Some(CODE_NO_PRODUCTION_VERSION) => {
                Error::NoProductionVersion { name: name.to_owned(), detail }
            }
            _ => Error::NotFound(detail),
        },
        409 => Error::Conflict(detail),
        429 => Error::RateLimited { detail, retry_after },
        500..=599 => Error::Server(detail),
        _ => Error::Http(detail),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
