//! Crash safety (issue 9): `scope serve` killed with SIGKILL in the middle of
//! a stream of writes (key creations, revocations, prompts, versions,
//! promotions from several concurrent clients), restarted on the same
//! database, keeps every write it acknowledged with a 2xx and shows nothing
//! half-written; on SQLite the file passes `PRAGMA integrity_check`.
//!
//! The writers record every write they send and every one acknowledged; a
//! request cut by the kill is "in flight": it may or may not have happened,
//! but never partly. Three kills, each after a different amount of progress,
//! on one database; after each restart everything acknowledged so far is
//! checked again. On PostgreSQL (`SCOPE_TEST_DATABASE=postgres`) only the
//! scope server is killed, never the database, and there is no PRAGMA.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use crate::harness::{wait_until, Api, Backend, TestServer};

/// Concurrent writers of each kind.
const KEY_WRITERS: usize = 2;
const PROMPT_WRITERS: usize = 3;

#[derive(Debug, Clone)]
struct AckedKey {
    key_id: String,
    secret: String,
}

#[derive(Debug, Default)]
struct PromptLedger {
    /// Acknowledged versions: id → content.
    versions: BTreeMap<String, String>,
    /// Acknowledged promotions, in order.
    promotions: Vec<String>,
    /// A promotion sent but never answered (cut by the kill).
    promotion_in_flight: Option<String>,
}

/// What the writers sent and what the server acknowledged.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged writes, all kinds.
    acked: usize,
    /// Requests the kill cut (no answer).
    cut: usize,
    /// Names of every key creation sent.
    key_names_sent: HashSet<String>,
    keys: Vec<AckedKey>,
    /// Acknowledged revocations.
    revoked: HashSet<String>,
    /// Revocations sent but never answered.
    revoke_in_flight: HashSet<String>,
    /// Names of every prompt creation sent.
    prompt_names_sent: HashSet<String>,
    /// Content of every prompt or version creation sent (each is unique).
    contents_sent: HashSet<String>,
    prompts: BTreeMap<String, PromptLedger>,
    /// Answers that were neither 2xx nor a cut connection.
    unexpected: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// One write: `Some(body)` when acknowledged with `expected`; `None` when
/// the connection was cut (the writer stops); any other answer is recorded
/// as unexpected (and the writer stops too).
async fn write(api: &Api, ledger: &Shared, path: &str, body: Value, expected: u16) -> Option<Value> {
    let sent = api.request(reqwest::Method::POST, path).json(&body).send().await;
    let resp = match sent {
        Ok(r) => r,
        Err(_) => {
            ledger.lock().unwrap().cut += 1;
            return None;
        }
    };
    let status = resp.status().as_u16();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(_) => {
            // The status line came but the body did not: acknowledged or
            // not, the writer cannot tell; treat as cut.
            ledger.lock().unwrap().cut += 1;
            return None;
        }
    };
    if status != expected {
        ledger.lock().unwrap().unexpected.push(format!("POST {path} → {status}: {text}"));
        return None;
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => {
            ledger.lock().unwrap().acked += 1;
            Some(v)
        }
        Err(e) => {
            ledger.lock().unwrap().unexpected.push(format!("POST {path} → {status}, not JSON ({e}): {text}"));
            None
        }
    }
}

fn str_of(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("no {field} in {v}")).to_owned()
}

/// Creates keys; every third round revokes the key made two rounds before.
async fn key_writer(api: Api, ledger: Shared, tag: String) {
    let mut mine: Vec<String> = Vec::new();
    for i in 0.. {
        let name = format!("crash {tag} {i}");
        ledger.lock().unwrap().key_names_sent.insert(name.clone());
        let Some(v) = write(&api, &ledger, "/api/v1/api-keys", json!({"name": name, "role": "viewer"}), 201).await
        else {
            return;
        };
        let key = AckedKey { key_id: str_of(&v, "key_id"), secret: str_of(&v, "secret") };
        mine.push(key.key_id.clone());
        ledger.lock().unwrap().keys.push(key);
        if i % 3 == 2 {
            let victim = mine[mine.len() - 3].clone();
            ledger.lock().unwrap().revoke_in_flight.insert(victim.clone());
            let path = format!("/api/v1/api-keys/{victim}/revoke");
            if write(&api, &ledger, &path, json!({}), 200).await.is_none() {
                return;
            }
            let mut l = ledger.lock().unwrap();
            l.revoke_in_flight.remove(&victim);
            l.revoked.insert(victim);
        }
    }
}

