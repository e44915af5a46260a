//! Rows as stored. Timestamps are Unix milliseconds; ids are prefixed text.

use scope_domain::{KeyId, OrgId, PromptId, Role, UserId, VersionId, VersionStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub org_id: OrgId,
    pub name: String,
    pub created_at: i64,
}

/// `Debug` shows whether a password is set, never its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: UserId,
    pub org_id: OrgId,
    /// Lower-cased; the sign-in name, unique across the deployment.
    pub email: String,
    /// PHC string (argon2id). Never logged. Empty while an invitation is
    /// pending (no password can match it).
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
    /// Set for a one-time initial password: the user must choose a new one
    /// before doing anything else.
    pub must_change_password: bool,
    pub last_sign_in_at: Option<i64>,
}

impl UserRow {
    /// `invited` until the invitation is accepted, then `active`.
    pub fn status(&self) -> &'static str {
        if self.password_hash.is_empty() {
            "invited"
        } else {
            "active"
        }
    }
}

/// A browser session. Only the SHA-256 digest of the cookie value is kept
/// (and `Debug` does not show it).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session_digest: [u8; 32],
    pub org_id: OrgId,
    pub user_id: UserId,
    pub created_at: i64,
    /// Last request seen (written at most about once a minute).
    pub last_seen_at: i64,
    /// Absolute expiry.
    pub expires_at: i64,
}

/// A one-time invitation link. Only the digest of its token is kept (and
/// `Debug` does not show it).
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub token_digest: [u8; 32],
    pub org_id: OrgId,
    pub user_id: UserId,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
}

/// Filters of the audit log; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub page: PageQuery,
    /// Exact actor (`usr_…`, `key_…`, `system`).
    pub actor: Option<String>,
    /// Exact action, or a prefix when it ends with `.` (e.g. `user.`).
    pub action: Option<String>,
    /// Exact target id.
    pub target: Option<String>,
    /// `at >= since_ms`.
    pub since_ms: Option<i64>,
    /// `at < until_ms`.
    pub until_ms: Option<i64>,
}

/// An API key. `secret_digest` is the SHA-256 of the secret, the only form in
/// which the secret is kept; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub name: String,
    pub environment: String,
    pub role: Role,
    pub secret_digest: [u8; 32],
    pub created_at: i64,
    /// `usr_…`, `key_…` or `system`.
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    /// The key this one replaced by rotation, if any.
    pub rotated_from: Option<KeyId>,
}

/// Computed status of a key at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

impl ApiKeyRow {
    pub fn status_at(&self, now_ms: i64) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// 1..=200, already validated.
    pub limit: u32,
    /// Opaque cursor from a previous page (the last row's id).
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KeyListQuery {
    pub page: PageQuery,
    pub status: Option<KeyStatus>,
    pub now_ms: i64,
}

/// One flush of coalesced usage for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsageDelta {
    pub key_id: KeyId,
    /// UTC day `YYYY-MM-DD`.
    pub day: String,
    pub count: u64,
    pub last_used_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    pub day: String,
    pub count: u64,
}

/// What the in-memory revocation view needs of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGateRow {
    pub key_id: KeyId,
    pub revoked: bool,
    /// When it was revoked (for the revocation-propagation lag metric).
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub change_seq: i64,
}

/// One access token revoked by its `jti` (RFC 7009), kept until the token
/// would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedTokenRow {
    pub jti: String,
    pub org_id: OrgId,
    /// The key the token was issued to.
    pub key_id: KeyId,
    /// The token's `exp`, in Unix milliseconds; the row is pruned after it.
    pub expires_at: i64,
    pub revoked_at: i64,
    /// `key_…`, `usr_…` or `system`.
    pub revoked_by: String,
    /// Assigned by the store, in commit order (ignored when inserting).
    pub change_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRow {
    pub prompt_id: PromptId,
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
}

/// A prompt with the numbers of its latest and production versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSummary {
    pub prompt: PromptRow,
    pub latest_version: Option<i64>,
    pub production_version: Option<i64>,
    pub production_version_id: Option<VersionId>,
}

