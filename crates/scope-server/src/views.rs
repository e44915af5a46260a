//! Wire representations (SPEC §3, §5). Timestamps are RFC 3339 UTC.
//!
//! `VersionView` must never carry fields named `type`, `is_draft`,
//! `is_published`, `is_archived` or `raw_data`: the reference SDKs copy every
//! field onto their own objects, where those names collide.

use scope_store::{
    ApiKeyRow, AuditRow, LabelMoveRow, LabelRow, PromotionRow, PromptSummary, UsageDay, UserRow, VersionRow,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::api_keys::review_reasons;

pub fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ts_opt(ms: Option<i64>) -> Option<String> {
    ms.map(ts)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub key_id: String,
    pub org_id: String,
    pub name: String,
    pub environment: String,
    #[schema(value_type = scope_domain::Role)]
    pub role: &'static str,
    #[schema(schema_with = crate::http::openapi::key_status)]
    pub status: &'static str,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub rotated_from: Option<String>,
    /// `unused_90_days` / `older_than_90_days`: flagged for review/rotation.
    #[schema(schema_with = crate::http::openapi::review_reasons)]
    pub review: Vec<&'static str>,
    /// Only in the create/rotate response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ApiKeyView {
    pub fn new(k: &ApiKeyRow, now_ms: i64) -> Self {
        Self {
            key_id: k.key_id.to_string(),
            org_id: k.org_id.to_string(),
            name: k.name.clone(),
            environment: k.environment.clone(),
            role: k.role.as_str(),
            status: k.status_at(now_ms).as_str(),
            created_at: ts(k.created_at),
            created_by: k.created_by.clone(),
            expires_at: ts_opt(k.expires_at),
            last_used_at: ts_opt(k.last_used_at),
            revoked_at: ts_opt(k.revoked_at),
            revoked_by: k.revoked_by.clone(),
            rotated_from: k.rotated_from.map(|k| k.to_string()),
            review: review_reasons(k, now_ms),
            secret: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub prompt_id: String,
    pub version_id: String,
    pub name: String,
    pub version: i64,
    pub content: String,
    pub variables: Vec<String>,
    #[schema(value_type = scope_domain::VersionStatus)]
    pub status: &'static str,
    pub is_production: bool,
    pub prompt_type: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub promoted_at: Option<String>,
    pub promoted_by: Option<String>,
    /// The labels pointing at this version (SPEC §9): `production` first
    /// when it is the published one, then the others by name; `latest` is
    /// computed and never listed. An added field: the reference SDKs copy
    /// it onto their version objects like any other.
    pub labels: Vec<String>,
}

impl From<&VersionRow> for VersionView {
    fn from(v: &VersionRow) -> Self {
        Self {
            prompt_id: v.prompt_id.to_string(),
            version_id: v.version_id.to_string(),
            name: v.name.clone(),
            version: v.version,
            content: v.content.clone(),
            variables: v.variables.clone(),
            status: v.status.as_str(),
            is_production: v.status == scope_domain::VersionStatus::Published,
            prompt_type: v.prompt_type.clone(),
            metadata: v.metadata.clone(),
            tags: v.tags.clone(),
            created_at: ts(v.created_at),
            updated_at: ts(v.updated_at),
            created_by: v.created_by.clone(),
            promoted_at: ts_opt(v.promoted_at),
            promoted_by: v.promoted_by.clone(),
            labels: v.labels.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptView {
    pub prompt_id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub latest_version: Option<i64>,
    pub production_version: Option<i64>,
    pub production_version_id: Option<String>,
    /// Only in the create response: the v1 draft.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionView>,
}

impl From<&PromptSummary> for PromptView {
    fn from(s: &PromptSummary) -> Self {
        let p = &s.prompt;
        Self {
            prompt_id: p.prompt_id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            tags: p.tags.clone(),
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            created_by: p.created_by.clone(),
            latest_version: s.latest_version,
            production_version: s.production_version,
            production_version_id: s.production_version_id.map(|v| v.to_string()),
            version: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionView {
    pub promotion_id: String,
    pub prompt_id: String,
    pub version_id: String,
    pub version: i64,
    pub previous_version_id: Option<String>,
    pub previous_version: Option<i64>,
    pub promoted_by: String,
    pub promoted_at: String,
    pub notes: Option<String>,
}

impl From<&PromotionRow> for PromotionView {
    fn from(r: &PromotionRow) -> Self {
        Self {
            promotion_id: r.promotion_id.clone(),
            prompt_id: r.prompt_id.to_string(),
            version_id: r.version_id.to_string(),
            version: r.version,
            previous_version_id: r.previous_version_id.map(|v| v.to_string()),
            previous_version: r.previous_version,
            promoted_by: r.promoted_by.clone(),
            promoted_at: ts(r.promoted_at),
            notes: r.notes.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub event_id: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub at: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditRow> for AuditView {
    fn from(r: &AuditRow) -> Self {
        Self {
            event_id: r.event_id.clone(),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            at: ts(r.at),
            details: r.details.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDayView {
    pub date: String,
    pub count: u64,
}

impl From<&UsageDay> for UsageDayView {
    fn from(u: &UsageDay) -> Self {
        Self { date: u.day.clone(), count: u.count }
    }
}

/// A console user. Never a password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub org_id: String,
    pub email: String,
    #[schema(value_type = scope_domain::Role)]
    pub role: &'static str,
    /// `invited` (invitation not yet accepted) or `active`.
    #[schema(schema_with = crate::http::openapi::user_status)]
    pub status: &'static str,
    pub must_change_password: bool,
    pub created_at: String,
    pub last_sign_in_at: Option<String>,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        Self {
            user_id: u.user_id.to_string(),
            org_id: u.org_id.to_string(),
            email: u.email.clone(),
            role: u.role.as_str(),
            status: u.status(),
            must_change_password: u.must_change_password,
            created_at: ts(u.created_at),
            last_sign_in_at: ts_opt(u.last_sign_in_at),
        }
    }
}

/// `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

// ---- releases (SPEC §9) ---------------------------------------------------------------

/// One label of a prompt: `GET /api/v1/prompts/{name}/labels`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelView {
    pub label: String,
    pub version_id: String,
    pub version: i64,
    pub moved_at: String,
    pub moved_by: String,
    /// Only admins may move it (the organization's protected labels).
    pub protected: bool,
}

impl LabelView {
    pub fn new(l: &LabelRow, protected: &[String]) -> Self {
        Self {
            label: l.label.clone(),
            version_id: l.version_id.to_string(),
            version: l.version,
            moved_at: ts(l.moved_at),
            moved_by: l.moved_by.clone(),
            protected: protected.contains(&l.label),
        }
    }
}

/// `{"data": [...]}`: a prompt's labels, not paged (a prompt has few).
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelsView {
    pub data: Vec<LabelView>,
}

/// One move of a label: `GET /api/v1/prompts/{name}/label-history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelMoveView {
    pub move_id: String,
    pub prompt_id: String,
    pub label: String,
    /// `move`, `rollback` or `remove`.
    #[schema(schema_with = crate::http::openapi::move_kind)]
    pub kind: &'static str,
    pub from_version_id: Option<String>,
    pub from_version: Option<i64>,
    pub to_version_id: Option<String>,
    pub to_version: Option<i64>,
    pub moved_by: String,
    pub moved_at: String,
    pub notes: Option<String>,
}

impl From<&LabelMoveRow> for LabelMoveView {
    fn from(m: &LabelMoveRow) -> Self {
        Self {
            move_id: m.move_id.clone(),
            prompt_id: m.prompt_id.to_string(),
            label: m.label.clone(),
            kind: m.kind.as_str(),
            from_version_id: m.from_version_id.map(|v| v.to_string()),
            from_version: m.from_version,
            to_version_id: m.to_version_id.map(|v| v.to_string()),
            to_version: m.to_version,
            moved_by: m.moved_by.clone(),
            moved_at: ts(m.moved_at),
            notes: m.notes.clone(),
        }
    }
}

/// A side of a diff.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffSideView {
    pub version_id: String,
    pub version: i64,
    #[schema(value_type = scope_domain::VersionStatus)]
    pub status: &'static str,
    pub labels: Vec<String>,
}

impl From<&VersionRow> for DiffSideView {
    fn from(v: &VersionRow) -> Self {
        Self {
            version_id: v.version_id.to_string(),
            version: v.version,
            status: v.status.as_str(),
            labels: v.labels.clone(),
        }
    }
}

/// `GET /api/v1/prompts/{name}/diff?from=&to=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    pub from: DiffSideView,
    pub to: DiffSideView,
    #[serde(flatten)]
    pub diff: crate::service::diff::VersionDiff,
}

/// `GET/PUT /api/v1/settings/protected-labels`.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedLabelsView {
    pub labels: Vec<String>,
}

/// `GET /api/v1/org/audiences`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudiencesView {
    pub data: Vec<String>,
}

/// `PUT /api/v1/org/audiences`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudiencesBody {
    pub audiences: Vec<String>,
}
