//! Versions (SPEC §5): the SDK-facing reads, creation with copy-from, draft
//! editing, promotion with history, archive/unarchive, listing, the
//! PromptVersion wire shape, and concurrent promotes.

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Value};

use crate::harness::{sibling_id, Api, TestServer};

/// The PromptVersion fields SPEC §5 requires.
const REQUIRED: [&str; 15] = [
    "prompt_id",
    "version_id",
    "name",
    "version",
    "content",
    "variables",
    "status",
    "is_production",
    "prompt_type",
    "metadata",
    "tags",
    "created_at",
    "updated_at",
    "promoted_at",
    "promoted_by",
];
/// Names the reference SDKs reserve.
const FORBIDDEN: [&str; 5] = ["type", "is_draft", "is_published", "is_archived", "raw_data"];

fn assert_rfc3339_utc(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what} {s}: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "{what} must be UTC: {s}");
}

#[track_caller]
fn assert_version_shape(v: &Value) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    for f in REQUIRED {
        assert!(obj.contains_key(f), "PromptVersion lacks {f}: {v}");
    }
    for f in FORBIDDEN {
        assert!(!obj.contains_key(f), "PromptVersion must not carry {f}: {v}");
    }
    assert!(v["version"].is_i64());
    assert!(v["variables"].as_array().is_some_and(|a| a.iter().all(Value::is_string)));
    assert!(["draft", "published", "archived"].contains(&v["status"].as_str().unwrap_or("")), "status: {v}");
    assert!(v["is_production"].is_boolean());
    assert!(["text", "chat"].contains(&v["prompt_type"].as_str().unwrap_or("")));
    assert!(v["metadata"].is_object());
    assert!(v["tags"].as_array().is_some_and(|a| a.iter().all(Value::is_string)));
    assert_rfc3339_utc(&v["created_at"], "created_at");
    assert_rfc3339_utc(&v["updated_at"], "updated_at");
    if !v["promoted_at"].is_null() {
        assert_rfc3339_utc(&v["promoted_at"], "promoted_at");
    }
    assert!(v["promoted_by"].is_null() || v["promoted_by"].is_string());
    assert_eq!(v["is_production"], v["status"] == "published", "is_production iff published: {v}");
}

fn vid(v: &Value) -> String {
    v["version_id"].as_str().expect("version_id").to_owned()
}

async fn status_of(api: &Api, prompt: &str, version_id: &str) -> String {
    let r = api.get(&format!("/api/v1/prompts/{prompt}/versions/{version_id}")).await;
    r.assert_status(200);
    r.json()["status"].as_str().expect("status").to_owned()
}

