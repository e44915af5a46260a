//! The one layer every request goes through: the request id (the client's
//! `X-Request-ID` when it is sane, else a new ULID), the request context
//! every log line of the request is written with ([`RequestLog`]), the
//! request count and latency for
//! `/metrics`, the body-size limit the extractors read, and a panicking
//! handler turned into the SPEC's `500` body; and, on the Scope API, the
//! bare RFC 6750 challenge of a 401 to a request without credentials
//! (`oauth::wants_bare_challenge`; a route layer of its own cost every API
//! request a boxed service and a boxed future).
//!
//! One hand-written tower layer rather than `axum::middleware::from_fn` plus
//! `DefaultBodyLimit` plus tower-http's `CatchPanicLayer`: axum wraps every
//! route in a boxed service per layer, and each of those is cloned and
//! driven through its own `Oneshot` on every request; `from_fn` also boxes
//! its future. Measured in docs/BENCHMARKS.md ("Per-request overhead").
//!
//! The request context is not a tracing span: tracing-subscriber's fmt layer
//! registers a span and formats its fields when the span is created, whether
//! or not anything is logged inside it — about 15 % of the server's
//! instructions per `GET /healthz`. The context is kept in a thread-local
//! while the request's future runs, and the `scope` binary's log formatter
//! writes it into the lines logged meanwhile, in the form the span had
//! (`request{method=… path=… request_id=…}: ` in text, `span`/`spans` in
//! JSON; `scope-cli`'s `logging.rs`, which tests the two agree).

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use scope_domain::ErrorCode;
use tower::{Layer, Service};

use super::error::error_response;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The [`Layer`] of [`Telemetry`].
#[derive(Clone, Copy, Debug)]
pub struct TelemetryLayer {
    body_limit: DefaultBodyLimit,
}

