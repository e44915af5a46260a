//! The async client, its builder and the `get_prompt_version` request.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use tracing::Instrument;

use crate::cache::{no_watch, with_key, PromptCache, Ticket};
use crate::config::{
    check_environment, lookup_nonblank, parse_base_url, parse_seconds, process_env, ClientCredentials, DEFAULT_API_URL,
    ENV_API_URL, ENV_AUTH_API_URL, ENV_ENVIRONMENT, ENV_TOKEN_REFRESH_BUFFER,
};
use crate::error::{ApiError, ConfigError, Error};
use crate::hooks::{ErrorEvent, Hooks, RequestEvent, ResponseEvent};
use crate::prompt::{cache_key, PromptVersion, Selector, LABEL_LATEST, LABEL_PRODUCTION};
use crate::retry::RetryPolicy;
use crate::token::TokenManager;
use crate::transport::{Reply, Request, Target, Transport};
use crate::watch::{
    Watch, WatchConfig, WatchState, DEFAULT_WATCH_BACKOFF, DEFAULT_WATCH_BACKOFF_MAX, DEFAULT_WATCH_IDLE_TIMEOUT,
    DEFAULT_WATCH_MAX_AGE,
};

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("scope-client-rust/", env!("CARGO_PKG_VERSION"));

/// Default total time for one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a fetched version is served from the cache.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default time before a token's expiry at which it is refreshed.
pub const DEFAULT_TOKEN_REFRESH_BUFFER: Duration = Duration::from_secs(60);
/// Default upper bound on cached versions.
pub const DEFAULT_CACHE_MAX_ENTRIES: usize = 10_000;
/// With background refresh on, a cache hit older than this fraction of the
/// TTL starts a refresh.
pub const DEFAULT_REFRESH_AHEAD: f64 = 0.8;
/// Default longest response body read (8 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A setting and where it came from (an environment variable or a builder
/// option), so that errors name the right thing.
#[derive(Debug, Clone)]
struct Setting {
    value: String,
    source: &'static str,
}

