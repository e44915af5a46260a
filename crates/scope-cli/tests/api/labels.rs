//! Releases (SPEC §9): labels and their moves under concurrency, protected
//! labels, rollback, archive refused while labelled, environment-bound keys,
//! conditional fetches (ETag / If-None-Match), the diff, the label history,
//! and the `scope prompt` commands on top of them.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Api, Resp, TestServer};

async fn put(api: &Api, path: &str, body: Value) -> Resp {
    Resp::from(api.request(Method::PUT, path).json(&body)).await
}

async fn get_inm(api: &Api, path: &str, etag: &str) -> Resp {
    Resp::from(api.request(Method::GET, path).header("if-none-match", etag)).await
}

fn vid(v: &Value) -> String {
    v["version_id"].as_str().expect("version_id").to_owned()
}

/// A prompt `name` with `n` versions (v1 … vn, drafts); their ids.
async fn prompt_with_versions(admin: &Api, name: &str, n: usize) -> Vec<String> {
    let mut ids = vec![vid(&admin.create_prompt(name, "v1 {{who}}").await["version"])];
    for i in 2..=n {
        ids.push(vid(&admin.create_version(name, &format!("v{i} {{{{who}}}}")).await));
    }
    ids
}

/// A key with an environment, and a client holding its token.
async fn key_in(server: &TestServer, admin: &Api, environment: &str, role: &str) -> Api {
    let r =
        admin.post("/api/v1/api-keys", json!({"name": environment, "environment": environment, "role": role})).await;
    r.assert_status(201);
    let k = r.json();
    let t = server
        .token(
            k["org_id"].as_str().expect("org"),
            k["key_id"].as_str().expect("key"),
            k["secret"].as_str().expect("secret"),
        )
        .await;
    server.api(&t)
}

#[tokio::test]
async fn fifty_concurrent_moves_of_one_label_leave_one_target_and_a_complete_history() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let versions = prompt_with_versions(&admin, "hot", 50).await;
    let mut tasks = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let (api, v) = (admin.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            put(&api, "/api/v1/prompts/hot/labels/staging", json!({"version_id": v, "notes": format!("move {i}")}))
                .await
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        r.assert_status(200);
        assert!(r.json()["labels"].as_array().is_some_and(|l| l.contains(&json!("staging"))), "{}", r.body);
    }
    // One target.
    let labels = admin.get("/api/v1/prompts/hot/labels").await.json();
    let staging: Vec<&Value> =
        labels["data"].as_array().expect("data").iter().filter(|l| l["label"] == "staging").collect();
    assert_eq!(staging.len(), 1);
    let target = staging[0]["version_id"].as_str().expect("target").to_owned();
    let tagged: Vec<Value> = admin.get("/api/v1/prompts/hot/versions?include_archived=true&limit=200").await.json()
        ["data"]
        .as_array()
        .expect("versions")
        .iter()
        .filter(|v| v["labels"].as_array().is_some_and(|l| l.contains(&json!("staging"))))
        .cloned()
        .collect();
    assert_eq!(tagged.len(), 1, "exactly one version carries the label");
    assert_eq!(vid(&tagged[0]), target);
    // A complete history: 50 moves, each from where the one before left it.
    let hist = admin.get("/api/v1/prompts/hot/label-history?label=staging&limit=200").await.json();
    let hist = hist["data"].as_array().expect("history");
    assert_eq!(hist.len(), 50, "every move is recorded");
    for w in hist.windows(2) {
        assert_eq!(w[0]["from_version_id"], w[1]["to_version_id"], "a chain, newest first");
    }
    assert_eq!(hist[0]["to_version_id"], target.as_str(), "the target is the last move's");
    assert!(hist[49]["from_version_id"].is_null());
    let targets: BTreeSet<&str> = hist.iter().filter_map(|h| h["to_version_id"].as_str()).collect();
    assert_eq!(targets.len(), 50);
    let notes: BTreeSet<&str> = hist.iter().filter_map(|h| h["notes"].as_str()).collect();
    assert_eq!(notes.len(), 50, "each with its own notes");
}

