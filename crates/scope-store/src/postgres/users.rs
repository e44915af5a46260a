//! Organizations, users, browser sessions and invitations in the PostgreSQL
//! backend: the statements behind the organization, user and session methods
//! of `Store`, which `mod.rs` delegates to.
//!
//! Sessions and invitations are found by the digest of their secret alone (the
//! caller has nothing else at that point); everything else is scoped by the
//! organization. Role changes and removals lock the organization row first,
//! so that the "last active admin" check of one cannot pass on a count
//! another is about to change.

use scope_domain::{DomainError, OrgId, Role, UserId};
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::audit::insert_audit;
use super::keys::insert_key;
use super::{DbResult, PgStore};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

// ---- statements shared by several methods --------------------------------------------

async fn fetch_user(conn: &mut PgConnection, org: OrgId, user: UserId) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_FIELDS} FROM users u WHERE u.org_id = $1 AND u.user_id = $2");
    sqlx::query_as::<_, RawUser>(&sql)
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawUser::into_row)
        .transpose()
}

/// Locks the organization row until the end of the transaction, serializing
/// the changes that can lower its number of active admins. `FOR NO KEY
/// UPDATE` leaves inserts that reference the organization (keys, prompts…)
/// unblocked. `NotFound` when there is no such organization.
async fn lock_org(conn: &mut PgConnection, org: OrgId) -> StoreResult<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM orgs WHERE org_id = $1 FOR NO KEY UPDATE")
        .bind(org.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    Ok(())
}

/// Refuses (with `message`) a change that would leave `org` without an
/// active admin, when `user` is one of its active admins today. Runs inside
/// the transaction after [`lock_org`], so two concurrent demotions cannot
/// both pass.
async fn keep_an_active_admin(
    conn: &mut PgConnection,
    org: OrgId,
    user: &UserRow,
    message: &'static str,
) -> StoreResult<()> {
    if user.role != Role::Admin || user.password_hash.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT COUNT(*) FROM users WHERE org_id = $1 AND {ACTIVE_ADMIN}");
    let admins: i64 = sqlx::query_scalar(&sql).bind(org.to_string()).fetch_one(conn).await.db()?;
    if admins <= 1 {
        return Err(StoreError::Domain(DomainError::conflict(message)));
    }
    Ok(())
}

