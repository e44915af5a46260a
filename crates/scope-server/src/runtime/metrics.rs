//! Process-wide metrics in the Prometheus text format (`GET /metrics`, see
//! `docs/METRICS.md`): the recorder, handles registered once for the hot
//! paths, and [`MeteredStore`], which times every store call.
//!
//! One recorder per process. A global recorder can be installed only once,
//! and the server's own tests run several [`App`](crate::service::App)s in one
//! process, so the recorder lives in a `OnceLock`, is installed as the global
//! `metrics` recorder the first time it is needed (so `metrics::counter!` and
//! friends work anywhere in the process), and every app reports into it and
//! renders it. What is read from one app at scrape time (pool use, backend,
//! revoked keys) is set by the app being scraped: in production there is one
//! app per process, so that is exact.
//!
//! The hot paths never build a metric key: request series are looked up by
//! route template in a small read-locked map (one entry per route, method and
//! status, created on first use), and cache, exchange and query handles are
//! registered once. Label values are the route *template*, a method from a
//! fixed list, a status code or a fixed word — never an id, email, key id,
//! token or prompt name, so cardinality is bounded by the router.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::Method;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parking_lot::RwLock;
use scope_domain::{KeyId, OrgId, PromptId, Role, UserId, VersionId};
use scope_store::{
    ApiKeyRow, AuditQuery, AuditRow, Change, DraftPatch, InvitationRow, KeyGateRow, KeyListQuery, KeyUsageDelta,
    NewVersion, OrgRow, PageQuery, PoolStats, PromoteRequest, PromotionRow, PromptListQuery, PromptPatch, PromptRow,
    PromptSummary, SessionRow, SigningKeyRow, Snapshot, Store, StoreResult, UsageDay, UserRow, VersionListQuery,
    VersionRow,
};

use crate::error::AppError;

pub const HTTP_REQUESTS: &str = "scope_http_requests_total";
pub const HTTP_DURATION: &str = "scope_http_request_duration_seconds";
pub const TOKEN_EXCHANGES: &str = "scope_token_exchanges_total";
pub const CACHE_REQUESTS: &str = "scope_cache_requests_total";
pub const REVOCATION_PROPAGATION: &str = "scope_revocation_propagation_seconds";
pub const REVOKED_KEYS: &str = "scope_revoked_keys";
pub const PROMPT_CACHE_ENTRIES: &str = "scope_prompt_cache_entries";
pub const PROMPT_CACHE_BYTES: &str = "scope_prompt_cache_bytes";
pub const DB_POOL_CONNECTIONS: &str = "scope_db_pool_connections";
pub const DB_POOL_MAX: &str = "scope_db_pool_max_connections";
pub const DB_QUERY_DURATION: &str = "scope_db_query_duration_seconds";
pub const BUILD_INFO: &str = "scope_build_info";

/// The `route` label of a request that matched no route (a 404 from the
/// fallback): never the raw path, which is unbounded and may carry secrets.
pub const UNMATCHED: &str = "unmatched";

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request and query latencies: 100 µs (a cached prompt fetch) to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Revocation lag: the poll interval is 250 ms, a pushed change arrives in
/// milliseconds; minutes mean a replica stopped polling.
const PROPAGATION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Methods that get their own label value; anything else is `other` (axum
/// accepts extension methods, and each would be a new series).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The `method` label of a request.
pub fn method_label(method: &Method) -> &'static str {
    METHODS.iter().find(|m| **m == method.as_str()).copied().unwrap_or("other")
}

/// The caches whose hit ratio is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Prompt = 0,
    Token = 1,
    Key = 2,
}

impl Cache {
    const ALL: [Cache; 3] = [Cache::Prompt, Cache::Token, Cache::Key];

    fn label(self) -> &'static str {
        match self {
            Cache::Prompt => "prompt",
            Cache::Token => "token",
            Cache::Key => "key",
        }
    }
}