impl TelemetryLayer {
    /// `max_body_bytes`: the largest request body the extractors accept.
    pub fn new(max_body_bytes: usize) -> Self {
        Self { body_limit: DefaultBodyLimit::max(max_body_bytes) }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    // The body limit is composed in directly, not as a route layer of its own.
    type Service = Telemetry<<DefaultBodyLimit as Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry { inner: self.body_limit.layer(inner) }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Telemetry<S> {
    inner: S,
}

impl<S> Service<Request> for Telemetry<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TelemetryFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if valid_request_id(v) => v.clone(),
            _ => new_request_id(),
        };
        let request =
            Arc::new(RequestLog { method: req.method().clone(), uri: req.uri().clone(), request_id: id.clone() });
        let method = crate::runtime::metrics::method_label(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let bare_challenge = super::oauth::wants_bare_challenge(&req);
        let inner = {
            let _entered = enter_request(&request);
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
                Ok(fut) => Guarded::Running { fut },
                Err(_) => Guarded::Panicked,
            }
        };
        TelemetryFuture { inner, request, id: Some(id), method, route, bare_challenge, started: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Telemetry`].
    pub struct TelemetryFuture<F> {
        #[pin]
        inner: Guarded<F>,
        request: Arc<RequestLog>,
        id: Option<HeaderValue>,
        method: &'static str,
        route: Option<MatchedPath>,
        bare_challenge: bool,
        started: Instant,
    }
}

impl<F> Future for TelemetryFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let entered = enter_request(this.request);
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        let (status, elapsed) = (resp.status().as_u16(), this.started.elapsed());
        tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "response");
        drop(entered);
        let route = this.route.as_ref().map(MatchedPath::as_str);
        crate::runtime::metrics::get().observe_request(this.method, route, status, elapsed);
        if let Some(id) = this.id.take() {
            resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
        }
        if *this.bare_challenge {
            super::oauth::bare_bearer_challenge(&mut resp);
        }
        Poll::Ready(Ok(resp))
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, or the `500` a panic in the handler became.
    #[project = GuardedProj]
    pub enum Guarded<F> {
        Running { #[pin] fut: F },
        Panicked,
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let polled = match self.project() {
            GuardedProj::Running { fut } => catch_unwind(AssertUnwindSafe(|| fut.poll(cx))).ok(),
            GuardedProj::Panicked => None,
        };
        match polled {
            Some(p) => p,
            // The future is not polled again: the response is final.
            None => {
                tracing::error!("handler panicked");
                Poll::Ready(Ok(error_response(ErrorCode::Internal, "internal error")))
            }
        }
    }
}

/// The request a log line was written for: what the line says about it.
#[derive(Debug)]
pub struct RequestLog {
    method: Method,
    uri: Uri,
    request_id: HeaderValue,
}

impl RequestLog {
    pub fn new(method: Method, uri: Uri, request_id: HeaderValue) -> Self {
        Self { method, uri, request_id }
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The path, except an invitation link's (its secret): its route.
    pub fn path(&self) -> &str {
        loggable_path(self.uri.path())
    }

    /// The `X-Request-ID` the answer carries (checked ASCII).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }
}

thread_local! {
    /// The request whose future this thread is polling, if any.
    static CURRENT_REQUEST: RefCell<Option<Arc<RequestLog>>> = const { RefCell::new(None) };
}

/// The request being answered on this thread (its future is being polled),
/// for the log formatter.
pub fn current_request() -> Option<Arc<RequestLog>> {
    CURRENT_REQUEST.try_with(|c| c.try_borrow().ok().and_then(|r| r.clone())).ok().flatten()
}

/// Makes `request` the current one on this thread until the guard drops
/// (then the previous one is current again).
pub fn enter_request(request: &Arc<RequestLog>) -> EnteredRequest {
    let previous = CURRENT_REQUEST.try_with(|c| c.try_borrow_mut().ok().map(|mut r| r.replace(request.clone())));
    EnteredRequest { previous: previous.ok().flatten() }
}

/// See [`enter_request`].
#[must_use]
pub struct EnteredRequest {
    /// `Some(previous)` when the request was entered.
    previous: Option<Option<Arc<RequestLog>>>,
}

impl Drop for EnteredRequest {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = CURRENT_REQUEST.try_with(|c| c.try_borrow_mut().map(|mut r| *r = previous));
        }
    }
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`: anything else (too long, spaces,
/// control characters) is replaced by a new id rather than logged.
pub(crate) fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new ULID, encoded on the stack (no `String` in between).
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; ulid::ULID_LEN];
    let s = ulid::Ulid::new().array_to_str(&mut buf);
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The request path as logged: an invitation link's path is its secret, so
/// only its route is written.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/invite/") {
        "/invite/{token}"
    } else {
        path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(&HeaderValue::from_static("")));
        assert!(!valid_request_id(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
        let id = new_request_id();
        assert_eq!(id.len(), ulid::ULID_LEN);
        assert!(valid_request_id(&id));
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn invitation_paths_are_not_logged() {
        assert_eq!(loggable_path("/invite/secret-token"), "/invite/{token}");
        assert_eq!(loggable_path("/api/v1/prompts"), "/api/v1/prompts");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod layer_tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::FromRequest as _;
    use axum::response::IntoResponse as _;
    use tower::ServiceExt as _;

    async fn body_json(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_spec_body_and_the_request_id() {
        let svc = TelemetryLayer::new(1024).layer(tower::service_fn(|_req: Request| async move {
            if true {
                panic!("boom");
            }
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        }));
        let req = Request::builder().uri("/x").header("x-request-id", "req-1").body(Body::empty()).unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-1");
        assert_eq!(body_json(resp).await["error"]["code"], "internal");
    }

    #[tokio::test]
    async fn a_panic_while_calling_the_service_is_caught_too() {
        #[derive(Clone)]
        struct PanicsOnCall;
        impl Service<Request> for PanicsOnCall {
            type Response = Response;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Response, Infallible>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request) -> Self::Future {
                panic!("boom in call")
            }
        }
        let resp = TelemetryLayer::new(1024).layer(PanicsOnCall).oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(resp.status(), 500);
        let id = resp.headers().get("x-request-id").unwrap().clone();
        assert_eq!(id.len(), ulid::ULID_LEN);
    }

    #[tokio::test]
    async fn the_body_limit_reaches_the_extractors() {
        let svc = TelemetryLayer::new(8).layer(tower::service_fn(|req: Request| async move {
            let status = match axum::body::Bytes::from_request(req, &()).await {
                Ok(_) => 200,
                Err(e) => e.into_response().status().as_u16(),
            };
            Ok::<Response, Infallible>(Response::builder().status(status).body(Body::empty()).unwrap())
        }));
        let small = svc.clone().oneshot(Request::new(Body::from("12345678"))).await.unwrap();
        assert_eq!(small.status(), 200);
        let big = svc.oneshot(Request::new(Body::from("123456789"))).await.unwrap();
        assert_eq!(big.status(), 413);
    }

    #[tokio::test]
    async fn the_request_is_current_while_its_future_runs_and_only_then() {
        type Seen = Vec<Option<(String, String, String)>>;
        let seen = Arc::new(std::sync::Mutex::new(Seen::new()));
        let log = seen.clone();
        let svc = TelemetryLayer::new(1024).layer(tower::service_fn(move |_req: Request| {
            let log = log.clone();
            let snapshot =
                || current_request().map(|r| (r.method().to_owned(), r.path().to_owned(), r.request_id().to_owned()));
            // When the service is called, and across an await inside the handler.
            log.lock().unwrap().push(snapshot());
            async move {
                tokio::task::yield_now().await;
                log.lock().unwrap().push(snapshot());
                Ok::<Response, Infallible>(Response::new(Body::empty()))
            }
        }));
        assert!(current_request().is_none());
        let req = Request::builder()
            .method("POST")
            .uri("/invite/secret-token?x=1")
            .header("x-request-id", "req-7")
            .body(Body::empty())
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-7");
        let expected = Some(("POST".to_string(), "/invite/{token}".to_string(), "req-7".to_string()));
        assert_eq!(*seen.lock().unwrap(), vec![expected.clone(), expected]);
        assert!(current_request().is_none(), "not current once the answer is out");
    }

    #[test]
    fn entered_requests_nest_and_restore() {
        let req = |id: &'static str| {
            Arc::new(RequestLog::new(Method::GET, Uri::from_static("/a"), HeaderValue::from_static(id)))
        };
        let (outer, inner) = (req("outer"), req("inner"));
        {
            let _o = enter_request(&outer);
            {
                let _i = enter_request(&inner);
                assert_eq!(current_request().unwrap().request_id(), "inner");
            }
            assert_eq!(current_request().unwrap().request_id(), "outer");
        }
        assert!(current_request().is_none());
    }
}
