//! Request, response and error hooks, for metrics and logging beyond the
//! built-in `tracing` spans. Hooks see methods, URLs, request ids, statuses
//! and timings; never a header, a token or a secret.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Sent before every attempt (retries included).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestEvent<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The full URL (the token exchange included; URLs carry no secrets).
    pub url: &'a str,
    /// The `X-Request-ID` sent; shared by the attempts of one call.
    pub request_id: &'a str,
    /// 0 for the first attempt.
    pub attempt: u32,
}

/// Sent after every attempt that got a response, whatever its status.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseEvent<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// The server's `X-Request-ID`, or the one sent.
    pub request_id: &'a str,
    /// 0 for the first attempt, then 1, 2… for retries and the repeat after a token refresh.
    pub attempt: u32,
    /// The HTTP status.
    pub status: u16,
    /// From sending the request to the end of the response body.
    pub elapsed: Duration,
}

/// Sent after every failed attempt (an error status or no response).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorEvent<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// The `X-Request-ID` (the server's echo, or the one sent).
    pub request_id: &'a str,
    /// 0 for the first attempt, then 1, 2…
    pub attempt: u32,
    /// What went wrong.
    pub error: &'a Error,
    /// Whether the SDK will try again.
    pub will_retry: bool,
}

pub(crate) type RequestHook = Arc<dyn for<'a> Fn(&RequestEvent<'a>) + Send + Sync>;
pub(crate) type ResponseHook = Arc<dyn for<'a> Fn(&ResponseEvent<'a>) + Send + Sync>;
pub(crate) type ErrorHook = Arc<dyn for<'a> Fn(&ErrorEvent<'a>) + Send + Sync>;

/// The hooks of a client. Each is optional; set them through
/// [`ClientBuilder`](crate::ClientBuilder). Hooks run inline on the request
/// path: keep them quick.
#[derive(Clone, Default)]
pub struct Hooks {
    pub(crate) on_request: Option<RequestHook>,
    pub(crate) on_response: Option<ResponseHook>,
    pub(crate) on_error: Option<ErrorHook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_request", &self.on_request.is_some())
            .field("on_response", &self.on_response.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}