/// Creates prompts; adds versions to the newest one and promotes every
/// other new version.
async fn prompt_writer(api: Api, ledger: Shared, tag: String) {
    let mut current: Option<String> = None;
    for i in 0.. {
        let prompt = match &current {
            Some(p) if i % 6 != 0 => p.clone(),
            _ => {
                let name = format!("crash-{tag}-{i}");
                let content = format!("prompt {name}, version 1, for {{{{audience}}}}");
                {
                    let mut l = ledger.lock().unwrap();
                    l.prompt_names_sent.insert(name.clone());
                    l.contents_sent.insert(content.clone());
                }
                let Some(v) =
                    write(&api, &ledger, "/api/v1/prompts", json!({"name": name, "content": content}), 201).await
                else {
                    return;
                };
                let id = str_of(&v, "prompt_id");
                let v1 = str_of(&v["version"], "version_id");
                let mut pl = PromptLedger::default();
                pl.versions.insert(v1, content);
                ledger.lock().unwrap().prompts.insert(id.clone(), pl);
                current = Some(id.clone());
                continue;
            }
        };
        let content = format!("prompt {prompt}, write {tag}/{i}: {{{{audience}}}} {}", "text ".repeat(i % 40));
        ledger.lock().unwrap().contents_sent.insert(content.clone());
        let path = format!("/api/v1/prompts/{prompt}/versions");
        let Some(v) = write(&api, &ledger, &path, json!({"content": content}), 201).await else {
            return;
        };
        let version = str_of(&v, "version_id");
        ledger.lock().unwrap().prompts.get_mut(&prompt).expect("own prompt").versions.insert(version.clone(), content);
        if i % 2 == 0 {
            ledger.lock().unwrap().prompts.get_mut(&prompt).expect("own prompt").promotion_in_flight =
                Some(version.clone());
            let path = format!("/api/v1/prompts/{prompt}/versions/{version}/promote");
            if write(&api, &ledger, &path, json!({"notes": format!("release {tag}/{i}")}), 200).await.is_none() {
                return;
            }
            let mut l = ledger.lock().unwrap();
            let pl = l.prompts.get_mut(&prompt).expect("own prompt");
            pl.promotion_in_flight = None;
            pl.promotions.push(version);
        }
    }
}

