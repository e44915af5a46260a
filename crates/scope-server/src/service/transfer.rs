//! `scope export` / `scope import`: a whole deployment as versioned JSON
//! lines, so that it can move between backends (SQLite ⇄ PostgreSQL) or
//! machines without anyone re-creating keys. The format is documented in
//! `docs/EXPORT.md`; this module is its one implementation.
//!
//! One JSON object per line, each with a `type`:
//! 1. `header`: `format` = `scope-export`, `version` = 1, `exported_at` (Unix
//!    ms), `scope_version`, `backend` it came from;
//! 2. the records, parents before children: `org`, `user`, `invitation`,
//!    `signing_key`, `api_key`, `key_usage`, `revoked_token`, `prompt`,
//!    `version`, `promotion`, `label`, `label_move`, `protected_label`,
//!    `org_audience`, `audit_event`, `event_log` (once), `event`;
//! 3. `end` with `records`, the number of records, so that a truncated file
//!    is refused instead of half imported.
//!
//! Timestamps are Unix milliseconds, as stored. Byte strings (secret and
//! token digests, signing keys) are standard base64. Keys travel as the
//! SHA-256 digests of their secrets (secrets are never stored), signing keys
//! as stored — encrypted with the master key when one was configured, in
//! clear otherwise; the file is then as sensitive as the database itself.
//! Browser sessions are not exported: people sign in again after a move.
//! Tokens revoked one by one travel until they expire (those already expired
//! at `exported_at` are left out), so that they stay refused after a move.
//! The event log travels with its positions and pruned-through mark, so a
//! live stream reconnecting with its `Last-Event-ID` continues where it
//! stopped.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use scope_domain::{KeyId, OrgId, PromptId, Role, UserId, VersionId, VersionStatus};
use scope_store::*;
use serde::{Deserialize, Serialize};

/// The value of the header's `format`.
pub const FORMAT: &str = "scope-export";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("cannot read or write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(line: usize, message: impl Into<String>) -> TransferError {
    TransferError::Invalid { line, message: message.into() }
}

/// Bytes as standard base64 in JSON.
mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header { format: String, version: u32, exported_at: i64, scope_version: String, backend: String },
    Org { org_id: OrgId, name: String, created_at: i64 },
    User {
        user_id: UserId,
        org_id: OrgId,
        email: String,
        password_hash: String,
        role: Role,
        created_at: i64,
        must_change_password: bool,
        last_sign_in_at: Option<i64>,
    },
    Invitation {
        #[serde(with = "b64")]
        token_digest: Vec<u8>,
        org_id: OrgId,
        user_id: UserId,
        created_by: String,
        created_at: i64,
        expires_at: i64,
        accepted_at: Option<i64>,
    },
    SigningKey {
        kid: String,
        #[serde(with = "b64")]
        public_key: Vec<u8>,
        #[serde(with = "b64")]
        private_key: Vec<u8>,
        encrypted: bool,
        created_at: i64,
        retired_at: Option<i64>,
    },
    ApiKey {
        key_id: KeyId,
        org_id: OrgId,
        name: String,
        environment: String,
        role: Role,
        #[serde(with = "b64")]
        secret_digest: Vec<u8>,
        created_at: i64,
        created_by: String,
        expires_at: Option<i64>,
        last_used_at: Option<i64>,
        revoked_at: Option<i64>,
        revoked_by: Option<String>,
        rotated_from: Option<KeyId>,
    },
    KeyUsage { key_id: KeyId, day: String, count: u64 },
    RevokedToken { jti: String, org_id: OrgId, key_id: KeyId, expires_at: i64, revoked_at: i64, revoked_by: String },
    Prompt {
        prompt_id: PromptId,
        org_id: OrgId,
        name: String,
        description: String,
        tags: Vec<String>,
        created_at: i64,
        updated_at: i64,
        created_by: String,
        next_version: i64,
    },
    Version {
        version_id: VersionId,
        prompt_id: PromptId,
        org_id: OrgId,
        version: i64,
        content: String,
        variables: Vec<String>,
        status: VersionStatus,
        prompt_type: String,
        metadata: serde_json::Value,
        created_at: i64,
        updated_at: i64,
        created_by: String,
        promoted_at: Option<i64>,
        promoted_by: Option<String>,
    },
    Promotion {
        promotion_id: String,
        org_id: OrgId,
        prompt_id: PromptId,
        version_id: VersionId,
        version: i64,
        previous_version_id: Option<VersionId>,
        previous_version: Option<i64>,
        promoted_by: String,
        promoted_at: i64,
        notes: Option<String>,
    },
    Label { org_id: OrgId, prompt_id: PromptId, label: String, version_id: VersionId, moved_at: i64, moved_by: String },
    LabelMove {
        move_id: String,
        org_id: OrgId,
        prompt_id: PromptId,
        seq: i64,
        label: String,
        kind: String,
        from_version_id: Option<VersionId>,
        from_version: Option<i64>,
        to_version_id: Option<VersionId>,
        to_version: Option<i64>,
        moved_by: String,
        moved_at: i64,
        notes: Option<String>,
    },
    ProtectedLabel { org_id: OrgId, label: String },
    OrgAudience { org_id: OrgId, audience: String, created_at: i64, created_by: String },
    AuditEvent {
        event_id: String,
        org_id: OrgId,
        actor: String,
        action: String,
        target: String,
        at: i64,
        details: serde_json::Value,
    },
    EventLog { pruned_through: i64 },
    Event { seq: i64, org_id: OrgId, event_type: String, at: i64, data: serde_json::Value },
    End { records: u64 },
}

