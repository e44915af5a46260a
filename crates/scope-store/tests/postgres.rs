//! What only the PostgreSQL backend has: several connections (standing for
//! several replicas) writing at once, the pushed change feed, a server that
//! goes away and comes back, and migrations raced by replicas starting
//! together. Everything the `Store` trait promises is in the conformance
//! suite (`tests/conformance/`), run against PostgreSQL there too.
//!
//! Each test takes a fresh database on the cluster shared by this test
//! process (`scope_testkit::pg`); the stop/start test starts its own.

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use scope_domain::{ErrorCode, KeyId, OrgId, Role, VersionStatus};
use scope_store::postgres::PgStore;
use scope_store::*;
use scope_testkit::pg::PgCluster;
use sqlx::Connection;
use tokio::sync::mpsc::Receiver;

use support::*;

/// How long a test waits for a change to arrive on the feed.
const FEED_WAIT: Duration = Duration::from_secs(10);

/// A fresh database on the shared cluster.
async fn fresh_database() -> Result<String, Box<dyn std::error::Error>> {
    // Starting the cluster (first call) and CREATE DATABASE run processes.
    Ok(tokio::task::spawn_blocking(|| PgCluster::shared().fresh_database()).await?)
}

async fn open(url: &str) -> Result<Arc<PgStore>, StoreError> {
    Ok(Arc::new(PgStore::open(url, &OpenOptions::default()).await?))
}

/// Opens connections in every store's pool first, so that the calls a test
/// then races overlap instead of queueing behind connection set-up.
async fn warm_up(stores: &[&Arc<PgStore>]) -> TestResult {
    let mut pings = Vec::new();
    for s in stores {
        for _ in 0..10 {
            let s = Arc::clone(s);
            pings.push(tokio::spawn(async move { s.ping().await }));
        }
    }
    for p in pings {
        p.await??;
    }
    Ok(())
}

