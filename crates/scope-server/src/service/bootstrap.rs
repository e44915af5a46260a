//! Creating organizations: the first one (`scope init`, or `scope serve` on
//! an empty database) and further tenants (`scope org create`). Each comes
//! with an admin user (random password) and an admin API key; both secrets
//! are shown once, to the operator, and stored only as hashes.

use scope_domain::{OrgId, Role, UserId};
use scope_store::{OrgRow, Store, UserRow};
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
}

impl NewOrg {
    /// The JSON printed by `--json` (SPEC §8).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "org_id": self.org_id.to_string(),
            "org_name": self.org_name,
            "admin_email": self.admin_email,
            "admin_password": self.admin_password.expose_secret(),
            "api_key": {
                "key_id": self.key_id.to_string(),
                "secret": self.secret.expose_secret(),
            },
        })
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!(
            "org_id: {}\norg_name: {}\nadmin_email: {}\nadmin_password: {}\napi_key.key_id: {}\napi_key.secret: {}\n",
            self.org_id,
            self.org_name,
            self.admin_email,
            self.admin_password.expose_secret(),
            self.key_id,
            self.secret.expose_secret()
        )
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
    }
}

/// Creates an organization with its admin user and admin API key.
pub async fn create_org(store: &dyn Store, org_name: &str, admin_email: &str) -> Result<NewOrg, AppError> {
    let name = org_name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(DomainError::bad_request("organization name must be 1-128 characters").into());
    }
    let admin_email = &normalize_email(admin_email)?;
    let now = now_ms();
    let org = OrgRow { org_id: OrgId::generate(), name: name.to_owned(), created_at: now };
    let password = random_password();
    let user = UserRow {
        user_id: UserId::generate(),
        org_id: org.org_id,
        email: admin_email.to_owned(),
        password_hash: hash_password(&password)?,
        role: Role::Admin,
        created_at: now,
        must_change_password: false,
        last_sign_in_at: None,
    };
    let key_req = NewKey { name: "admin".into(), environment: None, role: Some(Role::Admin), expires_at: None };
    let created = new_key_row(org.org_id, user.user_id.to_string(), &key_req, now)?;
    let system = Principal::system(org.org_id);
    let events = [
        audit::event(&system, "org.created", org.org_id, json!({"name": org.name})),
        audit::event(&system, "user.created", user.user_id, json!({"email": user.email, "role": "admin"})),
        audit::event(&system, "api_key.created", created.key.key_id, json!({"name": "admin", "role": "admin"})),
    ];
    store.create_org(&org, &user, &created.key, &events).await?;
    Ok(NewOrg {
        org_id: org.org_id,
        org_name: org.name,
        admin_email: admin_email.clone(),
        admin_password: password,
        key_id: created.key.key_id,
        secret: created.secret,
    })
}

/// `scope init`: the first organization; fails if one exists.
pub async fn init(store: &dyn Store, org_name: &str, admin_email: &str) -> Result<NewOrg, AppError> {
    if store.is_initialized().await? {
        return Err(DomainError::conflict("this database is already initialized").into());
    }
    create_org(store, org_name, admin_email).await
}

/// `scope serve` on an empty database.
pub async fn bootstrap_if_empty(app: &App) -> Result<Option<NewOrg>, AppError> {
    if app.store.is_initialized().await? {
        return Ok(None);
    }
    create_org(app.store.as_ref(), "Default", "admin@localhost").await.map(Some)
}
