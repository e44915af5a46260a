//! `watch` and ETag revalidation against a scripted server: what the SDK
//! sends (`Last-Event-ID`, `If-None-Match`) and what it does with each kind
//! of event. The real server's side is in tests/real_server/watch.rs.

use std::time::{Duration, Instant};

use scope_client::{Client, FetchSource, WatchState};
use serde_json::json;

use crate::support::*;

const EVENTS: &str = "/api/v1/events";
const OTHER_ID: &str = "pmt_01JD8X3Q7V9W0K2M4N6P8R0OTH";

fn sse(body: &str) -> Reply {
    Reply::text(200, "text/event-stream", body.to_owned())
}

/// A stream that never answers (the client waits for its head).
fn hang() -> Reply {
    Reply::json(200, json!({})).delay(Duration::from_secs(60))
}

fn ready(id: u64) -> String {
    format!("event: ready\nid: {id}\nretry: 1000\ndata: {{\"type\":\"ready\",\"org_id\":\"{ORG}\"}}\n\n")
}

/// `greeting` and `other`, two prompts with their own ids.
fn prompts(path: &str) -> Reply {
    let name = path.split('/').nth(4).unwrap_or("x");
    let mut v = prompt_json(name, 1, "Hello {{name}}");
    if name == "other" {
        v["prompt_id"] = json!(OTHER_ID);
    }
    Reply::json(200, v)
}

fn fetches(server: &MockServer, name: &str) -> usize {
    let path = format!("/api/v1/prompts/{name}/production");
    server.requests().iter().filter(|r| r.path == path).count()
}

async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn watching(server: &MockServer) -> Client {
    server.client().watch(true).watch_backoff(Duration::from_millis(20), Duration::from_millis(100)).build().unwrap()
}

#[tokio::test]
async fn an_event_drops_the_entries_of_its_prompt_only() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        EVENTS if r.nth == 0 => sse(&format!(
            "{}: heartbeat\n\nevent: prompt.label_moved\nid: 11\ndata: {}\n\n",
            ready(10),
            json!({"type": "prompt.label_moved", "org_id": ORG, "prompt_id": "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V",
                   "name": "greeting", "label": "production", "version_id": "v_x", "version": 2,
                   "previous_version_id": null, "previous_version": null, "at": "2026-11-27T08:02:07.120Z"})
        ))
        .delay(Duration::from_millis(300)),
        EVENTS => hang(),
        p => prompts(p),
    })
    .await;
    let client = watching(&server);
    client.get_prompt_version("greeting").await.unwrap();
    client.get_prompt_version("other").await.unwrap();
    assert_eq!((fetches(&server, "greeting"), fetches(&server, "other")), (1, 1));
    // The stream delivers the event, ends, and the client resumes from the
    // event's id.
    wait_for("the reconnection", Duration::from_secs(5), || {
        server.requests().iter().filter(|r| r.path == EVENTS).count() >= 2
    })
    .await;
    let resumed: Vec<_> = server.requests().into_iter().filter(|r| r.path == EVENTS).collect();
    assert_eq!(resumed[0].header("last-event-id"), None);
    assert_eq!(resumed[1].header("last-event-id"), Some("11"));
    assert_eq!(resumed[1].header("accept"), Some("text/event-stream"));
    assert!(resumed[1].bearer().is_some());

    let g = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    let o = client.get_prompt_version("other").send_with_meta().await.unwrap();
    assert_eq!((g.source, o.source), (FetchSource::Network, FetchSource::Cache));
    assert_eq!((fetches(&server, "greeting"), fetches(&server, "other")), (2, 1));
}

#[tokio::test]
async fn resync_drops_the_whole_cache() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        EVENTS if r.nth == 0 => sse(&ready(10)),
        EVENTS if r.nth == 1 => {
            sse("event: resync\nid: 99\ndata: {\"type\":\"resync\"}\n\n").delay(Duration::from_millis(300))
        }
        EVENTS => hang(),
        p => prompts(p),
    })
    .await;
    let client = watching(&server);
    client.get_prompt_version("greeting").await.unwrap();
    client.get_prompt_version("other").await.unwrap();
    wait_for("the resync", Duration::from_secs(5), || {
        server.requests().iter().filter(|r| r.path == EVENTS).count() >= 3
    })
    .await;
    let events: Vec<_> = server.requests().into_iter().filter(|r| r.path == EVENTS).collect();
    assert_eq!(events[1].header("last-event-id"), Some("10"), "the ready id counts");
    assert_eq!(events[2].header("last-event-id"), Some("99"));
    client.get_prompt_version("greeting").await.unwrap();
    client.get_prompt_version("other").await.unwrap();
    assert_eq!((fetches(&server, "greeting"), fetches(&server, "other")), (2, 2));
}

