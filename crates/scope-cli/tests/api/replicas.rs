//! Several `scope serve` replicas on one PostgreSQL database, PostgreSQL
//! failures under traffic, and moving a deployment (labels, their history,
//! single-token revocations and the event log included) from SQLite to
//! PostgreSQL. These run on PostgreSQL whatever `SCOPE_TEST_DATABASE` says
//! (the migration test starts on SQLite by design).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scope_testkit::pg::PgCluster;
use serde_json::{json, Value};

use crate::harness::{decode_jwt, wait_until, Api, Backend, TestServer};

/// Two replicas on one fresh PostgreSQL database, with the same issuer (as
/// behind a load balancer).
async fn two_replicas() -> (TestServer, TestServer) {
    let a = TestServer::builder().backend(Backend::Postgres).env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    let b = TestServer::builder().same_database_as(&a).env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    (a, b)
}

fn vid(v: &Value) -> String {
    v["version_id"].as_str().expect("version_id").to_owned()
}

/// One message of an event stream: `(event, id, data)`.
type Sse = (String, Option<String>, Value);

/// The messages of `GET /api/v1/events` (comments skipped), resuming after
/// `last_event_id`, up to the first for which `last` holds.
async fn events_until(api: &Api, last_event_id: &str, last: impl Fn(&Sse) -> bool) -> Vec<Sse> {
    let rb = api.request(reqwest::Method::GET, "/api/v1/events").header("last-event-id", last_event_id);
    let mut resp = rb.send().await.expect("open the stream");
    assert_eq!(resp.status(), 200, "stream refused");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut buf, mut out): (String, Vec<Sse>) = (String::new(), Vec::new());
    while !out.last().is_some_and(&last) {
        let Some(end) = buf.find("\n\n") else {
            let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.unwrap_or_else(|_| panic!("got {out:?}"));
            buf.push_str(&String::from_utf8_lossy(&chunk.expect("read the stream").expect("the stream goes on")));
            continue;
        };
        let block: String = buf.drain(..end + 2).collect();
        let (mut event, mut id, mut data) = (Some("message".to_owned()), None, String::new());
        for line in block.lines() {
            match line.split_once(':') {
                Some(("", _)) => event = None, // a comment (heartbeat)
                Some(("event", v)) => event = Some(v.trim_start().to_owned()),
                Some(("id", v)) => id = Some(v.trim_start().to_owned()),
                Some(("data", v)) => data.push_str(v.trim_start()),
                _ => {}
            }
        }
        if let Some(event) = event {
            out.push((event, id, serde_json::from_str(&data).expect("data is JSON")));
        }
    }
    out
}

/// Polls `f` every 2 ms for up to 5 s; returns how long it took to hold.
async fn propagation<F, Fut>(what: &str, f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let took = wait_until(Duration::from_secs(5), Duration::from_millis(2), f).await;
    let took = took.unwrap_or_else(|| panic!("{what}: not seen on the other replica within 5 s"));
    println!("{what}: seen on the other replica after {} ms", took.as_millis());
    took
}

