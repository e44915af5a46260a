//! API key management (SPEC §3): admins only; a key cannot mint a key with a
//! higher role than its own; the secret is returned once and stored as a
//! SHA-256 digest; revoke takes effect before the call returns.
//!
//! A key never outlives the key that made it: an API key acting as admin
//! creates keys that expire no later than itself (a later or absent
//! `expires_at` is a 400), and rotates only keys whose successor would not
//! outlive it (403). People (console, API sessions) and the CLI are not
//! bound this way. A successor keeps its predecessor's name, environment,
//! role and expiry.

use scope_domain::lifecycle::validate_key_name;
use scope_domain::{secret, DomainError, KeyId, OrgId, Role};
use scope_store::{ApiKeyRow, KeyListQuery, KeyStatus, UsageDay};
use secrecy::SecretString;
use serde_json::json;

use super::{audit, Actor, App, Page, Principal};
use crate::error::{AppError, NotFoundAs};
use crate::runtime::now_ms;
use crate::runtime::usage::day_of;

/// Default grace period of a rotation.
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;
/// Longest accepted grace period (one year).
pub const MAX_GRACE_SECONDS: u64 = 365 * 86_400;
/// Usage is kept this many days.
pub const USAGE_RETENTION_DAYS: u32 = 90;

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub environment: Option<String>,
    pub role: Option<Role>,
    pub expires_at: Option<i64>,
}

/// A key together with its one-time secret.
pub struct CreatedKey {
    pub key: ApiKeyRow,
    pub secret: SecretString,
}

pub fn validate_environment(env: &str) -> Result<(), AppError> {
    let n = env.chars().count();
    if (1..=64).contains(&n) && !env.chars().any(scope_domain::lifecycle::is_non_printing) {
        Ok(())
    } else {
        Err(DomainError::bad_request("environment must be 1-64 characters").into())
    }
}

/// Builds a new key row and its secret (no I/O).
pub fn new_key_row(org: OrgId, created_by: String, req: &NewKey, now: i64) -> Result<CreatedKey, AppError> {
    validate_key_name(&req.name)?;
    let environment = req.environment.clone().unwrap_or_else(|| "production".to_owned());
    validate_environment(&environment)?;
    if let Some(exp) = req.expires_at {
        if exp <= now {
            return Err(DomainError::bad_request("expires_at must be in the future").into());
        }
    }
    let s = secret::generate();
    let key = ApiKeyRow {
        key_id: KeyId::generate(),
        org_id: org,
        name: req.name.clone(),
        environment,
        role: req.role.unwrap_or_default(),
        secret_digest: *s.digest.as_bytes(),
        created_at: now,
        created_by,
        expires_at: req.expires_at,
        last_used_at: None,
        revoked_at: None,
        revoked_by: None,
        rotated_from: None,
    };
    Ok(CreatedKey { key, secret: s.plain })
}

fn check_role_ceiling(p: &Principal, wanted: Role) -> Result<(), AppError> {
    if wanted > p.role {
        return Err(DomainError::forbidden(format!(
            "cannot create a key with role {wanted}: above the caller's role {}",
            p.role
        ))
        .into());
    }
    Ok(())
}

/// When the caller is an API key that expires, its expiry: what a key it
/// creates or rotates may not outlive. Read from the store, so an expiry
/// lowered by a rotation counts at once. `None` for people, the CLI and
/// keys without an expiry.
async fn creator_expiry(app: &App, p: &Principal) -> Result<Option<i64>, AppError> {
    let Actor::Key(key_id) = p.actor else { return Ok(None) };
    match app.store.get_api_key(p.org, key_id).await {
        Ok(k) => Ok(k.expires_at),
        // The caller's own key is gone: its token is worth nothing.
        Err(scope_store::StoreError::NotFound) => Err(AppError::Unauthorized),
        Err(e) => Err(e.into()),
    }
}

