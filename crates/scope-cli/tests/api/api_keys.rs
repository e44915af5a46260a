//! API key management (SPEC §3): create, list, get, rotate, usage, roles and
//! validation.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{is_secret_shaped, sibling_id, TestServer};

fn parse_ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad RFC 3339 {s}: {e}"))
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn create_returns_the_secret_once_with_defaults() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/api-keys", json!({"name": "billing service"})).await;
    r.assert_status(201);
    assert_eq!(r.header("cache-control"), Some("no-store"), "a response with a secret must not be cached");
    let v = r.json();
    let secret = v["secret"].as_str().expect("secret in the create response");
    assert!(is_secret_shaped(secret), "secret shape: {secret}");
    assert!(!is_secret_shaped(&secret[1..]) && !is_secret_shaped(&format!("{secret}x")), "the shape check can fail");
    let key_id = v["key_id"].as_str().expect("key_id");
    assert!(key_id.starts_with("key_") && key_id.len() == 30, "{key_id}");
    assert_eq!(v["org_id"], server.org.org_id.as_str());
    assert_eq!(v["name"], "billing service");
    assert_eq!(v["role"], "viewer", "default role");
    assert_eq!(v["environment"], "production", "default environment");
    assert_eq!(v["status"], "active");
    assert_eq!(v["created_by"], server.org.key_id.as_str());
    assert!(v["expires_at"].is_null() && v["last_used_at"].is_null() && v["revoked_at"].is_null(), "{v}");
    let created = parse_ts(&v["created_at"]);
    assert!((chrono::Utc::now() - created).num_seconds().abs() < 30);

    // The secret works, and is never shown again.
    server.token(&server.org.org_id, key_id, secret).await;
    let got = admin.get(&format!("/api/v1/api-keys/{key_id}")).await;
    got.assert_status(200);
    assert!(got.json().get("secret").is_none());
    assert!(!got.body.contains(secret));
    assert_eq!(got.json()["name"], "billing service");
    let list = admin.get("/api/v1/api-keys").await;
    list.assert_status(200);
    assert!(!list.body.contains(secret));
    assert!(list.json()["data"].as_array().expect("data").iter().all(|k| k.get("secret").is_none()));

    // Explicit environment and role.
    let r = admin.post("/api/v1/api-keys", json!({"name": "ci", "environment": "staging", "role": "editor"})).await;
    r.assert_status(201);
    assert_eq!(r.json()["environment"], "staging");
    assert_eq!(r.json()["role"], "editor");
    let t = server
        .token(&server.org.org_id, r.json()["key_id"].as_str().expect("id"), r.json()["secret"].as_str().expect("s"))
        .await;
    let c = crate::harness::decode_jwt(&t).claims;
    assert_eq!(c["env"], "staging");
    assert_eq!(c["role"], "editor");

    // Two secrets are never equal.
    let again = admin.post("/api/v1/api-keys", json!({"name": "billing service"})).await;
    again.assert_status(201);
    assert_ne!(again.json()["secret"], v["secret"]);
    assert_ne!(again.json()["key_id"], v["key_id"], "names need not be unique, ids are");
}