/// Builds a [`Client`]. Every option, with its defaults:
///
/// | option | default |
/// |---|---|
/// | `api_url` (`SCOPE_API_URL`) | `http://localhost:8080` |
/// | `auth_api_url` (`SCOPE_AUTH_API_URL`) | the API URL |
/// | `environment` (`SCOPE_ENVIRONMENT`) | none (no `X-Scope-Environment`) |
/// | `token_refresh_buffer` (`SCOPE_TOKEN_REFRESH_BUFFER`) | 60 s |
/// | `timeout` / `connect_timeout` | 30 s / 10 s |
/// | `cache` / `cache_ttl` | on / 300 s |
/// | `max_retries`, `retry_base_delay`, `retry_max_delay` | 3, 0.5 s, 30 s |
/// | `stale_if_error` | off |
/// | `background_refresh` | off |
/// | `watch` (and `watch_max_age`, `watch_idle_timeout`, `watch_backoff`) | off (1 h, 45 s, 1 s to 30 s) |
/// | `max_response_bytes` | 8 MiB |
///
/// Redirects are never followed (a `3xx` is an error naming the new
/// address), so that neither the API secret nor a token is ever sent to
/// another address; and building a client whose URLs send credentials over
/// plain `http://` to a host other than the loopback logs a warning.
#[derive(Clone)]
pub struct ClientBuilder {
    credentials: Option<ClientCredentials>,
    api_url: Option<Setting>,
    auth_api_url: Option<Setting>,
    environment: Option<Setting>,
    token_refresh_buffer: Duration,
    timeout: Duration,
    connect_timeout: Duration,
    cache_enabled: bool,
    cache_ttl: Duration,
    cache_max_entries: usize,
    retry: RetryPolicy,
    hooks: Hooks,
    stale_if_error: Option<Duration>,
    refresh_ahead: Option<f64>,
    /// PEM text of extra trusted root certificates.
    root_certificates: Vec<Vec<u8>>,
    built_in_roots: bool,
    http_client: Option<reqwest::Client>,
    watch: bool,
    watch_config: WatchConfig,
    max_response_bytes: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// All defaults and no credentials (set them with
    /// [`credentials`](Self::credentials)).
    pub fn new() -> Self {
        Self {
            credentials: None,
            api_url: None,
            auth_api_url: None,
            environment: None,
            token_refresh_buffer: DEFAULT_TOKEN_REFRESH_BUFFER,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            cache_enabled: true,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            retry: RetryPolicy::default(),
            hooks: Hooks::default(),
            stale_if_error: None,
            refresh_ahead: None,
            root_certificates: Vec::new(),
            built_in_roots: true,
            http_client: None,
            watch: false,
            watch_config: WatchConfig {
                max_age: DEFAULT_WATCH_MAX_AGE,
                idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
                backoff: DEFAULT_WATCH_BACKOFF,
                backoff_max: DEFAULT_WATCH_BACKOFF_MAX,
            },
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Credentials and settings from the `SCOPE_*` environment variables.
    /// Later builder calls override them.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (a map in tests, another config source in applications).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        let mut b = Self::new();
        b.credentials = Some(ClientCredentials::from_lookup(lookup)?);
        let setting = |name: &'static str| lookup_nonblank(lookup, name).map(|value| Setting { value, source: name });
        b.api_url = setting(ENV_API_URL);
        b.auth_api_url = setting(ENV_AUTH_API_URL);
        b.environment = setting(ENV_ENVIRONMENT);
        if let Some(s) = &b.api_url {
            parse_base_url(&s.value, s.source, true)?;
        }
        if let Some(s) = &b.auth_api_url {
            parse_base_url(&s.value, s.source, false)?;
        }
        if let Some(s) = &b.environment {
            check_environment(&s.value, s.source)?;
        }
        if let Some(raw) = lookup_nonblank(lookup, ENV_TOKEN_REFRESH_BUFFER) {
            b.token_refresh_buffer = parse_seconds(&raw, ENV_TOKEN_REFRESH_BUFFER)?;
        }
        Ok(b)
    }

    /// The organization id, key id and secret to authenticate with.
    pub fn credentials(mut self, credentials: ClientCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The Scope base URL; the API is at `{base}/api/v1` (a URL that already
    /// ends in `/api/v1` is accepted too).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(Setting { value: url.into(), source: "api_url" });
        self
    }

    /// The auth API base URL (token exchange at `{auth}/v1/auth/...`).
    /// Defaults to the API base URL.
    pub fn auth_api_url(mut self, url: impl Into<String>) -> Self {
        self.auth_api_url = Some(Setting { value: url.into(), source: "auth_api_url" });
        self
    }

    /// Sent as `X-Scope-Environment` on every request.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(Setting { value: environment.into(), source: "environment" });
        self
    }

    /// Refresh the token this long before it expires (clamped to half the
    /// token's lifetime).
    pub fn token_refresh_buffer(mut self, buffer: Duration) -> Self {
        self.token_refresh_buffer = buffer;
        self
    }

    /// Total time for one attempt, from connecting to the end of the body.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time to establish a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Turn the prompt cache on or off.
    pub fn cache(mut self, enabled: bool) -> Self {
        self.cache_enabled = enabled;
        self
    }

    /// How long a fetched version is served from the cache (default 300 s).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Upper bound on cached versions (oldest evicted first).
    pub fn cache_max_entries(mut self, n: usize) -> Self {
        self.cache_max_entries = n;
        self
    }

    /// Retries after the first attempt of a transiently failed request (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// Backoff before the first retry, doubling for each further one (default 0.5 s).
    pub fn retry_base_delay(mut self, d: Duration) -> Self {
        self.retry.base_delay = d;
        self
    }

    /// Upper bound of the backoff (default 30 s); a longer `Retry-After` ends the retries.
    pub fn retry_max_delay(mut self, d: Duration) -> Self {
        self.retry.max_delay = d;
        self
    }

    /// The whole retry policy at once.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Called before every attempt.
    pub fn on_request(mut self, hook: impl for<'a> Fn(&RequestEvent<'a>) + Send + Sync + 'static) -> Self {
        self.hooks.on_request = Some(Arc::new(hook));
        self
    }