/// What was written or read, per record type.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub orgs: usize,
    pub users: usize,
    pub invitations: usize,
    pub signing_keys: usize,
    pub api_keys: usize,
    pub key_usage: usize,
    pub revoked_tokens: usize,
    pub prompts: usize,
    pub versions: usize,
    pub promotions: usize,
    pub labels: usize,
    pub label_moves: usize,
    pub protected_labels: usize,
    pub org_audiences: usize,
    pub audit_events: usize,
    /// The `event_log` record: always one.
    pub event_log: usize,
    pub events: usize,
}

impl Counts {
    fn of(s: &Snapshot) -> Self {
        Self {
            orgs: s.orgs.len(),
            users: s.users.len(),
            invitations: s.invitations.len(),
            signing_keys: s.signing_keys.len(),
            api_keys: s.api_keys.len(),
            key_usage: s.key_usage.len(),
            revoked_tokens: s.revoked_tokens.len(),
            prompts: s.prompts.len(),
            versions: s.versions.len(),
            promotions: s.promotions.len(),
            labels: s.labels.len(),
            label_moves: s.label_moves.len(),
            protected_labels: s.protected_labels.len(),
            org_audiences: s.org_audiences.len(),
            audit_events: s.audit.len(),
            event_log: 1,
            events: s.events.len(),
        }
    }

