//! Serving connections (hyper-util, HTTP/1 and HTTP/2) with the limits a
//! slow or hostile client meets:
//!
//! - a cap on connections served at once: past it the accept loop waits, so
//!   further connections queue in the kernel instead of costing a task and
//!   a file descriptor each;
//! - a header-read timeout (HTTP/1): once the first byte of a request head
//!   has come, the whole head must follow within it; a connection that
//!   sends nothing at all gets as long. Kept by the connection's watch
//!   (below), not by hyper's per-request timer: hyper arms and drops a
//!   timer-wheel entry for every request, under the timer driver's lock;
//!   the watch costs a request three uncontended atomic operations. An idle
//!   keep-alive connection waits for its next request under the idle
//!   timeout, not this one;
//! - an idle timeout: a connection on which no byte moves either way for
//!   that long is closed (HTTP/2 included, and a peer that stopped reading
//!   its response); open event streams stay busy with their heartbeats;
//! - a body-read timeout: once a handler waits for the body, all of it must
//!   arrive within the limit, or reading it fails (400, and the connection
//!   is not reused);
//! - a request timeout: a handler that has not answered within it is
//!   dropped and `503` with `Retry-After` and the SPEC body is sent;
//!   `GET /api/v1/events` streams are exempt (they are meant to last);
//! - a cap on requests handled at once (event streams excepted): past it,
//!   `503` with `Retry-After` at once, rather than a queue that grows.
//!
//! Shutdown is graceful: the listener is closed at once, requests in flight
//! finish, idle connections are closed, and `serve` returns when the last
//! connection is done.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use axum::Router;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pin_project_lite::pin_project;
use scope_domain::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::Service;

use crate::config::ServerConfig;

/// The limits of [`serve`], from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
}

impl Limits {
    pub fn of(config: &ServerConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            request_timeout: config.request_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections.max(1),
            max_concurrent_requests: config.max_concurrent_requests.max(1),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// what is in flight and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header-read timeout is the connection watch's (see `watch`).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let shared = Arc::new(Shared {
        request_timeout: limits.request_timeout,
        body_read_timeout: limits.body_read_timeout,
        max_requests: limits.max_concurrent_requests,
        in_flight: AtomicUsize::new(0),
    });
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let timeouts = WatchTimeouts { header: limits.header_read_timeout, idle: limits.idle_timeout };
    tokio::pin!(shutdown);
    loop {
        // A free connection slot first: past the cap, nothing is accepted.
        let slot = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::default());
        let io = TokioIo::new(Tracked { inner: stream, state: state.clone() });
        let service = ConnService { router: router.clone(), peer, shared: shared.clone(), state: state.clone() };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = watcher.watch(builder.serve_connection(io, service));
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                closed = watch(&state, timeouts) => tracing::debug!(reason = closed.0, "connection closed"),
            }
        });
    }
    // New connections are refused from here on.
    drop(listener);
    graceful.shutdown().await;
}

/// What a connection's watch reads, kept up to date by its IO ([`Tracked`])
/// and its service ([`ConnService`], [`Guarded`]).
#[derive(Default)]
struct ConnState {
    /// A byte moved either way since the watch last looked (idle timeout).
    moved: AtomicBool,
    /// A byte was read since the watch last looked or a head was last read.
    received: AtomicBool,
    /// Request heads read so far.
    heads: AtomicU64,
    /// Requests read and not yet answered.
    active: AtomicUsize,
    /// HTTP/2: requests are frames on a shared connection; no header timing.
    multiplexed: AtomicBool,
}

#[derive(Clone, Copy)]
struct WatchTimeouts {
    header: Duration,
    idle: Duration,
}

