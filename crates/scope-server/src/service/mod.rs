//! Business rules with I/O: permissions, what a revoke does, the token
//! exchange, prompt lifecycle orchestration. Called by HTTP handlers and by
//! the CLI; tested through both.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod diff;
pub mod events;
pub mod labels;
pub mod oauth;
pub mod passwords;
pub mod prompts;
pub mod sessions;
pub mod transfer;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use scope_domain::{DomainError, KeyId, OrgId, Role, Scope, ScopeSet, UserId};
use scope_store::{PageQuery, Store};

use crate::config::ServerConfig;
use crate::error::AppError;
use crate::runtime::events::EventHub;
use crate::runtime::gates::KeyGates;
use crate::runtime::key_cache::KeyCache;
use crate::runtime::prompt_cache::PromptCache;
use crate::runtime::rate_limit::FailureLimiter;
use crate::runtime::revoked_tokens::RevokedTokens;
use crate::runtime::signing::SigningKeys;
use crate::runtime::token_cache::TokenCache;
use crate::runtime::usage::UsageCounter;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Key(KeyId),
    User(UserId),
    /// The CLI working on the database directly.
    System,
}

impl Actor {
    /// `key_…`, `usr_…` or `system`, as recorded in `created_by` and audit.
    pub fn id(&self) -> String {
        match self {
            Actor::Key(k) => k.to_string(),
            Actor::User(u) => u.to_string(),
            Actor::System => "system".into(),
        }
    }
}

/// The resolved caller of a request: organization, actor and role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    pub actor: Actor,
    pub role: Role,
    pub environment: Option<String>,
    /// The scopes of the bearer token, when the caller is one (OAuth
    /// `scope`, possibly narrowed below the key's role); `None` for sessions
    /// and the CLI, which act with their full role.
    pub scopes: Option<ScopeSet>,
}

impl Principal {
    /// The CLI acting as an administrator of `org`.
    pub fn system(org: OrgId) -> Self {
        Self { org, actor: Actor::System, role: Role::Admin, environment: None, scopes: None }
    }

    /// Fails with 403 unless the caller holds `needed` or more and, for a
    /// bearer token, its scope includes the one that stands for `needed`
    /// (`scope_domain::scopes`: an insufficient scope is told apart so the
    /// HTTP layer can answer RFC 6750's `insufficient_scope`).
    pub fn require(&self, needed: Role) -> Result<(), AppError> {
        if !self.role.allows(needed) {
            return Err(DomainError::forbidden(format!("this requires the {needed} role")).into());
        }
        let scope = Scope::for_role(needed);
        match self.scopes {
            Some(granted) if !granted.contains(scope) => Err(DomainError::insufficient_scope(scope).into()),
            _ => Ok(()),
        }
    }
}

/// Validates `?limit=` and `?cursor=`; callers fetch `limit + 1` rows to know
/// whether there is a next page.
pub fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageQuery, AppError> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(DomainError::bad_request("limit must be between 1 and 200").into());
    }
    if cursor.as_deref().is_some_and(|c| c.is_empty() || c.len() > 128) {
        return Err(DomainError::bad_request("invalid cursor").into());
    }
    Ok(PageQuery { limit: limit + 1, cursor })
}

/// A page of rows and the cursor of the next page.
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Trims the extra row fetched by [`page`] and derives the cursor.
    pub fn from_rows(mut rows: Vec<T>, query: &PageQuery, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = query.limit.saturating_sub(1) as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page { data: rows, next_cursor }
    }
}

