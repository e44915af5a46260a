//! SPEC §2: nothing ever returns, stores in clear, or logs a secret, a
//! password or a full JWT. A full flow runs against a server logging at
//! `trace`, then the responses, the database file and the captured log are
//! searched.

use std::time::Duration;

use serde_json::json;

use crate::harness::{decode_jwt, is_secret_shaped, Resp, TestServer};

#[tokio::test]
async fn secrets_passwords_and_tokens_never_leak() {
    let server = TestServer::builder().env("SCOPE_LOG", "trace").start().await;
    let org = server.org.clone();
    let mut secrets: Vec<String> = vec![org.secret.clone()];
    let mut tokens: Vec<String> = Vec::new();
    // Bodies of list/get responses, which must never carry a secret.
    let mut read_bodies: Vec<String> = Vec::new();

    // Exchanges on all three endpoints.
    let admin = server.admin().await;
    tokens.push(admin.token().to_owned());
    let r = server
        .anon()
        .post(
            "/v1/auth/applications/login",
            json!({"account_id": org.org_id, "client_id": org.key_id, "client_secret": org.secret}),
        )
        .await;
    r.assert_status(200);
    tokens.push(r.json()["access_token"].as_str().expect("token").to_owned());
    let r = Resp::from(
        server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth(&org.key_id, Some(&org.secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    r.assert_status(200);
    tokens.push(r.json()["access_token"].as_str().expect("token").to_owned());

    // Create, use, rotate and list keys.
    let key = server.create_key(&admin, "leak-check", "editor").await;
    secrets.push(key.secret.clone());
    let editor = server.api(&server.token_for(&key).await);
    tokens.push(editor.token().to_owned());
    let r = admin.post(&format!("/api/v1/api-keys/{}/rotate", key.key_id), json!({"grace_seconds": 60})).await;
    r.assert_status(201);
    let rotated_secret = r.json()["secret"].as_str().expect("secret").to_owned();
    assert!(is_secret_shaped(&rotated_secret));
    secrets.push(rotated_secret.clone());
    let rotated_id = r.json()["key_id"].as_str().expect("id").to_owned();
    tokens.push(server.token(&org.org_id, &rotated_id, &rotated_secret).await);

    // Prompt traffic.
    let p = editor.create_prompt("leak-prompt", "Hi {{name}}").await;
    let v1 = p["version"]["version_id"].as_str().expect("v1").to_owned();
    editor
        .post(&format!("/api/v1/prompts/leak-prompt/versions/{v1}/promote"), json!({"notes": "go"}))
        .await
        .assert_status(200);
    for path in ["/api/v1/prompts/leak-prompt/production", "/api/v1/prompts/leak-prompt/latest", "/api/v1/me"] {
        editor.get(path).await.assert_status(200);
    }

    // Failures: a wrong secret, a forged token, a revoked key's token.
    server.exchange(&org.org_id, &rotated_id, &org.secret).await.assert_status(401);
    let forged = format!("{}x", tokens[0]);
    server.api(&forged).get("/api/v1/me").await.assert_status(401);
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await.assert_status(200);
    editor.get("/api/v1/me").await.assert_status(401);

    // Reads never carry a secret.
    for path in [
        "/api/v1/api-keys".to_owned(),
        "/api/v1/api-keys?status=revoked".to_owned(),
        format!("/api/v1/api-keys/{}", key.key_id),
        format!("/api/v1/api-keys/{rotated_id}"),
        format!("/api/v1/api-keys/{}", org.key_id),
        format!("/api/v1/api-keys/{}/usage", key.key_id),
        "/api/v1/audit-events".to_owned(),
    ] {
        let r = admin.get(&path).await;
        r.assert_status(200);
        read_bodies.push(r.body);
    }
    for body in &read_bodies {
        assert!(!body.contains("\"secret\""), "a read response has a secret field: {body}");
        for s in &secrets {
            assert!(!body.contains(s.as_str()), "a read response carries a secret");
        }
        assert!(!body.contains(&org.admin_password));
    }

    // Let the usage flush and last_used_at writes happen.
    tokio::time::sleep(Duration::from_millis(2300)).await;

    // The database holds digests only (SQLite: the file's bytes; PostgreSQL:
    // a dump of every table).
    let db = server.data.database_bytes();
    assert!(!db.is_empty(), "the {} database has content", server.backend().name());
    let db_text = String::from_utf8_lossy(&db);
    assert!(db_text.contains(&org.key_id), "the search must be able to find something (key ids are stored)");
    assert!(db_text.contains("leak-prompt"));
    for s in &secrets {
        assert!(!db_text.contains(s.as_str()), "a secret is stored in clear in the database");
        // Nor its random part without the prefix.
        assert!(!db_text.contains(&s["secret_".len().."secret_".len() + 43]), "a secret's body is in the database");
    }
    assert!(!db_text.contains(&org.admin_password), "the admin password is stored in clear");
    for t in &tokens {
        assert!(!db_text.contains(t.as_str()), "an issued JWT is stored in the database");
    }

    // The trace log holds none of them either.
    let log = server.captured_output();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "trace logging was captured:\n{log}");
    assert!(log.len() > 1000, "the log has content ({} bytes)", log.len());
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a secret appears in the server log");
        assert!(!log.contains(&s["secret_".len().."secret_".len() + 43]), "a secret's body appears in the server log");
    }
    assert!(!log.contains(&org.admin_password), "the admin password appears in the server log");
    for t in tokens.iter().chain(std::iter::once(&forged)) {
        assert!(!log.contains(t.as_str()), "an access token appears in the server log");
        let sig = &decode_jwt(t).parts[2];
        assert!(!log.contains(sig.as_str()), "an access token's signature appears in the server log");
    }
}