/// The next change on the feed, failing the test after [`FEED_WAIT`].
async fn next_change(feed: &mut Receiver<Change>) -> Result<Change, Box<dyn std::error::Error>> {
    match tokio::time::timeout(FEED_WAIT, feed.recv()).await {
        Ok(Some(change)) => Ok(change),
        Ok(None) => Err("the change feed ended".into()),
        Err(_) => Err("no change arrived on the feed in time".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_promotes_from_two_pools_leave_one_published_and_a_complete_history() -> TestResult {
    let url = fresh_database().await?;
    // Two pools: two replicas, in effect.
    let a = open(&url).await?;
    let b = open(&url).await?;
    let (org, _) = make_org(&*a, "promote@example.com").await?;
    let (pid, v1) = make_prompt(&*a, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for i in 0..49 {
        versions.push(new_version(&*b, org, pid, Some(&format!("v{}", i + 2)), None).await?.version_id);
    }
    let mut tasks = Vec::new();
    for (i, v) in versions.iter().copied().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let req = promote_req(i % 3 == 0, 1000 + i as i64);
            s.promote(org, pid, v, &req, &event(org, "version.promoted", &v.to_string())).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await??.status, VersionStatus::Published);
    }

    let all = a.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.len(), 50);
    let published: Vec<_> = all.iter().filter(|v| v.status == VersionStatus::Published).collect();
    assert_eq!(published.len(), 1);

    // The history is one chain: the first promotion had no predecessor, each
    // later one names the version published just before it, and the chain
    // ends at the version published now.
    let hist = a.list_promotions(org, pid, &page(200, None)).await?;
    assert_eq!(hist.len(), 50);
    let by_previous: BTreeMap<Option<i64>, i64> = hist.iter().map(|h| (h.previous_version, h.version)).collect();
    assert_eq!(by_previous.len(), 50, "two promotions claim the same predecessor");
    let mut at = None;
    let mut seen = BTreeSet::new();
    while let Some(&next) = by_previous.get(&at) {
        assert!(seen.insert(next), "the history loops");
        at = Some(next);
    }
    assert_eq!(seen.len(), 50);
    assert_eq!(at, Some(published[0].version));
    assert_eq!(a.get_prompt(org, "hot").await?.production_version, Some(published[0].version));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_versions_get_distinct_numbers() -> TestResult {
    let url = fresh_database().await?;
    let (a, b) = (open(&url).await?, open(&url).await?);
    let (org, _) = make_org(&*a, "numbers@example.com").await?;
    let (pid, _) = make_prompt(&*a, org, "numbered", &[], "v1").await?;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { new_version(&*s, org, pid, Some("x"), None).await }));
    }
    let mut numbers = BTreeSet::new();
    for t in tasks {
        numbers.insert(t.await??.version);
    }
    assert_eq!(numbers, (2..=41).collect::<BTreeSet<i64>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_poller_never_misses_concurrent_revocations() -> TestResult {
    let url = fresh_database().await?;
    let writers = [open(&url).await?, open(&url).await?];
    let poller = open(&url).await?;
    let (org, _) = make_org(&*writers[0], "gates@example.com").await?;
    let keys: Vec<ApiKeyRow> = (0..120).map(|i| key_row(org, &format!("k{i}"), None)).collect();
    writers[0].import_api_keys(&keys).await?;

    // The poller asks for changes after the highest number it has seen, as
    // every replica's revocation view does.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = {
        let (poller, done) = (poller.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: BTreeMap<KeyId, i64> = BTreeMap::new();
            let mut after = 0;
            loop {
                // Read the flag first: a poll that starts after every revoke
                // returned sees all of them.
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                for g in poller.key_gate_changes(after).await? {
                    assert!(g.change_seq > after);
                    after = after.max(g.change_seq);
                    seen.insert(g.key_id, g.change_seq);
                }
                if last {
                    return Ok::<_, StoreError>(seen);
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let s = writers[i % 2].clone();
        let key = k.key_id;
        tasks.push(tokio::spawn(async move {
            s.revoke_api_key(org, key, "usr_x", 5_000, &event(org, "api_key.revoked", &key.to_string())).await
        }));
    }
    for t in tasks {
        assert!(t.await??.revoked_at.is_some());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = poll.await??;

    let revoked: BTreeSet<KeyId> = keys.iter().map(|k| k.key_id).collect();
    let missed: Vec<&KeyId> = revoked.iter().filter(|k| !seen.contains_key(k)).collect();
    assert!(missed.is_empty(), "the poller missed {} revocations", missed.len());
    // Every revocation got a number of its own.
    let all = poller.key_gate_changes(0).await?;
    let numbers: BTreeSet<i64> = all.iter().map(|g| g.change_seq).collect();
    assert_eq!(numbers.len(), all.len());
    assert_eq!(all.len(), keys.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_usage_flushes_lose_no_counts() -> TestResult {
    let url = fresh_database().await?;
    let (a, b) = (open(&url).await?, open(&url).await?);
    let (org, key) = make_org(&*a, "usage@example.com").await?;
    let other = key_row(org, "other", None);
    a.insert_api_key(&other, &event(org, "api_key.created", "x")).await?;
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (k1, k2) = (key.key_id, other.key_id);
        tasks.push(tokio::spawn(async move {
            // Both keys in both orders, and a key that does not exist.
            let mut usage = vec![
                KeyUsageDelta { key_id: k1, day: "2024-05-01".into(), count: 2, last_used_at: 1_000 + i },
                KeyUsageDelta { key_id: k2, day: "2024-05-01".into(), count: 1, last_used_at: 2_000 - i },
                KeyUsageDelta { key_id: k1, day: "2024-05-02".into(), count: 1, last_used_at: 500 },
                KeyUsageDelta { key_id: KeyId::generate(), day: "2024-05-01".into(), count: 9, last_used_at: 1 },
            ];
            if i % 2 == 1 {
                usage.reverse();
            }
            s.record_key_usage(&usage).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let days = a.key_usage(org, key.key_id, "2024-01-01").await?;
    let counts: Vec<(&str, u64)> = days.iter().map(|d| (d.day.as_str(), d.count)).collect();
    assert_eq!(counts, vec![("2024-05-01", 80), ("2024-05-02", 40)]);
    assert_eq!(a.key_usage(org, other.key_id, "2024-01-01").await?[0].count, 40);
    assert_eq!(a.get_api_key(org, key.key_id).await?.last_used_at, Some(1_039));
    assert_eq!(a.get_api_key(org, other.key_id).await?.last_used_at, Some(2_000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_demotions_keep_an_active_admin() -> TestResult {
    let url = fresh_database().await?;
    let (a, b) = (open(&url).await?, open(&url).await?);
    for round in 0..10 {
        let (org, _, first) = make_org_with_admin(&*a, &format!("admin-{round}@example.com")).await?;
        let second = user_row(org, &format!("admin2-{round}@example.com"), Role::Admin, "$argon2id$x");
        add_user(&*a, &second, None).await?;
        let demote = |s: Arc<PgStore>, user: scope_domain::UserId| {
            tokio::spawn(async move {
                if round % 2 == 0 {
                    s.update_user_role(org, user, Role::Viewer, &event(org, "user.role_changed", "x")).await.map(|_| ())
                } else {
                    s.delete_user(org, user, &event(org, "user.removed", "x")).await
                }
            })
        };
        let (r1, r2) = tokio::join!(demote(a.clone(), first.user_id), demote(b.clone(), second.user_id));
        let results = [r1?, r2?];
        let refused = results.iter().filter(|r| matches!(r, Err(e) if is_domain(e, ErrorCode::Conflict))).count();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
        assert_eq!(refused, 1, "round {round}: {results:?}");
        let admins = a.list_users(org, &page(10, None)).await?.into_iter().filter(|u| u.role == Role::Admin).count();
        assert_eq!(admins, 1);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_signing_key_rotations_leave_one_active_key() -> TestResult {
    let url = fresh_database().await?;
    let (a, b) = (open(&url).await?, open(&url).await?);
    warm_up(&[&a, &b]).await?;
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let row = SigningKeyRow {
                kid: format!("kid-{i}"),
                public_key: vec![1; 32],
                private_key: vec![2; 32],
                encrypted: false,
                created_at: 100 + i,
                retired_at: None,
            };
            s.insert_signing_key(&row).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let keys = a.list_signing_keys().await?;
    assert_eq!(keys.len(), 20);
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_feed_delivers_commits_only() -> TestResult {
    let url = fresh_database().await?;
    let store = open(&url).await?;
    let writer = open(&url).await?;
    let mut feed = store.changes().await?.ok_or("PostgreSQL pushes changes")?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);

    let (org, key) = make_org(&*writer, "feed@example.com").await?;
    // Keys born without a gate announce nothing; a revocation does, and is
    // visible by the time it is announced.
    writer.revoke_api_key(org, key.key_id, "usr_x", 10, &event(org, "api_key.revoked", "x")).await?;
    assert_eq!(next_change(&mut feed).await?, Change::KeyGates);
    // Each change also appends to the event log, announced last.
    assert_eq!(next_change(&mut feed).await?, Change::Events);
    assert!(store.key_gate_changes(0).await?.iter().any(|g| g.key_id == key.key_id && g.revoked));

    let (pid, v1) = make_prompt(&*writer, org, "fed", &[], "x").await?;
    assert_eq!(next_change(&mut feed).await?, Change::Prompts(org));
    assert_eq!(next_change(&mut feed).await?, Change::Events);
    writer.promote(org, pid, v1, &promote_req(true, 20), &event(org, "version.promoted", "x")).await?;
    assert_eq!(next_change(&mut feed).await?, Change::Prompts(org));
    assert_eq!(next_change(&mut feed).await?, Change::Events);
    assert!(!store.list_events(org, 0, 10).await?.is_empty(), "visible by the time it is announced");
    assert_eq!(store.production_version(org, pid).await?.map(|v| v.version_id), Some(v1));

    // Rolled back: revoking again (nothing changes), rotating a revoked key
    // (refused), a duplicate prompt name, promoting the published version.
    writer.revoke_api_key(org, key.key_id, "usr_x", 11, &event(org, "api_key.revoked", "x")).await?;
    let successor = key_row(org, "next", None);
    assert!(writer.rotate_api_key(org, key.key_id, 99, &successor, &event(org, "x", "x")).await.is_err());
    assert!(make_prompt(&*writer, org, "fed", &[], "dup").await.is_err());
    writer.promote(org, pid, v1, &promote_req(true, 21), &event(org, "version.promoted", "x")).await?;
    // So the next change is the signing key's.
    let row = SigningKeyRow {
        kid: "feed-kid".into(),
        public_key: vec![1; 32],
        private_key: vec![2; 32],
        encrypted: false,
        created_at: 30,
        retired_at: None,
    };
    writer.insert_signing_key(&row).await?;
    assert_eq!(next_change(&mut feed).await?, Change::SigningKeys);
    // A key born with an expiry is a gate change.
    writer.insert_api_key(&key_row(org, "expiring", Some(1_000)), &event(org, "api_key.created", "x")).await?;
    assert_eq!(next_change(&mut feed).await?, Change::KeyGates);
    assert!(tokio::time::timeout(Duration::from_millis(300), feed.recv()).await.is_err(), "nothing else");

    // The listener's connection is killed: Lost, then Resync once it
    // listens again, and changes flow again.
    let cluster = PgCluster::shared();
    let killed = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            cluster.psql(
                &url,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
        }
    })
    .await?;
    assert_eq!(killed.trim(), "1");
    assert_eq!(next_change(&mut feed).await?, Change::Lost);
    assert_eq!(next_change(&mut feed).await?, Change::Resync);
    let k = key_row(org, "after", None);
    writer.insert_api_key(&k, &event(org, "api_key.created", "x")).await?;
    writer.revoke_api_key(org, k.key_id, "usr_x", 13, &event(org, "api_key.revoked", "x")).await?;
    assert_eq!(next_change(&mut feed).await?, Change::KeyGates);

    // Dropping the receiver ends the feed and closes its connection.
    drop(feed);
    let mut listening = String::new();
    for _ in 0..100 {
        let url = url.clone();
        listening = tokio::task::spawn_blocking(move || {
            cluster.psql(
                &url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
        })
        .await?;
        if listening.trim() == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listening.trim(), "0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_revocation_is_announced_once_after_commit() -> TestResult {
    let url = fresh_database().await?;
    let store = open(&url).await?;
    let writer = open(&url).await?;
    let mut feed = store.changes().await?.ok_or("PostgreSQL pushes changes")?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);
    let (org, key) = make_org(&*writer, "token-feed@example.com").await?;
    let row = RevokedTokenRow {
        jti: "feed-jti".into(),
        org_id: org,
        key_id: key.key_id,
        expires_at: i64::MAX / 2,
        revoked_at: 5,
        revoked_by: key.key_id.to_string(),
        change_seq: 0,
    };
    assert!(writer.revoke_token(&row, &event(org, "api_key.token_revoked", "feed-jti")).await?);
    assert_eq!(next_change(&mut feed).await?, Change::Tokens);
    // Visible by the time it is announced.
    assert!(store.revoked_token_changes(0, 0).await?.iter().any(|r| r.jti == "feed-jti"));
    // Revoked again: rolled back, so nothing is announced.
    assert!(!writer.revoke_token(&row, &event(org, "api_key.token_revoked", "feed-jti")).await?);
    assert!(tokio::time::timeout(Duration::from_millis(300), feed.recv()).await.is_err(), "nothing else");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_announces_what_it_loaded_after_commit() -> TestResult {
    // A deployment with a prompt, a label, a token revoked on its own and
    // events, exported.
    let source = open(&fresh_database().await?).await?;
    let (org, key) = make_org(&*source, "import-feed@example.com").await?;
    let (pid, v1) = make_prompt(&*source, org, "fed", &[], "x").await?;
    let staging = MoveLabelRequest {
        label: "staging".into(),
        to: Some(v1),
        kind: LabelMoveKind::Move,
        if_current: None,
        notes: None,
        archive_previous: false,
        actor: "usr_x".into(),
        now_ms: 10,
        move_id: format!("lbm_{}", ulid_text()),
        promotion_id: format!("prm_{}", ulid_text()),
    };
    source.move_label(org, pid, &staging, &event(org, "label.moved", "x")).await?;
    let row = RevokedTokenRow {
        jti: "import-feed-jti".into(),
        org_id: org,
        key_id: key.key_id,
        expires_at: i64::MAX / 2,
        revoked_at: 5,
        revoked_by: key.key_id.to_string(),
        change_seq: 0,
    };
    assert!(source.revoke_token(&row, &event(org, "api_key.token_revoked", "x")).await?);
    let snapshot = source.export().await?;
    assert!(!snapshot.events.is_empty() && !snapshot.revoked_tokens.is_empty());

    // A replica of the target database listens while it is imported.
    let url = fresh_database().await?;
    let store = open(&url).await?;
    let importer = open(&url).await?;
    let mut feed = store.changes().await?.ok_or("PostgreSQL pushes changes")?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);
    importer.import(&snapshot).await?;
    assert_eq!(next_change(&mut feed).await?, Change::Prompts(org));
    assert_eq!(next_change(&mut feed).await?, Change::Tokens);
    // Visible by the time it is announced.
    assert!(store.revoked_token_changes(0, 0).await?.iter().any(|r| r.jti == "import-feed-jti" && r.change_seq > 0));
    assert_eq!(next_change(&mut feed).await?, Change::Events);
    assert_eq!(store.event_feed(0, 100).await?, source.event_feed(0, 100).await?);
    // A second import is refused and rolled back: nothing is announced.
    assert!(matches!(importer.import(&snapshot).await, Err(StoreError::Conflict(_))));
    assert!(tokio::time::timeout(Duration::from_millis(300), feed.recv()).await.is_err(), "nothing else");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_feed_coalesces_into_one_resync() -> TestResult {
    let url = fresh_database().await?;
    let store = open(&url).await?;
    let mut feed = store.changes().await?.ok_or("PostgreSQL pushes changes")?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);
    // More announcements than the channel holds, unread meanwhile (distinct
    // payloads: PostgreSQL folds identical ones within a transaction only).
    let orgs: Vec<OrgId> = (0..1100).map(|_| OrgId::generate()).collect();
    let payloads: Vec<String> = orgs.iter().map(|o| format!("prompts:{o}")).collect();
    let mut conn = sqlx::postgres::PgConnection::connect(&url).await?;
    for chunk in payloads.chunks(100) {
        sqlx::query("SELECT pg_notify('scope_changes', p) FROM UNNEST($1::text[]) AS p")
            .bind(chunk)
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    // Let the feed fill up and overflow.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut received = Vec::new();
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(500), feed.recv()).await {
        received.push(change);
    }
    assert!(received.len() < orgs.len() + 1, "the channel is bounded");
    assert_eq!(received.last(), Some(&Change::Resync), "an overflow ends with a Resync");
    assert_eq!(received.iter().filter(|c| **c == Change::Resync).count(), 1);
    assert_eq!(received[0], Change::Prompts(orgs[0]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_and_the_store_recovers_when_it_is_back() -> TestResult {
    let cluster = Arc::new(tokio::task::spawn_blocking(PgCluster::start).await?);
    let url = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.fresh_database()).await?
    };
    let options = OpenOptions { connect_timeout: Duration::from_millis(500), ..OpenOptions::default() };
    let store = PgStore::open(&url, &options).await?;
    let (org, _) = make_org(&store, "down@example.com").await?;
    let mut feed = store.changes().await?.ok_or("PostgreSQL pushes changes")?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);

    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    assert_eq!(next_change(&mut feed).await?, Change::Lost);
    for result in [
        store.ping().await,
        store.get_org(org).await.map(|_| ()),
        make_prompt(&store, org, "while-down", &[], "x").await.map(|_| ()),
        store.list_api_keys(org, &key_query(10, None, None, 0)).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }
    assert!(matches!(PgStore::open(&url, &options).await, Err(StoreError::Unavailable(_))));

    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.start_again()).await?;
    }
    // The same store, not reopened: broken connections are replaced.
    store.ping().await?;
    assert_eq!(store.get_org(org).await?.org_id, org);
    make_prompt(&store, org, "after", &[], "x").await?;
    assert_eq!(next_change(&mut feed).await?, Change::Resync);
    drop(feed);
    drop(store);
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_timeout_is_unavailable() -> TestResult {
    let url = fresh_database().await?;
    let options = OpenOptions { statement_timeout: Duration::from_millis(200), ..OpenOptions::default() };
    let store = PgStore::open(&url, &options).await?;
    let (org, _) = make_org(&store, "slow@example.com").await?;
    let (pid, v1) = make_prompt(&store, org, "locked", &[], "x").await?;
    // Another session holds the prompt row.
    let mut other = sqlx::postgres::PgConnection::connect(&url).await?;
    let mut tx = other.begin().await?;
    sqlx::query("SELECT 1 FROM prompts WHERE prompt_id = $1 FOR UPDATE")
        .bind(pid.to_string())
        .execute(&mut *tx)
        .await?;
    let r = store.promote(org, pid, v1, &promote_req(true, 1), &event(org, "version.promoted", "x")).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    tx.rollback().await?;
    store.promote(org, pid, v1, &promote_req(true, 1), &event(org, "version.promoted", "x")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_opening_at_once_migrate_once() -> TestResult {
    let url = fresh_database().await?;
    let opens = (0..4).map(|_| {
        let url = url.clone();
        async move { open(&url).await }
    });
    let stores = futures_join_all(opens).await;
    for s in &stores {
        assert!(s.is_ok(), "{s:?}");
    }
    let mut conn = sqlx::postgres::PgConnection::connect(&url).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&mut conn).await?;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))?.count();
    assert_eq!(applied, i64::try_from(files)?);
    Ok(())
}

/// Awaits every future concurrently (spawned, so they really race).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_imports_are_batched_under_the_parameter_limit() -> TestResult {
    let url = fresh_database().await?;
    let store = open(&url).await?;
    let (org, _) = make_org(&*store, "big@example.com").await?;
    // 14 columns × 6 000 keys = 84 000 parameters: more than one statement may take.
    let mut keys: Vec<ApiKeyRow> = (0..6_000).map(|i| key_row(org, &format!("k{i}"), None)).collect();
    for k in keys.iter_mut().step_by(1_000) {
        k.expires_at = Some(9_000);
    }
    store.import_api_keys(&keys).await?;
    assert_eq!(store.key_gate_changes(0).await?.len(), 6);
    assert_eq!(store.find_api_key(keys[5_999].key_id).await?.as_ref(), Some(&keys[5_999]));

    let snapshot = store.export().await?;
    assert_eq!(snapshot.api_keys.len(), 6_001);
    let copy = open(&fresh_database().await?).await?;
    copy.import(&snapshot).await?;
    assert_eq!(copy.export().await?, snapshot);
    assert_eq!(copy.key_gate_changes(0).await?.len(), 6);
    Ok(())
}
