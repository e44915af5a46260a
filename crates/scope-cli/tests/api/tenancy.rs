//! Tenant isolation (SPEC §5): organization B, created with
//! `scope org create` while the server runs, can neither read, list, infer
//! nor change anything of organization A.

use serde_json::json;

use crate::harness::TestServer;

#[tokio::test]
async fn another_org_cannot_see_or_touch_prompts() {
    let server = TestServer::start().await;
    let a = server.admin().await;
    let p = a.create_prompt("secret-plan", "A's content {{x}}").await;
    let pid = p["prompt_id"].as_str().expect("id").to_owned();
    let v1 = p["version"]["version_id"].as_str().expect("v1").to_owned();
    a.post_empty(&format!("/api/v1/prompts/secret-plan/versions/{v1}/promote")).await.assert_status(200);

    let org_b = server.create_org("Beta", "admin@beta.test").await;
    assert_ne!(org_b.org_id, server.org.org_id);
    let b = server.login(&org_b).await;
    let me = b.get("/api/v1/me").await.json();
    assert_eq!(me["org_id"], org_b.org_id.as_str());

    // Reads by name and by id: 404, with the same body as a prompt that
    // never existed, so nothing can be inferred.
    let missing = b.get("/api/v1/prompts/never-existed").await;
    missing.assert_error(404, "not_found");
    for key in ["secret-plan", pid.as_str()] {
        for suffix in ["", "/production", "/latest", "/versions", "/promotions"] {
            let r = b.get(&format!("/api/v1/prompts/{key}{suffix}")).await;
            assert_eq!(r.status, 404, "B read A's {key}{suffix}: {}", r.body);
            assert!(!r.body.contains("A's content"));
            if suffix.is_empty() {
                assert_eq!(r.body, missing.body, "B can tell an existing prompt of A from a missing one");
            }
        }
        let r = b.get(&format!("/api/v1/prompts/{key}/versions/{v1}")).await;
        assert_eq!(r.status, 404, "B read A's version: {}", r.body);
    }
    // Lists and search.
    for q in ["", "?q=secret", "?limit=200"] {
        let r = b.get(&format!("/api/v1/prompts{q}")).await;
        r.assert_status(200);
        assert_eq!(r.json()["data"], json!([]), "B's list shows A's prompts: {}", r.body);
    }
    // Writes.
    for (what, r) in [
        ("patch", b.patch("/api/v1/prompts/secret-plan", json!({"description": "pwned"})).await),
        ("new version", b.post("/api/v1/prompts/secret-plan/versions", json!({"content": "pwned"})).await),
        ("edit version", b.patch(&format!("/api/v1/prompts/{pid}/versions/{v1}"), json!({"content": "pwned"})).await),
        ("archive", b.post_empty(&format!("/api/v1/prompts/{pid}/versions/{v1}/archive")).await),
        ("promote", b.post_empty(&format!("/api/v1/prompts/{pid}/versions/{v1}/promote")).await),
        ("delete", b.delete("/api/v1/prompts/secret-plan").await),
        ("delete by id", b.delete(&format!("/api/v1/prompts/{pid}")).await),
    ] {
        assert_eq!(r.status, 404, "B could {what} A's prompt: {}", r.body);
    }
    // Copying A's version into B's own prompt is refused too.
    b.create_prompt("mine", "b").await;
    let r = b.post("/api/v1/prompts/mine/versions", json!({"copy_from": v1})).await;
    assert_eq!(r.status, 404, "B copied A's version: {}", r.body);

    // Names are per organization, and so is everything served under them.
    for _ in 0..3 {
        a.get("/api/v1/prompts/secret-plan/production").await.assert_status(200);
        a.get("/api/v1/prompts/secret-plan/latest").await.assert_status(200);
    }
    let r = b.post("/api/v1/prompts", json!({"name": "secret-plan", "content": "B's own"})).await;
    r.assert_status(201);
    assert_ne!(r.json()["prompt_id"], pid.as_str());
    let b_v1 = r.json()["version"]["version_id"].as_str().expect("v1").to_owned();
    assert_eq!(b.get("/api/v1/prompts/secret-plan/latest").await.json()["content"], "B's own");
    b.get("/api/v1/prompts/secret-plan/production").await.assert_error(404, "no_production_version");
    b.post_empty(&format!("/api/v1/prompts/secret-plan/versions/{b_v1}/promote")).await.assert_status(200);
    assert_eq!(b.get("/api/v1/prompts/secret-plan/production").await.json()["content"], "B's own");

    // A is untouched.
    let r = a.get("/api/v1/prompts/secret-plan/production").await;
    r.assert_status(200);
    assert_eq!(r.json()["content"], "A's content {{x}}");
    assert_eq!(r.json()["version_id"], v1.as_str());
    let r = a.get("/api/v1/prompts/secret-plan").await;
    assert_eq!(r.json()["description"], "");
    assert_eq!(r.json()["latest_version"], 1);
    assert_eq!(a.get("/api/v1/prompts").await.json()["data"].as_array().expect("data").len(), 1);
}

#[tokio::test]
async fn another_org_cannot_see_or_touch_keys() {
    let server = TestServer::start().await;
    let a = server.admin().await;
    let a_key = server.create_key(&a, "a-service", "viewer").await;
    let org_b = server.create_org("Beta", "admin@beta.test").await;
    let b = server.login(&org_b).await;

    let missing = b.get(&format!("/api/v1/api-keys/{}", crate::harness::sibling_id(&org_b.key_id))).await;
    missing.assert_error(404, "not_found");
    let r = b.get(&format!("/api/v1/api-keys/{}", a_key.key_id)).await;
    r.assert_error(404, "not_found");
    assert_eq!(r.body, missing.body, "B can tell A's key from a missing one");
    b.get(&format!("/api/v1/api-keys/{}/usage", a_key.key_id)).await.assert_error(404, "not_found");
    b.post_empty(&format!("/api/v1/api-keys/{}/revoke", a_key.key_id)).await.assert_error(404, "not_found");
    b.post_empty(&format!("/api/v1/api-keys/{}/rotate", a_key.key_id)).await.assert_error(404, "not_found");
    b.post_empty(&format!("/api/v1/api-keys/{}/revoke", server.org.key_id)).await.assert_error(404, "not_found");

    let r = b.get("/api/v1/api-keys?limit=200").await;
    r.assert_status(200);
    let data = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), 1, "B sees only its own admin key: {}", r.body);
    assert_eq!(data[0]["key_id"], org_b.key_id.as_str());
    assert!(!r.body.contains(&a_key.key_id) && !r.body.contains(&server.org.key_id));
    assert!(!r.body.contains(&server.org.org_id));

    // A's key is untouched: still active, not expiring, and it works.
    let r = a.get(&format!("/api/v1/api-keys/{}", a_key.key_id)).await;
    assert_eq!(r.json()["status"], "active");
    assert!(r.json()["expires_at"].is_null());
    let t = server.token_for(&a_key).await;
    server.api(&t).get("/api/v1/me").await.assert_status(200);

    // A's key cannot be exchanged under B's account id, and vice versa.
    server.exchange(&org_b.org_id, &a_key.key_id, &a_key.secret).await.assert_error(401, "invalid_credentials");
    server.exchange(&server.org.org_id, &org_b.key_id, &org_b.secret).await.assert_error(401, "invalid_credentials");

    // Tokens carry their own org: A's token sees nothing of B.
    b.create_prompt("b-only", "x").await;
    server.api(&t).get("/api/v1/prompts/b-only").await.assert_error(404, "not_found");
}
