//! The change feed: writes announce what they changed with `pg_notify` on
//! the channel [`CHANNEL`], inside their transaction (PostgreSQL delivers a
//! notification only when its transaction commits, and never after a
//! rollback); [`feed`] listens on that channel and turns payloads into
//! [`Change`]s, so every replica's in-memory views follow at once.
//!
//! Payloads: `gates` (a key was revoked or given an expiry),
//! `prompts:<org_id>` (a prompt, version or promotion of that organization),
//! `signing_keys` (a signing key was added or retired), `tokens` (an access
//! token was revoked), `events` (entries were appended to the event log).
//! Unknown payloads — from a newer server sharing the database — are
//! ignored.

use std::time::Duration;

use scope_domain::OrgId;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use super::DbResult;
use crate::model::Change;
use crate::StoreResult;

/// The notification channel.
pub(super) const CHANNEL: &str = "scope_changes";
/// Messages the receiver may fall behind by before the feed coalesces them
/// into one [`Change::Resync`].
const CAPACITY: usize = 1024;
/// First and longest wait between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

const GATES: &str = "gates";
const SIGNING_KEYS: &str = "signing_keys";
const TOKENS: &str = "tokens";
const EVENTS: &str = "events";
const PROMPTS_PREFIX: &str = "prompts:";

// ---- announcing (inside write transactions) -------------------------------------------

async fn notify(conn: &mut PgConnection, payload: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(conn).await.db()?;
    Ok(())
}

/// A key gate changed (revoked, or given an expiry).
pub(super) async fn gates_changed(conn: &mut PgConnection) -> StoreResult<()> {
    notify(conn, GATES).await
}

/// A prompt, version or promotion of `org` changed.
pub(super) async fn prompts_changed(conn: &mut PgConnection, org: OrgId) -> StoreResult<()> {
    notify(conn, &format!("{PROMPTS_PREFIX}{org}")).await
}

/// A signing key was added or retired.
pub(super) async fn signing_keys_changed(conn: &mut PgConnection) -> StoreResult<()> {
    notify(conn, SIGNING_KEYS).await
}

/// Entries were appended to the event log.
pub(super) async fn events_changed(conn: &mut PgConnection) -> StoreResult<()> {
    notify(conn, EVENTS).await
}

/// An access token was revoked.
pub(super) async fn tokens_changed(conn: &mut PgConnection) -> StoreResult<()> {
    notify(conn, TOKENS).await
}

fn parse(payload: &str) -> Option<Change> {
    match payload {
        GATES => Some(Change::KeyGates),
        SIGNING_KEYS => Some(Change::SigningKeys),
        TOKENS => Some(Change::Tokens),
        EVENTS => Some(Change::Events),
        _ => payload.strip_prefix(PROMPTS_PREFIX)?.parse::<OrgId>().ok().map(Change::Prompts),
    }
}

// ---- listening ------------------------------------------------------------------------------

/// Starts a feed: a task listening on [`CHANNEL`] with its own connection
/// (made with `connect`, bounded by `connect_timeout`). It sends
/// [`Change::Resync`] once listening; when the connection drops it sends
/// [`Change::Lost`], reconnects with backoff (100 ms doubling to 2 s) and
/// sends `Resync` once listening again. It ends when the receiver is dropped.
///
/// The channel is bounded: when the receiver falls [`CAPACITY`] messages
/// behind, further messages are dropped and one `Resync` is sent as soon as
/// there is room, which tells the receiver to reread everything.
pub(super) fn feed(connect: PgConnectOptions, connect_timeout: Duration) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(CAPACITY);
    tokio::spawn(run(connect, connect_timeout, tx));
    rx
}

/// A listener on its own single-connection pool (a `PgListener` takes its
/// connection from a pool), so it uses the store's connect options.
async fn listen(connect: &PgConnectOptions, connect_timeout: Duration) -> Result<PgListener, sqlx::Error> {
    let pool =
        PgPoolOptions::new().max_connections(1).acquire_timeout(connect_timeout).connect_lazy_with(connect.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection is handled here (Lost, backoff, Resync), not
    // silently re-established inside the listener.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The sending half with overflow coalescing.
struct Outbox {
    tx: mpsc::Sender<Change>,
    /// Messages were dropped for lack of room: a `Resync` is owed.
    overflowed: bool,
}

/// The receiver is gone: the feed ends.
struct Closed;

impl Outbox {
    fn send(&mut self, change: Change) -> Result<(), Closed> {
        if self.overflowed {
            match self.tx.try_send(Change::Resync) {
                Ok(()) => self.overflowed = false,
                // Still no room: this change is covered by the owed Resync.
                Err(mpsc::error::TrySendError::Full(_)) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Closed),
            }
            if change == Change::Resync {
                return Ok(());
            }
        }
        match self.tx.try_send(change) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed = true;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }

    /// Sends the owed `Resync` once there is room; pending forever when
    /// nothing is owed.
    async fn pay_debt(&mut self) -> Result<(), Closed> {
        if !self.overflowed {
            return std::future::pending().await;
        }
        let permit = self.tx.reserve().await.map_err(|_| Closed)?;
        permit.send(Change::Resync);
        self.overflowed = false;
        Ok(())
    }
}

async fn run(connect: PgConnectOptions, connect_timeout: Duration, tx: mpsc::Sender<Change>) {
    let closed_tx = tx.clone();
    let mut out = Outbox { tx, overflowed: false };
    let mut backoff = MIN_BACKOFF;
    loop {
        let attempt = tokio::select! {
            _ = closed_tx.closed() => return,
            attempt = listen(&connect, connect_timeout) => attempt,
        };
        let mut listener = match attempt {
            Ok(listener) => listener,
            Err(e) => {
                tracing::debug!(error = %e, "change feed: cannot listen yet");
                tokio::select! {
                    _ = closed_tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        if out.send(Change::Resync).is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = closed_tx.closed() => return,
                paid = out.pay_debt() => {
                    if paid.is_err() {
                        return;
                    }
                }
                next = listener.try_recv() => match next {
                    Ok(Some(notification)) => {
                        if let Some(change) = parse(notification.payload()) {
                            if out.send(change).is_err() {
                                return;
                            }
                        }
                    }
                    // `Ok(None)`: the connection was lost; an error: it is
                    // unusable. Either way, start over.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "change feed: listener failed");
                        break;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!("change feed: connection lost, reconnecting");
        if out.send(Change::Lost).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_map_to_changes() {
        let org = OrgId::generate();
        assert_eq!(parse("gates"), Some(Change::KeyGates));
        assert_eq!(parse("signing_keys"), Some(Change::SigningKeys));
        assert_eq!(parse("tokens"), Some(Change::Tokens));
        assert_eq!(parse("events"), Some(Change::Events));
        assert_eq!(parse(&format!("prompts:{org}")), Some(Change::Prompts(org)));
        assert_eq!(parse("prompts:nope"), None);
        assert_eq!(parse("something_new"), None);
    }

    #[tokio::test]
    async fn a_full_channel_owes_one_resync() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut out = Outbox { tx, overflowed: false };
        for _ in 0..5 {
            assert!(out.send(Change::KeyGates).is_ok());
        }
        assert!(out.overflowed);
        assert_eq!(rx.recv().await, Some(Change::KeyGates));
        assert!(out.pay_debt().await.is_ok());
        assert!(!out.overflowed);
        assert_eq!(rx.recv().await, Some(Change::KeyGates));
        assert_eq!(rx.recv().await, Some(Change::Resync));
        drop(rx);
        assert!(out.send(Change::SigningKeys).is_err());
    }
}
