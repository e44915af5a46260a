//! Hardening (issue 9, findings 1, 6, 8): the prompt cache keys a prompt id
//! by the id, not its spelling, and is bounded by bytes; keys never outlive
//! the key that made them, and rotation keeps the expiry; key names refuse
//! terminal escapes and bidirectional overrides; answers that carry a secret
//! or a token are never cached by a proxy or browser; the first start of
//! `scope serve` bootstraps once, with an expiring admin key, even when two
//! processes start at once on one empty database.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{run_scope, Api, Backend, Resp, TestServer, SCOPE};

// ---- prompt cache ---------------------------------------------------------------------

/// A gauge of `/metrics` (no labels).
async fn gauge(server: &TestServer, name: &str) -> f64 {
    let r = server.anon().get("/metrics").await;
    r.assert_status(200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", r.body))
}

async fn cache_size(server: &TestServer) -> (f64, f64) {
    (gauge(server, "scope_prompt_cache_entries").await, gauge(server, "scope_prompt_cache_bytes").await)
}

/// `n` distinct spellings of a `pmt_` id that the server's id parser
/// accepts: either case of each letter of the ULID, and the aliases of its
/// first character (the decoder keeps only its two low bits).
fn spellings(id: &str, n: usize) -> Vec<String> {
    let ulid = id.strip_prefix("pmt_").expect("a pmt_ id");
    let mut out = std::collections::BTreeSet::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut text: String = ulid
            .chars()
            .enumerate()
            .map(|(i, c)| if (seed >> (i % 64)) & 1 == 1 { c.to_ascii_lowercase() } else { c })
            .collect();
        if ulid.starts_with('0') {
            text.replace_range(0..1, ["0", "8", "G", "g", "R", "r"][(seed % 6) as usize]);
        }
        let spelled = format!("pmt_{text}");
        if spelled != id {
            out.insert(spelled);
        }
    }
    out.into_iter().collect()
}

/// Finding 1: one prompt id spelled 1 000 ways. Before the fix each
/// spelling stored its own copy of the body.
#[tokio::test]
async fn a_thousand_spellings_of_one_prompt_id_are_cached_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin.create_prompt("cache-alias", &"A long prompt body. ".repeat(500)).await;
    let prompt_id = created["prompt_id"].as_str().expect("prompt_id").to_owned();
    let version_id = created["version"]["version_id"].as_str().expect("v1").to_owned();
    admin
        .post(&format!("/api/v1/prompts/cache-alias/versions/{version_id}/promote"), json!({}))
        .await
        .assert_status(200);
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;

    let r = viewer.get(&format!("/api/v1/prompts/{prompt_id}/production")).await;
    r.assert_status(200);
    let expected = r.body.clone();
    let before = cache_size(&server).await;
    assert!(before.0 >= 1.0 && before.1 > 10_000.0, "the canonical fetch is cached: {before:?}");

    let variants = spellings(&prompt_id, 1000);
    for chunk in variants.chunks(25) {
        let mut fetches = tokio::task::JoinSet::new();
        for v in chunk {
            let viewer = viewer.clone();
            let path = format!("/api/v1/prompts/{v}/production");
            fetches.spawn(async move {
                let r = viewer.get(&path).await;
                (path, r)
            });
        }
        while let Some(done) = fetches.join_next().await {
            let (path, r) = done.expect("fetch task");
            r.assert_status(200);
            let v = r.json();
            assert_eq!(v["prompt_id"], prompt_id.as_str(), "{path}");
            assert_eq!(v["version_id"], version_id.as_str(), "{path}");
            assert_eq!(r.body, expected, "{path} served another body");
        }
    }
    let after = cache_size(&server).await;
    assert_eq!(after, before, "1 000 spellings of one id changed the prompt cache's size");
}

/// Finding 1: answers above the per-entry threshold are served every time
/// and never held.
#[tokio::test]
async fn a_prompt_answer_above_the_entry_threshold_is_served_but_never_cached() {
    let server = TestServer::builder().env("SCOPE_PROMPT_CACHE_MAX_ENTRY_BYTES", "4096").start().await;
    let admin = server.admin().await;
    admin.create_prompt("small", "short").await;
    admin.create_prompt("large", &"x".repeat(8192)).await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    viewer.get("/api/v1/prompts/small/latest").await.assert_status(200);
    let with_small = cache_size(&server).await;
    assert_eq!(with_small.0, 1.0, "{with_small:?}");
    for _ in 0..3 {
        let r = viewer.get("/api/v1/prompts/large/latest").await;
        r.assert_status(200);
        assert_eq!(r.json()["content"].as_str().map(str::len), Some(8192));
    }
    assert_eq!(cache_size(&server).await, with_small, "the large answer was cached");
}

// ---- keys never outlive their creator -------------------------------------------------