#[tokio::test]
async fn list_is_newest_first_with_cursor_pagination_and_status_filter() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(server.create_key(&admin, &format!("k{i}"), "viewer").await.key_id);
        // Distinct milliseconds, so "newest first" is well defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut expected: Vec<String> = created.iter().rev().cloned().collect();
    expected.push(server.org.key_id.clone());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/api-keys?limit=2&cursor={c}"),
            None => "/api/v1/api-keys?limit=2".to_owned(),
        };
        let r = admin.get(&path).await;
        r.assert_status(200);
        let v = r.json();
        let data = v["data"].as_array().expect("data");
        assert!(data.len() <= 2, "limit honoured: {}", data.len());
        seen.extend(data.iter().map(|k| k["key_id"].as_str().expect("key_id").to_owned()));
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(v["next_cursor"].is_null(), "next_cursor is null at the end: {v}");
                break;
            }
        }
    }
    assert_eq!(seen, expected, "all keys, newest first, no duplicates");
    assert_eq!(pages, 3);

    // Status filter.
    let victim = &created[2];
    admin.post_empty(&format!("/api/v1/api-keys/{victim}/revoke")).await.assert_status(200);
    let r = admin.get("/api/v1/api-keys?status=revoked").await;
    r.assert_status(200);
    let ids: Vec<Value> = r.json()["data"].as_array().expect("data").iter().map(|k| k["key_id"].clone()).collect();
    assert_eq!(ids, vec![json!(victim)]);
    let r = admin.get("/api/v1/api-keys?status=active").await;
    r.assert_status(200);
    let active: Vec<Value> = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(active.len(), 5);
    assert!(active.iter().all(|k| k["status"] == "active" && k["key_id"] != json!(victim)));
    let r = admin.get("/api/v1/api-keys?status=expired").await;
    r.assert_status(200);
    assert_eq!(r.json()["data"], json!([]));
    admin.get("/api/v1/api-keys?status=bogus").await.assert_error(400, "bad_request");
    admin.get("/api/v1/api-keys?limit=0").await.assert_error(400, "bad_request");
    admin.get("/api/v1/api-keys?limit=201").await.assert_error(400, "bad_request");
    admin.get("/api/v1/api-keys?cursor=not-a-cursor").await.assert_error(400, "bad_request");
}

