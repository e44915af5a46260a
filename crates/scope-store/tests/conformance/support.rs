//! Fixtures shared by the conformance cases (and by `tests/sqlite.rs`): ids
//! that sort in creation order, rows, and small helpers that go through the
//! `Store` trait only.

use std::sync::atomic::{AtomicU64, Ordering};

use scope_domain::{ErrorCode, KeyId, OrgId, PromptId, Role, UserId, VersionId, VersionStatus};
use scope_store::*;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A fresh time-ordered suffix, so ids made one after the other sort in order.
pub fn ulid_text() -> String {
    // Monotonic within the process: millisecond part from a counter.
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    ulid::Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)).to_string()
}

pub fn event(org: OrgId, action: &str, target: &str) -> AuditRow {
    AuditRow {
        event_id: format!("evt_{}", ulid_text()),
        org_id: org,
        actor: "system".into(),
        action: action.into(),
        target: target.into(),
        at: 1,
        details: serde_json::json!({"n": 1}),
    }
}

pub fn key_id() -> KeyId {
    format!("key_{}", ulid_text()).parse().unwrap_or_else(|_| KeyId::generate())
}
pub fn prompt_id() -> PromptId {
    format!("pmt_{}", ulid_text()).parse().unwrap_or_else(|_| PromptId::generate())
}
pub fn version_id() -> VersionId {
    format!("v_{}", ulid_text()).parse().unwrap_or_else(|_| VersionId::generate())
}
pub fn user_id() -> UserId {
    format!("usr_{}", ulid_text()).parse().unwrap_or_else(|_| UserId::generate())
}

