//! The SQLite backend.
//!
//! Two pools share one database file: a write pool with exactly one connection
//! (so every write in this process is serialized, and transactions start with
//! `BEGIN IMMEDIATE` so that a writer in another process — the CLI — is waited
//! for through the busy timeout instead of failing a lock upgrade), and a read
//! pool with several connections (WAL lets readers run beside the writer).
//!
//! All queries are runtime queries with bound parameters; error messages never
//! carry bound values.
//!
//! This file holds the pools, the shared helpers and the one `impl Store`;
//! users, sessions and invitations are in `users.rs`.

mod transfer;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use scope_domain::{DomainError, KeyId, OrgId, PromptId, Role, UserId, VersionId, VersionStatus};
use sqlx::error::ErrorKind;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::common::*;
use crate::model::*;
use crate::{Store, StoreError, StoreResult};

/// Readers beside the single writer.
const READ_POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per multi-row INSERT of the bulk import (14 columns × 500 stays far
/// below SQLite's limit of 32766 bound parameters).
const IMPORT_BATCH_ROWS: usize = 500;
/// How write transactions start: take the write lock up front.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The next value of the key gate sequence.
const NEXT_CHANGE_SEQ: &str = "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM api_keys)";

/// SQLite storage. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the database
    /// named by `url` (`sqlite://PATH`) and applies the migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);

        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            if let Some(parent) = options.get_filename().parent() {
                if parent != Path::new("") && !parent.exists() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| StoreError::Internal(format!("cannot create the database directory: {e}")))?;
                }
            }
        }

        let mut write_opts = SqlitePoolOptions::new().max_connections(1).min_connections(if in_memory { 1 } else { 0 });
        if in_memory {
            // The database lives as long as a connection to it does.
            write_opts = write_opts.idle_timeout(None).max_lifetime(None);
        }
        let write = write_opts
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Internal(format!("cannot open the database: {e}")))?;

        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;

        let read = if in_memory {
            // Separate pools over a shared-cache memory database would lock
            // each other out; one pool serves both.
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_POOL_SIZE)
                .connect_with(options)
                .await
                .map_err(|e| StoreError::Internal(format!("cannot open the database: {e}")))?
        };

        Ok(Self { write, read })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        self.write.begin_with(BEGIN_WRITE).await.db()
    }
}

// ---- errors -------------------------------------------------------------------------

/// Maps a sqlx error to the storage vocabulary. Messages come from the
/// database and name tables/columns, never bound values.
fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => return StoreError::NotFound,
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => return StoreError::Conflict(conflict_message(db.message()).to_owned()),
            ErrorKind::CheckViolation => {
                return StoreError::Domain(DomainError::bad_request(check_message(db.message())))
            }
            _ => {}
        },
        _ => {}
    }
    StoreError::Internal(e.to_string())
}

fn conflict_message(msg: &str) -> &'static str {
    if msg.contains("prompts.name") {
        "a prompt with this name already exists"
    } else if msg.contains("users.email") || msg.contains("users_email") {
        "a user with this email already exists"
    } else if msg.contains("prompt_versions.version") {
        "a version with this number already exists"
    } else if msg.contains("prompt_versions.prompt_id") {
        "another version of this prompt is already published"
    } else if msg.contains("signing_keys.kid") {
        "a signing key with this id already exists"
    } else {
        "the record already exists"
    }
}

fn check_message(msg: &str) -> &'static str {
    if msg.contains("prompt_type") {
        "prompt_type must be 'text' or 'chat'"
    } else if msg.contains("role") {
        "role must be viewer, editor or admin"
    } else {
        "a value is not allowed"
    }
}

trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_err)
    }
}


// ---- statements shared by several methods --------------------------------------------

async fn insert_audit(conn: &mut SqliteConnection, a: &AuditRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (event_id, org_id, actor, action, target, at, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(&a.event_id)
    .bind(a.org_id.to_string())
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target)
    .bind(a.at)
    .bind(json_text(&a.details)?)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// Inserts a key; a key that is born with an expiry (or revoked) gets the next
/// gate sequence number so the revocation views pick it up.
async fn insert_key(conn: &mut SqliteConnection, k: &ApiKeyRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO api_keys (key_id, org_id, name, environment, role, secret_digest, created_at, created_by, \
         expires_at, last_used_at, revoked_at, revoked_by, rotated_from, change_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         CASE WHEN ?9 IS NULL AND ?11 IS NULL THEN 0 ELSE {NEXT_CHANGE_SEQ} END)"
    );
    sqlx::query(&sql)
        .bind(k.key_id.to_string())
        .bind(k.org_id.to_string())
        .bind(&k.name)
        .bind(&k.environment)
        .bind(k.role.as_str())
        .bind(&k.secret_digest[..])
        .bind(k.created_at)
        .bind(&k.created_by)
        .bind(k.expires_at)
        .bind(k.last_used_at)
        .bind(k.revoked_at)
        .bind(&k.revoked_by)
        .bind(k.rotated_from.map(|id| id.to_string()))
        .execute(conn)
        .await
        .db()?;
    Ok(())
}

