//! Hardening (issue 9, findings 4 and 5): private data files, signing keys
//! encrypted whenever a master key is set (and never written in clear next
//! to encrypted ones), weak master keys refused, the master key read from a
//! file; prompt content capped apart from the body limit, list pages bounded
//! by bytes, `?q=` bounded, and per-organization quotas that write nothing
//! when refused.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// A master key good enough for the server (32+ random-looking characters).
const MASTER: &str = "kQ3v9Zr7Lp2Xw8Ny5Tb1Hc6Md4Fg0Js+Ae/Ru=";

/// `scope --database URL ARGS` with only the given `SCOPE_*` variables.
fn scope_with(db_url: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(SCOPE);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCOPE_") {
            c.env_remove(&k);
        }
    }
    if let Some(url) = db_url {
        c.arg("--database").arg(url);
    }
    c.args(args).envs(envs.iter().copied()).stdin(Stdio::null());
    c.output().expect("run scope")
}

async fn scope_async(db_url: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let db = db_url.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        scope_with(Some(&db), &a, &e)
    })
    .await
    .expect("scope task")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The `signing_key` records of `scope export`, oldest first.
async fn stored_signing_keys(db_url: &str) -> Vec<Value> {
    let out = scope_async(db_url, &["export"], &[]).await;
    assert!(out.status.success(), "export failed: {}", text(&out));
    let mut keys: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("export line is JSON"))
        .filter(|v| v["type"] == "signing_key")
        .collect();
    keys.sort_by_key(|k| k["created_at"].as_i64());
    keys
}

#[cfg(unix)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Runs `scope serve` with `envs` and waits for it to exit on its own (a
/// start-up refusal); a server still running after a minute fails the test.
fn serve_must_refuse(db_url: &str, envs: &[(&str, &str)]) -> String {
    let mut c = Command::new(SCOPE);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCOPE_") {
            c.env_remove(&k);
        }
    }
    c.arg("--database").arg(db_url).args(["serve", "--listen", "127.0.0.1:0"]);
    c.envs(envs.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn scope serve");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scope serve started instead of refusing the configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "scope serve exited successfully: {}", text(&out));
    text(&out)
}

// ---- finding 4: files, signing keys, master key ---------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn a_fresh_data_dir_and_its_database_files_are_private() {
    let root = tempfile::tempdir().expect("temp dir");
    // `scope init` with the default database under --data-dir.
    let data_dir = root.path().join("scope-data");
    let dd = data_dir.to_str().expect("utf-8 path").to_owned();
    let out = tokio::task::spawn_blocking(move || {
        scope_with(
            None,
            &["--data-dir", &dd, "init", "--org-name", "Acme", "--admin-email", "a@acme.test", "--json"],
            &[],
        )
    })
    .await
    .expect("init task");
    assert!(out.status.success(), "init failed: {}", text(&out));
    assert_eq!(mode_of(&data_dir), 0o700, "the data dir is created 0700");
    assert_eq!(mode_of(&data_dir.join("scope.db")), 0o600, "the database is created 0600");

    // `scope serve` on a database in directories that do not exist yet.
    let nested = root.path().join("a").join("b");
    let url = format!("sqlite://{}", nested.join("scope.db").display());
    let server = TestServer::builder().database_url(&url).start().await;
    let admin = server.admin().await;
    admin.create_prompt("private", "hello").await;
    assert_eq!(mode_of(&nested), 0o700);
    assert_eq!(mode_of(&root.path().join("a")), 0o700, "every directory created is 0700");
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = nested.join(format!("scope.db{suffix}"));
        if p.exists() {
            seen += 1;
            assert_eq!(mode_of(&p), 0o600, "{} is readable by its owner only", p.display());
        }
    }
    assert_eq!(seen, 3, "a running server has the database, its WAL and its shared-memory index");
}

