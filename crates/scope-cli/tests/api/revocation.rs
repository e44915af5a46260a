//! Immediate revocation (SPEC §3): once the revoke call returns, no exchange
//! with the key and no request with an earlier token succeeds — through the
//! API, through the CLI on the same database, and on a second replica.

use std::time::{Duration, Instant};

use crate::harness::{wait_until, TestServer};

#[tokio::test]
async fn a_token_issued_before_revoke_is_refused_on_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (client, key) = server.client_with_role(&admin, "editor").await;
    assert_eq!(key.json["role"], "editor");

    // Warm the server's verified-token cache with the token first.
    for _ in 0..3 {
        client.get("/api/v1/me").await.assert_status(200);
    }
    let r = admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await;
    r.assert_status(200);
    let v = r.json();
    assert_eq!(v["status"], "revoked");
    assert!(v["revoked_at"].is_string(), "{v}");
    assert!(v.get("secret").is_none());

    // The very next request with the earlier token is refused.
    client.get("/api/v1/me").await.assert_error(401, "unauthorized");
    client.get("/api/v1/prompts").await.assert_error(401, "unauthorized");
    // No new token either.
    server.exchange(&key.org_id, &key.key_id, &key.secret).await.assert_error(401, "invalid_credentials");

    // Still listed, as revoked.
    let r = admin.get("/api/v1/api-keys").await;
    r.assert_status(200);
    let list = r.json();
    let listed = list["data"].as_array().expect("data").iter().find(|k| k["key_id"] == key.key_id.as_str()).cloned();
    let listed = listed.expect("revoked key stays listed");
    assert_eq!(listed["status"], "revoked");
    assert_eq!(listed["revoked_at"], v["revoked_at"]);
    assert_eq!(listed["revoked_by"], server.org.key_id.as_str(), "revoked_by names the admin key");
}

#[tokio::test]
async fn revoke_is_idempotent() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let key = server.create_key(&admin, "twice", "viewer").await;
    let path = format!("/api/v1/api-keys/{}/revoke", key.key_id);
    let first = admin.post_empty(&path).await;
    first.assert_status(200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = admin.post_empty(&path).await;
    second.assert_status(200);
    assert_eq!(second.json()["status"], "revoked");
    assert_eq!(second.json()["revoked_at"], first.json()["revoked_at"], "a second revoke changes nothing");
    assert!(first.json()["revoked_at"].is_string());
    // Unknown key: 404, not 200.
    admin
        .post_empty(&format!("/api/v1/api-keys/{}/revoke", crate::harness::sibling_id(&key.key_id)))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn revocation_by_the_cli_takes_effect_within_a_second() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (client, key) = server.client_with_role(&admin, "viewer").await;
    client.get("/api/v1/me").await.assert_status(200);

    let v = server.cli_json(&["keys", "revoke", "--org", &server.org.org_id, &key.key_id, "--json"]).await;
    let revoked_at = Instant::now();
    assert_eq!(v["key_id"], key.key_id.as_str());
    assert_eq!(v["status"], "revoked");
    assert!(v.get("secret").is_none());

    let took = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let c = client.clone();
        async move { c.get("/api/v1/me").await.status == 401 }
    })
    .await;
    let took = took.unwrap_or_else(|| panic!("token still accepted {:?} after a CLI revoke", revoked_at.elapsed()));
    assert!(took <= Duration::from_millis(1500), "CLI revoke took {took:?} to reach the server");
    server.exchange(&key.org_id, &key.key_id, &key.secret).await.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn revocation_reaches_a_second_replica_within_a_second() {
    let a = TestServer::start().await;
    let b = TestServer::builder().same_database_as(&a).start().await;
    let admin = a.admin().await;
    let key = a.create_key(&admin, "replicated", "viewer").await;
    let on_b = b.api(&b.token_for(&key).await);
    on_b.get("/api/v1/me").await.assert_status(200);

    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", key.key_id)).await.assert_status(200);
    let took = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let c = on_b.clone();
        async move { c.get("/api/v1/me").await.status == 401 }
    })
    .await
    .expect("replica B still accepts the revoked key's token after 2 s");
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    b.exchange(&key.org_id, &key.key_id, &key.secret).await.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn a_second_replica_serves_what_the_first_one_promoted() {
    let a = TestServer::start().await;
    let b = TestServer::builder().same_database_as(&a).start().await;
    let on_a = a.admin().await;
    let on_b = b.admin().await;
    let p = on_a.create_prompt("shared", "one").await;
    let v1 = p["version"]["version_id"].as_str().expect("v1").to_owned();
    on_a.post_empty(&format!("/api/v1/prompts/shared/versions/{v1}/promote")).await.assert_status(200);
    for _ in 0..5 {
        let r = on_b.get("/api/v1/prompts/shared/production").await;
        r.assert_status(200);
        assert_eq!(r.json()["version_id"], v1.as_str());
        on_b.get("/api/v1/prompts/shared").await.assert_status(200);
        on_b.get("/api/v1/prompts/shared/latest").await.assert_status(200);
    }
    let v2 = on_a.create_version("shared", "two").await["version_id"].as_str().expect("v2").to_owned();
    on_a.post_empty(&format!("/api/v1/prompts/shared/versions/{v2}/promote")).await.assert_status(200);
    let seen = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let c = on_b.clone();
        let v2 = v2.clone();
        async move { c.get("/api/v1/prompts/shared/production").await.json()["version_id"] == v2.as_str() }
    })
    .await;
    assert!(seen.is_some(), "replica B still serves v1 2 s after A promoted v2 (stale read)");
}
