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
pub mod sqlite;

use async_trait::async_trait;
use scope_domain::{DomainError, KeyId, OrgId, PromptId, VersionId};

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
    /// Anything else: the database is unreachable, corrupt, … Logged by the
    /// caller, never shown to clients.
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens the backend named by a database URL (`sqlite://PATH`; PostgreSQL in a
/// later module).
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL scheme (expected sqlite://PATH): {}",
            url.split(':').next().unwrap_or("")
        )))
    }
}

/// The storage trait. Every method that reads or writes tenant data takes the
/// [`OrgId`] and scopes its query by it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness query for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // ---- organizations and users -------------------------------------------------

    /// Whether any organization exists.
    async fn is_initialized(&self) -> StoreResult<bool>;

    /// Creates an organization with its first admin user and first admin API
    /// key, in one transaction.
    async fn create_org(&self, org: &OrgRow, admin: &UserRow, key: &ApiKeyRow, audit: &[AuditRow]) -> StoreResult<()>;

    async fn get_org(&self, org: OrgId) -> StoreResult<OrgRow>;

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

    // ---- signing keys --------------------------------------------------------------

    /// All signing keys, newest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;

    /// Inserts a new active signing key and marks every other key retired at
    /// `row.created_at` (still published in the JWKS until their tokens expire).
    async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()>;

    /// Deletes retired keys retired before `before_ms`.
    async fn delete_signing_keys_retired_before(&self, before_ms: i64) -> StoreResult<u64>;

    // ---- audit -----------------------------------------------------------------------

    async fn list_audit(&self, org: OrgId, query: &PageQuery) -> StoreResult<Vec<AuditRow>>;

    // ---- bulk import ------------------------------------------------------------------

    /// Inserts many keys in one transaction, without audit events (seeding a
    /// benchmark database, migrating from another deployment). Keys born
    /// revoked or with an expiry get gate sequence numbers like
    /// [`insert_api_key`](Self::insert_api_key) gives them. Backends that do
    /// not support it answer `Internal`.
    async fn import_api_keys(&self, keys: &[ApiKeyRow]) -> StoreResult<()> {
        let _ = keys;
        Err(StoreError::Internal("bulk import is not supported by this backend".into()))
    }

    /// Inserts many prompts with their versions in one transaction, without
    /// audit events. Each version row is stored as given (status, number,
    /// promotion fields); `variables` are derived from the content and the
    /// prompt's next version number follows its highest version. At most one
    /// version per prompt may be published. Backends that do not support it
    /// answer `Internal`.
    async fn import_prompts(&self, prompts: &[(PromptRow, Vec<VersionRow>)]) -> StoreResult<()> {
        let _ = prompts;
        Err(StoreError::Internal("bulk import is not supported by this backend".into()))
    }
}
