//! The administration CLI (SPEC §8) working on the database of a running
//! server: init, org create, keys create/list/revoke, signing-keys rotate.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{decode_jwt, is_secret_shaped, wait_until, TestServer};

#[tokio::test]
async fn init_refuses_an_initialized_database() {
    let server = TestServer::start().await;
    assert_eq!(server.org.admin_email, "admin@acme.test");
    assert!(server.org.admin_password.len() >= 12);
    let out = server.cli(&["init", "--org-name", "Again", "--admin-email", "again@acme.test", "--json"]).await;
    assert!(!out.status.success(), "a second init must fail");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("secret_"), "no credentials printed on failure: {stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty(), "the failure is explained");
    // The first organization is intact.
    server.admin().await.get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn org_create_prints_working_credentials() {
    let server = TestServer::start().await;
    let v = server.cli_json(&["org", "create", "--name", "Gamma", "--admin-email", "ops@gamma.test", "--json"]).await;
    assert!(v["org_id"].as_str().is_some_and(|s| s.starts_with("org_")), "{v}");
    assert_eq!(v["admin_email"], "ops@gamma.test");
    assert!(v["admin_password"].as_str().is_some_and(|s| s.len() >= 12), "{v}");
    assert!(v["api_key"]["key_id"].as_str().is_some_and(|s| s.starts_with("key_")));
    assert!(v["api_key"]["secret"].as_str().is_some_and(is_secret_shaped));
    assert_ne!(v["org_id"], server.org.org_id.as_str());
    let t = server
        .token(
            v["org_id"].as_str().expect("org"),
            v["api_key"]["key_id"].as_str().expect("key"),
            v["api_key"]["secret"].as_str().expect("secret"),
        )
        .await;
    let me = server.api(&t).get("/api/v1/me").await.json();
    assert_eq!(me["org_id"], v["org_id"]);
    assert_eq!(me["role"], "admin");
    // Bad input fails.
    let out = server.cli(&["org", "create", "--name", "Delta", "--admin-email", "not-an-email", "--json"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn keys_create_list_revoke_as_json() {
    let server = TestServer::start().await;
    let org = server.org.org_id.clone();
    let created = server
        .cli_json(&[
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "from-cli",
            "--role",
            "editor",
            "--environment",
            "staging",
            "--json",
        ])
        .await;
    let key_id = created["key_id"].as_str().expect("key_id").to_owned();
    let secret = created["secret"].as_str().expect("secret printed once").to_owned();
    assert!(is_secret_shaped(&secret));
    assert_eq!(created["role"], "editor");
    assert_eq!(created["environment"], "staging");
    assert_eq!(created["status"], "active");

    // The running server accepts it right away.
    let t = server.token(&org, &key_id, &secret).await;
    assert_eq!(decode_jwt(&t).claims["role"], "editor");
    server.api(&t).get("/api/v1/me").await.assert_status(200);

    let listed = server.cli_json(&["keys", "list", "--org", &org, "--json"]).await;
    let listed = listed.as_array().expect("a JSON array").clone();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["key_id"], key_id.as_str(), "newest first");
    assert_eq!(listed[1]["key_id"], server.org.key_id.as_str());
    let text = serde_json::to_string(&listed).expect("json");
    assert!(!text.contains(&secret) && !text.contains(&server.org.secret) && !text.contains("\"secret\""));

    let revoked = server.cli_json(&["keys", "revoke", "--org", &org, &key_id, "--json"]).await;
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    let again = server.cli_json(&["keys", "revoke", "--org", &org, &key_id, "--json"]).await;
    assert_eq!(again["revoked_at"], revoked["revoked_at"], "idempotent");

    let only_revoked = server.cli_json(&["keys", "list", "--org", &org, "--status", "revoked", "--json"]).await;
    let ids: Vec<&Value> = only_revoked.as_array().expect("array").iter().map(|k| &k["key_id"]).collect();
    assert_eq!(ids, vec![&Value::String(key_id.clone())]);
    // The server sees it (by polling the database).
    let seen = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let s = &server;
        let (o, k, sec) = (org.clone(), key_id.clone(), secret.clone());
        async move { s.exchange(&o, &k, &sec).await.status == 401 }
    })
    .await;
    assert!(seen.is_some(), "the revoked key still exchanges");

    // Bad input fails with a non-zero exit.
    let out = server.cli(&["keys", "create", "--org", &org, "--name", "x", "--role", "root", "--json"]).await;
    assert!(!out.status.success());
    let out = server.cli(&["keys", "create", "--org", "org_nope", "--name", "x", "--json"]).await;
    assert!(!out.status.success());
    let out = server.cli(&["keys", "revoke", "--org", &org, "key_01JD8X4B7V9W0K2M4N6P8R0T2V", "--json"]).await;
    assert!(!out.status.success(), "revoking an unknown key fails");
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_valid() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let old_token = server.token(&org.org_id, &org.key_id, &org.secret).await;
    let old_kid = decode_jwt(&old_token).header["kid"].as_str().expect("kid").to_owned();
    assert_eq!(server.jwks().await["keys"].as_array().expect("keys").len(), 1);

    let out = server.cli(&["signing-keys", "rotate"]).await;
    assert!(out.status.success(), "rotate failed: {}", String::from_utf8_lossy(&out.stderr));

    let picked_up = wait_until(Duration::from_secs(7), Duration::from_millis(200), || {
        let s = &server;
        async move { s.jwks().await["keys"].as_array().is_some_and(|k| k.len() == 2) }
    })
    .await;
    let took = picked_up.expect("the JWKS did not list two keys within 7 s of the rotation");
    assert!(took <= Duration::from_secs(6), "rotation took {took:?} to reach the server");

    let jwks = server.jwks().await;
    let kids: Vec<&str> = jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&old_kid.as_str()), "the old key keeps verifying: {kids:?}");
    // The old token still works; new tokens are signed with the new key.
    server.api(&old_token).get("/api/v1/me").await.assert_status(200);
    let new_token = server.token(&org.org_id, &org.key_id, &org.secret).await;
    let new_kid = decode_jwt(&new_token).header["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid, "new tokens use the new signing key");
    assert!(kids.contains(&new_kid.as_str()));
    server.api(&new_token).get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn the_server_sees_changes_made_by_the_cli() {
    let server = TestServer::start().await;
    let org = server.org.org_id.clone();
    let admin = server.admin().await;
    // Use the server's read paths before the CLI writes.
    for _ in 0..3 {
        server.token(&org, &server.org.key_id, &server.org.secret).await;
        admin.get("/api/v1/api-keys").await.assert_status(200);
    }
    let created = server.cli_json(&["keys", "create", "--org", &org, "--name", "seen", "--json"]).await;
    let key_id = created["key_id"].as_str().expect("key_id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    for _ in 0..3 {
        server.token(&org, &key_id, &secret).await;
        admin.get(&format!("/api/v1/api-keys/{key_id}")).await.assert_status(200);
        admin.get("/api/v1/api-keys").await.assert_status(200);
    }
    server.cli_json(&["keys", "revoke", "--org", &org, &key_id, "--json"]).await;
    let seen = wait_until(Duration::from_secs(2), Duration::from_millis(100), || {
        let admin = admin.clone();
        let path = format!("/api/v1/api-keys/{key_id}");
        async move { admin.get(&path).await.json()["status"] == "revoked" }
    })
    .await;
    assert!(
        seen.is_some(),
        "GET /api/v1/api-keys/{{id}} still shows the key active 2 s after a CLI revoke (stale read)"
    );
    let r = admin.get("/api/v1/api-keys?status=revoked").await;
    assert!(r.body.contains(&key_id), "the list does not show the CLI revoke: {}", r.body);
    // A second tenant created by the CLI is visible too.
    let other = server.create_org("Later", "later@acme.test").await;
    server.login(&other).await.get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn keys_created_by_the_cli_work_at_once_even_after_other_exchanges() {
    let server = TestServer::start().await;
    let org = server.org.org_id.clone();
    for i in 0..4 {
        let name = format!("cli-{i}");
        let created = server.cli_json(&["keys", "create", "--org", &org, "--name", &name, "--json"]).await;
        let key_id = created["key_id"].as_str().expect("key_id").to_owned();
        let secret = created["secret"].as_str().expect("secret").to_owned();
        let r = server.exchange(&org, &key_id, &secret).await;
        assert_eq!(r.status, 200, "key {i} created by the CLI is refused by the running server: {}", r.body);
        // More exchanges in between, as a busy server would do.
        server.token(&org, &key_id, &secret).await;
    }
}

/// `scope prompt get|render` go through the SDK with the SCOPE_* variables.
#[tokio::test]
async fn prompt_get_and_render_use_the_sdk() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin.create_prompt("greeting", "Hello {{name}}, see {{place}}").await;
    let v1 = created["version"]["version_id"].as_str().expect("v1 id").to_owned();
    let base = server.url("");
    let base = base.trim_end_matches('/').to_owned();
    let run = |args: Vec<String>| {
        let base = base.clone();
        let org = server.org.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_scope"))
                    .args(&args)
                    .env("SCOPE_API_URL", &base)
                    .env("SCOPE_ORG_ID", &org.org_id)
                    .env("SCOPE_API_KEY", &org.key_id)
                    .env("SCOPE_API_SECRET", &org.secret)
                    .env_remove("SCOPE_AUTH_API_URL")
                    .output()
                    .expect("run scope")
            })
            .await
            .expect("task")
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    // No production version yet: a clear error and a non-zero exit.
    let out = run(s(&["prompt", "get", "greeting"])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no production version"));

    let out = run(s(&["prompt", "get", "greeting", "--label", "latest"])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "Hello {{name}}, see {{place}}");

    let out = run(s(&["prompt", "get", "greeting", "--version", &v1, "--json"])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["version_id"], v1.as_str());
    assert_eq!(v["variables"], serde_json::json!(["name", "place"]));

    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{v1}/promote")).await.assert_status(200);
    // Rendering is single pass: a value containing {{place}} stays literal.
    let out = run(s(&["prompt", "render", "greeting", "--var", "name=Ada", "--var", "place={{place}}"])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello Ada, see {{place}}\n");

    // Missing variables are named.
    let out = run(s(&["prompt", "render", "greeting", "--var", "name=Ada"])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("place"));

    // Unknown prompt.
    let out = run(s(&["prompt", "get", "nope"])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
