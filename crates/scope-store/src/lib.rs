//! Storage for Scope: one [`Store`] trait, one module per backend.
//!
//! Timestamps are stored as Unix milliseconds (`i64`) so that ordering and
//! comparisons are plain integer operations on every backend; the HTTP layer
//! formats them as RFC 3339. Identifiers are stored in their prefixed text form.
//!
//! Every mutating call that changes several rows (e.g. a promotion, its
//! history entry and its audit event) runs in one transaction. Constraint
//! violations are mapped to [`StoreError::Conflict`] here, at the storage
//! boundary.

pub mod model;
mod common;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use scope_domain::{DomainError, KeyId, OrgId, PromptId, Role, UserId, VersionId};

pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict (e.g. duplicate prompt name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A domain rule refused the change (e.g. editing a published version).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database cannot be reached right now (connection refused or lost,
    /// pool exhausted past its timeout, server shutting down, statement
    /// timeout). Retrying later may succeed; the HTTP layer answers 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: corrupt rows, a failed migration, … Logged by the
    /// caller, never shown to clients.
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How to connect: pool size and timeouts (PostgreSQL; SQLite keeps its
/// single writer and small read pool and uses `statement_timeout` as its busy
/// timeout).
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a connection (new or from the pool)
    /// before `Unavailable`.
    pub connect_timeout: std::time::Duration,
    /// Longest a single statement may run before the database cancels it.
    pub statement_timeout: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: std::time::Duration::from_secs(3),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// Whether `url` names a database this crate can open.
pub fn is_supported_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the backend named by a database URL (`sqlite://PATH` or
/// `postgres://…`) with default options.
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    open_with(url, &OpenOptions::default()).await
}

/// Opens the backend named by a database URL and applies its migrations.
pub async fn open_with(url: &str, options: &OpenOptions) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url, options).await?))
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL scheme (expected sqlite://PATH or postgres://…): {}",
            url.split(':').next().unwrap_or("")
        )))
    }
}