/// Inserts organizations with multi-row INSERTs. For imports.
pub(super) async fn insert_orgs(conn: &mut PgConnection, orgs: &[OrgRow]) -> StoreResult<()> {
    for chunk in orgs.chunks(super::batch_rows(3)) {
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO orgs (org_id, name, created_at) ");
        qb.push_values(chunk, |mut b, o| {
            b.push_bind(o.org_id.to_string()).push_bind(o.name.as_str()).push_bind(o.created_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Inserts users with multi-row INSERTs. For imports.
pub(super) async fn insert_users(conn: &mut PgConnection, users: &[UserRow]) -> StoreResult<()> {
    for chunk in users.chunks(super::batch_rows(8)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO users (user_id, org_id, email, password_hash, role, created_at, must_change_password, \
             last_sign_in_at) ",
        );
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.user_id.to_string())
                .push_bind(u.org_id.to_string())
                .push_bind(u.email.as_str())
                .push_bind(u.password_hash.as_str())
                .push_bind(u.role.as_str())
                .push_bind(u.created_at)
                .push_bind(u.must_change_password)
                .push_bind(u.last_sign_in_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Inserts invitations with multi-row INSERTs.
pub(super) async fn insert_invitations(conn: &mut PgConnection, invitations: &[InvitationRow]) -> StoreResult<()> {
    for chunk in invitations.chunks(super::batch_rows(7)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO invitations (token_digest, org_id, user_id, created_by, created_at, expires_at, \
             accepted_at) ",
        );
        qb.push_values(chunk, |mut b, i| {
            b.push_bind(&i.token_digest[..])
                .push_bind(i.org_id.to_string())
                .push_bind(i.user_id.to_string())
                .push_bind(i.created_by.as_str())
                .push_bind(i.created_at)
                .push_bind(i.expires_at)
                .push_bind(i.accepted_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

// ---- organizations -------------------------------------------------------------------

pub(super) async fn is_initialized(store: &PgStore) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&store.pool).await.db()
}

pub(super) async fn bootstrap_org(
    store: &PgStore,
    org: &OrgRow,
    admin: &UserRow,
    key: &ApiKeyRow,
    audit: &[AuditRow],
) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    // Held to the commit: a replica starting at once waits here, then (read
    // committed: each statement sees what committed before it) sees the
    // organization made here.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(super::BOOTSTRAP_LOCK).execute(&mut *tx).await.db()?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&mut *tx).await.db()?;
    if exists {
        tx.rollback().await.db()?;
        return Ok(false);
    }
    insert_org(&mut tx, org, admin, key, audit).await?;
    tx.commit().await.db()?;
    Ok(true)
}

pub(super) async fn create_org(
    store: &PgStore,
    org: &OrgRow,
    admin: &UserRow,
    key: &ApiKeyRow,
    audit: &[AuditRow],
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    insert_org(&mut tx, org, admin, key, audit).await?;
    tx.commit().await.db()
}

/// The rows of a new organization, inside the caller's transaction.
async fn insert_org(
    conn: &mut PgConnection,
    org: &OrgRow,
    admin: &UserRow,
    key: &ApiKeyRow,
    audit: &[AuditRow],
) -> StoreResult<()> {
    sqlx::query("INSERT INTO orgs (org_id, name, created_at) VALUES ($1, $2, $3)")
        .bind(org.org_id.to_string())
        .bind(&org.name)
        .bind(org.created_at)
        .execute(&mut *conn)
        .await
        .db()?;
    insert_user_row(conn, admin).await?;
    insert_key(conn, key).await?;
    for a in audit {
        insert_audit(conn, a).await?;
    }
    Ok(())
}

pub(super) async fn get_org(store: &PgStore, org: OrgId) -> StoreResult<OrgRow> {
    sqlx::query_as::<_, RawOrg>("SELECT org_id, name, created_at FROM orgs WHERE org_id = $1")
        .bind(org.to_string())
        .fetch_optional(&store.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?
        .into_row()
}

// ---- users ----------------------------------------------------------------------------

pub(super) async fn list_users(store: &PgStore, org: OrgId, query: &PageQuery) -> StoreResult<Vec<UserRow>> {
    let cursor = id_cursor::<UserId>(&query.cursor)?;
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {USER_FIELDS} FROM users u"));
    qb.push(" WHERE u.org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND u.user_id < ").push_bind(c);
    }
    qb.push(" ORDER BY u.user_id DESC LIMIT ").push_bind(i64::from(query.limit));
    qb.build_query_as::<RawUser>().fetch_all(&store.pool).await.db()?.into_iter().map(RawUser::into_row).collect()
}

pub(super) async fn get_user(store: &PgStore, org: OrgId, user: UserId) -> StoreResult<UserRow> {
    let mut conn = store.pool.acquire().await.db()?;
    fetch_user(&mut conn, org, user).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn find_user_by_email(store: &PgStore, email: &str) -> StoreResult<Option<UserRow>> {
    // Stored e-mails are lower-cased; so is the one looked up.
    let sql = format!("SELECT {USER_FIELDS} FROM users u WHERE u.email = $1");
    sqlx::query_as::<_, RawUser>(&sql)
        .bind(email.to_lowercase())
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawUser::into_row)
        .transpose()
}

/// Inserts a user row (also used for an organization's first admin).
pub(super) async fn insert_user_row(conn: &mut PgConnection, u: &UserRow) -> StoreResult<()> {
    insert_users(conn, std::slice::from_ref(u)).await
}

pub(super) async fn insert_user(
    store: &PgStore,
    user: &UserRow,
    invitation: Option<&InvitationRow>,
    audit: &AuditRow,
) -> StoreResult<()> {
    if invitation.is_some_and(|i| i.org_id != user.org_id || i.user_id != user.user_id) {
        return Err(StoreError::Internal("the invitation belongs to another user".into()));
    }
    let mut tx = store.begin().await?;
    insert_user_row(&mut tx, user).await?;
    if let Some(i) = invitation {
        insert_invitations(&mut tx, std::slice::from_ref(i)).await?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn update_user_role(
    store: &PgStore,
    org: OrgId,
    user: UserId,
    role: Role,
    audit: &AuditRow,
) -> StoreResult<UserRow> {
    let mut tx = store.begin().await?;
    lock_org(&mut tx, org).await?;
    let current = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    if current.role == role {
        // Nothing changes, nothing is audited.
        tx.rollback().await.db()?;
        return Ok(current);
    }
    if role != Role::Admin {
        keep_an_active_admin(&mut tx, org, &current, "the last admin of an organization cannot be demoted").await?;
    }
    sqlx::query("UPDATE users SET role = $1 WHERE org_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(org.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
    insert_audit(&mut tx, audit).await?;
    let row = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(super) async fn delete_user(store: &PgStore, org: OrgId, user: UserId, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    lock_org(&mut tx, org).await?;
    let current = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    keep_an_active_admin(&mut tx, org, &current, "the last admin of an organization cannot be removed").await?;
    // The foreign keys cascade too; deleting explicitly keeps the order
    // obvious.
    for sql in [
        "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2",
        "DELETE FROM invitations WHERE org_id = $1 AND user_id = $2",
        "DELETE FROM users WHERE org_id = $1 AND user_id = $2",
    ] {
        sqlx::query(sql).bind(org.to_string()).bind(user.to_string()).execute(&mut *tx).await.db()?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn set_user_password(
    store: &PgStore,
    org: OrgId,
    user: UserId,
    password_hash: &str,
    must_change_password: bool,
    keep_session: Option<&[u8; 32]>,
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let n = sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = $2 WHERE org_id = $3 AND user_id = $4",
    )
    .bind(password_hash)
    .bind(must_change_password)
    .bind(org.to_string())
    .bind(user.to_string())
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    // `IS DISTINCT FROM NULL` keeps nothing when no session is to be kept.
    sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2 AND session_digest IS DISTINCT FROM $3")
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(keep_session.map(|d| &d[..]))
        .execute(&mut *tx)
        .await
        .db()?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

// ---- invitations ----------------------------------------------------------------------

pub(super) async fn get_invitation(
    store: &PgStore,
    token_digest: &[u8; 32],
) -> StoreResult<Option<(InvitationRow, UserRow)>> {
    let sql = format!(
        "SELECT i.token_digest, i.created_by AS i_created_by, i.created_at AS i_created_at, \
         i.expires_at AS i_expires_at, i.accepted_at AS i_accepted_at, {USER_FIELDS} \
         FROM invitations i JOIN users u ON u.user_id = i.user_id AND u.org_id = i.org_id \
         WHERE i.token_digest = $1"
    );
    sqlx::query_as::<_, RawInvitation>(&sql)
        .bind(&token_digest[..])
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawInvitation::into_rows)
        .transpose()
}

pub(super) async fn accept_invitation(
    store: &PgStore,
    token_digest: &[u8; 32],
    password_hash: &str,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<UserRow> {
    let mut tx = store.begin().await?;
    // The condition is the guard: a second acceptance (also a concurrent one,
    // which waits for the row and then re-checks it), or one after expiry,
    // changes no row.
    let accepted: Option<(String, String)> = sqlx::query_as(
        "UPDATE invitations SET accepted_at = $1 \
         WHERE token_digest = $2 AND accepted_at IS NULL AND expires_at > $1 \
         RETURNING org_id, user_id",
    )
    .bind(now_ms)
    .bind(&token_digest[..])
    .fetch_optional(&mut *tx)
    .await
    .db()?;
    let Some((org, user)) = accepted else {
        tx.rollback().await.db()?;
        return Err(StoreError::NotFound);
    };
    let org: OrgId = parse_id(&org, "org id")?;
    let user: UserId = parse_id(&user, "user id")?;
    let n = sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = FALSE WHERE org_id = $2 AND user_id = $3",
    )
    .bind(password_hash)
    .bind(org.to_string())
    .bind(user.to_string())
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    insert_audit(&mut tx, audit).await?;
    let row = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await.db()?;
    Ok(row)
}

// ---- sessions -------------------------------------------------------------------------

pub(super) async fn create_session(store: &PgStore, session: &SessionRow, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // First, so that a session is only ever created for a user of its org.
    let n = sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE org_id = $2 AND user_id = $3")
        .bind(session.created_at)
        .bind(session.org_id.to_string())
        .bind(session.user_id.to_string())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO sessions (session_digest, org_id, user_id, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&session.session_digest[..])
    .bind(session.org_id.to_string())
    .bind(session.user_id.to_string())
    .bind(session.created_at)
    .bind(session.last_seen_at)
    .bind(session.expires_at)
    .execute(&mut *tx)
    .await
    .db()?;
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn get_session(
    store: &PgStore,
    session_digest: &[u8; 32],
) -> StoreResult<Option<(SessionRow, UserRow)>> {
    // The user as it is now: a role change or removal applies to the next
    // request made with the session.
    let sql = format!(
        "SELECT s.session_digest, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
         s.expires_at AS s_expires_at, {USER_FIELDS} \
         FROM sessions s JOIN users u ON u.user_id = s.user_id AND u.org_id = s.org_id \
         WHERE s.session_digest = $1"
    );
    sqlx::query_as::<_, RawSession>(&sql)
        .bind(&session_digest[..])
        .fetch_optional(&store.pool)
        .await
        .db()?
        .map(RawSession::into_rows)
        .transpose()
}

pub(super) async fn touch_session(store: &PgStore, session_digest: &[u8; 32], now_ms: i64) -> StoreResult<()> {
    // Never moves back: requests of one session may be seen out of order.
    sqlx::query("UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE session_digest = $2")
        .bind(now_ms)
        .bind(&session_digest[..])
        .execute(&store.pool)
        .await
        .db()?;
    Ok(())
}

pub(super) async fn delete_session(
    store: &PgStore,
    session_digest: &[u8; 32],
    audit: Option<&AuditRow>,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM sessions WHERE session_digest = $1")
        .bind(&session_digest[..])
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    // A session that was already gone (signed out elsewhere, pruned) ends
    // nothing, so nothing is audited.
    if let Some(a) = audit.filter(|_| n > 0) {
        insert_audit(&mut tx, a).await?;
    }
    tx.commit().await.db()
}

pub(super) async fn prune_sessions(store: &PgStore, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR last_seen_at < $2")
        .bind(now_ms)
        .bind(idle_before_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    let invitations = sqlx::query("DELETE FROM invitations WHERE accepted_at IS NULL AND expires_at < $1")
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(sessions + invitations)
}