#[tokio::test]
async fn plaintext_signing_keys_are_encrypted_on_the_first_start_with_a_master_key() {
    // One issuer for both processes, so a token of the first verifies on the second.
    let issuer = "http://scope.test";
    let first = TestServer::builder().env("SCOPE_PUBLIC_URL", issuer).start().await;
    let token = first.admin().await.token().to_owned();
    let before = stored_signing_keys(first.db_url()).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["encrypted"], false);
    let log = first.captured_output();
    assert!(log.contains("WARNING: token-signing keys are stored UNENCRYPTED"), "loud warning on stderr: {log}");
    assert!(log.contains("SCOPE_MASTER_KEY_FILE"), "the warning says what to do: {log}");

    let second = TestServer::builder()
        .same_database_as(&first)
        .env("SCOPE_PUBLIC_URL", issuer)
        .env("SCOPE_MASTER_KEY", MASTER)
        .start()
        .await;
    drop(first);
    let after = stored_signing_keys(second.db_url()).await;
    assert_eq!(after.len(), 1, "the same key, encrypted in place");
    assert_eq!(after[0]["kid"], before[0]["kid"]);
    assert_eq!(after[0]["encrypted"], true);
    assert_ne!(after[0]["private_key"], before[0]["private_key"]);
    assert_eq!(after[0]["public_key"], before[0]["public_key"]);
    let log = second.captured_output();
    assert!(!log.contains("UNENCRYPTED"), "no warning once encrypted: {log}");
    assert!(!log.contains(MASTER), "the master key is never logged");
    let seed = before[0]["private_key"].as_str().expect("private_key");
    assert!(!log.contains(seed), "the key material is never logged");

    // Tokens signed before keep verifying, and the decrypted key signs.
    second.api(&token).get("/api/v1/me").await.assert_status(200);
    let fresh = second.admin().await;
    fresh.get("/api/v1/me").await.assert_status(200);
    let kid = decode_jwt(fresh.token()).header["kid"].clone();
    assert_eq!(kid, before[0]["kid"]);

    // The CLI refuses to start without the master key now, writing nothing.
    let out = second.cli(&["keys", "create", "--org", &second.org.org_id, "--name", "x", "--json"]).await;
    assert!(!out.status.success(), "keys create without the master key must fail: {}", text(&out));
    assert!(text(&out).contains("SCOPE_MASTER_KEY"), "{}", text(&out));
    let keys = second.admin().await.get("/api/v1/api-keys").await.json();
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1), "no key was created: {keys}");
}

#[tokio::test]
async fn rotation_without_the_master_key_on_an_encrypted_database_writes_nothing() {
    let server = TestServer::builder().env("SCOPE_MASTER_KEY", MASTER).start().await;
    let before = stored_signing_keys(server.db_url()).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["encrypted"], true);
    assert!(!server.captured_output().contains("UNENCRYPTED"));

    let out = server.cli(&["signing-keys", "rotate"]).await;
    assert!(!out.status.success(), "rotate without the master key must fail: {}", text(&out));
    let said = text(&out);
    assert!(said.contains("encrypted") && said.contains("SCOPE_MASTER_KEY"), "tells what to set: {said}");
    assert_eq!(stored_signing_keys(server.db_url()).await, before, "nothing written");

    // A wrong master key is refused too.
    let wrong = "Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg9Fe8Dc7Ba6";
    let out = scope_async(server.db_url(), &["signing-keys", "rotate"], &[("SCOPE_MASTER_KEY", wrong)]).await;
    assert!(!out.status.success(), "rotate with a wrong master key must fail: {}", text(&out));
    assert!(text(&out).contains("does not decrypt"), "{}", text(&out));
    assert_eq!(stored_signing_keys(server.db_url()).await, before, "nothing written");

    // With the right one it rotates, encrypted.
    let out = scope_async(server.db_url(), &["signing-keys", "rotate"], &[("SCOPE_MASTER_KEY", MASTER)]).await;
    assert!(out.status.success(), "rotate with the master key: {}", text(&out));
    let after = stored_signing_keys(server.db_url()).await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|k| k["encrypted"] == true), "{after:?}");
}

#[tokio::test]
async fn empty_or_weak_master_keys_are_refused_at_start() {
    let server = TestServer::start().await;
    let db = server.db_url().to_owned();
    let cases = [
        (String::new(), "empty"),
        ("hunter2".into(), "too weak"),
        ("0123456789abcdef0123456".into(), "too weak"),
        ("ab".repeat(20), "too weak"),
    ];
    for (key, expect) in cases {
        let db = db.clone();
        let (said, key) =
            tokio::task::spawn_blocking(move || (serve_must_refuse(&db, &[("SCOPE_MASTER_KEY", &key)]), key))
                .await
                .expect("serve task");
        assert!(said.contains(expect) && said.contains("32"), "explains the rule for {key:?}: {said}");
        if !key.is_empty() {
            assert!(!said.contains(&key), "the key is not echoed: {said}");
        }
    }
    // Nothing was encrypted with a refused key: the stored key is as before.
    let keys = stored_signing_keys(&db).await;
    assert!(keys.iter().all(|k| k["encrypted"] == false));
}