#[tokio::test]
async fn sdk_endpoints_serve_production_latest_and_by_id() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (sdk, _) = server.client_with_role(&admin, "viewer").await;
    let p = admin.create_prompt("sdk-facing", "v1 {{a}}").await;
    let prompt_id = p["prompt_id"].as_str().expect("id").to_owned();
    let v1 = vid(&p["version"]);

    // No production version yet.
    let r = sdk.get("/api/v1/prompts/sdk-facing/production").await;
    r.assert_error(404, "no_production_version");
    assert!(r.json()["message"].as_str().expect("message").contains("no production version"), "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().expect("message").contains("no production version"));
    let r = sdk.get("/api/v1/prompts/never-created/production").await;
    r.assert_error(404, "not_found");
    assert!(!r.body.contains("no production version"), "a missing prompt is not a missing production version");

    let r = sdk.get("/api/v1/prompts/sdk-facing/latest").await;
    r.assert_status(200);
    assert_version_shape(&r.json());
    assert_eq!(r.json()["version_id"], v1.as_str());

    let v2 = admin.create_version("sdk-facing", "v2 {{b}}").await;
    admin.post_empty(&format!("/api/v1/prompts/sdk-facing/versions/{v1}/promote")).await.assert_status(200);
    for key in ["sdk-facing", prompt_id.as_str()] {
        let r = sdk.get(&format!("/api/v1/prompts/{key}/production")).await;
        r.assert_status(200);
        let v = r.json();
        assert_version_shape(&v);
        assert_eq!(v["version_id"], v1.as_str());
        assert_eq!(v["content"], "v1 {{a}}");
        assert_eq!(v["variables"], json!(["a"]));
        assert_eq!(v["status"], "published");
        assert_eq!(v["is_production"], true);
        assert_eq!(v["name"], "sdk-facing");
        assert_eq!(v["prompt_id"], prompt_id.as_str());

        let r = sdk.get(&format!("/api/v1/prompts/{key}/latest")).await;
        r.assert_status(200);
        assert_eq!(r.json()["version_id"], v2["version_id"], "latest is the highest number, any status");
        assert_eq!(r.json()["status"], "draft");
        assert_eq!(r.json()["version"], 2);

        let r = sdk.get(&format!("/api/v1/prompts/{key}/versions/{}", vid(&v2))).await;
        r.assert_status(200);
        assert_version_shape(&r.json());
        assert_eq!(r.json()["content"], "v2 {{b}}");
    }
    sdk.get(&format!("/api/v1/prompts/sdk-facing/versions/{}", sibling_id(&v1))).await.assert_error(404, "not_found");
    sdk.get("/api/v1/prompts/sdk-facing/versions/garbage").await.assert_error(404, "not_found");
    // A version of another prompt is not reachable through this one.
    let other = admin.create_prompt("other", "x").await;
    sdk.get(&format!("/api/v1/prompts/sdk-facing/versions/{}", vid(&other["version"])))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn versions_are_numbered_and_copy_from_copies() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, editor_key) = server.client_with_role(&admin, "editor").await;
    let p = editor
        .post(
            "/api/v1/prompts",
            json!({"name": "numbered", "content": "base {{x}}", "prompt_type": "chat", "metadata": {"m": 1}}),
        )
        .await;
    p.assert_status(201);
    let v1 = vid(&p.json()["version"]);

    let v2 = editor.create_version("numbered", "second").await;
    assert_version_shape(&v2);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "draft");
    assert_eq!(v2["prompt_type"], "text", "no copy_from: defaults");
    assert_eq!(v2["metadata"], json!({}));
    assert_eq!(v2["created_by"], editor_key.key_id.as_str());

    let r = editor.post("/api/v1/prompts/numbered/versions", json!({"copy_from": v1})).await;
    r.assert_status(201);
    let v3 = r.json();
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["content"], "base {{x}}");
    assert_eq!(v3["variables"], json!(["x"]));
    assert_eq!(v3["prompt_type"], "chat");
    assert_eq!(v3["metadata"], json!({"m": 1}));
    assert_ne!(v3["version_id"].as_str(), Some(v1.as_str()));

    // copy_from with overrides.
    let r =
        editor.post("/api/v1/prompts/numbered/versions", json!({"copy_from": v1, "content": "override {{y}}"})).await;
    r.assert_status(201);
    assert_eq!(r.json()["version"], 4);
    assert_eq!(r.json()["content"], "override {{y}}");
    assert_eq!(r.json()["variables"], json!(["y"]));
    assert_eq!(r.json()["prompt_type"], "chat");

    // By prompt id too; numbers keep increasing.
    let pid = p.json()["prompt_id"].as_str().expect("id").to_owned();
    let r = editor.post(&format!("/api/v1/prompts/{pid}/versions"), json!({"content": "five"})).await;
    r.assert_status(201);
    assert_eq!(r.json()["version"], 5);

    // Errors.
    editor
        .post("/api/v1/prompts/numbered/versions", json!({"copy_from": sibling_id(&v1)}))
        .await
        .assert_error(404, "not_found");
    editor.post("/api/v1/prompts/missing/versions", json!({"content": "x"})).await.assert_error(404, "not_found");
    editor
        .post("/api/v1/prompts/numbered/versions", json!({"content": "x", "prompt_type": "video"}))
        .await
        .assert_error(400, "bad_request");
    editor
        .post("/api/v1/prompts/numbered/versions", json!({"content": "x", "metadata": "not an object"}))
        .await
        .assert_error(400, "bad_request");
    // Failed attempts do not consume numbers.
    assert_eq!(editor.create_version("numbered", "six").await["version"], 6);
    let r = editor.get("/api/v1/prompts/numbered").await;
    assert_eq!(r.json()["latest_version"], 6);
}