#[tokio::test]
async fn protected_labels_refuse_editors_and_admit_admins() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, _) = server.client_with_role(&admin, "editor").await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    let v = prompt_with_versions(&admin, "guarded", 3).await;

    // Nothing is protected by default: editors promote and move labels.
    assert_eq!(admin.get("/api/v1/settings/protected-labels").await.json(), json!({"labels": []}));
    editor.post_empty(&format!("/api/v1/prompts/guarded/versions/{}/promote", v[0])).await.assert_status(200);
    put(&editor, "/api/v1/prompts/guarded/labels/staging", json!({"version_id": v[1]})).await.assert_status(200);

    // Only admins read and set the setting.
    for c in [&editor, &viewer] {
        c.get("/api/v1/settings/protected-labels").await.assert_error(403, "forbidden");
        put(c, "/api/v1/settings/protected-labels", json!({"labels": ["x"]})).await.assert_error(403, "forbidden");
    }
    put(&admin, "/api/v1/settings/protected-labels", json!({"labels": ["latest"]}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/settings/protected-labels", json!({"labels": ["Bad Label"]}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/settings/protected-labels", json!({"labels": "staging"}))
        .await
        .assert_error(400, "bad_request");
    let set =
        put(&admin, "/api/v1/settings/protected-labels", json!({"labels": ["staging", "production", "staging"]})).await;
    set.assert_status(200);
    assert_eq!(set.json(), json!({"labels": ["production", "staging"]}));
    assert_eq!(
        admin.get("/api/v1/settings/protected-labels").await.json(),
        json!({"labels": ["production", "staging"]})
    );
    let listed = admin.get("/api/v1/prompts/guarded/labels").await.json();
    assert!(listed["data"].as_array().expect("data").iter().all(|l| l["protected"] == true));

    // An editor is refused, by name, whichever way the label would move.
    let r = put(&editor, "/api/v1/prompts/guarded/labels/staging", json!({"version_id": v[2]})).await;
    r.assert_error(403, "forbidden");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("'staging'")), "{}", r.body);
    let r = editor.post_empty(&format!("/api/v1/prompts/guarded/versions/{}/promote", v[2])).await;
    r.assert_error(403, "forbidden");
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("'production'")), "{}", r.body);
    put(&editor, "/api/v1/prompts/guarded/labels/production", json!({"version_id": v[2]}))
        .await
        .assert_error(403, "forbidden");
    editor.delete("/api/v1/prompts/guarded/labels/staging").await.assert_error(403, "forbidden");
    editor.post_empty("/api/v1/prompts/guarded/labels/staging/rollback").await.assert_error(403, "forbidden");
    // Other labels stay the editors'.
    put(&editor, "/api/v1/prompts/guarded/labels/canary", json!({"version_id": v[2]})).await.assert_status(200);
    // Nothing moved.
    let r = admin.get("/api/v1/prompts/guarded/labels/staging").await;
    assert_eq!(vid(&r.json()), v[1]);

    // An admin moves them.
    put(&admin, "/api/v1/prompts/guarded/labels/staging", json!({"version_id": v[2]})).await.assert_status(200);
    admin.post_empty(&format!("/api/v1/prompts/guarded/versions/{}/promote", v[2])).await.assert_status(200);
    // Lifting the protection gives editors the label back.
    put(&admin, "/api/v1/settings/protected-labels", json!({"labels": []})).await.assert_status(200);
    put(&editor, "/api/v1/prompts/guarded/labels/staging", json!({"version_id": v[1]})).await.assert_status(200);
    // Viewers never move labels.
    put(&viewer, "/api/v1/prompts/guarded/labels/qa", json!({"version_id": v[0]})).await.assert_error(403, "forbidden");
    // The setting is audited.
    let audit = admin.get("/api/v1/audit-events?action=settings.").await.json();
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(2), "{audit}");
}