/// How a token exchange ended, whichever endpoint it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeOutcome {
    Issued = 0,
    InvalidCredentials = 1,
    RateLimited = 2,
    BadRequest = 3,
    Error = 4,
}

impl ExchangeOutcome {
    const ALL: [ExchangeOutcome; 5] = [
        ExchangeOutcome::Issued,
        ExchangeOutcome::InvalidCredentials,
        ExchangeOutcome::RateLimited,
        ExchangeOutcome::BadRequest,
        ExchangeOutcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ExchangeOutcome::Issued => "issued",
            ExchangeOutcome::InvalidCredentials => "invalid_credentials",
            ExchangeOutcome::RateLimited => "rate_limited",
            ExchangeOutcome::BadRequest => "bad_request",
            ExchangeOutcome::Error => "error",
        }
    }

    /// Client mistakes (malformed body, wrong grant type, …) are
    /// `bad_request`; a database or signing failure is `error`.
    pub fn of<T>(result: &Result<T, AppError>) -> Self {
        match result {
            Ok(_) => ExchangeOutcome::Issued,
            Err(AppError::InvalidCredentials) => ExchangeOutcome::InvalidCredentials,
            Err(AppError::RateLimited(_)) => ExchangeOutcome::RateLimited,
            Err(AppError::Domain(_) | AppError::Unauthorized) => ExchangeOutcome::BadRequest,
            Err(AppError::Unavailable(_) | AppError::Internal(_)) => ExchangeOutcome::Error,
        }
    }
}

/// The series of one route, method and status.
struct RouteSeries {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

/// The process's metrics. Get it with [`get`].
pub struct Metrics {
    recorder: &'static PrometheusRecorder,
    handle: PrometheusHandle,
    exchanges: [Counter; 5],
    /// `[cache][miss, hit]`.
    caches: [[Counter; 2]; 3],
    revocation_propagation: Histogram,
    revoked_keys: Gauge,
    /// By route template (or [`UNMATCHED`]); a handful of entries each.
    routes: RwLock<HashMap<Box<str>, Vec<RouteSeries>>>,
}

static RECORDER: OnceLock<PrometheusRecorder> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics, set up on first use.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Counts one cache look-up.
pub fn cache_lookup(cache: Cache, hit: bool) {
    get().caches[cache as usize][usize::from(hit)].increment(1);
}

/// Counts one token exchange.
pub fn token_exchange(outcome: ExchangeOutcome) {
    get().exchanges[outcome as usize].increment(1);
}

/// Observes how long a revocation took to reach this process: `revoked_at` is
/// the revoke's time in Unix milliseconds (another host's clock: a negative
/// lag counts as zero).
pub fn revocation_seen(revoked_at_ms: i64, now_ms: i64) {
    let lag_ms = now_ms.saturating_sub(revoked_at_ms).max(0);
    get().revocation_propagation.record(lag_ms as f64 / 1000.0);
}

fn configured_builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(REVOCATION_PROPAGATION.into()), PROPAGATION_BUCKETS)
}

/// The recorder, built and installed as the global one on first use, with a
/// thread that drains histogram samples every 5 s (samples wait in memory
/// until drained; without scrapes they would pile up).
fn recorder() -> &'static PrometheusRecorder {
    let mut first = false;
    let recorder = RECORDER.get_or_init(|| {
        first = true;
        configured_builder()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "metrics buckets refused; histograms become summaries");
                PrometheusBuilder::new()
            })
            .build_recorder()
    });
    if first {
        if metrics::set_global_recorder(recorder).is_err() {
            // Our handles still work; only `metrics::` macros elsewhere report
            // to the other recorder.
            tracing::warn!("another global metrics recorder is installed; /metrics shows Scope's own metrics only");
        }
        let handle = recorder.handle();
        let upkeep = std::thread::Builder::new().name("scope-metrics".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        });
        if let Err(e) = upkeep {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms drain at scrape time only");
        }
    }
    recorder
}

