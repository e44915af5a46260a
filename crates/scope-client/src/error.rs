//! The SDK's error type: one enum covering SPEC §7's list, each API variant
//! carrying the HTTP status, the API error code, the message and the request id
//! where they are known.

use std::fmt;
use std::time::Duration;

/// Configuration is missing or malformed. `variable` names the environment
/// variable (e.g. `SCOPE_API_SECRET`) or the builder option (e.g. `api_url`)
/// at fault, so the message tells the operator what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub variable: Option<String>,
    pub message: String,
}

impl ConfigError {
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

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
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
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Every way an SDK call can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Missing or malformed configuration; nothing was sent.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The credentials were refused (401), or the token was refused even after
    /// a refresh.
    #[error("authentication failed: {0}")]
    Authentication(ApiError),
    /// The caller may not do this (403).
    #[error("not authorized: {0}")]
    Authorization(ApiError),
    /// The prompt or version does not exist (404).
    #[error("not found: {0}")]
    NotFound(ApiError),
    /// The prompt exists but no version is published to production.
    #[error("prompt '{name}' has no production version: {detail}")]
    NoProductionVersion { name: String, detail: ApiError },
    /// 409.
    #[error("conflict: {0}")]
    Conflict(ApiError),
    /// 429, after the retries were used up (or the server asked to wait longer
    /// than the retry policy allows).
    #[error("rate limited{}: {detail}", retry_after_suffix(.retry_after))]
    RateLimited { detail: ApiError, retry_after: Option<Duration> },
    /// 5xx, after the retries were used up.
    #[error("server error: {0}")]
    Server(ApiError),
    /// The request was rejected as invalid (400, 413, 422), or the SDK
    /// rejected it before sending (an empty prompt name, say).
    #[error("invalid request: {0}")]
    Validation(ApiError),
    /// Rendering needs variables that were not given.
    #[error("missing variables: {}", .variables.join(", "))]
    MissingVariables { variables: Vec<String> },
    /// Strict rendering was given variables the template does not use.
    #[error("unknown variables: {}", .variables.join(", "))]
    UnknownVariables { variables: Vec<String> },
    /// The server could not be reached (refused, reset, DNS, TLS…).
    #[error("connection failed: {message}")]
    Connection { message: String, request_id: Option<String> },
    /// No complete response within the configured timeout.
    #[error("request timed out: {message}")]
    Timeout { message: String, request_id: Option<String> },
    /// A response body (or metadata) could not be decoded as expected.
    #[error("could not decode response: {0}")]
    Decode(ApiError),
    /// Any other HTTP status.
    #[error("unexpected response: {0}")]
    Http(ApiError),
}

fn retry_after_suffix(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {:.1}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

impl Error {
    fn api(&self) -> Option<&ApiError> {
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

    /// The HTTP status of the failed response, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.api().and_then(|e| e.status)
    }

    /// The API error code (`not_found`, …), if the server sent one.
    pub fn code(&self) -> Option<&str> {
        self.api().and_then(|e| e.code.as_deref())
    }

    /// The request id of the failed request, if one was sent or echoed.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Connection { request_id, .. } | Error::Timeout { request_id, .. } => request_id.as_deref(),
            other => other.api().and_then(|e| e.request_id.as_deref()),
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
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Server(_) | Error::Connection { .. } | Error::Timeout { .. })
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