#[tokio::test]
async fn the_master_key_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("master.key");
    std::fs::write(&file, format!("{MASTER}\n")).expect("write key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let path = file.to_str().expect("utf-8 path").to_owned();
    let server = TestServer::builder().env("SCOPE_MASTER_KEY_FILE", &path).start().await;
    server.admin().await.get("/api/v1/me").await.assert_status(200);
    let keys = stored_signing_keys(server.db_url()).await;
    assert_eq!(keys[0]["encrypted"], true);
    assert!(!server.captured_output().contains("readable by others"), "a 0600 file gets no warning");

    // The file's trailing newline is not part of the key: the same key given
    // in the environment opens what the file's key encrypted.
    let out = scope_async(server.db_url(), &["signing-keys", "rotate"], &[("SCOPE_MASTER_KEY", MASTER)]).await;
    assert!(out.status.success(), "rotate with the env key: {}", text(&out));
    // And the global flag reads the file too.
    let out = scope_async(server.db_url(), &["--master-key-file", &path, "signing-keys", "rotate"], &[]).await;
    assert!(out.status.success(), "rotate with --master-key-file: {}", text(&out));
    assert_eq!(stored_signing_keys(server.db_url()).await.len(), 3);

    // Two sources at once are ambiguous.
    let out = scope_async(
        server.db_url(),
        &["signing-keys", "rotate"],
        &[("SCOPE_MASTER_KEY", MASTER), ("SCOPE_MASTER_KEY_FILE", &path)],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("more than once"), "{}", text(&out));

    // The key on the command line still works, with a warning about `ps`.
    let out = scope_async(server.db_url(), &["--master-key", MASTER, "signing-keys", "rotate"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deprecated"), "{}", text(&out));

    // A key file others can read works, with a warning.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = scope_async(server.db_url(), &["signing-keys", "rotate"], &[("SCOPE_MASTER_KEY_FILE", &path)]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("readable by others"), "{}", text(&out));
    }
}

// ---- finding 5: content cap, list bounds, q, quotas -------------------------------------

#[tokio::test]
async fn prompt_content_over_its_own_limit_is_refused_with_413() {
    let server = TestServer::builder().env("SCOPE_MAX_PROMPT_BYTES", "2048").start().await;
    let admin = server.admin().await;
    let big = "x".repeat(2049);
    let r = admin.post("/api/v1/prompts", json!({"name": "big", "content": big})).await;
    r.assert_error(413, "payload_too_large");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("2048")), "names the limit: {}", r.body);
    admin.get("/api/v1/prompts/big").await.assert_error(404, "not_found");

    // Exactly at the limit (bytes, not characters).
    admin.create_prompt("fits", &"x".repeat(2048)).await;
    let r = admin.post("/api/v1/prompts", json!({"name": "wide", "content": "é".repeat(1025)})).await;
    r.assert_error(413, "payload_too_large");

    let r = admin.post("/api/v1/prompts/fits/versions", json!({"content": big})).await;
    r.assert_error(413, "payload_too_large");
    let v1 = admin.get("/api/v1/prompts/fits/latest").await.json();
    let vid = v1["version_id"].as_str().expect("version_id");
    let r = admin.patch(&format!("/api/v1/prompts/fits/versions/{vid}"), json!({"content": big})).await;
    r.assert_error(413, "payload_too_large");
    let versions = admin.get("/api/v1/prompts/fits/versions").await.json();
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(1), "nothing written: {versions}");
    assert_eq!(admin.get("/api/v1/prompts/fits/latest").await.json()["content"], "x".repeat(2048));
}

#[tokio::test]
async fn copy_from_is_held_to_the_content_limit() {
    let roomy = TestServer::start().await;
    let admin = roomy.admin().await;
    let created = admin.create_prompt("long", &"y".repeat(4000)).await;
    let source = created["version"]["version_id"].as_str().expect("v1 id").to_owned();
    // A server with a lower limit on the same database.
    let strict = TestServer::builder().same_database_as(&roomy).env("SCOPE_MAX_PROMPT_BYTES", "2048").start().await;
    let admin = strict.admin().await;
    let r = admin.post("/api/v1/prompts/long/versions", json!({"copy_from": source})).await;
    r.assert_error(413, "payload_too_large");
    let versions = admin.get("/api/v1/prompts/long/versions").await.json();
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(1), "nothing written: {versions}");
    // New content within the limit is fine, copy_from or not.
    let r = admin.post("/api/v1/prompts/long/versions", json!({"copy_from": source, "content": "short"})).await;
    r.assert_status(201);
}