    /// Called after every attempt that got a response.
    pub fn on_response(mut self, hook: impl for<'a> Fn(&ResponseEvent<'a>) + Send + Sync + 'static) -> Self {
        self.hooks.on_response = Some(Arc::new(hook));
        self
    }

    /// Called after every failed attempt.
    pub fn on_error(mut self, hook: impl for<'a> Fn(&ErrorEvent<'a>) + Send + Sync + 'static) -> Self {
        self.hooks.on_error = Some(Arc::new(hook));
        self
    }

    /// Stale-if-error: when a fetch fails for a transient reason (server
    /// unreachable, 5xx, 429, timeout), serve the last good copy if it
    /// expired less than `max_staleness` ago.
    pub fn stale_if_error(mut self, max_staleness: Duration) -> Self {
        self.stale_if_error = Some(max_staleness);
        self
    }

    /// Background refresh: a cache hit in the last 20% of its TTL returns the
    /// cached copy at once and refreshes it in the background (one refresh
    /// per key at a time), so hot prompts never wait on the network. Needs a
    /// tokio runtime (the blocking client has one).
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.refresh_ahead = enabled.then_some(DEFAULT_REFRESH_AHEAD);
        self
    }

    /// Background refresh starting once a hit is older than `fraction` of the
    /// TTL (between 0 and 1).
    pub fn background_refresh_at(mut self, fraction: f64) -> Self {
        self.refresh_ahead = Some(fraction);
        self
    }

    /// Watch for changes (off by default): the client keeps one
    /// Server-Sent Events stream to `GET /api/v1/events` (shared by its
    /// clones, authenticated with its own token) and drops the cached
    /// entries of a prompt as soon as an event says it changed, so a
    /// promotion or a label move reaches the application within about a
    /// second however long the cache TTL is.
    ///
    /// While the stream is live, an entry fetched under it is also served
    /// past its TTL, up to [`watch_max_age`](Self::watch_max_age): any change
    /// would have arrived and dropped it. While the stream is down (or has
    /// been silent longer than [`watch_idle_timeout`](Self::watch_idle_timeout)),
    /// every entry follows its TTL as without `watch`, and the client
    /// reconnects with backoff, resuming with `Last-Event-ID` so no event is
    /// missed (when the server no longer has them, it says `resync` and the
    /// whole cache is dropped).
    ///
    /// The stream starts when the client is built inside a tokio runtime,
    /// else with the first call (the blocking client starts it on its own
    /// runtime); it ends when the last clone of the client is dropped.
    /// Needs the cache. See [`Client::watch_state`].
    pub fn watch(mut self, enabled: bool) -> Self {
        self.watch = enabled;
        self
    }

    /// With [`watch`](Self::watch): the longest an entry is served past its
    /// TTL while the stream it was fetched under stays live (default 1 h).
    /// Set it to the TTL (or less) to keep plain TTL expiry and only use the
    /// stream to drop changed entries early.
    pub fn watch_max_age(mut self, max_age: Duration) -> Self {
        self.watch_config.max_age = max_age;
        self
    }

    /// With [`watch`](Self::watch): how long the stream may stay silent
    /// (the server sends a heartbeat every 15 s by default) before it counts
    /// as dead, stops covering entries and is reopened (default 45 s).
    pub fn watch_idle_timeout(mut self, timeout: Duration) -> Self {
        self.watch_config.idle_timeout = timeout;
        self
    }

    /// With [`watch`](Self::watch): the reconnection backoff, from `initial`
    /// doubling up to `max`, with jitter (default 1 s to 30 s). A
    /// `Retry-After` from the server is honoured when longer.
    pub fn watch_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.watch_config.backoff = initial;
        self.watch_config.backoff_max = max;
        self
    }

    /// The longest response body read (default 8 MiB): a longer one fails
    /// with [`Error::ResponseTooLarge`] instead of being read into memory.
    /// Also bounds one message of the event stream.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Build a [`blocking::Client`](crate::blocking::Client) with these
    /// settings.
    #[cfg(feature = "blocking")]
    pub fn build_blocking(self) -> Result<crate::blocking::Client, Error> {
        crate::blocking::Client::from_builder(self)
    }

    /// Trust the root certificate(s) in `pem` (one certificate or a bundle,
    /// PEM-encoded) for `https://` URLs, in addition to the built-in roots:
    /// what a server signed by a private certificate authority needs. May be
    /// called several times. A malformed PEM is an [`Error::Config`] from
    /// [`build`](Self::build).
    #[cfg(any(feature = "rustls-tls-webpki-roots", feature = "rustls-tls-native-roots", feature = "native-tls"))]
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Whether to trust the built-in root certificates (default `true`): the
    /// Mozilla roots compiled in with the `rustls-tls` feature, the
    /// operating system's with `rustls-tls-native-roots` or `native-tls`.
    /// With `false`, only the certificates given to
    /// [`add_root_certificate`](Self::add_root_certificate) are trusted.
    #[cfg(any(feature = "rustls-tls-webpki-roots", feature = "rustls-tls-native-roots", feature = "native-tls"))]
    pub fn tls_built_in_root_certs(mut self, enabled: bool) -> Self {
        self.built_in_roots = enabled;
        self
    }

    /// Send every request through this `reqwest::Client` (a proxy, client
    /// certificates, custom TLS, a shared connection pool…). The SDK still
    /// sets its `User-Agent`, `Accept`, `X-Request-ID` and per-attempt
    /// [`timeout`](Self::timeout) on each request; the client's own settings
    /// apply to everything else (build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: the SDK refuses an
    /// answer that came from another URL, but a client that follows a `307`
    /// has already sent the request body there; and without a total
    /// `timeout`, which would cut the [`watch`](Self::watch) stream), so [`connect_timeout`](Self::connect_timeout)
    /// and the TLS options of this builder cannot be combined with it (an
    /// [`Error::Config`] from [`build`](Self::build)).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The HTTP client: the one given, or one built from the timeouts and
    /// TLS options.
    fn http(&self) -> Result<reqwest::Client, Error> {
        if let Some(client) = &self.http_client {
            if !self.root_certificates.is_empty() || !self.built_in_roots {
                return Err(ConfigError::new(
                    "http_client",
                    "cannot be combined with add_root_certificate or tls_built_in_root_certs (configure TLS on \
                     the reqwest::Client instead)",
                )
                .into());
            }
            if self.connect_timeout != DEFAULT_CONNECT_TIMEOUT {
                return Err(ConfigError::new(
                    "http_client",
                    "cannot be combined with connect_timeout (set it on the reqwest::Client instead)",
                )
                .into());
            }
            return Ok(client.clone());
        }
        // No client-wide total timeout: every request sets its own (the
        // event stream of `watch` must be able to last). No redirects.
        let builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT);
        #[cfg(any(feature = "rustls-tls-webpki-roots", feature = "rustls-tls-native-roots", feature = "native-tls"))]
        let builder = {
            let mut builder = builder.tls_built_in_root_certs(self.built_in_roots);
            for pem in &self.root_certificates {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    ConfigError::new("add_root_certificate", format!("not a PEM certificate or bundle: {e}"))
                })?;
                if certs.is_empty() {
                    return Err(ConfigError::new("add_root_certificate", "no certificate found in the PEM text").into());
                }
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            builder
        };
        Ok(builder.build().map_err(|e| ConfigError::general(format!("cannot build the HTTP client: {e}")))?)
    }

    /// Check every setting and build the client. Nothing is sent until the first fetch.
    pub fn build(self) -> Result<Client, Error> {
        let http = self.http()?;
        let credentials = self.credentials.ok_or_else(|| {
            ConfigError::new("credentials", "not set (use ClientCredentials::new or ClientCredentials::from_env)")
        })?;
        let api = self.api_url.unwrap_or(Setting { value: DEFAULT_API_URL.to_owned(), source: ENV_API_URL });
        let base = parse_base_url(&api.value, api.source, true)?;
        let api_base = Url::parse(&format!("{}/api/v1", base.as_str().trim_end_matches('/')))
            .map_err(|e| ConfigError::new(api.source, format!("cannot build the API URL: {e}")))?;
        let auth_base = match &self.auth_api_url {
            Some(s) => parse_base_url(&s.value, s.source, false)?,
            None => base,
        };
        let environment = match &self.environment {
            Some(s) => {
                check_environment(&s.value, s.source)?;
                Some(s.value.clone())
            }
            None => None,
        };
        let env_header = match &environment {
            Some(e) => {
                Some(HeaderValue::from_str(e).map_err(|_| ConfigError::new("environment", "invalid header value"))?)
            }
            None => None,
        };
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero").into());
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new("connect_timeout", "must be greater than zero").into());
        }
        if let Some(f) = self.refresh_ahead {
            if !(f > 0.0 && f < 1.0) {
                return Err(ConfigError::new("background_refresh_at", "must be between 0 and 1").into());
            }
        }
        if self.retry.base_delay > self.retry.max_delay {
            return Err(ConfigError::new("retry_base_delay", "must not exceed retry_max_delay").into());
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::new("max_response_bytes", "must be greater than zero").into());
        }
        let watch = if self.watch {
            let w = self.watch_config;
            if !self.cache_enabled {
                return Err(ConfigError::new("watch", "needs the cache (cache(true))").into());
            }
            if w.idle_timeout.is_zero() {
                return Err(ConfigError::new("watch_idle_timeout", "must be greater than zero").into());
            }
            if w.backoff.is_zero() || w.backoff > w.backoff_max {
                return Err(ConfigError::new("watch_backoff", "initial must be > 0 and not exceed max").into());
            }
            Some(Arc::new(Watch::new(w)))
        } else {
            None
        };
        warn_plaintext(&api_base, &auth_base);
        let events_url = Url::parse(&format!("{}/events", api_base.as_str().trim_end_matches('/')))
            .map_err(|e| ConfigError::new(api.source, format!("cannot build the events URL: {e}")))?;
        let tokens = TokenManager::new(credentials, &auth_base, self.token_refresh_buffer)?;
        let transport = Transport::new(http, self.timeout, self.retry, self.hooks, env_header, self.max_response_bytes);
        let stale = self.stale_if_error.unwrap_or(Duration::ZERO);
        let client = Client {
            inner: Arc::new(Inner {
                api_base,
                auth_base,
                events_url,
                environment,
                transport,
                tokens,
                cache: Arc::new(PromptCache::new(self.cache_max_entries, stale)),
                watch,
                watch_stop: tokio::sync::watch::channel(false).0,
                inflight: parking_lot::Mutex::new(HashMap::new()),
                cache_enabled: self.cache_enabled,
                cache_ttl: self.cache_ttl,
                stale_if_error: self.stale_if_error,
                refresh_ahead: self.refresh_ahead,
                timeout: self.timeout,
                retry: self.retry,
            }),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            client.start_watch_on(&handle);
        }
        Ok(client)
    }
}