#[tokio::test]
async fn replicas_share_tokens_revocations_promotions_and_signing_keys() {
    let (a, b) = two_replicas().await;
    let admin_a = a.admin().await;

    // A token issued by A verifies on B.
    let token = a.token(&a.org.org_id, &a.org.key_id, &a.org.secret).await;
    b.api(&token).get("/api/v1/me").await.assert_status(200);

    // A key revoked through A is refused by B within 1 s, including a token
    // B already accepted (and cached).
    let (_, key) = a.client_with_role(&admin_a, "viewer").await;
    let on_b = b.api(&b.token_for(&key).await);
    for _ in 0..3 {
        on_b.get("/api/v1/prompts").await.assert_status(200);
    }
    admin_a.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await.assert_status(200);
    let took = propagation("revocation through A", || {
        let c = on_b.clone();
        async move { c.get("/api/v1/prompts").await.status == 401 }
    })
    .await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?} to reach replica B");
    b.exchange(&key.org_id, &key.key_id, &key.secret).await.assert_error(401, "invalid_credentials");

    // A promotion through A is served by B within 1 s, with B's cache warm.
    let admin_b = b.login(&b.org).await;
    let v1 = vid(&admin_a.create_prompt("greeting", "Hello v1").await["version"]);
    admin_a.post(&format!("/api/v1/prompts/greeting/versions/{v1}/promote"), json!({})).await.assert_status(200);
    let v2 = vid(&admin_a.create_version("greeting", "Hello v2").await);
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        let c = admin_b.clone();
        let v1 = v1.clone();
        async move {
            let r = c.get("/api/v1/prompts/greeting/production").await;
            r.status == 200 && r.json()["version_id"] == v1.as_str()
        }
    })
    .await;
    assert!(r.is_some(), "B serves v1");
    for _ in 0..5 {
        admin_b.get("/api/v1/prompts/greeting/production").await.assert_status(200);
    }
    admin_a.post(&format!("/api/v1/prompts/greeting/versions/{v2}/promote"), json!({})).await.assert_status(200);
    let took = propagation("promotion through A", || {
        let c = admin_b.clone();
        let v2 = v2.clone();
        async move { c.get("/api/v1/prompts/greeting/production").await.json()["version_id"] == v2.as_str() }
    })
    .await;
    assert!(took < Duration::from_secs(1), "promotion took {took:?} to reach replica B");

    // `scope signing-keys rotate` reaches both replicas' JWKS and signers.
    let kids = |jwks: &Value| -> BTreeSet<String> {
        jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid").to_owned()).collect()
    };
    let before = kids(&a.jwks().await);
    let out = a.cli(&["signing-keys", "rotate"]).await;
    assert!(out.status.success(), "rotate: {}", String::from_utf8_lossy(&out.stderr));
    let mut new_kid = String::new();
    for server in [&a, &b] {
        let took = propagation("signing key rotation", || async {
            kids(&server.jwks().await).len() > before.len()
        })
        .await;
        assert!(took < Duration::from_secs(1), "rotation took {took:?}");
        let added: Vec<String> = kids(&server.jwks().await).difference(&before).cloned().collect();
        assert_eq!(added.len(), 1);
        new_kid = added[0].clone();
    }
    // Tokens are now signed with the new key on both, and verify on the other.
    let wait_signer = |server: &TestServer| {
        let (server_org, new_kid) = (server.org.clone(), new_kid.clone());
        let anon = server.anon();
        async move {
            let body = json!({"account_id": server_org.org_id, "key_id": server_org.key_id, "key_secret": server_org.secret});
            let r = anon.post("/v1/auth/sdk-token", body).await;
            let t = r.json()["access_token"].as_str().unwrap_or_default().to_owned();
            (decode_jwt(&t).header["kid"] == new_kid.as_str()).then_some(t)
        }
    };
    let t_a = wait_signer(&a).await.expect("A signs with the new key");
    let t_b = wait_signer(&b).await.expect("B signs with the new key");
    b.api(&t_a).get("/api/v1/me").await.assert_status(200);
    a.api(&t_b).get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn fifty_concurrent_promotes_over_two_replicas_leave_one_published_version() {
    let (a, b) = two_replicas().await;
    let admin_a = a.admin().await;
    let admin_b = b.login(&b.org).await;
    admin_a.create_prompt("contended", "v1").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(vid(&admin_a.create_version("contended", &format!("candidate {i}")).await));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().cloned().enumerate() {
        let api = if i % 2 == 0 { admin_a.clone() } else { admin_b.clone() };
        tasks.spawn(async move {
            let r = api.post(&format!("/api/v1/prompts/contended/versions/{id}/promote"), json!({"notes": id})).await;
            (id, r.status, r.body)
        });
    }
    let mut ok = HashSet::new();
    while let Some(res) = tasks.join_next().await {
        let (id, status, body) = res.expect("promote task");
        assert!(status == 200 || status == 409, "promote of {id}: {status} {body}");
        if status == 200 {
            ok.insert(id);
        }
    }
    assert!(!ok.is_empty());

    for api in [&admin_a, &admin_b] {
        let r = api.get("/api/v1/prompts/contended/versions?include_archived=true&limit=200").await;
        r.assert_status(200);
        let all = r.json()["data"].as_array().expect("data").clone();
        assert_eq!(all.len(), 51);
        let published: Vec<&Value> = all.iter().filter(|v| v["status"] == "published").collect();
        assert_eq!(published.len(), 1, "exactly one published version");
        assert!(ok.contains(&vid(published[0])));
        assert_eq!(all.iter().filter(|v| v["status"] == "archived").count(), ok.len() - 1);

        let r = api.get("/api/v1/prompts/contended/promotions?limit=200").await;
        r.assert_status(200);
        let h = r.json()["data"].as_array().expect("data").clone();
        assert_eq!(h.len(), ok.len(), "one history entry per successful promote");
        let prev: Vec<&Value> = h.iter().map(|e| &e["previous_version_id"]).collect();
        assert_eq!(prev.iter().filter(|p| p.is_null()).count(), 1, "one chain, one start");
        let prev_ids: BTreeSet<&str> = prev.iter().filter_map(|p| p.as_str()).collect();
        assert_eq!(prev_ids.len(), h.len() - 1, "no version replaced twice");
    }
}

