//! The SDK's error type: one enum covering every failure, each API variant
//! carrying the HTTP status, the API error code, the message and the request id
//! where they are known.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Configuration is missing or malformed. `variable` names the environment
/// variable (e.g. `SCOPE_API_SECRET`) or the builder option (e.g. `api_url`)
/// at fault, so the message tells the operator what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The environment variable or builder option at fault, if one is.
    pub variable: Option<String>,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl ConfigError {
    /// An error about the setting `variable`.
    pub fn new(variable: impl Into<String>, message: impl Into<String>) -> Self {
        Self { variable: Some(variable.into()), message: message.into() }
    }

    /// An error that is not about one particular setting.
    pub fn general(message: impl Into<String>) -> Self {
        Self { variable: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variable {
            Some(v) => write!(f, "{v}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What the server said about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status, when a response was received.
    pub status: Option<u16>,
    /// The API error code (`not_found`, `unauthorized`, …), when the body had one.
    pub code: Option<String>,
    /// A human-readable message (the server's, or one made up by the SDK).
    pub message: String,
    /// The `X-Request-ID` of the failed request: the server's echo, or the one
    /// the SDK sent.
    pub request_id: Option<String>,
}

impl ApiError {
    pub(crate) fn client_side(message: impl Into<String>) -> Self {
        Self { status: None, code: None, message: message.into(), request_id: None }
    }
}

impl ApiError {
    /// ` (HTTP 404, code not_found, request id …)`, or nothing.
    fn context(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(format!("HTTP {s}"));
        }
        if let Some(c) = &self.code {
            parts.push(format!("code {c}"));
        }
        if let Some(r) = &self.request_id {
            parts.push(format!("request id {r}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.message, self.context())
    }
}

/// Every way an SDK call can fail.
///
/// `Display` prints each fact once: an error that wraps a cause (a
/// [`Connection`](Error::Connection) or [`Timeout`](Error::Timeout) wraps the
/// underlying [`reqwest::Error`]) does not repeat the cause's text but returns
/// it from [`source`](std::error::Error::source), so that `anyhow`'s `{:#}` or
/// [`Error::chain`] print the whole story without duplicates and
/// `io::ErrorKind` or TLS errors can be inspected by walking the chain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// Missing or malformed configuration; nothing was sent.
    Config(ConfigError),
    /// The credentials were refused (401), or the token was refused even after
    /// a refresh.
    Authentication(ApiError),
    /// The caller may not do this (403).
    Authorization(ApiError),
    /// The prompt or version does not exist (404).
    NotFound(ApiError),
    /// The prompt exists but no version is published to production (404 with
    /// code `no_production_version`).
    NoProductionVersion {
        /// The prompt name (or id) that was asked for.
        name: String,
        /// What the server answered.
        detail: ApiError,
    },
    /// 409.
    Conflict(ApiError),
    /// 429, after the retries were used up (or the server asked to wait longer
    /// than the retry policy allows).
    RateLimited {
        /// What the server answered.
        detail: ApiError,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// 5xx, after the retries were used up.
    Server(ApiError),
    /// The request was rejected as invalid (400, 413, 422), or the SDK
    /// rejected it before sending (an empty prompt name, say).
    Validation(ApiError),
    /// Rendering needs variables that were not given.
    MissingVariables {
        /// Every missing variable, in template order.
        variables: Vec<String>,
    },
    /// Strict rendering was given variables the template does not use.
    UnknownVariables {
        /// The variables the template does not use.
        variables: Vec<String>,
    },
    /// The server could not be reached (refused, reset, DNS, TLS…). The
    /// cause is the [`source`](std::error::Error::source).
    Connection {
        /// The `X-Request-ID` the SDK sent.
        request_id: Option<String>,
        /// The HTTP client's error.
        source: Arc<reqwest::Error>,
    },
    /// No complete response within the configured timeout. The cause is the
    /// [`source`](std::error::Error::source).
    Timeout {
        /// The `X-Request-ID` the SDK sent.
        request_id: Option<String>,
        /// The HTTP client's error.
        source: Arc<reqwest::Error>,
    },
    /// A response body (or metadata) could not be decoded as expected.
    Decode(ApiError),
    /// A response body was longer than
    /// [`max_response_bytes`](crate::ClientBuilder::max_response_bytes)
    /// (8 MiB by default); it was not read further.
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The request's `X-Request-ID`.
        request_id: Option<String>,
    },
    /// Any other HTTP status.
    Http(ApiError),
    /// A [`blocking::Client`](crate::blocking::Client) call was made directly
    /// inside async code on a current-thread tokio runtime, where waiting
    /// would stall that runtime. Use the async [`Client`](crate::Client)
    /// there, or call from `tokio::task::spawn_blocking`.
    BlockingInAsyncContext,
    /// The blocking client's own runtime could not be started, or lost the
    /// request.
    BlockingRuntime {
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "configuration error: {e}"),
            Error::Authentication(e) => write!(f, "authentication failed: {e}"),
            Error::Authorization(e) => write!(f, "not authorized: {e}"),
            Error::NotFound(e) => write!(f, "not found: {e}"),
            // The server's message says the same as ours; print only its
            // context (status, code, request id).
            Error::NoProductionVersion { name, detail } => {
                write!(f, "prompt '{name}' has no production version{}", detail.context())
            }
            Error::Conflict(e) => write!(f, "conflict: {e}"),
            Error::RateLimited { detail, retry_after } => {
                f.write_str("rate limited")?;
                if let Some(d) = retry_after {
                    write!(f, " (retry after {:.1}s)", d.as_secs_f64())?;
                }
                write!(f, ": {detail}")
            }
            Error::Server(e) => write!(f, "server error: {e}"),
            Error::Validation(e) => write!(f, "invalid request: {e}"),
            Error::MissingVariables { variables } => write!(f, "missing variables: {}", variables.join(", ")),
            Error::UnknownVariables { variables } => write!(f, "unknown variables: {}", variables.join(", ")),
            Error::Connection { request_id, .. } => {
                write!(f, "connection failed{}", request_id_suffix(request_id.as_deref()))
            }
            Error::Timeout { request_id, .. } => {
                write!(f, "request timed out{}", request_id_suffix(request_id.as_deref()))
            }
            Error::Decode(e) => write!(f, "could not decode response: {e}"),
            Error::ResponseTooLarge { limit, request_id } => write!(
                f,
                "response body larger than {limit} bytes (max_response_bytes), not read{}",
                request_id_suffix(request_id.as_deref())
            ),
            Error::Http(e) => write!(f, "unexpected response: {e}"),
            Error::BlockingInAsyncContext => f.write_str(
                "scope_client::blocking::Client was called from async code on a current-thread runtime; \
                 use scope_client::Client there, or call it from tokio::task::spawn_blocking",
            ),
            Error::BlockingRuntime { message } => write!(f, "blocking client: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The reqwest error itself (not the `Arc`), so that
            // `downcast_ref::<reqwest::Error>()` works on it.
            Error::Connection { source, .. } | Error::Timeout { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// A failure that repeating the request cannot fix: the TLS libraries report
/// a failed handshake (a refused certificate, a protocol mismatch) as an
/// `io::Error` of kind `InvalidData` somewhere in the error's causes, while
/// refused, reset or timed-out connections have other kinds.
pub(crate) fn is_permanent_transport_error(e: &reqwest::Error) -> bool {
    if !e.is_connect() {
        return false;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = next {
        if is_invalid_data(cause) {
            return true;
        }
        next = cause.source();
    }
    false
}

/// An `io::Error` of kind `InvalidData`, possibly wrapped in other
/// `io::Error`s (whose `source()` skips the wrapped error itself).
fn is_invalid_data(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::InvalidData => true,
        Some(io) => io.get_ref().is_some_and(|inner| is_invalid_data(inner)),
        None => false,
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

fn request_id_suffix(request_id: Option<&str>) -> String {
    match request_id {
        Some(r) => format!(" (request id {r})"),
        None => String::new(),
    }
}

impl Error {
    /// What the server said (status, code, message, request id), for the
    /// variants that carry it.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::Authentication(e)
            | Error::Authorization(e)
            | Error::NotFound(e)
            | Error::Conflict(e)
            | Error::Server(e)
            | Error::Validation(e)
            | Error::Decode(e)
            | Error::Http(e) => Some(e),
            Error::NoProductionVersion { detail, .. } | Error::RateLimited { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The message alone, without status, code or request id: the server's
    /// message for an API error (or the SDK's, for one detected before
    /// sending), the problem for a configuration error. `None` for the other
    /// variants, whose `Display` (and, for connection failures and timeouts,
    /// [`source`](std::error::Error::source)) says everything.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Config(c) => Some(&c.message),
            other => other.api_error().map(|e| e.message.as_str()),
        }
    }

    /// The HTTP status of the failed response, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.api_error().and_then(|e| e.status)
    }

    /// The API error code (`not_found`, `no_production_version`, …), if the
    /// server sent one.
    pub fn code(&self) -> Option<&str> {
        self.api_error().and_then(|e| e.code.as_deref())
    }

    /// The request id of the failed request, if one was sent or echoed.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Connection { request_id, .. }
            | Error::Timeout { request_id, .. }
            | Error::ResponseTooLarge { request_id, .. } => request_id.as_deref(),
            other => other.api_error().and_then(|e| e.request_id.as_deref()),
        }
    }

    /// How long the server asked us to wait, for [`Error::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failure is transient (rate limiting, a server error, a
    /// timeout or a connection failure): what the SDK retries, and what
    /// stale-if-error covers.
    ///
    /// A connection failure is not transient when the TLS handshake failed
    /// (an untrusted or invalid certificate, say): retrying cannot help.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connection { source, .. } => !is_permanent_transport_error(source),
            Error::RateLimited { .. } | Error::Server(_) | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the connection failed in the TLS handshake (an untrusted,
    /// expired or mismatched certificate, no common protocol version…).
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Connection { source, .. } if is_permanent_transport_error(source))
    }

    /// This error and its causes on one line, separated by `: ` (what
    /// `anyhow` prints with `{:#}`), for logs and messages to users.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// The `Display` of an error followed by those of its sources; see
/// [`Error::chain`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl From<scope_domain::template::RenderError> for Error {
    fn from(e: scope_domain::template::RenderError) -> Self {
        use scope_domain::template::RenderError;
        match e {
            RenderError::Missing(variables) => Error::MissingVariables { variables },
            RenderError::Unknown(variables) => Error::UnknownVariables { variables },
        }
    }
}