/// Warn (once per client) when credentials would cross the network in
/// clear text: an `http://` URL whose host is not the loopback.
fn warn_plaintext(api_base: &Url, auth_base: &Url) {
    let exposed = |u: &Url| u.scheme() == "http" && !is_loopback(u);
    let mut urls: Vec<&str> = Vec::new();
    if exposed(auth_base) {
        urls.push(auth_base.as_str());
    }
    if exposed(api_base) && api_base.host_str() != auth_base.host_str() {
        urls.push(api_base.as_str());
    }
    if !urls.is_empty() {
        tracing::warn!(
            urls = %urls.join(", "),
            "scope-client: the API secret and tokens will be sent over plain http to a host that is not the \
             loopback; use https://"
        );
    }
}

fn is_loopback(u: &Url) -> bool {
    let Some(host) = u.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("credentials", &self.credentials)
            .field("api_url", &self.api_url.as_ref().map(|s| &s.value))
            .field("auth_api_url", &self.auth_api_url.as_ref().map(|s| &s.value))
            .field("environment", &self.environment.as_ref().map(|s| &s.value))
            .field("token_refresh_buffer", &self.token_refresh_buffer)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("cache_enabled", &self.cache_enabled)
            .field("cache_ttl", &self.cache_ttl)
            .field("retry", &self.retry)
            .field("hooks", &self.hooks)
            .field("stale_if_error", &self.stale_if_error)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("root_certificates", &self.root_certificates.len())
            .field("built_in_roots", &self.built_in_roots)
            .field("http_client", &self.http_client.is_some())
            .field("watch", &self.watch)
            .field("watch_config", &self.watch_config)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

pub(crate) struct Inner {
    api_base: Url,
    auth_base: Url,
    /// `{api}/events`, the stream of `watch`.
    pub(crate) events_url: Url,
    environment: Option<String>,
    pub(crate) transport: Transport,
    pub(crate) tokens: TokenManager,
    /// Shared with the watch task, which holds the client itself only weakly.
    cache: Arc<PromptCache>,
    watch: Option<Arc<Watch>>,
    /// Dropped with the client: the watch task ends when it notices.
    watch_stop: tokio::sync::watch::Sender<bool>,
    /// Fetches under way for cache misses, by cache key: concurrent misses of
    /// the same prompt wait for one request instead of each sending one.
    inflight: parking_lot::Mutex<HashMap<String, Arc<InFlight>>>,
    cache_enabled: bool,
    cache_ttl: Duration,
    stale_if_error: Option<Duration>,
    refresh_ahead: Option<f64>,
    pub(crate) timeout: Duration,
    retry: RetryPolicy,
}

/// The shared outcome of one fetch for a cache miss.
type InFlight = tokio::sync::OnceCell<Result<Arc<PromptVersion>, Error>>;

/// The Scope client. Cheap to clone (clones share the token, the cache and
/// the connection pool); use one per process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("api_base", &i.api_base.as_str())
            .field("auth_base", &i.auth_base.as_str())
            .field("credentials", i.tokens.credentials())
            .field("environment", &i.environment)
            .field("timeout", &i.timeout)
            .field("retry", &i.retry)
            .field("cache_enabled", &i.cache_enabled)
            .field("cache_ttl", &i.cache_ttl)
            .field("stale_if_error", &i.stale_if_error)
            .field("refresh_ahead", &i.refresh_ahead)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with every option at its default; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from the `SCOPE_*` environment variables.
    pub fn from_env() -> Result<Self, Error> {
        ClientBuilder::from_env()?.build()
    }

    /// A client with these credentials and every other option at its default
    /// (`SCOPE_API_URL` is not read; see [`ClientBuilder::api_url`]).
    pub fn new(credentials: ClientCredentials) -> Result<Self, Error> {
        ClientBuilder::new().credentials(credentials).build()
    }

    /// Fetch a version of the prompt `name` (a name or a `pmt_…` id): the
    /// production version unless [`label`](GetPromptVersion::label) or
    /// [`version_id`](GetPromptVersion::version_id) says otherwise. Await the
    /// result, or call [`send`](GetPromptVersion::send).
    pub fn get_prompt_version<'a>(&'a self, name: &'a str) -> GetPromptVersion<'a> {
        GetPromptVersion { client: self, name, selector: Selector::PRODUCTION, use_cache: true, ttl: None }
    }

    /// Fetch the production version of `name` and render it with `vars`.
    pub async fn render_prompt<I, K, V>(&self, name: &str, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.get_prompt_version(name).send().await?.render(vars)
    }

    /// Drop every cached prompt version.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// How many prompt versions are cached (fresh or kept for stale-if-error).
    pub fn cache_len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Forget the current access token; the next request exchanges again.
    pub fn clear_token(&self) {
        self.inner.tokens.clear();
    }

    /// The API base (`{SCOPE_API_URL}/api/v1`).
    pub fn api_base_url(&self) -> &str {
        self.inner.api_base.as_str()
    }

    /// The token exchange URL (`{SCOPE_AUTH_API_URL}/v1/auth/applications/login`).
    pub fn token_url(&self) -> &str {
        self.inner.tokens.login_url().as_str()
    }

    /// The organization id (`org_…`) of the credentials.
    pub fn org_id(&self) -> &str {
        self.inner.tokens.credentials().org_id()
    }

    /// The API key id (`key_…`) of the credentials.
    pub fn key_id(&self) -> &str {
        self.inner.tokens.credentials().key_id()
    }

    /// Where the [`watch`](ClientBuilder::watch) stream stands:
    /// [`WatchState::Live`] when changes reach the cache as they happen.
    pub fn watch_state(&self) -> WatchState {
        match &self.inner.watch {
            None => WatchState::Off,
            Some(w) => w.state(),
        }
    }

    /// Start the watch task on `handle` unless it runs already (or watch
    /// is off, or stopped for good).
    pub(crate) fn start_watch_on(&self, handle: &tokio::runtime::Handle) {
        let Some(watch) = &self.inner.watch else {
            return;
        };
        if !watch.claim_start() {
            return;
        }
        let task = crate::watch::run(
            Arc::downgrade(&self.inner),
            Arc::clone(watch),
            Arc::clone(&self.inner.cache),
            self.inner.watch_stop.subscribe(),
        );
        handle.spawn(task);
    }

    /// Start the watch task if it should run and does not (a client built
    /// outside a runtime, or whose runtime went away).
    fn ensure_watch(&self) {
        if let Some(watch) = &self.inner.watch {
            if watch.not_started() {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    self.start_watch_on(&handle);
                }
            }
        }
    }

    /// The live watch session (0: none, or watch off).
    fn live_session(&self) -> u64 {
        self.inner.watch.as_ref().map_or(0, |w| w.live_session())
    }

    pub(crate) async fn fetch(
        &self,
        name: &str,
        selector: Selector<'_>,
        use_cache: bool,
        ttl: Option<Duration>,
    ) -> Result<Fetched, Error> {
        validate(name, selector)?;
        let inner = &*self.inner;
        self.ensure_watch();
        let read_cache = inner.cache_enabled && use_cache;
        if read_cache {
            let coverage = || inner.watch.as_ref().map_or_else(no_watch, |w| w.coverage());
            let hit = with_key(name, selector, |k| inner.cache.get_fresh(k, ttl, inner.refresh_ahead, &coverage));
            if let Some(hit) = hit {
                if hit.refresh_due {
                    self.spawn_refresh(name, selector, ttl);
                }
                tracing::trace!(prompt = name, %selector, "cache hit");
                return Ok(Fetched { version: hit.value, source: FetchSource::Cache, age: hit.age, error: None });
            }
        }
        let fetched = if read_cache {
            self.fetch_coalesced(name, selector, ttl).await
        } else {
            self.fetch_and_store(name, selector, ttl, false).await
        };
        match fetched {
            Ok(version) => Ok(Fetched { version, source: FetchSource::Network, age: Duration::ZERO, error: None }),
            Err(e) => {
                if let (true, true, Some(max)) = (read_cache, e.is_transient(), inner.stale_if_error) {
                    if let Some((v, age)) = with_key(name, selector, |k| inner.cache.get_stale(k, max)) {
                        tracing::warn!(
                            prompt = name, %selector, age_s = age.as_secs_f64(), error = %e.chain(),
                            "serving a stale cached copy"
                        );
                        return Ok(Fetched { version: v, source: FetchSource::Stale, age, error: Some(e) });
                    }
                }
                Err(e)
            }
        }
    }

    /// Fetches and, when caching is on, stores the result. With
    /// `revalidate`, a copy held for the key (expired, or dropped by an
    /// event) is asked about with its `ETag`: a `304` renews it without a
    /// download.
    async fn fetch_and_store(
        &self,
        name: &str,
        selector: Selector<'_>,
        ttl: Option<Duration>,
        revalidate: bool,
    ) -> Result<Arc<PromptVersion>, Error> {
        let inner = &*self.inner;
        let key = cache_key(name, selector);
        let ttl = ttl.unwrap_or(inner.cache_ttl);
        let ticket = inner.cache.ticket(self.live_session());
        let etag = if revalidate && inner.cache_enabled { inner.cache.etag(&key) } else { None };
        if let Some(tag) = etag {
            match self.fetch_remote(name, selector, Some(&tag)).await? {
                Reply::NotModified => {
                    if let Some(v) = inner.cache.renew(&key, ttl, ticket, self.live_session()) {
                        tracing::debug!(prompt = name, %selector, "revalidated (304)");
                        return Ok(v);
                    }
                    // The copy went (evicted, or an event touched it while
                    // we asked): fetch it whole.
                }
                Reply::Body(v, etag) => return Ok(self.store(key, v, etag, ttl, ticket)),
            }
        }
        let ticket = inner.cache.ticket(self.live_session());
        match self.fetch_remote(name, selector, None).await? {
            Reply::Body(v, etag) => Ok(self.store(key, v, etag, ttl, ticket)),
            Reply::NotModified => Err(Error::Decode(ApiError::client_side("304 to a request without If-None-Match"))),
        }
    }

    fn store(
        &self,
        key: String,
        v: PromptVersion,
        etag: Option<String>,
        ttl: Duration,
        ticket: Ticket,
    ) -> Arc<PromptVersion> {
        let v = Arc::new(v);
        let inner = &*self.inner;
        if inner.cache_enabled {
            inner.cache.insert(key, Arc::clone(&v), etag, ttl, ticket, self.live_session());
        }
        v
    }

    /// A cache miss: joins a fetch of the same key already under way, or
    /// starts one. If the task doing the fetch is cancelled, a waiting one
    /// takes over (`OnceCell` semantics), so nobody waits forever.
    async fn fetch_coalesced(
        &self,
        name: &str,
        selector: Selector<'_>,
        ttl: Option<Duration>,
    ) -> Result<Arc<PromptVersion>, Error> {
        let key = cache_key(name, selector);
        let cell = Arc::clone(self.inner.inflight.lock().entry(key.clone()).or_default());
        let result = cell.get_or_init(|| self.fetch_and_store(name, selector, ttl, true)).await.clone();
        let mut inflight = self.inner.inflight.lock();
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        result
    }

    async fn fetch_remote(
        &self,
        name: &str,
        selector: Selector<'_>,
        if_none_match: Option<&str>,
    ) -> Result<Reply<PromptVersion>, Error> {
        let inner = &*self.inner;
        let url = self.prompt_url(name, selector)?;
        let req =
            Request { method: Method::GET, url: &url, body: None, target: Target::Prompt { name }, if_none_match };
        let span = tracing::debug_span!("scope_client.get_prompt_version", prompt = name, %selector);
        inner.transport.send_authenticated(&inner.tokens, &req).instrument(span).await
    }

    fn prompt_url(&self, name: &str, selector: Selector<'_>) -> Result<Url, Error> {
        let mut url = self.inner.api_base.clone();
        {
            let mut segs =
                url.path_segments_mut().map_err(|_| ConfigError::new("api_url", "cannot be used as a base URL"))?;
            segs.pop_if_empty().push("prompts").push(name);
            match selector {
                // The two labels of SPEC §5 keep their paths (what the
                // reference SDKs use; `/production` also resolves an
                // environment-bound key's label); others are SPEC §9's.
                Selector::Label(l @ (LABEL_PRODUCTION | LABEL_LATEST)) => segs.push(l),
                Selector::Label(l) => segs.push("labels").push(l),
                Selector::Version(v) => segs.push("versions").push(v),
            };
        }
        Ok(url)
    }

    fn spawn_refresh(&self, name: &str, selector: Selector<'_>, ttl: Option<Duration>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let key = cache_key(name, selector);
        if !self.inner.cache.start_refresh(&key) {
            return;
        }
        let guard = RefreshGuard { client: self.clone(), key };
        let name = name.to_owned();
        let (is_version, sel) = match selector {
            Selector::Label(l) => (false, l.to_owned()),
            Selector::Version(v) => (true, v.to_owned()),
        };
        handle.spawn(async move {
            let selector = if is_version { Selector::Version(&sel) } else { Selector::Label(&sel) };
            let client = &guard.client;
            match client.fetch_and_store(&name, selector, ttl, true).await {
                Ok(_) => {
                    tracing::debug!(prompt = %name, %selector, "background refresh done");
                }
                Err(e) => tracing::debug!(prompt = %name, %selector, error = %e.chain(), "background refresh failed"),
            }
        });
    }
}

