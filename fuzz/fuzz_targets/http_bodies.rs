//! Request bodies through the real server (issue 9): scope-server's router,
//! in process, over a throwaway SQLite file, with an admin token. Each input
//! picks a route that takes a body (prompts, versions, promotions, labels,
//! keys, users, settings, the three token exchanges, OAuth revoke and
//! introspect), a content type, and the body bytes; the request goes through
//! the same extractors, services and store as over the network.
//!
//! Properties: never a 5xx (a panic anywhere aborts the run: libFuzzer's
//! panic hook fires even for the panics the server would catch); every 4xx
//! of the Scope and auth APIs is the SPEC §5 error body (flat and nested
//! `code`/`message`, equal, non-empty), every 4xx of `/oauth/*` an RFC 6749
//! body with a string `error`; every 2xx body is JSON.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use scope_server::{App, ServerConfig};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: Router,
    token: String,
    routes: Vec<(Method, String, bool)>,
    _dir: tempfile::TempDir,
}

/// An expiry the bootstrap key may give a key it creates (a key cannot
/// outlive the key that made it, and the first-start key expires).
fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn peer() -> ConnectInfo<SocketAddr> {
    ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000)))
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = ct {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let mut req = req.body(Body::from(body)).expect("request");
    req.extensions_mut().insert(peer());
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, bytes)
}

async fn json_call(router: &Router, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, bytes) =
        call(router, method, path, token, Some("application/json"), serde_json::to_vec(&body).expect("json")).await;
    assert!(status.is_success(), "fixture {path}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).expect("fixture JSON")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let (router, token, routes) = rt.block_on(async {
            let mut config = ServerConfig::new(url.clone());
            config.public_url = Some("http://scope.fuzz".into());
            let store = scope_store::open_with(&url, &config.store).await.expect("store");
            let app = Arc::new(App::start(store, config).await.expect("app"));
            app.set_listen_addr(SocketAddr::from(([127, 0, 0, 1], 9)));
            let org =
                scope_server::service::bootstrap::bootstrap_if_empty(&app).await.expect("bootstrap").expect("new");
            let router = scope_server::http::router(app);
            let t = json_call(
                &router,
                Method::POST,
                "/v1/auth/sdk-token",
                None,
                json!({"account_id": org.org_id.to_string(), "key_id": org.key_id.to_string(),
                       "key_secret": org.secret.expose_secret()}),
            )
            .await;
            let token = t["access_token"].as_str().expect("token").to_owned();
            let p = json_call(
                &router,
                Method::POST,
                "/api/v1/prompts",
                Some(&token),
                json!({"name": "fz", "content": "Hi {{x}}"}),
            )
            .await;
            let prompt = p["prompt_id"].as_str().expect("prompt").to_owned();
            let v1 = p["version"]["version_id"].as_str().expect("version").to_owned();
            let k = json_call(
                &router,
                Method::POST,
                "/api/v1/api-keys",
                Some(&token),
                json!({"name": "target", "expires_at": in_an_hour()}),
            )
            .await;
            let key = k["key_id"].as_str().expect("key").to_owned();
            let u = json_call(
                &router,
                Method::POST,
                "/api/v1/users",
                Some(&token),
                json!({"email": "target@fuzz.test", "role": "viewer"}),
            )
            .await;
            let user = u["user_id"]
                .as_str()
                .or(u["user"]["user_id"].as_str())
                .unwrap_or("usr_01JD8X3QABCDEFGHJKMNPQRSTV")
                .to_owned();
            let with_token = true;
            let routes = vec![
                (Method::POST, "/api/v1/prompts".to_owned(), with_token),
                (Method::PATCH, format!("/api/v1/prompts/{prompt}"), with_token),
                (Method::POST, format!("/api/v1/prompts/{prompt}/versions"), with_token),
                (Method::PATCH, format!("/api/v1/prompts/fz/versions/{v1}"), with_token),
                (Method::POST, format!("/api/v1/prompts/fz/versions/{v1}/promote"), with_token),
                (Method::POST, format!("/api/v1/prompts/fz/versions/{v1}/archive"), with_token),
                (Method::POST, format!("/api/v1/prompts/fz/versions/{v1}/unarchive"), with_token),
                (Method::PUT, "/api/v1/prompts/fz/labels/staging".to_owned(), with_token),
                (Method::PUT, "/api/v1/prompts/fz/labels/production".to_owned(), with_token),
                (Method::POST, "/api/v1/prompts/fz/labels/staging/rollback".to_owned(), with_token),
                (Method::PUT, "/api/v1/settings/protected-labels".to_owned(), with_token),
                (Method::PUT, "/api/v1/org/audiences".to_owned(), with_token),
                (Method::POST, "/api/v1/api-keys".to_owned(), with_token),
                (Method::POST, format!("/api/v1/api-keys/{key}/rotate"), with_token),
                (Method::POST, "/api/v1/users".to_owned(), with_token),
                (Method::PATCH, format!("/api/v1/users/{user}"), with_token),
                (Method::POST, "/api/v1/sessions".to_owned(), false),
                (Method::POST, "/v1/auth/sdk-token".to_owned(), false),
                (Method::POST, "/v1/auth/applications/login".to_owned(), false),
                (Method::POST, "/oauth/token".to_owned(), false),
                (Method::POST, "/oauth/revoke".to_owned(), false),
                (Method::POST, "/oauth/introspect".to_owned(), false),
            ];
            (router, token, routes)
        });
        Fixture { rt, router, token, routes, _dir: dir }
    })
}

const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
    Some("application/merge-patch+json; charset=utf-8"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (Some(&pick), Some(&ct)) = (data.first(), data.get(1)) else { return };
    let body = data[2..].to_vec();
    let (method, path, with_token) = &f.routes[pick as usize % f.routes.len()];
    let ct = CONTENT_TYPES[ct as usize % CONTENT_TYPES.len()];
    let token = with_token.then_some(f.token.as_str());
    let (status, bytes) = f.rt.block_on(call(&f.router, method.clone(), path, token, ct, body));
    let text = String::from_utf8_lossy(&bytes);
    if std::env::var_os("SCOPE_FUZZ_TRACE").is_some() {
        // What the corpus reaches: `SCOPE_FUZZ_TRACE=1 … -runs=0 CORPUS`.
        eprintln!("status {} {method} {path}", status.as_u16());
    }
    assert!(!status.is_server_error(), "{method} {path} ({ct:?}) → {status}: {text}");
    if status.is_client_error() {
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path} → {status}, not JSON ({e}): {text}"));
        if path.starts_with("/oauth/") {
            assert!(v["error"].is_string(), "{method} {path} → {status}: not an RFC 6749 body: {text}");
        } else {
            assert!(v["code"].is_string() && v["code"] == v["error"]["code"], "{method} {path} → {status}: {text}");
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()) && v["message"] == v["error"]["message"],
                "{method} {path} → {status}: {text}"
            );
        }
    } else if status.is_success() && !bytes.is_empty() {
        serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path} → {status}, not JSON ({e}): {text}"));
    }
});