#[tokio::test]
async fn drafts_are_editable_and_published_or_archived_versions_are_not() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, _) = server.client_with_role(&admin, "editor").await;
    let p = editor.create_prompt("editable", "first {{a}}").await;
    let v1 = vid(&p["version"]);
    let path = format!("/api/v1/prompts/editable/versions/{v1}");

    let r = editor
        .patch(&path, json!({"content": "edited {{b}} {{c}}", "prompt_type": "chat", "metadata": {"k": "v"}}))
        .await;
    r.assert_status(200);
    let v = r.json();
    assert_version_shape(&v);
    assert_eq!(v["content"], "edited {{b}} {{c}}");
    assert_eq!(v["variables"], json!(["b", "c"]), "variables follow the content");
    assert_eq!(v["prompt_type"], "chat");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["version"], 1, "editing a draft does not make a new version");
    assert_eq!(editor.get(&path).await.json()["content"], "edited {{b}} {{c}}");

    editor.patch(&path, json!({"prompt_type": "audio"})).await.assert_error(400, "bad_request");
    editor.patch(&path, json!({"status": "published"})).await.assert_error(400, "bad_request");

    editor.post_empty(&format!("{path}/promote")).await.assert_status(200);
    let r = editor.patch(&path, json!({"content": "sneaky"})).await;
    r.assert_error(409, "conflict");
    let v2 = editor.create_version("editable", "second").await;
    editor.post_empty(&format!("/api/v1/prompts/editable/versions/{}/promote", vid(&v2))).await.assert_status(200);
    assert_eq!(status_of(&editor, "editable", &v1).await, "archived");
    editor.patch(&path, json!({"content": "sneaky"})).await.assert_error(409, "conflict");
    let r = editor.get(&path).await;
    assert_eq!(r.json()["content"], "edited {{b}} {{c}}", "immutable once published");
    editor
        .patch(&format!("/api/v1/prompts/editable/versions/{}", sibling_id(&v1)), json!({"content": "x"}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn promote_records_history_and_archives_or_demotes_the_previous_version() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, editor_key) = server.client_with_role(&admin, "editor").await;
    let p = editor.create_prompt("promoted", "one").await;
    let v1 = vid(&p["version"]);
    let v2 = vid(&editor.create_version("promoted", "two").await);
    let v3 = vid(&editor.create_version("promoted", "three").await);
    let promote = |v: &str| format!("/api/v1/prompts/promoted/versions/{v}/promote");

    let r = editor.post(&promote(&v1), json!({"notes": "first release"})).await;
    r.assert_status(200);
    let v = r.json();
    assert_version_shape(&v);
    assert_eq!(v["status"], "published");
    assert_eq!(v["is_production"], true);
    assert_eq!(v["promoted_by"], editor_key.key_id.as_str());
    assert_rfc3339_utc(&v["promoted_at"], "promoted_at");

    // Default: the previous production version is archived.
    let r = editor.post(&promote(&v2), json!({"notes": "better"})).await;
    r.assert_status(200);
    assert_eq!(status_of(&editor, "promoted", &v1).await, "archived");
    assert_eq!(status_of(&editor, "promoted", &v2).await, "published");

    // archive_previous=false: the previous one goes back to draft.
    let r = editor.post(&promote(&v3), json!({"archive_previous": false})).await;
    r.assert_status(200);
    assert_eq!(status_of(&editor, "promoted", &v2).await, "draft");
    assert_eq!(status_of(&editor, "promoted", &v3).await, "published");
    let prod = editor.get("/api/v1/prompts/promoted/production").await;
    assert_eq!(prod.json()["version_id"], v3.as_str());
    let summary = editor.get("/api/v1/prompts/promoted").await.json();
    assert_eq!(summary["production_version"], 3);

    // History, newest first, with previous versions and notes.
    let r = editor.get("/api/v1/prompts/promoted/promotions").await;
    r.assert_status(200);
    let h = r.json();
    let h = h["data"].as_array().expect("data");
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[0]["version_id"], v3.as_str());
    assert_eq!(h[0]["previous_version_id"], v2.as_str());
    assert_eq!(h[0]["previous_version"], 2);
    assert!(h[0]["notes"].is_null());
    assert_eq!(h[1]["version_id"], v2.as_str());
    assert_eq!(h[1]["previous_version_id"], v1.as_str());
    assert_eq!(h[1]["notes"], "better");
    assert_eq!(h[2]["version_id"], v1.as_str());
    assert!(h[2]["previous_version_id"].is_null());
    assert_eq!(h[2]["notes"], "first release");
    for e in h {
        assert_eq!(e["promoted_by"], editor_key.key_id.as_str());
        assert_rfc3339_utc(&e["promoted_at"], "promoted_at");
    }

    // Bad input.
    editor.post(&promote(&v1), json!({"archive_previous": "yes"})).await.assert_error(400, "bad_request");
    editor.post(&promote(&v1), json!({"notes": "n".repeat(2001)})).await.assert_error(400, "bad_request");
    editor.post_empty(&promote(&sibling_id(&v1))).await.assert_error(404, "not_found");
    assert_eq!(status_of(&editor, "promoted", &v3).await, "published", "failed promotes change nothing");
}