#[tokio::test]
async fn rollback_twice_returns_to_the_original() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = prompt_with_versions(&admin, "rb", 3).await;
    put(&admin, "/api/v1/prompts/rb/labels/staging", json!({"version_id": v[0]})).await.assert_status(200);
    put(&admin, "/api/v1/prompts/rb/labels/staging", json!({"version": 2})).await.assert_status(200);
    let at = |r: &Resp| vid(&r.json());

    // Once: back to v1, recorded as a rollback with its notes.
    let r = admin.post("/api/v1/prompts/rb/labels/staging/rollback", json!({"notes": "v2 misbehaves"})).await;
    r.assert_status(200);
    assert_eq!(at(&r), v[0]);
    assert_eq!(vid(&admin.get("/api/v1/prompts/rb/labels/staging").await.json()), v[0]);
    // Twice: back where it started.
    let r = admin.post_empty("/api/v1/prompts/rb/labels/staging/rollback").await;
    r.assert_status(200);
    assert_eq!(at(&r), v[1]);
    let hist = admin.get("/api/v1/prompts/rb/label-history?label=staging").await.json();
    let kinds: Vec<(&str, Option<i64>, Option<i64>)> = hist["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|h| (h["kind"].as_str().unwrap_or(""), h["from_version"].as_i64(), h["to_version"].as_i64()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("rollback", Some(1), Some(2)),
            ("rollback", Some(2), Some(1)),
            ("move", Some(1), Some(2)),
            ("move", None, Some(1))
        ]
    );
    assert_eq!(hist["data"][1]["notes"], "v2 misbehaves");

    // Production: a rollback is a promotion back (the archived version is
    // published again), twice returns to the original.
    admin.post_empty(&format!("/api/v1/prompts/rb/versions/{}/promote", v[0])).await.assert_status(200);
    admin.post_empty(&format!("/api/v1/prompts/rb/versions/{}/promote", v[2])).await.assert_status(200);
    let r = admin.post_empty("/api/v1/prompts/rb/labels/production/rollback").await;
    r.assert_status(200);
    assert_eq!((at(&r), r.json()["status"].clone()), (v[0].clone(), json!("published")));
    let prod = admin.get("/api/v1/prompts/rb/production").await;
    assert_eq!(vid(&prod.json()), v[0]);
    let r = admin.post_empty("/api/v1/prompts/rb/labels/production/rollback").await;
    r.assert_status(200);
    assert_eq!(at(&r), v[2]);
    assert_eq!(vid(&admin.get("/api/v1/prompts/rb/production").await.json()), v[2]);
    // The promotion history keeps working and shows the rollbacks too.
    let promotions = admin.get("/api/v1/prompts/rb/promotions").await.json();
    assert_eq!(promotions["data"].as_array().map(Vec::len), Some(4));

    // Nothing to go back to, or a computed label: refused.
    put(&admin, "/api/v1/prompts/rb/labels/fresh", json!({"version_id": v[2]})).await.assert_status(200);
    admin.post_empty("/api/v1/prompts/rb/labels/fresh/rollback").await.assert_error(409, "conflict");
    admin.post_empty("/api/v1/prompts/rb/labels/never/rollback").await.assert_error(409, "conflict");
    admin.post_empty("/api/v1/prompts/rb/labels/latest/rollback").await.assert_error(400, "bad_request");
}

#[tokio::test]
async fn archiving_a_labelled_version_is_a_conflict_until_the_label_moves() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = prompt_with_versions(&admin, "keep", 2).await;
    put(&admin, "/api/v1/prompts/keep/labels/staging", json!({"version_id": v[0]})).await.assert_status(200);
    put(&admin, "/api/v1/prompts/keep/labels/canary", json!({"version_id": v[0]})).await.assert_status(200);
    let r = admin.post_empty(&format!("/api/v1/prompts/keep/versions/{}/archive", v[0])).await;
    r.assert_error(409, "conflict");
    let msg = r.json()["message"].as_str().unwrap_or("").to_owned();
    assert!(msg.contains("'canary'") && msg.contains("'staging'"), "{msg}");
    assert_eq!(admin.get(&format!("/api/v1/prompts/keep/versions/{}", v[0])).await.json()["status"], "draft");
    // Once both move (or go), it archives.
    put(&admin, "/api/v1/prompts/keep/labels/staging", json!({"version_id": v[1]})).await.assert_status(200);
    admin.post_empty(&format!("/api/v1/prompts/keep/versions/{}/archive", v[0])).await.assert_error(409, "conflict");
    admin.delete("/api/v1/prompts/keep/labels/canary").await.assert_status(204);
    let r = admin.post_empty(&format!("/api/v1/prompts/keep/versions/{}/archive", v[0])).await;
    r.assert_status(200);
    assert_eq!(r.json()["status"], "archived");
    // A label does not land on an archived version (production may: that
    // is a promotion back).
    put(&admin, "/api/v1/prompts/keep/labels/staging", json!({"version_id": v[0]})).await.assert_error(409, "conflict");
    // A promotion keeps a labelled replaced version as a draft instead of
    // archiving it.
    admin.post_empty(&format!("/api/v1/prompts/keep/versions/{}/promote", v[1])).await.assert_status(200);
    let v3 = vid(&admin.create_version("keep", "three").await);
    admin.post_empty(&format!("/api/v1/prompts/keep/versions/{v3}/promote")).await.assert_status(200);
    let v2 = admin.get(&format!("/api/v1/prompts/keep/versions/{}", v[1])).await.json();
    assert_eq!((v2["status"].clone(), v2["labels"].clone()), (json!("draft"), json!(["staging"])));
}

