//! Prompts (SPEC §5): create with a v1 draft, names, get by name or id,
//! list/search/paginate, update, delete, and the roles around them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{sibling_id, TestServer};

fn names(list: &Value) -> Vec<String> {
    list["data"].as_array().expect("data").iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect()
}

#[tokio::test]
async fn create_returns_the_prompt_with_its_v1_draft() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, editor_key) = server.client_with_role(&admin, "editor").await;
    let r = editor
        .post(
            "/api/v1/prompts",
            json!({
                "name": "greeting",
                "content": "Hello {{name}}, welcome to {{place}}. Bye {{name}}.",
                "description": "says hello",
                "tags": ["support", "en"],
                "prompt_type": "chat",
                "metadata": {"model": "gpt-4o", "temperature": 0.2},
            }),
        )
        .await;
    r.assert_status(201);
    let p = r.json();
    let prompt_id = p["prompt_id"].as_str().expect("prompt_id");
    assert!(prompt_id.starts_with("pmt_") && prompt_id.len() == 30, "{prompt_id}");
    assert_eq!(p["name"], "greeting");
    assert_eq!(p["description"], "says hello");
    assert_eq!(p["tags"], json!(["support", "en"]));
    assert_eq!(p["latest_version"], 1);
    assert!(p["production_version"].is_null());
    assert_eq!(p["created_by"], editor_key.key_id.as_str());

    let v = &p["version"];
    assert_eq!(v["version"], 1);
    assert_eq!(v["status"], "draft");
    assert_eq!(v["is_production"], false);
    assert_eq!(v["prompt_id"], prompt_id);
    assert_eq!(v["name"], "greeting");
    assert!(v["version_id"].as_str().is_some_and(|s| s.starts_with("v_")), "{v}");
    assert_eq!(v["variables"], json!(["name", "place"]), "ordered, de-duplicated");
    assert_eq!(v["prompt_type"], "chat");
    assert_eq!(v["metadata"], json!({"model": "gpt-4o", "temperature": 0.2}));
    assert_eq!(v["tags"], json!(["support", "en"]));
    assert!(v["promoted_at"].is_null() && v["promoted_by"].is_null());

    // Defaults.
    let p = editor.create_prompt("plain", "no variables here, {{ not one }}").await;
    assert_eq!(p["description"], "");
    assert_eq!(p["tags"], json!([]));
    assert_eq!(p["version"]["prompt_type"], "text");
    assert_eq!(p["version"]["metadata"], json!({}));
    assert_eq!(p["version"]["variables"], json!([]));
}

#[tokio::test]
async fn names_are_validated_and_unique_per_org() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("dup", "a").await;
    let r = admin.post("/api/v1/prompts", json!({"name": "dup", "content": "b"})).await;
    r.assert_error(409, "conflict");
    // Case-sensitive names: a different name.
    admin.create_prompt("Dup", "c").await;
    admin.create_prompt("a.b_c-D9", "ok").await;
    admin.create_prompt(&"x".repeat(255), "longest name").await;
    for bad in ["", "has space", "slash/name", "émoji", "semi;colon", &"x".repeat(256)] {
        let r = admin.post("/api/v1/prompts", json!({"name": bad, "content": "x"})).await;
        assert_eq!(r.status, 400, "name {bad:?}: {}", r.body);
        r.assert_error(400, "bad_request");
    }
    for (what, body) in [
        ("missing content", json!({"name": "nocontent"})),
        ("bad prompt_type", json!({"name": "t", "content": "x", "prompt_type": "image"})),
        ("metadata not an object", json!({"name": "m", "content": "x", "metadata": [1, 2]})),
        ("tags not strings", json!({"name": "g", "content": "x", "tags": [1]})),
        ("unknown field", json!({"name": "u", "content": "x", "type": "text"})),
    ] {
        let r = admin.post("/api/v1/prompts", body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
    }
    let r = admin.get("/api/v1/prompts?limit=200").await;
    assert_eq!(names(&r.json()).len(), 4, "only the valid prompts exist: {}", r.body);
}

