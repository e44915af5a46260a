//! The test harness: a real `scope serve` process on an ephemeral port over a
//! database of its own, plus small HTTP helpers.
//!
//! Every test starts its own server (start-up takes a fraction of a second)
//! on its own database, so tests share nothing and run in parallel. The
//! server's stderr (its log) and stdout are captured in the background for
//! the log-leak tests.
//!
//! The backend is chosen by `SCOPE_TEST_DATABASE`: `sqlite` (the default) is
//! a temporary SQLite file per test; `postgres` is a fresh database per test
//! on the PostgreSQL cluster of `scope_testkit::pg::PgCluster::shared()` (the
//! server named by `SCOPE_TEST_PG_URL`, else a throwaway cluster started for
//! the test process).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use scope_testkit::pg::PgCluster;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// The binary under test.
pub const SCOPE: &str = env!("CARGO_BIN_EXE_scope");

/// The SPEC §2 secret shape: `^secret_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}$`.
pub fn is_secret_shaped(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("secret_") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 43 + 1 + 6
        && b[..43].iter().all(u8::is_ascii_alphanumeric)
        && b[43] == b'_'
        && b[44..].iter().all(u8::is_ascii_alphanumeric)
}

/// What `scope init` / `scope org create --json` print (SPEC §8).
#[derive(Debug, Clone)]
pub struct OrgCreds {
    pub org_id: String,
    pub admin_email: String,
    pub admin_password: String,
    pub key_id: String,
    pub secret: String,
}

impl OrgCreds {
    fn from_json(v: &Value) -> Self {
        let s = |x: &Value, what: &str| -> String {
            x.as_str().unwrap_or_else(|| panic!("missing string field {what} in {v}")).to_owned()
        };
        Self {
            org_id: s(&v["org_id"], "org_id"),
            admin_email: s(&v["admin_email"], "admin_email"),
            admin_password: s(&v["admin_password"], "admin_password"),
            key_id: s(&v["api_key"]["key_id"], "api_key.key_id"),
            secret: s(&v["api_key"]["secret"], "api_key.secret"),
        }
    }
}

/// The database backend the servers of this test run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `SCOPE_TEST_DATABASE`: `sqlite` (default, also when unset or empty)
    /// or `postgres`; anything else fails the test rather than silently
    /// testing the default.
    pub fn current() -> Backend {
        static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();
        let chosen = BACKEND.get_or_init(|| match std::env::var("SCOPE_TEST_DATABASE") {
            Err(std::env::VarError::NotPresent) => Ok(Backend::Sqlite),
            Ok(v) => match v.trim() {
                "" | "sqlite" => Ok(Backend::Sqlite),
                "postgres" | "postgresql" => Ok(Backend::Postgres),
                other => Err(format!("SCOPE_TEST_DATABASE={other:?}: expected `sqlite` or `postgres`")),
            },
            Err(e) => Err(format!("SCOPE_TEST_DATABASE: {e}")),
        });
        match chosen {
            Ok(b) => *b,
            Err(e) => panic!("{e}"),
        }
    }

    /// The name the server reports for it (`Store::backend`, the
    /// `backend` label of `scope_build_info`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database of one test, shared by the servers started on it
/// (`same_database_as`): a temporary SQLite file, or a fresh PostgreSQL
/// database (dropped again when the last server and CLI run are done).
pub struct DataDir {
    /// The SQLite file's directory (unused, but harmless, on PostgreSQL).
    dir: tempfile::TempDir,
    pub db_url: String,
    pub backend: Backend,
    /// Whether the PostgreSQL database was created here (and so is dropped
    /// here), rather than given by the test.
    owned: bool,
}