#[tokio::test]
async fn environment_bound_keys_read_their_label_through_production() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let staging = key_in(&server, &admin, "staging", "viewer").await;
    let production = key_in(&server, &admin, "production", "viewer").await;
    let eu = key_in(&server, &admin, "eu", "viewer").await;
    let v = prompt_with_versions(&admin, "greeting", 2).await;
    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{}/promote", v[0])).await.assert_status(200);
    put(&admin, "/api/v1/prompts/greeting/labels/staging", json!({"version_id": v[1]})).await.assert_status(200);
    // A prompt without a staging label: production for everyone.
    let other = prompt_with_versions(&admin, "other", 1).await;
    admin.post_empty(&format!("/api/v1/prompts/other/versions/{}/promote", other[0])).await.assert_status(200);

    // Interleaved, several times, so that cached answers are exercised:
    // never one key's answer for the other.
    for _ in 0..3 {
        let r = staging.get("/api/v1/prompts/greeting/production").await;
        r.assert_status(200);
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[1].clone(), Some("staging")));
        let r = production.get("/api/v1/prompts/greeting/production").await;
        r.assert_status(200);
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[0].clone(), Some("production")));
        let r = admin.get("/api/v1/prompts/greeting/production").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[0].clone(), Some("production")));
        let r = eu.get("/api/v1/prompts/greeting/production").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[0].clone(), Some("production")));
        let r = staging.get("/api/v1/prompts/other/production").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (other[0].clone(), Some("production")));
        // Asking for a label by name is exact, whatever the key.
        let r = staging.get("/api/v1/prompts/greeting/labels/production").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[0].clone(), Some("production")));
        let r = production.get("/api/v1/prompts/greeting/labels/staging").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[1].clone(), Some("staging")));
        let r = staging.get("/api/v1/prompts/greeting/latest").await;
        assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[1].clone(), Some("latest")));
    }
    // Releasing to staging is moving one label: seen at once.
    let v3 = vid(&admin.create_version("greeting", "v3").await);
    put(&admin, "/api/v1/prompts/greeting/labels/staging", json!({"version_id": v3})).await.assert_status(200);
    assert_eq!(vid(&staging.get("/api/v1/prompts/greeting/production").await.json()), v3);
    assert_eq!(vid(&production.get("/api/v1/prompts/greeting/production").await.json()), v[0]);
    // Label removed: the staging key falls back to production.
    admin.delete("/api/v1/prompts/greeting/labels/staging").await.assert_status(204);
    let r = staging.get("/api/v1/prompts/greeting/production").await;
    assert_eq!((vid(&r.json()), r.header("x-scope-label")), (v[0].clone(), Some("production")));
    // No production and no staging: the usual 404.
    prompt_with_versions(&admin, "drafty", 1).await;
    staging.get("/api/v1/prompts/drafty/production").await.assert_error(404, "no_production_version");
}