#[derive(Debug, Clone, Default)]
pub struct PromptListQuery {
    pub page: PageQuery,
    /// Only prompts carrying this tag.
    pub tag: Option<String>,
    /// Case-insensitive substring of name or description.
    pub q: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PromptPatch {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub version_id: VersionId,
    pub prompt_id: PromptId,
    pub org_id: OrgId,
    /// Prompt name, joined in for convenience.
    pub name: String,
    pub version: i64,
    pub content: String,
    /// Derived from `content` by the caller (scope_domain::template).
    pub variables: Vec<String>,
    pub status: VersionStatus,
    pub prompt_type: String,
    /// A JSON object.
    pub metadata: serde_json::Value,
    /// The prompt's tags, joined in.
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub promoted_at: Option<i64>,
    pub promoted_by: Option<String>,
    /// The labels pointing at it, sorted, `production` first when it is
    /// the published version (`latest` is computed and never listed).
    /// Ignored when written.
    pub labels: Vec<String>,
}

/// A version to create. Unset fields come from `copy_from` when given, else
/// defaults (empty content, `text`, `{}`).
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub version_id: VersionId,
    pub content: Option<String>,
    pub prompt_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub copy_from: Option<VersionId>,
    pub created_by: String,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct DraftPatch {
    pub content: Option<String>,
    pub prompt_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct VersionListQuery {
    pub page: PageQuery,
    pub include_archived: bool,
}

#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub notes: Option<String>,
    pub archive_previous: bool,
    /// `usr_…` or `key_…`.
    pub actor: String,
    pub now_ms: i64,
    /// Id for the history row.
    pub promotion_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionRow {
    pub promotion_id: String,
    pub prompt_id: PromptId,
    pub version_id: VersionId,
    pub version: i64,
    pub previous_version_id: Option<VersionId>,
    pub previous_version: Option<i64>,
    pub promoted_by: String,
    pub promoted_at: i64,
    pub notes: Option<String>,
}

/// `Debug` shows the public key, never the private seed (plain or not).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    /// The public key (32 bytes).
    pub public_key: Vec<u8>,
    /// The private seed: plain 32 bytes, or nonce‖ciphertext when encrypted.
    pub private_key: Vec<u8>,
    pub encrypted: bool,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub event_id: String,
    pub org_id: OrgId,
    /// `usr_…`, `key_…` or `system`.
    pub actor: String,
    /// e.g. `api_key.created`, `version.promoted`.
    pub action: String,
    /// The id of the thing acted on.
    pub target: String,
    pub at: i64,
    /// Extra JSON details (never a secret).
    pub details: serde_json::Value,
}

/// Usage of one key on one day, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub key_id: KeyId,
    pub day: String,
    pub count: u64,
}

/// A prompt as stored, with the number its next version will get (numbers
/// are never reused, also across an export and import).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrompt {
    pub prompt: PromptRow,
    pub next_version: i64,
}

/// A promotion-history row with its organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPromotion {
    pub org_id: OrgId,
    pub promotion: PromotionRow,
}

/// A stored label (any but `production`, which is the published version,
/// and `latest`, which is computed), as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLabel {
    pub org_id: OrgId,
    pub prompt_id: PromptId,
    pub label: String,
    pub version_id: VersionId,
    pub moved_at: i64,
    /// `usr_…`, `key_…` or `system`.
    pub moved_by: String,
}

/// A label-history row with its organization, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLabelMove {
    pub org_id: OrgId,
    pub label_move: LabelMoveRow,
}

/// A label only admins may move in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedLabelRow {
    pub org_id: OrgId,
    pub label: String,
}

/// An audience an organization allows in its tokens' `aud` (RFC 8707).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAudienceRow {
    pub org_id: OrgId,
    pub audience: String,
    pub created_at: i64,
    /// `usr_…`, `key_…` or `system`.
    pub created_by: String,
}

/// Everything a deployment stores except browser sessions (people sign in
/// again after a move), for `scope export` / `scope import`. Rows are kept as
/// stored: keys and invitations as digests, signing keys as stored (encrypted
/// when they were), label moves and events with their positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub orgs: Vec<OrgRow>,
    pub users: Vec<UserRow>,
    pub invitations: Vec<InvitationRow>,
    pub api_keys: Vec<ApiKeyRow>,
    pub key_usage: Vec<UsageRow>,
    /// Access tokens revoked one by one, in the order they were revoked.
    /// Their `change_seq` is 0: each database numbers its own revocations,
    /// and an import gives them fresh numbers, in this order, above every
    /// number the importing database handed out before.
    pub revoked_tokens: Vec<RevokedTokenRow>,
    pub prompts: Vec<StoredPrompt>,
    pub versions: Vec<VersionRow>,
    pub promotions: Vec<StoredPromotion>,
    /// Stored labels (not `production`: that is the published version).
    pub labels: Vec<StoredLabel>,
    /// The release log, `production` included, with each prompt's `seq`.
    pub label_moves: Vec<StoredLabelMove>,
    pub protected_labels: Vec<ProtectedLabelRow>,
    /// Audiences each organization allows in its tokens' `aud`.
    pub org_audiences: Vec<OrgAudienceRow>,
    pub audit: Vec<AuditRow>,
    pub signing_keys: Vec<SigningKeyRow>,
    /// The retained event log, with its positions (a client resuming a live
    /// stream with `Last-Event-ID` continues where it stopped).
    pub events: Vec<EventRow>,
    /// Up to where the event log was pruned. An import keeps it, and the
    /// importing database hands out positions above it and above every
    /// imported event.
    pub events_pruned_through: i64,
}