fn rfc3339_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Creates a key through `api` (must succeed).
async fn create_key(server: &TestServer, api: &Api, body: Value) -> (Value, Api) {
    let r = api.post("/api/v1/api-keys", body).await;
    r.assert_status(201);
    let v = r.json();
    let token = server
        .token(
            v["org_id"].as_str().expect("org_id"),
            v["key_id"].as_str().expect("key_id"),
            v["secret"].as_str().expect("secret"),
        )
        .await;
    (v, server.api(&token))
}

fn millis(v: &Value) -> Option<i64> {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|d| d.timestamp_millis())
}

/// Finding 6: an admin key that expires in an hour cannot create a key that
/// never expires or expires later (400 `bad_request`, nothing created); it
/// can create one that expires with it or sooner.
#[tokio::test]
async fn an_expiring_admin_key_cannot_create_a_key_that_outlives_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (short, short_api) = create_key(
        &server,
        &admin,
        json!({"name": "short-lived admin", "role": "admin", "expires_at": rfc3339_in(3600)}),
    )
    .await;
    let count =
        || async { admin.get("/api/v1/api-keys?limit=200").await.json()["data"].as_array().map_or(0, Vec::len) };
    let keys_before = count().await;

    for body in [
        json!({"name": "forever", "role": "viewer"}),
        json!({"name": "forever admin", "role": "admin"}),
        json!({"name": "later", "role": "viewer", "expires_at": rfc3339_in(7200)}),
    ] {
        let r = short_api.post("/api/v1/api-keys", body.clone()).await;
        r.assert_error(400, "bad_request");
        assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("expires")), "{body}: {}", r.body);
    }
    assert_eq!(count().await, keys_before, "a refused create wrote a key");

    let sooner = short_api.post("/api/v1/api-keys", json!({"name": "sooner", "expires_at": rfc3339_in(600)})).await;
    sooner.assert_status(201);
    let same = short_api
        .post(
            "/api/v1/api-keys",
            json!({"name": "same", "expires_at": short["expires_at"].as_str().expect("expires_at")}),
        )
        .await;
    same.assert_status(201);
    assert_eq!(millis(&same.json()["expires_at"]), millis(&short["expires_at"]));

    // A key without an expiry, a signed-in person and the CLI are not bound.
    admin.post("/api/v1/api-keys", json!({"name": "forever", "role": "viewer"})).await.assert_status(201);
    let out = server.cli(&["keys", "create", "--org", &server.org.org_id, "--name", "cli forever", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("CLI JSON");
    assert!(v["expires_at"].is_null(), "{v}");
}

/// Finding 6: a successor keeps its predecessor's name, environment, role
/// and expiry; an expiring key cannot rotate a key that would outlive it
/// (403), but can rotate one that expires first (itself included).
#[tokio::test]
async fn rotation_keeps_the_expiry_and_never_outlives_the_rotating_key() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let expires = rfc3339_in(5 * 86_400);
    let (old, _) = create_key(
        &server,
        &admin,
        json!({"name": "billing", "environment": "staging", "role": "editor", "expires_at": expires}),
    )
    .await;
    let key_id = old["key_id"].as_str().expect("key_id");
    let r = admin.post(&format!("/api/v1/api-keys/{key_id}/rotate"), json!({"grace_seconds": 60})).await;
    r.assert_status(201);
    let successor = r.json();
    for field in ["name", "environment", "role"] {
        assert_eq!(successor[field], old[field], "{field}: {successor}");
    }
    assert_eq!(
        millis(&successor["expires_at"]),
        millis(&old["expires_at"]),
        "rotation dropped the expiry: {successor}"
    );
    let stored = admin.get(&format!("/api/v1/api-keys/{}", successor["key_id"].as_str().expect("key_id"))).await;
    assert_eq!(millis(&stored.json()["expires_at"]), millis(&old["expires_at"]));
    assert!(millis(&successor["previous"]["expires_at"])
        .is_some_and(|e| e <= chrono::Utc::now().timestamp_millis() + 61_000));

    // An admin key expiring in an hour.
    let (short, short_api) =
        create_key(&server, &admin, json!({"name": "short admin", "role": "admin", "expires_at": rfc3339_in(3600)}))
            .await;
    let (forever, _) = create_key(&server, &admin, json!({"name": "forever", "role": "viewer"})).await;
    let forever_id = forever["key_id"].as_str().expect("key_id");
    short_api.post(&format!("/api/v1/api-keys/{forever_id}/rotate"), json!({})).await.assert_error(403, "forbidden");
    let successor_id = successor["key_id"].as_str().expect("key_id");
    short_api.post(&format!("/api/v1/api-keys/{successor_id}/rotate"), json!({})).await.assert_error(403, "forbidden");
    // Refused rotations changed nothing: the key still works and never expires.
    let still = admin.get(&format!("/api/v1/api-keys/{forever_id}")).await.json();
    assert!(still["expires_at"].is_null() && still["status"] == "active", "{still}");

    let (brief, _) =
        create_key(&server, &admin, json!({"name": "brief", "role": "viewer", "expires_at": rfc3339_in(600)})).await;
    let r =
        short_api.post(&format!("/api/v1/api-keys/{}/rotate", brief["key_id"].as_str().expect("id")), json!({})).await;
    r.assert_status(201);
    assert_eq!(millis(&r.json()["expires_at"]), millis(&brief["expires_at"]));
    let short_id = short["key_id"].as_str().expect("key_id");
    let r = short_api.post(&format!("/api/v1/api-keys/{short_id}/rotate"), json!({})).await;
    r.assert_status(201);
    assert_eq!(millis(&r.json()["expires_at"]), millis(&short["expires_at"]));
}

