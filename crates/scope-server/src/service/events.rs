//! Live changes (SPEC §9): the process's fan-out task that follows the
//! event log, and one `GET /api/v1/events` stream per caller.
//!
//! A stream is a state machine polled by its connection's task (no task or
//! thread of its own): it starts with a `ready` event carrying the position
//! it continues from, replays the log past the client's `Last-Event-ID`
//! (or, when that position is older than the retained log or belongs to
//! another log, sends `resync` instead), then sends what the fan-out hands
//! it, skipping anything at or below the last position sent — so a
//! reconnect sees neither gaps nor duplicates. A stream that lagged behind
//! the fan-out's ring reads the log again. Every heartbeat (and every event,
//! for bearer tokens) re-checks the caller's credentials: a revoked key,
//! an expired token or an ended session ends the stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use scope_domain::{DomainError, OrgId, Role};
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval};

use super::{auth, sessions, App, Principal};
use crate::error::AppError;
use crate::runtime::events::WireEvent;

/// Rows read from the log at a time.
const PAGE: u32 = 500;

/// Follows the event log and hands new events to this process's streams,
/// until `stop` fires. Woken by [`App::prompts_changed`](super::App) and the
/// change feed; reads at least every `poll` regardless.
pub async fn fan_out(app: Arc<App>, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        loop {
            match app.store.event_feed(app.events.cursor(), PAGE).await {
                Ok(rows) => {
                    app.events.dispatch(&rows);
                    if rows.len() < PAGE as usize {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event log read failed; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            _ = app.events.woken() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How the stream's caller authenticated, kept to re-check it.
#[derive(Clone)]
pub enum Credential {
    /// A bearer token (never logged).
    Bearer(String),
    /// A console session's cookie value (never logged).
    Session(String),
}

impl Credential {
    /// Whether the caller would still be let in.
    async fn holds(&self, app: &App) -> bool {
        match self {
            Credential::Bearer(token) => auth::authenticate(app, token).is_ok(),
            Credential::Session(cookie) => sessions::resolve(app, cookie).await.is_ok(),
        }
    }
}

/// What a stream sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// First, always: the position the stream continues from (its `id`).
    Ready {
        org: OrgId,
        position: i64,
    },
    /// Instead of `Ready`: the client's position is older than the retained
    /// log (events may be lost) or from another log: drop everything
    /// cached and continue from `position`.
    Resync {
        org: OrgId,
        position: i64,
    },
    Event(Arc<WireEvent>),
    /// A comment line, when nothing else was sent for a while.
    Heartbeat,
}

pub struct EventStream {
    app: Arc<App>,
    org: OrgId,
    credential: Credential,
    rx: broadcast::Receiver<Arc<WireEvent>>,
    /// The last position sent (or the starting one).
    last: i64,
    backlog: VecDeque<Arc<WireEvent>>,
    /// Read the log past `last` before listening again.
    catching_up: bool,
    first: Option<Item>,
    tick: Interval,
}

/// A `Last-Event-ID` (or `?last_event_id=`): a log position.
pub fn parse_position(s: &str) -> Result<i64, AppError> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| DomainError::bad_request("Last-Event-ID must be the id of an event (a whole number)").into())
}

/// Opens a stream of `p`'s organization, resuming after `resume` when
/// given.
pub async fn open(
    app: Arc<App>,
    p: &Principal,
    credential: Credential,
    resume: Option<i64>,
) -> Result<EventStream, AppError> {
    p.require(Role::Viewer)?;
    if app.events.streams() >= app.config.max_event_streams {
        tracing::warn!(limit = app.config.max_event_streams, "event stream refused: too many open");
        return Err(AppError::RateLimited(5));
    }
    let sub = app.events.subscribe(p.org).ok_or_else(|| AppError::Unavailable("the server is shutting down".into()))?;
    let (last, catching_up, first) = match resume {
        None => (sub.cursor, false, Item::Ready { org: p.org, position: sub.cursor }),
        Some(position) => {
            let bounds = app.store.event_bounds().await?;
            if position < bounds.pruned_through || position > bounds.head {
                (sub.cursor, false, Item::Resync { org: p.org, position: sub.cursor })
            } else {
                (position, true, Item::Ready { org: p.org, position })
            }
        }
    };
    let every = app.config.event_heartbeat;
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ok(EventStream {
        org: p.org,
        credential,
        rx: sub.rx,
        last,
        backlog: VecDeque::new(),
        catching_up,
        first: Some(first),
        tick,
        app,
    })
}

impl EventStream {
    /// The next item to send; `None` ends the stream (the server is
    /// shutting down, the caller's credentials no longer hold, or the log
    /// cannot be read: the client reconnects with its last id).
    pub async fn next(&mut self) -> Option<Item> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                if ev.seq <= self.last {
                    continue;
                }
                if let Credential::Bearer(_) = self.credential {
                    // Cheap (cached verification): a revoked key's stream
                    // sends nothing more, its own revocation included.
                    if !self.credential.holds(&self.app).await {
                        return None;
                    }
                }
                self.last = ev.seq;
                return Some(Item::Event(ev));
            }
            if self.catching_up {
                match self.app.store.list_events(self.org, self.last, PAGE).await {
                    Ok(rows) if rows.is_empty() => self.catching_up = false,
                    Ok(rows) => self.backlog.extend(rows.iter().map(|r| Arc::new(WireEvent::from_row(r)))),
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream cannot read the log; ending it");
                        return None;
                    }
                }
                continue;
            }
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(ev) => self.backlog.push_back(ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => {
                    if !self.credential.holds(&self.app).await {
                        return None;
                    }
                    return Some(Item::Heartbeat);
                }
            }
        }
    }
}