#[tokio::test]
async fn etag_and_if_none_match_round_trip() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = prompt_with_versions(&admin, "tagged", 2).await;
    admin.post_empty(&format!("/api/v1/prompts/tagged/versions/{}/promote", v[0])).await.assert_status(200);
    put(&admin, "/api/v1/prompts/tagged/labels/staging", json!({"version_id": v[1]})).await.assert_status(200);

    for path in [
        "/api/v1/prompts/tagged/production".to_owned(),
        "/api/v1/prompts/tagged/latest".to_owned(),
        "/api/v1/prompts/tagged/labels/staging".to_owned(),
        format!("/api/v1/prompts/tagged/versions/{}", v[1]),
    ] {
        let first = admin.get(&path).await;
        first.assert_status(200);
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "strong: {etag}");
        // The same answer has the same tag (from the cache, or computed).
        assert_eq!(admin.get(&path).await.header("etag"), Some(etag.as_str()), "{path}");
        for asked in [etag.clone(), format!("W/{etag}"), format!("\"nope\", {etag}"), "*".to_owned()] {
            let r = get_inm(&admin, &path, &asked).await;
            assert_eq!(r.status, 304, "{path} with If-None-Match: {asked}");
            assert!(r.body.is_empty(), "no body with 304");
            assert_eq!(r.header("etag"), Some(etag.as_str()));
        }
        let r = get_inm(&admin, &path, "\"something-else\"").await;
        r.assert_status(200);
        assert_eq!(r.json(), first.json());
    }
    // The label served is named on a 304 too.
    let tag = admin.get("/api/v1/prompts/tagged/production").await.header("etag").expect("etag").to_owned();
    let r = get_inm(&admin, "/api/v1/prompts/tagged/production", &tag).await;
    assert_eq!((r.status, r.header("x-scope-label")), (304, Some("production")));
    // A change gives a new tag; the old one then gets the new body.
    admin.post_empty(&format!("/api/v1/prompts/tagged/versions/{}/promote", v[1])).await.assert_status(200);
    let r = get_inm(&admin, "/api/v1/prompts/tagged/production", &tag).await;
    r.assert_status(200);
    assert_eq!(vid(&r.json()), v[1]);
    assert_ne!(r.header("etag"), Some(tag.as_str()));
    // Errors carry no tag.
    let r = admin.get("/api/v1/prompts/nope/production").await;
    r.assert_error(404, "not_found");
    assert!(r.header("etag").is_none());
}

