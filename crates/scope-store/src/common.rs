//! What every backend shares: the columns it selects, the raw rows sqlx
//! decodes them into (the same Rust types on SQLite and PostgreSQL: text ids,
//! `BIGINT`/`INTEGER` milliseconds, `BLOB`/`BYTEA` digests, JSON as text,
//! boolean flags), their conversion into the model, and input checks such as
//! cursor parsing. Statements differ per backend (placeholders, locking) and
//! live in each backend's modules.

use std::str::FromStr;

use scope_domain::{DomainError, Role, VersionStatus};

use crate::model::*;
use crate::{StoreError, StoreResult};

pub(crate) const KEY_COLUMNS: &str = "SELECT key_id, org_id, name, environment, role, secret_digest, created_at, created_by, \
     expires_at, last_used_at, revoked_at, revoked_by, rotated_from FROM api_keys";

pub(crate) const PROMPT_SELECT: &str = "SELECT p.prompt_id, p.org_id, p.name, p.description, p.tags, p.created_at, \
     p.updated_at, p.created_by, \
     (SELECT MAX(x.version) FROM prompt_versions x WHERE x.prompt_id = p.prompt_id) AS latest_version, \
     pv.version AS production_version, pv.version_id AS production_version_id \
     FROM prompts p \
     LEFT JOIN prompt_versions pv ON pv.prompt_id = p.prompt_id AND pv.status = 'published'";

pub(crate) const VERSION_SELECT: &str = "SELECT v.version_id, v.prompt_id, v.org_id, p.name, v.version, v.content, \
     v.variables, v.status, v.prompt_type, v.metadata, p.tags, v.created_at, v.updated_at, v.created_by, \
     v.promoted_at, v.promoted_by, \
     (SELECT string_agg(l.label, ',' ORDER BY l.label) FROM prompt_labels l WHERE l.version_id = v.version_id) \
     AS labels \
     FROM prompt_versions v JOIN prompts p ON p.prompt_id = v.prompt_id AND p.org_id = v.org_id";

pub(crate) const PROMOTION_COLUMNS: &str = "SELECT promotion_id, prompt_id, version_id, version, previous_version_id, \
     previous_version, promoted_by, promoted_at, notes FROM promotions";

pub(crate) const AUDIT_COLUMNS: &str = "SELECT event_id, org_id, actor, action, target, at, details FROM audit_events";

pub(crate) const SIGNING_COLUMNS: &str =
    "SELECT kid, public_key, private_key, encrypted, created_at, retired_at FROM signing_keys";

pub(crate) const USER_FIELDS: &str = "u.user_id, u.org_id, u.email, u.password_hash, u.role, u.created_at, \
     u.must_change_password, u.last_sign_in_at";

/// Whether a user counts towards "the last admin": an admin who can sign in.
/// An invited admin (no password yet) does not.
pub(crate) const ACTIVE_ADMIN: &str = "role = 'admin' AND password_hash <> ''";

// ---- raw rows -----------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct RawUser {
    pub(crate) user_id: String,
    pub(crate) org_id: String,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) role: String,
    pub(crate) created_at: i64,
    pub(crate) must_change_password: bool,
    pub(crate) last_sign_in_at: Option<i64>,
}

impl RawUser {
    pub(crate) fn into_row(self) -> StoreResult<UserRow> {
        Ok(UserRow {
            user_id: parse_id(&self.user_id, "user id")?,
            org_id: parse_id(&self.org_id, "org id")?,
            email: self.email,
            password_hash: self.password_hash,
            role: self.role.parse::<Role>().map_err(|_| corrupt("role"))?,
            created_at: self.created_at,
            must_change_password: self.must_change_password,
            last_sign_in_at: self.last_sign_in_at,
        })
    }
}

/// A session joined with its user (whose ids are the session's).
#[derive(sqlx::FromRow)]
pub(crate) struct RawSession {
    pub(crate) session_digest: Vec<u8>,
    pub(crate) s_created_at: i64,
    pub(crate) s_last_seen_at: i64,
    pub(crate) s_expires_at: i64,
    #[sqlx(flatten)]
    pub(crate) user: RawUser,
}

