//! Console sessions: sign-in with email and password, an opaque random
//! session id in a cookie (stored only as its SHA-256 digest), idle and
//! absolute expiry, sign-out that ends the session server-side, and the
//! per-session CSRF token.
//!
//! A session is resolved against the database on every request, with the
//! user row as it is now: a role change applies to the very next request of
//! an open session, and removing a user (which deletes their sessions) ends
//! them at once — on every replica, since nothing is cached in memory.
//!
//! Sign-in failures are limited per account and per client address, and
//! every failure gives the same answer whether or not the email exists (an
//! unknown account still costs one Argon2 verification).

use std::net::IpAddr;

use base64::Engine;
use scope_domain::{DomainError, ErrorCode};
use scope_store::{SessionRow, UserRow};
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::passwords::{random_token, token_digest, verify_password};
use super::users::normalize_email;
use super::{audit, Actor, App, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;

/// Name of the session cookie.
pub const COOKIE: &str = "scope_session";
/// `last_seen_at` is written at most this often per session (more often
/// when the idle timeout is short).
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new session: the cookie value (shown to the browser only) and the user.
pub struct NewSession {
    pub token: SecretString,
    pub user: UserRow,
    pub max_age_secs: u64,
}

/// A resolved session. `Debug` shows neither the digest the cookie is
/// looked up by nor the CSRF token.
#[derive(Clone)]
pub struct Session {
    pub principal: Principal,
    pub user: UserRow,
    pub digest: [u8; 32],
    /// The token forms and scripts send back on state-changing requests.
    pub csrf_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.principal)
            .field("user", &self.user)
            .field("digest", &"[redacted]")
            .field("csrf_token", &"[redacted]")
            .finish()
    }
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(self.csrf_token.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// The CSRF token of a session: derived from the session id, so it needs no
/// storage, and not computable from the stored digest.
pub fn csrf_token_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"scope-csrf\0");
    h.update(session_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

fn sign_in_refused() -> AppError {
    DomainError::new(ErrorCode::InvalidCredentials, "invalid email or password").into()
}

fn principal_of(user: &UserRow) -> Principal {
    Principal { org: user.org_id, actor: Actor::User(user.user_id), role: user.role, environment: None, scopes: None }
}

pub async fn sign_in(app: &App, client: IpAddr, email: &str, password: SecretString) -> Result<NewSession, AppError> {
    let now = now_ms();
    // An unparseable email is just another failure: same answer.
    let account = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
    // Passwords can be guessed, unlike API secrets: the limits are checked
    // before any verification. Addresses are counted by bucket (IPv6 /64).
    let bucket = crate::net::limiter_bucket(client);
    let retry = [app.sign_in_ip_failures.check(&bucket, now), app.sign_in_account_failures.check(&account, now)];
    if let Some(secs) = retry.into_iter().flatten().max() {
        return Err(AppError::RateLimited(secs));
    }
    let user = app.store.find_user_by_email(&account).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_default();
    let ok = verify_password(password, stored).await;
    let user = match user {
        Some(u) if ok => u,
        known => {
            app.sign_in_ip_failures.record_failure(bucket, now);
            app.sign_in_account_failures.record_failure(account, now);
            tracing::info!(%client, "sign-in refused");
            // A failure on a real account goes to its organization's audit
            // log; one on an unknown email has no organization to go to.
            if let Some(u) = known {
                let details = json!({"client": client.to_string()});
                let ev = audit::event(&principal_of(&u), "user.sign_in_failed", u.user_id, details);
                app.store.insert_audit(&ev).await?;
            }
            return Err(sign_in_refused());
        }
    };
    let token = random_token();
    let max_age = app.config.session_max_age;
    let session = SessionRow {
        session_digest: token_digest(&token),
        org_id: user.org_id,
        user_id: user.user_id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + max_age.as_millis() as i64,
    };
    let ev = audit::event(&principal_of(&user), "user.signed_in", user.user_id, json!({"client": client.to_string()}));
    app.store.create_session(&session, &ev).await?;
    Ok(NewSession { token: SecretString::from(token), user, max_age_secs: max_age.as_secs() })
}

/// Resolves a session cookie value; `Unauthorized` when unknown, expired or
/// idle too long.
pub async fn resolve(app: &App, token: &str) -> Result<Session, AppError> {
    if token.is_empty() || token.len() > 128 {
        return Err(AppError::Unauthorized);
    }
    let digest = token_digest(token);
    let (session, user) = app.store.get_session(&digest).await?.ok_or(AppError::Unauthorized)?;
    let now = now_ms();
    let idle_ms = app.config.session_idle_timeout.as_millis() as i64;
    if session.expires_at <= now || session.last_seen_at + idle_ms <= now {
        app.store.delete_session(&digest, None).await?;
        return Err(AppError::Unauthorized);
    }
    // Often enough that an active session never looks idle, whatever the
    // configured idle timeout.
    if now - session.last_seen_at >= TOUCH_EVERY_MS.min(idle_ms / 4) {
        app.store.touch_session(&digest, now).await?;
    }
    Ok(Session { principal: principal_of(&user), user, digest, csrf_token: csrf_token_for(token) })
}

/// Ends the session server-side.
pub async fn sign_out(app: &App, session: &Session) -> Result<(), AppError> {
    let ev = audit::event(&session.principal, "user.signed_out", session.user.user_id, json!({}));
    app.store.delete_session(&session.digest, Some(&ev)).await?;
    Ok(())
}

/// Forms and scripts of the console send the CSRF token back; anything that
/// changes state with a session and without it is refused.
pub fn check_csrf(session: &Session, given: Option<&str>) -> Result<(), AppError> {
    match given {
        Some(t) if session.csrf_matches(t) => Ok(()),
        _ => Err(DomainError::forbidden("missing or invalid CSRF token").into()),
    }
}

/// A user whose password is a one-time initial one may do nothing but change
/// it.
pub fn require_password_current(session: &Session) -> Result<(), AppError> {
    if session.user.must_change_password {
        return Err(DomainError::forbidden("choose a new password first (the initial password was one-time)").into());
    }
    Ok(())
}

/// Keeps the session token out of `Debug` output.
impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("user", &self.user.user_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::ServerConfig;
    use crate::service::bootstrap;

    async fn app_with(idle: Duration, max_age: Duration) -> (App, bootstrap::NewOrg) {
        let store = scope_store::open("sqlite::memory:").await.unwrap_or_else(|e| panic!("store: {e}"));
        let mut config = ServerConfig::new("sqlite::memory:");
        config.session_idle_timeout = idle;
        config.session_max_age = max_age;
        let org =
            bootstrap::create_org(store.as_ref(), "Acme", "admin@acme.test").await.unwrap_or_else(|e| panic!("{e}"));
        let app = App::start(store, config).await.unwrap_or_else(|e| panic!("{e}"));
        (app, org)
    }

    async fn sign_in_admin(app: &App, org: &bootstrap::NewOrg) -> String {
        let pw = SecretString::from(org.admin_password.expose_secret().to_owned());
        let new =
            sign_in(app, IpAddr::from([127, 0, 0, 1]), &org.admin_email, pw).await.unwrap_or_else(|e| panic!("{e}"));
        new.token.expose_secret().to_owned()
    }

    // The CLI accepts at least 60 s for either limit; in process, the same
    // code runs with limits short enough to watch them pass.
    #[tokio::test]
    async fn a_session_ends_after_its_idle_timeout() {
        let (app, org) = app_with(Duration::from_millis(300), Duration::from_secs(3600)).await;
        let token = sign_in_admin(&app, &org).await;
        assert!(resolve(&app, &token).await.is_ok());
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(matches!(resolve(&app, &token).await, Err(AppError::Unauthorized)));
        // And it is gone server-side, not just refused once.
        assert!(app.store.get_session(&token_digest(&token)).await.ok().flatten().is_none());
    }

    #[tokio::test]
    async fn an_active_session_outlives_its_idle_timeout() {
        let (app, org) = app_with(Duration::from_millis(2000), Duration::from_secs(3600)).await;
        let token = sign_in_admin(&app, &org).await;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(350)).await;
            assert!(resolve(&app, &token).await.is_ok(), "an active session must not time out");
        }
    }

    #[tokio::test]
    async fn a_session_ends_at_its_absolute_expiry_even_when_used() {
        let (app, org) = app_with(Duration::from_secs(3600), Duration::from_millis(1500)).await;
        let token = sign_in_admin(&app, &org).await;
        for _ in 0..3 {
            assert!(resolve(&app, &token).await.is_ok());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(matches!(resolve(&app, &token).await, Err(AppError::Unauthorized)));
    }

    #[tokio::test]
    async fn the_csrf_token_is_bound_to_the_session() {
        let (app, org) = app_with(Duration::from_secs(60), Duration::from_secs(60)).await;
        let (a, b) = (sign_in_admin(&app, &org).await, sign_in_admin(&app, &org).await);
        let sa = resolve(&app, &a).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(check_csrf(&sa, Some(&csrf_token_for(&a))).is_ok());
        assert!(check_csrf(&sa, Some(&csrf_token_for(&b))).is_err());
        assert!(check_csrf(&sa, None).is_err());
        assert!(check_csrf(&sa, Some("")).is_err());
    }
}
