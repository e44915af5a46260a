//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document is public and
//! cacheable, documents every route of `http::router` (read from its
//! source, so that a route added without documentation fails here), gives
//! every error answer the shared `Error` schema (RFC 6749 `OAuthError` on
//! `/oauth/*`), and describes what the live server really answers.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::{Resp, TestServer};

/// `http::router`'s source: its `.route("…", get(…).post(…))` lines.
const ROUTER_SOURCE: &str = include_str!("../../../scope-server/src/http/mod.rs");

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `(METHOD path)` of every route in the router's source (every route is
/// written with its full path: the Scope API's are merged, not nested).
fn router_operations() -> BTreeSet<String> {
    assert!(!ROUTER_SOURCE.contains(".nest("), "a nested router's routes would need its prefix here");
    let mut out = BTreeSet::new();
    let mut at = 0;
    while let Some(i) = ROUTER_SOURCE[at..].find(".route(\"") {
        let start = at + i + ".route(\"".len();
        let path_len = ROUTER_SOURCE[start..].find('"').expect("route path ends");
        let path = &ROUTER_SOURCE[start..start + path_len];
        let line_end = start + ROUTER_SOURCE[start..].find('\n').unwrap_or(ROUTER_SOURCE.len() - start);
        let rest = &ROUTER_SOURCE[start + path_len..line_end];
        let mut found = 0;
        for m in METHODS {
            let needle = format!("{m}(");
            let mut from = 0;
            while let Some(j) = rest[from..].find(&needle) {
                let pos = from + j;
                let before = rest[..pos].chars().last().unwrap_or(' ');
                if !(before.is_alphanumeric() || before == '_' || before == ':') {
                    out.insert(format!("{} {path}", m.to_uppercase()));
                    found += 1;
                }
                from = pos + needle.len();
            }
        }
        assert!(found > 0, "no method found for route {path}: {rest}");
        at = start;
    }
    assert!(out.len() > 40, "too few routes parsed: {out:?}");
    out
}

fn document_operations(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    out
}

async fn fetch_document(server: &TestServer) -> Value {
    let r = server.anon().get("/api/v1/openapi.json").await;
    r.assert_status(200);
    r.json()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_public_and_cacheable() {
    let server = TestServer::start().await;
    let r = server.anon().get("/api/v1/openapi.json").await;
    r.assert_status(200);
    assert!(r.header("content-type").unwrap_or("").starts_with("application/json"));
    assert!(r.header("cache-control").unwrap_or("").contains("public"), "{:?}", r.header("cache-control"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Scope");
    let etag = r.header("etag").expect("an ETag").to_owned();
    let again =
        Resp::from(server.anon().request(reqwest::Method::GET, "/api/v1/openapi.json").header("if-none-match", &etag))
            .await;
    again.assert_status(304);
    assert!(again.body.is_empty());
    // The bearer and Basic (OAuth client) schemes, and the console cookie.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["session"]["in"], "cookie");
}

/// Fails when a route is added to `http::router` without documentation,
/// and when the document names an operation the router does not have.
#[tokio::test]
async fn every_route_of_the_router_is_documented_and_nothing_else() {
    let server = TestServer::start().await;
    let doc = fetch_document(&server).await;
    let routes = router_operations();
    let documented = document_operations(&doc);
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
    assert!(extra.is_empty(), "documented operations the router does not have: {extra:?}");
    // And each documented path is routed (not the fallback's 404).
    for op in &documented {
        let (method, path) = op.split_once(' ').unwrap();
        if method != "GET" || path.contains('{') || path == "/api/v1/events" {
            continue;
        }
        let r = server.anon().get(path).await;
        assert_ne!(r.status, 404, "{op}: {}", r.body);
    }
}

#[tokio::test]
async fn every_error_answer_has_the_shared_error_schema() {
    let server = TestServer::start().await;
    let doc = fetch_document(&server).await;
    let error = &doc["components"]["schemas"]["Error"];
    let required: BTreeSet<&str> = error["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["code", "message", "error"]), "{error}");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{m} {path}: no success answer");
            assert!(responses.contains_key("500"), "{m} {path}: no 500");
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty())));
            let public = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty())));
            if secured && !public {
                assert!(responses.contains_key("401"), "{m} {path}: secured but no 401");
            }
            for (status, resp) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                let want = if path.starts_with("/oauth/") { "OAuthError" } else { "Error" };
                assert_eq!(schema, &json!(format!("#/components/schemas/{want}")), "{m} {path} {status}");
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "only {checked} error answers");
}

// ---- the document describes the live answers ----------------------------------------------

/// The properties and required names of a schema (following `$ref` and
/// `allOf`).
fn shape(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").expect("a local schema ref");
        return shape(doc, &doc["components"]["schemas"][name]);
    }
    let (mut props, mut required) = (BTreeSet::new(), BTreeSet::new());
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            let (p, r) = shape(doc, s);
            props.extend(p);
            required.extend(r);
        }
    }
    if let Some(p) = schema["properties"].as_object() {
        props.extend(p.keys().cloned());
    }
    if let Some(r) = schema["required"].as_array() {
        required.extend(r.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }
    (props, required)
}

/// The live body has every required property of the documented answer and
/// nothing undocumented.
fn assert_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method];
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path}: no JSON schema for {status}");
    let (props, required) = shape(doc, schema);
    let keys: BTreeSet<String> = body.as_object().unwrap_or_else(|| panic!("{body}")).keys().cloned().collect();
    let undocumented: Vec<_> = keys.difference(&props).collect();
    let absent: Vec<_> = required.difference(&keys).collect();
    assert!(undocumented.is_empty(), "{method} {path} {status}: undocumented fields {undocumented:?} in {body}");
    assert!(absent.is_empty(), "{method} {path} {status}: required fields {absent:?} missing from {body}");
}

