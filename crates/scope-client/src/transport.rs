//! One HTTP exchange with retries, hooks, tracing and the SPEC's error
//! mapping. Nothing here logs a header: the bearer token travels only inside
//! reqwest's `bearer_auth` (which marks the header sensitive).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER, USER_AGENT};
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
    Prompt { name: &'a str },
}

pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub body: Option<&'a serde_json::Value>,
    pub target: Target<'a>,
}

/// A failed attempt, before the retry decision.
struct Failure {
    error: Error,
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
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
        hooks: Hooks,
        environment: Option<HeaderValue>,
    ) -> Self {
        Self { http, timeout, retry, hooks, environment }
    }

    /// Send without credentials (the token exchange), retrying transient
    /// failures.
    pub(crate) async fn send_unauthenticated<T: DeserializeOwned>(&self, req: &Request<'_>) -> Result<T, Error> {
        let request_id = new_request_id();
        let mut retry = 0u32;
        loop {
            match self.attempt(req, None, &request_id, retry).await {
                Ok(v) => return Ok(v),
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
    ) -> Result<T, Error> {
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
    ) -> Result<T, Failure> {
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
                .http
                .request(req.method.clone(), req.url.clone())
                .timeout(self.timeout)
                .header(ACCEPT, "application/json")
                .header(USER_AGENT, crate::client::USER_AGENT)
                .header(REQUEST_ID_HEADER, request_id);
            if let Some(env) = &self.environment {
                rb = rb.header(ENVIRONMENT_HEADER, env.clone());
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
            let body = resp.bytes().await.map_err(|e| transport_failure(e, &rid))?;
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
            if (200..300).contains(&status) {
                return serde_json::from_slice::<T>(&body).map_err(|e| Failure {
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

fn transport_failure(e: reqwest::Error, request_id: &str) -> Failure {
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
