//! Organizations, users, browser sessions and invitations in the SQLite
//! backend: the statements behind the organization, user and session methods
//! of `Store`, which `mod.rs` delegates to.
//!
//! Sessions and invitations are found by the digest of their secret alone (the
//! caller has nothing else at that point); everything else is scoped by the
//! organization.

use scope_domain::{DomainError, OrgId, Role, UserId};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::keys::insert_key;
use super::{insert_audit, DbResult, SqliteStore};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

// ---- statements shared by several methods --------------------------------------------

async fn fetch_user(conn: &mut SqliteConnection, org: OrgId, user: UserId) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_FIELDS} FROM users u WHERE u.org_id = ?1 AND u.user_id = ?2");
    sqlx::query_as::<_, RawUser>(&sql)
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawUser::into_row)
        .transpose()
}

/// Refuses (with `message`) a change that would leave `org` without an
/// active admin, when `user` is one of its active admins today. Runs inside
/// the write transaction, so two concurrent demotions cannot both pass.
async fn keep_an_active_admin(
    conn: &mut SqliteConnection,
    org: OrgId,
    user: &UserRow,
    message: &'static str,
) -> StoreResult<()> {
    if user.role != Role::Admin || user.password_hash.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT COUNT(*) FROM users WHERE org_id = ?1 AND {ACTIVE_ADMIN}");
    let admins: i64 = sqlx::query_scalar(&sql).bind(org.to_string()).fetch_one(conn).await.db()?;
    if admins <= 1 {
        return Err(StoreError::Domain(DomainError::conflict(message)));
    }
    Ok(())
}

// ---- organizations -------------------------------------------------------------------

pub(super) async fn is_initialized(store: &SqliteStore) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&store.read).await.db()?;
    Ok(n != 0)
}