#[tokio::test]
async fn usage_from_two_replicas_adds_up() {
    let (a, b) = two_replicas().await;
    let admin = a.admin().await;
    let key = a.create_key(&admin, "counted", "viewer").await;
    for _ in 0..7 {
        a.token_for(&key).await;
    }
    for _ in 0..5 {
        b.token_for(&key).await;
    }
    // Counters are flushed every 2 s per replica.
    let path = format!("/api/v1/api-keys/{}/usage", key.key_id);
    let total = |v: Value| -> u64 { v["total"].as_u64().unwrap_or(0) };
    let seen = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let admin = admin.clone();
        let path = path.clone();
        async move { total(admin.get(&path).await.json()) == 12 }
    })
    .await;
    let last = total(admin.get(&path).await.json());
    assert!(seen.is_some(), "usage from both replicas: {last}, expected 12");
}

/// Writes through `api` until `stop`, recording every prompt acknowledged
/// with 2xx and every status seen.
async fn write_traffic(api: Api, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>, statuses: Arc<Mutex<Vec<u16>>>) {
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("w-{n}");
        let started = Instant::now();
        let r = api.request(reqwest::Method::POST, "/api/v1/prompts").json(&json!({"name": name, "content": "x"})).send().await;
        let status = match r {
            Ok(r) => r.status().as_u16(),
            Err(e) => panic!("request failed at the HTTP level (no answer): {e}"),
        };
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "a request hung for {:?} (pool timeout 3 s, statement timeout 5 s)",
            started.elapsed()
        );
        if (200..300).contains(&status) {
            acked.lock().expect("lock").push(name);
        }
        statuses.lock().expect("lock").push(status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failures_mid_traffic_give_503s_then_recover_without_losing_acknowledged_writes() {
    // A cluster of its own: this test stops it.
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    let server = TestServer::builder().database_url(&url).env("SCOPE_DB_CONNECT_TIMEOUT_MS", "1000").start().await;
    let admin = server.admin().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let traffic =
        tokio::spawn(write_traffic(admin.clone(), stop.clone(), acked.clone(), statuses.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 1. Every connection of the database terminated.
    let db = url.rsplit('/').next().expect("database name").to_owned();
    cluster.psql(
        &url,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_before_restart = acked.lock().expect("lock").len();

    // 2. PostgreSQL stopped: readiness fails, requests answer 503 quickly.
    let c = &cluster;
    tokio::task::block_in_place(|| c.stop());
    let down = server.anon().get("/readyz").await;
    down.assert_error(503, "internal");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = admin.post("/api/v1/prompts", json!({"name": "while-down", "content": "x"})).await;
    r.assert_error(503, "internal");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.body.contains("sqlx") && !r.body.contains("pool") && !r.body.contains("connection"), "{}", r.body);

    // 3. Back: Scope recovers by itself.
    tokio::task::block_in_place(|| c.start_again());
    let back = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let anon = server.anon();
        async move { anon.get("/readyz").await.status == 200 }
    })
    .await;
    assert!(back.is_some(), "readyz back to 200 after PostgreSQL restarted");
    let writes = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let acked = acked.clone();
        async move { acked.lock().expect("lock").len() > acked_before_restart + 5 }
    })
    .await;
    assert!(writes.is_some(), "writes succeed again after the restart");
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic task");

    // Only 2xx and 503 were ever answered; some of each.
    let statuses = statuses.lock().expect("lock").clone();
    let unexpected: Vec<u16> = statuses.iter().copied().filter(|s| !(200..300).contains(s) && *s != 503).collect();
    assert!(unexpected.is_empty(), "statuses other than 2xx/503: {unexpected:?}");
    assert!(statuses.contains(&503), "the outage was seen");
    println!(
        "{} writes: {} acknowledged, {} answered 503",
        statuses.len(),
        statuses.iter().filter(|s| (200..300).contains(*s)).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );

    // Every acknowledged write is there.
    let acked = acked.lock().expect("lock").clone();
    for name in &acked {
        admin.get(&format!("/api/v1/prompts/{name}")).await.assert_status(200);
    }
    admin.get("/api/v1/prompts/while-down").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn a_deployment_moves_from_sqlite_to_postgres_with_its_keys_tokens_and_history() {
    let old = TestServer::builder().backend(Backend::Sqlite).env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    let admin = old.admin().await;
    let key = old.create_key(&admin, "app", "viewer").await;
    let revoked = old.create_key(&admin, "gone", "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", revoked.key_id)).await.assert_status(200);
    let token = old.token_for(&key).await;
    let mut latest = std::collections::HashMap::new();
    for (name, n) in [("alpha", 3), ("beta", 2)] {
        let v1 = vid(&admin.create_prompt(name, &format!("{name} {{{{who}}}} v1")).await["version"]);
        admin.post(&format!("/api/v1/prompts/{name}/versions/{v1}/promote"), json!({"notes": "first"})).await.assert_status(200);
        latest.insert(name, v1);
        for i in 2..=n {
            let v = vid(&admin.create_version(name, &format!("{name} v{i}")).await);
            admin.post(&format!("/api/v1/prompts/{name}/versions/{v}/promote"), json!({"notes": format!("v{i}")})).await.assert_status(200);
            latest.insert(name, v);
        }
    }
    // Releases: `staging` on alpha's v3, `canary` on beta's v2 and removed
    // again (all in the label history), `staging` protected.
    let label = |prompt: &str, label: &str| format!("/api/v1/prompts/{prompt}/labels/{label}");
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        async move { crate::harness::Resp::from(admin.request(reqwest::Method::PUT, &path).json(&body)).await }
    };
    put(label("alpha", "staging"), json!({"version_id": latest["alpha"], "notes": "try it"})).await.assert_status(200);
    put(label("beta", "canary"), json!({"version_id": latest["beta"]})).await.assert_status(200);
    admin.delete(&label("beta", "canary")).await.assert_status(204);
    put("/api/v1/settings/protected-labels".into(), json!({"labels": ["staging"]})).await.assert_status(200);
    // What clients of the live event stream get when they resume: from the
    // start of the log, every change above; from just before the first
    // label move, the three moves.
    let removed = |m: &Sse| m.2["label"] == "canary" && m.2["version_id"].is_null();
    let replayed_before = events_until(&admin, "0", removed).await;
    assert_eq!(replayed_before[0].0, "ready", "{replayed_before:?}");
    let staging = replayed_before.iter().find(|m| m.2["label"] == "staging").expect("the staging move");
    let seen = (staging.1.as_deref().expect("an id").parse::<i64>().expect("a position") - 1).to_string();
    let resumed_before = events_until(&admin, &seen, removed).await;
    assert_eq!(resumed_before[0].0, "ready", "{resumed_before:?}");
    assert_eq!(resumed_before.len(), 4, "{resumed_before:?}");
    assert!(resumed_before[1..].iter().all(|(e, _, _)| e == "prompt.label_moved"), "{resumed_before:?}");
    // One token of the key revoked on its own (RFC 7009); the key's other
    // tokens keep working.
    let revoked_token = old.token_for(&key).await;
    crate::harness::Resp::from(
        old.http
            .post(old.url("/oauth/revoke"))
            .basic_auth(&key.key_id, Some(&key.secret))
            .form(&[("token", revoked_token.as_str())]),
    )
    .await
    .assert_status(200);
    old.api(&revoked_token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    old.api(&token).get("/api/v1/me").await.assert_status(200);
    // What the API shows before the move.
    let views = |api: Api| async move {
        let mut out = Vec::new();
        for path in [
            "/api/v1/prompts?limit=200",
            "/api/v1/prompts/alpha/versions?include_archived=true&limit=200",
            "/api/v1/prompts/beta/versions?include_archived=true&limit=200",
            "/api/v1/prompts/alpha/promotions?limit=200",
            "/api/v1/prompts/beta/promotions?limit=200",
            "/api/v1/prompts/alpha/production",
            "/api/v1/prompts/alpha/labels",
            "/api/v1/prompts/beta/labels",
            "/api/v1/prompts/alpha/label-history?limit=200",
            "/api/v1/prompts/beta/label-history?limit=200",
            "/api/v1/settings/protected-labels",
            "/api/v1/api-keys?limit=200",
        ] {
            let r = api.get(path).await;
            r.assert_status(200);
            let mut v = r.json();
            // Usage timestamps move with every exchange; compare the rest.
            if let Some(keys) = v["data"].as_array_mut() {
                for k in keys {
                    if let Some(o) = k.as_object_mut() {
                        o.remove("last_used_at");
                    }
                }
            }
            out.push((path, v));
        }
        out
    };
    let before = views(admin.clone()).await;
    let jwks_before = old.jwks().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("scope.jsonl");
    let file_s = file.to_str().expect("path").to_owned();
    let out = old.cli(&["export", "--output", &file_s]).await;
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("export file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the export is created readable by its owner only");
    }
    let text = std::fs::read_to_string(&file).expect("read export");
    assert!(!text.contains(&key.secret), "the export holds digests, never secrets");

    let pg_url = PgCluster::shared().fresh_database();
    let out = crate::harness::run_scope(&pg_url, &["import", "--input", &file_s]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    // A second import into the now populated database changes nothing.
    let again = crate::harness::run_scope(&pg_url, &["import", "--input", &file_s]);
    assert!(!again.status.success());

    let new = TestServer::builder()
        .existing_database(&pg_url, old.org.clone())
        .env("SCOPE_PUBLIC_URL", "http://scope.test")
        .start()
        .await;
    // The token issued before the move, the key and the revocations carry
    // over: the token revoked on its own stays refused, the key's other
    // tokens (old and new) work.
    new.api(&token).get("/api/v1/me").await.assert_status(200);
    new.api(&revoked_token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    let fresh = new.token_for(&key).await;
    new.api(&fresh).get("/api/v1/me").await.assert_status(200);
    new.exchange(&revoked.org_id, &revoked.key_id, &revoked.secret).await.assert_error(401, "invalid_credentials");
    assert_eq!(new.jwks().await, jwks_before, "the same signing keys");
    let admin_new = new.login(&new.org).await;
    let after = views(admin_new.clone()).await;
    for ((path, b), (_, a)) in before.iter().zip(after.iter()) {
        assert_eq!(b, a, "{path} differs after the move");
    }
    let history = &after.iter().find(|(p, _)| p.starts_with("/api/v1/prompts/beta/label-history")).expect("history").1;
    assert!(history["data"].as_array().is_some_and(|h| h.iter().any(|m| m["label"] == "canary")), "{history}");
    // A stream resuming from a position of the old deployment continues
    // with the same events (the log moved with its positions), not a resync
    // and not a silent gap. (`ready` carries the time it was sent.)
    for (from, before) in [("0", &replayed_before), (seen.as_str(), &resumed_before)] {
        let after = events_until(&admin_new, from, removed).await;
        assert_eq!((&after[0].0, &after[0].1), (&before[0].0, &before[0].1), "from {from}");
        assert_eq!(after[1..], before[1..], "from {from}");
    }
    // Numbering continues where it stopped.
    let v = admin_new.create_version("alpha", "alpha v4").await;
    assert_eq!(v["version"], 4);
}