impl DataDir {
    /// A new, empty database on `backend`.
    fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("scope.db").display()),
            Backend::Postgres => PgCluster::shared().fresh_database(),
        };
        Self { dir, db_url, backend, owned: true }
    }

    /// A database the test provides (say, on a PostgreSQL cluster of its
    /// own), used as it is and never dropped here.
    fn given(db_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = if db_url.starts_with("postgres://") || db_url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        Self { dir, db_url: db_url.to_owned(), backend, owned: false }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("scope.db")
    }

    /// Everything the database holds, as bytes, for tests that check what is
    /// (never) stored.
    ///
    /// SQLite: the database file and its WAL (and shared-memory index and
    /// journal), raw. PostgreSQL: `pg_dump --data-only` of the database
    /// (every row of every table, as text), followed by the decoded bytes of
    /// every `\x…` hex literal in it, so that text kept in a `bytea` column
    /// shows as itself as it would in the SQLite file.
    pub fn database_bytes(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut out = Vec::new();
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let p = PathBuf::from(format!("{}{suffix}", self.sqlite_path().display()));
                    if let Ok(b) = std::fs::read(&p) {
                        out.extend_from_slice(&b);
                    }
                }
                out
            }
            Backend::Postgres => {
                let out = Command::new(pg_program("pg_dump"))
                    .args(["--data-only", "--no-owner", "--no-privileges", "--dbname"])
                    .arg(&self.db_url)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run pg_dump");
                assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
                let mut bytes = out.stdout;
                let decoded = decode_hex_literals(&bytes);
                bytes.push(b'\n');
                bytes.extend_from_slice(&decoded);
                bytes
            }
        }
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres || !self.owned {
            return;
        }
        // Best effort and silent (this may run while a failed test unwinds):
        // the databases of a run would otherwise pile up on a long-lived
        // server named by SCOPE_TEST_PG_URL.
        let Some((server, name)) = self.db_url.rsplit_once('/') else { return };
        let _ = Command::new(pg_program("psql"))
            .args(["-X", "-q", "-d", &format!("{server}/postgres"), "-c"])
            .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A PostgreSQL client program: from `SCOPE_TEST_PG_BIN` when set (as the
/// test kit does), else from the highest `/usr/lib/postgresql/<version>/bin`
/// (`pg_dump` must not be older than the server), else from `PATH`.
fn pg_program(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SCOPE_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join(name);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let program = e.path().join("bin").join(name);
            program.is_file().then_some((version, program))
        })
        .collect();
    found.sort();
    found.pop().map_or_else(|| PathBuf::from(name), |(_, p)| p)
}

/// The bytes written as `\x` + hex digits (how `pg_dump` prints `bytea`),
/// decoded and concatenated, one literal per line.
fn decode_hex_literals(text: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < text.len() {
        if text[i] == b'\\' && text[i + 1] == b'x' {
            let start = i + 2;
            let mut end = start;
            while end < text.len() && hex(text[end]).is_some() {
                end += 1;
            }
            let digits = &text[start..start + (end - start) / 2 * 2];
            if !digits.is_empty() {
                out.extend(digits.chunks(2).filter_map(|p| Some((hex(p[0])? << 4) | hex(p[1])?)));
                out.push(b'\n');
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// A `Command` for the binary with no `SCOPE_*` variables inherited from
/// whoever runs the tests.
fn scope_command() -> Command {
    let mut c = Command::new(SCOPE);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCOPE_") {
            c.env_remove(&k);
        }
    }
    c.env("NO_COLOR", "1");
    c
}

/// Runs `scope --database URL ARGS...` to completion.
pub fn run_scope(db_url: &str, args: &[&str]) -> Output {
    scope_command().arg("--database").arg(db_url).args(args).output().expect("run scope")
}

/// Runs a CLI command that must succeed and print JSON.
pub fn run_scope_json(db_url: &str, args: &[&str]) -> Value {
    let out = run_scope(db_url, args);
    assert!(
        out.status.success(),
        "scope {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scope {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub struct ServerBuilder {
    envs: Vec<(String, String)>,
    shared: Option<(Arc<DataDir>, OrgCreds)>,
    /// Where a new database goes; `SCOPE_TEST_DATABASE` by default.
    backend: Option<Backend>,
    /// A database the test made itself.
    database_url: Option<String>,
}

impl ServerBuilder {
    /// An environment variable for the server process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_owned(), v.to_owned()));
        self
    }

    /// A new database on `backend` whatever `SCOPE_TEST_DATABASE` says, for
    /// tests about one backend in particular.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Serve (and `scope init`) the database at `url`, which the test made
    /// and still owns.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Serve a database that already holds `org` (say, one filled by
    /// `scope import`), without `scope init`.
    pub fn existing_database(mut self, url: &str, org: OrgCreds) -> Self {
        self.shared = Some((Arc::new(DataDir::given(url)), org));
        self
    }

    /// Serve the same database as `other` (a second replica).
    pub fn same_database_as(mut self, other: &TestServer) -> Self {
        self.shared = Some((other.data.clone(), other.org.clone()));
        self
    }

    pub async fn start(self) -> TestServer {
        // Process start-up is blocking work; keep it off the test's runtime.
        tokio::task::spawn_blocking(move || self.start_blocking()).await.expect("server start task")
    }

    fn start_blocking(self) -> TestServer {
        let (data, org) = match self.shared {
            Some(s) => s,
            None => {
                let data = Arc::new(match &self.database_url {
                    Some(url) => DataDir::given(url),
                    None => DataDir::new(self.backend.unwrap_or_else(Backend::current)),
                });
                let v = run_scope_json(
                    &data.db_url,
                    &["init", "--org-name", "Acme", "--admin-email", "admin@acme.test", "--json"],
                );
                let org = OrgCreds::from_json(&v);
                (data, org)
            }
        };
        let mut cmd = scope_command();
        cmd.arg("--database").arg(&data.db_url).args(["serve", "--listen", "127.0.0.1:0"]);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn scope serve");

        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let stdout_buf = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr_buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("log lock").extend_from_slice(&chunk[..n]);
            }
        });
        let out = child.stdout.take().expect("stdout");
        let sink = stdout_buf.clone();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = String::new();
            let mut tx = Some(tx);
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                sink.lock().expect("stdout lock").extend_from_slice(line.as_bytes());
                if let Some(addr) = line.trim().strip_prefix("Scope listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "server did not report its address; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&stdout_buf.lock().expect("lock")),
                    String::from_utf8_lossy(&stderr_buf.lock().expect("lock"))
                );
            }
        };
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected listen line: {base}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        TestServer { base, data, org, http, child, stderr: stderr_buf, stdout: stdout_buf }
    }
}

