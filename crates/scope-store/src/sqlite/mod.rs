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
//! This file holds the pools, the error mapping, the statements every concern
//! shares (the audit insert) and the one `impl Store`, whose methods delegate
//! to a module per concern:
//!
//! - `users.rs`: organizations, users, sessions, invitations;
//! - `keys.rs`: API keys, their usage counters and gates, bulk key import;
//! - `prompts.rs`: prompts, versions, promotions, bulk prompt import;
//! - `signing_keys.rs`: the token-signing keys;
//! - `tokens.rs`: access tokens revoked one by one;
//! - `labels.rs`: labels of versions, their history, protected labels;
//! - `events.rs`: the event log every change appends to;
//! - `audit.rs`: the audit log;
//! - `transfer.rs`: export and import of a whole deployment.

mod audiences;
mod audit;
mod events;
mod keys;
mod labels;
mod prompts;
mod quotas;
mod signing_keys;
mod tokens;
mod transfer;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use scope_domain::{DomainError, KeyId, OrgId, PromptId, Role, UserId, VersionId};
use sqlx::error::ErrorKind;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;

use crate::common::*;
use crate::model::*;
use crate::{Store, StoreError, StoreResult};

/// Readers beside the single writer.
const READ_POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per multi-row INSERT of the bulk imports and `Store::import` (the
/// widest table has 14 columns: 14 × 500 stays far below SQLite's limit of
/// 32766 bound parameters).
const IMPORT_BATCH_ROWS: usize = 500;
const _: () = assert!(IMPORT_BATCH_ROWS * 14 <= 32_766);
/// How write transactions start: take the write lock up front.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

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
            create_private(options.get_filename())?;
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

        // sqlx takes no lock around SQLite migrations: two processes opening
        // a new database at once (replicas' first start, `scope serve` beside
        // a CLI run) would both apply a pending migration, and the second
        // would fail ("duplicate column"). An exclusive `flock` on the
        // database's directory serializes them. Not on the database file
        // itself: closing any descriptor of that file drops every POSIX lock
        // this process's SQLite connections hold on it, after which another
        // process may believe it is the last one open and delete the WAL
        // under them.
        let migrating = if in_memory { None } else { Some(lock_exclusive(options.get_filename()).await?) };
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        drop(migrating);

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

/// Waits for an exclusive advisory lock on the directory holding `file`,
/// held until the returned handle is dropped.
async fn lock_exclusive(file: &Path) -> StoreResult<std::fs::File> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let locked = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&dir)?;
        f.lock()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| StoreError::Internal(format!("cannot lock the database for migrations: {e}")))?;
    locked.map_err(|e| StoreError::Internal(format!("cannot lock the database for migrations: {e}")))
}

/// Creates the database's directory (mode 0700) and the database file (mode
/// 0600) where they are missing, so that signing keys, key digests and
/// password hashes are never readable by other users of the machine.
/// SQLite creates its `-wal` and `-shm` files with the database file's mode.
/// Existing ones are left as they are, with a warning when others may read
/// them.
fn create_private(file: &Path) -> StoreResult<()> {
    let cannot =
        |what: &str, e: std::io::Error| StoreError::Internal(format!("cannot create the database {what}: {e}"));
    if let Some(parent) = file.parent().filter(|p| *p != Path::new("")) {
        if !parent.exists() {
            let mut dir = std::fs::DirBuilder::new();
            dir.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir.create(parent).map_err(|e| cannot("directory", e))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_shared(file);
            Ok(())
        }
        Err(e) => Err(cannot("file", e)),
    }
}