/// Everything a running server shares.
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    pub signing: SigningKeys,
    pub gates: KeyGates,
    /// Access tokens revoked one by one (RFC 7009), checked on every request.
    pub revoked_tokens: RevokedTokens,
    pub tokens: TokenCache,
    pub keys: KeyCache,
    pub prompts: PromptCache,
    /// The event log's fan-out to this process's `GET /api/v1/events` streams.
    pub events: EventHub,
    pub usage: UsageCounter,
    /// Failed token exchanges per client address (IPv6 by /64).
    pub failures: FailureLimiter,
    /// Failed token exchanges per client address and API key id.
    pub key_failures: FailureLimiter<(std::net::IpAddr, KeyId)>,
    /// Failed sign-ins per client address.
    pub sign_in_ip_failures: FailureLimiter,
    /// Failed sign-ins per account (lower-cased email).
    pub sign_in_account_failures: FailureLimiter<String>,
    issuer: RwLock<String>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl App {
    /// Loads signing keys and the revocation view and starts the background
    /// tasks (gate polling, usage flushing).
    pub async fn start(store: Arc<dyn Store>, config: ServerConfig) -> Result<Self, AppError> {
        let ttl_ms = config.token_ttl.as_millis() as i64;
        let signing = SigningKeys::load(store.as_ref(), config.master_key.clone(), ttl_ms).await?;
        let gates = KeyGates::default();
        gates.apply(&store.key_gate_changes(0).await?);
        let revoked_tokens = RevokedTokens::default();
        let now = crate::runtime::now_ms();
        revoked_tokens.apply(&store.revoked_token_changes(0, now).await?, now);
        let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
        let prompts = PromptCache::new(config.prompt_cache_ttl, 100_000)
            .with_byte_limits(config.prompt_cache_max_bytes, config.prompt_cache_max_entry_bytes);
        // Streams opened from now on get the events written from now on.
        let events = EventHub::new(store.event_bounds().await?.head);
        let app = Self {
            failures: FailureLimiter::new(config.auth_failure_limit),
            key_failures: FailureLimiter::new(config.auth_key_failure_limit),
            sign_in_ip_failures: FailureLimiter::new(config.sign_in_failure_limit),
            sign_in_account_failures: FailureLimiter::new(config.sign_in_failure_limit),
            prompts,
            events,
            store,
            config,
            signing,
            gates,
            revoked_tokens,
            tokens: TokenCache::new(100_000),
            keys: KeyCache::new(100_000),
            usage: UsageCounter::default(),
            issuer: RwLock::new(issuer.trim_end_matches('/').to_owned()),
            stop: tokio::sync::watch::channel(false).0,
            tasks: parking_lot::Mutex::new(Vec::new()),
        };
        Ok(app)
    }

    /// After a change to `org`'s prompts, versions or labels commits here:
    /// cached answers are dropped, and the event fan-out reads the log now.
    pub fn prompts_changed(&self, org: OrgId) {
        self.prompts.invalidate_org(org);
        self.events.wake();
    }

    /// The JWT issuer.
    pub fn issuer(&self) -> String {
        self.issuer.read().clone()
    }

    /// Once bound: the issuer defaults to the real address (port 0 resolved).
    pub fn set_listen_addr(self: &Arc<Self>, addr: SocketAddr) {
        if self.config.public_url.is_none() {
            *self.issuer.write() = format!("http://{addr}");
        }
        self.spawn_background();
    }

    fn spawn_background(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock();
        if !tasks.is_empty() {
            return;
        }
        let app = Arc::clone(self);
        tasks.push(tokio::spawn(async move { app.poll_loop().await }));
        let app = Arc::clone(self);
        tasks.push(tokio::spawn(async move { app.flush_loop().await }));
        let app = Arc::clone(self);
        tasks.push(tokio::spawn(async move { app.change_loop().await }));
        let (app, stop) = (Arc::clone(self), self.stop.subscribe());
        let poll = app.config.event_poll_interval;
        tasks.push(tokio::spawn(async move { events::fan_out(app, poll, stop).await }));
    }

    /// Follows the store's change feed where the backend pushes one
    /// (PostgreSQL): a revoke, a prompt change or a signing-key rotation made
    /// by another replica reaches this one's in-memory views within
    /// milliseconds of its commit. The periodic poll keeps running beside it,
    /// so a feed that drops (or a notification lost with it) costs at most a
    /// poll interval, never a revoked key accepted; after a reconnection
    /// everything is resynchronized.
    async fn change_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut feed = match self.store.changes().await {
            Ok(Some(feed)) => feed,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the change feed; relying on polling");
                return;
            }
        };
        loop {
            let change = tokio::select! {
                c = feed.recv() => c,
                _ = stop.changed() => return,
            };
            let Some(change) = change else {
                tracing::warn!("change feed ended; relying on polling");
                return;
            };
            self.apply_change(change).await;
        }
    }

    /// Brings the in-memory views up to date with one pushed change.
    pub async fn apply_change(&self, change: scope_store::Change) {
        use scope_store::Change;
        match change {
            Change::KeyGates => self.poll_gates_logged().await,
            Change::Prompts(org) => self.prompts.invalidate_org(org),
            Change::SigningKeys => self.refresh_signing_logged().await,
            Change::Tokens => self.poll_revoked_tokens_logged().await,
            // Another replica appended to the event log: hand it to this
            // process's streams now rather than at the next poll.
            Change::Events => self.events.wake(),
            Change::Resync => {
                tracing::info!("change feed listening");
                self.prompts.invalidate_all();
                self.events.wake();
                self.poll_gates_logged().await;
                self.poll_revoked_tokens_logged().await;
                self.refresh_signing_logged().await;
            }
            Change::Lost => tracing::warn!("change feed connection lost; polling until it is back"),
        }
    }

    async fn poll_gates_logged(&self) {
        if let Err(e) = self.poll_gates().await {
            tracing::warn!(error = %e, "revocation view poll failed");
        }
    }

    async fn poll_revoked_tokens_logged(&self) {
        if let Err(e) = self.poll_revoked_tokens().await {
            tracing::warn!(error = %e, "revoked-token view poll failed");
        }
    }

    /// Applies token revocations made by other processes.
    pub async fn poll_revoked_tokens(&self) -> Result<(), AppError> {
        let now = crate::runtime::now_ms();
        let rows = self.store.revoked_token_changes(self.revoked_tokens.last_seq(), now).await?;
        self.revoked_tokens.apply(&rows, now);
        Ok(())
    }

    async fn refresh_signing_logged(&self) {
        if let Err(e) = self.signing.refresh(self.store.as_ref()).await {
            tracing::warn!(error = %e, "signing key refresh failed");
        }
    }

    async fn poll_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.gate_poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.subscribe();
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.poll_gates_logged().await;
            self.poll_revoked_tokens_logged().await;
            n += 1;
            // Signing keys change rarely (and are pushed where the backend
            // has a change feed): look every ~5 s.
            if n.is_multiple_of(20) {
                self.refresh_signing_logged().await;
                self.revoked_tokens.prune(crate::runtime::now_ms());
            }
        }
    }

    /// Applies gate changes made by other processes.
    pub async fn poll_gates(&self) -> Result<(), AppError> {
        let rows = self.store.key_gate_changes(self.gates.last_seq()).await?;
        self.gates.apply(&rows);
        Ok(())
    }

    async fn flush_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.usage_flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.subscribe();
        let mut flushes = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.flush_usage().await;
            flushes += 1;
            // Prune at the first flush and every 1800 flushes after (hourly
            // with the default 2 s interval).
            if flushes % 1800 == 1 {
                let retention_ms = i64::from(api_keys::USAGE_RETENTION_DAYS) * 86_400_000;
                let cutoff = crate::runtime::usage::day_of(crate::runtime::now_ms() - retention_ms);
                if let Err(e) = self.store.prune_key_usage(&cutoff).await {
                    tracing::warn!(error = %e, "usage pruning failed");
                }
                // Expired sessions are refused when presented; this only
                // keeps the table from growing with abandoned ones.
                let now = crate::runtime::now_ms();
                let idle_before = now - self.config.session_idle_timeout.as_millis() as i64;
                if let Err(e) = self.store.prune_sessions(now, idle_before).await {
                    tracing::warn!(error = %e, "session pruning failed");
                }
                // The event log keeps what a reconnecting stream may still
                // ask for; older positions get a `resync`.
                let before = now - self.config.event_retention.as_millis() as i64;
                if let Err(e) = self.store.prune_events(before).await {
                    tracing::warn!(error = %e, "event log pruning failed");
                }
                // A revoked token that has expired is refused as expired.
                if let Err(e) = self.store.prune_revoked_tokens(now).await {
                    tracing::warn!(error = %e, "revoked-token pruning failed");
                }
            }
        }
    }

    /// Writes coalesced usage counters; on failure they are kept for the next
    /// flush.
    pub async fn flush_usage(&self) {
        let batch = self.usage.drain();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_key_usage(&batch).await {
            tracing::warn!(error = %e, "usage flush failed; will retry");
            self.usage.restore(batch);
        }
    }

    /// Stops background tasks and flushes what is pending.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        self.events.close();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.flush_usage().await;
    }
}