#[tokio::test]
async fn labels_api_shapes_errors_and_tenancy() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    let v = prompt_with_versions(&admin, "shapes", 3).await;

    // PUT answers the PromptVersion now labelled (labels added, no field the
    // reference SDKs' objects would collide with).
    let r = put(&admin, "/api/v1/prompts/shapes/labels/staging", json!({"version_id": v[0], "notes": "first"})).await;
    r.assert_status(200);
    let body = r.json();
    assert_eq!(body["labels"], json!(["staging"]));
    for forbidden in ["type", "is_draft", "is_published", "is_archived", "raw_data"] {
        assert!(body.get(forbidden).is_none(), "{forbidden} in {body}");
    }
    admin.post_empty(&format!("/api/v1/prompts/shapes/versions/{}/promote", v[1])).await.assert_status(200);
    let labels = viewer.get("/api/v1/prompts/shapes/labels").await;
    labels.assert_status(200);
    let data = labels.json()["data"].clone();
    assert_eq!(data.as_array().map(Vec::len), Some(2));
    assert_eq!(data[0]["label"], "production");
    assert_eq!(data[0]["version"], 2);
    assert_eq!(data[1]["label"], "staging");
    assert_eq!(data[1]["version_id"], v[0].as_str());
    for field in ["moved_at", "moved_by"] {
        assert!(data[1][field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
    }
    assert_eq!(data[1]["protected"], false);
    // Versions list and single reads carry `labels`.
    let listed = viewer.get("/api/v1/prompts/shapes/versions").await.json();
    let by_number: Vec<(i64, Value)> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| (x["version"].as_i64().unwrap_or(0), x["labels"].clone()))
        .collect();
    assert_eq!(by_number, vec![(3, json!([])), (2, json!(["production"])), (1, json!(["staging"]))]);

    // Bad requests, precisely.
    put(&admin, "/api/v1/prompts/shapes/labels/Staging", json!({"version_id": v[0]}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/latest", json!({"version_id": v[0]}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({})).await.assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version_id": v[0], "version": 1}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version_id": v[0], "extra": 1}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version_id": v[0], "archive_previous": false}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version_id": "v_nope"}))
        .await
        .assert_error(404, "not_found");
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version": 99})).await.assert_error(404, "not_found");
    let long_notes = "x".repeat(2001);
    put(&admin, "/api/v1/prompts/shapes/labels/qa", json!({"version": 1, "notes": long_notes}))
        .await
        .assert_error(400, "bad_request");
    put(&admin, "/api/v1/prompts/nope/labels/qa", json!({"version": 1})).await.assert_error(404, "not_found");
    admin.delete("/api/v1/prompts/shapes/labels/production").await.assert_error(400, "bad_request");
    admin.delete("/api/v1/prompts/shapes/labels/latest").await.assert_error(400, "bad_request");
    admin.delete("/api/v1/prompts/shapes/labels/qa").await.assert_error(404, "not_found");
    admin.get("/api/v1/prompts/shapes/labels/qa").await.assert_error(404, "not_found");
    admin.get("/api/v1/prompts/shapes/labels/Bad!").await.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts/shapes/label-history?label=Bad!").await.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts/shapes/label-history?cursor=x").await.assert_error(400, "bad_request");
    viewer.delete("/api/v1/prompts/shapes/labels/staging").await.assert_error(403, "forbidden");

    // The history (release log): newest first, paged.
    let h = admin.get("/api/v1/prompts/shapes/label-history?limit=1").await.json();
    let first = &h["data"][0];
    assert_eq!(
        (first["label"].clone(), first["kind"].clone(), first["to_version"].clone()),
        (json!("production"), json!("move"), json!(2))
    );
    for field in
        ["move_id", "prompt_id", "from_version_id", "from_version", "to_version_id", "moved_by", "moved_at", "notes"]
    {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    let next = admin
        .get(&format!(
            "/api/v1/prompts/shapes/label-history?limit=1&cursor={}",
            h["next_cursor"].as_str().expect("cursor")
        ))
        .await
        .json();
    assert_eq!(
        (next["data"][0]["label"].clone(), next["data"][0]["notes"].clone()),
        (json!("staging"), json!("first"))
    );
    assert!(next["next_cursor"].is_null());
    // Moves are audited.
    let audit = admin.get("/api/v1/audit-events?action=label.").await.json();
    assert_eq!(audit["data"][0]["action"], "label.moved");

    // Another organization sees and moves none of it.
    let other = server.create_org("Other", "admin@other.test").await;
    let other = server.login(&other).await;
    other.get("/api/v1/prompts/shapes/labels").await.assert_error(404, "not_found");
    other.get("/api/v1/prompts/shapes/labels/staging").await.assert_error(404, "not_found");
    put(&other, "/api/v1/prompts/shapes/labels/staging", json!({"version_id": v[2]}))
        .await
        .assert_error(404, "not_found");
    other.get(&format!("/api/v1/prompts/shapes/diff?from={}&to={}", v[0], v[1])).await.assert_error(404, "not_found");
    assert_eq!(vid(&admin.get("/api/v1/prompts/shapes/labels/staging").await.json()), v[0]);
}

#[tokio::test]
async fn diff_of_two_versions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v1 = vid(&admin.create_prompt("d", "Hello {{name}}\nkeep\nbye").await["version"]);
    let r = admin
        .post(
            "/api/v1/prompts/d/versions",
            json!({"content": "Hi {{name}} from {{place}}\nkeep\nbye\nps", "prompt_type": "chat", "metadata": {"model": "m"}}),
        )
        .await;
    r.assert_status(201);
    let v2 = vid(&r.json());
    put(&admin, "/api/v1/prompts/d/labels/staging", json!({"version_id": v2})).await.assert_status(200);
    // By ids, numbers or labels, all alike.
    let by_id = admin.get(&format!("/api/v1/prompts/d/diff?from={v1}&to={v2}")).await;
    by_id.assert_status(200);
    let d = by_id.json();
    for (from, to) in [("1", "2"), ("1", "staging"), ("1", "latest")] {
        let other = admin.get(&format!("/api/v1/prompts/d/diff?from={from}&to={to}")).await.json();
        assert_eq!(other, d, "from={from} to={to}");
    }
    assert_eq!((d["from"]["version"].clone(), d["to"]["version"].clone()), (json!(1), json!(2)));
    assert_eq!(d["to"]["labels"], json!(["staging"]));
    let runs: Vec<(String, Vec<String>)> = d["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|h| {
            (h["op"].as_str().unwrap_or("").to_owned(), serde_json::from_value(h["lines"].clone()).unwrap_or_default())
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        runs,
        vec![
            (s("delete"), vec![s("Hello {{name}}")]),
            (s("insert"), vec![s("Hi {{name}} from {{place}}")]),
            (s("equal"), vec![s("keep"), s("bye")]),
            (s("insert"), vec![s("ps")]),
        ]
    );
    assert_eq!(d["changed"]["prompt_type"], json!({"from": "text", "to": "chat"}));
    assert_eq!(d["changed"]["variables"]["added"], json!(["place"]));
    assert_eq!(d["changed"]["metadata"]["added"], json!(["model"]));
    // The same version: nothing changed.
    let same = admin.get("/api/v1/prompts/d/diff?from=1&to=1").await.json();
    assert!(same["content"].as_array().expect("content").iter().all(|h| h["op"] == "equal"));
    assert_eq!(same["changed"], json!({"metadata": null, "prompt_type": null, "variables": null}));
    // Errors.
    admin.get("/api/v1/prompts/d/diff?from=1").await.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts/d/diff?from=1&to=9").await.assert_error(404, "not_found");
    admin.get("/api/v1/prompts/d/diff?from=1&to=canary").await.assert_error(404, "not_found");
    admin.get("/api/v1/prompts/d/diff?from=1&to=production").await.assert_error(404, "no_production_version");
    admin.get("/api/v1/prompts/d/diff?from=1&to=Bad!").await.assert_error(400, "bad_request");
}

