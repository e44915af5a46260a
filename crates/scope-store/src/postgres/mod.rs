//! The PostgreSQL backend, for running several `scope serve` replicas on one
//! database.
//!
//! One pool of connections; every write runs in a READ COMMITTED transaction
//! that first takes the lock that serializes it against writers in other
//! processes, where SQLite's single writer gave that for free:
//!
//! - the prompt row (`SELECT … FOR UPDATE`) before any change to a prompt, its
//!   versions or its promotions, so version numbers and "exactly one
//!   published" never depend on timing;
//! - the organization row before the "last active admin" checks;
//! - a transaction-scoped advisory lock ([`GATE_LOCK`]) before assigning a key
//!   gate sequence number, so numbers are handed out in commit order and a
//!   poller that has seen number n never misses a later commit below n;
//! - another ([`SIGNING_LOCK`]) around signing-key rotation;
//! - another ([`TOKEN_LOCK`]) before recording a revoked access token, for
//!   the same reason as the gate lock;
//! - another ([`EVENT_LOCK`]), the last lock any transaction takes, before
//!   appending to the event log, for the same reason as the gate lock.
//!
//! Writes that change what replicas cache also `pg_notify` (see
//! [`changes`]), delivered when they commit.
//!
//! All queries are runtime queries with bound parameters; error messages never
//! carry bound values. This file holds the pool, migrations, error mapping
//! and the one `impl Store`, which delegates to a module per concern.

mod audiences;
mod audit;
mod changes;
mod events;
mod keys;
mod labels;
mod prompts;
mod quotas;
mod signing_keys;
mod tokens;
mod transfer;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use scope_domain::{DomainError, KeyId, OrgId, PromptId, Role, UserId, VersionId};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use crate::model::*;
use crate::{OpenOptions, Store, StoreError, StoreResult};

/// Advisory lock held (session-scoped, on a dedicated connection) while the
/// migrations run, so replicas starting at once migrate one after the other.
const MIGRATION_LOCK: i64 = 0x5C09_E000_0001;
/// Transaction-scoped advisory lock taken before assigning a key gate
/// `change_seq`.
const GATE_LOCK: i64 = 0x5C09_E000_0002;
/// Transaction-scoped advisory lock taken before retiring and inserting
/// signing keys, so two replicas rotating at once leave one active key.
const SIGNING_LOCK: i64 = 0x5C09_E000_0003;
/// Transaction-scoped advisory lock taken before drawing a revoked token's
/// `change_seq`.
const TOKEN_LOCK: i64 = 0x5C09_E000_0004;
/// Transaction-scoped advisory lock taken, last, before appending to the
/// event log, so positions are handed out in commit order (`events.rs`).
const EVENT_LOCK: i64 = 0x5C09_E000_0005;
/// Transaction-scoped advisory lock taken before bootstrapping an empty
/// database, so replicas starting at once on it create one organization.
const BOOTSTRAP_LOCK: i64 = 0x5C09_E000_0006;

/// Largest number of bound parameters PostgreSQL accepts in one statement.
const MAX_BIND_PARAMS: usize = 65_535;
/// Rows per multi-row INSERT of the imports, at most.
const IMPORT_BATCH_ROWS: usize = 1_000;

/// Rows of a multi-row INSERT of `columns` columns that fit one statement.
fn batch_rows(columns: usize) -> usize {
    (MAX_BIND_PARAMS / columns.max(1)).clamp(1, IMPORT_BATCH_ROWS)
}

/// PostgreSQL storage. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How the pool connects, reused by the change feed's listener.
    connect: PgConnectOptions,
    /// Bound on connecting, for the change feed.
    connect_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    // The connect options hold the password: not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database named by `url` (`postgres://…`) and applies
    /// the migrations.
    ///
    /// The pool opens at most `options.max_connections` connections, waits at
    /// most `options.connect_timeout` for one (connecting included: this is
    /// also the TCP connect bound, as sqlx has no separate one), tests each
    /// connection before handing it out (so connections broken by a server
    /// restart are replaced, not failed on), and has the server cancel any
    /// statement running longer than `options.statement_timeout`.
    ///
    /// `Unavailable` when the server cannot be reached.
    pub async fn open(url: &str, options: &OpenOptions) -> StoreResult<PgStore> {
        // The URL may carry a password: only the parse error is reported.
        let base = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("scope");
        let statement_ms = options.statement_timeout.as_millis().to_string();
        let connect = base.clone().options([("statement_timeout", statement_ms.as_str())]);

        // Boxed as `Send` here, so that the migrator's internals never decide
        // (through auto-trait inference at each caller) whether `open` can be
        // spawned.
        let migrating: std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send + '_>> =
            Box::pin(migrate(&base, options.connect_timeout));
        migrating.await?;

        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .test_before_acquire(true)
            .connect_lazy_with(connect.clone());
        Ok(PgStore { pool, connect, connect_timeout: options.connect_timeout })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.db()
    }
}

