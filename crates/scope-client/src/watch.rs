//! `watch`: one Server-Sent Events stream (`GET /api/v1/events`, docs/EVENTS.md)
//! per client, shared by its clones, that keeps the prompt cache current.
//!
//! One tokio task reads the stream through reqwest's body chunks and the
//! parser of `sse.rs`. Each event that names a prompt makes that prompt's
//! cached entries stale (a deletion removes them); `resync` makes every
//! entry stale; `api_key.revoked` for the client's own key forgets the token
//! and stops watching. The task reconnects with exponential backoff and
//! jitter, sending `Last-Event-ID`, so the server replays what was missed.
//!
//! How long an entry is served (see `cache.rs`): within its TTL always; past
//! its TTL (up to the watch max age) only while the stream session it was
//! fetched under is still *live* — connected, and heard from (an event or a
//! heartbeat) within the idle timeout. Whenever the stream is down, silent,
//! or the task gone, entries are back to plain TTL expiry.
//!
//! The task holds the client only weakly: dropping the last handle of the
//! client drops a `tokio::sync::watch` sender the task listens to, and the
//! task ends at its next await.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::cache::PromptCache;
use crate::client::Inner;
use crate::error::{Chain, Error};
use crate::hooks::{RequestEvent, ResponseEvent};
use crate::retry::parse_retry_after;
use crate::sse::{Item, Message, Parser};
use crate::transport::{error_from_status, new_request_id, read_body, Target};

/// Default longest time an entry is served past its TTL while the stream
/// that covers it is live.
pub const DEFAULT_WATCH_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default time without a byte on the stream (the server sends a heartbeat
/// every 15 s) after which it counts as dead and is reopened.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Default first reconnection delay (doubling, with jitter, up to the max).
pub const DEFAULT_WATCH_BACKOFF: Duration = Duration::from_secs(1);
/// Default longest reconnection delay.
pub const DEFAULT_WATCH_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A stream that stayed up this long counts as a success: the next
/// reconnection starts the backoff over.
const STABLE: Duration = Duration::from_secs(5);
/// Error bodies of the events endpoint are read up to this much.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The state of a client's event stream; see
/// [`Client::watch_state`](crate::Client::watch_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchState {
    /// `watch` is off (the default).
    Off,
    /// On, but the stream starts with the first call made inside a tokio
    /// runtime (the client was built outside one).
    NotStarted,
    /// Connecting or reconnecting (backing off after a failure); cached
    /// entries follow their TTL.
    Connecting,
    /// The stream is open and was heard from within the idle timeout:
    /// changes reach the cache as they happen.
    Live,
    /// Watching stopped for good: the client's API key was revoked (an
    /// `api_key.revoked` event for it, or the server refusing its
    /// credentials when the stream reconnects), or the server has no event
    /// stream (404) or refuses it (403). Entries follow their TTL.
    Stopped,
}

const NOT_STARTED: u8 = 0;
const CONNECTING: u8 = 1;
const LIVE: u8 = 2;
const STOPPED: u8 = 3;

/// The settings of `watch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchConfig {
    pub max_age: Duration,
    pub idle_timeout: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// What the client and the task share.
pub(crate) struct Watch {
    pub config: WatchConfig,
    base: Instant,
    state: AtomicU8,
    /// The live session's number (0: none).
    session: AtomicU64,
    sessions: AtomicU64,
    /// Milliseconds since `base` of the last byte received.
    last_activity_ms: AtomicU64,
}

