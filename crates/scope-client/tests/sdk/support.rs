//! A scripted local HTTP server (axum on 127.0.0.1:0) and fixtures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use parking_lot::Mutex;
use scope_client::{ClientBuilder, ClientCredentials};
use serde_json::{json, Value};

pub const ORG: &str = "org_01JD8X3Q7V9W0K2M4N6P8R0T2V";
pub const KEY: &str = "key_01JD8X4B7V9W0K2M4N6P8R0T2V";
pub const LOGIN: &str = "/v1/auth/applications/login";
pub const LEGACY: &str = "/v1/auth/sdk-token";

/// A well-formed secret (right shape and checksum).
pub fn secret() -> String {
    let payload = format!("secret_{}", "7Gm".repeat(14) + "Q");
    let sum = scope_domain::secret_format::checksum(&payload);
    format!("{payload}_{sum}")
}

/// The same secret with one character changed: the checksum no longer matches.
pub fn mistyped_secret() -> String {
    let s = secret();
    s.replacen("7Gm", "7Gn", 1)
}

pub fn creds() -> ClientCredentials {
    ClientCredentials::new(ORG, KEY, secret()).unwrap()
}

pub fn env_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A PromptVersion body as the server sends it (with an extra field the SDK
/// must ignore).
pub fn prompt_json(name: &str, version: u32, content: &str) -> Value {
    json!({
        "prompt_id": "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V",
        "version_id": format!("v_01JD8X3Q7V9W0K2M4N6P8R0T{:02}", version % 100),
        "name": name,
        "version": version,
        "content": content,
        "variables": scope_domain::template::variables(content),
        "status": "published",
        "is_production": true,
        "prompt_type": "text",
        "metadata": {"model": "gpt-4o", "temperature": 0.2},
        "tags": ["greeting"],
        "created_at": "2025-01-02T03:04:05Z",
        "updated_at": "2025-01-02T03:04:06Z",
        "promoted_at": "2025-01-02T03:04:07Z",
        "promoted_by": "usr_01JD8X3Q7V9W0K2M4N6P8R0T2V",
        "description": "added later; ignored by the SDK",
    })
}

/// What the script answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Reply {
    /// A body as is (an event stream, a huge body…).
    pub fn text(status: u16, content_type: &str, body: String) -> Self {
        Self { status, headers: vec![("content-type".to_owned(), content_type.to_owned())], body, delay: None }
    }

    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: vec![], body: body.to_string(), delay: None }
    }

    /// A SPEC §5 error body.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, json!({"code": code, "message": message, "error": {"code": code, "message": message}}))
    }

    pub fn token(n: usize, expires_in: f64) -> Self {
        Self::json(200, json!({"access_token": format!("tok-{n}"), "expires_in": expires_in, "token_type": "Bearer"}))
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// 0-based index among the requests to the same path.
    pub nth: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization").and_then(|v| v.strip_prefix("Bearer "))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

type Script = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct Shared {
    script: Box<Script>,
    log: Mutex<Vec<Recorded>>,
    counts: Mutex<HashMap<String, usize>>,
}

pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockServer {
    /// Serve `script` on an ephemeral loopback port until the test's runtime
    /// ends.
    pub async fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            script: Box::new(script),
            log: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// A conventional Scope: tokens `tok-1`, `tok-2`, … valid for an hour,
    /// and every prompt found with content `Hello {{name}}`.
    pub async fn scope() -> Self {
        Self::start(|r| {
            if r.path == LOGIN || r.path == LEGACY {
                return Reply::token(r.nth + 1, 3600.0);
            }
            let name = r.path.split('/').nth(4).unwrap_or("x").to_owned();
            Reply::json(200, prompt_json(&name, 1, "Hello {{name}}"))
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received at exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared.counts.lock().get(path).copied().unwrap_or(0)
    }

    /// Requests received under `/api/`.
    pub fn api_count(&self) -> usize {
        self.shared.log.lock().iter().filter(|r| r.path.starts_with("/api/")).count()
    }

    pub fn exchanges(&self) -> usize {
        self.count(LOGIN) + self.count(LEGACY)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().clone()
    }

    /// A client builder pointed at this server, with fast retries.
    pub fn client(&self) -> ClientBuilder {
        ClientBuilder::new()
            .credentials(creds())
            .api_url(self.url())
            .retry_base_delay(Duration::from_millis(5))
            .retry_max_delay(Duration::from_secs(2))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let nth = {
        let mut counts = shared.counts.lock();
        let c = counts.entry(path.clone()).or_insert(0);
        *c += 1;
        *c - 1
    };
    let rec = Recorded {
        method: parts.method.to_string(),
        path,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        nth,
    };
    shared.log.lock().push(rec.clone());
    let reply = (shared.script)(&rec);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    if !reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        resp = resp.header("content-type", "application/json");
    }
    for (k, v) in &reply.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    resp.body(Body::from(reply.body)).unwrap()
}

/// A loopback port with nothing listening.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
