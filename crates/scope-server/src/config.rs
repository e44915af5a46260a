//! Server configuration. Built by the `scope` binary from flags and
//! environment variables (clap); plain data here so tests can build it.

use std::time::Duration;

/// `Debug` hides the database password (and the master key, a secret type).
#[derive(Clone)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    pub database_url: String,
    /// Pool size and timeouts of the database connection.
    pub store: scope_store::OpenOptions,
    /// Access-token lifetime.
    pub token_ttl: Duration,
    /// JWT `iss`. `None`: `http://{bound address}`.
    pub public_url: Option<String>,
    /// Encrypts signing keys at rest when set. Never logged.
    pub master_key: Option<secrecy::SecretString>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Failed token exchanges allowed per client address per minute before
    /// answering 429.
    pub auth_failure_limit: u32,
    /// How often the in-memory revocation view polls the database for changes
    /// made by other processes (CLI, other replicas).
    pub gate_poll_interval: Duration,
    /// How often coalesced usage counters are written.
    pub usage_flush_interval: Duration,
    /// How long a served prompt version may be answered from memory when the
    /// change was made by another process (changes made by this process
    /// invalidate at once). Zero disables the cache.
    pub prompt_cache_ttl: Duration,
    /// Most bytes the prompt cache holds (bodies plus a small overhead per
    /// entry); an insert past it empties the cache.
    pub prompt_cache_max_bytes: usize,
    /// Bodies larger than this are served from the database, never cached.
    pub prompt_cache_max_entry_bytes: usize,
    /// Lifetime of the admin API key `scope serve` prints when it bootstraps
    /// an empty database. `None`: the key never expires.
    pub bootstrap_key_ttl: Option<Duration>,
    /// Events older than this are pruned from the event log (hourly); a
    /// client resuming `GET /api/v1/events` from before then is told to
    /// resynchronize.
    pub event_retention: Duration,
    /// How often the event fan-out reads the log when nothing woke it (a
    /// change by the CLI on SQLite, or a notification lost with the change
    /// feed's connection).
    pub event_poll_interval: Duration,
    /// How often an idle event stream sends a heartbeat comment and
    /// re-checks that its caller's credentials still hold.
    pub event_heartbeat: Duration,
    /// Most event streams open at once in this process; more get `429`
    /// with `Retry-After`.
    pub max_event_streams: usize,
    /// A console session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A console session ends this long after sign-in, whatever its use.
    pub session_max_age: Duration,
    /// Failed sign-ins allowed per account, and per client address, per
    /// minute before answering 429.
    pub sign_in_failure_limit: u32,
    /// Largest prompt content (the template text of a version, also one
    /// made by `copy_from`) in bytes: larger is `413 payload_too_large`.
    /// Separate from `max_body_bytes`, which bounds every request.
    pub max_prompt_bytes: usize,
    /// Most prompts an organization may have (`409 conflict` past it).
    pub max_prompts_per_org: u64,
    /// Most versions a prompt may have (`409 conflict` past it).
    pub max_versions_per_prompt: u64,
    /// Most active (not revoked, not expired) API keys an organization may
    /// have (`409 conflict` past it; a rotation's successor is exempt).
    pub max_keys_per_org: u64,
    /// Audiences (`aud`) a client may ask tokens for with OAuth `resource`
    /// or `audience`, besides the Scope API itself (the issuer): the
    /// services behind a gateway that validates Scope tokens. The same for
    /// every organization of the deployment.
    pub token_audiences: Vec<String>,
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` names the client. Empty:
    /// the client is always the TCP peer.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// Failed token exchanges allowed per client address and API key id per
    /// minute before that key's failures from that client answer 429 (the
    /// per-address limit is `auth_failure_limit`). Credentials that verify
    /// are never refused.
    pub auth_key_failure_limit: u32,
    /// Time a client has to send a request's headers (HTTP/1; also the
    /// longest an HTTP/1 keep-alive connection waits for its next request).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is
    /// closed (idle keep-alive, HTTP/2 included, and stalled peers). Longer
    /// than the event-stream heartbeat, which keeps open streams busy.
    pub idle_timeout: Duration,
    /// Time a handler has to answer (`503` with the SPEC body past it);
    /// `GET /api/v1/events` streams are exempt.
    pub request_timeout: Duration,
    /// Time a client has to send a request body once the server reads it
    /// (`408` past it).
    pub body_read_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Requests handled at once (event streams excepted); further ones get
    /// `503` with `Retry-After`.
    pub max_concurrent_requests: usize,
}

impl ServerConfig {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: database_url.into(),
            store: scope_store::OpenOptions::default(),
            token_ttl: Duration::from_secs(3600),
            public_url: None,
            master_key: None,
            max_body_bytes: 1024 * 1024,
            auth_failure_limit: 20,
            gate_poll_interval: Duration::from_millis(250),
            usage_flush_interval: Duration::from_secs(2),
            prompt_cache_ttl: Duration::from_secs(1),
            prompt_cache_max_bytes: crate::runtime::prompt_cache::DEFAULT_MAX_BYTES,
            prompt_cache_max_entry_bytes: crate::runtime::prompt_cache::DEFAULT_MAX_ENTRY_BYTES,
            bootstrap_key_ttl: Some(Duration::from_secs(24 * 3600)),
            event_retention: Duration::from_secs(7 * 86_400),
            event_poll_interval: Duration::from_millis(500),
            event_heartbeat: Duration::from_secs(15),
            max_event_streams: 10_000,
            session_idle_timeout: Duration::from_secs(3600),
            session_max_age: Duration::from_secs(12 * 3600),
            sign_in_failure_limit: 10,
            max_prompt_bytes: 256 * 1024,
            max_prompts_per_org: 10_000,
            max_versions_per_prompt: 5_000,
            max_keys_per_org: 1_000,
            token_audiences: Vec::new(),
            trusted_proxies: crate::net::TrustedProxies::default(),
            auth_key_failure_limit: 10,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_concurrent_requests: 4_096,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_database_url(&self.database_url))
            .field("store", &self.store)
            .field("token_ttl", &self.token_ttl)
            .field("public_url", &self.public_url)
            .field("master_key", &self.master_key)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("gate_poll_interval", &self.gate_poll_interval)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("prompt_cache_ttl", &self.prompt_cache_ttl)
            .field("prompt_cache_max_bytes", &self.prompt_cache_max_bytes)
            .field("prompt_cache_max_entry_bytes", &self.prompt_cache_max_entry_bytes)
            .field("bootstrap_key_ttl", &self.bootstrap_key_ttl)
            .field("event_retention", &self.event_retention)
            .field("event_poll_interval", &self.event_poll_interval)
            .field("event_heartbeat", &self.event_heartbeat)
            .field("max_event_streams", &self.max_event_streams)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_max_age", &self.session_max_age)
            .field("sign_in_failure_limit", &self.sign_in_failure_limit)
            .field("max_prompt_bytes", &self.max_prompt_bytes)
            .field("max_prompts_per_org", &self.max_prompts_per_org)
            .field("max_versions_per_prompt", &self.max_versions_per_prompt)
            .field("max_keys_per_org", &self.max_keys_per_org)
            .field("token_audiences", &self.token_audiences)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("auth_key_failure_limit", &self.auth_key_failure_limit)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish_non_exhaustive()
    }
}

/// `url` with its password, if any, replaced by `***`: the `user:password@`
/// of the authority and a `password=` query parameter (both forms
/// PostgreSQL URLs take).
pub fn redact_database_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?', '#']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_database_password_and_the_master_key() {
        let mut c = ServerConfig::new("postgres://scope:hunter2-db-pass@db.internal:5432/scope?sslmode=require");
        c.master_key = Some(secrecy::SecretString::from("master-key-0123456789abcdefghijklmnop"));
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2-db-pass") && !text.contains("master-key-0123"), "{text}");
        assert!(text.contains("postgres://scope:***@db.internal:5432/scope?sslmode=require"), "{text}");
        assert_eq!(redact_database_url("postgres://u@h/db?password=s3cret&x=1"), "postgres://u@h/db?password=***&x=1");
        assert_eq!(redact_database_url("sqlite://./scope-data/scope.db"), "sqlite://./scope-data/scope.db");
        assert_eq!(redact_database_url("postgres://h/db"), "postgres://h/db");
    }
}
