//! `watch` against a real server: changes reach a client whose cache TTL is
//! 300 s within a second; the stream survives a cut; a revoked key stops
//! it; with the stream down, entries follow their TTL again.

use std::time::{Duration, Instant};

use scope_client::{Client, Error, FetchSource, WatchState};
use serde_json::json;

use super::proxy::Proxy;
use super::Scope;

const TTL: Duration = Duration::from_secs(300);

async fn wait_state(client: &Client, want: WatchState, within: Duration) {
    let deadline = Instant::now() + within;
    while client.watch_state() != want {
        assert!(Instant::now() < deadline, "watch state {:?}, expected {want:?}", client.watch_state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll the client (cache first, as an application does) until `label` of
/// `name` is `version_id`; the time it took.
async fn until_served(client: &Client, name: &str, label: &str, version_id: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let v = client.get_prompt_version(name).label(label).await.unwrap();
        if v.version_id == version_id {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{name}/{label} still {} after {within:?}", v.version_id);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Let the seed's own events go by. A stream continues from the server's
/// fan-out position, which may be a few milliseconds behind the last
/// commit, so the events of a prompt created just before the client can
/// arrive right after `ready` — and rightly drop the entries fetched. A copy
/// fetched within 2 s of an event is also kept 2 s at most (the SDK's settle
/// window). So wait that out, then fetch until the cache serves.
async fn settle(client: &Client, name: &str) {
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let f = client.get_prompt_version(name).send_with_meta().await.unwrap();
        if f.source == FetchSource::Cache {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is never served from the cache");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn promote_keeping_previous(scope: &Scope, name: &str, version_id: &str) {
    scope
        .admin_post(&format!("/prompts/{name}/versions/{version_id}/promote"), json!({"archive_previous": false}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_and_a_label_move_reach_a_watching_client_within_a_second() {
    let scope = Scope::start(None).await;
    let [v1, v2, v3] = scope.seed_greeting().await;
    scope.admin_put("/prompts/greeting/labels/staging", json!({"version_id": v1})).await;
    let client = scope.client().cache_ttl(TTL).watch(true).build().unwrap();
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version_id, v2);
    assert_eq!(client.get_prompt_version("greeting").label("staging").await.unwrap().version_id, v1);
    wait_state(&client, WatchState::Live, Duration::from_secs(10)).await;
    // Served from the cache: the TTL is 300 s.
    settle(&client, "greeting").await;

    let started = Instant::now();
    scope.promote("greeting", &v3).await;
    let seen = until_served(&client, "greeting", "production", &v3, Duration::from_secs(1)).await;
    let total = started.elapsed();
    println!(
        "promotion -> watching SDK: {:.1} ms after the promote call returned, {:.1} ms from sending it",
        seen.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    assert!(total < Duration::from_secs(1), "{total:?}");

    let started = Instant::now();
    scope.admin_put("/prompts/greeting/labels/staging", json!({"version_id": v3})).await;
    until_served(&client, "greeting", "staging", &v3, Duration::from_secs(1)).await;
    let total = started.elapsed();
    println!("label move -> watching SDK: {:.1} ms from sending it", total.as_secs_f64() * 1e3);
    assert!(total < Duration::from_secs(1), "{total:?}");

    // A deleted prompt is gone from the cache at once.
    let v = client.get_prompt_version("greeting").label("latest").await.unwrap();
    assert_eq!(v.version_id, v3);
    let resp = scope
        .http
        .delete(format!("{}/api/v1/prompts/greeting", scope.url))
        .bearer_auth(&scope.admin_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match client.get_prompt_version("greeting").label("latest").await {
            Err(Error::NotFound(_)) => break,
            Ok(_) => assert!(Instant::now() < deadline, "the deleted prompt is still served"),
            Err(e) => panic!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The figures of the issue: 100 promotions, each timed from sending the
/// promote call to the watching client serving the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_over_100_promotions() {
    let scope = Scope::start(None).await;
    let [_, v2, v3] = scope.seed_greeting().await;
    let client = scope.client().cache_ttl(TTL).watch(true).build().unwrap();
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version_id, v2);
    wait_state(&client, WatchState::Live, Duration::from_secs(10)).await;
    let mut samples = Vec::with_capacity(100);
    for i in 0..100 {
        let target = if i % 2 == 0 { &v3 } else { &v2 };
        let started = Instant::now();
        promote_keeping_previous(&scope, "greeting", target).await;
        until_served(&client, "greeting", "production", target, Duration::from_secs(5)).await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = (samples[49] + samples[50]) / 2;
    println!(
        "propagation promote -> watching SDK over {} promotions: median {:.1} ms, p90 {:.1} ms, max {:.1} ms, min {:.1} ms",
        samples.len(),
        ms(median),
        ms(samples[89]),
        ms(samples[99]),
        ms(samples[0])
    );
    assert!(samples[99] < Duration::from_secs(1), "max {:?}", samples[99]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_cut_the_cache_keeps_serving_and_recovers() {
    let scope = Scope::start(None).await;
    let [_, v2, v3] = scope.seed_greeting().await;
    let v4 = scope.create_version("greeting", "Fourth {{name}}").await;
    let proxy = Proxy::start(&scope.url).await;
    let client = scope
        .client()
        .api_url(proxy.url())
        .cache_ttl(TTL)
        .watch(true)
        .watch_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .build()
        .unwrap();
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version_id, v2);
    wait_state(&client, WatchState::Live, Duration::from_secs(10)).await;
    settle(&client, "greeting").await;

    proxy.cut();
    wait_state(&client, WatchState::Connecting, Duration::from_secs(5)).await;
    // A change while the client cannot hear about it.
    promote_keeping_previous(&scope, "greeting", &v3).await;
    for _ in 0..20 {
        let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
        assert_eq!((f.source, f.version.version_id.as_str()), (FetchSource::Cache, v2.as_str()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(client.watch_state(), WatchState::Connecting);

    // Back: the stream resumes from its last event id and replays the
    // promotion it missed, which drops the stale entry.
    proxy.restore();
    let waited = until_served(&client, "greeting", "production", &v3, Duration::from_secs(10)).await;
    println!(
        "after the cut: the missed promotion was served {:.0} ms after the network came back",
        waited.as_secs_f64() * 1e3
    );
    wait_state(&client, WatchState::Live, Duration::from_secs(5)).await;
    // And later changes arrive live again.
    let started = Instant::now();
    promote_keeping_previous(&scope, "greeting", &v4).await;
    until_served(&client, "greeting", "production", &v4, Duration::from_secs(1)).await;
    println!("after recovery: promotion served in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
}

/// Entries fetched while the stream is live outlive their TTL only while
/// it stays live: once it is cut, an entry past its TTL is fetched again
/// (and here fails, the server being unreachable) instead of being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_ttl_an_entry_is_served_only_while_the_stream_is_live() {
    let scope = Scope::start(None).await;
    let [_, v2, _] = scope.seed_greeting().await;
    let proxy = Proxy::start(&scope.url).await;
    let ttl = Duration::from_millis(300);
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    let client = scope
        .client()
        .on_response(move |e| log.lock().push(format!("{} {}", e.status, e.url)))
        .api_url(proxy.url())
        .cache_ttl(ttl)
        .max_retries(0)
        .watch(true)
        .watch_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .build()
        .unwrap();
    wait_state(&client, WatchState::Live, Duration::from_secs(10)).await;
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version_id, v2);
    settle(&client, "greeting").await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(
        f.source,
        FetchSource::Cache,
        "covered by the live stream past its TTL; {:?} {:?}",
        client.watch_state(),
        seen.lock()
    );
    assert!(f.age > ttl, "{:?}", f.age);

    proxy.cut();
    wait_state(&client, WatchState::Connecting, Duration::from_secs(5)).await;
    let err = client.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_clients_own_key_stops_watching_and_drops_its_token() {
    let scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let (key_id, secret) = scope.create_key("watcher").await;
    let (other_id, _) = scope.create_key("other").await;
    let client = scope.client_with(&key_id, &secret).cache_ttl(TTL).watch(true).build().unwrap();
    client.get_prompt_version("greeting").await.unwrap();
    wait_state(&client, WatchState::Live, Duration::from_secs(10)).await;
    // Another key's revocation changes nothing.
    scope.revoke(&other_id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.watch_state(), WatchState::Live);

    scope.revoke(&key_id).await;
    wait_state(&client, WatchState::Stopped, Duration::from_secs(2)).await;
    // Cached copies stay until their TTL; anything else needs a token, and
    // the key is refused.
    client.get_prompt_version("greeting").await.unwrap();
    let err = client.get_prompt_version("greeting").label("latest").await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_client_handle_ends_the_stream() {
    let scope = Scope::start(None).await;
    let proxy = Proxy::start(&scope.url).await;
    let client = scope.client().api_url(proxy.url()).watch(true).build().unwrap();
    let clone = client.clone();
    wait_state(&clone, WatchState::Live, Duration::from_secs(10)).await;
    drop(client);
    // A clone keeps it open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(clone.watch_state(), WatchState::Live);
    assert!(proxy.open_connections() >= 1);
    drop(clone);
    // The task ends and closes the stream (and the pool its connections).
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.open_connections() > 0 {
        assert!(Instant::now() < deadline, "{} connection(s) still open", proxy.open_connections());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