pub(super) async fn bootstrap_org(
    store: &SqliteStore,
    org: &OrgRow,
    admin: &UserRow,
    key: &ApiKeyRow,
    audit: &[AuditRow],
) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    // `BEGIN IMMEDIATE` holds the database's write lock from here to the
    // commit, across processes: a second process starting at once waits,
    // then sees the organization made here.
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
    store: &SqliteStore,
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
    conn: &mut SqliteConnection,
    org: &OrgRow,
    admin: &UserRow,
    key: &ApiKeyRow,
    audit: &[AuditRow],
) -> StoreResult<()> {
    sqlx::query("INSERT INTO orgs (org_id, name, created_at) VALUES (?1, ?2, ?3)")
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

pub(super) async fn get_org(store: &SqliteStore, org: OrgId) -> StoreResult<OrgRow> {
    sqlx::query_as::<_, RawOrg>("SELECT org_id, name, created_at FROM orgs WHERE org_id = ?1")
        .bind(org.to_string())
        .fetch_optional(&store.read)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?
        .into_row()
}

// ---- users ----------------------------------------------------------------------------

pub(super) async fn list_users(store: &SqliteStore, org: OrgId, query: &PageQuery) -> StoreResult<Vec<UserRow>> {
    let cursor = id_cursor::<UserId>(&query.cursor)?;
    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {USER_FIELDS} FROM users u"));
    qb.push(" WHERE u.org_id = ").push_bind(org.to_string());
    if let Some(c) = cursor {
        qb.push(" AND u.user_id < ").push_bind(c);
    }
    qb.push(" ORDER BY u.user_id DESC LIMIT ").push_bind(i64::from(query.limit));
    qb.build_query_as::<RawUser>().fetch_all(&store.read).await.db()?.into_iter().map(RawUser::into_row).collect()
}

pub(super) async fn get_user(store: &SqliteStore, org: OrgId, user: UserId) -> StoreResult<UserRow> {
    let mut conn = store.read.acquire().await.db()?;
    fetch_user(&mut conn, org, user).await?.ok_or(StoreError::NotFound)
}

pub(super) async fn find_user_by_email(store: &SqliteStore, email: &str) -> StoreResult<Option<UserRow>> {
    // Stored e-mails are lower-cased; so is the one looked up.
    let sql = format!("SELECT {USER_FIELDS} FROM users u WHERE u.email = ?1");
    sqlx::query_as::<_, RawUser>(&sql)
        .bind(email.to_lowercase())
        .fetch_optional(&store.read)
        .await
        .db()?
        .map(RawUser::into_row)
        .transpose()
}

/// Inserts a user row (also used for an organization's first admin).
pub(super) async fn insert_user_row(conn: &mut SqliteConnection, u: &UserRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (user_id, org_id, email, password_hash, role, created_at, must_change_password, \
         last_sign_in_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(u.user_id.to_string())
    .bind(u.org_id.to_string())
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(u.role.as_str())
    .bind(u.created_at)
    .bind(i64::from(u.must_change_password))
    .bind(u.last_sign_in_at)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

pub(super) async fn insert_user(
    store: &SqliteStore,
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
        sqlx::query(
            "INSERT INTO invitations (token_digest, org_id, user_id, created_by, created_at, expires_at, \
             accepted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&i.token_digest[..])
        .bind(i.org_id.to_string())
        .bind(i.user_id.to_string())
        .bind(&i.created_by)
        .bind(i.created_at)
        .bind(i.expires_at)
        .bind(i.accepted_at)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn update_user_role(
    store: &SqliteStore,
    org: OrgId,
    user: UserId,
    role: Role,
    audit: &AuditRow,
) -> StoreResult<UserRow> {
    let mut tx = store.begin().await?;
    let current = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    if current.role == role {
        // Nothing changes, nothing is audited.
        tx.rollback().await.db()?;
        return Ok(current);
    }
    if role != Role::Admin {
        keep_an_active_admin(&mut tx, org, &current, "the last admin of an organization cannot be demoted").await?;
    }
    sqlx::query("UPDATE users SET role = ?1 WHERE org_id = ?2 AND user_id = ?3")
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

pub(super) async fn delete_user(store: &SqliteStore, org: OrgId, user: UserId, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let current = fetch_user(&mut tx, org, user).await?.ok_or(StoreError::NotFound)?;
    keep_an_active_admin(&mut tx, org, &current, "the last admin of an organization cannot be removed").await?;
    // The foreign keys cascade too; deleting explicitly does not depend on
    // the connection having them enabled.
    for sql in [
        "DELETE FROM sessions WHERE org_id = ?1 AND user_id = ?2",
        "DELETE FROM invitations WHERE org_id = ?1 AND user_id = ?2",
        "DELETE FROM users WHERE org_id = ?1 AND user_id = ?2",
    ] {
        sqlx::query(sql).bind(org.to_string()).bind(user.to_string()).execute(&mut *tx).await.db()?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.db()
}

pub(super) async fn set_user_password(
    store: &SqliteStore,
    org: OrgId,
    user: UserId,
    password_hash: &str,
    must_change_password: bool,
    keep_session: Option<&[u8; 32]>,
    audit: &AuditRow,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let n = sqlx::query(
        "UPDATE users SET password_hash = ?1, must_change_password = ?2 WHERE org_id = ?3 AND user_id = ?4",
    )
    .bind(password_hash)
    .bind(i64::from(must_change_password))
    .bind(org.to_string())
    .bind(user.to_string())
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    // `IS NOT NULL` keeps nothing when no session is to be kept.
    sqlx::query("DELETE FROM sessions WHERE org_id = ?1 AND user_id = ?2 AND session_digest IS NOT ?3")
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
    store: &SqliteStore,
    token_digest: &[u8; 32],
) -> StoreResult<Option<(InvitationRow, UserRow)>> {
    let sql = format!(
        "SELECT i.token_digest, i.created_by AS i_created_by, i.created_at AS i_created_at, \
         i.expires_at AS i_expires_at, i.accepted_at AS i_accepted_at, {USER_FIELDS} \
         FROM invitations i JOIN users u ON u.user_id = i.user_id AND u.org_id = i.org_id \
         WHERE i.token_digest = ?1"
    );
    sqlx::query_as::<_, RawInvitation>(&sql)
        .bind(&token_digest[..])
        .fetch_optional(&store.read)
        .await
        .db()?
        .map(RawInvitation::into_rows)
        .transpose()
}

pub(super) async fn accept_invitation(
    store: &SqliteStore,
    token_digest: &[u8; 32],
    password_hash: &str,
    now_ms: i64,
    audit: &AuditRow,
) -> StoreResult<UserRow> {
    let mut tx = store.begin().await?;
    // The condition is the guard: a second acceptance, or one after expiry,
    // changes no row.
    let accepted: Option<(String, String)> = sqlx::query_as(
        "UPDATE invitations SET accepted_at = ?1 \
         WHERE token_digest = ?2 AND accepted_at IS NULL AND expires_at > ?1 \
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
    let n =
        sqlx::query("UPDATE users SET password_hash = ?1, must_change_password = 0 WHERE org_id = ?2 AND user_id = ?3")
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

pub(super) async fn create_session(store: &SqliteStore, session: &SessionRow, audit: &AuditRow) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // First, so that a session is only ever created for a user of its org.
    let n = sqlx::query("UPDATE users SET last_sign_in_at = ?1 WHERE org_id = ?2 AND user_id = ?3")
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
    store: &SqliteStore,
    session_digest: &[u8; 32],
) -> StoreResult<Option<(SessionRow, UserRow)>> {
    // The user as it is now: a role change or removal applies to the next
    // request made with the session.
    let sql = format!(
        "SELECT s.session_digest, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
         s.expires_at AS s_expires_at, {USER_FIELDS} \
         FROM sessions s JOIN users u ON u.user_id = s.user_id AND u.org_id = s.org_id \
         WHERE s.session_digest = ?1"
    );
    sqlx::query_as::<_, RawSession>(&sql)
        .bind(&session_digest[..])
        .fetch_optional(&store.read)
        .await
        .db()?
        .map(RawSession::into_rows)
        .transpose()
}

pub(super) async fn touch_session(store: &SqliteStore, session_digest: &[u8; 32], now_ms: i64) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    // Never moves back: requests of one session may be seen out of order.
    sqlx::query("UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?1) WHERE session_digest = ?2")
        .bind(now_ms)
        .bind(&session_digest[..])
        .execute(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()
}

pub(super) async fn delete_session(
    store: &SqliteStore,
    session_digest: &[u8; 32],
    audit: Option<&AuditRow>,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM sessions WHERE session_digest = ?1")
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

pub(super) async fn prune_sessions(store: &SqliteStore, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < ?1 OR last_seen_at < ?2")
        .bind(now_ms)
        .bind(idle_before_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    let invitations = sqlx::query("DELETE FROM invitations WHERE accepted_at IS NULL AND expires_at < ?1")
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    tx.commit().await.db()?;
    Ok(sessions + invitations)
}