    pub fn total(&self) -> usize {
        self.orgs
            + self.users
            + self.invitations
            + self.signing_keys
            + self.api_keys
            + self.key_usage
            + self.revoked_tokens
            + self.prompts
            + self.versions
            + self.promotions
            + self.labels
            + self.label_moves
            + self.protected_labels
            + self.org_audiences
            + self.audit_events
            + self.event_log
            + self.events
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes a snapshot in the export format.
pub fn write_snapshot(
    snapshot: &Snapshot,
    backend: &str,
    exported_at: i64,
    out: &mut impl Write,
) -> Result<Counts, TransferError> {
    write_line(
        out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            exported_at,
            scope_version: env!("CARGO_PKG_VERSION").into(),
            backend: backend.into(),
        },
    )?;
    for o in &snapshot.orgs {
        write_line(out, &Line::Org { org_id: o.org_id, name: o.name.clone(), created_at: o.created_at })?;
    }
    for u in &snapshot.users {
        write_line(
            out,
            &Line::User {
                user_id: u.user_id,
                org_id: u.org_id,
                email: u.email.clone(),
                password_hash: u.password_hash.clone(),
                role: u.role,
                created_at: u.created_at,
                must_change_password: u.must_change_password,
                last_sign_in_at: u.last_sign_in_at,
            },
        )?;
    }
    for i in &snapshot.invitations {
        write_line(
            out,
            &Line::Invitation {
                token_digest: i.token_digest.to_vec(),
                org_id: i.org_id,
                user_id: i.user_id,
                created_by: i.created_by.clone(),
                created_at: i.created_at,
                expires_at: i.expires_at,
                accepted_at: i.accepted_at,
            },
        )?;
    }
    for k in &snapshot.signing_keys {
        write_line(
            out,
            &Line::SigningKey {
                kid: k.kid.clone(),
                public_key: k.public_key.clone(),
                private_key: k.private_key.clone(),
                encrypted: k.encrypted,
                created_at: k.created_at,
                retired_at: k.retired_at,
            },
        )?;
    }
    for k in &snapshot.api_keys {
        write_line(
            out,
            &Line::ApiKey {
                key_id: k.key_id,
                org_id: k.org_id,
                name: k.name.clone(),
                environment: k.environment.clone(),
                role: k.role,
                secret_digest: k.secret_digest.to_vec(),
                created_at: k.created_at,
                created_by: k.created_by.clone(),
                expires_at: k.expires_at,
                last_used_at: k.last_used_at,
                revoked_at: k.revoked_at,
                revoked_by: k.revoked_by.clone(),
                rotated_from: k.rotated_from,
            },
        )?;
    }
    for u in &snapshot.key_usage {
        write_line(out, &Line::KeyUsage { key_id: u.key_id, day: u.day.clone(), count: u.count })?;
    }
    for t in &snapshot.revoked_tokens {
        write_line(
            out,
            &Line::RevokedToken {
                jti: t.jti.clone(),
                org_id: t.org_id,
                key_id: t.key_id,
                expires_at: t.expires_at,
                revoked_at: t.revoked_at,
                revoked_by: t.revoked_by.clone(),
            },
        )?;
    }
    for p in &snapshot.prompts {
        let r = &p.prompt;
        write_line(
            out,
            &Line::Prompt {
                prompt_id: r.prompt_id,
                org_id: r.org_id,
                name: r.name.clone(),
                description: r.description.clone(),
                tags: r.tags.clone(),
                created_at: r.created_at,
                updated_at: r.updated_at,
                created_by: r.created_by.clone(),
                next_version: p.next_version,
            },
        )?;
    }
    for v in &snapshot.versions {
        write_line(
            out,
            &Line::Version {
                version_id: v.version_id,
                prompt_id: v.prompt_id,
                org_id: v.org_id,
                version: v.version,
                content: v.content.clone(),
                variables: v.variables.clone(),
                status: v.status,
                prompt_type: v.prompt_type.clone(),
                metadata: v.metadata.clone(),
                created_at: v.created_at,
                updated_at: v.updated_at,
                created_by: v.created_by.clone(),
                promoted_at: v.promoted_at,
                promoted_by: v.promoted_by.clone(),
            },
        )?;
    }
    for p in &snapshot.promotions {
        let r = &p.promotion;
        write_line(
            out,
            &Line::Promotion {
                promotion_id: r.promotion_id.clone(),
                org_id: p.org_id,
                prompt_id: r.prompt_id,
                version_id: r.version_id,
                version: r.version,
                previous_version_id: r.previous_version_id,
                previous_version: r.previous_version,
                promoted_by: r.promoted_by.clone(),
                promoted_at: r.promoted_at,
                notes: r.notes.clone(),
            },
        )?;
    }
    for l in &snapshot.labels {
        write_line(
            out,
            &Line::Label {
                org_id: l.org_id,
                prompt_id: l.prompt_id,
                label: l.label.clone(),
                version_id: l.version_id,
                moved_at: l.moved_at,
                moved_by: l.moved_by.clone(),
            },
        )?;
    }
    for m in &snapshot.label_moves {
        let r = &m.label_move;
        write_line(
            out,
            &Line::LabelMove {
                move_id: r.move_id.clone(),
                org_id: m.org_id,
                prompt_id: r.prompt_id,
                seq: r.seq,
                label: r.label.clone(),
                kind: r.kind.as_str().into(),
                from_version_id: r.from_version_id,
                from_version: r.from_version,
                to_version_id: r.to_version_id,
                to_version: r.to_version,
                moved_by: r.moved_by.clone(),
                moved_at: r.moved_at,
                notes: r.notes.clone(),
            },
        )?;
    }
    for p in &snapshot.protected_labels {
        write_line(out, &Line::ProtectedLabel { org_id: p.org_id, label: p.label.clone() })?;
    }
    for a in &snapshot.org_audiences {
        write_line(
            out,
            &Line::OrgAudience {
                org_id: a.org_id,
                audience: a.audience.clone(),
                created_at: a.created_at,
                created_by: a.created_by.clone(),
            },
        )?;
    }
    for a in &snapshot.audit {
        write_line(
            out,
            &Line::AuditEvent {
                event_id: a.event_id.clone(),
                org_id: a.org_id,
                actor: a.actor.clone(),
                action: a.action.clone(),
                target: a.target.clone(),
                at: a.at,
                details: a.details.clone(),
            },
        )?;
    }
    write_line(out, &Line::EventLog { pruned_through: snapshot.events_pruned_through })?;
    for e in &snapshot.events {
        write_line(
            out,
            &Line::Event {
                seq: e.seq,
                org_id: e.org_id,
                event_type: e.event_type.clone(),
                at: e.at,
                data: e.data.clone(),
            },
        )?;
    }
    let counts = Counts::of(snapshot);
    write_line(out, &Line::End { records: counts.total() as u64 })?;
    out.flush()?;
    Ok(counts)
}

fn digest(bytes: Vec<u8>, line: usize, what: &str) -> Result<[u8; 32], TransferError> {
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| invalid(line, format!("{what} must be 32 bytes")))
}

