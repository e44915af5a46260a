//! The token exchange (API key → JWT) and bearer-token authentication.
//!
//! Exchange: every credential failure — unknown org, unknown key, key of
//! another org, wrong secret, revoked, expired — ends in the same
//! [`AppError::InvalidCredentials`], and the work done does not depend on
//! which check failed: the digest is always computed and compared (against a
//! dummy digest when the key is unknown), the organization is compared in
//! constant time, and the results are combined without early exit.

use std::net::IpAddr;
use std::sync::Arc;

use scope_domain::jwt::Claims;
use scope_domain::secret::SecretDigest;
use scope_domain::secret_format;
use scope_domain::{KeyId, OrgId, ScopeSet};
use scope_store::KeyStatus;
use subtle::ConstantTimeEq;

use super::{Actor, App, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;
use crate::runtime::token_cache::VerifiedToken;

/// The credentials of one exchange, whichever endpoint they came through.
pub struct Credentials<'a> {
    /// `account_id`; `None` for OAuth (the key names its organization).
    pub org: Option<&'a str>,
    pub key_id: &'a str,
    pub secret: &'a str,
}

/// A freshly signed access token. Its text is never logged.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    /// The scopes granted (also in the token's `scope` claim).
    pub scope: ScopeSet,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A client (API key) whose credentials were just checked.
#[derive(Debug, Clone)]
pub struct Client {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub row: scope_store::ApiKeyRow,
}

/// Digest compared against when the key id is unknown, so that path costs the
/// same as a wrong secret.
fn dummy_digest() -> &'static SecretDigest {
    static DUMMY: std::sync::OnceLock<SecretDigest> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| SecretDigest::of("secret_dummy"))
}

/// The exchange of the JSON endpoints: a token with the key's full scope.
pub async fn exchange(app: &App, client: IpAddr, creds: Credentials<'_>) -> Result<IssuedToken, AppError> {
    let client = authenticate_client(app, client, &creds).await?;
    let scope = ScopeSet::of_role(client.row.role);
    Ok(issue(app, &client, scope, None))
}

