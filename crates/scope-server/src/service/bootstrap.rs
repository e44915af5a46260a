//! Creating organizations: the first one (`scope init`, or `scope serve` on
//! an empty database) and further tenants (`scope org create`). Each comes
//! with an admin user (random password) and an admin API key; both secrets
//! are shown once, to the operator, and stored only as hashes.
//!
//! `scope serve` bootstraps only an empty database, atomically in the store
//! (`Store::bootstrap_org`): replicas starting at once on one new database
//! make one organization, printed by the one that made it. Its admin API key
//! expires (`SCOPE_BOOTSTRAP_KEY_TTL_HOURS`, default 24 h): it is printed to
//! a terminal or a log, and is meant to get the operator in, not to run
//! applications.

use scope_domain::{OrgId, Role, UserId};
use scope_store::{AuditRow, OrgRow, Store, UserRow};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::api_keys::{new_key_row, NewKey};
use super::passwords::{hash_password, random_password};
use super::users::normalize_email;
use super::{audit, App, Principal};
use crate::error::AppError;
use crate::runtime::now_ms;
use scope_domain::DomainError;

/// What the operator is shown once.
pub struct NewOrg {
    pub org_id: OrgId,
    pub org_name: String,
    pub admin_email: String,
    pub admin_password: SecretString,
    pub key_id: scope_domain::KeyId,
    pub secret: SecretString,
    /// When the admin API key expires (Unix ms); `None`: never.
    pub key_expires_at: Option<i64>,
}

impl std::fmt::Debug for NewOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOrg")
            .field("org_id", &self.org_id)
            .field("org_name", &self.org_name)
            .field("admin_email", &self.admin_email)
            .field("key_id", &self.key_id)
            .field("key_expires_at", &self.key_expires_at)
            .finish_non_exhaustive()
    }
}

impl NewOrg {
    /// The JSON printed by `--json` (SPEC §8).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "org_id": self.org_id.to_string(),
            "org_name": self.org_name,
            "admin_email": self.admin_email,
            "admin_password": self.admin_password.expose_secret(),
            "api_key": {
                "key_id": self.key_id.to_string(),
                "secret": self.secret.expose_secret(),
            },
        });
        if let Some(exp) = self.key_expires_at {
            v["api_key"]["expires_at"] = json!(crate::views::ts(exp));
        }
        v
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "org_id: {}\norg_name: {}\nadmin_email: {}\nadmin_password: {}\napi_key.key_id: {}\napi_key.secret: {}\n",
            self.org_id,
            self.org_name,
            self.admin_email,
            self.admin_password.expose_secret(),
            self.key_id,
            self.secret.expose_secret()
        );
        if let Some(exp) = self.key_expires_at {
            text.push_str(&format!("api_key.expires_at: {}\n", crate::views::ts(exp)));
        }
        text
    }

    /// Printed by `scope serve` on first start, to stdout only, once.
    pub fn print_first_run(&self, listen: &str) {
        println!(
            "Scope initialized a new deployment (shown only once; store these now):\n\
             {}Sign in to the web console at http://{}/ with admin_email and admin_password.\n\
             Exchange the API key for a token:\n  \
             curl -s -X POST http://{}/v1/auth/sdk-token -H 'content-type: application/json' \\\n    \
             -d '{{\"account_id\":\"{}\",\"key_id\":\"{}\",\"key_secret\":\"<api_key.secret>\"}}'",
            self.to_text(),
            listen,
            listen,
            self.org_id,
            self.key_id
        );
        if let Some(exp) = self.key_expires_at {
            println!(
                "This API key expires at {} (SCOPE_BOOTSTRAP_KEY_TTL_HOURS). Create the keys your applications \
                 use in the console (Settings > API Keys) or with `scope keys create`.",
                crate::views::ts(exp)
            );
        }
    }
}

/// An organization's rows, ready to insert, and what the operator is shown.
struct Prepared {
    org: OrgRow,
    user: UserRow,
    key: scope_store::ApiKeyRow,
    events: Vec<AuditRow>,
    shown: NewOrg,
}

fn prepare(org_name: &str, admin_email: &str, key_expires_at: Option<i64>, now: i64) -> Result<Prepared, AppError> {
    let name = org_name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(scope_domain::lifecycle::is_non_printing) {
        return Err(DomainError::bad_request(
            "organization name must be 1-128 characters, without control or other non-printing characters",
        )
        .into());
    }
    let admin_email = normalize_email(admin_email)?;
    let org = OrgRow { org_id: OrgId::generate(), name: name.to_owned(), created_at: now };
    let password = random_password();
    let user = UserRow {
        user_id: UserId::generate(),
        org_id: org.org_id,
        email: admin_email.clone(),
        password_hash: hash_password(&password)?,
        role: Role::Admin,
        created_at: now,
        must_change_password: false,
        last_sign_in_at: None,
    };
    let key_req =
        NewKey { name: "admin".into(), environment: None, role: Some(Role::Admin), expires_at: key_expires_at };
    let created = new_key_row(org.org_id, user.user_id.to_string(), &key_req, now)?;
    let system = Principal::system(org.org_id);
    let events = vec![
        audit::event(&system, "org.created", org.org_id, json!({"name": org.name})),
        audit::event(&system, "user.created", user.user_id, json!({"email": user.email, "role": "admin"})),
        audit::event(&system, "api_key.created", created.key.key_id, json!({"name": "admin", "role": "admin"})),
    ];
    let shown = NewOrg {
        org_id: org.org_id,
        org_name: org.name.clone(),
        admin_email,
        admin_password: password,
        key_id: created.key.key_id,
        secret: created.secret,
        key_expires_at,
    };
    Ok(Prepared { org, user, key: created.key, events, shown })
}

/// Creates an organization with its admin user and admin API key.
pub async fn create_org(store: &dyn Store, org_name: &str, admin_email: &str) -> Result<NewOrg, AppError> {
    let p = prepare(org_name, admin_email, None, now_ms())?;
    store.create_org(&p.org, &p.user, &p.key, &p.events).await?;
    Ok(p.shown)
}

/// `scope init`: the first organization; fails if one exists (also when
/// another process made it a moment ago).
pub async fn init(store: &dyn Store, org_name: &str, admin_email: &str) -> Result<NewOrg, AppError> {
    let already = || DomainError::conflict("this database is already initialized").into();
    if store.is_initialized().await? {
        return Err(already());
    }
    let p = prepare(org_name, admin_email, None, now_ms())?;
    if !store.bootstrap_org(&p.org, &p.user, &p.key, &p.events).await? {
        return Err(already());
    }
    Ok(p.shown)
}

/// `scope serve` on an empty database: the first organization, whose admin
/// key expires after `bootstrap_key_ttl`. `None` when the database holds an
/// organization already, or another process starting at the same time made
/// it first (that one prints it).
pub async fn bootstrap_if_empty(app: &App) -> Result<Option<NewOrg>, AppError> {
    // Cheap check first: most starts are not first starts, and preparing
    // hashes a password.
    if app.store.is_initialized().await? {
        return Ok(None);
    }
    let now = now_ms();
    let expires_at = app.config.bootstrap_key_ttl.map(|ttl| now.saturating_add(ttl.as_millis() as i64));
    let p = prepare("Default", "admin@localhost", expires_at, now)?;
    if !app.store.bootstrap_org(&p.org, &p.user, &p.key, &p.events).await? {
        return Ok(None);
    }
    if let Some(exp) = expires_at {
        app.gates.mark_expiry(p.shown.key_id, exp);
    }
    Ok(Some(p.shown))
}