// ---- key names --------------------------------------------------------------------------

/// Finding 8: names that would rewrite a terminal (`scope keys list`) or
/// reorder text are refused, by the API and the CLI, and nothing is stored.
#[tokio::test]
async fn key_names_with_control_or_bidi_characters_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for name in
        ["evil\u{1b}[2J\u{1b}[Hcleared", "two\nlines", "bell\u{7}", "invoice\u{202e}fdp.exe", "zero\u{200b}width"]
    {
        admin.post("/api/v1/api-keys", json!({"name": name})).await.assert_error(400, "bad_request");
        let out = server.cli(&["keys", "create", "--org", &server.org.org_id, "--name", name]).await;
        assert!(!out.status.success(), "the CLI created a key named {name:?}");
    }
    admin
        .post("/api/v1/api-keys", json!({"name": "ok", "environment": "stag\u{1b}[31ming"}))
        .await
        .assert_error(400, "bad_request");
    let listed = admin.get("/api/v1/api-keys?limit=200").await.body;
    assert!(!listed.contains("\\u001b") && !listed.contains("\\u202e") && !listed.contains("\\u200b"), "{listed}");
    // Ordinary Unicode stays allowed.
    admin.post("/api/v1/api-keys", json!({"name": "clé de production 鍵 🔑"})).await.assert_status(201);
}

// ---- no caching of secrets and tokens -------------------------------------------------------

#[track_caller]
fn assert_no_store(what: &str, r: &Resp) {
    assert!(
        r.header("cache-control").is_some_and(|v| v.split(',').any(|d| d.trim() == "no-store")),
        "{what}: Cache-Control is {:?}",
        r.header("cache-control")
    );
    assert_eq!(r.header("pragma"), Some("no-cache"), "{what}: Pragma");
}

/// Finding 8: every answer carrying a secret, a password or a token has
/// `Cache-Control: no-store` and `Pragma: no-cache`.
#[tokio::test]
async fn answers_carrying_a_secret_or_a_token_are_never_stored() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let admin = server.admin().await;

    let r = admin.post("/api/v1/api-keys", json!({"name": "fresh"})).await;
    r.assert_status(201);
    assert_no_store("key creation", &r);
    let key = r.json();
    let (kid, secret) = (key["key_id"].as_str().expect("id"), key["secret"].as_str().expect("secret"));

    let r = admin.post(&format!("/api/v1/api-keys/{kid}/rotate"), json!({})).await;
    r.assert_status(201);
    assert_no_store("key rotation", &r);

    let r = server.exchange(&org.org_id, &org.key_id, &org.secret).await;
    r.assert_status(200);
    assert_no_store("sdk-token", &r);
    let r = server
        .anon()
        .post(
            "/v1/auth/applications/login",
            json!({"account_id": org.org_id, "client_id": org.key_id, "client_secret": org.secret}),
        )
        .await;
    r.assert_status(200);
    assert_no_store("applications/login", &r);
    let r = Resp::from(server.http.post(server.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", kid),
        ("client_secret", secret),
    ]))
    .await;
    r.assert_status(200);
    assert_no_store("oauth/token", &r);

    for onboarding in ["password", "invite"] {
        let r = admin
            .post(
                "/api/v1/users",
                json!({"email": format!("{onboarding}@acme.test"), "role": "viewer", "onboarding": onboarding}),
            )
            .await;
        r.assert_status(201);
        assert_no_store(&format!("user creation ({onboarding})"), &r);
    }

    let r = Resp::from(
        server
            .http
            .post(server.url("/api/v1/sessions"))
            .json(&json!({"email": org.admin_email, "password": org.admin_password})),
    )
    .await;
    r.assert_status(201);
    assert_no_store("sign-in", &r);

    // The console's key page shows the secret once: its pages are not
    // stored either.
    let r = Resp::from(server.http.get(server.url("/login"))).await;
    assert_no_store("console page", &r);
}