/// `scope prompt labels | label | rollback | diff | get --label` against a
/// running server, with the SDK's variables.
#[tokio::test]
async fn cli_labels_label_rollback_diff_and_get() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = prompt_with_versions(&admin, "greeting", 2).await;
    let base = server.url("").trim_end_matches('/').to_owned();
    let org = server.org.clone();
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|x| (*x).to_owned()).collect();
        let (base, org) = (base.clone(), org.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_scope"))
                    .args(&args)
                    .env("SCOPE_API_URL", &base)
                    .env("SCOPE_ORG_ID", &org.org_id)
                    .env("SCOPE_API_KEY", &org.key_id)
                    .env("SCOPE_API_SECRET", &org.secret)
                    .env_remove("SCOPE_AUTH_API_URL")
                    .env_remove("SCOPE_CLIENT_ID")
                    .env_remove("SCOPE_CLIENT_SECRET")
                    .env_remove("NO_COLOR")
                    .output()
                    .expect("run scope")
            })
            .await
            .expect("task")
        }
    };
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let out = ok(&run(&["prompt", "label", "greeting", "staging", "--version", "1", "--notes", "try v1"]).await);
    assert_eq!(out.trim(), format!("greeting: staging → v1 ({})", v[0]));
    let out = ok(&run(&["prompt", "label", "greeting", "staging", "--version", &v[1], "--json"]).await);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["labels"], json!(["staging"]));
    let out = ok(&run(&["prompt", "labels", "greeting"]).await);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("staging") && l.contains("v2") && l.contains(&v[1])),
        "{out}"
    );
    let out = ok(&run(&["prompt", "labels", "greeting", "--history"]).await);
    assert!(out.contains("try v1"), "{out}");
    // `get --label` with any label.
    let out = ok(&run(&["prompt", "get", "greeting", "--label", "staging"]).await);
    assert_eq!(out.trim_end(), "v2 {{who}}");
    let out = ok(&run(&["prompt", "render", "greeting", "--label", "staging", "--var", "who=Ada"]).await);
    assert_eq!(out, "v2 Ada\n");
    // Rollback.
    let out = ok(&run(&["prompt", "rollback", "greeting", "staging", "--notes", "back"]).await);
    assert_eq!(out.trim(), format!("greeting: staging rolled back to v1 ({})", v[0]));
    // Diff: plain when not on a terminal, coloured when asked.
    let out = ok(&run(&["prompt", "diff", "greeting", "1", "2"]).await);
    assert!(out.contains("-v1 {{who}}\n+v2 {{who}}\n"), "{out}");
    assert!(!out.contains('\x1b'), "no colour off a terminal");
    let out = ok(&run(&["prompt", "diff", "greeting", "staging", "latest", "--color", "always"]).await);
    assert!(out.contains("\x1b[31m-v1 {{who}}\x1b[0m"), "{out}");
    let out = ok(&run(&["prompt", "diff", "greeting", "1", "2", "--json"]).await);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["to"]["version"], 2);
    // Errors are the server's message, non-zero exit.
    let out = run(&["prompt", "label", "greeting", "latest", "--version", "1"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be set"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["prompt", "get", "greeting", "--label", "canary"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no label 'canary'"));
}