/// The storage trait. Every method that reads or writes tenant data takes the
/// [`OrgId`] and scopes its query by it.
///
/// No method has a default body: a wrapper (the server's `MeteredStore`)
/// must forward every method, and a default would silently hide the
/// wrapped backend's own implementation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness query for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Connection-pool use, for `/metrics`.
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// Changes made by any process on this database, pushed as they commit,
    /// where the backend can push them (PostgreSQL `LISTEN`/`NOTIFY`). The
    /// first message is [`Change::Resync`] once the feed is listening; a
    /// dropped connection gives [`Change::Lost`] and, once reconnected,
    /// another `Resync`. `None` when the backend cannot push (SQLite): the
    /// caller polls. Each call opens its own feed.
    async fn changes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<Change>>>;

    // ---- organizations and users -------------------------------------------------

    /// Whether any organization exists.
    async fn is_initialized(&self) -> StoreResult<bool>;

    /// Creates an organization with its first admin user and first admin API
    /// key, in one transaction.
    async fn create_org(&self, org: &OrgRow, admin: &UserRow, key: &ApiKeyRow, audit: &[AuditRow]) -> StoreResult<()>;

    /// The first organization of an empty database: as
    /// [`create_org`](Self::create_org), but only when no organization exists, checked
    /// and inserted atomically. When several processes start at once on one
    /// empty database, exactly one creates it; the others get `false` and
    /// nothing is written.
    async fn bootstrap_org(
        &self,
        org: &OrgRow,
        admin: &UserRow,
        key: &ApiKeyRow,
        audit: &[AuditRow],
    ) -> StoreResult<bool>;

    async fn get_org(&self, org: OrgId) -> StoreResult<OrgRow>;

    /// Users of `org`, newest first (cursor: the last `usr_` id).
    async fn list_users(&self, org: OrgId, query: &PageQuery) -> StoreResult<Vec<UserRow>>;

    /// A user of `org`; `NotFound` otherwise.
    async fn get_user(&self, org: OrgId, user: UserId) -> StoreResult<UserRow>;

    /// A user by (lower-cased) email across the deployment, for sign-in.
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>>;

    /// Inserts a user, with its invitation when given, and the audit row, in
    /// one transaction. `Conflict` when the email is taken.
    async fn insert_user(
        &self,
        user: &UserRow,
        invitation: Option<&InvitationRow>,
        audit: &AuditRow,
    ) -> StoreResult<()>;

    /// Changes a user's role. Inside the transaction: demoting the last
    /// active admin (an admin with a password) of `org` is a
    /// `Domain(conflict)`. Returns the updated row.
    async fn update_user_role(&self, org: OrgId, user: UserId, role: Role, audit: &AuditRow) -> StoreResult<UserRow>;

    /// Deletes a user with their sessions and invitations. Removing the last
    /// active admin of `org` is a `Domain(conflict)` (checked inside the
    /// transaction).
    async fn delete_user(&self, org: OrgId, user: UserId, audit: &AuditRow) -> StoreResult<()>;

    /// Sets a user's password hash and `must_change_password`, and ends every
    /// session of the user except `keep_session` (the one that made the
    /// change, if any).
    async fn set_user_password(
        &self,
        org: OrgId,
        user: UserId,
        password_hash: &str,
        must_change_password: bool,
        keep_session: Option<&[u8; 32]>,
        audit: &AuditRow,
    ) -> StoreResult<()>;

    /// A pending invitation with its user, by token digest, whatever its
    /// state (the caller checks expiry and acceptance).
    async fn get_invitation(&self, token_digest: &[u8; 32]) -> StoreResult<Option<(InvitationRow, UserRow)>>;

    /// Accepts an invitation: in one transaction, only if it is not accepted
    /// and `expires_at > now_ms`, sets the user's password, marks the
    /// invitation accepted and writes the audit row. `NotFound` otherwise.
    async fn accept_invitation(
        &self,
        token_digest: &[u8; 32],
        password_hash: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<UserRow>;

    // ---- sessions -----------------------------------------------------------------

    /// Inserts a session, sets the user's `last_sign_in_at` to its
    /// `created_at` and writes the audit row, in one transaction.
    async fn create_session(&self, session: &SessionRow, audit: &AuditRow) -> StoreResult<()>;

    /// A session with its user (the user row as it is now: role changes apply
    /// on the next request).
    async fn get_session(&self, session_digest: &[u8; 32]) -> StoreResult<Option<(SessionRow, UserRow)>>;

    /// Sets `last_seen_at`.
    async fn touch_session(&self, session_digest: &[u8; 32], now_ms: i64) -> StoreResult<()>;

    /// Deletes a session (sign-out), with its audit row when given. Deleting
    /// an unknown session is not an error.
    async fn delete_session(&self, session_digest: &[u8; 32], audit: Option<&AuditRow>) -> StoreResult<()>;

    /// Deletes sessions that expired (absolute) before `now_ms` or were idle
    /// since before `idle_before_ms`, and invitations expired before
    /// `now_ms` that were never accepted (their users stay, as invited).
    async fn prune_sessions(&self, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64>;

    /// Writes one audit event on its own (e.g. a failed sign-in).
    async fn insert_audit(&self, audit: &AuditRow) -> StoreResult<()>;

    // ---- API keys -----------------------------------------------------------------

    async fn insert_api_key(&self, key: &ApiKeyRow, audit: &AuditRow) -> StoreResult<()>;

    /// A key of `org`.
    async fn get_api_key(&self, org: OrgId, key: KeyId) -> StoreResult<ApiKeyRow>;

    /// A key by its id alone, for the token exchange (the caller then checks
    /// the organization in constant time along with the secret).
    async fn find_api_key(&self, key: KeyId) -> StoreResult<Option<ApiKeyRow>>;

    /// Newest first. `status` filter is computed at `now_ms`.
    async fn list_api_keys(&self, org: OrgId, query: &KeyListQuery) -> StoreResult<Vec<ApiKeyRow>>;

    /// Sets `revoked_at`/`revoked_by` unless already revoked; returns the row.
    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: KeyId,
        by: &str,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow>;

    /// Inserts `successor` and sets the old key's `expires_at` to
    /// `min(existing, old_expires_at)`, in one transaction. Fails with
    /// `Conflict` when the old key is revoked. Returns the updated old key.
    async fn rotate_api_key(
        &self,
        org: OrgId,
        old: KeyId,
        old_expires_at: i64,
        successor: &ApiKeyRow,
        audit: &AuditRow,
    ) -> StoreResult<ApiKeyRow>;

    /// Flushes coalesced usage: per key, raises `last_used_at` to the given
    /// value (never lowers it) and adds the counts to the per-day counters.
    async fn record_key_usage(&self, usage: &[KeyUsageDelta]) -> StoreResult<()>;

    /// Exchanges per day (UTC, `YYYY-MM-DD`) for `key` since `since_day`,
    /// ascending. `NotFound` when `key` is not a key of `org`.
    async fn key_usage(&self, org: OrgId, key: KeyId, since_day: &str) -> StoreResult<Vec<UsageDay>>;

    /// Deletes usage rows older than `before_day`.
    async fn prune_key_usage(&self, before_day: &str) -> StoreResult<u64>;

    /// Keys whose gate changed after `after_seq` (revoked, or given an
    /// expiry), for the in-memory revocation view. `after_seq = 0` returns all
    /// keys that are revoked or have an expiry. Called on every poll, so it
    /// must not cost a table scan: every write that revokes a key or sets an
    /// expiry (also at creation) assigns the key a `change_seq` above all
    /// others, and both forms of the query can use an index on it.
    async fn key_gate_changes(&self, after_seq: i64) -> StoreResult<Vec<KeyGateRow>>;

    // ---- revoked access tokens ---------------------------------------------------------

    /// Records the revocation of one access token with its audit row, in one
    /// transaction, giving it a `change_seq` above every earlier revocation
    /// and in commit order (a poller that has seen n never misses a later
    /// commit below n, also with several writers; numbers are never reused,
    /// also after pruning). Announced on the change feed as
    /// [`Change::Tokens`]. Revoking a `jti` already revoked changes nothing,
    /// audits nothing and returns `false`.
    async fn revoke_token(&self, token: &RevokedTokenRow, audit: &AuditRow) -> StoreResult<bool>;

    /// Revocations with `change_seq > after_seq`, ascending, for the
    /// in-memory view every request checks. `after_seq = 0` returns every
    /// revoked token that has not expired at `now_ms`. Called on every poll:
    /// both forms read an index (on `change_seq`, on `expires_at`).
    async fn revoked_token_changes(&self, after_seq: i64, now_ms: i64) -> StoreResult<Vec<RevokedTokenRow>>;

    /// Deletes revocations of tokens that expired before `before_ms` (they
    /// are refused as expired anyway).
    async fn prune_revoked_tokens(&self, before_ms: i64) -> StoreResult<u64>;

    // ---- prompts and versions ----------------------------------------------------

    /// Creates the prompt and its v1 draft. `Conflict` on a duplicate name in
    /// the organization.
    async fn create_prompt(&self, prompt: &PromptRow, v1: &VersionRow, audit: &AuditRow) -> StoreResult<()>;

    /// By name or by `pmt_` id, with latest and production version numbers.
    async fn get_prompt(&self, org: OrgId, name_or_id: &str) -> StoreResult<PromptSummary>;

    async fn list_prompts(&self, org: OrgId, query: &PromptListQuery) -> StoreResult<Vec<PromptSummary>>;

    async fn update_prompt(
        &self,
        org: OrgId,
        prompt: PromptId,
        patch: &PromptPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<()>;

    /// Deletes the prompt with its versions and history.
    async fn delete_prompt(&self, org: OrgId, prompt: PromptId, audit: &AuditRow) -> StoreResult<()>;

    /// Inserts a new draft with the next number (numbers are never reused).
    /// When `new.copy_from` is set, unset fields are copied from that version
    /// of the same prompt (`NotFound` if it is not one). The row's `version`
    /// field is ignored and assigned here. Returns the stored row.
    async fn create_version(
        &self,
        org: OrgId,
        prompt: PromptId,
        new: &NewVersion,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow>;

    async fn get_version(&self, org: OrgId, prompt: PromptId, version: VersionId) -> StoreResult<VersionRow>;

    /// The published version, if any.
    async fn production_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>>;

    /// The highest-numbered version, any status.
    async fn latest_version(&self, org: OrgId, prompt: PromptId) -> StoreResult<Option<VersionRow>>;

    /// Newest first.
    async fn list_versions(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &VersionListQuery,
    ) -> StoreResult<Vec<VersionRow>>;

    /// Edits a draft; `Domain(conflict)` when it is not a draft (checked
    /// inside the transaction).
    async fn update_draft(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        patch: &DraftPatch,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow>;

    /// Atomically: target → published, previous published → archived (or
    /// draft), a promotion-history row, the audit row. Exactly one published
    /// version per prompt, also under concurrent calls. Promoting the version
    /// that is already published changes nothing and returns it.
    async fn promote(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        req: &PromoteRequest,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow>;

    /// Archive (`to_archived = true`) or unarchive, following
    /// [`scope_domain::VersionStatus`] rules inside the transaction.
    async fn set_archived(
        &self,
        org: OrgId,
        prompt: PromptId,
        version: VersionId,
        to_archived: bool,
        now_ms: i64,
        audit: &AuditRow,
    ) -> StoreResult<VersionRow>;

    /// Newest first.
    async fn list_promotions(&self, org: OrgId, prompt: PromptId, query: &PageQuery) -> StoreResult<Vec<PromotionRow>>;

    // ---- labels (SPEC §9) ------------------------------------------------------------
    //
    // Default bodies only so that wrapping stores keep compiling; every
    // backend implements them all, and a wrapper must forward them.

    /// Where the prompt's labels point: `production` (its published
    /// version, if any) first, then the others by name. `latest` is
    /// computed and not listed.
    async fn list_labels(&self, org: OrgId, prompt: PromptId) -> StoreResult<Vec<LabelRow>>;

    /// Moves a label, or removes it (`req.to = None`), in one transaction
    /// with its history row, the audit row and an event; returns the
    /// version it now points at (`None` after a removal).
    ///
    /// - `production` is a promotion (as [`promote`](Self::promote), also
    ///   recorded in the promotion history); it cannot be removed.
    /// - Any other label points at a draft or published version
    ///   (`Domain(conflict)` for an archived one).
    /// - Moving a label where it already points changes and records
    ///   nothing. Removing a label the prompt does not have: `Domain(not
    ///   found)`; a version that is not one of the prompt's: `Domain(not
    ///   found)`. With `if_current`, `Conflict` unless the label points
    ///   there now (checked inside the transaction).
    /// - Concurrent moves of one label serialize: each is recorded with
    ///   the version it replaced, so the history is a chain.
    ///
    /// Who may move which label (protected labels) is checked by the caller.
    async fn move_label(
        &self,
        org: OrgId,
        prompt: PromptId,
        req: &MoveLabelRequest,
        audit: &AuditRow,
    ) -> StoreResult<Option<VersionRow>>;

    /// The prompt's label moves (every promotion included), newest first,
    /// optionally of one label (cursor: the last row's `seq`).
    async fn list_label_moves(
        &self,
        org: OrgId,
        prompt: PromptId,
        query: &LabelMoveQuery,
    ) -> StoreResult<Vec<LabelMoveRow>>;

    /// The labels only admins may move in `org`, sorted (none by default).
    async fn protected_labels(&self, org: OrgId) -> StoreResult<Vec<String>>;

    /// Replaces the protected labels of `org`, with the audit row.
    async fn set_protected_labels(&self, org: OrgId, labels: &[String], audit: &AuditRow) -> StoreResult<()>;

    // ---- token audiences (RFC 8707) -----------------------------------------------------

    /// The audiences `org` allows in its tokens' `aud` (on top of the
    /// deployment-wide list), sorted.
    async fn list_audiences(&self, org: OrgId) -> StoreResult<Vec<String>>;

    /// Replaces the audiences `org` allows, with the audit row, in one
    /// transaction. Values already allowed keep their `created_at` and
    /// `created_by`; new ones get the audit row's time and actor.
    async fn set_audiences(&self, org: OrgId, audiences: &[String], audit: &AuditRow) -> StoreResult<()>;

    // ---- the event log -------------------------------------------------------------------
    //
    // Every change to a prompt, a version, a label or a key's revocation
    // appends an event in its own transaction. Positions (`seq`) increase in
    // commit order and are never reused, so a reader that has seen position
    // n and reads past it never misses a later commit.

    /// Events of `org` after position `after_seq`, ascending, at most
    /// `limit` (1–1000).
    async fn list_events(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>>;

    /// Events of every organization after `after_seq`, ascending, at most
    /// `limit` (1–1000): for a process's fan-out to its streams, which
    /// hands each event to its own organization's streams only.
    async fn event_feed(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<EventRow>>;

    /// How far the log was pruned and its highest position.
    async fn event_bounds(&self) -> StoreResult<EventBounds>;

    /// Deletes events older than `before_ms` (retention) and raises the
    /// pruned-through mark; returns how many.
    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64>;

    // ---- signing keys --------------------------------------------------------------

    /// All signing keys, newest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;

    /// Inserts a new active signing key and marks every other key retired at
    /// `row.created_at` (still published in the JWKS until their tokens expire).
    async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()>;

    /// Deletes retired keys retired before `before_ms`.
    async fn delete_signing_keys_retired_before(&self, before_ms: i64) -> StoreResult<u64>;

    /// Replaces the private key of signing key `kid` with `sealed` (its
    /// encrypted form) and marks it encrypted, only while it is still stored
    /// in clear: `false` when it is unknown or already encrypted (another
    /// process sealed it first). Announced on the change feed like a
    /// rotation.
    async fn seal_signing_key(&self, kid: &str, sealed: &[u8]) -> StoreResult<bool>;

    // ---- quotas ----------------------------------------------------------------------

    /// How many prompts `org` has.
    async fn count_prompts(&self, org: OrgId) -> StoreResult<u64>;

    /// How many keys of `org` are active at `now_ms` (neither revoked nor
    /// expired).
    async fn count_active_api_keys(&self, org: OrgId, now_ms: i64) -> StoreResult<u64>;

    // ---- audit -----------------------------------------------------------------------

    /// Newest first, filtered by `query` (cursor: the last `evt_` id).
    async fn list_audit(&self, org: OrgId, query: &AuditQuery) -> StoreResult<Vec<AuditRow>>;

    // ---- export and import -------------------------------------------------------------

    /// Everything stored except sessions, each table in a stable order
    /// (creation order where there is one), read in one consistent
    /// transaction. Revoked tokens are all listed (expired ones not yet
    /// pruned too), in the order they were revoked, with `change_seq` 0.
    async fn export(&self) -> StoreResult<Snapshot>;

    /// Loads a snapshot into an empty database (no organization yet:
    /// `Conflict` otherwise), in one transaction: all or nothing. Rows are
    /// stored as given; keys that are revoked or expire get gate sequence
    /// numbers as [`insert_api_key`](Self::insert_api_key) gives them,
    /// revoked tokens fresh `change_seq` numbers as
    /// [`revoke_token`](Self::revoke_token) gives them (in the snapshot's
    /// order); events keep their positions and the pruned-through mark, and
    /// positions handed out afterwards are above both. Announced on the
    /// change feed like the writes it stands for.
    async fn import(&self, snapshot: &Snapshot) -> StoreResult<()>;

    // ---- bulk import ------------------------------------------------------------------

    /// Inserts many keys in one transaction, without audit events (seeding a
    /// benchmark database, migrating from another deployment). Keys born
    /// revoked or with an expiry get gate sequence numbers like
    /// [`insert_api_key`](Self::insert_api_key) gives them. Backends that do
    /// not support it answer `Internal`.
    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()>;

    /// Inserts many prompts with their versions in one transaction, without
    /// audit events. Each version row is stored as given (status, number,
    /// promotion fields); `variables` are derived from the content and the
    /// prompt's next version number follows its highest version. At most one
    /// version per prompt may be published. Backends that do not support it
    /// answer `Internal`.
    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()>;
}