impl RawSession {
    pub(crate) fn into_rows(self) -> StoreResult<(SessionRow, UserRow)> {
        let user = self.user.into_row()?;
        let session = SessionRow {
            session_digest: digest(&self.session_digest, "session digest")?,
            org_id: user.org_id,
            user_id: user.user_id,
            created_at: self.s_created_at,
            last_seen_at: self.s_last_seen_at,
            expires_at: self.s_expires_at,
        };
        Ok((session, user))
    }
}

/// An invitation joined with its user (whose ids are the invitation's).
#[derive(sqlx::FromRow)]
pub(crate) struct RawInvitation {
    pub(crate) token_digest: Vec<u8>,
    pub(crate) i_created_by: String,
    pub(crate) i_created_at: i64,
    pub(crate) i_expires_at: i64,
    pub(crate) i_accepted_at: Option<i64>,
    #[sqlx(flatten)]
    pub(crate) user: RawUser,
}

impl RawInvitation {
    pub(crate) fn into_rows(self) -> StoreResult<(InvitationRow, UserRow)> {
        let user = self.user.into_row()?;
        let invitation = InvitationRow {
            token_digest: digest(&self.token_digest, "invitation digest")?,
            org_id: user.org_id,
            user_id: user.user_id,
            created_by: self.i_created_by,
            created_at: self.i_created_at,
            expires_at: self.i_expires_at,
            accepted_at: self.i_accepted_at,
        };
        Ok((invitation, user))
    }
}

pub(crate) fn digest(bytes: &[u8], what: &str) -> StoreResult<[u8; 32]> {
    bytes.try_into().map_err(|_| corrupt(what))
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt row: invalid {what}"))
}

pub(crate) fn parse_id<T: FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse().map_err(|_| corrupt(what))
}

pub(crate) fn json_text(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("cannot encode JSON: {e}")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

pub(crate) fn invalid_cursor() -> StoreError {
    StoreError::Domain(DomainError::bad_request("invalid cursor"))
}

/// A cursor that must parse as the id type `T`; returned in canonical form.
pub(crate) fn id_cursor<T: FromStr + ToString>(cursor: &Option<String>) -> StoreResult<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) => c.parse::<T>().map(|id| Some(id.to_string())).map_err(|_| invalid_cursor()),
    }
}

/// A cursor for free-form ids with a known prefix (`prm_…` promotion ids,
/// `evt_…` audit ids): the prefix, then plain id characters.
pub(crate) fn text_cursor(cursor: &Option<String>, prefix: &str) -> StoreResult<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) => {
            let ok = c.len() > prefix.len()
                && c.starts_with(prefix)
                && c.len() <= 128
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            if ok {
                Ok(Some(c.clone()))
            } else {
                Err(invalid_cursor())
            }
        }
    }
}

/// A version-number cursor: a non-negative whole number.
pub(crate) fn number_cursor(cursor: &Option<String>) -> StoreResult<Option<i64>> {
    match cursor {
        None => Ok(None),
        Some(c) => c.parse::<u32>().map(|n| Some(i64::from(n))).map_err(|_| invalid_cursor()),
    }
}

/// For an action filter ending with `.` (`user.`), the half-open range of
/// the actions it is a prefix of: `[user., user/)`, since `/` follows `.`.
/// A range, unlike `LIKE`, is case-sensitive like the exact filter and can
/// use the `audit_events_action` index. `None` for an exact filter.
pub(crate) fn prefix_range(action: &str) -> Option<(String, String)> {
    let stem = action.strip_suffix('.')?;
    Some((action.to_owned(), format!("{stem}/")))
}

/// `%`, `_` and `\` taken literally in a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_contains(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

// ---- raw rows -----------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct RawOrg {
    pub(crate) org_id: String,
    pub(crate) name: String,
    pub(crate) created_at: i64,
}

impl RawOrg {
    pub(crate) fn into_row(self) -> StoreResult<OrgRow> {
        Ok(OrgRow { org_id: parse_id(&self.org_id, "org id")?, name: self.name, created_at: self.created_at })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawKey {
    pub(crate) key_id: String,
    pub(crate) org_id: String,
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) role: String,
    pub(crate) secret_digest: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) created_by: String,
    pub(crate) expires_at: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) revoked_by: Option<String>,
    pub(crate) rotated_from: Option<String>,
}