/// The console shows labels on the prompt page and moves, rolls back and
/// removes them through confirmation pages (CSRF-checked forms, as promote).
#[tokio::test]
async fn the_console_shows_and_moves_labels() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = prompt_with_versions(&admin, "greeting", 2).await;
    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{}/promote", v[0])).await.assert_status(200);

    let b = crate::browser::Browser::start("labels", &server.base).await;
    b.sign_in(&server.org.admin_email, &server.org.admin_password).await;
    b.wait_path("/prompts").await;
    b.visit("/prompts/greeting", "prompt-with-production").await;
    assert!(b.has_css("table#labels tr[data-label='production'][data-version='1']").await);
    assert!(b.has_css("tr[data-version='1'] span.label[data-label='production']").await, "versions show their labels");

    // Move: the form, then a confirmation page naming both versions.
    b.fill("Label", "staging").await;
    b.select("Version", &[&v[1], "v2 (draft)"]).await;
    b.click_button("Move label").await;
    b.wait_path("/prompts/greeting/move-label").await;
    assert!(b.text().await.contains("Point staging of greeting at v2?"), "{}", b.text().await);
    b.fill("Notes", "try v2 on staging").await;
    b.click_button("Move label").await;
    b.wait_path("/prompts/greeting").await;
    assert!(b.has_css("table#labels tr[data-label='staging'][data-version='2']").await);
    assert!(b.has_css("table#label-history tr[data-label='staging'][data-kind='move']").await);
    assert!(b.text().await.contains("try v2 on staging"));
    assert_eq!(vid(&admin.get("/api/v1/prompts/greeting/labels/staging").await.json()), v[1]);

    // Production through the same form is a promotion.
    b.fill("Label", "production").await;
    b.select("Version", &[&v[1], "v2 (draft)"]).await;
    b.click_button("Move label").await;
    assert!(b.text().await.contains("promotes the version"));
    b.click_button("Move label").await;
    b.wait_path("/prompts/greeting").await;
    assert_eq!(vid(&admin.get("/api/v1/prompts/greeting/production").await.json()), v[1]);

    // Roll back production: back to v1.
    b.click_in("table#labels tr[data-label='production']", "Roll back").await;
    assert!(b.text().await.contains("back to v1"), "{}", b.text().await);
    b.click_button("Roll back").await;
    b.wait_path("/prompts/greeting").await;
    assert_eq!(vid(&admin.get("/api/v1/prompts/greeting/production").await.json()), v[0]);
    assert!(b.has_css("table#label-history tr[data-label='production'][data-kind='rollback']").await);

    // Remove staging.
    b.click_in("table#labels tr[data-label='staging']", "Remove").await;
    b.click_button("Remove label").await;
    b.wait_path("/prompts/greeting").await;
    assert!(!b.has_css("table#labels tr[data-label='staging']").await);
    admin.get("/api/v1/prompts/greeting/labels/staging").await.assert_error(404, "not_found");

    // A protected label: an editor is refused with the label named.
    put(&admin, "/api/v1/settings/protected-labels", json!({"labels": ["production"]})).await.assert_status(200);
    let password = {
        let r = admin
            .post("/api/v1/users", json!({"email": "ed@acme.test", "role": "editor", "onboarding": "password"}))
            .await;
        r.assert_status(201);
        r.json()["initial_password"].as_str().expect("initial_password").to_owned()
    };
    let ed = b.another("editor").await;
    ed.sign_in("ed@acme.test", &password).await;
    ed.wait_path("/account/password").await;
    ed.fill("Current password", &password).await;
    ed.fill("New password", "a long enough editor password").await;
    ed.fill("Confirm new password", "a long enough editor password").await;
    ed.click_button("Change password").await;
    ed.visit(&format!("/prompts/greeting/move-label?label=production&version={}", v[1]), "editor-confirm").await;
    ed.click_button("Move label").await;
    assert_eq!(ed.status().await, 403);
    assert!(ed.text().await.contains("'production'"), "{}", ed.text().await);
    assert_eq!(vid(&admin.get("/api/v1/prompts/greeting/production").await.json()), v[0]);
    ed.close().await;
    b.close().await;
}
