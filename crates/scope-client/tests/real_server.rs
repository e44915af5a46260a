//! The SDK against a real `scope serve` (ephemeral port, temporary SQLite).
//!
//! The binary comes from `scope_testkit::bin::scope_binary()`: `$SCOPE_BIN`,
//! else the workspace's `scope`, built on first use (so `cargo test -p
//! scope-client` alone works on a fresh clone).
//!
//! Contract used: `scope --database sqlite://PATH init --org-name N
//! --admin-email E --json` prints `{"org_id","admin_email","admin_password",
//! "api_key":{"key_id","secret"}}`; `scope --database sqlite://PATH serve
//! --listen 127.0.0.1:0` prints `Scope listening on http://127.0.0.1:PORT`
//! once bound; `SCOPE_TOKEN_TTL` sets the token lifetime in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Releases (issue 10): watch, ETag revalidation, labels. Files in a
// folder, so that cargo does not build them as test binaries of their own.
#[path = "real_server/proxy.rs"]
mod proxy;
#[path = "real_server/releases.rs"]
mod releases;
#[path = "real_server/watch.rs"]
mod watch;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scope_client::{Client, ClientBuilder, ClientCredentials, Error, PromptStatus};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `scope serve` on a fresh database, with its admin key.
struct Scope {
    url: String,
    org_id: String,
    admin_key_id: String,
    admin_secret: String,
    http: reqwest::Client,
    admin_token: String,
    /// The server's log (stderr, `scope_server=debug`): one `response` line
    /// per request it answered, so requests are counted on the server side.
    log: Arc<parking_lot::Mutex<String>>,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Scope {
    async fn start(token_ttl: Option<u64>) -> Scope {
        // Builds the binary on first use: blocking work, off the runtime.
        let bin = tokio::task::spawn_blocking(scope_testkit::bin::scope_binary).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("scope.db").display());

        let out = Command::new(&bin)
            .args([
                "--database",
                &db,
                "init",
                "--org-name",
                "SDK tests",
                "--admin-email",
                "admin@example.com",
                "--json",
            ])
            .env("SCOPE_DATA_DIR", dir.path())
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "scope init failed: {}", String::from_utf8_lossy(&out.stderr));
        let init: Value = serde_json::from_slice(&out.stdout).unwrap();
        let org_id = init["org_id"].as_str().unwrap().to_owned();
        let admin_key_id = init["api_key"]["key_id"].as_str().unwrap().to_owned();
        let admin_secret = init["api_key"]["secret"].as_str().unwrap().to_owned();