#[tokio::test]
async fn the_own_keys_revocation_drops_the_token_and_stops_watching() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        EVENTS if r.nth == 0 => sse(&format!(
            "{}event: api_key.revoked\nid: 11\ndata: {}\n\nevent: api_key.revoked\nid: 12\ndata: {}\n\n",
            ready(10),
            json!({"type": "api_key.revoked", "org_id": ORG, "key_id": "key_01JD8X4B7V9W0K2M4N6P8R0OTH"}),
            json!({"type": "api_key.revoked", "org_id": ORG, "key_id": KEY}),
        )),
        EVENTS => hang(),
        p => prompts(p),
    })
    .await;
    let client = watching(&server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.watch_state() != WatchState::Stopped {
        assert!(Instant::now() < deadline, "{:?}", client.watch_state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let logins = server.requests().iter().filter(|r| r.path == LOGIN).count();
    assert_eq!(logins, 1);
    // The token was dropped: the next call exchanges again (and, with a
    // revoked key, would fail to).
    client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(server.requests().iter().filter(|r| r.path == LOGIN).count(), 2);
    // No reconnection.
    assert_eq!(server.requests().iter().filter(|r| r.path == EVENTS).count(), 1);
}

#[tokio::test]
async fn a_server_without_events_stops_watching_and_the_cache_keeps_working() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        EVENTS => Reply::error(404, "not_found", "no such route"),
        p => prompts(p),
    })
    .await;
    let client = watching(&server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.watch_state() != WatchState::Stopped {
        assert!(Instant::now() < deadline, "{:?}", client.watch_state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.get_prompt_version("greeting").await.unwrap();
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(f.source, FetchSource::Cache);
    assert_eq!(server.requests().iter().filter(|r| r.path == EVENTS).count(), 1);
    // Off by default; and it needs the cache.
    assert_eq!(server.client().build().unwrap().watch_state(), WatchState::Off);
    assert!(server.client().cache(false).watch(true).build().is_err());
}

#[tokio::test]
async fn an_expired_entry_is_revalidated_with_if_none_match() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        _ => match (r.nth, r.header("if-none-match")) {
            (0, None) => prompts(&r.path).header("ETag", "\"aaaa\""),
            (1, Some("\"aaaa\"")) => Reply::text(304, "application/json", String::new()).header("ETag", "\"aaaa\""),
            (2, Some("\"aaaa\"")) => {
                Reply::json(200, prompt_json("greeting", 2, "New {{name}}")).header("ETag", "\"bbbb\"")
            }
            _ => Reply::error(500, "internal", "unexpected request"),
        },
    })
    .await;
    let ttl = Duration::from_millis(50);
    let client = server.client().cache_ttl(ttl).max_retries(0).build().unwrap();
    let first = client.get_prompt_version("greeting").await.unwrap();
    tokio::time::sleep(ttl * 2).await;
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(f.source, FetchSource::Network);
    assert!(std::sync::Arc::ptr_eq(&f.version, &first), "304: the same copy");
    tokio::time::sleep(ttl * 2).await;
    let v = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!((v.version, v.content.as_str()), (2, "New {{name}}"));
    // skip_cache always downloads, without If-None-Match.
    let err = client.get_prompt_version("greeting").skip_cache().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    let last = server.requests().into_iter().last().unwrap();
    assert_eq!(last.header("if-none-match"), None);
}

/// The blocking client starts the stream on its own runtime when built,
/// before any call.
#[test]
fn the_blocking_client_watches_from_its_own_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        EVENTS => hang(),
        p => prompts(p),
    }));
    let client = server.client().watch(true).build_blocking().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.requests().iter().any(|r| r.path == EVENTS) {
        assert!(Instant::now() < deadline, "no stream opened");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(client.as_async().watch_state(), WatchState::Connecting);
    client.get_prompt_version("greeting").send().unwrap();
    drop(client);
}