/// Where a label points (SPEC §9). `production` is listed from the
/// published version (`moved_at`/`moved_by`: its promotion); `latest` is
/// computed and never listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    pub label: String,
    pub version_id: VersionId,
    pub version: i64,
    pub moved_at: i64,
    /// `usr_…`, `key_…` or `system`.
    pub moved_by: String,
}

/// How a label came to move, as recorded in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMoveKind {
    /// Pointed at a version (for `production`: a promotion).
    Move,
    /// Moved back to where it pointed before its last move.
    Rollback,
    /// Removed (`to` is empty).
    Remove,
}

impl LabelMoveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelMoveKind::Move => "move",
            LabelMoveKind::Rollback => "rollback",
            LabelMoveKind::Remove => "remove",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "move" => Some(Self::Move),
            "rollback" => Some(Self::Rollback),
            "remove" => Some(Self::Remove),
            _ => None,
        }
    }
}

/// Moves (or removes) one label of a prompt, in one transaction with its
/// history row, audit row and event.
#[derive(Debug, Clone)]
pub struct MoveLabelRequest {
    /// Valid and not `latest` (checked by the caller with
    /// `scope_domain::labels`).
    pub label: String,
    /// The version it is to point at; `None` removes it (never
    /// `production`).
    pub to: Option<VersionId>,
    pub kind: LabelMoveKind,
    /// Only if the label now points here (`Some(None)`: only if it does not
    /// exist); `Conflict` otherwise. For rollbacks, so that a move made in
    /// between is not undone blindly.
    pub if_current: Option<Option<VersionId>>,
    pub notes: Option<String>,
    /// `production` only: archive the version it replaces (else: draft).
    pub archive_previous: bool,
    /// `usr_…`, `key_…` or `system`.
    pub actor: String,
    pub now_ms: i64,
    /// Id of the history row (`lbm_…`).
    pub move_id: String,
    /// `production` only: id of the promotion-history row (`prm_…`).
    pub promotion_id: String,
}

/// One move of a label: the release log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMoveRow {
    /// `lbm_…`.
    pub move_id: String,
    pub prompt_id: PromptId,
    /// Position in the prompt's history, in commit order (the cursor).
    pub seq: i64,
    pub label: String,
    pub kind: LabelMoveKind,
    pub from_version_id: Option<VersionId>,
    pub from_version: Option<i64>,
    pub to_version_id: Option<VersionId>,
    pub to_version: Option<i64>,
    pub moved_by: String,
    pub moved_at: i64,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LabelMoveQuery {
    /// Cursor: the last row's `seq`.
    pub page: PageQuery,
    /// Only this label's moves.
    pub label: Option<String>,
}

/// One entry of the durable event log: what changed, for live streams (and
/// later webhooks). Written in the transaction of the change it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Position in the log: increasing in commit order, never reused.
    pub seq: i64,
    pub org_id: OrgId,
    /// `prompt.version_created`, `prompt.label_moved`, …
    pub event_type: String,
    pub at: i64,
    /// The event's own fields (`prompt_id`, `name`, `label`, `version_id`,
    /// `key_id`, …), a JSON object.
    pub data: serde_json::Value,
}

/// The extent of the event log, for readers resuming from a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventBounds {
    /// Events up to here may have been pruned: a reader resuming from below
    /// may have missed some.
    pub pruned_through: i64,
    /// The highest position written (0: none yet). A reader resuming from
    /// above holds a position of another log.
    pub head: i64,
}