        let mut cmd = Command::new(&bin);
        cmd.args(["--database", &db, "serve", "--listen", "127.0.0.1:0"])
            .env("SCOPE_DATA_DIR", dir.path())
            .stdin(Stdio::null())
            .env("SCOPE_LOG", "scope_server=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(ttl) = token_ttl {
            cmd.env("SCOPE_TOKEN_TTL", ttl.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.trim().strip_prefix("Scope listening on ") {
                    return rest.trim().to_owned();
                }
            }
            panic!("scope serve exited before listening");
        })
        .await
        .expect("scope serve did not print its address within 30 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let log = Arc::new(parking_lot::Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut l = sink.lock();
                l.push_str(&line);
                l.push('\n');
            }
        });

        let http = reqwest::Client::new();
        let mut scope = Scope {
            url,
            org_id,
            admin_key_id,
            admin_secret,
            http,
            admin_token: String::new(),
            log,
            _child: child,
            _dir: dir,
        };
        let (status, body) = scope
            .post_raw(
                "/v1/auth/applications/login",
                json!({"account_id": scope.org_id, "client_id": scope.admin_key_id, "client_secret": scope.admin_secret}),
                None,
            )
            .await;
        assert_eq!(status, 200, "admin token exchange: {body}");
        scope.admin_token = body["access_token"].as_str().unwrap().to_owned();
        scope
    }

    async fn post_raw(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut rb = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `PUT /api/v1{path}` as the admin.
    async fn admin_put(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .put(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "PUT {path}: {status} {v}");
        v
    }

    /// One sample of the server's `/metrics` (0 when absent).
    async fn metric(&self, series: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    }

    async fn admin_post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post_raw(&format!("/api/v1{path}"), body, Some(&self.admin_token)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    /// Create a prompt; returns the v1 draft's version id.
    async fn create_prompt(&self, name: &str, content: &str) -> (String, String) {
        let v = self.admin_post("/prompts", json!({"name": name, "content": content})).await;
        (v["prompt_id"].as_str().unwrap().to_owned(), v["version"]["version_id"].as_str().unwrap().to_owned())
    }

    async fn create_version(&self, name: &str, content: &str) -> String {
        let v = self.admin_post(&format!("/prompts/{name}/versions"), json!({"content": content})).await;
        v["version_id"].as_str().unwrap().to_owned()
    }

    async fn promote(&self, name: &str, version_id: &str) {
        self.admin_post(&format!("/prompts/{name}/versions/{version_id}/promote"), json!({})).await;
    }

    /// A new viewer key: (key_id, secret).
    async fn create_key(&self, name: &str) -> (String, String) {
        let v = self.admin_post("/api-keys", json!({"name": name, "role": "viewer"})).await;
        (v["key_id"].as_str().unwrap().to_owned(), v["secret"].as_str().unwrap().to_owned())
    }

    async fn revoke(&self, key_id: &str) {
        self.admin_post(&format!("/api-keys/{key_id}/revoke"), json!({})).await;
    }

    fn client_with(&self, key_id: &str, secret: &str) -> ClientBuilder {
        Client::builder()
            .credentials(ClientCredentials::new(&self.org_id, key_id, secret).unwrap())
            .api_url(&self.url)
            .retry_base_delay(Duration::from_millis(20))
    }

    /// Requests the server answered on `path`, counted from its own log.
    async fn served(&self, path: &str) -> usize {
        // Let the log reader catch up with what was already written.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let needle = format!("path={path} ");
        self.log.lock().lines().filter(|l| l.contains(&needle) && l.contains("response status=")).count()
    }

    /// Token exchanges the server counted for `key_id` today (its usage API).
    async fn exchanges_counted(&self, key_id: &str) -> u64 {
        // A fresh admin token: tests may run with a short token lifetime.
        let (status, body) = self
            .post_raw(
                "/v1/auth/applications/login",
                json!({"account_id": self.org_id, "client_id": self.admin_key_id, "client_secret": self.admin_secret}),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let resp = self
            .http
            .get(format!("{}/api/v1/api-keys/{key_id}/usage?days=1", self.url))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        v["total"].as_u64().unwrap()
    }

    fn client(&self) -> ClientBuilder {
        self.client_with(&self.admin_key_id, &self.admin_secret)
    }

    /// `greeting`: v1 draft, v2 published (production), v3 draft (latest).
    async fn seed_greeting(&self) -> [String; 3] {
        let (_, v1) = self.create_prompt("greeting", "Hello {{name}}").await;
        let v2 = self.create_version("greeting", "Hi {{name}} from {{place}}").await;
        self.promote("greeting", &v2).await;
        let v3 = self.create_version("greeting", "Draft {{name}} {{x}}").await;
        [v1, v2, v3]
    }
}

/// Counts the token exchanges a client makes (hook on the login URL).
fn exchange_counter(builder: ClientBuilder) -> (ClientBuilder, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&n);
    let b = builder.on_request(move |e| {
        if e.url.contains("/v1/auth/") {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (b, n)
}

#[tokio::test]
async fn fetch_by_each_label_and_id() {
    let scope = Scope::start(None).await;
    let [v1, v2, v3] = scope.seed_greeting().await;
    let client = scope.client().build().unwrap();

    let prod = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!((prod.version, prod.version_id.as_str()), (2, v2.as_str()));
    assert_eq!(prod.status, PromptStatus::Published);
    assert!(prod.is_production && prod.is_published());
    assert_eq!(prod.variables, ["name", "place"]);
    assert!(prod.promoted_at.is_some());

    let latest = client.get_prompt_version("greeting").label("latest").await.unwrap();
    assert_eq!((latest.version, latest.version_id.as_str()), (3, v3.as_str()));
    assert!(latest.is_draft() && !latest.is_production);

    let first = client.get_prompt_version("greeting").version_id(&v1).await.unwrap();
    assert_eq!((first.version, first.content.as_str()), (1, "Hello {{name}}"));
    // A version number, or something that is not a label, is refused
    // before any request.
    let err = client.get_prompt_version("greeting").version_id("1").await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    let err = client.get_prompt_version("greeting").label("Staging").await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    // A well-formed label the prompt does not have is the server's 404.
    let err = client.get_prompt_version("greeting").label("staging").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(scope.served("/api/v1/prompts/greeting/versions/1").await, 0);
    assert_eq!(scope.served("/api/v1/prompts/greeting/staging").await, 0);

    // By prompt id too.
    let by_id = client.get_prompt_version(&prod.prompt_id).await.unwrap();
    assert_eq!(by_id.version_id, v2);
}

#[tokio::test]
async fn rendering() {
    let scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let client = scope.client().build().unwrap();
    let text = client.render_prompt("greeting", &HashMap::from([("name", "Ada"), ("place", "{{name}}ville")])).await;
    assert_eq!(text.unwrap(), "Hi Ada from {{name}}ville");
    match client.render_prompt("greeting", &HashMap::<&str, &str>::new()).await {
        Err(Error::MissingVariables { variables }) => assert_eq!(variables, ["name", "place"]),
        other => panic!("{other:?}"),
    }
    let strict = client
        .get_prompt_version("greeting")
        .render_strict(&HashMap::from([("name", "A"), ("place", "B"), ("extra", "C")]))
        .await;
    assert!(matches!(strict, Err(Error::UnknownVariables { .. })));
}

#[tokio::test]
async fn no_production_version_and_not_found() {
    let scope = Scope::start(None).await;
    scope.create_prompt("drafty", "only a draft").await;
    let client = scope.client().build().unwrap();
    let err = client.get_prompt_version("drafty").await.unwrap_err();
    assert!(matches!(err, Error::NoProductionVersion { .. }), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("no_production_version"));
    assert!(err.request_id().is_some());
    // The draft is still reachable as latest.
    assert_eq!(client.get_prompt_version("drafty").label("latest").await.unwrap().version, 1);
    let err = client.get_prompt_version("ghost").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(err.code(), Some("not_found"));
    let err = client.get_prompt_version("drafty").version_id("v_01JD8X3Q7V9W0K2M4N6P8R0T2V").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn revoked_key_is_refused() {
    let scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let (key_id, secret) = scope.create_key("app").await;
    let client = scope.client_with(&key_id, &secret).build().unwrap();
    client.get_prompt_version("greeting").await.unwrap();

    scope.revoke(&key_id).await;
    // The JWT already issued is refused; the refresh is refused too.
    client.clear_cache();
    let err = client.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err:?}");
    // A new client with that key cannot even get a token.
    let fresh = scope.client_with(&key_id, &secret).build().unwrap();
    let err = fresh.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err:?}");
    assert!(!err.to_string().contains(&secret));
}

#[tokio::test]
async fn expired_token_is_refreshed_transparently() {
    let scope = Scope::start(Some(2)).await;
    scope.seed_greeting().await;
    let (b, exchanges) = exchange_counter(scope.client().cache(false).token_refresh_buffer(Duration::ZERO));
    let client = b.build().unwrap();
    client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(exchanges.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cache_hits_do_not_reach_the_server() {
    let mut scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let requests = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&requests);
    let client = scope
        .client()
        .max_retries(0)
        .on_request(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let path = "/api/v1/prompts/greeting/production";
    let first = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 2); // exchange + fetch
    assert_eq!(scope.served(path).await, 1, "the server answered the first fetch");
    for _ in 0..50 {
        let again = client.get_prompt_version("greeting").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(scope.served(path).await, 1, "cache hits never reached the server");
    let meta = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(meta.source, scope_client::FetchSource::Cache);
    assert!(meta.age > Duration::ZERO);
    // Skipping the cache does reach it (and refreshes the cached copy).
    let meta = client.get_prompt_version("greeting").skip_cache().send_with_meta().await.unwrap();
    assert_eq!((meta.source, meta.age), (scope_client::FetchSource::Network, Duration::ZERO));
    let first = meta.version;
    assert_eq!(scope.served(path).await, 2);
    // Stop the server: only the cache can answer now.
    scope._child.kill().await.unwrap();
    for _ in 0..100 {
        let again = client.get_prompt_version("greeting").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    let err = client.get_prompt_version("greeting").skip_cache().await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_flight_under_64_concurrent_tasks() {
    let scope = Scope::start(Some(2)).await;
    scope.seed_greeting().await;
    let (key_id, secret) = scope.create_key("single-flight").await;
    let (b, exchanges) =
        exchange_counter(scope.client_with(&key_id, &secret).cache(false).token_refresh_buffer(Duration::ZERO));
    let client = b.build().unwrap();

    let run_64 = |client: Client| async move {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get_prompt_version("greeting").await.map(|v| v.version) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 2);
        }
    };
    // Cold start: no token yet.
    run_64(client.clone()).await;
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    assert_eq!(scope.exchanges_counted(&key_id).await, 1, "the server saw one exchange");
    // Expired token.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    run_64(client.clone()).await;
    assert_eq!(exchanges.load(Ordering::SeqCst), 2);
    assert_eq!(scope.exchanges_counted(&key_id).await, 2, "the server saw two exchanges");
    assert_eq!(scope.served("/api/v1/prompts/greeting/production").await, 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_against_the_server() {
    let scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let builder = scope.client();
    let out = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            let client = scope_client::blocking::Client::from_builder(builder).unwrap();
            client.render_prompt("greeting", &HashMap::from([("name", "Bo"), ("place", "Oslo")])).unwrap()
        })
        .join()
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out, "Hi Bo from Oslo");

    // Directly inside spawn_blocking, and from 50 plain threads sharing
    // clones of one client (one token exchange for all of them).
    let (builder, exchanges) = exchange_counter(scope.client().cache(false));
    let client = builder.build_blocking().unwrap();
    let c = client.clone();
    let v = tokio::task::spawn_blocking(move || c.get_prompt_version("greeting").send()).await.unwrap().unwrap();
    assert_eq!(v.version, 2);
    let texts = tokio::task::spawn_blocking(move || {
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let c = client.clone();
                std::thread::spawn(move || {
                    let name = format!("T{i}");
                    c.render_prompt("greeting", &HashMap::from([("name", name.as_str()), ("place", "X")]))
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(t, &format!("Hi T{i} from X"));
    }
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
}

/// A TLS terminator in front of a `scope serve`: its certificate (for
/// `localhost` and `127.0.0.1`) is signed by a certificate authority made up
/// for the test, the way a self-hosted deployment behind an internal CA looks.
struct TlsProxy {
    url: String,
    ca_pem: String,
    /// TCP connections accepted (one per attempt).
    connections: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

async fn tls_proxy(backend_url: &str) -> TlsProxy {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Scope test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = backend_url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    TlsProxy { url: format!("https://127.0.0.1:{port}"), ca_pem: ca.pem(), connections, _task: task }
}

#[tokio::test]
async fn tls_with_a_private_certificate_authority() {
    let scope = Scope::start(None).await;
    scope.seed_greeting().await;
    let proxy = tls_proxy(&scope.url).await;

    // Without the CA: the certificate is refused, and that is not retried.
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let client = scope
        .client()
        .api_url(&proxy.url)
        .max_retries(3)
        .on_request(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let err = client.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.is_tls() && !err.is_transient(), "{err:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "a refused certificate was retried");
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 1);
    let text = err.chain().to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(std::error::Error::source(&err).is_some_and(|s| s.downcast_ref::<reqwest::Error>().is_some()));

    // With the CA added: served through TLS.
    let client = scope.client().api_url(&proxy.url).add_root_certificate(&proxy.ca_pem).build().unwrap();
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version, 2);
    // Only the CA, without the built-in roots.
    let client = scope
        .client()
        .api_url(&proxy.url)
        .add_root_certificate(proxy.ca_pem.as_bytes())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert_eq!(client.get_prompt_version("greeting").label("latest").await.unwrap().version, 3);
    // A reqwest::Client configured by the application.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(proxy.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let client = scope.client().api_url(&proxy.url).http_client(http).build().unwrap();
    assert_eq!(client.get_prompt_version("greeting").await.unwrap().version, 2);

    // Settings that cannot work are configuration errors.
    let err = scope.client().add_root_certificate("not a certificate").build().unwrap_err();
    assert!(matches!(err, Error::Config(ref c) if c.variable.as_deref() == Some("add_root_certificate")), "{err:?}");
    let err =
        scope.client().http_client(reqwest::Client::new()).add_root_certificate(&proxy.ca_pem).build().unwrap_err();
    assert!(matches!(err, Error::Config(ref c) if c.variable.as_deref() == Some("http_client")), "{err:?}");
}
