//! The per-process fan-out of the event log to `GET /api/v1/events`
//! streams.
//!
//! One reader per process follows the log past its cursor (`Store::
//! event_feed`): woken at once by changes made in this process and, on
//! PostgreSQL, by other replicas' commits (the change feed's `events`
//! notification), and polling as the safety net. It hands each event,
//! serialized once, to a broadcast channel of the event's organization;
//! streams subscribe to their own organization's channel only, so an event
//! never reaches another organization's stream. A stream costs a broadcast
//! receiver (a few words); the ring buffer of recent events is shared by the
//! organization's streams. A stream that falls behind the ring is told it
//! lagged and catches up from the log itself, so it skips nothing.
//!
//! Subscribing and dispatching hold one lock, so a subscriber learns the
//! cursor exactly: every event above it reaches its receiver.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use scope_domain::OrgId;
use scope_store::EventRow;
use tokio::sync::{broadcast, Notify};

/// Events of one organization kept for its slow streams before they are
/// told they lagged (and read the log instead).
pub const RING: usize = 64;

/// An event as streams send it: the SSE fields, serialized once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// The log position: the SSE `id`.
    pub seq: i64,
    /// The SSE `event` name (`prompt.label_moved`, …).
    pub event_type: String,
    /// The SSE `data`: `{type, org_id, …, at}` as JSON.
    pub data: String,
}

impl WireEvent {
    pub fn from_row(row: &EventRow) -> Self {
        let mut data = match &row.data {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert("type".into(), row.event_type.clone().into());
        data.insert("org_id".into(), row.org_id.to_string().into());
        data.insert("at".into(), crate::views::ts(row.at).into());
        let data = serde_json::Value::Object(data).to_string();
        Self { seq: row.seq, event_type: row.event_type.clone(), data }
    }
}

struct State {
    /// The highest position dispatched.
    cursor: i64,
    orgs: HashMap<OrgId, broadcast::Sender<Arc<WireEvent>>>,
    /// Set at shutdown: streams end, no new ones start.
    closed: bool,
}

pub struct EventHub {
    state: Mutex<State>,
    wake: Notify,
}

/// A stream's subscription: its receiver and the position from which every
/// event reaches it.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<WireEvent>>,
    pub cursor: i64,
}

impl EventHub {
    /// A hub whose reader starts past `head` (the log's highest position).
    pub fn new(head: i64) -> Self {
        Self { state: Mutex::new(State { cursor: head, orgs: HashMap::new(), closed: false }), wake: Notify::new() }
    }

    /// Subscribes to `org`'s events; `None` once the hub is closed.
    pub fn subscribe(&self, org: OrgId) -> Option<Subscription> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        let cursor = state.cursor;
        let rx = state.orgs.entry(org).or_insert_with(|| broadcast::channel(RING).0).subscribe();
        Some(Subscription { rx, cursor })
    }

    /// The highest position dispatched.
    pub fn cursor(&self) -> i64 {
        self.state.lock().cursor
    }

    /// Asks the reader to read the log now (a change was committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for [`wake`](Self::wake).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Hands `rows` (read past the cursor, ascending) to their
    /// organizations' streams and advances the cursor. Organizations whose
    /// streams have all ended are forgotten.
    pub fn dispatch(&self, rows: &[EventRow]) {
        let mut state = self.state.lock();
        for row in rows {
            if row.seq <= state.cursor {
                continue;
            }
            state.cursor = row.seq;
            let gone = match state.orgs.get(&row.org_id) {
                Some(tx) => tx.send(Arc::new(WireEvent::from_row(row))).is_err(),
                None => false,
            };
            if gone {
                state.orgs.remove(&row.org_id);
            }
        }
        state.orgs.retain(|_, tx| tx.receiver_count() > 0);
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.state.lock().orgs.values().map(broadcast::Sender::receiver_count).sum()
    }

    /// Ends every stream (their receivers see the channel closed) and
    /// refuses new ones: for shutdown, so that open streams do not hold the
    /// server's graceful shutdown forever.
    pub fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.orgs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, org: OrgId) -> EventRow {
        EventRow {
            seq,
            org_id: org,
            event_type: "prompt.label_moved".into(),
            at: 1_700_000_000_000,
            data: serde_json::json!({"name": "p", "label": "staging"}),
        }
    }

    #[test]
    fn wire_shape() {
        let org = OrgId::generate();
        let w = WireEvent::from_row(&row(7, org));
        assert_eq!((w.seq, w.event_type.as_str()), (7, "prompt.label_moved"));
        let v: serde_json::Value = serde_json::from_str(&w.data).unwrap_or_default();
        assert_eq!(v["type"], "prompt.label_moved");
        assert_eq!(v["org_id"], org.to_string().as_str());
        assert_eq!(v["label"], "staging");
        assert_eq!(v["at"], "2023-11-14T22:13:20.000Z");
    }

    #[tokio::test]
    async fn events_reach_their_own_organization_only() -> Result<(), String> {
        let hub = EventHub::new(10);
        let (a, b) = (OrgId::generate(), OrgId::generate());
        let mut ra = hub.subscribe(a).ok_or("closed")?.rx;
        let sb = hub.subscribe(b).ok_or("closed")?;
        assert_eq!(sb.cursor, 10);
        let mut rb = sb.rx;
        assert_eq!(hub.streams(), 2);
        // Below the cursor: already dispatched, skipped.
        hub.dispatch(&[row(9, a), row(11, a), row(12, b), row(13, OrgId::generate())]);
        assert_eq!(hub.cursor(), 13);
        assert_eq!(ra.try_recv().map(|e| e.seq).ok(), Some(11));
        assert!(ra.try_recv().is_err());
        assert_eq!(rb.try_recv().map(|e| e.seq).ok(), Some(12));
        assert!(rb.try_recv().is_err());
        drop(rb);
        hub.dispatch(&[row(14, b)]);
        assert_eq!(hub.streams(), 1);
        hub.close();
        assert!(matches!(ra.recv().await, Err(broadcast::error::RecvError::Closed)));
        assert!(hub.subscribe(a).is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_slow_stream_is_told_it_lagged() -> Result<(), String> {
        let hub = EventHub::new(0);
        let org = OrgId::generate();
        let mut rx = hub.subscribe(org).ok_or("closed")?.rx;
        let rows: Vec<_> = (1..=(RING as i64 + 5)).map(|i| row(i, org)).collect();
        hub.dispatch(&rows);
        assert!(matches!(rx.recv().await, Err(broadcast::error::RecvError::Lagged(5))));
        assert_eq!(rx.recv().await.map(|e| e.seq).ok(), Some(6));
        Ok(())
    }
}