/// Warns when users other than the owner may read or write the database
/// file (created before this version, or by hand).
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(mode) = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777) {
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = %format!("{mode:o}"),
                    "the database file is accessible to other users of this machine; restrict it to its owner \
                     (chmod 600, and the same for its -wal and -shm files)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
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

// ---- statements every concern shares ------------------------------------------------

/// Writes one audit row inside the caller's transaction (every concern does).
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

// ---- the trait: one line per method, the statements live in the concern modules ----

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
        users::is_initialized(self).await
    }

    async fn create_org(&self, org: &OrgRow, admin: &UserRow, key: &ApiKeyRow, audit: &[AuditRow]) -> StoreResult<()> {
        users::create_org(self, org, admin, key, audit).await
    }

    async fn bootstrap_org(
        &self,
        org: &OrgRow,
        admin: &UserRow,
        key: &ApiKeyRow,
        audit: &[AuditRow],
    ) -> StoreResult<bool> {
        users::bootstrap_org(self, org, admin, key, audit).await
    }

    async fn get_org(&self, org: OrgId) -> StoreResult<OrgRow> {
        users::get_org(self, org).await
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
        audit::insert_audit(self, audit).await
    }

    // ---- API keys --------------------------------------------------------------------

    async fn insert_api_key(&self, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()> {
        keys::insert_api_key(self, key, audit).await
    }

    async fn get_api_key(&self, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow> {
        keys::get_api_key(self, org, key).await
    }

    async fn find_api_key(&self, key: KeyId) -> StoreResult<Option<ApiKeyRow>> {
        keys::find_api_key(self, key).await
    }

    async fn list_api_keys(&self, org: OrgId, query: &KeyListQuery) -> StoreResult<Vec<ApiKeyRow>> {
        keys::list_api_keys(self, org, query).await
    }

    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: KeyId,
        by: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        keys::revoke_api_key(self, org, key, by, now_ms, audit).await
    }

    async fn rotate_api_key(
        &self,
        org: OrgId,
        old: KeyId,
        old_expires_at: i64,
        successor: &ApiKeyRow,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow> {
        keys::rotate_api_key(self, org, old, old_expires_at, successor, audit).await
    }

    async fn record_key_usage(&self, usage: &[KeyUsageDelta]) -> StoreResult<()> {
        keys::record_key_usage(self, usage).await
    }

    async fn key_usage(&self, org: OrgId, key: KeyId, since_day: &str) -> StoreResult<Vec<UsageDay>> {
        keys::key_usage(self, org, key, since_day).await
    }

    async fn prune_key_usage(&self, before_day: &str) -> StoreResult<u64> {
        keys::prune_key_usage(self, before_day).await
    }

    async fn key_gate_changes(&self, after_seq: i64) -> StoreResult<Vec<KeyGateRow>> {
        keys::key_gate_changes(self, after_seq).await
    }

    async fn revoke_token(&self, token: &RevokedTokenRow, audit: &AuditRow) -> StoreResult<bool> {
        tokens::revoke_token(self, token, audit).await
    }

    async fn revoked_token_changes(&self, after_seq: i64, now_ms: i64) -> StoreResult<Vec<RevokedTokenRow>> {
        tokens::revoked_token_changes(self, after_seq, now_ms).await
    }

    async fn prune_revoked_tokens(&self, before_ms: i64) -> StoreResult<u64> {
        tokens::prune_revoked_tokens(self, before_ms).await
    }

    // ---- prompts and versions --------------------------------------------------------

    async fn create_prompt(&self, prompt: &PromptRow, v1: &VersionRow, audit: &AuditRow) -> StoreResult<()> {
        prompts::create_prompt(self, prompt, v1, audit).await
    }

    async fn get_prompt(&self, org: OrgId, name_or_id: &str) -> StoreResult<PromptSummary> {
        prompts::get_prompt(self, org, name_or_id).await
    }

    async fn list_prompts(&self, org: OrgId, query: &PromptListQuery) -> StoreResult<Vec<PromptSummary>> {
        prompts::list_prompts(self, org, query).await
    }

    async fn update_prompt(
        &self,
        org: OrgId,
        prompt: PromptId,
        patch: &PromptPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<()> {
        prompts::update_prompt(self, org, prompt, patch, now_ms, audit).await
    }

    async fn delete_prompt(&self, org: OrgId, prompt: PromptId, audit: &AuditRow) -> StoreResult<()> {
        prompts::delete_prompt(self, org, prompt, audit).await
    }

    async fn create_version(
        &self,
        org: OrgId,
        prompt: PromptId,
        new: &NewVersion,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        prompts::create_version(self, org, prompt, new, audit).await
    }

    async fn get_version(&self, org: OrgId, prompt: PromptId, version: VersionId) -> StoreResult<VersionRow> {
        prompts::get_version(self, org, prompt, version).await
    }

    async fn production_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        prompts::production_version(self, org, prompt).await
    }

    async fn latest_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>> {
        prompts::latest_version(self, org, prompt).await
    }

    async fn list_versions(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &VersionListQuery,
    ) -> StoreResult<Vec<VersionRow>> {
        prompts::list_versions(self, org, prompt, query).await
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
        prompts::update_draft(self, org, prompt, version, patch, now_ms, audit).await
    }

    async fn promote(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        req: &PromoteRequest,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow> {
        prompts::promote(self, org, prompt, version, req, audit).await
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
        prompts::set_archived(self, org, prompt, version, to_archived, now_ms, audit).await
    }

    async fn list_promotions(&self, org: OrgId, prompt: PromptId, query: &PageQuery) -> StoreResult<Vec<PromotionRow>> {
        prompts::list_promotions(self, org, prompt, query).await
    }

    // ---- labels and the event log ------------------------------------------------------

    async fn list_labels(&self, org: OrgId, prompt: PromptId) -> StoreResult<Vec<LabelRow>> {
        labels::list_labels(self, org, prompt).await
    }

    async fn move_label(
        &self,
        org: OrgId,
        prompt: PromptId,
        req: &MoveLabelRequest,
        audit: &AuditRow,
    ) -> StoreResult<Option<VersionRow>> {
        labels::move_label(self, org, prompt, req, audit).await
    }

    async fn list_label_moves(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &LabelMoveQuery,
    ) -> StoreResult<Vec<LabelMoveRow>> {
        labels::list_label_moves(self, org, prompt, query).await
    }

    async fn protected_labels(&self, org: OrgId) -> StoreResult<Vec<String>> {
        labels::protected_labels(self, org).await
    }

    async fn set_protected_labels(&self, org: OrgId, labels: &[String], audit: &AuditRow) -> StoreResult<()> {
        labels::set_protected_labels(self, org, labels, audit).await
    }

    async fn list_audiences(&self, org: OrgId) -> StoreResult<Vec<String>> {
        audiences::list_audiences(self, org).await
    }

    async fn set_audiences(&self, org: OrgId, audiences: &[String], audit: &AuditRow) -> StoreResult<()> {
        audiences::set_audiences(self, org, audiences, audit).await
    }

    async fn list_events(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
        events::list_events(self, org, after_seq, limit).await
    }

    async fn event_feed(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>> {
        events::event_feed(self, after_seq, limit).await
    }

    async fn event_bounds(&self) -> StoreResult<EventBounds> {
        events::event_bounds(self).await
    }

    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        events::prune_events(self, before_ms).await
    }

    // ---- signing keys ------------------------------------------------------------------

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        signing_keys::list_signing_keys(self).await
    }

    async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()> {
        signing_keys::insert_signing_key(self, row).await
    }

    async fn delete_signing_keys_retired_before(&self, before_ms: i64) -> StoreResult<u64> {
        signing_keys::delete_signing_keys_retired_before(self, before_ms).await
    }

    async fn seal_signing_key(&self, kid: &str, sealed: &[u8]) -> StoreResult<bool> {
        signing_keys::seal_signing_key(self, kid, sealed).await
    }

    // ---- quotas --------------------------------------------------------------------------

    async fn count_prompts(&self, org: OrgId) -> StoreResult<u64> {
        quotas::count_prompts(self, org).await
    }

    async fn count_active_api_keys(&self, org: OrgId, now_ms: i64) -> StoreResult<u64> {
        quotas::count_active_api_keys(self, org, now_ms).await
    }

    // ---- audit ---------------------------------------------------------------------------

    async fn list_audit(&self, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        audit::list_audit(self, org, query).await
    }

    // ---- bulk import -------------------------------------------------------------------

    /// SQLite cannot push changes: servers poll.
    async fn changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<Change>>> {
        Ok(None)
    }

    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()> {
        keys::import_api_keys(self, keys).await
    }

    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
        prompts::import_prompts(self, prompts).await
    }
}