/// Releases a key's background-refresh claim even if the task is cancelled.
struct RefreshGuard {
    client: Client,
    key: String,
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.client.inner.cache.end_refresh(&self.key);
    }
}

fn validate(name: &str, selector: Selector<'_>) -> Result<(), Error> {
    let invalid = |m: String| Err(Error::Validation(ApiError::client_side(m)));
    if name.trim().is_empty() {
        return invalid("prompt name must not be empty".to_owned());
    }
    match selector {
        Selector::Label(LABEL_PRODUCTION | LABEL_LATEST) => Ok(()),
        Selector::Label("") => invalid("label must not be empty".to_owned()),
        Selector::Label(l) if is_label(l) => Ok(()),
        Selector::Label(l) => invalid(format!(
            "'{l}' is not a label (a label is 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit: \
             production, latest, staging, …)"
        )),
        Selector::Version("") => invalid("version id must not be empty".to_owned()),
        Selector::Version(v) if is_version_id(v) => Ok(()),
        Selector::Version(v) => invalid(format!(
            "'{v}' is not a version id (expected 'v_' followed by a ULID, as in PromptVersion::version_id; \
             the version number is not an id)"
        )),
    }
}

/// A label's shape: `[a-z0-9][a-z0-9_-]{0,63}`.
fn is_label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// A version id: `v_` followed by a ULID.
fn is_version_id(v: &str) -> bool {
    v.strip_prefix("v_").is_some_and(|rest| ulid::Ulid::from_string(rest).is_ok())
}