fn describe(r: &PrometheusRecorder) {
    let d = |name: &'static str, unit: Option<Unit>, text: &'static str| {
        (KeyName::from_const_str(name), unit, SharedString::const_str(text))
    };
    for (name, unit, text) in [
        d(HTTP_REQUESTS, None, "HTTP requests answered, by method, route template and status."),
        d(TOKEN_EXCHANGES, None, "Token exchanges (API key to JWT) by outcome, all exchange endpoints."),
        d(CACHE_REQUESTS, None, "In-memory cache look-ups by cache and result (hit or miss)."),
    ] {
        r.describe_counter(name, unit, text);
    }
    for (name, unit, text) in [
        d(HTTP_DURATION, Some(Unit::Seconds), "Time to answer a request (until the response head), by method and route template."),
        d(DB_QUERY_DURATION, Some(Unit::Seconds), "Time of one store call, by store method."),
        d(
            REVOCATION_PROPAGATION,
            Some(Unit::Seconds),
            "Time from a key's revocation (revoked_at) to this process's revocation view learning it from the database.",
        ),
    ] {
        r.describe_histogram(name, unit, text);
    }
    for (name, unit, text) in [
        d(REVOKED_KEYS, None, "Revoked keys in this process's revocation view."),
        d(PROMPT_CACHE_ENTRIES, None, "Entries in this process's prompt cache, at scrape time."),
        d(PROMPT_CACHE_BYTES, Some(Unit::Bytes), "Bytes held by this process's prompt cache (bodies and per-entry overhead), at scrape time."),
        d(DB_POOL_CONNECTIONS, None, "Database pool connections by pool and state (idle or in_use), at scrape time."),
        d(DB_POOL_MAX, None, "Most connections each database pool opens."),
        d(BUILD_INFO, None, "Always 1; labels name the version and storage backend."),
    ] {
        r.describe_gauge(name, unit, text);
    }
}