async fn fetch_key(conn: &mut SqliteConnection, org: OrgId, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("{KEY_COLUMNS} WHERE org_id = ?1 AND key_id = ?2");
    sqlx::query_as::<_, RawKey>(&sql)
        .bind(org.to_string())
        .bind(key.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawKey::into_row)
        .transpose()
}

async fn fetch_version(
    conn: &mut SqliteConnection,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
) -> StoreResult<Option<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE v.org_id = ?1 AND v.prompt_id = ?2 AND v.version_id = ?3");
    sqlx::query_as::<_, RawVersion>(&sql)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(version.to_string())
        .fetch_optional(conn)
        .await
        .db()?
        .map(RawVersion::into_row)
        .transpose()
}

/// The status of a version of `prompt` in `org`, or `NotFound`.
async fn version_status(
    conn: &mut SqliteConnection,
    org: OrgId,
    prompt: PromptId,
    version: VersionId,
) -> StoreResult<VersionStatus> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM prompt_versions WHERE org_id = ?1 AND prompt_id = ?2 AND version_id = ?3",
    )
    .bind(org.to_string())
    .bind(prompt.to_string())
    .bind(version.to_string())
    .fetch_optional(conn)
    .await
    .db()?;
    let status = status.ok_or(StoreError::NotFound)?;
    VersionStatus::parse(&status).ok_or_else(|| corrupt("status"))
}