/// Where a fetched version came from; see
/// [`GetPromptVersion::send_with_meta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchSource {
    /// A fresh copy from the in-memory cache.
    Cache,
    /// The server answered this call (or a concurrent call for the same
    /// version that this one joined).
    Network,
    /// The fetch failed for a transient reason and a copy past its TTL was
    /// served (stale-if-error).
    Stale,
}

/// A fetched version and its provenance.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The version.
    pub version: Arc<PromptVersion>,
    /// Where it came from.
    pub source: FetchSource,
    /// How long ago it was fetched from the server (zero for
    /// [`FetchSource::Network`]).
    pub age: Duration,
    /// For [`FetchSource::Stale`]: the failure that made the SDK serve the
    /// stale copy.
    pub error: Option<Error>,
}

/// A pending `get_prompt_version` call: choose the label or version and the
/// cache behaviour, then `.await` it (or call [`send`](Self::send)).
#[must_use = "nothing is fetched until the request is awaited or sent"]
#[derive(Debug, Clone)]
pub struct GetPromptVersion<'a> {
    pub(crate) client: &'a Client,
    pub(crate) name: &'a str,
    pub(crate) selector: Selector<'a>,
    pub(crate) use_cache: bool,
    pub(crate) ttl: Option<Duration>,
}

impl<'a> GetPromptVersion<'a> {
    /// A label: `production` (the default: the published version, or for a
    /// key bound to an environment `E`, the version labelled `E` where the
    /// prompt has one), `latest` (the highest-numbered version, whatever its
    /// status), or any label of the prompt (`staging`, `canary`, …: a name of
    /// 1 to 64 of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit,
    /// fetched from `/prompts/{name}/labels/{label}`). A label of another
    /// shape is an [`Error::Validation`] when the request is sent, without a
    /// request; a label the prompt does not have is [`Error::NotFound`].
    pub fn label(mut self, label: &'a str) -> Self {
        self.selector = Selector::Label(label);
        self
    }

