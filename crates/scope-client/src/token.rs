//! API key → JWT exchange, refreshed ahead of expiry, single-flight.
//!
//! The fast path is a read lock and an `Instant` comparison. When the token
//! is missing or due for refresh, callers queue on one async mutex; the first
//! exchanges, and the others find the new token (a newer generation) when
//! their turn comes, so any number of concurrent callers cause one exchange.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::ClientCredentials;
use crate::error::{ApiError, ConfigError, Error};
use crate::transport::{Request, Target, Transport};

pub(crate) const LOGIN_PATH: &str = "v1/auth/applications/login";
pub(crate) const LEGACY_PATH: &str = "v1/auth/sdk-token";

/// A bearer token and when to stop using it.
pub(crate) struct AccessToken {
    value: SecretString,
    /// Hard expiry: never sent after this.
    expires_at: Instant,
    /// Refresh from here on (expiry minus the refresh buffer).
    refresh_at: Instant,
    generation: u64,
}

impl AccessToken {
    pub(crate) fn value(&self) -> &SecretString {
        &self.value
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: f64,
    #[serde(default)]
    token_type: Option<String>,
}

pub(crate) struct TokenManager {
    credentials: ClientCredentials,
    login_url: Url,
    legacy_url: Url,
    refresh_buffer: Duration,
    current: RwLock<Option<Arc<AccessToken>>>,
    /// Serializes exchanges (single-flight).
    exchange_lock: tokio::sync::Mutex<u64>,
    /// The server answered 404 at the 0.2 endpoint; use the 0.1 one.
    use_legacy: AtomicBool,
}

impl TokenManager {
    pub(crate) fn new(
        credentials: ClientCredentials,
        auth_base: &Url,
        refresh_buffer: Duration,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            credentials,
            login_url: join(auth_base, LOGIN_PATH)?,
            legacy_url: join(auth_base, LEGACY_PATH)?,
            refresh_buffer,
            current: RwLock::new(None),
            exchange_lock: tokio::sync::Mutex::new(0),
            use_legacy: AtomicBool::new(false),
        })
    }

    pub(crate) fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    pub(crate) fn login_url(&self) -> &Url {
        &self.login_url
    }

    /// A token good for at least the refresh buffer (or, when it cannot be
    /// renewed right now, one that has not expired yet).
    pub(crate) async fn token(&self, transport: &Transport) -> Result<Arc<AccessToken>, Error> {
        let seen = {
            let guard = self.current.read();
            match guard.as_ref() {
                Some(t) if Instant::now() < t.refresh_at => return Ok(Arc::clone(t)),
                Some(t) => Some(t.generation),
                None => None,
            }
        };
        self.renew(transport, seen, false).await
    }

    /// The server refused the token of generation `rejected` with 401: get a
    /// new one, unless someone already did.
    pub(crate) async fn refresh_rejected(
        &self,
        transport: &Transport,
        rejected: u64,
    ) -> Result<Arc<AccessToken>, Error> {
        self.renew(transport, Some(rejected), true).await
    }

    /// Forget the token (the next call exchanges again).
    pub(crate) fn clear(&self) {
        *self.current.write() = None;
    }

    async fn renew(&self, transport: &Transport, seen: Option<u64>, rejected: bool) -> Result<Arc<AccessToken>, Error> {
        let mut generation = self.exchange_lock.lock().await;
        let now = Instant::now();
        let current = self.current.read().clone();
        if let Some(t) = &current {
            // Someone renewed while we waited for the lock: use theirs.
            if Some(t.generation) != seen && now < t.expires_at {
                return Ok(Arc::clone(t));
            }
        }
        let sent_at = Instant::now();
        match self.exchange(transport).await {
            Ok((value, lifetime)) => {
                *generation += 1;
                // Refresh `refresh_buffer` before expiry, but never before
                // half the lifetime, so short-lived tokens are still reused.
                let buffer = self.refresh_buffer.min(lifetime / 2);
                let token = Arc::new(AccessToken {
                    value,
                    expires_at: sent_at + lifetime,
                    refresh_at: sent_at + (lifetime - buffer),
                    generation: *generation,
                });
                *self.current.write() = Some(Arc::clone(&token));
                tracing::debug!(generation = *generation, lifetime_s = lifetime.as_secs_f64(), "obtained access token");
                Ok(token)
            }
            // A refresh ahead of expiry failed for a transient reason: the
            // current token is still valid, keep using it.
            Err(e) if e.is_transient() && !rejected => match current {
                Some(t) if now < t.expires_at => {
                    tracing::warn!(error = %e.chain(), "token refresh failed; using the current token until it expires");
                    Ok(t)
                }
                _ => Err(e),
            },
            Err(e) => {
                if matches!(e, Error::Authentication(_)) {
                    *self.current.write() = None;
                }
                Err(e)
            }
        }
    }

    async fn exchange(&self, transport: &Transport) -> Result<(SecretString, Duration), Error> {
        self.exchange_once(transport).await.map_err(|e| match e {
            // Say which key was refused and where it came from (with both
            // SCOPE_CLIENT_ID and SCOPE_API_KEY set, the former wins).
            Error::Authentication(mut d) => {
                let creds = &self.credentials;
                d.message = format!("{} (key {} from {})", d.message, creds.key_id(), creds.key_source());
                Error::Authentication(d)
            }
            other => other,
        })
    }

    async fn exchange_once(&self, transport: &Transport) -> Result<(SecretString, Duration), Error> {
        let creds = &self.credentials;
        if !self.use_legacy.load(Ordering::Relaxed) {
            let body = serde_json::json!({
                "account_id": creds.org_id(),
                "client_id": creds.key_id(),
                "client_secret": creds.secret().expose_secret(),
            });
            let req = Request {
                method: Method::POST,
                url: &self.login_url,
                body: Some(&body),
                target: Target::TokenExchange,
                if_none_match: None,
            };
            match transport.send_unauthenticated::<TokenResponse>(&req).await {
                Ok(r) => return parse_token(r),
                Err(Error::NotFound(_)) => {
                    tracing::info!("{LOGIN_PATH} not found; falling back to {LEGACY_PATH}");
                    self.use_legacy.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let body = serde_json::json!({
            "account_id": creds.org_id(),
            "key_id": creds.key_id(),
            "key_secret": creds.secret().expose_secret(),
        });
        let req = Request {
            method: Method::POST,
            url: &self.legacy_url,
            body: Some(&body),
            target: Target::TokenExchange,
            if_none_match: None,
        };
        let r = transport.send_unauthenticated::<TokenResponse>(&req).await.map_err(|e| match e {
            Error::NotFound(mut d) => {
                d.message = format!(
                    "no token endpoint at {} or {} (is SCOPE_AUTH_API_URL right?): {}",
                    self.login_url, self.legacy_url, d.message
                );
                Error::NotFound(d)
            }
            other => other,
        })?;
        parse_token(r)
    }
}

fn parse_token(r: TokenResponse) -> Result<(SecretString, Duration), Error> {
    let bad = |m: &str| Error::Decode(ApiError::client_side(format!("token response: {m}")));
    if let Some(t) = &r.token_type {
        if !t.eq_ignore_ascii_case("bearer") {
            return Err(bad("token_type is not Bearer"));
        }
    }
    if r.access_token.is_empty() {
        return Err(bad("empty access_token"));
    }
    if !r.expires_in.is_finite() || r.expires_in <= 0.0 {
        return Err(bad("expires_in is not a positive number"));
    }
    let lifetime = Duration::from_secs_f64(r.expires_in.min(1.0e9));
    Ok((SecretString::from(r.access_token), lifetime))
}

fn join(base: &Url, path: &str) -> Result<Url, ConfigError> {
    let s = format!("{}/{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&s).map_err(|e| ConfigError::new("auth_api_url", format!("cannot build {path} URL: {e}")))
}