pub struct TestServer {
    /// `http://127.0.0.1:PORT`, also the JWT issuer.
    pub base: String,
    pub data: Arc<DataDir>,
    /// The organization created by `scope init`.
    pub org: OrgCreds,
    pub http: reqwest::Client,
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestServer {
    /// Sends SIGTERM (what an orchestrator sends) without waiting.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit; its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A created API key with its one-time secret.
#[derive(Debug, Clone)]
pub struct Key {
    pub key_id: String,
    pub secret: String,
    pub org_id: String,
    /// The full create response.
    pub json: Value,
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder { envs: Vec::new(), shared: None, backend: None, database_url: None }
    }

    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn db_url(&self) -> &str {
        &self.data.db_url
    }

    pub fn backend(&self) -> Backend {
        self.data.backend
    }

    /// Everything the server wrote to stderr (its log) and stdout so far.
    pub fn captured_output(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stdout.lock().expect("lock")));
        s
    }

    /// A client without a token.
    pub fn anon(&self) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), token: None }
    }

    pub fn api(&self, token: &str) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), token: Some(token.to_owned()) }
    }

    /// `POST /v1/auth/sdk-token`.
    pub async fn exchange(&self, org_id: &str, key_id: &str, secret: &str) -> Resp {
        self.anon()
            .post("/v1/auth/sdk-token", json!({"account_id": org_id, "key_id": key_id, "key_secret": secret}))
            .await
    }

    /// Exchanges a key that must be accepted; returns the access token.
    pub async fn token(&self, org_id: &str, key_id: &str, secret: &str) -> String {
        let r = self.exchange(org_id, key_id, secret).await;
        r.assert_status(200);
        r.json()["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn token_for(&self, key: &Key) -> String {
        self.token(&key.org_id, &key.key_id, &key.secret).await
    }

    pub async fn login(&self, org: &OrgCreds) -> Api {
        let t = self.token(&org.org_id, &org.key_id, &org.secret).await;
        self.api(&t)
    }

    /// A client holding a token of the initial admin key.
    pub async fn admin(&self) -> Api {
        self.login(&self.org.clone()).await
    }

    /// Creates a key with `role` through the API (as `admin`).
    pub async fn create_key(&self, admin: &Api, name: &str, role: &str) -> Key {
        let r = admin.post("/api/v1/api-keys", json!({"name": name, "role": role})).await;
        r.assert_status(201);
        let v = r.json();
        Key {
            key_id: v["key_id"].as_str().expect("key_id").to_owned(),
            secret: v["secret"].as_str().expect("secret").to_owned(),
            org_id: v["org_id"].as_str().expect("org_id").to_owned(),
            json: v,
        }
    }

    /// A client with a fresh key of `role`.
    pub async fn client_with_role(&self, admin: &Api, role: &str) -> (Api, Key) {
        let key = self.create_key(admin, &format!("{role} key"), role).await;
        let t = self.token_for(&key).await;
        (self.api(&t), key)
    }

    /// Another tenant, created with `scope org create` on the same database
    /// while the server runs.
    pub async fn create_org(&self, name: &str, email: &str) -> OrgCreds {
        let db = self.db_url().to_owned();
        let (name, email) = (name.to_owned(), email.to_owned());
        let v = tokio::task::spawn_blocking(move || {
            run_scope_json(&db, &["org", "create", "--name", &name, "--admin-email", &email, "--json"])
        })
        .await
        .expect("org create task");
        OrgCreds::from_json(&v)
    }

    /// Runs a CLI command against this server's database.
    pub async fn cli(&self, args: &[&str]) -> Output {
        let db = self.db_url().to_owned();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_scope(&db, &refs)
        })
        .await
        .expect("cli task")
    }

    pub async fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args).await;
        assert!(
            out.status.success(),
            "scope {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("scope {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    pub async fn jwks(&self) -> Value {
        let r = self.anon().get("/.well-known/jwks.json").await;
        r.assert_status(200);
        r.json()
    }
}

/// An HTTP client bound to one server, optionally with a bearer token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("client has a token")
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::from(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        Resp::from(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str) -> Resp {
        Resp::from(self.request(reqwest::Method::POST, path)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        Resp::from(self.request(reqwest::Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        Resp::from(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Creates a prompt (must succeed); returns the create response.
    pub async fn create_prompt(&self, name: &str, content: &str) -> Value {
        let r = self.post("/api/v1/prompts", json!({"name": name, "content": content})).await;
        r.assert_status(201);
        r.json()
    }

    /// Creates a new draft version (must succeed).
    pub async fn create_version(&self, prompt: &str, content: &str) -> Value {
        let r = self.post(&format!("/api/v1/prompts/{prompt}/versions"), json!({"content": content})).await;
        r.assert_status(201);
        r.json()
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub async fn from(rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("HTTP request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.expect("response body");
        Resp { status, headers, body }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}); status {}: {}", self.status, self.body))
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    /// Asserts a SPEC §5 error body with `code` (flat and nested).
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        let v = self.json();
        assert_eq!(v["code"], code, "flat code in {}", self.body);
        assert_eq!(v["error"]["code"], code, "nested code in {}", self.body);
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "flat message in {}", self.body);
        assert_eq!(v["message"], v["error"]["message"], "nested message differs in {}", self.body);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The decoded parts of a compact JWS.
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    pub parts: [String; 3],
}

pub fn decode_jwt(token: &str) -> Jwt {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {}", parts.len());
    let dec =
        |s: &str| -> Value { serde_json::from_slice(&B64URL.decode(s).expect("base64url part")).expect("JSON part") };
    Jwt {
        header: dec(parts[0]),
        claims: dec(parts[1]),
        parts: [parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned()],
    }
}

pub fn b64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    B64URL.decode(s).expect("base64url")
}

/// Polls `f` until it returns true or `limit` passes; returns the elapsed time
/// when it did.
pub async fn wait_until<F, Fut>(limit: Duration, step: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(step).await;
    }
}

/// Replaces the last character of a prefixed ULID with another valid one:
/// a well-formed id that names nothing.
pub fn sibling_id(id: &str) -> String {
    let mut s = id.to_owned();
    let last = s.pop().expect("non-empty id");
    s.push(if last == '0' { '1' } else { '0' });
    s
}