/// Reads an export, checking its header, every record and its end line.
/// Nothing is written anywhere: the caller imports the result in one
/// transaction.
pub fn read_snapshot(input: impl BufRead) -> Result<(Snapshot, Counts), TransferError> {
    let mut s = Snapshot::default();
    let mut header_seen = false;
    let mut event_log_seen = false;
    let mut end: Option<(usize, u64)> = None;
    // Versions carry their prompt's name and tags in the model; fill them
    // in from the prompt records, which come first.
    let mut prompt_info: std::collections::HashMap<PromptId, (String, Vec<String>)> = Default::default();
    let mut n = 0usize;
    for (i, text) in input.lines().enumerate() {
        let line_no = i + 1;
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        if end.is_some() {
            return Err(invalid(line_no, "data after the end line"));
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| invalid(line_no, e.to_string()))?;
        if !header_seen {
            match line {
                Line::Header { format, version, .. } => {
                    if format != FORMAT {
                        return Err(invalid(line_no, format!("not a Scope export (format {format:?})")));
                    }
                    if version != VERSION {
                        return Err(invalid(
                            line_no,
                            format!("export format version {version} is not supported (this build reads {VERSION})"),
                        ));
                    }
                    header_seen = true;
                    continue;
                }
                _ => return Err(invalid(line_no, "the first line must be the header")),
            }
        }
        match line {
            Line::Header { .. } => return Err(invalid(line_no, "a second header")),
            Line::End { records } => {
                end = Some((line_no, records));
                continue;
            }
            Line::Org { org_id, name, created_at } => s.orgs.push(OrgRow { org_id, name, created_at }),
            Line::User {
                user_id,
                org_id,
                email,
                password_hash,
                role,
                created_at,
                must_change_password,
                last_sign_in_at,
            } => s.users.push(UserRow {
                user_id,
                org_id,
                email,
                password_hash,
                role,
                created_at,
                must_change_password,
                last_sign_in_at,
            }),
            Line::Invitation { token_digest, org_id, user_id, created_by, created_at, expires_at, accepted_at } => {
                s.invitations.push(InvitationRow {
                    token_digest: digest(token_digest, line_no, "token_digest")?,
                    org_id,
                    user_id,
                    created_by,
                    created_at,
                    expires_at,
                    accepted_at,
                })
            }
            Line::SigningKey { kid, public_key, private_key, encrypted, created_at, retired_at } => {
                s.signing_keys.push(SigningKeyRow { kid, public_key, private_key, encrypted, created_at, retired_at })
            }
            Line::ApiKey {
                key_id,
                org_id,
                name,
                environment,
                role,
                secret_digest,
                created_at,
                created_by,
                expires_at,
                last_used_at,
                revoked_at,
                revoked_by,
                rotated_from,
            } => s.api_keys.push(ApiKeyRow {
                key_id,
                org_id,
                name,
                environment,
                role,
                secret_digest: digest(secret_digest, line_no, "secret_digest")?,
                created_at,
                created_by,
                expires_at,
                last_used_at,
                revoked_at,
                revoked_by,
                rotated_from,
            }),
            Line::KeyUsage { key_id, day, count } => s.key_usage.push(UsageRow { key_id, day, count }),
            Line::RevokedToken { jti, org_id, key_id, expires_at, revoked_at, revoked_by } => {
                // Numbered by the importing database.
                s.revoked_tokens.push(RevokedTokenRow {
                    jti,
                    org_id,
                    key_id,
                    expires_at,
                    revoked_at,
                    revoked_by,
                    change_seq: 0,
                })
            }
            Line::Prompt {
                prompt_id,
                org_id,
                name,
                description,
                tags,
                created_at,
                updated_at,
                created_by,
                next_version,
            } => {
                prompt_info.insert(prompt_id, (name.clone(), tags.clone()));
                s.prompts.push(StoredPrompt {
                    prompt: PromptRow { prompt_id, org_id, name, description, tags, created_at, updated_at, created_by },
                    next_version,
                })
            }
            Line::Version {
                version_id,
                prompt_id,
                org_id,
                version,
                content,
                variables,
                status,
                prompt_type,
                metadata,
                created_at,
                updated_at,
                created_by,
                promoted_at,
                promoted_by,
            } => {
                let (name, tags) = prompt_info
                    .get(&prompt_id)
                    .cloned()
                    .ok_or_else(|| invalid(line_no, "a version before (or without) its prompt"))?;
                s.versions.push(VersionRow {
                    version_id,
                    prompt_id,
                    org_id,
                    name,
                    version,
                    content,
                    variables,
                    status,
                    prompt_type,
                    metadata,
                    tags,
                    created_at,
                    updated_at,
                    created_by,
                    promoted_at,
                    promoted_by,
                    labels: Vec::new(),
                })
            }
            Line::Promotion {
                promotion_id,
                org_id,
                prompt_id,
                version_id,
                version,
                previous_version_id,
                previous_version,
                promoted_by,
                promoted_at,
                notes,
            } => s.promotions.push(StoredPromotion {
                org_id,
                promotion: PromotionRow {
                    promotion_id,
                    prompt_id,
                    version_id,
                    version,
                    previous_version_id,
                    previous_version,
                    promoted_by,
                    promoted_at,
                    notes,
                },
            }),
            Line::Label { org_id, prompt_id, label, version_id, moved_at, moved_by } => {
                s.labels.push(StoredLabel { org_id, prompt_id, label, version_id, moved_at, moved_by })
            }
            Line::LabelMove {
                move_id,
                org_id,
                prompt_id,
                seq,
                label,
                kind,
                from_version_id,
                from_version,
                to_version_id,
                to_version,
                moved_by,
                moved_at,
                notes,
            } => {
                let kind = LabelMoveKind::parse(&kind)
                    .ok_or_else(|| invalid(line_no, format!("unknown label move kind {kind:?}")))?;
                s.label_moves.push(StoredLabelMove {
                    org_id,
                    label_move: LabelMoveRow {
                        move_id,
                        prompt_id,
                        seq,
                        label,
                        kind,
                        from_version_id,
                        from_version,
                        to_version_id,
                        to_version,
                        moved_by,
                        moved_at,
                        notes,
                    },
                })
            }
            Line::ProtectedLabel { org_id, label } => s.protected_labels.push(ProtectedLabelRow { org_id, label }),
            Line::OrgAudience { org_id, audience, created_at, created_by } => {
                s.org_audiences.push(OrgAudienceRow { org_id, audience, created_at, created_by })
            }
            Line::AuditEvent { event_id, org_id, actor, action, target, at, details } => {
                s.audit.push(AuditRow { event_id, org_id, actor, action, target, at, details })
            }
            Line::EventLog { pruned_through } => {
                if event_log_seen {
                    return Err(invalid(line_no, "a second event_log line"));
                }
                event_log_seen = true;
                s.events_pruned_through = pruned_through;
            }
            Line::Event { seq, org_id, event_type, at, data } => {
                s.events.push(EventRow { seq, org_id, event_type, at, data })
            }
        }
        n += 1;
    }
    if !header_seen {
        return Err(invalid(1, "empty input: not a Scope export"));
    }
    let Some((end_line, records)) = end else {
        return Err(invalid(n + 1, "no end line: the export is truncated"));
    };
    if records != n as u64 {
        return Err(invalid(end_line, format!("the end line counts {records} records but {n} were read")));
    }
    if !event_log_seen {
        return Err(invalid(end_line, "no event_log line: the export is incomplete"));
    }
    fill_version_labels(&mut s);
    let counts = Counts::of(&s);
    Ok((s, counts))
}

