//! Users of an organization (SPEC §5 `/api/v1/users`): admins invite users
//! (a one-time link that sets the password, valid 7 days) or create them
//! with a one-time initial password, change roles and remove users. Roles
//! mean what they mean for API keys. The last active admin of an
//! organization can be neither demoted nor removed (checked by the store
//! inside the transaction, so two admins demoting each other at once cannot
//! both succeed).

use scope_domain::{DomainError, OrgId, Role, UserId};
use scope_store::{InvitationRow, UserRow};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::passwords::{
    hash_password_async, random_password, random_token, token_digest, validate_new_password, verify_password,
};
use super::{audit, Actor, App, Page, Principal};
use crate::error::{AppError, NotFoundAs};
use crate::runtime::now_ms;

/// How long an invitation link works.
pub const INVITATION_TTL_MS: i64 = 7 * 86_400_000;

/// Trims and lower-cases an email and checks its shape.
pub fn normalize_email(email: &str) -> Result<String, AppError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(DomainError::bad_request("email is not a valid address").into())
    }
}

pub fn parse_user_id(s: &str) -> Result<UserId, AppError> {
    // An unparseable id can't exist: answer like an unknown one.
    s.parse().map_err(|_| DomainError::not_found("user not found").into())
}

/// How a new user gets a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onboarding {
    /// A one-time invitation link that sets the password.
    Invite,
    /// A one-time initial password, to be changed at the first sign-in.
    InitialPassword,
}

pub struct NewUser {
    pub email: String,
    pub role: Role,
    pub onboarding: Onboarding,
}

/// A created user with what is shown once: the invitation token or the
/// initial password.
pub struct CreatedUser {
    pub user: UserRow,
    pub invitation: Option<(SecretString, i64)>,
    pub initial_password: Option<SecretString>,
}

pub async fn list(app: &App, p: &Principal, page: scope_store::PageQuery) -> Result<Page<UserRow>, AppError> {
    p.require(Role::Admin)?;
    let rows = app.store.list_users(p.org, &page).await?;
    Ok(Page::from_rows(rows, &page, |u: &UserRow| u.user_id.to_string()))
}

pub async fn get(app: &App, p: &Principal, user: &str) -> Result<UserRow, AppError> {
    p.require(Role::Admin)?;
    app.store.get_user(p.org, parse_user_id(user)?).await.not_found_as("user")
}

pub async fn create(app: &App, p: &Principal, req: NewUser) -> Result<CreatedUser, AppError> {
    p.require(Role::Admin)?;
    let email = normalize_email(&req.email)?;
    let now = now_ms();
    let mut user = UserRow {
        user_id: UserId::generate(),
        org_id: p.org,
        email,
        password_hash: String::new(),
        role: req.role,
        created_at: now,
        must_change_password: false,
        last_sign_in_at: None,
    };
    let mut out = CreatedUser { user: user.clone(), invitation: None, initial_password: None };
    let (invitation, action) = match req.onboarding {
        Onboarding::Invite => {
            let token = random_token();
            let inv = InvitationRow {
                token_digest: token_digest(&token),
                org_id: p.org,
                user_id: user.user_id,
                created_by: p.actor.id(),
                created_at: now,
                expires_at: now + INVITATION_TTL_MS,
                accepted_at: None,
            };
            out.invitation = Some((SecretString::from(token), inv.expires_at));
            (Some(inv), "user.invited")
        }
        Onboarding::InitialPassword => {
            let password = random_password();
            user.password_hash = hash_password_async(password.clone()).await?;
            user.must_change_password = true;
            out.initial_password = Some(password);
            (None, "user.created")
        }
    };
    let ev = audit::event(p, action, user.user_id, json!({"email": user.email, "role": user.role}));
    app.store.insert_user(&user, invitation.as_ref(), &ev).await?;
    out.user = user;
    Ok(out)
}

pub async fn change_role(app: &App, p: &Principal, user: &str, role: Role) -> Result<UserRow, AppError> {
    p.require(Role::Admin)?;
    let user_id = parse_user_id(user)?;
    let before = app.store.get_user(p.org, user_id).await.not_found_as("user")?;
    let ev =
        audit::event(p, "user.role_changed", user_id, json!({"email": before.email, "from": before.role, "to": role}));
    app.store.update_user_role(p.org, user_id, role, &ev).await.not_found_as("user")
}

pub async fn remove(app: &App, p: &Principal, user: &str) -> Result<(), AppError> {
    p.require(Role::Admin)?;
    let user_id = parse_user_id(user)?;
    let before = app.store.get_user(p.org, user_id).await.not_found_as("user")?;
    let ev = audit::event(p, "user.removed", user_id, json!({"email": before.email, "role": before.role}));
    app.store.delete_user(p.org, user_id, &ev).await.not_found_as("user")
}

/// A signed-in user changes their own password; their other sessions end.
pub async fn change_own_password(
    app: &App,
    p: &Principal,
    current_session: Option<&[u8; 32]>,
    current: SecretString,
    new: SecretString,
) -> Result<(), AppError> {
    let Actor::User(user_id) = p.actor else {
        return Err(DomainError::bad_request("only a signed-in user has a password to change").into());
    };
    validate_new_password(new.expose_secret())?;
    let user = app.store.get_user(p.org, user_id).await.not_found_as("user")?;
    if !verify_password(current, user.password_hash.clone()).await {
        return Err(DomainError::new(scope_domain::ErrorCode::BadRequest, "the current password is wrong").into());
    }
    let hash = hash_password_async(new).await?;
    let ev = audit::event(p, "user.password_changed", user_id, json!({}));
    app.store.set_user_password(p.org, user_id, &hash, false, current_session, &ev).await.not_found_as("user")
}

/// What the invitation page shows before the password is chosen.
pub struct PendingInvitation {
    pub email: String,
    pub org: OrgId,
    pub expires_at: i64,
}

fn invitation_gone() -> AppError {
    DomainError::not_found("this invitation link is invalid, used or expired").into()
}

/// The invitation and its user, if the link is usable (not accepted, not
/// expired); 404 otherwise.
async fn usable_invitation(app: &App, token: &str) -> Result<(InvitationRow, UserRow), AppError> {
    let (inv, user) = app.store.get_invitation(&token_digest(token)).await?.ok_or_else(invitation_gone)?;
    if inv.accepted_at.is_some() || inv.expires_at <= now_ms() {
        return Err(invitation_gone());
    }
    Ok((inv, user))
}

/// What the invitation page shows, or 404.
pub async fn pending_invitation(app: &App, token: &str) -> Result<PendingInvitation, AppError> {
    let (inv, user) = usable_invitation(app, token).await?;
    Ok(PendingInvitation { email: user.email, org: inv.org_id, expires_at: inv.expires_at })
}

/// Sets the invited user's password; the link cannot be used again (the
/// store accepts it only once, inside its transaction).
pub async fn accept_invitation(app: &App, token: &str, password: SecretString) -> Result<UserRow, AppError> {
    let (inv, user) = usable_invitation(app, token).await?;
    validate_new_password(password.expose_secret())?;
    let hash = hash_password_async(password).await?;
    let by_user =
        Principal { org: inv.org_id, actor: Actor::User(user.user_id), role: user.role, environment: None, scopes: None };
    let ev = audit::event(&by_user, "user.invitation_accepted", inv.user_id, json!({"email": user.email}));
    app.store.accept_invitation(&inv.token_digest, &hash, now_ms(), &ev).await.map_err(|e| match e {
        scope_store::StoreError::NotFound => invitation_gone(),
        other => other.into(),
    })
}