    /// One version by its id, [`PromptVersion::version_id`] (`v_` followed by
    /// a ULID), whatever its status. Anything else (a version *number* such
    /// as `"3"`, say) is an [`Error::Validation`] when the request is sent,
    /// without a request.
    pub fn version_id(mut self, version_id: &'a str) -> Self {
        self.selector = Selector::Version(version_id);
        self
    }

    /// The old name of [`version_id`](Self::version_id).
    #[deprecated(note = "takes a version id, not a number: use `version_id`")]
    pub fn version(self, version_id: &'a str) -> Self {
        self.version_id(version_id)
    }

    /// A [`Selector`]: a label or a version id.
    pub fn selector(mut self, selector: Selector<'a>) -> Self {
        self.selector = selector;
        self
    }

    /// Bypass the cache for this call: always ask the server. The answer
    /// still replaces the cached copy (when the client's cache is on), so the
    /// next ordinary call gets it; stale-if-error does not apply, and
    /// concurrent calls are not coalesced. The same as `cache(false)`.
    pub fn skip_cache(self) -> Self {
        self.cache(false)
    }

    /// Read the cache for this call (`true`, the default) or bypass it as
    /// [`skip_cache`](Self::skip_cache) does (`false`), for code that
    /// decides at run time. To turn the cache off for every call, use
    /// [`ClientBuilder::cache`].
    pub fn cache(mut self, enabled: bool) -> Self {
        self.use_cache = enabled;
        self
    }

    /// For this call, accept a cached copy at most `ttl` old, and keep what is
    /// fetched for `ttl`.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Fetch (what `.await` on the request does).
    pub async fn send(self) -> Result<Arc<PromptVersion>, Error> {
        Ok(self.send_with_meta().await?.version)
    }

    /// Like [`send`](Self::send), saying where the version came from: the
    /// cache, the network, or (with
    /// [`stale_if_error`](ClientBuilder::stale_if_error)) a stale cached copy
    /// served because the server could not be reached, with the error. Alert
    /// on [`FetchSource::Stale`] to learn that the application is running on
    /// old prompts.
    pub async fn send_with_meta(self) -> Result<Fetched, Error> {
        self.client.fetch(self.name, self.selector, self.use_cache, self.ttl).await
    }

    /// Fetch and render with `vars` (missing variables are an error).
    pub async fn render<I, K, V>(self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.send().await?.render(vars)
    }

    /// Fetch and render strictly (unknown variables are an error too).
    pub async fn render_strict<I, K, V>(self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.send().await?.render_strict(vars)
    }
}

impl<'a> IntoFuture for GetPromptVersion<'a> {
    type Output = Result<Arc<PromptVersion>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
