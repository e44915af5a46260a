//! OAuth 2.0 on top of the token exchange: the client-credentials grant with
//! `scope` and an audience (RFC 6749 §4.4, RFC 8707), token revocation
//! (RFC 7009) and introspection (RFC 7662). `http::oauth` parses the forms
//! and shapes the RFC 6749 answers; the rules live here.
//!
//! - Scope: a token may be narrowed below its key's role, never widened
//!   (`scope_domain::scopes` has the mapping).
//! - Audience: `resource` or `audience` sets `aud` when the value is the
//!   Scope API itself (the issuer), one of `ServerConfig::token_audiences`
//!   (deployment-wide), or one the key's organization allows
//!   (`PUT /api/v1/org/audiences`, read from the store only then).
//! - Revocation: a key revokes its own tokens; an admin key any token of its
//!   organization. Anything else — another organization's token, a
//!   malformed, expired or already revoked one — is answered like an unknown
//!   token (200, nothing done), so a caller learns nothing about tokens it
//!   holds no right over.
//! - Introspection: an admin of the token's organization only; every token
//!   that is not active for that organization is `{"active": false}`.

use std::net::IpAddr;

use scope_domain::{DomainError, Role, ScopeSet};
use scope_store::RevokedTokenRow;
use serde_json::{json, Value};

use super::auth::{authenticate_client, issue, verify_token, Client, Credentials, IssuedToken};
use super::{audit, Actor, App, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;

/// What the client asked of its token besides its credentials.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The `scope` parameter, space-separated.
    pub scope: Option<&'a str>,
    /// The `resource` (RFC 8707) or `audience` parameter.
    pub audience: Option<&'a str>,
}

/// Why a client-credentials request was refused.
#[derive(Debug)]
pub enum GrantError {
    /// Authentication failed or was rate limited, or the server failed: as
    /// the JSON endpoints have it.
    Client(AppError),
    /// RFC 6749 `invalid_scope`: unknown, or wider than the key's role.
    InvalidScope(String),
    /// RFC 8707 `invalid_target`: an audience this deployment does not allow.
    InvalidTarget(String),
}

impl App {
    /// Whether the Scope API accepts a token whose `aud` is this: none, or
    /// the Scope API itself (the issuer).
    pub fn accepts_audience(&self, aud: Option<&str>) -> bool {
        aud.is_none_or(|a| a == self.issuer.read().as_str())
    }

    /// Whether a token may be issued for this audience: the Scope API
    /// itself, or one the deployment allows (`--token-audiences`).
    pub fn audience_allowed(&self, aud: &str) -> bool {
        self.accepts_audience(Some(aud)) || self.config.token_audiences.iter().any(|a| a == aud)
    }
}

/// The client-credentials grant: authenticate the key, then grant the scope
/// asked for (or the key's full scope) and the audience.
pub async fn client_credentials(
    app: &App,
    ip: IpAddr,
    creds: Credentials<'_>,
    req: TokenRequest<'_>,
) -> Result<IssuedToken, GrantError> {
    let client = authenticate_client(app, ip, &creds).await.map_err(GrantError::Client)?;
    let allowed = ScopeSet::of_role(client.row.role);
    let scope = match req.scope.filter(|s| !s.trim().is_empty()) {
        None => allowed,
        Some(asked) => {
            let asked = ScopeSet::parse(asked).map_err(|e| GrantError::InvalidScope(e.to_string()))?;
            if !asked.is_subset_of(allowed) {
                return Err(GrantError::InvalidScope(format!(
                    "the scope asked for is wider than this key's role ({}) allows: {allowed}",
                    client.row.role
                )));
            }
            asked
        }
    };
    // The organization's own list is read only when an audience is asked
    // for and the deployment does not allow it already: the exchange
    // without one never queries.
    let aud = match req.audience {
        None => None,
        Some(aud) if app.audience_allowed(aud) => Some(aud.to_owned()),
        Some(aud) => {
            let org_allows = app.store.list_audiences(client.org_id).await.map_err(|e| GrantError::Client(e.into()))?;
            if !org_allows.iter().any(|a| a == aud) {
                return Err(GrantError::InvalidTarget(
                    "this audience is not allowed for tokens of this server or organization".into(),
                ));
            }
            Some(aud.to_owned())
        }
    };
    Ok(issue(app, &client, scope, aud))
}

/// The caller a client's credentials make: its key with its full role.
pub fn principal_of(client: &Client) -> Principal {
    Principal {
        org: client.org_id,
        actor: Actor::Key(client.key_id),
        role: client.row.role,
        environment: Some(client.row.environment.clone()),
        scopes: None,
    }
}