impl Watch {
    pub(crate) fn new(config: WatchConfig) -> Self {
        Self {
            config,
            base: Instant::now(),
            state: AtomicU8::new(NOT_STARTED),
            session: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The number of the live session, or 0 when the stream is not live
    /// (not connected, or silent for longer than the idle timeout — checked
    /// here too, so a stalled task cannot keep entries alive).
    pub(crate) fn live_session(&self) -> u64 {
        let s = self.session.load(Ordering::Acquire);
        if s == 0 {
            return 0;
        }
        let idle = self.now_ms().saturating_sub(self.last_activity_ms.load(Ordering::Acquire));
        if u128::from(idle) > self.config.idle_timeout.as_millis() {
            0
        } else {
            s
        }
    }

    /// For the cache: the live session and the max age.
    pub(crate) fn coverage(&self) -> (u64, Duration) {
        (self.live_session(), self.config.max_age)
    }

    pub(crate) fn state(&self) -> WatchState {
        match self.state.load(Ordering::Acquire) {
            NOT_STARTED => WatchState::NotStarted,
            LIVE if self.live_session() != 0 => WatchState::Live,
            STOPPED => WatchState::Stopped,
            _ => WatchState::Connecting,
        }
    }

    /// Whether the task has yet to start (one atomic load: on every call).
    pub(crate) fn not_started(&self) -> bool {
        self.state.load(Ordering::Relaxed) == NOT_STARTED
    }

    /// Claim the right to start the task (false: running or stopped).
    pub(crate) fn claim_start(&self) -> bool {
        self.state.load(Ordering::Relaxed) == NOT_STARTED
            && self.state.compare_exchange(NOT_STARTED, CONNECTING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn touch(&self) {
        self.last_activity_ms.store(self.now_ms(), Ordering::Release);
    }

    fn begin_session(&self) -> u64 {
        let n = self.sessions.fetch_add(1, Ordering::AcqRel) + 1;
        self.touch();
        self.session.store(n, Ordering::Release);
        self.state.store(LIVE, Ordering::Release);
        n
    }

    fn end_session(&self) {
        self.session.store(0, Ordering::Release);
        let _ = self.state.compare_exchange(LIVE, CONNECTING, Ordering::AcqRel, Ordering::Acquire);
    }

    fn stop(&self) {
        self.session.store(0, Ordering::Release);
        self.state.store(STOPPED, Ordering::Release);
    }
}

/// Ends the session when the task ends, however it ends (the runtime shut
/// down, say): unless stopped for good, the next call may start it again.
struct TaskGuard(Arc<Watch>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.session.store(0, Ordering::Release);
        let _ =
            self.0.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| (s != STOPPED).then_some(NOT_STARTED));
    }
}

/// Why a stream ended.
enum Ended {
    /// The client was dropped.
    ClientGone,
    /// Our own key was revoked.
    Revoked,
    Disconnected(String),
}

/// Why opening a stream failed.
enum OpenError {
    Api(Error),
    TimedOut,
    ClientGone,
}

#[derive(Deserialize, Default)]
struct EventData {
    #[serde(default)]
    prompt_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
}

/// The task: connect, read, reconnect, until the client is dropped or the
/// watch is stopped.
pub(crate) async fn run(
    client: Weak<Inner>,
    watch: Arc<Watch>,
    cache: Arc<PromptCache>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _guard = TaskGuard(Arc::clone(&watch));
    let mut last_id: Option<u64> = None;
    let mut failures: u32 = 0;
    loop {
        let opened = tokio::select! {
            r = open(&client, last_id) => r,
            _ = stop.changed() => return,
        };
        let mut retry_after = None;
        match opened {
            Ok(resp) => {
                let connected_at = Instant::now();
                let ended = read(resp, &client, &watch, &cache, &mut last_id, &mut stop).await;
                watch.end_session();
                match ended {
                    Ended::ClientGone => return,
                    Ended::Revoked => {
                        tracing::warn!(
                            "scope-client watch: this client's API key was revoked; its token is dropped and \
                             watching stops (new calls will fail to authenticate)"
                        );
                        if let Some(inner) = client.upgrade() {
                            inner.tokens.clear();
                        }
                        watch.stop();
                        return;
                    }
                    Ended::Disconnected(why) => {
                        tracing::info!(reason = %why, last_event_id = ?last_id, "scope-client watch: stream ended; reconnecting");
                    }
                }
                if connected_at.elapsed() >= STABLE {
                    failures = 0;
                } else {
                    failures = failures.saturating_add(1);
                }
            }
            Err(OpenError::ClientGone) => return,
            Err(OpenError::TimedOut) => {
                failures = failures.saturating_add(1);
                tracing::info!("scope-client watch: no answer from the event stream; will retry");
            }
            Err(OpenError::Api(e @ Error::Authentication(_))) => {
                // The token was refused and so were the credentials: the key
                // was revoked (the server ends a stream whose key is revoked,
                // before sending the event that says so), expired, or never
                // existed. No retry can help.
                tracing::warn!(
                    error = %e.chain(),
                    "scope-client watch: the API key was refused; its token is dropped and watching stops"
                );
                if let Some(inner) = client.upgrade() {
                    inner.tokens.clear();
                }
                watch.stop();
                return;
            }
            Err(OpenError::Api(e)) => {
                if matches!(e.status(), Some(403 | 404)) {
                    tracing::warn!(
                        error = %e.chain(),
                        "scope-client watch: the server refuses the event stream; watching stops (cached \
                         prompts follow their TTL)"
                    );
                    watch.stop();
                    return;
                }
                failures = failures.saturating_add(1);
                retry_after = e.retry_after();
                tracing::info!(error = %e.chain(), "scope-client watch: cannot open the event stream; will retry");
            }
        }
        let delay = backoff(failures, &watch.config, &mut rand::thread_rng()).max(retry_after.unwrap_or_default());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The delay before reconnection attempt after `failures` failures in a
/// row: after a stream that was up for a while, a short random pause (so
/// that many clients do not reconnect at once after a server restart);
/// then `backoff` doubling up to `backoff_max`, each with jitter (half to
/// all of it).
pub(crate) fn backoff(failures: u32, config: &WatchConfig, rng: &mut impl Rng) -> Duration {
    if failures == 0 {
        return config.backoff.mul_f64(rng.gen_range(0.0..0.5));
    }
    let exp = config.backoff.saturating_mul(1u32 << (failures - 1).min(20)).min(config.backoff_max);
    exp.mul_f64(rng.gen_range(0.5..=1.0))
}

/// One `GET /api/v1/events`, with a fresh token (a 401 refreshes it once).
async fn open(client: &Weak<Inner>, last_id: Option<u64>) -> Result<reqwest::Response, OpenError> {
    let inner = client.upgrade().ok_or(OpenError::ClientGone)?;
    let url = inner.events_url.clone();
    let mut refreshed = false;
    loop {
        let token = inner.tokens.token(&inner.transport).await.map_err(OpenError::Api)?;
        let request_id = new_request_id();
        let mut rb = inner
            .transport
            .builder(Method::GET, &url, &request_id)
            .header(ACCEPT, "text/event-stream")
            .bearer_auth(token.value().expose_secret());
        if let Some(id) = last_id {
            rb = rb.header("last-event-id", id.to_string());
        }
        let hooks = inner.transport.hooks();
        if let Some(hook) = &hooks.on_request {
            hook(&RequestEvent { method: "GET", url: url.as_str(), request_id: &request_id, attempt: 0 });
        }
        let started = Instant::now();
        // No total timeout on the request (the stream lasts): the answer's
        // head must come within the client's timeout, then the idle timeout
        // watches the body.
        let resp = match tokio::time::timeout(inner.timeout, rb.send()).await {
            Err(_) => return Err(OpenError::TimedOut),
            Ok(Err(e)) => return Err(OpenError::Api(crate::transport::transport_failure(e, &request_id).error)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if let Some(hook) = &hooks.on_response {
            hook(&ResponseEvent {
                method: "GET",
                url: url.as_str(),
                request_id: &request_id,
                attempt: u32::from(refreshed),
                status,
                elapsed: started.elapsed(),
            });
        }
        let is_stream = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if status == 200 && is_stream && resp.url() == &url {
            return Ok(resp);
        }
        if status == 401 && !refreshed {
            refreshed = true;
            inner.tokens.refresh_rejected(&inner.transport, token.generation()).await.map_err(OpenError::Api)?;
            continue;
        }
        return Err(OpenError::Api(refusal(resp, &url, request_id).await));
    }
}

async fn refusal(resp: reqwest::Response, url: &Url, request_id: String) -> Error {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    if resp.url() != url || (300..400).contains(&status) {
        let message = format!("{url} redirected (HTTP {status}); not followed");
        return Error::Http(crate::error::ApiError {
            status: Some(status),
            code: None,
            message,
            request_id: Some(request_id),
        });
    }
    if status == 200 {
        let message = format!("{url} did not answer with text/event-stream");
        return Error::Decode(crate::error::ApiError {
            status: Some(status),
            code: None,
            message,
            request_id: Some(request_id),
        });
    }
    let body = read_body(resp, MAX_ERROR_BODY, true, &request_id).await.unwrap_or_default();
    error_from_status(status, &body, request_id, retry_after, Target::Events)
}

/// Read the stream until it ends; apply every message.
async fn read(
    mut resp: reqwest::Response,
    client: &Weak<Inner>,
    watch: &Watch,
    cache: &PromptCache,
    last_id: &mut Option<u64>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Ended {
    let (own_key, max_len) = match client.upgrade() {
        Some(inner) => (inner.tokens.credentials().key_id().to_owned(), inner.transport.max_body()),
        None => return Ended::ClientGone,
    };
    let mut parser = Parser::new(max_len);
    let mut items = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(watch.config.idle_timeout, resp.chunk()) => c,
            _ = stop.changed() => return Ended::ClientGone,
        };
        let bytes = match chunk {
            Err(_) => {
                return Ended::Disconnected(format!(
                    "nothing received for {:.0} s (idle timeout)",
                    watch.config.idle_timeout.as_secs_f64()
                ))
            }
            Ok(Err(e)) => return Ended::Disconnected(Chain(&e).to_string()),
            Ok(Ok(None)) => return Ended::Disconnected("the server ended the stream".to_owned()),
            Ok(Ok(Some(b))) => b,
        };
        watch.touch();
        items.clear();
        if let Err(e) = parser.feed(&bytes, &mut items) {
            return Ended::Disconnected(e.to_string());
        }
        for item in items.drain(..) {
            let Item::Message(m) = item else { continue };
            if let Some(id) = m.id.as_deref().and_then(|s| s.trim().parse::<u64>().ok()) {
                *last_id = Some(id);
            }
            if apply(&m, watch, cache, &own_key) {
                return Ended::Revoked;
            }
        }
    }
}

/// Apply one message to the cache; true when it says our key was revoked.
fn apply(m: &Message, watch: &Watch, cache: &PromptCache, own_key: &str) -> bool {
    match m.event.as_str() {
        "ready" => {
            let session = watch.begin_session();
            tracing::debug!(session, id = ?m.id, "scope-client watch: stream live");
            false
        }
        "resync" => {
            cache.invalidate_all();
            let session = watch.begin_session();
            tracing::info!(session, id = ?m.id, "scope-client watch: resync (events were missed); cache dropped");
            false
        }
        event => {
            let data: EventData = serde_json::from_str(&m.data).unwrap_or_default();
            if event == "api_key.revoked" {
                return data.key_id.as_deref() == Some(own_key);
            }
            if data.prompt_id.is_none() && data.name.is_none() {
                return false;
            }
            let n = cache.invalidate_prompt(data.prompt_id.as_deref(), data.name.as_deref(), event == "prompt.deleted");
            tracing::debug!(event, id = ?m.id, prompt = ?data.name, entries = n, "scope-client watch: cache entries dropped");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let config = WatchConfig {
            max_age: DEFAULT_WATCH_MAX_AGE,
            idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            assert!(backoff(0, &config, &mut rng) < Duration::from_millis(500));
            let d1 = backoff(1, &config, &mut rng);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1), "{d1:?}");
            let d3 = backoff(3, &config, &mut rng);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4), "{d3:?}");
            let d = backoff(40, &config, &mut rng);
            assert!(d >= Duration::from_secs(15) && d <= Duration::from_secs(30), "{d:?}");
        }
    }

    #[test]
    fn a_silent_stream_is_not_live() {
        let w = Watch::new(WatchConfig {
            max_age: DEFAULT_WATCH_MAX_AGE,
            idle_timeout: Duration::from_millis(50),
            backoff: DEFAULT_WATCH_BACKOFF,
            backoff_max: DEFAULT_WATCH_BACKOFF_MAX,
        });
        assert_eq!(w.live_session(), 0);
        let s = w.begin_session();
        assert_eq!(w.live_session(), s);
        assert_eq!(w.state(), WatchState::Live);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(w.live_session(), 0);
        assert_eq!(w.state(), WatchState::Connecting);
        w.touch();
        assert_eq!(w.live_session(), s);
        w.end_session();
        assert_eq!(w.live_session(), 0);
    }
}