#[tokio::test]
async fn get_by_name_or_id() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let p = admin.create_prompt("lookup", "x").await;
    let id = p["prompt_id"].as_str().expect("id");
    for key in ["lookup", id] {
        let r = admin.get(&format!("/api/v1/prompts/{key}")).await;
        r.assert_status(200);
        assert_eq!(r.json()["prompt_id"], id);
        assert_eq!(r.json()["name"], "lookup");
        assert!(r.json().get("version").is_none(), "only the create response carries the v1 draft");
    }
    admin.get("/api/v1/prompts/missing").await.assert_error(404, "not_found");
    admin.get(&format!("/api/v1/prompts/{}", sibling_id(id))).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn list_filters_by_tag_and_query_and_paginates() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let specs = [
        ("alpha", "greets people", json!(["support", "en"])),
        ("beta", "sells things", json!(["sales"])),
        ("gamma-support-bot", "answers", json!(["en"])),
        ("delta", "100% off", json!([])),
    ];
    for (name, desc, tags) in &specs {
        let r = admin
            .post("/api/v1/prompts", json!({"name": name, "content": "x", "description": desc, "tags": tags}))
            .await;
        r.assert_status(201);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let r = admin.get("/api/v1/prompts").await;
    r.assert_status(200);
    let all = r.json();
    assert_eq!(names(&all), vec!["delta", "gamma-support-bot", "beta", "alpha"], "newest first");
    assert!(all["next_cursor"].is_null());
    let first = &all["data"][0];
    assert_eq!(first["latest_version"], 1);
    assert!(first.get("production_version").is_some_and(Value::is_null));

    let get_names = |q: &'static str| {
        let admin = admin.clone();
        async move {
            let r = admin.get(&format!("/api/v1/prompts?{q}")).await;
            r.assert_status(200);
            names(&r.json())
        }
    };
    assert_eq!(get_names("tag=support").await, vec!["alpha"]);
    assert_eq!(get_names("tag=en").await, vec!["gamma-support-bot", "alpha"]);
    assert_eq!(get_names("tag=nope").await, Vec::<String>::new());
    assert_eq!(get_names("q=support").await, vec!["gamma-support-bot"], "q searches names");
    assert_eq!(get_names("q=greets").await, vec!["alpha"], "q searches descriptions");
    assert_eq!(get_names("q=%25").await, vec!["delta"], "LIKE wildcards are literal");
    assert_eq!(get_names("q=_").await, Vec::<String>::new(), "LIKE wildcards are literal");
    assert_eq!(get_names("q=a&tag=en").await, vec!["gamma-support-bot", "alpha"]);

    // Pagination.
    let r = admin.get("/api/v1/prompts?limit=3").await;
    let page1 = r.json();
    assert_eq!(names(&page1), vec!["delta", "gamma-support-bot", "beta"]);
    let cursor = page1["next_cursor"].as_str().expect("next_cursor on a full page");
    let r = admin.get(&format!("/api/v1/prompts?limit=3&cursor={cursor}")).await;
    r.assert_status(200);
    assert_eq!(names(&r.json()), vec!["alpha"]);
    assert!(r.json()["next_cursor"].is_null());
    admin.get("/api/v1/prompts?limit=500").await.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts?limit=abc").await.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts?cursor=xyz").await.assert_error(400, "bad_request");
}

#[tokio::test]
async fn patch_updates_description_and_tags() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, _) = server.client_with_role(&admin, "editor").await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    editor.create_prompt("patched", "x").await;

    let r = editor.patch("/api/v1/prompts/patched", json!({"description": "new words"})).await;
    r.assert_status(200);
    assert_eq!(r.json()["description"], "new words");
    assert_eq!(r.json()["tags"], json!([]), "tags untouched");
    let r = editor.patch("/api/v1/prompts/patched", json!({"tags": ["a", "b", "a"]})).await;
    r.assert_status(200);
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(r.json()["description"], "new words", "description untouched");
    let r = viewer.get("/api/v1/prompts/patched").await;
    assert_eq!(r.json()["description"], "new words");
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(viewer.get("/api/v1/prompts?tag=b").await.json()["data"][0]["name"], "patched");

    viewer
        .patch("/api/v1/prompts/patched", json!({"description": "viewer was here"}))
        .await
        .assert_error(403, "forbidden");
    editor.patch("/api/v1/prompts/patched", json!({"name": "renamed"})).await.assert_error(400, "bad_request");
    editor.patch("/api/v1/prompts/patched", json!({"tags": "a"})).await.assert_error(400, "bad_request");
    editor.patch("/api/v1/prompts/nope", json!({"description": "x"})).await.assert_error(404, "not_found");
    assert_eq!(viewer.get("/api/v1/prompts/patched").await.json()["description"], "new words");
}

#[tokio::test]
async fn delete_is_admin_only() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (editor, _) = server.client_with_role(&admin, "editor").await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    editor.create_prompt("doomed", "x").await;

    editor.delete("/api/v1/prompts/doomed").await.assert_error(403, "forbidden");
    viewer.delete("/api/v1/prompts/doomed").await.assert_error(403, "forbidden");
    editor.get("/api/v1/prompts/doomed").await.assert_status(200);

    let r = admin.delete("/api/v1/prompts/doomed").await;
    assert!(r.status == 204 || r.status == 200, "delete: {} {}", r.status, r.body);
    admin.get("/api/v1/prompts/doomed").await.assert_error(404, "not_found");
    admin.get("/api/v1/prompts/doomed/latest").await.assert_error(404, "not_found");
    assert!(names(&admin.get("/api/v1/prompts").await.json()).is_empty());
    admin.delete("/api/v1/prompts/doomed").await.assert_error(404, "not_found");
    // The name is free again.
    editor.create_prompt("doomed", "second life").await;
}

#[tokio::test]
async fn viewers_read_but_cannot_write() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (viewer, _) = server.client_with_role(&admin, "viewer").await;
    let p = admin.create_prompt("readable", "hi {{who}}").await;
    let v1 = p["version"]["version_id"].as_str().expect("v1").to_owned();
    admin.post_empty(&format!("/api/v1/prompts/readable/versions/{v1}/promote")).await.assert_status(200);

    for path in [
        "/api/v1/prompts".to_owned(),
        "/api/v1/prompts/readable".to_owned(),
        "/api/v1/prompts/readable/production".to_owned(),
        "/api/v1/prompts/readable/latest".to_owned(),
        format!("/api/v1/prompts/readable/versions/{v1}"),
        "/api/v1/prompts/readable/versions".to_owned(),
        "/api/v1/prompts/readable/promotions".to_owned(),
    ] {
        viewer.get(&path).await.assert_status(200);
    }
    viewer.post("/api/v1/prompts", json!({"name": "mine", "content": "x"})).await.assert_error(403, "forbidden");
    viewer.post("/api/v1/prompts/readable/versions", json!({"content": "y"})).await.assert_error(403, "forbidden");
    viewer.post_empty(&format!("/api/v1/prompts/readable/versions/{v1}/archive")).await.assert_error(403, "forbidden");
    admin.get("/api/v1/prompts/mine").await.assert_error(404, "not_found");
    assert_eq!(admin.get("/api/v1/prompts/readable").await.json()["latest_version"], 1);
}