/// A key created by an expiring key must set `expires_at`, no later than
/// its creator's (rejected rather than clamped: the caller learns the
/// lifetime it gets).
fn check_expiry_ceiling(limit: Option<i64>, wanted: Option<i64>) -> Result<(), AppError> {
    let Some(limit) = limit else { return Ok(()) };
    let at = crate::views::ts(limit);
    match wanted {
        None => Err(DomainError::bad_request(format!(
            "expires_at is required: the API key making this call expires at {at}, and a key it creates \
             cannot outlive it"
        ))
        .into()),
        Some(e) if e > limit => Err(DomainError::bad_request(format!(
            "expires_at must not be later than {at}, when the API key making this call expires"
        ))
        .into()),
        Some(_) => Ok(()),
    }
}

pub async fn create(app: &App, p: &Principal, req: NewKey) -> Result<CreatedKey, AppError> {
    p.require(Role::Admin)?;
    check_role_ceiling(p, req.role.unwrap_or_default())?;
    check_expiry_ceiling(creator_expiry(app, p).await?, req.expires_at)?;
    let created = new_key_row(p.org, p.actor.id(), &req, now_ms())?;
    let max = app.config.max_keys_per_org;
    if app.store.count_active_api_keys(p.org, now_ms()).await? >= max {
        return Err(DomainError::conflict(format!(
            "quota reached: at most {max} active API keys per organization (SCOPE_MAX_KEYS_PER_ORG); revoke \
             unused keys first; nothing was created"
        ))
        .into());
    }
    let ev = audit::event(
        p,
        "api_key.created",
        created.key.key_id,
        json!({"name": created.key.name, "role": created.key.role, "environment": created.key.environment}),
    );
    app.store.insert_api_key(&created.key, &ev).await?;
    // A cached "unknown key" for this id (impossible with fresh ULIDs, but
    // cheap to rule out) must not outlive the insert.
    app.keys.invalidate(&created.key.key_id);
    if let Some(exp) = created.key.expires_at {
        app.gates.mark_expiry(created.key.key_id, exp);
    }
    Ok(created)
}

/// Merges not-yet-flushed usage into `last_used_at`.
pub fn with_pending_usage(app: &App, mut key: ApiKeyRow) -> ApiKeyRow {
    if let (Some(pending), _) = app.usage.pending_for(&key.key_id) {
        key.last_used_at = Some(key.last_used_at.map_or(pending, |l| l.max(pending)));
    }
    key
}

pub async fn list(
    app: &App,
    p: &Principal,
    status: Option<KeyStatus>,
    page: scope_store::PageQuery,
) -> Result<Page<ApiKeyRow>, AppError> {
    p.require(Role::Admin)?;
    let query = KeyListQuery { page: page.clone(), status, now_ms: now_ms() };
    let rows = app.store.list_api_keys(p.org, &query).await?;
    let rows = rows.into_iter().map(|k| with_pending_usage(app, k)).collect();
    Ok(Page::from_rows(rows, &page, |k: &ApiKeyRow| k.key_id.to_string()))
}

pub fn parse_key_id(s: &str) -> Result<KeyId, AppError> {
    // An unparseable id can't exist: answer like an unknown one.
    s.parse().map_err(|_| DomainError::not_found("API key not found").into())
}

pub async fn get(app: &App, p: &Principal, key: &str) -> Result<ApiKeyRow, AppError> {
    p.require(Role::Admin)?;
    let key = app.store.get_api_key(p.org, parse_key_id(key)?).await.not_found_as("API key")?;
    Ok(with_pending_usage(app, key))
}

pub async fn revoke(app: &App, p: &Principal, key: &str) -> Result<ApiKeyRow, AppError> {
    p.require(Role::Admin)?;
    let key_id = parse_key_id(key)?;
    let ev = audit::event(p, "api_key.revoked", key_id, json!({}));
    let row = app.store.revoke_api_key(p.org, key_id, &p.actor.id(), now_ms(), &ev).await.not_found_as("API key")?;
    // Before the call returns, this process refuses the key's tokens; other
    // processes see it at their next poll.
    app.gates.mark_revoked(key_id);
    // The log holds `api_key.revoked`: streams hear of it now.
    app.events.wake();
    Ok(with_pending_usage(app, row))
}