impl Metrics {
    fn new() -> Self {
        let recorder = recorder();
        describe(recorder);
        let counter = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::from_static_parts(k, v)).collect();
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let exchanges = ExchangeOutcome::ALL.map(|o| counter(TOKEN_EXCHANGES, &[("outcome", o.label())]));
        let caches = Cache::ALL.map(|c| {
            [false, true].map(|hit| {
                counter(CACHE_REQUESTS, &[("cache", c.label()), ("result", if hit { "hit" } else { "miss" })])
            })
        });
        Self {
            recorder,
            handle: recorder.handle(),
            exchanges,
            caches,
            revocation_propagation: recorder
                .register_histogram(&Key::from_static_name(REVOCATION_PROPAGATION), &METADATA),
            revoked_keys: recorder.register_gauge(&Key::from_static_name(REVOKED_KEYS), &METADATA),
            routes: RwLock::new(HashMap::new()),
        }
    }

    /// Counts and times one answered request. `route` is the matched route
    /// template (`None`: no route matched); `method` comes from
    /// [`method_label`].
    pub fn observe_request(&self, method: &'static str, route: Option<&str>, status: u16, elapsed: Duration) {
        let route = route.unwrap_or(UNMATCHED);
        {
            let routes = self.routes.read();
            if let Some(s) =
                routes.get(route).and_then(|series| series.iter().find(|s| s.status == status && s.method == method))
            {
                s.requests.increment(1);
                s.duration.record(elapsed);
                return;
            }
        }
        let mut routes = self.routes.write();
        let series = routes.entry(route.into()).or_default();
        let s = match series.iter().position(|s| s.status == status && s.method == method) {
            Some(i) => &series[i],
            None => {
                let labels = [Label::from_static_parts("method", method), Label::new("route", route.to_owned())];
                let mut with_status = labels.to_vec();
                with_status.push(Label::new("status", status.to_string()));
                series.push(RouteSeries {
                    method,
                    status,
                    requests: self.recorder.register_counter(&Key::from_parts(HTTP_REQUESTS, with_status), &METADATA),
                    duration: self.recorder.register_histogram(&Key::from_parts(HTTP_DURATION, labels.to_vec()), &METADATA),
                });
                &series[series.len() - 1]
            }
        };
        s.requests.increment(1);
        s.duration.record(elapsed);
    }

    /// The histogram of one store method.
    fn db_query(&self, op: &'static str) -> Histogram {
        let key = Key::from_parts(DB_QUERY_DURATION, vec![Label::from_static_parts("op", op)]);
        self.recorder.register_histogram(&key, &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// Sets what is read at scrape time from the app being scraped.
    pub fn set_scrape_state(&self, backend: &'static str, pools: &[PoolStats], revoked_keys: usize) {
        let version = Label::from_static_parts("version", env!("CARGO_PKG_VERSION"));
        self.gauge(BUILD_INFO, vec![version, Label::from_static_parts("backend", backend)]).set(1.0);
        for p in pools {
            let pool = Label::from_static_parts("pool", p.pool);
            let in_use = p.size.saturating_sub(p.idle);
            self.gauge(DB_POOL_CONNECTIONS, vec![pool.clone(), Label::from_static_parts("state", "idle")])
                .set(f64::from(p.idle));
            self.gauge(DB_POOL_CONNECTIONS, vec![pool.clone(), Label::from_static_parts("state", "in_use")])
                .set(f64::from(in_use));
            self.gauge(DB_POOL_MAX, vec![pool]).set(f64::from(p.max));
        }
        self.revoked_keys.set(revoked_keys as f64);
    }

    /// Sets the prompt cache's size, read from the app being scraped.
    pub fn set_prompt_cache(&self, entries: usize, bytes: usize) {
        self.gauge(PROMPT_CACHE_ENTRIES, Vec::new()).set(entries as f64);
        self.gauge(PROMPT_CACHE_BYTES, Vec::new()).set(bytes as f64);
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Wraps a store so that every call is timed into
/// `scope_db_query_duration_seconds{op}`. Call it where the server opens its
/// store.
pub fn metered(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(MeteredStore { inner: store })
}

/// A [`Store`] that times each call of the store it wraps (`op` = the method
/// name). Every method is forwarded — also those with a default body, or the
/// wrapped backend's own version would be bypassed: a method added to the
/// trait must be added here too.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

/// Awaits a store call and records its duration. The histogram handle is
/// registered once per call site.
macro_rules! timed {
    ($op:literal, $call:expr) => {{
        static HISTOGRAM: OnceLock<Histogram> = OnceLock::new();
        let histogram = HISTOGRAM.get_or_init(|| get().db_query($op));
        let started = Instant::now();
        let out = $call.await;
        histogram.record(started.elapsed());
        out
    }};
}

#[async_trait]
impl Store for MeteredStore {
    async fn ping(&self) -> StoreResult<()> {
        timed!("ping", self.inner.ping())
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pool_stats()
    }

    async fn changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<Change>>> {
        timed!("changes", self.inner.changes())
    }

    async fn is_initialized(&self) -> StoreResult<bool> {
        timed!("is_initialized", self.inner.is_initialized())
    }

    async fn create_org(&self, org: &OrgRow, admin: &UserRow, key: &ApiKeyRow, audit: &[AuditRow]) -> StoreResult<()> {
        timed!("create_org", self.inner.create_org(org, admin, key, audit))
    }

    async fn bootstrap_org(
        &self,
        org: &OrgRow,
        admin: &UserRow,
        key: &ApiKeyRow,
        audit: &[AuditRow],
    ) -> StoreResult<bool> {
        timed!("bootstrap_org", self.inner.bootstrap_org(org, admin, key, audit))
    }

    async fn get_org(&self, org: OrgId) -> StoreResult<OrgRow> {
        timed!("get_org", self.inner.get_org(org))
    }

    async fn list_users(&self, org: OrgId, query: &PageQuery) -> StoreResult<Vec<UserRow>> {
        timed!("list_users", self.inner.list_users(org, query))
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> StoreResult<UserRow> {
        timed!("get_user", self.inner.get_user(org, user))
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
        timed!("find_user_by_email", self.inner.find_user_by_email(email))
    }

    async fn insert_user(
        &self,
        user: &UserRow,
        invitation: Option<&InvitationRow>,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        timed!("insert_user", self.inner.insert_user(user, invitation, audit))
    }

    async fn update_user_role(&self, org: OrgId, user: UserId, role: Role, audit: &AuditRow) -> StoreResult<UserRow> {
        timed!("update_user_role", self.inner.update_user_role(org, user, role, audit))
    }

    async fn delete_user(&self, org: OrgId, user: UserId, audit: &AuditRow) -> StoreResult<()> {
        timed!("delete_user", self.inner.delete_user(org, user, audit))
    }

    async fn set_user_password(
        &self,
        org: OrgId,
        user: UserId,
        password_hash: &str,
        must_change_password: bool,
        keep_session: Option<&[u8; 32]>,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        timed!(
            "set_user_password",
            self.inner.set_user_password(org, user, password_hash, must_change_password, keep_session, audit)
        )
    }

    async fn get_invitation(&self, token_digest: &[u8; 32]) -> StoreResult<Option<(InvitationRow, UserRow)>> {
        timed!("get_invitation", self.inner.get_invitation(token_digest))
    }

    async fn accept_invitation(
        &self,
        token_digest: &[u8; 32],
        password_hash: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<UserRow> {
        timed!("accept_invitation", self.inner.accept_invitation(token_digest, password_hash, now_ms, audit))
    }

    async fn create_session(&self, session: &SessionRow, audit: &AuditRow) -> StoreResult<()> {
        timed!("create_session", self.inner.create_session(session, audit))
    }

    async fn get_session(&self, session_digest: &[u8; 32]) -> StoreResult<Option<(SessionRow, UserRow)>> {
        timed!("get_session", self.inner.get_session(session_digest))
    }

    async fn touch_session(&self, session_digest: &[u8; 32], now_ms: i64) -> StoreResult<()> {
        timed!("touch_session", self.inner.touch_session(session_digest, now_ms))
    }

    async fn delete_session(&self, session_digest: &[u8; 32], audit: Option<&AuditRow>) -> StoreResult<()> {
        timed!("delete_session", self.inner.delete_session(session_digest, audit))
    }

    async fn prune_sessions(&self, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64> {
        timed!("prune_sessions", self.inner.prune_sessions(now_ms, idle_before_ms))
    }

    async fn insert_audit(&self, audit: &AuditRow) -> StoreResult<()> {
        timed!("insert_audit", self.inner.insert_audit(audit))
    }

    async fn insert_api_key(&self, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()> {
        timed!("insert_api_key", self.inner.insert_api_key(key, audit))
    }

    async fn get_api_key(&self, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow> {
        timed!("get_api_key", self.inner.get_api_key(org, key))
    }

    async fn find_api_key(&self, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
        timed!("find_api_key", self.inner.find_api_key(key))
    }

    async fn list_api_keys(&self, org: OrgId, query: &KeyListQuery) -> StoreResult<Vec<ApiKeyRow>> {
        timed!("list_api_keys", self.inner.list_api_keys(org, query))
    }

    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: KeyId,
        by: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        timed!("revoke_api_key", self.inner.revoke_api_key(org, key, by, now_ms, audit))
    }

    async fn rotate_api_key(
        &self,
        org: OrgId,
        old: KeyId,
        old_expires_at: i64,
        successor: &ApiKeyRow,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        timed!("rotate_api_key", self.inner.rotate_api_key(org, old, old_expires_at, successor, audit))
    }

    async fn record_key_usage(&self, usage: &[KeyUsageDelta]) -> StoreResult<()> {
        timed!("record_key_usage", self.inner.record_key_usage(usage))
    }

    async fn key_usage(&self, org: OrgId, key: KeyId, since_day: &str) -> StoreResult<Vec<UsageDay>> {
        timed!("key_usage", self.inner.key_usage(org, key, since_day))
    }

    async fn prune_key_usage(&self, before_day: &str) -> StoreResult<u64> {
        timed!("prune_key_usage", self.inner.prune_key_usage(before_day))
    }

    async fn key_gate_changes(&self, after_seq: i64) -> StoreResult<Vec<KeyGateRow>> {
        timed!("key_gate_changes", self.inner.key_gate_changes(after_seq))
    }

    async fn create_prompt(&self, prompt: &PromptRow, v1: &VersionRow, audit: &AuditRow) -> StoreResult<()> {
        timed!("create_prompt", self.inner.create_prompt(prompt, v1, audit))
    }

    async fn get_prompt(&self, org: OrgId, name_or_id: &str) -> StoreResult<PromptSummary> {
        timed!("get_prompt", self.inner.get_prompt(org, name_or_id))
    }

    async fn list_prompts(&self, org: OrgId, query: &PromptListQuery) -> StoreResult<Vec<PromptSummary>> {
        timed!("list_prompts", self.inner.list_prompts(org, query))
    }

    async fn update_prompt(
        &self,
        org: OrgId,
        prompt: PromptId,
        patch: &PromptPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        timed!("update_prompt", self.inner.update_prompt(org, prompt, patch, now_ms, audit))
    }

    async fn delete_prompt(&self, org: OrgId, prompt: PromptId, audit: &AuditRow) -> StoreResult<()> {
        timed!("delete_prompt", self.inner.delete_prompt(org, prompt, audit))
    }

    async fn create_version(
        &self,
        org: OrgId,
        prompt: PromptId,
        new: &NewVersion,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        timed!("create_version", self.inner.create_version(org, prompt, new, audit))
    }

    async fn get_version(&self, org: OrgId, prompt: PromptId, version: VersionId) -> StoreResult<VersionRow> {
        timed!("get_version", self.inner.get_version(org, prompt, version))
    }

    async fn production_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        timed!("production_version", self.inner.production_version(org, prompt))
    }

    async fn latest_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        timed!("latest_version", self.inner.latest_version(org, prompt))
    }

    async fn list_versions(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &VersionListQuery,
    ) -> StoreResult<Vec<VersionRow>> {
        timed!("list_versions", self.inner.list_versions(org, prompt, query))
    }

    async fn update_draft(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        patch: &DraftPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        timed!("update_draft", self.inner.update_draft(org, prompt, version, patch, now_ms, audit))
    }

    async fn promote(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        req: &PromoteRequest,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        timed!("promote", self.inner.promote(org, prompt, version, req, audit))
    }

    async fn set_archived(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        to_archived: bool,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        timed!("set_archived", self.inner.set_archived(org, prompt, version, to_archived, now_ms, audit))
    }

    async fn list_promotions(&self, org: OrgId, prompt: PromptId, query: &PageQuery) -> StoreResult<Vec<PromotionRow>> {
        timed!("list_promotions", self.inner.list_promotions(org, prompt, query))
    }

    async fn list_labels(&self, org: OrgId, prompt: PromptId) -> StoreResult<Vec<scope_store::LabelRow>> {
        timed!("list_labels", self.inner.list_labels(org, prompt))
    }

    async fn move_label(
        &self,
        org: OrgId,
        prompt: PromptId,
        req: &scope_store::MoveLabelRequest,
        audit: &AuditRow,
    ) -> StoreResult<Option<VersionRow>> {
        timed!("move_label", self.inner.move_label(org, prompt, req, audit))
    }

    async fn list_label_moves(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &scope_store::LabelMoveQuery,
    ) -> StoreResult<Vec<scope_store::LabelMoveRow>> {
        timed!("list_label_moves", self.inner.list_label_moves(org, prompt, query))
    }

    async fn protected_labels(&self, org: OrgId) -> StoreResult<Vec<String>> {
        timed!("protected_labels", self.inner.protected_labels(org))
    }

    async fn set_protected_labels(&self, org: OrgId, labels: &[String], audit: &AuditRow) -> StoreResult<()> {
        timed!("set_protected_labels", self.inner.set_protected_labels(org, labels, audit))
    }

    async fn list_audiences(&self, org: OrgId) -> StoreResult<Vec<String>> {
        timed!("list_audiences", self.inner.list_audiences(org))
    }

    async fn set_audiences(&self, org: OrgId, audiences: &[String], audit: &AuditRow) -> StoreResult<()> {
        timed!("set_audiences", self.inner.set_audiences(org, audiences, audit))
    }

    async fn list_events(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<scope_store::EventRow>> {
        timed!("list_events", self.inner.list_events(org, after_seq, limit))
    }

    async fn event_feed(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<scope_store::EventRow>> {
        timed!("event_feed", self.inner.event_feed(after_seq, limit))
    }

    async fn event_bounds(&self) -> StoreResult<scope_store::EventBounds> {
        timed!("event_bounds", self.inner.event_bounds())
    }

    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        timed!("prune_events", self.inner.prune_events(before_ms))
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        timed!("list_signing_keys", self.inner.list_signing_keys())
    }

    async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()> {
        timed!("insert_signing_key", self.inner.insert_signing_key(row))
    }

    async fn delete_signing_keys_retired_before(&self, before_ms: i64) -> StoreResult<u64> {
        timed!("delete_signing_keys_retired_before", self.inner.delete_signing_keys_retired_before(before_ms))
    }

    async fn seal_signing_key(&self, kid: &str, sealed: &[u8]) -> StoreResult<bool> {
        timed!("seal_signing_key", self.inner.seal_signing_key(kid, sealed))
    }

    async fn count_prompts(&self, org: OrgId) -> StoreResult<u64> {
        timed!("count_prompts", self.inner.count_prompts(org))
    }

    async fn count_active_api_keys(&self, org: OrgId, now_ms: i64) -> StoreResult<u64> {
        timed!("count_active_api_keys", self.inner.count_active_api_keys(org, now_ms))
    }

    async fn list_audit(&self, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        timed!("list_audit", self.inner.list_audit(org, query))
    }

    async fn export(&self) -> StoreResult<Snapshot> {
        timed!("export", self.inner.export())
    }

    async fn import(&self, snapshot: &Snapshot) -> StoreResult<()> {
        timed!("import", self.inner.import(snapshot))
    }

    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()> {
        timed!("import_api_keys", self.inner.import_api_keys(keys))
    }

    async fn revoke_token(&self, token: &scope_store::RevokedTokenRow, audit: &AuditRow) -> StoreResult<bool> {
        timed!("revoke_token", self.inner.revoke_token(token, audit))
    }

    async fn revoked_token_changes(&self, after_seq: i64, now_ms: i64) -> StoreResult<Vec<scope_store::RevokedTokenRow>> {
        timed!("revoked_token_changes", self.inner.revoked_token_changes(after_seq, now_ms))
    }

    async fn prune_revoked_tokens(&self, before_ms: i64) -> StoreResult<u64> {
        timed!("prune_revoked_tokens", self.inner.prune_revoked_tokens(before_ms))
    }

    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
        timed!("import_prompts", self.inner.import_prompts(prompts))
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// The value of one sample line (`name{labels} value`) in `text`.
    pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    #[test]
    fn methods_outside_the_list_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }

    #[test]
    fn exchange_outcomes_by_error() {
        let ok: Result<(), AppError> = Ok(());
        assert_eq!(ExchangeOutcome::of(&ok), ExchangeOutcome::Issued);
        let e = |e: AppError| ExchangeOutcome::of(&Err::<(), _>(e));
        assert_eq!(e(AppError::InvalidCredentials), ExchangeOutcome::InvalidCredentials);
        assert_eq!(e(AppError::RateLimited(3)), ExchangeOutcome::RateLimited);
        assert_eq!(e(scope_domain::DomainError::bad_request("x").into()), ExchangeOutcome::BadRequest);
        assert_eq!(e(AppError::Unavailable("down".into())), ExchangeOutcome::Error);
        assert_eq!(e(AppError::Internal("x".into())), ExchangeOutcome::Error);
    }

    #[test]
    fn request_series_are_counted_per_route_method_and_status() {
        let m = get();
        let route = "/metrics-unit/{widget}";
        for _ in 0..3 {
            m.observe_request("GET", Some(route), 200, Duration::from_micros(300));
        }
        m.observe_request("GET", Some(route), 404, Duration::from_millis(2));
        let text = m.render();
        let ok = format!("{HTTP_REQUESTS}{{method=\"GET\",route=\"{route}\",status=\"200\"}}");
        let nf = format!("{HTTP_REQUESTS}{{method=\"GET\",route=\"{route}\",status=\"404\"}}");
        assert_eq!(sample(&text, &ok), Some(3.0), "{text}");
        assert_eq!(sample(&text, &nf), Some(1.0), "{text}");
        let count = format!("{HTTP_DURATION}_count{{method=\"GET\",route=\"{route}\"}}");
        assert_eq!(sample(&text, &count), Some(4.0), "{text}");
        let bucket = format!("{HTTP_DURATION}_bucket{{method=\"GET\",route=\"{route}\",le=\"0.0005\"}}");
        assert_eq!(sample(&text, &bucket), Some(3.0), "{text}");
    }

    #[tokio::test]
    async fn the_metered_store_times_each_call_by_method() {
        let store = metered(scope_store::open("sqlite::memory:").await.unwrap_or_else(|e| panic!("store: {e}")));
        assert_eq!(store.backend(), "sqlite");
        store.ping().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!store.is_initialized().await.unwrap_or_else(|e| panic!("{e}")));
        let text = get().render();
        let ping = format!("{DB_QUERY_DURATION}_count{{op=\"ping\"}}");
        assert!(sample(&text, &ping).is_some_and(|n| n >= 1.0), "{text}");
        let init = format!("{DB_QUERY_DURATION}_count{{op=\"is_initialized\"}}");
        assert!(sample(&text, &init).is_some_and(|n| n >= 1.0), "{text}");
    }

    #[test]
    fn scrape_state_sets_pool_and_build_gauges() {
        let m = get();
        let pools = [PoolStats { pool: "unit-test", size: 5, idle: 2, max: 8 }];
        m.set_scrape_state("sqlite", &pools, 0);
        let text = m.render();
        let s = |series: &str| sample(&text, series);
        assert_eq!(s(&format!("{DB_POOL_CONNECTIONS}{{pool=\"unit-test\",state=\"idle\"}}")), Some(2.0), "{text}");
        assert_eq!(s(&format!("{DB_POOL_CONNECTIONS}{{pool=\"unit-test\",state=\"in_use\"}}")), Some(3.0), "{text}");
        assert_eq!(s(&format!("{DB_POOL_MAX}{{pool=\"unit-test\"}}")), Some(8.0), "{text}");
        let build = format!("{BUILD_INFO}{{version=\"{}\",backend=\"sqlite\"}}", env!("CARGO_PKG_VERSION"));
        assert_eq!(s(&build), Some(1.0), "{text}");
        assert!(text.contains(&format!("# TYPE {HTTP_DURATION} histogram")) || !text.contains(HTTP_DURATION));
    }
}
