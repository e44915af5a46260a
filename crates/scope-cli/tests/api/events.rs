//! `GET /api/v1/events` (SPEC §9): Server-Sent Events per organization. A
//! label move reaches a stream within a second (measured), a reconnect with
//! `Last-Event-ID` has neither gaps nor duplicates, another organization's
//! events never show, a revoked key's stream ends, heartbeats keep an idle
//! stream alive, and on PostgreSQL a change made through one replica reaches
//! a stream on another within a second.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Api, Backend, Resp, TestServer};

/// One SSE message: its `event`, `id` and `data` (a comment line gives
/// `event = ":"` and the comment as data).
#[derive(Debug, Clone)]
struct Message {
    event: String,
    id: Option<String>,
    data: String,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }
}

/// A client of the event stream that parses messages as they arrive.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(api: &Api, last_event_id: Option<&str>) -> Stream {
        let mut rb = api.request(Method::GET, "/api/v1/events");
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.timeout(Duration::from_secs(3600)).send().await.expect("open the stream");
        assert_eq!(resp.status(), 200, "stream refused");
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Stream { resp, buf: String::new() }
    }

    /// The next message (comments included), or `None` when the server
    /// ended the stream or `limit` passed.
    async fn next_raw(&mut self, limit: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = Message { event: "message".into(), id: None, data: String::new() };
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        m.event = ":".into();
                        m.data = c.trim().to_owned();
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "event" => m.event = v.to_owned(),
                            "id" => m.id = Some(v.to_owned()),
                            "data" => {
                                if !m.data.is_empty() {
                                    m.data.push('\n');
                                }
                                m.data.push_str(v);
                            }
                            _ => {}
                        }
                    }
                }
                return Some(m);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next message that is not a comment.
    async fn next(&mut self, limit: Duration) -> Option<Message> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.next_raw(left).await?;
            if m.event != ":" {
                return Some(m);
            }
        }
    }

    /// Messages until `pred` holds for one (returned last), within `limit`.
    async fn until(&mut self, limit: Duration, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            let m = self.next(left).await.unwrap_or_else(|| panic!("not seen within {limit:?}; got {seen:?}"));
            let done = pred(&m);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}

async fn put(api: &Api, path: &str, body: Value) -> Resp {
    Resp::from(api.request(Method::PUT, path).json(&body)).await
}

fn vid(v: &Value) -> String {
    v["version_id"].as_str().expect("version_id").to_owned()
}