/// Creates the successor and makes the old key expire after the grace period.
/// Returns (old key updated, successor with its secret).
pub async fn rotate(
    app: &App,
    p: &Principal,
    key: &str,
    grace_seconds: Option<u64>,
) -> Result<(ApiKeyRow, CreatedKey), AppError> {
    p.require(Role::Admin)?;
    let key_id = parse_key_id(key)?;
    let grace = grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(DomainError::bad_request(format!("grace_seconds must be at most {MAX_GRACE_SECONDS}")).into());
    }
    let old = app.store.get_api_key(p.org, key_id).await.not_found_as("API key")?;
    let now = now_ms();
    match old.status_at(now) {
        KeyStatus::Active => {}
        KeyStatus::Revoked => return Err(DomainError::conflict("a revoked key cannot be rotated").into()),
        KeyStatus::Expired => return Err(DomainError::conflict("an expired key cannot be rotated").into()),
    }
    check_role_ceiling(p, old.role)?;
    // The successor keeps the predecessor's expiry: rotating changes the
    // secret, never how long the key may be used.
    if let Some(limit) = creator_expiry(app, p).await? {
        if old.expires_at.is_none_or(|e| e > limit) {
            return Err(DomainError::forbidden(format!(
                "the API key making this call expires at {}; it cannot rotate a key that outlives it \
                 (rotate it as a signed-in admin, with the CLI, or with a key that lives as long)",
                crate::views::ts(limit)
            ))
            .into());
        }
    }
    let req = NewKey {
        name: old.name.clone(),
        environment: Some(old.environment.clone()),
        role: Some(old.role),
        expires_at: old.expires_at,
    };
    let mut created = new_key_row(p.org, p.actor.id(), &req, now)?;
    created.key.rotated_from = Some(key_id);
    let old_expires_at = now + (grace as i64) * 1000;
    let ev = audit::event(
        p,
        "api_key.rotated",
        key_id,
        json!({"successor": created.key.key_id.to_string(), "grace_seconds": grace}),
    );
    let old =
        app.store.rotate_api_key(p.org, key_id, old_expires_at, &created.key, &ev).await.not_found_as("API key")?;
    if let Some(exp) = old.expires_at {
        app.gates.mark_expiry(key_id, exp);
    }
    Ok((with_pending_usage(app, old), created))
}

/// Exchanges per UTC day for the last `days` days (oldest first, zeros
/// filled in), including counts not yet flushed.
pub async fn usage(app: &App, p: &Principal, key: &str, days: u32) -> Result<(KeyId, Vec<UsageDay>), AppError> {
    p.require(Role::Admin)?;
    if !(1..=USAGE_RETENTION_DAYS).contains(&days) {
        return Err(DomainError::bad_request(format!("days must be between 1 and {USAGE_RETENTION_DAYS}")).into());
    }
    let key_id = parse_key_id(key)?;
    let now = now_ms();
    let first = now - i64::from(days - 1) * 86_400_000;
    let since = day_of(first);
    // The store answers NotFound for a key outside the caller's organization.
    let stored = app.store.key_usage(p.org, key_id, &since).await.not_found_as("API key")?;
    let (_, pending) = app.usage.pending_for(&key_id);
    let mut out = Vec::with_capacity(days as usize);
    for i in 0..days {
        let day = day_of(first + i64::from(i) * 86_400_000);
        let count = stored.iter().filter(|u| u.day == day).map(|u| u.count).sum::<u64>()
            + pending.get(&day).copied().unwrap_or(0);
        out.push(UsageDay { day, count });
    }
    Ok((key_id, out))
}

/// Why a key should be reviewed: unused for 90 days, or older than 90 days.
pub fn review_reasons(key: &ApiKeyRow, now: i64) -> Vec<&'static str> {
    let ninety = 90 * 86_400_000;
    let mut out = Vec::new();
    if key.status_at(now) != KeyStatus::Active {
        return out;
    }
    if now - key.last_used_at.unwrap_or(key.created_at) >= ninety {
        out.push("unused_90_days");
    }
    if now - key.created_at >= ninety {
        out.push("older_than_90_days");
    }
    out
}