#[tokio::test]
async fn get_returns_one_key_and_404s_for_unknown_ids() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let key = server.create_key(&admin, "one", "editor").await;
    let r = admin.get(&format!("/api/v1/api-keys/{}", key.key_id)).await;
    r.assert_status(200);
    let v = r.json();
    for field in ["key_id", "org_id", "name", "environment", "role", "status", "created_at", "created_by"] {
        assert!(v[field].is_string(), "{field} in {v}");
    }
    for field in ["expires_at", "last_used_at", "revoked_at", "revoked_by"] {
        assert!(v.get(field).is_some(), "{field} present (null) in {v}");
    }
    assert_eq!(v["role"], "editor");
    assert_eq!(v["name"], "one");
    admin.get(&format!("/api/v1/api-keys/{}", sibling_id(&key.key_id))).await.assert_error(404, "not_found");
    admin.get("/api/v1/api-keys/not-a-key-id").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn rotate_creates_a_successor_and_expires_the_old_key_after_the_grace_period() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/api-keys", json!({"name": "worker", "environment": "staging", "role": "editor"})).await;
    r.assert_status(201);
    let old_id = r.json()["key_id"].as_str().expect("id").to_owned();
    let old_secret = r.json()["secret"].as_str().expect("secret").to_owned();

    // Default grace: 24 h.
    let before = chrono::Utc::now();
    let r = admin.post_empty(&format!("/api/v1/api-keys/{old_id}/rotate")).await;
    r.assert_status(201);
    assert_eq!(r.header("cache-control"), Some("no-store"), "a response with a secret must not be cached");
    let v = r.json();
    let new_id = v["key_id"].as_str().expect("new id").to_owned();
    let new_secret = v["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_id, old_id);
    assert_ne!(new_secret, old_secret);
    assert!(is_secret_shaped(&new_secret));
    assert_eq!(v["name"], "worker");
    assert_eq!(v["environment"], "staging");
    assert_eq!(v["role"], "editor");
    assert_eq!(v["status"], "active");
    let old = admin.get(&format!("/api/v1/api-keys/{old_id}")).await;
    old.assert_status(200);
    let old = old.json();
    assert_eq!(old["status"], "active", "still usable during the grace period");
    let exp = parse_ts(&old["expires_at"]);
    let expected = before + chrono::Duration::seconds(86_400);
    assert!((exp - expected).num_seconds().abs() <= 30, "old key expires_at {exp}, expected about {expected}");
    // Both keys work during the grace period.
    server.token(&server.org.org_id, &old_id, &old_secret).await;
    server.token(&server.org.org_id, &new_id, &new_secret).await;
    assert!(!admin.get("/api/v1/api-keys").await.body.contains(&new_secret), "the new secret is shown once");

    // A short grace period: the old key and its tokens stop working quickly.
    let old_token = server.token(&server.org.org_id, &new_id, &new_secret).await;
    server.api(&old_token).get("/api/v1/me").await.assert_status(200);
    let r = admin.post(&format!("/api/v1/api-keys/{new_id}/rotate"), json!({"grace_seconds": 1})).await;
    r.assert_status(201);
    let third_id = r.json()["key_id"].as_str().expect("id").to_owned();
    let third_secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let exp = parse_ts(&r.json()["previous"]["expires_at"]);
    assert!((exp - chrono::Utc::now()).num_milliseconds() <= 1_500, "grace 1 s: {exp}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    server.exchange(&server.org.org_id, &new_id, &new_secret).await.assert_error(401, "invalid_credentials");
    server.api(&old_token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    let r = admin.get(&format!("/api/v1/api-keys/{new_id}")).await;
    assert_eq!(r.json()["status"], "expired");
    server.token(&server.org.org_id, &third_id, &third_secret).await;

    // grace_seconds = 0: immediately unusable.
    let r = admin.post(&format!("/api/v1/api-keys/{third_id}/rotate"), json!({"grace_seconds": 0})).await;
    r.assert_status(201);
    server.exchange(&server.org.org_id, &third_id, &third_secret).await.assert_error(401, "invalid_credentials");

    // Revoked or unknown keys cannot be rotated.
    let k = server.create_key(&admin, "gone", "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", k.key_id)).await.assert_status(200);
    admin.post_empty(&format!("/api/v1/api-keys/{}/rotate", k.key_id)).await.assert_error(409, "conflict");
    admin
        .post_empty(&format!("/api/v1/api-keys/{}/rotate", sibling_id(&k.key_id)))
        .await
        .assert_error(404, "not_found");
    admin
        .post(&format!("/api/v1/api-keys/{third_id}/rotate"), json!({"grace_seconds": "soon"}))
        .await
        .assert_error(400, "bad_request");
}

#[tokio::test]
async fn usage_counts_exchanges_per_day_and_last_used_at_is_set() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let key = server.create_key(&admin, "counted", "viewer").await;
    let r = admin.get(&format!("/api/v1/api-keys/{}", key.key_id)).await;
    assert!(r.json()["last_used_at"].is_null(), "never used yet");
    let r = admin.get(&format!("/api/v1/api-keys/{}/usage?days=7", key.key_id)).await;
    r.assert_status(200);
    assert_eq!(r.json()["total"], 0);

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for _ in 0..3 {
        server.token_for(&key).await;
    }
    // A failed exchange does not count.
    server.exchange(&key.org_id, &key.key_id, &server.org.secret).await.assert_status(401);

    let r = admin.get(&format!("/api/v1/api-keys/{}", key.key_id)).await;
    r.assert_status(200);
    let used = parse_ts(&r.json()["last_used_at"]);
    assert!(used >= before && used <= chrono::Utc::now() + chrono::Duration::seconds(1), "last_used_at {used}");

    let r = admin.get(&format!("/api/v1/api-keys/{}/usage?days=7", key.key_id)).await;
    r.assert_status(200);
    let v = r.json();
    assert_eq!(v["key_id"], key.key_id.as_str());
    let days = v["days"].as_array().expect("days");
    assert_eq!(days.len(), 7, "{v}");
    assert_eq!(v["total"], 3, "{v}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let last = days.last().expect("a day");
    assert_eq!(last["date"], today.as_str(), "oldest first, today last: {v}");
    assert_eq!(last["count"], 3);
    assert_eq!(days.iter().map(|d| d["count"].as_u64().expect("count")).sum::<u64>(), 3);

    // The count survives the batched flush to the database.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = admin.get(&format!("/api/v1/api-keys/{}/usage", key.key_id)).await;
    r.assert_status(200);
    assert_eq!(r.json()["total"], 3, "{}", r.body);
    assert_eq!(r.json()["days"].as_array().expect("days").len(), 30, "default 30 days");
    admin.get(&format!("/api/v1/api-keys/{}/usage?days=0", key.key_id)).await.assert_error(400, "bad_request");
    admin.get(&format!("/api/v1/api-keys/{}/usage", sibling_id(&key.key_id))).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn only_admins_manage_keys() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    let (editor, editor_key) = server.client_with_role(&admin, "editor").await;
    let target = server.create_key(&admin, "target", "viewer").await;
    let k = &target.key_id;

    for (who, c) in [("viewer", &viewer), ("editor", &editor)] {
        c.get("/api/v1/api-keys").await.assert_error(403, "forbidden");
        c.get(&format!("/api/v1/api-keys/{k}")).await.assert_error(403, "forbidden");
        c.get(&format!("/api/v1/api-keys/{k}/usage")).await.assert_error(403, "forbidden");
        for role in ["viewer", "editor", "admin"] {
            let r = c.post("/api/v1/api-keys", json!({"name": "escalate", "role": role})).await;
            assert_eq!(r.status, 403, "{who} created a {role} key: {}", r.body);
        }
        c.post_empty(&format!("/api/v1/api-keys/{k}/revoke")).await.assert_error(403, "forbidden");
        c.post_empty(&format!("/api/v1/api-keys/{k}/rotate")).await.assert_error(403, "forbidden");
        // An editor can't revoke itself either.
        c.post_empty(&format!("/api/v1/api-keys/{}/revoke", editor_key.key_id)).await.assert_error(403, "forbidden");
    }
    // Nothing changed.
    let r = admin.get(&format!("/api/v1/api-keys/{k}")).await;
    assert_eq!(r.json()["status"], "active");
    assert!(r.json()["expires_at"].is_null());
    let r = admin.get("/api/v1/api-keys?limit=200").await;
    assert!(!r.body.contains("escalate"), "no key was created");

    // An admin key may create an admin key, and that one can manage keys.
    let (admin2, _) = server.client_with_role(&admin, "admin").await;
    let r = admin2.post("/api/v1/api-keys", json!({"name": "made by admin key", "role": "admin"})).await;
    r.assert_status(201);
    assert_eq!(r.json()["role"], "admin");
    admin2.get("/api/v1/api-keys").await.assert_status(200);
}

#[tokio::test]
async fn create_validates_its_input() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let past = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let cases = [
        ("empty name", json!({"name": ""})),
        ("blank name", json!({"name": "   "})),
        ("129-char name", json!({"name": "n".repeat(129)})),
        ("missing name", json!({"role": "viewer"})),
        ("bad role", json!({"name": "x", "role": "owner"})),
        ("role of wrong type", json!({"name": "x", "role": 1})),
        ("expires_at in the past", json!({"name": "x", "expires_at": past})),
        ("expires_at not a time", json!({"name": "x", "expires_at": "tomorrow"})),
        ("empty environment", json!({"name": "x", "environment": ""})),
        ("unknown field", json!({"name": "x", "secret": "mine"})),
    ];
    for (what, body) in cases {
        let r = admin.post("/api/v1/api-keys", body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        r.assert_error(400, "bad_request");
    }
    // 128 characters is fine.
    admin.post("/api/v1/api-keys", json!({"name": "n".repeat(128)})).await.assert_status(201);
    let r = admin.get("/api/v1/api-keys?limit=200").await;
    assert_eq!(r.json()["data"].as_array().expect("data").len(), 2, "only the admin key and the 128-char one");

    // A future expiry is accepted and reported.
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let r = admin.post("/api/v1/api-keys", json!({"name": "temp", "expires_at": future.to_rfc3339()})).await;
    r.assert_status(201);
    let exp = parse_ts(&r.json()["expires_at"]);
    assert!((exp - future).num_seconds().abs() <= 1);
}
