//! The error contract (SPEC §5): one body shape everywhere, 400 (never 422)
//! for bad JSON, 413 for big bodies, JSON 404s, and `X-Request-ID`.

use serde_json::{json, Value};

use crate::harness::{Resp, TestServer};

#[track_caller]
fn assert_exact_error_shape(r: &Resp) {
    let v = r.json();
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "error", "message"], "error body fields: {}", r.body);
    let inner = v["error"].as_object().expect("nested error object");
    let mut inner_keys: Vec<&String> = inner.keys().collect();
    inner_keys.sort();
    assert_eq!(inner_keys, ["code", "message"], "nested error fields: {}", r.body);
    assert_eq!(v["code"], v["error"]["code"]);
    assert_eq!(v["message"], v["error"]["message"]);
    assert!(
        r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")),
        "error content type: {:?}",
        r.header("content-type")
    );
    if let Some(id) = r.header("x-request-id") {
        assert!(!r.body.contains(id), "the request id must not be in the body: {}", r.body);
    }
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for path in ["/nope", "/api/v1/nope", "/api/v2/prompts", "/v1/auth/nope"] {
        let r = admin.get(path).await;
        r.assert_error(404, "not_found");
        assert_exact_error_shape(&r);
    }
    let r = server.anon().get("/definitely/not/here").await;
    r.assert_error(404, "not_found");
    assert_exact_error_shape(&r);
    // Wrong method on a known route: still the JSON error body.
    let r = Resp::from(admin.request(reqwest::Method::DELETE, "/v1/auth/sdk-token")).await;
    assert!(r.status == 405 || r.status == 404, "status {}", r.status);
    assert_exact_error_shape(&r);
}

#[tokio::test]
async fn malformed_or_wrongly_typed_json_is_400_not_422() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let cases: Vec<(&str, String)> = vec![
        ("truncated", r#"{"name": "x", "content": "#.into()),
        ("not JSON", "name=x&content=y".into()),
        ("trailing garbage", r#"{"name": "x", "content": "y"} extra"#.into()),
        ("name is a number", json!({"name": 5, "content": "y"}).to_string()),
        ("content is null", json!({"name": "x", "content": null}).to_string()),
        ("tags is an object", json!({"name": "x", "content": "y", "tags": {"a": 1}}).to_string()),
        ("array body", "[1,2]".into()),
        ("string body", "\"hello\"".into()),
    ];
    for (what, body) in cases {
        let r = Resp::from(
            admin
                .request(reqwest::Method::POST, "/api/v1/prompts")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status, 400, "{what}: {} {}", r.status, r.body);
        r.assert_error(400, "bad_request");
        assert_exact_error_shape(&r);
    }
    // Wrong query-string types too.
    admin.get("/api/v1/prompts?limit=-1").await.assert_error(400, "bad_request");
    admin.get("/api/v1/api-keys?limit=ten").await.assert_error(400, "bad_request");
    assert_eq!(admin.get("/api/v1/prompts").await.json()["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn json_endpoints_require_a_json_content_type() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let body = json!({"name": "typed", "content": "x"}).to_string();
    let r = Resp::from(admin.request(reqwest::Method::POST, "/api/v1/prompts").body(body.clone())).await;
    r.assert_error(400, "bad_request");
    let r = Resp::from(
        admin.request(reqwest::Method::POST, "/api/v1/prompts").header("content-type", "text/plain").body(body.clone()),
    )
    .await;
    r.assert_error(400, "bad_request");
    admin.get("/api/v1/prompts/typed").await.assert_error(404, "not_found");
    // With the right type (and a charset) it works.
    let r = Resp::from(
        admin
            .request(reqwest::Method::POST, "/api/v1/prompts")
            .header("content-type", "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    r.assert_status(201);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    // Prompt content has its own, lower limit (256 KiB by default, tested in
    // `limits`); raised here so that the body limit is what is tested.
    let server = TestServer::builder().env("SCOPE_MAX_PROMPT_BYTES", "1048576").start().await;
    let admin = server.admin().await;
    let big = json!({"name": "huge", "content": "x".repeat(1024 * 1024 + 10)}).to_string();
    let r = Resp::from(
        admin
            .request(reqwest::Method::POST, "/api/v1/prompts")
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    r.assert_error(413, "payload_too_large");
    assert_exact_error_shape(&r);
    // The auth endpoints have the same limit.
    let r = Resp::from(
        server.http.post(server.url("/v1/auth/sdk-token")).header("content-type", "application/json").body(big),
    )
    .await;
    r.assert_error(413, "payload_too_large");
    // Just under the limit is accepted.
    let fits = json!({"name": "fits", "content": "x".repeat(1024 * 1024 - 100)});
    admin.post("/api/v1/prompts", fits).await.assert_status(201);
    admin.get("/api/v1/prompts/huge").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_never_in_bodies() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let r = Resp::from(admin.request(reqwest::Method::GET, "/api/v1/me").header("x-request-id", "client-req-42")).await;
    r.assert_status(200);
    assert_eq!(r.header("x-request-id"), Some("client-req-42"));

    let a = admin.get("/api/v1/me").await;
    let b = admin.get("/api/v1/me").await;
    let ida = a.header("x-request-id").expect("generated request id").to_owned();
    let idb = b.header("x-request-id").expect("generated request id").to_owned();
    assert!(!ida.is_empty());
    assert_ne!(ida, idb, "each request gets its own id");

    // On errors too, and the body does not carry it.
    let r =
        Resp::from(admin.request(reqwest::Method::GET, "/api/v1/prompts/missing").header("x-request-id", "err-req-7"))
            .await;
    r.assert_error(404, "not_found");
    assert_eq!(r.header("x-request-id"), Some("err-req-7"));
    assert!(!r.body.contains("err-req-7"));
    assert_exact_error_shape(&r);
    let r = server.anon().get("/api/v1/me").await;
    r.assert_error(401, "unauthorized");
    assert!(r.header("x-request-id").is_some(), "401s carry a request id");
    assert_exact_error_shape(&r);

    // Ids that could smuggle something into logs or headers are replaced.
    let long = "a".repeat(500);
    let r = Resp::from(admin.request(reqwest::Method::GET, "/api/v1/me").header("x-request-id", long.as_str())).await;
    let got = r.header("x-request-id").expect("an id");
    assert_ne!(got, long);
    assert!(!got.is_empty());
}

#[tokio::test]
async fn equal_errors_have_byte_identical_bodies() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut bodies: Vec<(u16, String)> = Vec::new();
    for i in 0..3 {
        let r = Resp::from(
            admin.request(reqwest::Method::GET, "/api/v1/prompts/missing").header("x-request-id", format!("same-{i}")),
        )
        .await;
        bodies.push((r.status, r.body));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let mut unauthorized: Vec<String> = Vec::new();
    for _ in 0..3 {
        unauthorized.push(server.api("not-a-token").get("/api/v1/prompts").await.body);
    }
    assert!(unauthorized.windows(2).all(|w| w[0] == w[1]), "{unauthorized:?}");
    let v: Value = serde_json::from_str(&unauthorized[0]).expect("json");
    assert_eq!(v["error"]["code"], "unauthorized");
}