#[tokio::test]
async fn archive_and_unarchive_follow_the_lifecycle() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let p = admin.create_prompt("lifecycle", "one").await;
    let v1 = vid(&p["version"]);
    let v2 = vid(&admin.create_version("lifecycle", "two").await);
    let v3 = vid(&admin.create_version("lifecycle", "three").await);
    let at = |v: &str, action: &str| format!("/api/v1/prompts/lifecycle/versions/{v}/{action}");

    // Archive a draft.
    let r = admin.post_empty(&at(&v2, "archive")).await;
    r.assert_status(200);
    assert_eq!(r.json()["status"], "archived");
    assert_version_shape(&r.json());

    // The list hides archived versions unless asked.
    let r = admin.get("/api/v1/prompts/lifecycle/versions").await;
    r.assert_status(200);
    let listed: Vec<i64> =
        r.json()["data"].as_array().expect("data").iter().map(|v| v["version"].as_i64().expect("n")).collect();
    assert_eq!(listed, vec![3, 1], "newest first, archived hidden");
    for v in r.json()["data"].as_array().expect("data") {
        assert_version_shape(v);
    }
    let r = admin.get("/api/v1/prompts/lifecycle/versions?include_archived=true").await;
    let listed: Vec<i64> =
        r.json()["data"].as_array().expect("data").iter().map(|v| v["version"].as_i64().expect("n")).collect();
    assert_eq!(listed, vec![3, 2, 1]);
    let r = admin.get("/api/v1/prompts/lifecycle/versions?include_archived=false").await;
    assert_eq!(r.json()["data"].as_array().expect("data").len(), 2);
    admin.get("/api/v1/prompts/lifecycle/versions?include_archived=maybe").await.assert_error(400, "bad_request");
    // Paginated.
    let r = admin.get("/api/v1/prompts/lifecycle/versions?include_archived=true&limit=2").await;
    let page = r.json();
    assert_eq!(page["data"].as_array().expect("data").len(), 2);
    let cursor = page["next_cursor"].as_str().expect("next cursor");
    let r =
        admin.get(&format!("/api/v1/prompts/lifecycle/versions?include_archived=true&limit=2&cursor={cursor}")).await;
    r.assert_status(200);
    assert_eq!(r.json()["data"][0]["version"], 1);
    assert!(r.json()["next_cursor"].is_null());
    // Cursors of the wrong shape are a 400, on every paginated list.
    for bad in [
        "/api/v1/prompts/lifecycle/versions?cursor=-1",
        "/api/v1/prompts/lifecycle/versions?cursor=abc",
        "/api/v1/prompts/lifecycle/promotions?cursor=evt_01",
        "/api/v1/audit-events?cursor=prm_01",
    ] {
        admin.get(bad).await.assert_error(400, "bad_request");
    }

    // Unarchive → draft, editable again.
    let r = admin.post_empty(&at(&v2, "unarchive")).await;
    r.assert_status(200);
    assert_eq!(r.json()["status"], "draft");
    admin
        .patch(&format!("/api/v1/prompts/lifecycle/versions/{v2}"), json!({"content": "two, again"}))
        .await
        .assert_status(200);

    // The published version can be neither archived nor unarchived.
    admin.post_empty(&at(&v3, "promote")).await.assert_status(200);
    admin.post_empty(&at(&v3, "archive")).await.assert_error(409, "conflict");
    admin.post_empty(&at(&v3, "unarchive")).await.assert_error(409, "conflict");
    assert_eq!(status_of(&admin, "lifecycle", &v3).await, "published");
    assert_eq!(admin.get("/api/v1/prompts/lifecycle/production").await.json()["version_id"], v3.as_str());
    // Archiving the remaining draft works; latest is still the highest number.
    admin.post_empty(&at(&v1, "archive")).await.assert_status(200);
    assert_eq!(admin.get("/api/v1/prompts/lifecycle/latest").await.json()["version_id"], v3.as_str());
    admin.post_empty(&at(&sibling_id(&v1), "archive")).await.assert_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_promotes_leave_exactly_one_published_version() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("contended", "v1").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(vid(&admin.create_version("contended", &format!("candidate {i}")).await));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let api = admin.clone();
        tasks.spawn(async move {
            let r = api.post(&format!("/api/v1/prompts/contended/versions/{id}/promote"), json!({"notes": id})).await;
            (id, r.status, r.body)
        });
    }
    let mut ok = HashSet::new();
    while let Some(res) = tasks.join_next().await {
        let (id, status, body) = res.expect("promote task");
        assert!(status == 200 || status == 409, "promote of {id}: {status} {body}");
        if status == 200 {
            ok.insert(id);
        }
    }
    assert!(!ok.is_empty(), "at least one promote succeeds");

    let r = admin.get("/api/v1/prompts/contended/versions?include_archived=true&limit=200").await;
    r.assert_status(200);
    let all = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(all.len(), 51);
    let published: Vec<&Value> = all.iter().filter(|v| v["status"] == "published").collect();
    assert_eq!(published.len(), 1, "exactly one published version, got {}", published.len());
    assert_eq!(all.iter().filter(|v| v["is_production"] == true).count(), 1);
    let winner = vid(published[0]);
    assert!(ok.contains(&winner));
    let prod = admin.get("/api/v1/prompts/contended/production").await;
    prod.assert_status(200);
    assert_eq!(prod.json()["version_id"], winner.as_str());
    assert_eq!(
        all.iter().filter(|v| v["status"] == "archived").count(),
        ok.len() - 1,
        "every other successful promote was archived by the next one"
    );

    // The history is one linear chain through every successful promote.
    let r = admin.get("/api/v1/prompts/contended/promotions?limit=200").await;
    r.assert_status(200);
    let h = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(h.len(), ok.len(), "one history entry per successful promote");
    let promoted: BTreeSet<String> = h.iter().map(|e| e["version_id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(promoted.len(), h.len());
    let previous: Vec<&Value> = h.iter().map(|e| &e["previous_version_id"]).collect();
    assert_eq!(previous.iter().filter(|p| p.is_null()).count(), 1, "one promote had no predecessor");
    let prev_ids: BTreeSet<String> = previous.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
    assert_eq!(prev_ids.len(), h.len() - 1, "no version was replaced twice");
    assert!(prev_ids.is_subset(&promoted));
    assert!(!prev_ids.contains(&winner), "the winner was replaced by nobody");
    for e in &h {
        assert_eq!(e["notes"], e["version_id"], "notes kept with their promote");
    }
}

#[tokio::test]
async fn served_versions_reflect_every_change_on_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (sdk, _) = server.client_with_role(&admin, "viewer").await;
    let p = admin.create_prompt("hot", "one").await;
    let pid = p["prompt_id"].as_str().expect("id").to_owned();
    let v1 = vid(&p["version"]);
    admin.post_empty(&format!("/api/v1/prompts/hot/versions/{v1}/promote")).await.assert_status(200);
    let warm = |expect_version: i64, expect_latest: i64| {
        let sdk = sdk.clone();
        let pid = pid.clone();
        async move {
            for key in ["hot", pid.as_str()] {
                for _ in 0..3 {
                    let r = sdk.get(&format!("/api/v1/prompts/{key}/production")).await;
                    r.assert_status(200);
                    assert_eq!(r.json()["version"], expect_version, "production via {key}: {}", r.body);
                    let r = sdk.get(&format!("/api/v1/prompts/{key}/latest")).await;
                    r.assert_status(200);
                    assert_eq!(r.json()["version"], expect_latest, "latest via {key}: {}", r.body);
                }
            }
        }
    };
    warm(1, 1).await;

    // A new draft: latest moves at once, production stays.
    let v2 = vid(&admin.create_version("hot", "two").await);
    warm(1, 2).await;
    // Promote: production moves at once.
    admin.post_empty(&format!("/api/v1/prompts/hot/versions/{v2}/promote")).await.assert_status(200);
    warm(2, 2).await;
    // Tags are part of the served version.
    admin.patch("/api/v1/prompts/hot", json!({"tags": ["fresh"]})).await.assert_status(200);
    let r = sdk.get("/api/v1/prompts/hot/production").await;
    assert_eq!(r.json()["tags"], json!(["fresh"]), "stale tags served: {}", r.body);
    // Editing a draft shows in latest at once.
    let v3 = vid(&admin.create_version("hot", "three").await);
    warm(2, 3).await;
    admin
        .patch(&format!("/api/v1/prompts/hot/versions/{v3}"), json!({"content": "three, edited"}))
        .await
        .assert_status(200);
    assert_eq!(sdk.get("/api/v1/prompts/hot/latest").await.json()["content"], "three, edited");
    // Roll back by promoting v1 again (archived → published).
    admin.post_empty(&format!("/api/v1/prompts/hot/versions/{v1}/promote")).await.assert_status(200);
    let r = sdk.get(&format!("/api/v1/prompts/{pid}/production")).await;
    assert_eq!(r.json()["version_id"], v1.as_str(), "{}", r.body);
    // Delete: gone at once, by name and by id.
    let r = admin.delete("/api/v1/prompts/hot").await;
    assert!(r.status == 204 || r.status == 200, "delete: {} {}", r.status, r.body);
    for key in ["hot", pid.as_str()] {
        sdk.get(&format!("/api/v1/prompts/{key}/production")).await.assert_error(404, "not_found");
        sdk.get(&format!("/api/v1/prompts/{key}/latest")).await.assert_error(404, "not_found");
    }
    // A new prompt with the same name is served, not the deleted one.
    let p = admin.create_prompt("hot", "reborn").await;
    let r = sdk.get("/api/v1/prompts/hot/latest").await;
    r.assert_status(200);
    assert_eq!(r.json()["prompt_id"], p["prompt_id"]);
    assert_eq!(r.json()["content"], "reborn");
    sdk.get("/api/v1/prompts/hot/production").await.assert_error(404, "no_production_version");
}