/// The answers handlers build by hand (`json!`) match their documented
/// shapes, successes and errors alike.
#[tokio::test]
async fn hand_built_answers_match_the_document() {
    let server = TestServer::start().await;
    let doc = fetch_document(&server).await;
    let admin = server.admin().await;
    let anon = server.anon();

    let r = anon.get("/healthz").await;
    assert_documented(&doc, "get", "/healthz", 200, &r.json());
    let r = anon.get("/.well-known/jwks.json").await;
    assert_documented(&doc, "get", "/.well-known/jwks.json", 200, &r.json());
    for p in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        assert_documented(&doc, "get", p, 200, &anon.get(p).await.json());
    }
    assert_documented(&doc, "get", "/api/v1/me", 200, &admin.get("/api/v1/me").await.json());
    let r = anon.get("/api/v1/me").await;
    r.assert_status(401);
    assert_documented(&doc, "get", "/api/v1/me", 401, &r.json());

    // Token exchanges, and a refused one.
    let body = json!({"account_id": server.org.org_id, "key_id": server.org.key_id, "key_secret": server.org.secret});
    let r = anon.post("/v1/auth/sdk-token", body).await;
    r.assert_status(200);
    assert_documented(&doc, "post", "/v1/auth/sdk-token", 200, &r.json());
    let body = json!({"account_id": server.org.org_id, "client_id": server.org.key_id, "client_secret": "nope"});
    let r = anon.post("/v1/auth/applications/login", body).await;
    r.assert_status(401);
    assert_documented(&doc, "post", "/v1/auth/applications/login", 401, &r.json());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", &server.org.key_id),
        ("client_secret", &server.org.secret),
    ];
    let r = Resp::from(anon.request(reqwest::Method::POST, "/oauth/token").form(&form)).await;
    r.assert_status(200);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_documented(&doc, "post", "/oauth/token", 200, &r.json());
    let r = Resp::from(anon.request(reqwest::Method::POST, "/oauth/token").form(&[("grant_type", "password")])).await;
    r.assert_status(400);
    assert_documented(&doc, "post", "/oauth/token", 400, &r.json());
    let form = [("token", token.as_str()), ("client_id", &server.org.key_id), ("client_secret", &server.org.secret)];
    let r = Resp::from(anon.request(reqwest::Method::POST, "/oauth/introspect").form(&form)).await;
    r.assert_status(200);
    assert_eq!(r.json()["active"], true);
    assert_documented(&doc, "post", "/oauth/introspect", 200, &r.json());

    // Keys: created, rotated, usage.
    let r = admin.post("/api/v1/api-keys", json!({"name": "docs"})).await;
    r.assert_status(201);
    assert_documented(&doc, "post", "/api/v1/api-keys", 201, &r.json());
    let key_id = r.json()["key_id"].as_str().unwrap().to_owned();
    let r = admin.post(&format!("/api/v1/api-keys/{key_id}/rotate"), json!({})).await;
    r.assert_status(201);
    assert_documented(&doc, "post", "/api/v1/api-keys/{key_id}/rotate", 201, &r.json());
    let r = admin.get(&format!("/api/v1/api-keys/{key_id}/usage")).await;
    r.assert_status(200);
    assert_documented(&doc, "get", "/api/v1/api-keys/{key_id}/usage", 200, &r.json());

    // Users: invited, with a password; a session.
    let r = admin.post("/api/v1/users", json!({"email": "inv@docs.test"})).await;
    r.assert_status(201);
    assert_documented(&doc, "post", "/api/v1/users", 201, &r.json());
    let r = admin.post("/api/v1/users", json!({"email": "pw@docs.test", "onboarding": "password"})).await;
    r.assert_status(201);
    assert_documented(&doc, "post", "/api/v1/users", 201, &r.json());
    let body = json!({"email": server.org.admin_email, "password": server.org.admin_password});
    let r = anon.post("/api/v1/sessions", body).await;
    r.assert_status(201);
    assert_documented(&doc, "post", "/api/v1/sessions", 201, &r.json());

    // A prompt and its SDK-facing read.
    let created = admin.create_prompt("docs-prompt", "Hi {{who}}").await;
    assert_documented(&doc, "post", "/api/v1/prompts", 201, &created);
    let r = admin.get("/api/v1/prompts/docs-prompt/latest").await;
    r.assert_status(200);
    assert_documented(&doc, "get", "/api/v1/prompts/{name}/latest", 200, &r.json());
    let r = admin.get("/api/v1/prompts/docs-prompt/production").await;
    r.assert_error(404, "no_production_version");
    assert_documented(&doc, "get", "/api/v1/prompts/{name}/production", 404, &r.json());
}

// ---- what schemathesis found ----------------------------------------------------------------

/// `PUT …/labels/{label} {"version": 9223372036854775807}` was a 500 (an
/// overflow computing the page below it): a version number no prompt can
/// have is a 404 like any missing version.
#[tokio::test]
async fn a_label_moved_to_an_impossible_version_number_is_a_404() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("far", "x").await;
    for version in [i64::MAX, 0, -1, i64::MIN] {
        let r = Resp::from(
            admin
                .request(reqwest::Method::PUT, "/api/v1/prompts/far/labels/staging")
                .json(&json!({"version": version})),
        )
        .await;
        r.assert_error(404, "not_found");
    }
    let r = Resp::from(
        admin.request(reqwest::Method::PUT, "/api/v1/prompts/far/labels/staging").json(&json!({"version": 1})),
    )
    .await;
    r.assert_status(200);
    assert_eq!(r.json()["version"], 1);
}