async fn touch_prompt(conn: &mut SqliteConnection, org: OrgId, prompt: PromptId, now_ms: i64) -> StoreResult<()> {
    sqlx::query("UPDATE prompts SET updated_at = ?1 WHERE org_id = ?2 AND prompt_id = ?3")
        .bind(now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .execute(conn)
        .await
        .db()?;
    Ok(())
}

// ---- the trait -----------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.db()?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |pool: &'static str, p: &SqlitePool| PoolStats {
            pool,
            size: p.size(),
            idle: p.num_idle() as u32,
            max: p.options().get_max_connections(),
        };
        vec![stats("write", &self.write), stats("read", &self.read)]
    }

    async fn export(&self) -> StoreResult<Snapshot> {
        transfer::export(self).await
    }

    async fn import(&self, snapshot: &Snapshot) -> StoreResult<()> {
        transfer::import(self, snapshot).await
    }

    // ---- organizations and users ---------------------------------------------------

    async fn is_initialized(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&self.read).await.db()?;
        Ok(n != 0)
    }

    async fn create_org(&self, org: &OrgRow, admin: &UserRow, key: &ApiKeyRow, audit: &[AuditRow]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO orgs (org_id, name, created_at) VALUES (?1, ?2, ?3)")
            .bind(org.org_id.to_string())
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&mut *tx)
            .await
            .db()?;
        users::insert_user_row(&mut tx, admin).await?;
        insert_key(&mut tx, key).await?;
        for a in audit {
            insert_audit(&mut tx, a).await?;
        }
        tx.commit().await.db()
    }

    async fn get_org(&self, org: OrgId) -> StoreResult<OrgRow> {
        sqlx::query_as::<_, RawOrg>("SELECT org_id, name, created_at FROM orgs WHERE org_id = ?1")
            .bind(org.to_string())
            .fetch_optional(&self.read)
            .await
            .db()?
            .ok_or(StoreError::NotFound)?
            .into_row()
    }

    async fn list_users(&self, org: OrgId, query: &PageQuery) -> StoreResult<Vec<UserRow>> {
        users::list_users(self, org, query).await
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> StoreResult<UserRow> {
        users::get_user(self, org, user).await
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
        users::find_user_by_email(self, email).await
    }

    async fn insert_user(
        &self,
        user: &UserRow,
        invitation: Option<&InvitationRow>,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        users::insert_user(self, user, invitation, audit).await
    }

    async fn update_user_role(&self, org: OrgId, user: UserId, role: Role, audit: &AuditRow) -> StoreResult<UserRow> {
        users::update_user_role(self, org, user, role, audit).await
    }

    async fn delete_user(&self, org: OrgId, user: UserId, audit: &AuditRow) -> StoreResult<()> {
        users::delete_user(self, org, user, audit).await
    }

    async fn set_user_password(
        &self,
        org: OrgId,
        user: UserId,
        password_hash: &str,
        must_change_password: bool,
        keep_session: Option<&[u8; 32]>,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        users::set_user_password(self, org, user, password_hash, must_change_password, keep_session, audit).await
    }

    async fn get_invitation(&self, token_digest: &[u8; 32]) -> StoreResult<Option<(InvitationRow, UserRow)>> {
        users::get_invitation(self, token_digest).await
    }

    async fn accept_invitation(
        &self,
        token_digest: &[u8; 32],
        password_hash: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<UserRow> {
        users::accept_invitation(self, token_digest, password_hash, now_ms, audit).await
    }

    // ---- sessions ----------------------------------------------------------------------

    async fn create_session(&self, session: &SessionRow, audit: &AuditRow) -> StoreResult<()> {
        users::create_session(self, session, audit).await
    }

    async fn get_session(&self, session_digest: &[u8; 32]) -> StoreResult<Option<(SessionRow, UserRow)>> {
        users::get_session(self, session_digest).await
    }

    async fn touch_session(&self, session_digest: &[u8; 32], now_ms: i64) -> StoreResult<()> {
        users::touch_session(self, session_digest, now_ms).await
    }

    async fn delete_session(&self, session_digest: &[u8; 32], audit: Option<&AuditRow>) -> StoreResult<()> {
        users::delete_session(self, session_digest, audit).await
    }

    async fn prune_sessions(&self, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64> {
        users::prune_sessions(self, now_ms, idle_before_ms).await
    }

    async fn insert_audit(&self, audit: &AuditRow) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()
    }

    // ---- API keys --------------------------------------------------------------------

    async fn insert_api_key(&self, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_key(&mut tx, key).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()
    }

    async fn get_api_key(&self, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow> {
        let mut conn = self.read.acquire().await.db()?;
        fetch_key(&mut conn, org, key).await?.ok_or(StoreError::NotFound)
    }

    async fn find_api_key(&self, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
        let sql = format!("{KEY_COLUMNS} WHERE key_id = ?1");
        sqlx::query_as::<_, RawKey>(&sql)
            .bind(key.to_string())
            .fetch_optional(&self.read)
            .await
            .db()?
            .map(RawKey::into_row)
            .transpose()
    }

    async fn list_api_keys(&self, org: OrgId, query: &KeyListQuery) -> StoreResult<Vec<ApiKeyRow>> {
        let cursor = id_cursor::<KeyId>(&query.page.cursor)?;
        let mut qb = QueryBuilder::<Sqlite>::new(KEY_COLUMNS);
        qb.push(" WHERE org_id = ").push_bind(org.to_string());
        if let Some(c) = cursor {
            qb.push(" AND key_id < ").push_bind(c);
        }
        match query.status {
            None => {}
            Some(KeyStatus::Active) => {
                qb.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                    .push_bind(query.now_ms)
                    .push(")");
            }
            Some(KeyStatus::Revoked) => {
                qb.push(" AND revoked_at IS NOT NULL");
            }
            Some(KeyStatus::Expired) => {
                qb.push(" AND revoked_at IS NULL AND expires_at <= ").push_bind(query.now_ms);
            }
        }
        qb.push(" ORDER BY key_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
        qb.build_query_as::<RawKey>().fetch_all(&self.read).await.db()?.into_iter().map(RawKey::into_row).collect()
    }

    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: KeyId,
        by: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE api_keys SET revoked_at = ?1, revoked_by = ?2, change_seq = {NEXT_CHANGE_SEQ} \
             WHERE org_id = ?3 AND key_id = ?4 AND revoked_at IS NULL"
        );
        let changed = sqlx::query(&sql)
            .bind(now_ms)
            .bind(by)
            .bind(org.to_string())
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        let row = fetch_key(&mut tx, org, key).await?.ok_or(StoreError::NotFound)?;
        if changed == 0 {
            // Already revoked: nothing changes, nothing is audited.
            tx.rollback().await.db()?;
            return Ok(row);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn rotate_api_key(
        &self,
        org: OrgId,
        old: KeyId,
        old_expires_at: i64,
        successor: &ApiKeyRow,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        if successor.org_id != org {
            return Err(StoreError::Internal("the successor key belongs to another organization".into()));
        }
        let mut tx = self.begin().await?;
        let current = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
        if current.revoked_at.is_some() {
            return Err(StoreError::Conflict("the API key is revoked".into()));
        }
        insert_key(&mut tx, successor).await?;
        let expires_at = current.expires_at.map_or(old_expires_at, |e| e.min(old_expires_at));
        let sql = format!(
            "UPDATE api_keys SET expires_at = ?1, change_seq = {NEXT_CHANGE_SEQ} WHERE org_id = ?2 AND key_id = ?3"
        );
        sqlx::query(&sql).bind(expires_at).bind(org.to_string()).bind(old.to_string()).execute(&mut *tx).await.db()?;
        insert_audit(&mut tx, audit).await?;
        let row = fetch_key(&mut tx, org, old).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn record_key_usage(&self, usage: &[KeyUsageDelta]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for u in usage {
            let key = u.key_id.to_string();
            let count = i64::try_from(u.count).unwrap_or(i64::MAX);
            // Unknown keys are skipped (the key may have been deleted with its org).
            sqlx::query(
                "INSERT INTO api_key_usage (key_id, day, count) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM api_keys WHERE key_id = ?1) \
                 ON CONFLICT (key_id, day) DO UPDATE SET count = count + excluded.count",
            )
            .bind(&key)
            .bind(&u.day)
            .bind(count)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?1) WHERE key_id = ?2")
                .bind(u.last_used_at)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }

    async fn key_usage(&self, org: OrgId, key: KeyId, since_day: &str) -> StoreResult<Vec<UsageDay>> {
        let mut conn = self.read.acquire().await.db()?;
        let exists: i64 =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE org_id = ?1 AND key_id = ?2)")
                .bind(org.to_string())
                .bind(key.to_string())
                .fetch_one(&mut *conn)
                .await
                .db()?;
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.day, u.count FROM api_key_usage u JOIN api_keys k ON k.key_id = u.key_id \
             WHERE k.org_id = ?1 AND u.key_id = ?2 AND u.day >= ?3 ORDER BY u.day ASC",
        )
        .bind(org.to_string())
        .bind(key.to_string())
        .bind(since_day)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        Ok(rows.into_iter().map(|(day, count)| UsageDay { day, count: u64::try_from(count).unwrap_or(0) }).collect())
    }

    async fn prune_key_usage(&self, before_day: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM api_key_usage WHERE day < ?1")
            .bind(before_day)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        tx.commit().await.db()?;
        Ok(n)
    }

    async fn key_gate_changes(&self, after_seq: i64) -> StoreResult<Vec<KeyGateRow>> {
        let rows: Vec<RawGate> = if after_seq <= 0 {
            // Every key that is revoked or has an expiry carries a change_seq
            // above 0 (every writer assigns one), so the index on change_seq
            // finds them without scanning the table: this call runs on each
            // poll of a server that has not yet seen any gated key, and a
            // full scan of a million keys there cost most of a core.
            sqlx::query_as(
                "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
                 WHERE change_seq > 0 AND (revoked_at IS NOT NULL OR expires_at IS NOT NULL) ORDER BY change_seq",
            )
            .fetch_all(&self.read)
            .await
            .db()?
        } else {
            sqlx::query_as(
                "SELECT key_id, revoked_at, expires_at, change_seq FROM api_keys \
                 WHERE change_seq > ?1 ORDER BY change_seq",
            )
            .bind(after_seq)
            .fetch_all(&self.read)
            .await
            .db()?
        };
        rows.into_iter().map(RawGate::into_row).collect()
    }

    // ---- prompts and versions --------------------------------------------------------

    async fn create_prompt(&self, prompt: &PromptRow, v1: &VersionRow, audit: &AuditRow) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO prompts (prompt_id, org_id, name, description, tags, next_version, created_at, updated_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, 2, ?6, ?7, ?8)",
        )
        .bind(prompt.prompt_id.to_string())
        .bind(prompt.org_id.to_string())
        .bind(&prompt.name)
        .bind(&prompt.description)
        .bind(json_text(&prompt.tags)?)
        .bind(prompt.created_at)
        .bind(prompt.updated_at)
        .bind(&prompt.created_by)
        .execute(&mut *tx)
        .await
        .db()?;
        // v1 is always a draft numbered 1 of this prompt; its variables follow its content.
        let variables = scope_domain::template::variables(&v1.content);
        sqlx::query(
            "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, status, \
             prompt_type, metadata, created_at, updated_at, created_by) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5, 'draft', ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(v1.version_id.to_string())
        .bind(prompt.prompt_id.to_string())
        .bind(prompt.org_id.to_string())
        .bind(&v1.content)
        .bind(json_text(&variables)?)
        .bind(&v1.prompt_type)
        .bind(json_text(&v1.metadata)?)
        .bind(v1.created_at)
        .bind(v1.updated_at)
        .bind(&v1.created_by)
        .execute(&mut *tx)
        .await
        .db()?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()
    }

    async fn get_prompt(&self, org: OrgId, name_or_id: &str) -> StoreResult<PromptSummary> {
        let by_id = if PromptId::looks_like(name_or_id) { name_or_id.parse::<PromptId>().ok() } else { None };
        let raw = match by_id {
            Some(id) => {
                let sql = format!("{PROMPT_SELECT} WHERE p.org_id = ?1 AND p.prompt_id = ?2");
                sqlx::query_as::<_, RawPrompt>(&sql)
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .db()?
            }
            None => {
                let sql = format!("{PROMPT_SELECT} WHERE p.org_id = ?1 AND p.name = ?2");
                sqlx::query_as::<_, RawPrompt>(&sql)
                    .bind(org.to_string())
                    .bind(name_or_id)
                    .fetch_optional(&self.read)
                    .await
                    .db()?
            }
        };
        raw.ok_or(StoreError::NotFound)?.into_summary()
    }

    async fn list_prompts(&self, org: OrgId, query: &PromptListQuery) -> StoreResult<Vec<PromptSummary>> {
        let cursor = id_cursor::<PromptId>(&query.page.cursor)?;
        let mut qb = QueryBuilder::<Sqlite>::new(PROMPT_SELECT);
        qb.push(" WHERE p.org_id = ").push_bind(org.to_string());
        if let Some(c) = cursor {
            qb.push(" AND p.prompt_id < ").push_bind(c);
        }
        if let Some(tag) = &query.tag {
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(p.tags) WHERE json_each.value = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            let pattern = like_contains(q);
            qb.push(" AND (p.name LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR p.description LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        qb.push(" ORDER BY p.prompt_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
        qb.build_query_as::<RawPrompt>()
            .fetch_all(&self.read)
            .await
            .db()?
            .into_iter()
            .map(RawPrompt::into_summary)
            .collect()
    }

    async fn update_prompt(
        &self,
        org: OrgId,
        prompt: PromptId,
        patch: &PromptPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        let tags = patch.tags.as_ref().map(json_text).transpose()?;
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE prompts SET description = COALESCE(?1, description), tags = COALESCE(?2, tags), \
             updated_at = ?3 WHERE org_id = ?4 AND prompt_id = ?5",
        )
        .bind(patch.description.as_deref())
        .bind(tags)
        .bind(now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()
    }

    async fn delete_prompt(&self, org: OrgId, prompt: PromptId, audit: &AuditRow) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM prompts WHERE org_id = ?1 AND prompt_id = ?2")
            .bind(org.to_string())
            .bind(prompt.to_string())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.db()
    }

    async fn create_version(
        &self,
        org: OrgId,
        prompt: PromptId,
        new: &NewVersion,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        let mut tx = self.begin().await?;
        let next: i64 = sqlx::query_scalar("SELECT next_version FROM prompts WHERE org_id = ?1 AND prompt_id = ?2")
            .bind(org.to_string())
            .bind(prompt.to_string())
            .fetch_optional(&mut *tx)
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;

        let source = match new.copy_from {
            Some(from) => Some(fetch_version(&mut tx, org, prompt, from).await?.ok_or(StoreError::NotFound)?),
            None => None,
        };
        let content = new.content.clone().or_else(|| source.as_ref().map(|s| s.content.clone())).unwrap_or_default();
        let prompt_type = new
            .prompt_type
            .clone()
            .or_else(|| source.as_ref().map(|s| s.prompt_type.clone()))
            .unwrap_or_else(|| "text".to_owned());
        let metadata = new
            .metadata
            .clone()
            .or_else(|| source.as_ref().map(|s| s.metadata.clone()))
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        let variables = scope_domain::template::variables(&content);

        sqlx::query(
            "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, status, \
             prompt_type, metadata, created_at, updated_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'draft', ?7, ?8, ?9, ?9, ?10)",
        )
        .bind(new.version_id.to_string())
        .bind(prompt.to_string())
        .bind(org.to_string())
        .bind(next)
        .bind(&content)
        .bind(json_text(&variables)?)
        .bind(&prompt_type)
        .bind(json_text(&metadata)?)
        .bind(new.now_ms)
        .bind(&new.created_by)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "UPDATE prompts SET next_version = next_version + 1, updated_at = ?1 \
             WHERE org_id = ?2 AND prompt_id = ?3",
        )
        .bind(new.now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
        insert_audit(&mut tx, audit).await?;
        let row = fetch_version(&mut tx, org, prompt, new.version_id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn get_version(&self, org: OrgId, prompt: PromptId, version: VersionId) -> StoreResult<VersionRow> {
        let mut conn = self.read.acquire().await.db()?;
        fetch_version(&mut conn, org, prompt, version).await?.ok_or(StoreError::NotFound)
    }

    async fn production_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        let sql = format!("{VERSION_SELECT} WHERE v.org_id = ?1 AND v.prompt_id = ?2 AND v.status = 'published'");
        sqlx::query_as::<_, RawVersion>(&sql)
            .bind(org.to_string())
            .bind(prompt.to_string())
            .fetch_optional(&self.read)
            .await
            .db()?
            .map(RawVersion::into_row)
            .transpose()
    }

    async fn latest_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        let sql = format!("{VERSION_SELECT} WHERE v.org_id = ?1 AND v.prompt_id = ?2 ORDER BY v.version DESC LIMIT 1");
        sqlx::query_as::<_, RawVersion>(&sql)
            .bind(org.to_string())
            .bind(prompt.to_string())
            .fetch_optional(&self.read)
            .await
            .db()?
            .map(RawVersion::into_row)
            .transpose()
    }

    async fn list_versions(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &VersionListQuery,
    ) -> StoreResult<Vec<VersionRow>> {
        let cursor = number_cursor(&query.page.cursor)?;
        let mut qb = QueryBuilder::<Sqlite>::new(VERSION_SELECT);
        qb.push(" WHERE v.org_id = ").push_bind(org.to_string());
        qb.push(" AND v.prompt_id = ").push_bind(prompt.to_string());
        if let Some(c) = cursor {
            qb.push(" AND v.version < ").push_bind(c);
        }
        if !query.include_archived {
            qb.push(" AND v.status <> 'archived'");
        }
        qb.push(" ORDER BY v.version DESC LIMIT ").push_bind(i64::from(query.page.limit));
        qb.build_query_as::<RawVersion>()
            .fetch_all(&self.read)
            .await
            .db()?
            .into_iter()
            .map(RawVersion::into_row)
            .collect()
    }

    async fn update_draft(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        patch: &DraftPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        let variables =
            patch.content.as_deref().map(|c| json_text(&scope_domain::template::variables(c))).transpose()?;
        let metadata = patch.metadata.as_ref().map(json_text).transpose()?;
        let mut tx = self.begin().await?;
        version_status(&mut tx, org, prompt, version).await?.check_editable()?;
        sqlx::query(
            "UPDATE prompt_versions SET content = COALESCE(?1, content), variables = COALESCE(?2, variables), \
             prompt_type = COALESCE(?3, prompt_type), metadata = COALESCE(?4, metadata), updated_at = ?5 \
             WHERE org_id = ?6 AND prompt_id = ?7 AND version_id = ?8",
        )
        .bind(patch.content.as_deref())
        .bind(variables)
        .bind(patch.prompt_type.as_deref())
        .bind(metadata)
        .bind(now_ms)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(version.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
        touch_prompt(&mut tx, org, prompt, now_ms).await?;
        insert_audit(&mut tx, audit).await?;
        let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn promote(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        req: &PromoteRequest,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        let mut tx = self.begin().await?;
        let target = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
        if target.status == VersionStatus::Published {
            tx.rollback().await.db()?;
            return Ok(target);
        }
        let previous: Option<(String, i64)> = sqlx::query_as(
            "SELECT version_id, version FROM prompt_versions \
             WHERE org_id = ?1 AND prompt_id = ?2 AND status = 'published'",
        )
        .bind(org.to_string())
        .bind(prompt.to_string())
        .fetch_optional(&mut *tx)
        .await
        .db()?;

        // Demote first: the partial unique index allows one published row.
        if let Some((prev_id, _)) = &previous {
            sqlx::query(
                "UPDATE prompt_versions SET status = ?1, updated_at = ?2 \
                 WHERE org_id = ?3 AND prompt_id = ?4 AND version_id = ?5",
            )
            .bind(VersionStatus::demoted(req.archive_previous).as_str())
            .bind(req.now_ms)
            .bind(org.to_string())
            .bind(prompt.to_string())
            .bind(prev_id)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        sqlx::query(
            "UPDATE prompt_versions SET status = ?1, promoted_at = ?2, promoted_by = ?3, updated_at = ?2 \
             WHERE org_id = ?4 AND prompt_id = ?5 AND version_id = ?6",
        )
        .bind(target.status.after_promote().as_str())
        .bind(req.now_ms)
        .bind(&req.actor)
        .bind(org.to_string())
        .bind(prompt.to_string())
        .bind(version.to_string())
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "INSERT INTO promotions (promotion_id, prompt_id, org_id, version_id, version, previous_version_id, \
             previous_version, promoted_by, promoted_at, notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(&req.promotion_id)
        .bind(prompt.to_string())
        .bind(org.to_string())
        .bind(version.to_string())
        .bind(target.version)
        .bind(previous.as_ref().map(|(id, _)| id.clone()))
        .bind(previous.as_ref().map(|(_, n)| *n))
        .bind(&req.actor)
        .bind(req.now_ms)
        .bind(req.notes.as_deref())
        .execute(&mut *tx)
        .await
        .db()?;
        touch_prompt(&mut tx, org, prompt, req.now_ms).await?;
        insert_audit(&mut tx, audit).await?;
        let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn set_archived(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        to_archived: bool,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        let mut tx = self.begin().await?;
        let current = version_status(&mut tx, org, prompt, version).await?;
        let next = if to_archived { current.archive()? } else { current.unarchive()? };
        if next != current {
            sqlx::query(
                "UPDATE prompt_versions SET status = ?1, updated_at = ?2 \
                 WHERE org_id = ?3 AND prompt_id = ?4 AND version_id = ?5",
            )
            .bind(next.as_str())
            .bind(now_ms)
            .bind(org.to_string())
            .bind(prompt.to_string())
            .bind(version.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
            touch_prompt(&mut tx, org, prompt, now_ms).await?;
            insert_audit(&mut tx, audit).await?;
        }
        let row = fetch_version(&mut tx, org, prompt, version).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.db()?;
        Ok(row)
    }

    async fn list_promotions(&self, org: OrgId, prompt: PromptId, query: &PageQuery) -> StoreResult<Vec<PromotionRow>> {
        let cursor = text_cursor(&query.cursor, "prm_")?;
        let mut qb = QueryBuilder::<Sqlite>::new(PROMOTION_COLUMNS);
        qb.push(" WHERE org_id = ").push_bind(org.to_string());
        qb.push(" AND prompt_id = ").push_bind(prompt.to_string());
        if let Some(c) = cursor {
            qb.push(" AND promotion_id < ").push_bind(c);
        }
        qb.push(" ORDER BY promotion_id DESC LIMIT ").push_bind(i64::from(query.limit));
        qb.build_query_as::<RawPromotion>()
            .fetch_all(&self.read)
            .await
            .db()?
            .into_iter()
            .map(RawPromotion::into_row)
            .collect()
    }

    // ---- signing keys ------------------------------------------------------------------

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        let sql = format!("{SIGNING_COLUMNS} ORDER BY created_at DESC, kid DESC");
        Ok(sqlx::query_as::<_, RawSigningKey>(&sql)
            .fetch_all(&self.read)
            .await
            .db()?
            .into_iter()
            .map(RawSigningKey::into_row)
            .collect())
    }

    async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL")
            .bind(row.created_at)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at, retired_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&row.kid)
        .bind(&row.public_key[..])
        .bind(&row.private_key[..])
        .bind(i64::from(row.encrypted))
        .bind(row.created_at)
        .bind(row.retired_at)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn delete_signing_keys_retired_before(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        tx.commit().await.db()?;
        Ok(n)
    }

    // ---- audit ---------------------------------------------------------------------------

    async fn list_audit(&self, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let cursor = text_cursor(&query.page.cursor, "evt_")?;
        // An empty filter value (`?actor=`) filters nothing.
        let given = |f: &Option<String>| f.clone().filter(|v| !v.is_empty());
        let mut qb = QueryBuilder::<Sqlite>::new(AUDIT_COLUMNS);
        qb.push(" WHERE org_id = ").push_bind(org.to_string());
        if let Some(c) = cursor {
            qb.push(" AND event_id < ").push_bind(c);
        }
        if let Some(actor) = given(&query.actor) {
            qb.push(" AND actor = ").push_bind(actor);
        }
        if let Some(action) = given(&query.action) {
            match prefix_range(&action) {
                Some((from, to)) => {
                    qb.push(" AND action >= ").push_bind(from).push(" AND action < ").push_bind(to);
                }
                None => {
                    qb.push(" AND action = ").push_bind(action);
                }
            }
        }
        if let Some(target) = given(&query.target) {
            qb.push(" AND target = ").push_bind(target);
        }
        if let Some(since) = query.since_ms {
            qb.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = query.until_ms {
            qb.push(" AND at < ").push_bind(until);
        }
        qb.push(" ORDER BY event_id DESC LIMIT ").push_bind(i64::from(query.page.limit));
        qb.build_query_as::<RawAudit>().fetch_all(&self.read).await.db()?.into_iter().map(RawAudit::into_row).collect()
    }

    // ---- bulk import -------------------------------------------------------------------

    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let mut seq: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(change_seq), 0) FROM api_keys").fetch_one(&mut *tx).await.db()?;
        for chunk in keys.chunks(IMPORT_BATCH_ROWS) {
            let mut rows = Vec::with_capacity(chunk.len());
            for k in chunk {
                // Same rule as `insert_key`: a key born with a gate gets the
                // next sequence number so the revocation views pick it up.
                let change_seq = if k.expires_at.is_none() && k.revoked_at.is_none() {
                    0
                } else {
                    seq += 1;
                    seq
                };
                rows.push((k, change_seq));
            }
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO api_keys (key_id, org_id, name, environment, role, secret_digest, created_at, \
                 created_by, expires_at, last_used_at, revoked_at, revoked_by, rotated_from, change_seq) ",
            );
            qb.push_values(rows, |mut b, (k, change_seq)| {
                b.push_bind(k.key_id.to_string())
                    .push_bind(k.org_id.to_string())
                    .push_bind(k.name.as_str())
                    .push_bind(k.environment.as_str())
                    .push_bind(k.role.as_str())
                    .push_bind(&k.secret_digest[..])
                    .push_bind(k.created_at)
                    .push_bind(k.created_by.as_str())
                    .push_bind(k.expires_at)
                    .push_bind(k.last_used_at)
                    .push_bind(k.revoked_at)
                    .push_bind(k.revoked_by.as_deref())
                    .push_bind(k.rotated_from.map(|id| id.to_string()))
                    .push_bind(change_seq);
            });
            qb.build().execute(&mut *tx).await.db()?;
        }
        tx.commit().await.db()
    }

    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
        if prompts.is_empty() {
            return Ok(());
        }
        for (p, versions) in prompts {
            let published = versions.iter().filter(|v| v.status == VersionStatus::Published).count();
            let foreign = versions.iter().any(|v| v.prompt_id != p.prompt_id || v.org_id != p.org_id);
            if published > 1 || foreign {
                return Err(StoreError::Domain(DomainError::bad_request(
                    "each imported version must belong to its prompt, with at most one published",
                )));
            }
        }
        let mut tx = self.begin().await?;
        for chunk in prompts.chunks(IMPORT_BATCH_ROWS) {
            let mut prompt_rows = Vec::with_capacity(chunk.len());
            for (p, versions) in chunk {
                let next = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                prompt_rows.push((p, json_text(&p.tags)?, next));
            }
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO prompts (prompt_id, org_id, name, description, tags, next_version, created_at, \
                 updated_at, created_by) ",
            );
            qb.push_values(prompt_rows, |mut b, (p, tags, next)| {
                b.push_bind(p.prompt_id.to_string())
                    .push_bind(p.org_id.to_string())
                    .push_bind(p.name.as_str())
                    .push_bind(p.description.as_str())
                    .push_bind(tags)
                    .push_bind(next)
                    .push_bind(p.created_at)
                    .push_bind(p.updated_at)
                    .push_bind(p.created_by.as_str());
            });
            qb.build().execute(&mut *tx).await.db()?;

            let mut version_rows = Vec::new();
            for v in chunk.iter().flat_map(|(_, vs)| vs.iter()) {
                let variables = json_text(&scope_domain::template::variables(&v.content))?;
                version_rows.push((v, variables, json_text(&v.metadata)?));
            }
            for vchunk in version_rows.chunks(IMPORT_BATCH_ROWS) {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO prompt_versions (version_id, prompt_id, org_id, version, content, variables, \
                     status, prompt_type, metadata, created_at, updated_at, created_by, promoted_at, promoted_by) ",
                );
                qb.push_values(vchunk, |mut b, (v, variables, metadata)| {
                    b.push_bind(v.version_id.to_string())
                        .push_bind(v.prompt_id.to_string())
                        .push_bind(v.org_id.to_string())
                        .push_bind(v.version)
                        .push_bind(v.content.as_str())
                        .push_bind(variables.as_str())
                        .push_bind(v.status.as_str())
                        .push_bind(v.prompt_type.as_str())
                        .push_bind(metadata.as_str())
                        .push_bind(v.created_at)
                        .push_bind(v.updated_at)
                        .push_bind(v.created_by.as_str())
                        .push_bind(v.promoted_at)
                        .push_bind(v.promoted_by.as_deref());
                });
                qb.build().execute(&mut *tx).await.db()?;
            }
        }
        tx.commit().await.db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_prefix_is_a_range() {
        assert_eq!(prefix_range("user."), Some(("user.".to_owned(), "user/".to_owned())));
        assert_eq!(prefix_range("user.created"), None);
        assert_eq!(prefix_range("."), Some((".".to_owned(), "/".to_owned())));
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn cursors_are_validated() {
        assert!(matches!(number_cursor(&Some("x".into())), Err(StoreError::Domain(_))));
        assert!(matches!(id_cursor::<KeyId>(&Some("pmt_x".into())), Err(StoreError::Domain(_))));
        assert!(matches!(number_cursor(&Some("-1".into())), Err(StoreError::Domain(_))));
        assert!(matches!(text_cursor(&Some("a' OR 1".into()), "prm_"), Err(StoreError::Domain(_))));
        assert!(matches!(text_cursor(&Some("evt_01".into()), "prm_"), Err(StoreError::Domain(_))));
        assert!(matches!(text_cursor(&Some("prm_".into()), "prm_"), Err(StoreError::Domain(_))));
        assert_eq!(text_cursor(&Some("prm_01".into()), "prm_").ok().flatten().as_deref(), Some("prm_01"));
        assert_eq!(number_cursor(&Some("3".into())).ok().flatten(), Some(3));
    }
}