/// Signs a token for an authenticated client with the given (already
/// checked) scope and audience, and counts the exchange.
pub fn issue(app: &App, client: &Client, scope: ScopeSet, aud: Option<String>) -> IssuedToken {
    let now = now_ms();
    let ttl_ms = app.config.token_ttl.as_millis() as i64;
    // A token never outlives its key.
    let key_expiry = match (client.row.expires_at, app.gates.expires_at(&client.key_id)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let exp_ms = key_expiry.map_or(now + ttl_ms, |e| e.min(now + ttl_ms));
    let claims = Claims {
        iss: app.issuer(),
        sub: client.key_id.to_string(),
        org: client.org_id.to_string(),
        role: client.row.role,
        env: client.row.environment.clone(),
        iat: now / 1000,
        exp: exp_ms / 1000,
        jti: ulid::Ulid::new().to_string(),
        scope: Some(scope.to_string()),
        aud,
    };
    let access_token = app.signing.signer().sign(&claims);
    app.usage.record(client.key_id, now);
    IssuedToken { access_token, expires_in: (claims.exp - claims.iat).max(0), scope }
}

/// Checks a client's credentials (also for OAuth revocation and
/// introspection). Every failure is the same
/// [`AppError::InvalidCredentials`], or `RateLimited` once the client is
/// over its limit.
///
/// Credentials are always checked, and credentials that verify are always
/// served, whatever the limiter says: a secret is 256 random bits, so no
/// rate of guessing finds one, and refusing a valid key only locks out the
/// applications that share an address with whoever sends junk (a NAT, a
/// proxy that is not configured as trusted). What the limiter does is turn
/// failures into `429` with `Retry-After` — the SDKs back off — per client
/// address (IPv6 by /64) and, tighter, per client address and key id, so
/// one key hammered from an address is limited on its own. A pair over its
/// limit stops adding to its address's count: one broken or attacked key
/// does not make every other key's failures from that address `429`.
pub async fn authenticate_client(app: &App, client: IpAddr, creds: &Credentials<'_>) -> Result<Client, AppError> {
    let now = now_ms();
    let result = check_credentials(app, creds, now).await;
    match result {
        Ok((key_id, org_id, row)) => Ok(Client { key_id, org_id, row }),
        Err(AppError::InvalidCredentials) => {
            let bucket = crate::net::limiter_bucket(client);
            let pair = creds.key_id.parse::<KeyId>().ok().and_then(|k| app.key_failures.record_failure((bucket, k), now));
            let address = match pair {
                // The pair is over its own limit: the address is not charged.
                Some(_) => app.failures.check(&bucket, now),
                None => app.failures.record_failure(bucket, now),
            };
            tracing::info!(%client, "token exchange refused");
            match pair.max(address) {
                Some(retry_after) => Err(AppError::RateLimited(retry_after)),
                None => Err(AppError::InvalidCredentials),
            }
        }
        Err(other) => Err(other),
    }
}

async fn check_credentials(
    app: &App,
    creds: &Credentials<'_>,
    now: i64,
) -> Result<(KeyId, OrgId, scope_store::ApiKeyRow), AppError> {
    // The checksum is public: rejecting a malformed secret before any look-up
    // reveals nothing about stored keys.
    if !secret_format::is_well_formed(creds.secret) {
        return Err(AppError::InvalidCredentials);
    }
    let Ok(key_id) = creds.key_id.parse::<KeyId>() else {
        return Err(AppError::InvalidCredentials);
    };
    let row = match app.keys.get(&key_id) {
        Some(cached) => cached,
        None => {
            let row = app.store.find_api_key(key_id).await?.map(Arc::new);
            app.keys.insert(key_id, row.clone());
            row
        }
    };
    let given = SecretDigest::of(creds.secret);
    let (expected, row_org) = match &row {
        Some(r) => (SecretDigest::from_bytes(&r.secret_digest), r.org_id.to_string()),
        None => (None, String::new()),
    };
    let expected = expected.unwrap_or_else(|| dummy_digest().clone());
    let secret_ok = given.matches(&expected);
    let org_ok = match creds.org {
        Some(org) => bool::from(org.as_bytes().ct_eq(row_org.as_bytes())),
        None => true,
    };
    let active =
        row.as_ref().is_some_and(|r| r.status_at(now) == KeyStatus::Active && app.gates.is_active(&r.key_id, now));
    match row {
        Some(r) if secret_ok & org_ok & active => Ok((key_id, r.org_id, (*r).clone())),
        _ => Err(AppError::InvalidCredentials),
    }
}

/// Resolves a bearer token to its principal. Verified tokens are cached, but
/// expiry, the key's revocation gate and the token's own revocation are
/// checked on every call (in memory: no database query). The Scope API
/// accepts tokens without `aud` or whose `aud` names it (the issuer).
pub fn authenticate(app: &App, token: &str) -> Result<Principal, AppError> {
    let now = now_ms();
    let verified = verify_token(app, token, now)?;
    if !app.accepts_audience(verified.claims.aud.as_deref()) {
        tracing::debug!("bearer token refused: meant for another audience");
        return Err(AppError::Unauthorized);
    }
    let scopes = verified.claims.scopes().ok_or(AppError::Unauthorized)?;
    Ok(Principal {
        org: verified.org_id,
        actor: Actor::Key(verified.key_id),
        role: verified.claims.role,
        environment: Some(verified.claims.env.clone()),
        scopes: Some(scopes),
    })
}

/// A token of this issuer that is valid now: signature, `iss`, `exp`, its
/// key active and the token itself not revoked. Any audience.
pub fn verify_token(app: &App, token: &str, now: i64) -> Result<Arc<VerifiedToken>, AppError> {
    let verified = match app.tokens.get(token) {
        Some(v) => v,
        None => {
            let keyset = app.signing.keyset();
            let claims = keyset.verify(token, &app.issuer(), now / 1000).map_err(|e| {
                tracing::debug!(reason = %e, "bearer token refused");
                AppError::Unauthorized
            })?;
            let (Some(key_id), Some(org_id)) = (claims.key_id(), claims.org_id()) else {
                return Err(AppError::Unauthorized);
            };
            let v = Arc::new(VerifiedToken { claims, key_id, org_id });
            app.tokens.insert(token, v.clone());
            v
        }
    };
    if verified.claims.exp * 1000 <= now
        || !app.gates.is_active(&verified.key_id, now)
        || app.revoked_tokens.is_revoked(&verified.claims.jti)
    {
        return Err(AppError::Unauthorized);
    }
    Ok(verified)
}