/// Moves `label` of `prompt` to `version` (must succeed).
async fn move_label(api: &Api, prompt: &str, label: &str, version: &str) {
    put(api, &format!("/api/v1/prompts/{prompt}/labels/{label}"), json!({"version_id": version}))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_label_move_reaches_the_stream_within_a_second() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (sdk, _) = server.client_with_role(&admin, "viewer").await;
    let v1 = vid(&admin.create_prompt("greeting", "one").await["version"]);
    let v2 = vid(&admin.create_version("greeting", "two").await);

    let mut stream = Stream::open(&sdk, None).await;
    let ready = stream.next(Duration::from_secs(5)).await.expect("ready");
    assert_eq!(ready.event, "ready");
    assert_eq!(ready.json()["type"], "ready");
    assert_eq!(ready.json()["org_id"], server.org.org_id.as_str());
    assert!(ready.id.as_deref().is_some_and(|id| id.parse::<i64>().is_ok()), "{ready:?}");

    let mut took = Vec::new();
    for (i, v) in [&v1, &v2, &v1, &v2, &v1].into_iter().enumerate() {
        let started = Instant::now();
        move_label(&admin, "greeting", "staging", v).await;
        let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.label_moved").await;
        let elapsed = started.elapsed();
        let m = seen.last().expect("the move");
        let d = m.json();
        assert_eq!(
            (d["type"].clone(), d["label"].clone(), d["version_id"].clone()),
            (json!("prompt.label_moved"), json!("staging"), json!(v))
        );
        assert_eq!(d["name"], "greeting");
        assert_eq!(d["org_id"], server.org.org_id.as_str());
        assert!(d["prompt_id"].as_str().is_some_and(|p| p.starts_with("pmt_")));
        assert!(d["at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(m.id.as_deref().is_some_and(|id| id.parse::<i64>().is_ok()));
        if i > 0 {
            assert!(d["previous_version_id"].is_string());
        }
        took.push(elapsed);
    }
    let max = took.iter().max().copied().unwrap_or_default();
    println!(
        "label move → event on the stream: {:?} (max {} ms)",
        took.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        max.as_millis()
    );
    assert!(max < Duration::from_secs(1), "a move took {max:?} to reach the stream");

    // The other event types reach it too.
    let v3 = vid(&admin.create_version("greeting", "three").await);
    let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.version_created").await;
    assert_eq!(seen.last().expect("created").json()["version_id"], v3.as_str());
    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{v3}/archive")).await.assert_status(200);
    let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.version_archived").await;
    assert_eq!(seen.last().expect("archived").json()["version_id"], v3.as_str());
    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{v2}/promote")).await.assert_status(200);
    let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.label_moved").await;
    assert_eq!(seen.last().expect("promoted").json()["label"], "production");
    let (_, key) = server.client_with_role(&admin, "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await.assert_status(200);
    let seen = stream.until(Duration::from_secs(5), |m| m.event == "api_key.revoked").await;
    assert_eq!(seen.last().expect("revoked").json()["key_id"], key.key_id.as_str());
    admin.delete("/api/v1/prompts/greeting").await.assert_status(204);
    let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.deleted").await;
    assert_eq!(seen.last().expect("deleted").json()["name"], "greeting");
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_has_no_gaps_or_duplicates() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (sdk, _) = server.client_with_role(&admin, "viewer").await;
    let v = vid(&admin.create_prompt("p", "one").await["version"]);
    let w = vid(&admin.create_version("p", "two").await);

    let mut stream = Stream::open(&sdk, None).await;
    assert_eq!(stream.next(Duration::from_secs(5)).await.expect("ready").event, "ready");
    move_label(&admin, "p", "a", &v).await;
    move_label(&admin, "p", "b", &v).await;
    let seen = stream.until(Duration::from_secs(5), |m| m.json()["label"] == "b").await;
    let last_id = seen.last().and_then(|m| m.id.clone()).expect("an id");
    drop(stream);

    // Changes while disconnected, then a reconnect from the last id seen:
    // exactly those, in order, then live ones.
    let labels = ["c", "d", "e", "f", "g", "h"];
    for l in labels {
        move_label(&admin, "p", l, &w).await;
    }
    let mut stream = Stream::open(&sdk, Some(&last_id)).await;
    let ready = stream.next(Duration::from_secs(5)).await.expect("ready");
    assert_eq!((ready.event.as_str(), ready.id.as_deref()), ("ready", Some(last_id.as_str())));
    move_label(&admin, "p", "live", &w).await;
    let seen = stream.until(Duration::from_secs(5), |m| m.json()["label"] == "live").await;
    let got: Vec<String> = seen.iter().map(|m| m.json()["label"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(got, vec!["c", "d", "e", "f", "g", "h", "live"], "no gaps, no duplicates");
    let ids: Vec<i64> = seen.iter().map(|m| m.id.as_deref().and_then(|i| i.parse().ok()).expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(ids[0] > last_id.parse::<i64>().expect("id"));

    // A second reconnect from the middle replays from there.
    let middle = seen[2].id.clone().expect("id");
    let mut again = Stream::open(&sdk, Some(&middle)).await;
    let seen = again.until(Duration::from_secs(5), |m| m.json()["label"] == "live").await;
    let got: Vec<String> = seen.iter().skip(1).map(|m| m.json()["label"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(seen[0].event, "ready");
    assert_eq!(got, vec!["f", "g", "h", "live"]);
    // `?last_event_id=` works where headers cannot be set.
    let r = Resp::from(sdk.request(Method::GET, "/api/v1/events?last_event_id=x")).await;
    r.assert_error(400, "bad_request");
    let r = Resp::from(sdk.request(Method::GET, "/api/v1/events").header("last-event-id", "-1")).await;
    r.assert_error(400, "bad_request");

    // A position from another log (ahead of this one): told to resync.
    let mut foreign = Stream::open(&sdk, Some("999999999")).await;
    let m = foreign.next(Duration::from_secs(5)).await.expect("resync");
    assert_eq!((m.event.as_str(), m.json()["type"].clone()), ("resync", json!("resync")));
    move_label(&admin, "p", "after-resync", &w).await;
    let seen = foreign.until(Duration::from_secs(5), |m| m.json()["label"] == "after-resync").await;
    assert_eq!(seen.len(), 1, "continues from now: {seen:?}");
}

#[tokio::test]
async fn streams_never_show_another_organizations_events() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other_org = server.create_org("Other", "admin@other.test").await;
    let other = server.login(&other_org).await;
    admin.create_prompt("mine", "one").await;
    let theirs = vid(&other.create_prompt("theirs", "one").await["version"]);

    let mut mine = Stream::open(&admin, Some("0")).await;
    let mut their_stream = Stream::open(&other, None).await;
    assert_eq!(their_stream.next(Duration::from_secs(5)).await.expect("ready").event, "ready");
    // Their changes, then one of ours as a marker.
    move_label(&other, "theirs", "secret-release", &theirs).await;
    other.delete("/api/v1/prompts/theirs").await.assert_status(204);
    admin.create_version("mine", "two").await;
    let seen =
        mine.until(Duration::from_secs(5), |m| m.event == "prompt.version_created" && m.json()["version"] == 2).await;
    for m in &seen {
        if m.event == "ready" {
            continue;
        }
        let d = m.json();
        assert_eq!(d["org_id"], server.org.org_id.as_str(), "{m:?}");
        assert_eq!(d["name"], "mine", "{m:?}");
    }
    // They see theirs (and only theirs).
    let seen = their_stream.until(Duration::from_secs(5), |m| m.event == "prompt.deleted").await;
    assert!(seen.iter().all(|m| m.json()["org_id"] == other_org.org_id.as_str()));
    assert!(seen.iter().any(|m| m.json()["label"] == "secret-release"));
    // Resuming from 0 replays only one's own organization's log.
    let mut replay = Stream::open(&other, Some("0")).await;
    let seen = replay.until(Duration::from_secs(5), |m| m.event == "prompt.deleted").await;
    assert!(seen.iter().all(|m| m.event == "ready" || m.json()["name"] == "theirs"), "{seen:?}");
}

#[tokio::test]
async fn a_revoked_keys_stream_ends_and_idle_streams_get_heartbeats() {
    let server = TestServer::builder().env("SCOPE_EVENT_HEARTBEAT_SECS", "1").start().await;
    let admin = server.admin().await;
    let (sdk, key) = server.client_with_role(&admin, "viewer").await;
    let mut stream = Stream::open(&sdk, None).await;
    assert_eq!(stream.next(Duration::from_secs(5)).await.expect("ready").event, "ready");
    // Idle: a heartbeat comment within about a second.
    let m = stream.next_raw(Duration::from_secs(3)).await.expect("a heartbeat");
    assert_eq!((m.event.as_str(), m.data.as_str()), (":", "heartbeat"));
    // Revoked: nothing more is sent, and the stream ends.
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await.assert_status(200);
    admin.create_prompt("after", "x").await;
    let mut after = Vec::new();
    while let Some(m) = stream.next_raw(Duration::from_secs(5)).await {
        after.push(m);
    }
    assert!(after.iter().all(|m| m.event == ":"), "nothing but heartbeats after the revoke: {after:?}");
    // And it cannot reopen.
    Resp::from(sdk.request(Method::GET, "/api/v1/events")).await.assert_error(401, "unauthorized");
}

/// Two replicas on one PostgreSQL database (whatever SCOPE_TEST_DATABASE
/// says): a change made through A reaches a stream open on B within a
/// second, through the change feed.
#[tokio::test]
async fn on_postgres_an_event_made_on_one_replica_reaches_a_stream_on_another() {
    let a = TestServer::builder().backend(Backend::Postgres).env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    let b = TestServer::builder().same_database_as(&a).env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    let admin_a = a.admin().await;
    let on_b = b.login(&b.org).await;
    let v1 = vid(&admin_a.create_prompt("greeting", "one").await["version"]);
    let v2 = vid(&admin_a.create_version("greeting", "two").await);
    let mut stream = Stream::open(&on_b, None).await;
    assert_eq!(stream.next(Duration::from_secs(5)).await.expect("ready").event, "ready");
    let mut took = Vec::new();
    for v in [&v1, &v2, &v1, &v2, &v1] {
        let started = Instant::now();
        move_label(&admin_a, "greeting", "staging", v).await;
        let seen = stream.until(Duration::from_secs(5), |m| m.event == "prompt.label_moved").await;
        took.push(started.elapsed());
        assert_eq!(seen.last().expect("moved").json()["version_id"], v.as_str());
    }
    let max = took.iter().max().copied().unwrap_or_default();
    println!(
        "label move on replica A → event on a stream on replica B: {:?} ms (max {} ms)",
        took.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        max.as_millis()
    );
    assert!(max < Duration::from_secs(1), "a move took {max:?} to reach the other replica's stream");
    // And B serves the moved label at once (its cache follows the feed).
    let r = on_b.get("/api/v1/prompts/greeting/labels/staging").await;
    assert_eq!(vid(&r.json()), v1);
}

/// SIGTERM ends open streams first, so that the graceful shutdown (which
/// waits for open connections) is not held by them.
#[tokio::test]
async fn sigterm_ends_open_streams_and_the_server_exits() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = Stream::open(&admin, None).await;
        assert_eq!(s.next(Duration::from_secs(5)).await.expect("ready").event, "ready");
        streams.push(s);
    }
    let started = Instant::now();
    server.send_sigterm();
    for s in &mut streams {
        // Ended by the server (not by our timeout).
        let started = Instant::now();
        while s.next_raw(Duration::from_secs(10)).await.is_some() {}
        assert!(started.elapsed() < Duration::from_secs(5), "the stream was not ended");
    }
    let status = server.wait_exit(Duration::from_secs(10)).await.expect("the server exits");
    assert!(status.success(), "{status:?}");
    println!("SIGTERM with 3 open streams: exited after {} ms", started.elapsed().as_millis());
}