/// Runs the migrations on a dedicated connection (without a statement
/// timeout: waiting for another replica's migration, or a long migration,
/// is expected) while holding [`MIGRATION_LOCK`].
///
/// sqlx's migrator takes an advisory lock of its own around its work, but
/// only after it starts; holding ours first makes the rule explicit and
/// independent of the migrator's internals: whoever starts second waits,
/// then finds every migration applied and does nothing.
async fn migrate(connect: &PgConnectOptions, timeout: Duration) -> StoreResult<()> {
    let mut conn = tokio::time::timeout(timeout, PgConnection::connect_with(connect))
        .await
        .map_err(|_| StoreError::Unavailable("timed out connecting to the database".into()))?
        .db()?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await.db()?;
    // `run_direct` on the connection itself (not `run`, whose `Acquire`
    // bound makes this future not `Send`, so `open` could not be spawned).
    let result = sqlx::migrate!("./migrations/postgres").run_direct(&mut conn).await;
    // Closing the session releases the lock too; unlock anyway so that a
    // failed close does not keep other replicas waiting.
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await;
    let _ = conn.close().await;
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => match db_err(e) {
            unavailable @ StoreError::Unavailable(_) => unavailable,
            other => StoreError::Internal(format!("migration failed: {other}")),
        },
        other => StoreError::Internal(format!("migration failed: {other}")),
    })?;
    unlocked.db()?;
    Ok(())
}

// ---- errors -------------------------------------------------------------------------

/// Maps a sqlx error to the storage vocabulary. Constraint violations are
/// recognised by constraint name, never by message text; messages of data
/// errors (which can quote a value) are not passed on.
fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let constraint = db.constraint().unwrap_or("");
            match code.as_str() {
                // unique_violation
                "23505" => StoreError::Conflict(conflict_message(constraint).to_owned()),
                // check_violation
                "23514" => StoreError::Domain(DomainError::bad_request(check_message(constraint))),
                c if is_unavailable(c) => StoreError::Unavailable(format!("{} ({c})", db.message())),
                // data exceptions may quote the offending value
                c if c.starts_with("22") => StoreError::Internal(format!("database data error ({c})")),
                c => StoreError::Internal(format!("database error ({c}): {}", db.message())),
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLSTATEs meaning "the database cannot serve this right now; retrying
/// later may succeed". Serialization failures and deadlocks are included:
/// writes here take their locks in one order and run under READ COMMITTED,
/// so neither is expected, and a retry by the client is the right answer if
/// one happens.
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "57014" // query_canceled (statement_timeout)
                | "53300" // too_many_connections
                | "53000" // insufficient_resources
                | "40001" // serialization_failure
                | "40P01" // deadlock_detected
        )
}

/// The message of a unique violation, by index or constraint name (the same
/// messages as the SQLite backend).
fn conflict_message(constraint: &str) -> &'static str {
    match constraint {
        "prompts_org_name" => "a prompt with this name already exists",
        "users_email" => "a user with this email already exists",
        "prompt_versions_number" => "a version with this number already exists",
        "prompt_versions_one_published" => "another version of this prompt is already published",
        "signing_keys_pkey" => "a signing key with this id already exists",
        _ => "the record already exists",
    }
}

/// The message of a check violation, by constraint name
/// (`<table>_<column>_check`).
fn check_message(constraint: &str) -> &'static str {
    if constraint.contains("prompt_type") {
        "prompt_type must be 'text' or 'chat'"
    } else if constraint.contains("role") {
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

// ---- the trait -----------------------------------------------------------------------

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        vec![PoolStats {
            pool: "main",
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }]
    }

    async fn changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<Change>>> {
        Ok(Some(changes::feed(self.connect.clone(), self.connect_timeout)))
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
        audit::insert_audit_event(self, audit).await
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

    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()> {
        keys::import_api_keys(self, keys).await
    }

    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
        prompts::import_prompts(self, prompts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_the_bind_parameter_limit() {
        assert_eq!(batch_rows(14), IMPORT_BATCH_ROWS);
        assert_eq!(batch_rows(100), 655);
        assert!(batch_rows(100) * 100 <= MAX_BIND_PARAMS);
        assert_eq!(batch_rows(0), IMPORT_BATCH_ROWS);
    }

    #[test]
    fn unavailable_codes() {
        for code in ["08006", "08001", "57P01", "57P03", "57014", "53300", "40P01"] {
            assert!(is_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX000"] {
            assert!(!is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn constraint_names_give_the_sqlite_messages() {
        assert_eq!(conflict_message("prompts_org_name"), "a prompt with this name already exists");
        assert_eq!(conflict_message("users_email"), "a user with this email already exists");
        assert_eq!(
            conflict_message("prompt_versions_one_published"),
            "another version of this prompt is already published"
        );
        assert_eq!(conflict_message("orgs_pkey"), "the record already exists");
        assert_eq!(check_message("prompt_versions_prompt_type_check"), "prompt_type must be 'text' or 'chat'");
        assert_eq!(check_message("users_role_check"), "role must be viewer, editor or admin");
        assert_eq!(check_message("prompt_versions_status_check"), "a value is not allowed");
    }

    #[test]
    fn open_can_be_spawned() {
        fn spawnable<T: Send + 'static>(_: T) {}
        spawnable(async { PgStore::open("postgres://localhost/x", &OpenOptions::default()).await.map(|_| ()) });
    }

    #[test]
    fn pool_errors_are_unavailable() {
        assert!(matches!(db_err(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(db_err(sqlx::Error::PoolClosed), StoreError::Unavailable(_)));
        assert!(matches!(db_err(sqlx::Error::RowNotFound), StoreError::NotFound));
    }
}