/// The `labels` of each version, as a store reads them: `production` first
/// when it is the published one, then the stored labels pointing at it, by
/// name.
fn fill_version_labels(s: &mut Snapshot) {
    let mut stored: std::collections::HashMap<VersionId, Vec<String>> = Default::default();
    for l in &s.labels {
        stored.entry(l.version_id).or_default().push(l.label.clone());
    }
    for v in &mut s.versions {
        let mut labels = Vec::new();
        if v.status == VersionStatus::Published {
            labels.push(scope_domain::labels::PRODUCTION.to_owned());
        }
        let mut own = stored.remove(&v.version_id).unwrap_or_default();
        own.sort();
        labels.extend(own);
        v.labels = labels;
    }
}

/// Leaves out single-token revocations of tokens expired at `now_ms`: they
/// are refused as expired anyway.
fn drop_expired_revocations(snapshot: &mut Snapshot, now_ms: i64) {
    snapshot.revoked_tokens.retain(|t| t.expires_at > now_ms);
}

/// Exports everything `store` holds (revocations of tokens already expired at
/// `now_ms` aside).
pub async fn export(store: &dyn Store, out: &mut impl Write, now_ms: i64) -> Result<Counts, TransferError> {
    let mut snapshot = store.export().await?;
    drop_expired_revocations(&mut snapshot, now_ms);
    write_snapshot(&snapshot, store.backend(), now_ms, out)
}