// ---- first start -----------------------------------------------------------------------------

/// A `scope serve` started by hand on `db_url` (no `scope init`), with its
/// stdout collected; killed when dropped.
struct FirstStart {
    child: Child,
    stdout: Arc<Mutex<String>>,
    base: String,
}

impl Drop for FirstStart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_start(db_url: &str, envs: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>, Arc<Mutex<String>>) {
    let mut cmd = Command::new(SCOPE);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCOPE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("NO_COLOR", "1").arg("--database").arg(db_url).args(["serve", "--listen", "127.0.0.1:0"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn scope serve");
    let mut err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
    let out = child.stdout.take().expect("stdout");
    let stdout = Arc::new(Mutex::new(String::new()));
    let sink = stdout.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            sink.lock().expect("lock").push_str(&line);
            if let Some(addr) = line.trim().strip_prefix("Scope listening on ") {
                let _ = tx.send(addr.to_owned());
            }
            line.clear();
        }
    });
    (child, rx, stdout)
}

fn fresh_database(dir: &tempfile::TempDir) -> String {
    match Backend::current() {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("scope.db").display()),
        Backend::Postgres => scope_testkit::pg::PgCluster::shared().fresh_database(),
    }
}

/// `name: value` from the first-run text.
fn printed(stdout: &str, name: &str) -> Option<String> {
    stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(|v| v.trim().to_owned())
}

/// Finding 8: two `scope serve` started at once on one empty database
/// (SQLite file, or PostgreSQL with SCOPE_TEST_DATABASE=postgres) both come
/// up, and exactly one bootstraps: one organization, one admin key, printed
/// once. That key expires (24 h by default) and says so.
#[tokio::test]
async fn two_first_starts_on_one_empty_database_bootstrap_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = fresh_database(&dir);
    let starts: Vec<FirstStart> = {
        let db_url = db_url.clone();
        tokio::task::spawn_blocking(move || {
            let launched: Vec<_> = (0..2).map(|_| first_start(&db_url, &[])).collect();
            launched
                .into_iter()
                .map(|(child, rx, stdout)| {
                    let base = rx.recv_timeout(Duration::from_secs(60));
                    let mut s = FirstStart { child, stdout, base: String::new() };
                    match base {
                        Ok(b) => s.base = b,
                        Err(_) => panic!("a first start did not come up; stdout:\n{}", s.stdout.lock().expect("lock")),
                    }
                    s
                })
                .collect()
        })
        .await
        .expect("start task")
    };
    let outputs: Vec<String> = starts.iter().map(|s| s.stdout.lock().expect("lock").clone()).collect();
    let bootstrapped: Vec<&String> =
        outputs.iter().filter(|o| o.contains("Scope initialized a new deployment")).collect();
    assert_eq!(bootstrapped.len(), 1, "both or neither bootstrapped:\n{outputs:#?}");
    let text = bootstrapped[0];
    let (org_id, key_id, secret) = (
        printed(text, "org_id").expect("org_id"),
        printed(text, "api_key.key_id").expect("key_id"),
        printed(text, "api_key.secret").expect("secret"),
    );
    let expires_at = printed(text, "api_key.expires_at").expect("the first-run key's expiry is printed");
    assert!(text.contains("expires at"), "the first-run message says the key expires:\n{text}");
    let exp = chrono::DateTime::parse_from_rfc3339(&expires_at).expect("RFC 3339").timestamp_millis();
    let in_24h = (chrono::Utc::now() + chrono::Duration::hours(24)).timestamp_millis();
    assert!((in_24h - 120_000..=in_24h).contains(&exp), "expires_at {expires_at} is not 24 h from now");

    // The key works on both servers, and says when it expires.
    let http = reqwest::Client::new();
    for s in &starts {
        let r = Resp::from(
            http.post(format!("{}/v1/auth/sdk-token", s.base))
                .json(&json!({"account_id": org_id, "key_id": key_id, "key_secret": secret})),
        )
        .await;
        r.assert_status(200);
        let token = r.json()["access_token"].as_str().expect("token").to_owned();
        let api = Api { http: http.clone(), base: s.base.clone(), token: Some(token) };
        let k = api.get(&format!("/api/v1/api-keys/{key_id}")).await;
        k.assert_status(200);
        assert_eq!(millis(&k.json()["expires_at"]), Some(exp));
    }

    // The database holds one organization and one key.
    drop(starts);
    let out = {
        let db_url = db_url.clone();
        tokio::task::spawn_blocking(move || run_scope(&db_url, &["export"])).await.expect("export task")
    };
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let of_type = |t: &str| records.iter().filter(|r| r["type"] == t).count();
    assert_eq!(of_type("org"), 1, "organizations");
    assert_eq!(of_type("api_key"), 1, "API keys");
    assert_eq!(of_type("user"), 1, "users");
}