/// RFC 7009: revokes one access token, by its `jti`, for the whole
/// deployment: on this process before returning, on others within a poll
/// (at once where the store pushes changes). The key stays active.
pub async fn revoke(app: &App, ip: IpAddr, creds: Credentials<'_>, token: &str) -> Result<(), AppError> {
    let client = authenticate_client(app, ip, &creds).await?;
    let now = now_ms();
    let Ok(verified) = verify_token(app, token, now) else {
        return Ok(());
    };
    let own = verified.key_id == client.key_id;
    if verified.org_id != client.org_id || !(own || client.row.role == Role::Admin) {
        return Ok(());
    }
    let claims = &verified.claims;
    let expires_at = claims.exp.saturating_mul(1000);
    let p = principal_of(&client);
    let ev = audit::event(&p, "api_key.token_revoked", verified.key_id, json!({ "jti": claims.jti }));
    let row = RevokedTokenRow {
        jti: claims.jti.clone(),
        org_id: verified.org_id,
        key_id: verified.key_id,
        expires_at,
        revoked_at: now,
        revoked_by: p.actor.id(),
        change_seq: 0,
    };
    app.store.revoke_token(&row, &ev).await?;
    app.revoked_tokens.mark(&claims.jti, expires_at);
    Ok(())
}

/// RFC 7662: what an admin of the token's organization may know of it.
pub fn introspect(app: &App, caller: &Principal, token: &str) -> Result<Value, AppError> {
    caller.require(Role::Admin)?;
    let inactive = json!({ "active": false });
    let Ok(verified) = verify_token(app, token, now_ms()) else {
        return Ok(inactive);
    };
    let claims = &verified.claims;
    let Some(scope) = claims.scopes() else {
        return Ok(inactive);
    };
    if verified.org_id != caller.org {
        return Ok(inactive);
    }
    let mut out = json!({
        "active": true,
        "scope": scope.to_string(),
        "client_id": claims.sub,
        "sub": claims.sub,
        "org": claims.org,
        "role": claims.role,
        "env": claims.env,
        "token_type": "Bearer",
        "exp": claims.exp,
        "iat": claims.iat,
        "iss": claims.iss,
        "jti": claims.jti,
    });
    if let Some(aud) = &claims.aud {
        out["aud"] = json!(aud);
    }
    Ok(out)
}

// ---- the audiences an organization allows (RFC 8707) ---------------------------------

/// Most audiences one organization may allow.
pub const MAX_ORG_AUDIENCES: usize = 50;
/// Longest audience, in characters.
pub const MAX_AUDIENCE_CHARS: usize = 255;

/// An audience is an absolute `https://` or `http://` URI with a host, or a
/// plain identifier (no scheme); 1–255 characters, no whitespace or control
/// characters.
fn check_audience(a: &str) -> Result<(), DomainError> {
    let bad = |why: &str| DomainError::bad_request(format!("audience {a:?} {why}"));
    let n = a.chars().count();
    if n == 0 || n > MAX_AUDIENCE_CHARS {
        return Err(bad(&format!("must be 1 to {MAX_AUDIENCE_CHARS} characters")));
    }
    if a.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain whitespace or control characters"));
    }
    if a.contains("://") {
        let rest = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        if host.is_none_or(str::is_empty) {
            return Err(bad("must be an absolute https:// or http:// URI with a host, or a plain identifier"));
        }
    }
    Ok(())
}

/// Checks a requested set of audiences; returns it sorted, without repeats.
pub fn validate_audiences(wanted: &[String]) -> Result<Vec<String>, DomainError> {
    if wanted.len() > MAX_ORG_AUDIENCES {
        return Err(DomainError::bad_request(format!("at most {MAX_ORG_AUDIENCES} audiences can be allowed")));
    }
    for a in wanted {
        check_audience(a)?;
    }
    let mut out = wanted.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The audiences the caller's organization allows in its tokens' `aud`.
pub async fn org_audiences(app: &App, p: &Principal) -> Result<Vec<String>, AppError> {
    p.require(Role::Viewer)?;
    Ok(app.store.list_audiences(p.org).await?)
}

/// Replaces the audiences the organization allows (admins), audited as
/// `org.audiences_changed`; returns them as stored. Tokens already issued
/// keep their `aud`.
pub async fn set_org_audiences(app: &App, p: &Principal, wanted: &[String]) -> Result<Vec<String>, AppError> {
    p.require(Role::Admin)?;
    let set = validate_audiences(wanted)?;
    let before = app.store.list_audiences(p.org).await?;
    let ev = audit::event(p, "org.audiences_changed", p.org, json!({"from": before, "to": set}));
    app.store.set_audiences(p.org, &set, &ev).await?;
    Ok(set)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod audience_tests {
    use super::*;

    #[test]
    fn audiences_are_uris_or_identifiers() {
        let ok = |v: &[&str]| validate_audiences(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            ok(&["https://gateway.example", "billing-api", "https://gateway.example"]).expect("valid"),
            vec!["billing-api".to_owned(), "https://gateway.example".to_owned()]
        );
        assert!(ok(&["http://internal:8080/api", "urn:example:api"]).is_ok());
        for bad in ["", "ftp://x", "https://", "has space", "tab\tin", "https:///path"] {
            assert!(ok(&[bad]).is_err(), "{bad:?}");
        }
        assert!(ok(&[&"a".repeat(256)]).is_err());
        assert!(ok(&[&"a".repeat(255)]).is_ok());
        let many: Vec<String> = (0..51).map(|i| format!("api-{i}")).collect();
        assert!(validate_audiences(&many).is_err());
    }
}