impl RawKey {
    pub(crate) fn into_row(self) -> StoreResult<ApiKeyRow> {
        let secret_digest: [u8; 32] = self.secret_digest.as_slice().try_into().map_err(|_| corrupt("secret digest"))?;
        Ok(ApiKeyRow {
            key_id: parse_id(&self.key_id, "key id")?,
            org_id: parse_id(&self.org_id, "org id")?,
            name: self.name,
            environment: self.environment,
            role: self.role.parse::<Role>().map_err(|_| corrupt("role"))?,
            secret_digest,
            created_at: self.created_at,
            created_by: self.created_by,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            revoked_by: self.revoked_by,
            rotated_from: self.rotated_from.as_deref().map(|s| parse_id(s, "rotated_from")).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawPrompt {
    pub(crate) prompt_id: String,
    pub(crate) org_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) tags: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) created_by: String,
    pub(crate) latest_version: Option<i64>,
    pub(crate) production_version: Option<i64>,
    pub(crate) production_version_id: Option<String>,
}

impl RawPrompt {
    pub(crate) fn into_summary(self) -> StoreResult<PromptSummary> {
        Ok(PromptSummary {
            prompt: PromptRow {
                prompt_id: parse_id(&self.prompt_id, "prompt id")?,
                org_id: parse_id(&self.org_id, "org id")?,
                name: self.name,
                description: self.description,
                tags: parse_json(&self.tags, "tags")?,
                created_at: self.created_at,
                updated_at: self.updated_at,
                created_by: self.created_by,
            },
            latest_version: self.latest_version,
            production_version: self.production_version,
            production_version_id: self
                .production_version_id
                .as_deref()
                .map(|s| parse_id(s, "version id"))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawVersion {
    pub(crate) version_id: String,
    pub(crate) prompt_id: String,
    pub(crate) org_id: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) content: String,
    pub(crate) variables: String,
    pub(crate) status: String,
    pub(crate) prompt_type: String,
    pub(crate) metadata: String,
    pub(crate) tags: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) created_by: String,
    pub(crate) promoted_at: Option<i64>,
    pub(crate) promoted_by: Option<String>,
    /// The stored labels pointing at the version, comma-separated and
    /// sorted (labels never contain commas); `NULL` when none.
    pub(crate) labels: Option<String>,
}

impl RawVersion {
    pub(crate) fn into_row(self) -> StoreResult<VersionRow> {
        let status = VersionStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?;
        Ok(VersionRow {
            version_id: parse_id(&self.version_id, "version id")?,
            prompt_id: parse_id(&self.prompt_id, "prompt id")?,
            org_id: parse_id(&self.org_id, "org id")?,
            name: self.name,
            version: self.version,
            content: self.content,
            variables: parse_json(&self.variables, "variables")?,
            status,
            prompt_type: self.prompt_type,
            metadata: parse_json(&self.metadata, "metadata")?,
            tags: parse_json(&self.tags, "tags")?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
            promoted_at: self.promoted_at,
            promoted_by: self.promoted_by,
            labels: version_labels(status == VersionStatus::Published, self.labels.as_deref()),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawPromotion {
    pub(crate) promotion_id: String,
    pub(crate) prompt_id: String,
    pub(crate) version_id: String,
    pub(crate) version: i64,
    pub(crate) previous_version_id: Option<String>,
    pub(crate) previous_version: Option<i64>,
    pub(crate) promoted_by: String,
    pub(crate) promoted_at: i64,
    pub(crate) notes: Option<String>,
}

impl RawPromotion {
    pub(crate) fn into_row(self) -> StoreResult<PromotionRow> {
        Ok(PromotionRow {
            promotion_id: self.promotion_id,
            prompt_id: parse_id(&self.prompt_id, "prompt id")?,
            version_id: parse_id(&self.version_id, "version id")?,
            version: self.version,
            previous_version_id: self.previous_version_id.as_deref().map(|s| parse_id(s, "version id")).transpose()?,
            previous_version: self.previous_version,
            promoted_by: self.promoted_by,
            promoted_at: self.promoted_at,
            notes: self.notes,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawAudit {
    pub(crate) event_id: String,
    pub(crate) org_id: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) at: i64,
    pub(crate) details: String,
}

impl RawAudit {
    pub(crate) fn into_row(self) -> StoreResult<AuditRow> {
        Ok(AuditRow {
            event_id: self.event_id,
            org_id: parse_id(&self.org_id, "org id")?,
            actor: self.actor,
            action: self.action,
            target: self.target,
            at: self.at,
            details: parse_json(&self.details, "audit details")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawSigningKey {
    pub(crate) kid: String,
    pub(crate) public_key: Vec<u8>,
    pub(crate) private_key: Vec<u8>,
    pub(crate) encrypted: bool,
    pub(crate) created_at: i64,
    pub(crate) retired_at: Option<i64>,
}

impl RawSigningKey {
    pub(crate) fn into_row(self) -> SigningKeyRow {
        SigningKeyRow {
            kid: self.kid,
            public_key: self.public_key,
            private_key: self.private_key,
            encrypted: self.encrypted,
            created_at: self.created_at,
            retired_at: self.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawGate {
    pub(crate) key_id: String,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) change_seq: i64,
}

impl RawGate {
    pub(crate) fn into_row(self) -> StoreResult<KeyGateRow> {
        Ok(KeyGateRow {
            key_id: parse_id(&self.key_id, "key id")?,
            revoked: self.revoked_at.is_some(),
            revoked_at: self.revoked_at,
            expires_at: self.expires_at,
            change_seq: self.change_seq,
        })
    }
}

/// Columns of `revoked_tokens`, as [`RawRevokedToken`] reads them.
pub(crate) const REVOKED_TOKEN_COLUMNS: &str =
    "SELECT jti, org_id, key_id, expires_at, revoked_at, revoked_by, change_seq FROM revoked_tokens";

#[derive(sqlx::FromRow)]
pub(crate) struct RawRevokedToken {
    pub(crate) jti: String,
    pub(crate) org_id: String,
    pub(crate) key_id: String,
    pub(crate) expires_at: i64,
    pub(crate) revoked_at: i64,
    pub(crate) revoked_by: String,
    pub(crate) change_seq: i64,
}

impl RawRevokedToken {
    pub(crate) fn into_row(self) -> StoreResult<RevokedTokenRow> {
        Ok(RevokedTokenRow {
            jti: self.jti,
            org_id: parse_id(&self.org_id, "org id")?,
            key_id: parse_id(&self.key_id, "key id")?,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            revoked_by: self.revoked_by,
            change_seq: self.change_seq,
        })
    }
}

// ---- export and import ----------------------------------------------------------------

/// A prompt row as exported, with its `next_version`.
#[derive(sqlx::FromRow)]
pub(crate) struct RawStoredPrompt {
    pub(crate) prompt_id: String,
    pub(crate) org_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) tags: String,
    pub(crate) next_version: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) created_by: String,
}

impl RawStoredPrompt {
    pub(crate) fn into_row(self) -> StoreResult<StoredPrompt> {
        Ok(StoredPrompt {
            prompt: PromptRow {
                prompt_id: parse_id(&self.prompt_id, "prompt id")?,
                org_id: parse_id(&self.org_id, "org id")?,
                name: self.name,
                description: self.description,
                tags: parse_json(&self.tags, "tags")?,
                created_at: self.created_at,
                updated_at: self.updated_at,
                created_by: self.created_by,
            },
            next_version: self.next_version,
        })
    }
}

/// A promotion-history row with its organization, as exported.
#[derive(sqlx::FromRow)]
pub(crate) struct RawStoredPromotion {
    pub(crate) org_id: String,
    #[sqlx(flatten)]
    pub(crate) promotion: RawPromotion,
}

impl RawStoredPromotion {
    pub(crate) fn into_row(self) -> StoreResult<StoredPromotion> {
        Ok(StoredPromotion { org_id: parse_id(&self.org_id, "org id")?, promotion: self.promotion.into_row()? })
    }
}

/// One usage counter, as exported.
#[derive(sqlx::FromRow)]
pub(crate) struct RawUsage {
    pub(crate) key_id: String,
    pub(crate) day: String,
    pub(crate) count: i64,
}

impl RawUsage {
    pub(crate) fn into_row(self) -> StoreResult<UsageRow> {
        Ok(UsageRow {
            key_id: parse_id(&self.key_id, "key id")?,
            day: self.day,
            count: u64::try_from(self.count).map_err(|_| corrupt("usage count"))?,
        })
    }
}

/// A stored label, as exported.
#[derive(sqlx::FromRow)]
pub(crate) struct RawStoredLabel {
    pub(crate) org_id: String,
    pub(crate) prompt_id: String,
    pub(crate) label: String,
    pub(crate) version_id: String,
    pub(crate) moved_at: i64,
    pub(crate) moved_by: String,
}

impl RawStoredLabel {
    pub(crate) fn into_row(self) -> StoreResult<StoredLabel> {
        Ok(StoredLabel {
            org_id: parse_id(&self.org_id, "org id")?,
            prompt_id: parse_id(&self.prompt_id, "prompt id")?,
            label: self.label,
            version_id: parse_id(&self.version_id, "version id")?,
            moved_at: self.moved_at,
            moved_by: self.moved_by,
        })
    }
}

/// A label-history row with its organization, as exported.
#[derive(sqlx::FromRow)]
pub(crate) struct RawStoredLabelMove {
    pub(crate) org_id: String,
    #[sqlx(flatten)]
    pub(crate) label_move: RawLabelMove,
}

impl RawStoredLabelMove {
    pub(crate) fn into_row(self) -> StoreResult<StoredLabelMove> {
        Ok(StoredLabelMove { org_id: parse_id(&self.org_id, "org id")?, label_move: self.label_move.into_row()? })
    }
}

/// The export's reads of the tables added with releases and single-token
/// revocations, in the order the export lists them (the same on every
/// backend). Revocations come in the order they were made, and leave their
/// `change_seq` behind (each database numbers its own).
pub(crate) fn export_revoked_tokens_sql() -> String {
    format!("{REVOKED_TOKEN_COLUMNS} ORDER BY change_seq")
}

impl RawRevokedToken {
    /// As exported: without the database's own `change_seq`.
    pub(crate) fn into_exported(self) -> StoreResult<RevokedTokenRow> {
        self.into_row().map(|t| RevokedTokenRow { change_seq: 0, ..t })
    }
}

pub(crate) const EXPORT_LABELS: &str =
    "SELECT org_id, prompt_id, label, version_id, moved_at, moved_by FROM prompt_labels ORDER BY prompt_id, label";
pub(crate) const EXPORT_LABEL_MOVES: &str = "SELECT org_id, move_id, prompt_id, seq, label, kind, from_version_id, \
     from_version, to_version_id, to_version, moved_by, moved_at, notes FROM label_moves ORDER BY prompt_id, seq";
pub(crate) const EXPORT_PROTECTED_LABELS: &str = "SELECT org_id, label FROM protected_labels ORDER BY org_id, label";
pub(crate) const EXPORT_ORG_AUDIENCES: &str =
    "SELECT org_id, audience, created_at, created_by FROM org_audiences ORDER BY org_id, audience";
pub(crate) const EXPORT_EVENTS: &str = "SELECT seq, org_id, event_type, at, data FROM events ORDER BY seq";
pub(crate) const EXPORT_EVENTS_PRUNED_THROUGH: &str = "SELECT pruned_through FROM event_log WHERE id = 1";

/// Checks that a snapshot holds together before any of it is written: every
/// row's parent is in the snapshot (users, keys, revoked tokens, protected
/// labels, events and prompts in an organization, invitations for a user,
/// usage of a key, versions, promotions, labels and label moves of a prompt,
/// and the versions labels and moves name of that prompt, all in the same
/// organization), each prompt's `next_version` is above its versions' numbers
/// (numbers are never reused), stored labels are neither `production` nor
/// `latest`, and counts and positions fit the database. Refusing here gives
/// the operator a message naming the row instead of a foreign-key failure.
pub(crate) fn check_snapshot(s: &Snapshot) -> StoreResult<()> {
    use std::collections::{HashMap, HashSet};
    let bad = |msg: String| StoreError::Domain(DomainError::bad_request(msg));
    let orgs: HashSet<_> = s.orgs.iter().map(|o| o.org_id).collect();
    let users: HashMap<_, _> = s.users.iter().map(|u| (u.user_id, u.org_id)).collect();
    let keys: HashSet<_> = s.api_keys.iter().map(|k| k.key_id).collect();
    let prompts: HashMap<_, _> = s.prompts.iter().map(|p| (p.prompt.prompt_id, p.prompt.org_id)).collect();
    let versions: HashMap<_, _> = s.versions.iter().map(|v| (v.version_id, (v.prompt_id, v.org_id))).collect();
    if let Some(u) = s.users.iter().find(|u| !orgs.contains(&u.org_id)) {
        return Err(bad(format!("user {} belongs to an organization not in the export", u.user_id)));
    }
    if let Some(i) = s.invitations.iter().find(|i| users.get(&i.user_id) != Some(&i.org_id)) {
        return Err(bad(format!("an invitation for {} names a user not in the export", i.user_id)));
    }
    if let Some(k) = s.api_keys.iter().find(|k| !orgs.contains(&k.org_id)) {
        return Err(bad(format!("API key {} belongs to an organization not in the export", k.key_id)));
    }
    if let Some(u) = s.key_usage.iter().find(|u| !keys.contains(&u.key_id)) {
        return Err(bad(format!("usage of {} names a key not in the export", u.key_id)));
    }
    if let Some(u) = s.key_usage.iter().find(|u| i64::try_from(u.count).is_err()) {
        return Err(bad(format!("usage of {} on {} is out of range", u.key_id, u.day)));
    }
    if let Some(p) = s.prompts.iter().find(|p| !orgs.contains(&p.prompt.org_id)) {
        return Err(bad(format!("prompt {} belongs to an organization not in the export", p.prompt.prompt_id)));
    }
    let mut highest: HashMap<_, i64> = HashMap::new();
    for v in &s.versions {
        if prompts.get(&v.prompt_id) != Some(&v.org_id) {
            return Err(bad(format!("version {} names a prompt not in the export", v.version_id)));
        }
        let h = highest.entry(v.prompt_id).or_insert(v.version);
        *h = (*h).max(v.version);
    }
    if let Some(p) = s.prompts.iter().find(|p| highest.get(&p.prompt.prompt_id).is_some_and(|&h| p.next_version <= h)) {
        return Err(bad(format!("prompt {} has a next version number already used", p.prompt.prompt_id)));
    }
    if let Some(p) = s.promotions.iter().find(|p| prompts.get(&p.promotion.prompt_id) != Some(&p.org_id)) {
        return Err(bad(format!("promotion {} names a prompt not in the export", p.promotion.promotion_id)));
    }
    if let Some(t) = s.revoked_tokens.iter().find(|t| !orgs.contains(&t.org_id)) {
        return Err(bad(format!("revoked token {} belongs to an organization not in the export", t.jti)));
    }
    // A version of this prompt, in this organization.
    let of_prompt = |v: &scope_domain::VersionId, prompt, org| versions.get(v) == Some(&(prompt, org));
    for l in &s.labels {
        if prompts.get(&l.prompt_id) != Some(&l.org_id) {
            return Err(bad(format!("label '{}' names a prompt not in the export ({})", l.label, l.prompt_id)));
        }
        if !of_prompt(&l.version_id, l.prompt_id, l.org_id) {
            return Err(bad(format!("label '{}' of {} names a version not in the export", l.label, l.prompt_id)));
        }
        if !scope_domain::labels::is_label(&l.label)
            || scope_domain::labels::kind(&l.label) != scope_domain::labels::LabelKind::Custom
        {
            return Err(bad(format!("'{}' of {} cannot be a stored label", l.label, l.prompt_id)));
        }
    }
    for m in &s.label_moves {
        let r = &m.label_move;
        if prompts.get(&r.prompt_id) != Some(&m.org_id) {
            return Err(bad(format!("label move {} names a prompt not in the export", r.move_id)));
        }
        let named = [r.from_version_id, r.to_version_id];
        if named.iter().flatten().any(|v| !of_prompt(v, r.prompt_id, m.org_id)) {
            return Err(bad(format!("label move {} names a version not in the export", r.move_id)));
        }
    }
    if let Some(p) = s.protected_labels.iter().find(|p| !orgs.contains(&p.org_id)) {
        return Err(bad(format!("protected label '{}' belongs to an organization not in the export", p.label)));
    }
    if let Some(a) = s.org_audiences.iter().find(|a| !orgs.contains(&a.org_id)) {
        return Err(bad(format!("audience '{}' belongs to an organization not in the export", a.audience)));
    }
    if let Some(e) = s.events.iter().find(|e| !orgs.contains(&e.org_id)) {
        return Err(bad(format!("event {} belongs to an organization not in the export", e.seq)));
    }
    if let Some(e) = s.events.iter().find(|e| e.seq <= 0) {
        return Err(bad(format!("event {} has no valid position", e.seq)));
    }
    if s.events_pruned_through < 0 {
        return Err(bad("the event log's pruned-through mark is negative".into()));
    }
    Ok(())
}

// ---- releases: labels, their history, the event log ----------------------------------

/// The labels of a version: `production` first when it is the published
/// one, then the stored labels (comma-separated, sorted).
pub(crate) fn version_labels(published: bool, stored: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if published {
        out.push(scope_domain::labels::PRODUCTION.to_owned());
    }
    out.extend(stored.unwrap_or("").split(',').filter(|l| !l.is_empty()).map(str::to_owned));
    out
}

/// A prompt's labels: `production` from its published version, then the
/// stored ones by name. Bind the organization and the prompt id twice
/// (`$1`/`?1` org, `$2`/`?2` prompt).
pub(crate) fn label_list_sql(p1: &str, p2: &str) -> String {
    format!(
        "SELECT 'production' AS label, version_id, version, COALESCE(promoted_at, updated_at) AS moved_at, \
         COALESCE(promoted_by, created_by) AS moved_by, 0 AS ord \
         FROM prompt_versions WHERE org_id = {p1} AND prompt_id = {p2} AND status = 'published' \
         UNION ALL \
         SELECT l.label, l.version_id, v.version, l.moved_at, l.moved_by, 1 AS ord \
         FROM prompt_labels l JOIN prompt_versions v ON v.version_id = l.version_id \
         WHERE l.org_id = {p1} AND l.prompt_id = {p2} \
         ORDER BY ord, label"
    )
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawLabel {
    pub(crate) label: String,
    pub(crate) version_id: String,
    pub(crate) version: i64,
    pub(crate) moved_at: i64,
    pub(crate) moved_by: String,
}

impl RawLabel {
    pub(crate) fn into_row(self) -> StoreResult<LabelRow> {
        Ok(LabelRow {
            label: self.label,
            version_id: parse_id(&self.version_id, "version id")?,
            version: self.version,
            moved_at: self.moved_at,
            moved_by: self.moved_by,
        })
    }
}

pub(crate) const LABEL_MOVE_COLUMNS: &str = "SELECT move_id, prompt_id, seq, label, kind, from_version_id, \
     from_version, to_version_id, to_version, moved_by, moved_at, notes FROM label_moves";

#[derive(sqlx::FromRow)]
pub(crate) struct RawLabelMove {
    pub(crate) move_id: String,
    pub(crate) prompt_id: String,
    pub(crate) seq: i64,
    pub(crate) label: String,
    pub(crate) kind: String,
    pub(crate) from_version_id: Option<String>,
    pub(crate) from_version: Option<i64>,
    pub(crate) to_version_id: Option<String>,
    pub(crate) to_version: Option<i64>,
    pub(crate) moved_by: String,
    pub(crate) moved_at: i64,
    pub(crate) notes: Option<String>,
}

impl RawLabelMove {
    pub(crate) fn into_row(self) -> StoreResult<LabelMoveRow> {
        Ok(LabelMoveRow {
            move_id: self.move_id,
            prompt_id: parse_id(&self.prompt_id, "prompt id")?,
            seq: self.seq,
            label: self.label,
            kind: LabelMoveKind::parse(&self.kind).ok_or_else(|| corrupt("label move kind"))?,
            from_version_id: self.from_version_id.as_deref().map(|s| parse_id(s, "version id")).transpose()?,
            from_version: self.from_version,
            to_version_id: self.to_version_id.as_deref().map(|s| parse_id(s, "version id")).transpose()?,
            to_version: self.to_version,
            moved_by: self.moved_by,
            moved_at: self.moved_at,
            notes: self.notes,
        })
    }
}

pub(crate) const EVENT_COLUMNS: &str = "SELECT seq, org_id, event_type, at, data FROM events";

#[derive(sqlx::FromRow)]
pub(crate) struct RawEvent {
    pub(crate) seq: i64,
    pub(crate) org_id: String,
    pub(crate) event_type: String,
    pub(crate) at: i64,
    pub(crate) data: String,
}

impl RawEvent {
    pub(crate) fn into_row(self) -> StoreResult<EventRow> {
        Ok(EventRow {
            seq: self.seq,
            org_id: parse_id(&self.org_id, "org id")?,
            event_type: self.event_type,
            at: self.at,
            data: parse_json(&self.data, "event data")?,
        })
    }
}

/// Most rows one read of the event log returns.
pub(crate) const MAX_EVENT_PAGE: u32 = 1000;

/// An event to append to the log inside a change's transaction; the
/// backend assigns its position. Built here so that both backends describe
/// a change with the same fields.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) org_id: scope_domain::OrgId,
    pub(crate) event_type: &'static str,
    pub(crate) at: i64,
    pub(crate) data: serde_json::Value,
}

impl NewEvent {
    fn prompt(
        event_type: &'static str,
        org: scope_domain::OrgId,
        prompt: scope_domain::PromptId,
        name: &str,
        at: i64,
        mut extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        extra.insert("prompt_id".into(), prompt.to_string().into());
        extra.insert("name".into(), name.into());
        NewEvent { org_id: org, event_type, at, data: serde_json::Value::Object(extra) }
    }

    /// A version was created (a new prompt's v1 too).
    pub(crate) fn version_created(v: &VersionRow, at: i64) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("version_id".into(), v.version_id.to_string().into());
        m.insert("version".into(), v.version.into());
        Self::prompt("prompt.version_created", v.org_id, v.prompt_id, &v.name, at, m)
    }

    /// A version changed in place: a draft edited, or unarchived.
    pub(crate) fn version_updated(v: &VersionRow, at: i64) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("version_id".into(), v.version_id.to_string().into());
        m.insert("version".into(), v.version.into());
        Self::prompt("prompt.version_updated", v.org_id, v.prompt_id, &v.name, at, m)
    }

    /// A version was archived (on its own, or replaced in production).
    pub(crate) fn version_archived(v: &VersionRow, at: i64) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("version_id".into(), v.version_id.to_string().into());
        m.insert("version".into(), v.version.into());
        Self::prompt("prompt.version_archived", v.org_id, v.prompt_id, &v.name, at, m)
    }

    /// A label moved: `to` is the version it now points at (`None`:
    /// removed), `from` where it pointed before.
    pub(crate) fn label_moved(
        org: scope_domain::OrgId,
        prompt: scope_domain::PromptId,
        name: &str,
        label: &str,
        from: Option<(scope_domain::VersionId, i64)>,
        to: Option<(scope_domain::VersionId, i64)>,
        at: i64,
    ) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("label".into(), label.into());
        m.insert("version_id".into(), to.map(|(id, _)| id.to_string()).into());
        m.insert("version".into(), to.map(|(_, n)| n).into());
        m.insert("previous_version_id".into(), from.map(|(id, _)| id.to_string()).into());
        m.insert("previous_version".into(), from.map(|(_, n)| n).into());
        Self::prompt("prompt.label_moved", org, prompt, name, at, m)
    }

    /// The prompt's description or tags changed (every version's `tags`).
    pub(crate) fn prompt_updated(
        org: scope_domain::OrgId,
        prompt: scope_domain::PromptId,
        name: &str,
        at: i64,
    ) -> Self {
        Self::prompt("prompt.updated", org, prompt, name, at, serde_json::Map::new())
    }

    /// The prompt was deleted with its versions.
    pub(crate) fn prompt_deleted(
        org: scope_domain::OrgId,
        prompt: scope_domain::PromptId,
        name: &str,
        at: i64,
    ) -> Self {
        Self::prompt("prompt.deleted", org, prompt, name, at, serde_json::Map::new())
    }

    /// An API key was revoked.
    pub(crate) fn key_revoked(org: scope_domain::OrgId, key: scope_domain::KeyId, at: i64) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("key_id".into(), key.to_string().into());
        NewEvent { org_id: org, event_type: "api_key.revoked", at, data: serde_json::Value::Object(m) }
    }
}

#[cfg(test)]
mod tests {
    use scope_domain::KeyId;

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