/// Why the watch closed a connection (logged at debug).
struct Closed(&'static str);

/// Returns when the connection is to be closed: no byte moved either way
/// for `idle` (or for the header-read timeout before anything came at all);
/// or a request head begun (a byte read while no request was being
/// answered) was not complete within the header-read timeout. Checked in
/// quarters of the shorter limit, so a limit is enforced within a quarter
/// of it (and one tick: the first byte of a head is noticed at the next
/// look).
async fn watch(state: &ConnState, limits: WatchTimeouts) -> Closed {
    let first_byte = limits.header.min(limits.idle);
    let tick = (first_byte / 4).max(Duration::from_millis(10));
    let (mut quiet, mut heard) = (Duration::ZERO, false);
    let (mut heads_seen, mut head_for) = (0u64, None::<Duration>);
    loop {
        tokio::time::sleep(tick).await;
        if state.moved.swap(false, Ordering::Relaxed) {
            (quiet, heard) = (Duration::ZERO, true);
        } else {
            quiet += tick;
            if quiet >= if heard { limits.idle } else { first_byte } {
                return Closed(if heard { "idle" } else { "nothing sent" });
            }
        }
        let received = state.received.swap(false, Ordering::Relaxed);
        let heads = state.heads.load(Ordering::Relaxed);
        if heads != heads_seen {
            // A head was completed since the last look: its clock stops.
            (heads_seen, head_for) = (heads, None);
        }
        if state.active.load(Ordering::Relaxed) > 0 || state.multiplexed.load(Ordering::Relaxed) {
            // Bytes now are a body's (the body-read timeout's business).
            head_for = None;
            continue;
        }
        head_for = match head_for {
            None if received => Some(Duration::ZERO),
            None => None,
            Some(waited) if waited + tick >= limits.header => return Closed("request head too slow"),
            Some(waited) => Some(waited + tick),
        };
    }
}

/// A socket that notes when bytes move, for the idle watch.
struct Tracked {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl Tracked {
    fn moved<T>(&self, r: &Poll<std::io::Result<T>>) {
        if matches!(r, Poll::Ready(Ok(_))) {
            self.state.moved.store(true, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.moved(&r);
        if buf.filled().len() > before {
            self.state.received.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What every connection's service shares.
struct Shared {
    request_timeout: Duration,
    body_read_timeout: Duration,
    max_requests: usize,
    in_flight: AtomicUsize,
}

#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
}

/// Event streams last as long as the client wants: no request timeout, and
/// they are capped on their own (`max_event_streams`).
fn is_event_stream(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET && req.uri().path() == "/api/v1/events"
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Guarded<<Router as Service<Request<TimedBody>>>::Future>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let state = &self.state;
        // A head was read: its header-read clock stops (see `watch`).
        state.received.store(false, Ordering::Relaxed);
        state.heads.fetch_add(1, Ordering::Relaxed);
        if req.version() == Version::HTTP_2 {
            state.multiplexed.store(true, Ordering::Relaxed);
        }
        let mut answering = Answering::new(state.clone());
        let limited = !is_event_stream(&req);
        let mut timeout = None;
        let mut request_id = None;
        if limited {
            let before = self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
            answering.counted = Some(self.shared.clone());
            if before >= self.shared.max_requests {
                drop(answering);
                let id = req.headers().get(&X_REQUEST_ID).cloned();
                return Guarded::ready(refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is busy; retry shortly",
                    id,
                ));
            }
            timeout = Some(self.shared.request_timeout);
            request_id = req.headers().get(&X_REQUEST_ID).cloned();
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let body_timeout = self.shared.body_read_timeout;
        let req = req.map(|inner| TimedBody { inner, timeout: body_timeout, deadline: None });
        let inner = self.router.clone().call(req);
        Guarded { inner: Some(inner), timeout, deadline: None, request_id, _answering: Some(answering), ready: None }
    }
}

/// Held while a request is answered: the connection's count of requests
/// being answered (see `watch`) and, unless it is an event stream, the
/// server's (the concurrency cap).
struct Answering {
    conn: Arc<ConnState>,
    counted: Option<Arc<Shared>>,
}

impl Answering {
    fn new(conn: Arc<ConnState>) -> Self {
        conn.active.fetch_add(1, Ordering::Relaxed);
        Answering { conn, counted: None }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.conn.active.fetch_sub(1, Ordering::Relaxed);
        if let Some(shared) = &self.counted {
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

use crate::http::telemetry::X_REQUEST_ID;

/// `status` with `Retry-After: 1` and the SPEC body (code `internal`: the
/// SPEC's list of codes is closed, and the status tells clients to retry).
fn refusal(status: StatusCode, message: &str, request_id: Option<HeaderValue>) -> Response<Body> {
    let mut r = crate::http::error::error_response(ErrorCode::Internal, message);
    *r.status_mut() = status;
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    // The request-id rule of the telemetry layer: what it would not echo is
    // not echoed here either.
    if let Some(id) = request_id.filter(crate::http::telemetry::valid_request_id) {
        r.headers_mut().insert(X_REQUEST_ID.clone(), id);
    }
    r
}

pin_project! {
    /// A request's answer under its timeout, holding its place in the
    /// concurrency count until done.
    struct Guarded<F> {
        #[pin]
        inner: Option<F>,
        // The request timeout; its timer is started the first time the
        // answer is not ready at once (most are, and cost no timer).
        timeout: Option<Duration>,
        #[pin]
        deadline: Option<Sleep>,
        request_id: Option<HeaderValue>,
        _answering: Option<Answering>,
        ready: Option<Response<Body>>,
    }
}

impl<F> Guarded<F> {
    fn ready(r: Response<Body>) -> Self {
        Guarded { inner: None, timeout: None, deadline: None, request_id: None, _answering: None, ready: Some(r) }
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(r) = this.ready.take() {
            return Poll::Ready(Ok(r));
        }
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            if let Poll::Ready(r) = inner.poll(cx) {
                this.inner.set(None);
                return Poll::Ready(r);
            }
        }
        if let Some(timeout) = this.timeout.take() {
            this.deadline.set(Some(tokio::time::sleep(timeout)));
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            if deadline.poll(cx).is_ready() {
                // Dropping the handler cancels whatever it was waiting on.
                this.inner.set(None);
                tracing::warn!("request timed out");
                let id = this.request_id.take();
                return Poll::Ready(Ok(refusal(StatusCode::SERVICE_UNAVAILABLE, "the request took too long", id)));
            }
        }
        Poll::Pending
    }
}

/// A body read failed because the client did not send it in time.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimeout {}

pin_project! {
    /// A request body under the body-read timeout. The clock starts the
    /// first time the body is not already there when read, so a body that
    /// came with its headers costs no timer.
    struct TimedBody {
        #[pin]
        inner: Incoming,
        timeout: Duration,
        #[pin]
        deadline: Option<Sleep>,
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.is_none() {
            this.deadline.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            if deadline.poll(cx).is_ready() {
                tracing::debug!("request body timed out");
                return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