#[tokio::test]
async fn version_lists_are_bounded_by_bytes_and_still_page_through_everything() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("huge", "v1").await;
    // 17 versions of 250 000 bytes: 4.25 MB, more than a page may carry.
    for i in 0..17 {
        let content = format!("{i:02}{}", "z".repeat(250_000 - 2));
        admin.create_version("huge", &content).await;
    }
    let first = admin.get("/api/v1/prompts/huge/versions?limit=50").await;
    first.assert_status(200);
    assert!(first.body.len() <= 4 * 1024 * 1024 + 64 * 1024, "page of {} bytes", first.body.len());
    let page = first.json();
    let n = page["data"].as_array().map(Vec::len).unwrap_or(0);
    assert!((1..18).contains(&n), "the page stops early: {n} rows");
    assert!(page["next_cursor"].is_string(), "and says where to go on");

    // Paging on returns every version once, newest first.
    let mut numbers: Vec<i64> =
        page["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let p = admin.get(&format!("/api/v1/prompts/huge/versions?limit=50&cursor={c}")).await;
        p.assert_status(200);
        let p = p.json();
        numbers.extend(p["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()));
        cursor = p["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(numbers, (1..=18).rev().collect::<Vec<i64>>());
    // Every field is still there.
    let v = &page["data"][0];
    for field in ["prompt_id", "version_id", "name", "version", "content", "variables", "status", "created_at"] {
        assert!(v.get(field).is_some(), "{field} kept in {v}");
    }
}

#[tokio::test]
async fn search_text_is_bounded() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("findme", "x").await;
    let r = admin.get(&format!("/api/v1/prompts?q={}", "f".repeat(201))).await;
    r.assert_error(400, "bad_request");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("200")), "{}", r.body);
    admin.get(&format!("/api/v1/prompts?q={}", "f".repeat(200))).await.assert_status(200);
    let found = admin.get("/api/v1/prompts?q=findme").await.json();
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn per_organization_quotas_refuse_with_409_and_write_nothing() {
    let server = TestServer::builder()
        .env("SCOPE_MAX_PROMPTS_PER_ORG", "3")
        .env("SCOPE_MAX_VERSIONS_PER_PROMPT", "3")
        .env("SCOPE_MAX_KEYS_PER_ORG", "3")
        .start()
        .await;
    let admin = server.admin().await;

    // Prompts per organization.
    for name in ["p1", "p2", "p3"] {
        admin.create_prompt(name, "x").await;
    }
    let r = admin.post("/api/v1/prompts", json!({"name": "p4", "content": "x"})).await;
    r.assert_error(409, "conflict");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("3 prompts")), "{}", r.body);
    admin.get("/api/v1/prompts/p4").await.assert_error(404, "not_found");
    // Per organization: another tenant is not affected.
    let other = server.create_org("Other", "admin@other.test").await;
    server.login(&other).await.create_prompt("p1", "x").await;
    // Deleting makes room again.
    let r = admin.delete("/api/v1/prompts/p3").await;
    assert!(r.status < 300, "delete: {}", r.body);
    admin.create_prompt("p4", "x").await;

    // Versions per prompt (v1 counts).
    admin.create_version("p1", "two").await;
    admin.create_version("p1", "three").await;
    let r = admin.post("/api/v1/prompts/p1/versions", json!({"content": "four"})).await;
    r.assert_error(409, "conflict");
    let versions = admin.get("/api/v1/prompts/p1/versions").await.json();
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(admin.get("/api/v1/prompts/p1/latest").await.json()["version"], 3);

    // Active API keys per organization (the bootstrap key counts).
    let k2 = server.create_key(&admin, "k2", "viewer").await;
    server.create_key(&admin, "k3", "viewer").await;
    let r = admin.post("/api/v1/api-keys", json!({"name": "k4"})).await;
    r.assert_error(409, "conflict");
    let keys = admin.get("/api/v1/api-keys").await.json();
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(3), "nothing written: {keys}");
    // A revoked key no longer counts.
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", k2.key_id)).await.assert_status(200);
    server.create_key(&admin, "k4", "viewer").await;
}

#[tokio::test]
async fn version_pages_read_in_small_chunks_keep_their_limit_cursor_and_filter() {
    // Prompts of up to 4 MiB: the server reads versions one at a time.
    let server = TestServer::builder().env("SCOPE_MAX_PROMPT_BYTES", "4194304").start().await;
    let admin = server.admin().await;
    admin.create_prompt("chunky", "v1").await;
    for i in 2..=7 {
        admin.create_version("chunky", &format!("v{i}")).await;
    }
    // Archive v4: left out unless include_archived.
    let v4 = admin.get("/api/v1/prompts/chunky/versions?include_archived=true&limit=50").await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == 4)
        .map(|v| v["version_id"].as_str().unwrap().to_owned())
        .unwrap();
    admin.post_empty(&format!("/api/v1/prompts/chunky/versions/{v4}/archive")).await.assert_status(200);

    let numbers = |p: &Value| -> Vec<i64> {
        p["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect()
    };
    let mut pages = Vec::new();
    let mut path = "/api/v1/prompts/chunky/versions?limit=2".to_owned();
    loop {
        let p = admin.get(&path).await.json();
        pages.push(numbers(&p));
        match p["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/prompts/chunky/versions?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, vec![vec![7, 6], vec![5, 3], vec![2, 1]]);
    let all = admin.get("/api/v1/prompts/chunky/versions?limit=50&include_archived=true").await.json();
    assert_eq!(numbers(&all), vec![7, 6, 5, 4, 3, 2, 1]);
    assert!(all["next_cursor"].is_null());
}