pub fn key_row(org: OrgId, name: &str, expires_at: Option<i64>) -> ApiKeyRow {
    ApiKeyRow {
        key_id: key_id(),
        org_id: org,
        name: name.into(),
        environment: "production".into(),
        role: Role::Editor,
        secret_digest: [7u8; 32],
        created_at: 1000,
        created_by: "system".into(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
        revoked_by: None,
        rotated_from: None,
    }
}

/// Creates an org with an admin user and key; returns (org, admin key).
pub async fn make_org(store: &dyn Store, email: &str) -> Result<(OrgId, ApiKeyRow), StoreError> {
    make_org_with_admin(store, email).await.map(|(org, key, _)| (org, key))
}

/// Creates an org with an admin user and key; returns (org, admin key, admin).
pub async fn make_org_with_admin(store: &dyn Store, email: &str) -> Result<(OrgId, ApiKeyRow, UserRow), StoreError> {
    let org = OrgId::generate();
    let key = key_row(org, "bootstrap", None);
    let user = UserRow {
        user_id: user_id(),
        org_id: org,
        email: email.into(),
        password_hash: "$argon2id$stub".into(),
        role: Role::Admin,
        created_at: 1000,
        must_change_password: true,
        last_sign_in_at: None,
    };
    let orgrow = OrgRow { org_id: org, name: format!("org of {email}"), created_at: 1000 };
    store
        .create_org(
            &orgrow,
            &user,
            &key,
            &[event(org, "org.created", &org.to_string()), event(org, "api_key.created", &key.key_id.to_string())],
        )
        .await?;
    Ok((org, key, user))
}

pub fn page(limit: u32, cursor: Option<String>) -> PageQuery {
    PageQuery { limit, cursor }
}

pub fn audit_page(limit: u32, cursor: Option<String>) -> AuditQuery {
    AuditQuery { page: page(limit, cursor), ..AuditQuery::default() }
}

pub fn key_query(limit: u32, cursor: Option<String>, status: Option<KeyStatus>, now_ms: i64) -> KeyListQuery {
    KeyListQuery { page: page(limit, cursor), status, now_ms }
}

pub async fn make_prompt(
    store: &dyn Store,
    org: OrgId,
    name: &str,
    tags: &[&str],
    content: &str,
) -> Result<(PromptId, VersionId), StoreError> {
    let pid = prompt_id();
    let vid = version_id();
    let prompt = PromptRow {
        prompt_id: pid,
        org_id: org,
        name: name.into(),
        description: format!("the {name} prompt"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created_at: 2000,
        updated_at: 2000,
        created_by: "system".into(),
    };
    let v1 = VersionRow {
        version_id: vid,
        prompt_id: pid,
        org_id: org,
        name: name.into(),
        version: 1,
        content: content.into(),
        variables: vec![],
        status: VersionStatus::Draft,
        prompt_type: "text".into(),
        metadata: serde_json::json!({}),
        tags: vec![],
        created_at: 2000,
        updated_at: 2000,
        created_by: "system".into(),
        promoted_at: None,
        promoted_by: None,
        labels: Vec::new(),
    };
    store.create_prompt(&prompt, &v1, &event(org, "prompt.created", &pid.to_string())).await?;
    Ok((pid, vid))
}

pub async fn new_version(
    store: &dyn Store,
    org: OrgId,
    pid: PromptId,
    content: Option<&str>,
    copy_from: Option<VersionId>,
) -> Result<VersionRow, StoreError> {
    let nv = NewVersion {
        version_id: version_id(),
        content: content.map(str::to_owned),
        prompt_type: None,
        metadata: None,
        copy_from,
        created_by: "usr_x".into(),
        now_ms: 3000,
    };
    store.create_version(org, pid, &nv, &event(org, "version.created", &nv.version_id.to_string())).await
}

pub fn promote_req(archive_previous: bool, now_ms: i64) -> PromoteRequest {
    PromoteRequest {
        notes: Some("ship it".into()),
        archive_previous,
        actor: "usr_admin".into(),
        now_ms,
        promotion_id: format!("prm_{}", ulid_text()),
    }
}

pub fn is_domain(e: &StoreError, code: ErrorCode) -> bool {
    matches!(e, StoreError::Domain(d) if d.code == code)
}

// ---- users, invitations, sessions ---------------------------------------------------

/// An active user (with a password) or, with `password_hash = ""`, an invited one.
pub fn user_row(org: OrgId, email: &str, role: Role, password_hash: &str) -> UserRow {
    UserRow {
        user_id: user_id(),
        org_id: org,
        email: email.into(),
        password_hash: password_hash.into(),
        role,
        created_at: 5000,
        must_change_password: false,
        last_sign_in_at: None,
    }
}

pub fn invitation(user: &UserRow, token: u8, expires_at: i64) -> InvitationRow {
    InvitationRow {
        token_digest: [token; 32],
        org_id: user.org_id,
        user_id: user.user_id,
        created_by: "usr_admin".into(),
        created_at: 5000,
        expires_at,
        accepted_at: None,
    }
}

pub fn session_row(user: &UserRow, digest: u8, created_at: i64, expires_at: i64) -> SessionRow {
    SessionRow {
        session_digest: [digest; 32],
        org_id: user.org_id,
        user_id: user.user_id,
        created_at,
        last_seen_at: created_at,
        expires_at,
    }
}

/// Inserts an active user (or an invited one, with its invitation).
pub async fn add_user(store: &dyn Store, user: &UserRow, invitation: Option<&InvitationRow>) -> Result<(), StoreError> {
    store.insert_user(user, invitation, &event(user.org_id, "user.created", &user.user_id.to_string())).await
}

pub async fn sign_in(store: &dyn Store, session: &SessionRow) -> Result<(), StoreError> {
    store.create_session(session, &event(session.org_id, "user.signed_in", &session.user_id.to_string())).await
}

pub async fn audit_actions(store: &dyn Store, org: OrgId) -> Result<Vec<String>, StoreError> {
    Ok(store.list_audit(org, &audit_page(200, None)).await?.into_iter().map(|r| r.action).collect())
}

pub fn audit_at(org: OrgId, actor: &str, action: &str, target: &str, at: i64) -> AuditRow {
    AuditRow { actor: actor.into(), at, ..event(org, action, target) }
}

// ---- concurrency ----------------------------------------------------------------------

/// Runs `n` tasks made by `task(i)` at once: each waits until all have been
/// spawned, so their transactions really overlap. Results in task order.
pub async fn all_at_once<T, F, Fut>(n: usize, task: F) -> Result<Vec<T>, tokio::task::JoinError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), task(i));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await?);
    }
    Ok(out)
}

/// Opens connections ahead of a race, so that racing tasks are not spread
/// out by connection set-up.
pub async fn warm_up(store: &std::sync::Arc<dyn Store>) -> TestResult {
    for r in all_at_once(16, |_| {
        let store = store.clone();
        async move { store.ping().await }
    })
    .await?
    {
        r?;
    }
    Ok(())
}