/// Imports an export into an empty database, all or nothing.
pub async fn import(store: &dyn Store, input: impl BufRead) -> Result<Counts, TransferError> {
    let (snapshot, counts) = read_snapshot(input)?;
    store.import(&snapshot).await?;
    Ok(counts)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let org = OrgId::generate();
        let key = KeyId::generate();
        let prompt = PromptId::generate();
        let v1 = VersionId::generate();
        Snapshot {
            orgs: vec![OrgRow { org_id: org, name: "Acme".into(), created_at: 1 }],
            api_keys: vec![ApiKeyRow {
                key_id: key,
                org_id: org,
                name: "k".into(),
                environment: "production".into(),
                role: Role::Admin,
                secret_digest: [7; 32],
                created_at: 2,
                created_by: "system".into(),
                expires_at: Some(5),
                last_used_at: None,
                revoked_at: None,
                revoked_by: None,
                rotated_from: None,
            }],
            key_usage: vec![UsageRow { key_id: key, day: "2026-11-27".into(), count: 3 }],
            prompts: vec![StoredPrompt {
                prompt: PromptRow {
                    prompt_id: prompt,
                    org_id: org,
                    name: "greet".into(),
                    description: String::new(),
                    tags: vec!["a".into()],
                    created_at: 3,
                    updated_at: 4,
                    created_by: "system".into(),
                },
                next_version: 2,
            }],
            versions: vec![VersionRow {
                version_id: v1,
                prompt_id: prompt,
                org_id: org,
                name: "greet".into(),
                version: 1,
                content: "Hi {{name}}\n\"quoted\"".into(),
                variables: vec!["name".into()],
                status: VersionStatus::Published,
                prompt_type: "text".into(),
                metadata: serde_json::json!({"k": [1, 2]}),
                tags: vec!["a".into()],
                created_at: 3,
                updated_at: 3,
                created_by: "system".into(),
                promoted_at: Some(4),
                promoted_by: Some("system".into()),
                // As a store reads them: production first, then by name.
                labels: vec!["production".into(), "beta".into(), "staging".into()],
            }],
            revoked_tokens: vec![RevokedTokenRow {
                jti: "jti-1".into(),
                org_id: org,
                key_id: key,
                expires_at: 90,
                revoked_at: 8,
                revoked_by: key.to_string(),
                change_seq: 0,
            }],
            labels: ["staging", "beta"]
                .into_iter()
                .map(|label| StoredLabel {
                    org_id: org,
                    prompt_id: prompt,
                    label: label.into(),
                    version_id: v1,
                    moved_at: 5,
                    moved_by: "system".into(),
                })
                .collect(),
            label_moves: vec![
                StoredLabelMove {
                    org_id: org,
                    label_move: LabelMoveRow {
                        move_id: "lbm_1".into(),
                        prompt_id: prompt,
                        seq: 1,
                        label: "production".into(),
                        kind: LabelMoveKind::Move,
                        from_version_id: None,
                        from_version: None,
                        to_version_id: Some(v1),
                        to_version: Some(1),
                        moved_by: "system".into(),
                        moved_at: 4,
                        notes: Some("first".into()),
                    },
                },
                StoredLabelMove {
                    org_id: org,
                    label_move: LabelMoveRow {
                        move_id: "lbm_2".into(),
                        prompt_id: prompt,
                        seq: 2,
                        label: "canary".into(),
                        kind: LabelMoveKind::Remove,
                        from_version_id: Some(v1),
                        from_version: Some(1),
                        to_version_id: None,
                        to_version: None,
                        moved_by: "system".into(),
                        moved_at: 5,
                        notes: None,
                    },
                },
            ],
            protected_labels: vec![ProtectedLabelRow { org_id: org, label: "production".into() }],
            org_audiences: vec![OrgAudienceRow {
                org_id: org,
                audience: "https://gateway.example".into(),
                created_at: 5,
                created_by: "system".into(),
            }],
            events: vec![EventRow {
                seq: 12,
                org_id: org,
                event_type: "prompt.label_moved".into(),
                at: 5,
                data: serde_json::json!({"prompt_id": prompt.to_string(), "label": "staging"}),
            }],
            events_pruned_through: 11,
            ..Snapshot::default()
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let mut out = Vec::new();
        let written = write_snapshot(&s, "sqlite", 9, &mut out).expect("write");
        let (read, counts) = read_snapshot(out.as_slice()).expect("read");
        assert_eq!(read, s);
        assert_eq!(counts, written);
        // org, key, usage, revoked token, prompt, version, 2 labels, 2
        // moves, protected label, org audience, event_log, event.
        assert_eq!(counts.total(), 14);
        let text = String::from_utf8(out).expect("utf-8");
        // The database's own numbering of revocations stays behind.
        assert!(!text.contains("change_seq"));
        let types: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["type"].as_str().unwrap_or("").into())
            .collect();
        assert_eq!(
            types,
            [
                "header",
                "org",
                "api_key",
                "key_usage",
                "revoked_token",
                "prompt",
                "version",
                "label",
                "label",
                "label_move",
                "label_move",
                "protected_label",
                "org_audience",
                "event_log",
                "event",
                "end"
            ]
        );
    }

    #[test]
    fn expired_revocations_stay_behind() {
        let mut s = sample();
        let live = s.revoked_tokens[0].clone();
        s.revoked_tokens.push(RevokedTokenRow { jti: "jti-old".into(), expires_at: 50, ..live.clone() });
        drop_expired_revocations(&mut s, 50);
        assert_eq!(s.revoked_tokens, vec![live]);
    }

    #[test]
    fn event_log_line_is_required_once_and_move_kinds_are_known() {
        let mut out = Vec::new();
        write_snapshot(&sample(), "sqlite", 9, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| l.contains(r#""type":"event_log""#)).expect("event_log line");
        let recount = |lines: &[&str], n: usize| {
            let mut v = lines.to_vec();
            let end = format!(r#"{{"type":"end","records":{n}}}"#);
            *v.last_mut().expect("end") = &end;
            v.join("\n")
        };
        // Without it (the end line recounted): refused.
        let mut without = lines.clone();
        without.remove(at);
        let n = without.len() - 2;
        assert!(read_snapshot(recount(&without, n).as_bytes()).is_err());
        // Twice: refused.
        let mut twice = lines.clone();
        twice.insert(at, lines[at]);
        let n = twice.len() - 2;
        assert!(read_snapshot(recount(&twice, n).as_bytes()).is_err());
        // An unknown kind of move: refused.
        let odd = text.replacen(r#""kind":"remove""#, r#""kind":"teleport""#, 1);
        assert_ne!(odd, text);
        assert!(read_snapshot(odd.as_bytes()).is_err());
    }

    #[test]
    fn truncated_or_foreign_input_is_refused() {
        let mut out = Vec::new();
        write_snapshot(&sample(), "sqlite", 9, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        // Without its end line.
        let cut = lines[..lines.len() - 1].join("\n");
        assert!(read_snapshot(cut.as_bytes()).is_err());
        // A record dropped from the middle: the count no longer matches.
        let mut dropped = lines.clone();
        dropped.remove(2);
        assert!(read_snapshot(dropped.join("\n").as_bytes()).is_err());
        // Another format, another version, garbage.
        assert!(read_snapshot(r#"{"type":"end","records":0}"#.as_bytes()).is_err());
        let v2 = text.replacen("\"version\":1", "\"version\":2", 1);
        assert!(read_snapshot(v2.as_bytes()).is_err());
        assert!(read_snapshot("not json".as_bytes()).is_err());
        assert!(read_snapshot("".as_bytes()).is_err());
    }
}