/// Every item of a paginated list.
async fn list_all(api: &Api, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let r = api.get(&url).await;
        r.assert_status(200);
        let v = r.json();
        out.extend(v["data"].as_array().unwrap_or_else(|| panic!("no data in {v}")).iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The SIGKILL: the server process found by its database URL (unique to
/// this test) on the command line, killed with `kill -9`.
fn sigkill(server: &TestServer) {
    let url = server.db_url().to_owned();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == &url) && args.iter().any(|a| a == "serve") {
            let status =
                std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("run kill");
            assert!(status.success(), "kill -KILL {pid} failed");
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "expected one `scope serve` on {url}");
}

/// `PRAGMA integrity_check` (and `foreign_key_check`) on the SQLite file,
/// opened as the killed server left it.
async fn sqlite_integrity(db_url: &str) {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(db_url).expect("sqlite url").create_if_missing(false);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.expect("open the SQLite file");
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.expect("pragma");
    assert_eq!(rows, ["ok"], "integrity_check after SIGKILL");
    let dangling: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&mut conn).await.expect("pragma");
    assert!(dangling.is_empty(), "rows with dangling references after SIGKILL: {dangling:?}");
    conn.close().await.expect("close");
}

/// Everything the ledger says, checked against the restarted server.
async fn verify(server: &TestServer, ledger: &Ledger) -> String {
    let admin = server.admin().await;

    // Keys: every acknowledged one listed; revocations kept; nothing listed
    // that nobody asked for.
    let listed = list_all(&admin, "/api/v1/api-keys").await;
    let status: HashMap<String, String> = listed.iter().map(|k| (str_of(k, "key_id"), str_of(k, "status"))).collect();
    for k in &listed {
        let name = str_of(k, "name");
        let id = str_of(k, "key_id");
        assert!(
            id == server.org.key_id || ledger.key_names_sent.contains(&name),
            "a key nobody created is listed: {k}"
        );
        assert!(k["secret"].is_null(), "a listed key carries a secret: {k}");
    }
    for key in &ledger.keys {
        let got = status.get(&key.key_id).unwrap_or_else(|| panic!("acknowledged key {} is missing", key.key_id));
        if ledger.revoked.contains(&key.key_id) {
            assert_eq!(got, "revoked", "acknowledged revocation of {} lost", key.key_id);
        } else if !ledger.revoke_in_flight.contains(&key.key_id) {
            assert_eq!(got, "active", "key {} changed by itself", key.key_id);
        } else {
            assert!(got == "active" || got == "revoked", "key {}: {got}", key.key_id);
        }
    }
    // The stored digests work: the newest acknowledged keys still exchange,
    // and revoked ones are refused (a few of each; refusals count towards
    // the failure limiter, which a restart empties).
    let active: Vec<&AckedKey> = ledger
        .keys
        .iter()
        .rev()
        .filter(|k| !ledger.revoked.contains(&k.key_id) && !ledger.revoke_in_flight.contains(&k.key_id))
        .take(4)
        .collect();
    for k in active {
        server.exchange(&server.org.org_id, &k.key_id, &k.secret).await.assert_status(200);
    }
    let revoked: Vec<&AckedKey> =
        ledger.keys.iter().rev().filter(|k| ledger.revoked.contains(&k.key_id)).take(4).collect();
    for k in revoked {
        server.exchange(&server.org.org_id, &k.key_id, &k.secret).await.assert_status(401);
    }

    // Prompts: every acknowledged one there; every listed one whole.
    let keys_listed = listed.len();
    let (mut versions_checked, mut published_total) = (0, 0);
    let listed = list_all(&admin, "/api/v1/prompts").await;
    let listed_ids: HashSet<String> = listed.iter().map(|p| str_of(p, "prompt_id")).collect();
    for id in ledger.prompts.keys() {
        assert!(listed_ids.contains(id), "acknowledged prompt {id} is missing");
    }
    for p in &listed {
        let id = str_of(p, "prompt_id");
        assert!(ledger.prompt_names_sent.contains(&str_of(p, "name")), "a prompt nobody created is listed: {p}");
        let versions = list_all(&admin, &format!("/api/v1/prompts/{id}/versions?include_archived=true")).await;
        assert!(!versions.is_empty(), "prompt {id} has no version (v1 is created with it)");
        // Numbers 1..=n, each once.
        let mut numbers: Vec<i64> = versions.iter().map(|v| v["version"].as_i64().expect("version number")).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=versions.len() as i64).collect::<Vec<_>>(), "version numbers of {id}");
        let mut published = Vec::new();
        for v in &versions {
            let vid = str_of(v, "version_id");
            let full = admin.get(&format!("/api/v1/prompts/{id}/versions/{vid}")).await;
            full.assert_status(200);
            let full = full.json();
            let content = str_of(&full, "content");
            assert!(
                ledger.contents_sent.contains(&content),
                "version {vid} of {id} holds content nobody sent: {content:?}"
            );
            let st = str_of(&full, "status");
            assert_eq!(full["is_production"], st == "published", "{full}");
            if st == "published" {
                published.push(vid);
            }
        }
        versions_checked += versions.len();
        published_total += published.len();
        assert!(published.len() <= 1, "prompt {id} has {} published versions: {published:?}", published.len());

        let history = list_all(&admin, &format!("/api/v1/prompts/{id}/promotions")).await;
        let Some(pl) = ledger.prompts.get(&id) else {
            // Created by a request the kill cut: whole (checked above), never
            // promoted (its writer stopped there).
            assert!(published.is_empty() && history.is_empty(), "unacknowledged prompt {id} has promotions");
            continue;
        };
        for (vid, content) in &pl.versions {
            let r = admin.get(&format!("/api/v1/prompts/{id}/versions/{vid}")).await;
            r.assert_status(200);
            assert_eq!(&str_of(&r.json(), "content"), content, "acknowledged version {vid} of {id}");
        }
        // The published version is the last acknowledged promotion, or the
        // one a cut request was making.
        let allowed: Vec<&String> = pl.promotions.last().into_iter().chain(pl.promotion_in_flight.as_ref()).collect();
        match published.first() {
            Some(p) => assert!(allowed.contains(&p), "prompt {id}: {p} is published, expected one of {allowed:?}"),
            None => assert!(pl.promotions.is_empty(), "prompt {id} lost its published version {allowed:?}"),
        }
        let production = admin.get(&format!("/api/v1/prompts/{id}/production")).await;
        match published.first() {
            Some(p) => {
                production.assert_status(200);
                assert_eq!(&str_of(&production.json(), "version_id"), p);
            }
            None => {
                production.assert_error(404, "no_production_version");
            }
        }
        // History: every acknowledged promotion, in order, plus at most the
        // cut one, newest first.
        let recorded: Vec<String> = history.iter().rev().map(|h| str_of(h, "version_id")).collect();
        let acked_prefix = recorded.len() == pl.promotions.len()
            || (recorded.len() == pl.promotions.len() + 1 && pl.promotion_in_flight.as_ref() == recorded.last());
        assert!(
            acked_prefix && recorded[..pl.promotions.len()] == pl.promotions[..],
            "history of {id}: {recorded:?}, acknowledged {:?}, in flight {:?}",
            pl.promotions,
            pl.promotion_in_flight
        );
        if let Some(p) = published.first() {
            assert_eq!(recorded.last(), Some(p), "the newest promotion of {id} is the published version");
        }
    }
    format!(
        "{keys_listed} keys, {} prompts, {versions_checked} versions, {published_total} published checked",
        listed.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_mid_stream_and_nothing_half_written_is_visible() {
    let mut server = TestServer::start().await;
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    // Kill after this many more acknowledged writes: three different moments
    // of the stream, on one database.
    for (round, more) in [12usize, 40, 90].into_iter().enumerate() {
        let admin = server.admin().await;
        let start = ledger.lock().unwrap().acked;
        let mut writers = Vec::new();
        for w in 0..KEY_WRITERS {
            writers.push(tokio::spawn(key_writer(admin.clone(), ledger.clone(), format!("r{round}k{w}"))));
        }
        for w in 0..PROMPT_WRITERS {
            writers.push(tokio::spawn(prompt_writer(admin.clone(), ledger.clone(), format!("r{round}p{w}"))));
        }
        let reached = wait_until(Duration::from_secs(120), Duration::from_millis(2), || {
            let l = ledger.lock().unwrap();
            let done = l.acked >= start + more || !l.unexpected.is_empty();
            async move { done }
        })
        .await;
        assert!(reached.is_some(), "round {round}: the writers did not make {more} writes");

        // Mid-stream: the writers are still sending.
        let restart = TestServer::builder().same_database_as(&server);
        let (db_url, backend) = (server.db_url().to_owned(), server.backend());
        sigkill(&server);
        for w in writers {
            w.await.expect("writer task");
        }
        drop(server);
        {
            let l = ledger.lock().unwrap();
            assert!(l.unexpected.is_empty(), "answers other than 2xx before the kill: {:#?}", l.unexpected);
            eprintln!(
                "round {round}: {} writes acknowledged so far, {} cut by the kill ({} keys, {} prompts)",
                l.acked,
                l.cut,
                l.keys.len(),
                l.prompts.len()
            );
        }
        if backend == Backend::Sqlite {
            sqlite_integrity(&db_url).await;
        }
        server = restart.start().await;
        let l = std::mem::take(&mut *ledger.lock().unwrap());
        let checked = verify(&server, &l).await;
        eprintln!("round {round}: after the restart, {checked}");
        *ledger.lock().unwrap() = l;
    }
}