/// A change made by some process on the database, pushed by backends that
/// can (PostgreSQL `LISTEN`/`NOTIFY`), so that every replica's in-memory views
/// follow at once instead of at the next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key was revoked or given an expiry: read `key_gate_changes`.
    KeyGates,
    /// A prompt, version or promotion of this organization changed.
    Prompts(OrgId),
    /// A signing key was added or retired.
    SigningKeys,
    /// Entries were added to the event log: read it past the last seen
    /// position.
    Events,
    /// An access token was revoked: read `revoked_token_changes`.
    Tokens,
    /// The feed is connected (again): anything may have been missed while it
    /// was not, so resynchronize every view.
    Resync,
    /// The feed's connection dropped: rely on polling until `Resync`.
    Lost,
}

/// Connection-pool use, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `write`/`read` (SQLite) or `main` (PostgreSQL).
    pub pool: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

// ---- Debug without secrets ----------------------------------------------------------
//
// Rows that hold a secret, or a digest or hash of one, print everything else
// and put `REDACTED` in its place: a row in a `tracing` field, an error
// message or a panic must never carry a password hash, a private seed or the
// digest a session cookie or invitation link is looked up by.

const REDACTED: &str = "[redacted]";

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .field("email", &self.email)
            .field("password_hash", &if self.password_hash.is_empty() { "" } else { REDACTED })
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("must_change_password", &self.must_change_password)
            .field("last_sign_in_at", &self.last_sign_in_at)
            .finish()
    }
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("session_digest", &REDACTED)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for InvitationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationRow")
            .field("token_digest", &REDACTED)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("accepted_at", &self.accepted_at)
            .finish()
    }
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("key_id", &self.key_id)
            .field("org_id", &self.org_id)
            .field("name", &self.name)
            .field("environment", &self.environment)
            .field("role", &self.role)
            .field("secret_digest", &REDACTED)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .field("revoked_at", &self.revoked_at)
            .field("revoked_by", &self.revoked_by)
            .field("rotated_from", &self.rotated_from)
            .finish()
    }
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("public_key", &self.public_key)
            .field("private_key", &REDACTED)
            .field("encrypted", &self.encrypted)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// Formats each secret-bearing row (alone, and inside a snapshot) and
    /// checks that no form of its secret appears.
    #[test]
    fn debug_never_shows_secrets() {
        let org = OrgId::generate();
        let user = UserId::generate();
        let digest = [0xabu8; 32];
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$SECRETHASHVALUE";
        let users = vec![UserRow {
            user_id: user,
            org_id: org,
            email: "a@example.com".into(),
            password_hash: hash.into(),
            role: Role::Admin,
            created_at: 1,
            must_change_password: false,
            last_sign_in_at: None,
        }];
        let session = SessionRow {
            session_digest: digest,
            org_id: org,
            user_id: user,
            created_at: 1,
            last_seen_at: 1,
            expires_at: 2,
        };
        let invitations = vec![InvitationRow {
            token_digest: digest,
            org_id: org,
            user_id: user,
            created_by: "system".into(),
            created_at: 1,
            expires_at: 2,
            accepted_at: None,
        }];
        let api_keys = vec![ApiKeyRow {
            key_id: KeyId::generate(),
            org_id: org,
            name: "ci".into(),
            environment: "production".into(),
            role: Role::Viewer,
            secret_digest: digest,
            created_at: 1,
            created_by: "system".into(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
            rotated_from: None,
        }];
        let seed = vec![0xcdu8; 32];
        let signing_keys = vec![SigningKeyRow {
            kid: "k1".into(),
            public_key: vec![1; 32],
            private_key: seed.clone(),
            encrypted: false,
            created_at: 1,
            retired_at: None,
        }];
        let snapshot = Snapshot { users, invitations, api_keys, signing_keys, ..Snapshot::default() };
        let printed = [format!("{snapshot:?}"), format!("{snapshot:#?}"), format!("{session:?}")];
        // Arrays print as decimal lists; also look for hex, in case a
        // future impl chooses it.
        let forms = [
            format!("{digest:?}"),
            format!("{:?}", &digest[..8]),
            "abababab".into(),
            format!("{seed:?}"),
            format!("{:?}", &seed[..8]),
            "cdcdcdcd".into(),
            "205, 205".into(),
            "171, 171".into(),
            "SECRETHASHVALUE".into(),
            "argon2id".into(),
        ];
        for text in &printed {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "{form} appears in:\n{text}");
            }
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert!(printed[0].contains("a@example.com") && printed[0].contains("k1"), "other fields stay visible");
    }
}
