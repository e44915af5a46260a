//! The SQLite backend against a temporary database file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use scope_domain::{ErrorCode, KeyId, OrgId, PromptId, Role, UserId, VersionId, VersionStatus};
use scope_store::sqlite::SqliteStore;
use scope_store::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A fresh time-ordered suffix, so ids made one after the other sort in order.
fn ulid_text() -> String {
    // Monotonic within the process: millisecond part from a counter.
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    ulid::Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)).to_string()
}

fn event(org: OrgId, action: &str, target: &str) -> AuditRow {
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

fn key_id() -> KeyId {
    format!("key_{}", ulid_text()).parse().unwrap_or_else(|_| KeyId::generate())
}
fn prompt_id() -> PromptId {
    format!("pmt_{}", ulid_text()).parse().unwrap_or_else(|_| PromptId::generate())
}
fn version_id() -> VersionId {
    format!("v_{}", ulid_text()).parse().unwrap_or_else(|_| VersionId::generate())
}
fn user_id() -> UserId {
    format!("usr_{}", ulid_text()).parse().unwrap_or_else(|_| UserId::generate())
}

fn key_row(org: OrgId, name: &str, expires_at: Option<i64>) -> ApiKeyRow {
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

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // A nested directory that does not exist yet.
    let path = dir.path().join("nested").join("scope.db");
    let url = format!("sqlite://{}", path.display());
    let store = Arc::new(SqliteStore::open(&url).await?);
    assert!(path.exists());
    Ok(Fixture { _dir: dir, store })
}

/// Creates an org with an admin user and key; returns (org, admin key).
async fn make_org(store: &SqliteStore, email: &str) -> Result<(OrgId, ApiKeyRow), StoreError> {
    make_org_with_admin(store, email).await.map(|(org, key, _)| (org, key))
}

/// Creates an org with an admin user and key; returns (org, admin key, admin).
async fn make_org_with_admin(store: &SqliteStore, email: &str) -> Result<(OrgId, ApiKeyRow, UserRow), StoreError> {
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

fn page(limit: u32, cursor: Option<String>) -> PageQuery {
    PageQuery { limit, cursor }
}

fn audit_page(limit: u32, cursor: Option<String>) -> AuditQuery {
    AuditQuery { page: page(limit, cursor), ..AuditQuery::default() }
}

fn key_query(limit: u32, cursor: Option<String>, status: Option<KeyStatus>, now_ms: i64) -> KeyListQuery {
    KeyListQuery { page: page(limit, cursor), status, now_ms }
}

async fn make_prompt(
    store: &SqliteStore,
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
    };
    store.create_prompt(&prompt, &v1, &event(org, "prompt.created", &pid.to_string())).await?;
    Ok((pid, vid))
}

async fn new_version(
    store: &SqliteStore,
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

fn promote_req(archive_previous: bool, now_ms: i64) -> PromoteRequest {
    PromoteRequest {
        notes: Some("ship it".into()),
        archive_previous,
        actor: "usr_admin".into(),
        now_ms,
        promotion_id: format!("prm_{}", ulid_text()),
    }
}

fn is_domain(e: &StoreError, code: ErrorCode) -> bool {
    matches!(e, StoreError::Domain(d) if d.code == code)
}

#[tokio::test]
async fn orgs_and_keys() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    s.ping().await?;
    assert!(!s.is_initialized().await?);
    let (org, admin_key) = make_org(s, "a@example.com").await?;
    assert!(s.is_initialized().await?);
    assert_eq!(s.get_org(org).await?.org_id, org);
    assert!(matches!(s.get_org(OrgId::generate()).await, Err(StoreError::NotFound)));

    // Same e-mail again: conflict, and nothing of the second org is left behind.
    let dup = make_org(s, "a@example.com").await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("email")));

    assert_eq!(s.get_api_key(org, admin_key.key_id).await?, admin_key);
    assert_eq!(s.find_api_key(admin_key.key_id).await?, Some(admin_key.clone()));
    assert_eq!(s.find_api_key(KeyId::generate()).await?, None);

    // 5 more keys: one expired, one expiring later, one to revoke.
    let now = 10_000;
    let mut keys = vec![admin_key.clone()];
    for i in 0..5 {
        let exp = match i {
            0 => Some(now - 1),
            1 => Some(now + 100_000),
            _ => None,
        };
        let k = key_row(org, &format!("k{i}"), exp);
        s.insert_api_key(&k, &event(org, "api_key.created", &k.key_id.to_string())).await?;
        keys.push(k);
    }
    let revoked = keys[5].key_id;
    let r =
        s.revoke_api_key(org, revoked, "usr_admin", now, &event(org, "api_key.revoked", &revoked.to_string())).await?;
    assert_eq!(r.revoked_at, Some(now));
    assert_eq!(r.revoked_by.as_deref(), Some("usr_admin"));
    // Idempotent: the second revoke returns the unchanged row and audits nothing.
    let audit_before = s.list_audit(org, &audit_page(200, None)).await?.len();
    let r2 = s
        .revoke_api_key(org, revoked, "usr_other", now + 5, &event(org, "api_key.revoked", &revoked.to_string()))
        .await?;
    assert_eq!(r2, r);
    assert_eq!(s.list_audit(org, &audit_page(200, None)).await?.len(), audit_before);

    // Paging newest first, 2 at a time.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let rows = s.list_api_keys(org, &key_query(2, cursor.clone(), None, now)).await?;
        if rows.is_empty() {
            break;
        }
        cursor = rows.last().map(|k| k.key_id.to_string());
        seen.extend(rows.into_iter().map(|k| k.key_id));
    }
    let mut expected: Vec<KeyId> = keys.iter().map(|k| k.key_id).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    let ids = |rows: Vec<ApiKeyRow>| rows.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
    let active = ids(s.list_api_keys(org, &key_query(50, None, Some(KeyStatus::Active), now)).await?);
    assert_eq!(active.len(), 4);
    assert!(!active.contains(&keys[1].key_id) && !active.contains(&revoked));
    assert_eq!(ids(s.list_api_keys(org, &key_query(50, None, Some(KeyStatus::Revoked), now)).await?), vec![revoked]);
    assert_eq!(
        ids(s.list_api_keys(org, &key_query(50, None, Some(KeyStatus::Expired), now)).await?),
        vec![keys[1].key_id]
    );
    // Later, the second key has expired too.
    let later = ids(s.list_api_keys(org, &key_query(50, None, Some(KeyStatus::Expired), now + 200_000)).await?);
    assert_eq!(later, vec![keys[2].key_id, keys[1].key_id]);

    // Bad cursor.
    let bad = s.list_api_keys(org, &key_query(50, Some("nope".into()), None, now)).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Another org sees none of these.
    let (org_b, _) = make_org(s, "b@example.com").await?;
    assert_eq!(s.list_api_keys(org_b, &key_query(50, None, None, now)).await?.len(), 1);
    assert!(matches!(s.get_api_key(org_b, admin_key.key_id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.revoke_api_key(org_b, admin_key.key_id, "x", now, &event(org_b, "api_key.revoked", "x")).await,
        Err(StoreError::NotFound)
    ));
    Ok(())
}

#[tokio::test]
async fn rotate_usage_and_gates() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, admin) = make_org(s, "r@example.com").await?;

    // Nothing gated yet.
    assert!(s.key_gate_changes(0).await?.is_empty());

    let expiring = key_row(org, "expiring", Some(50_000));
    s.insert_api_key(&expiring, &event(org, "api_key.created", "x")).await?;
    let gates = s.key_gate_changes(0).await?;
    assert_eq!(gates.len(), 1);
    assert_eq!(gates[0].key_id, expiring.key_id);
    assert!(gates[0].change_seq > 0 && !gates[0].revoked);
    let seq1 = gates[0].change_seq;

    // Rotate the admin key: successor inserted, old one expires after grace.
    let mut successor = key_row(org, "bootstrap", None);
    successor.rotated_from = Some(admin.key_id);
    let old = s.rotate_api_key(org, admin.key_id, 90_000, &successor, &event(org, "api_key.rotated", "x")).await?;
    assert_eq!(old.expires_at, Some(90_000));
    assert_eq!(s.get_api_key(org, successor.key_id).await?.rotated_from, Some(admin.key_id));
    let changes = s.key_gate_changes(seq1).await?;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].key_id, admin.key_id);
    assert_eq!(changes[0].expires_at, Some(90_000));
    let seq2 = changes[0].change_seq;
    assert!(seq2 > seq1);

    // Rotating again with a later grace keeps the earlier expiry.
    let successor2 = key_row(org, "bootstrap", None);
    let old = s.rotate_api_key(org, admin.key_id, 500_000, &successor2, &event(org, "api_key.rotated", "x")).await?;
    assert_eq!(old.expires_at, Some(90_000));

    // Revoked keys cannot be rotated; unknown keys are not found.
    s.revoke_api_key(org, expiring.key_id, "usr_a", 1, &event(org, "api_key.revoked", "x")).await?;
    let seq3 = s.key_gate_changes(0).await?.iter().map(|g| g.change_seq).max().unwrap_or(0);
    let revoked_gate = s.key_gate_changes(seq3 - 1).await?;
    assert_eq!(revoked_gate.len(), 1);
    assert!(revoked_gate[0].revoked);
    let r = s.rotate_api_key(org, expiring.key_id, 1, &key_row(org, "n", None), &event(org, "a", "x")).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    let r = s.rotate_api_key(org, KeyId::generate(), 1, &key_row(org, "n", None), &event(org, "a", "x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert_eq!(s.key_gate_changes(0).await?.len(), 2);

    // Usage: counts add up per day, last_used_at only rises, unknown keys ignored.
    let k = successor.key_id;
    s.record_key_usage(&[
        KeyUsageDelta { key_id: k, day: "2024-01-01".into(), count: 3, last_used_at: 500 },
        KeyUsageDelta { key_id: k, day: "2024-01-02".into(), count: 1, last_used_at: 900 },
        KeyUsageDelta { key_id: KeyId::generate(), day: "2024-01-02".into(), count: 9, last_used_at: 900 },
    ])
    .await?;
    s.record_key_usage(&[KeyUsageDelta { key_id: k, day: "2024-01-01".into(), count: 2, last_used_at: 100 }]).await?;
    assert_eq!(s.get_api_key(org, k).await?.last_used_at, Some(900));
    let usage = s.key_usage(org, k, "2024-01-01").await?;
    assert_eq!(
        usage,
        vec![UsageDay { day: "2024-01-01".into(), count: 5 }, UsageDay { day: "2024-01-02".into(), count: 1 }]
    );
    assert_eq!(s.key_usage(org, k, "2024-01-02").await?.len(), 1);
    let (org_b, _) = make_org(s, "rb@example.com").await?;
    assert!(matches!(s.key_usage(org_b, k, "2024-01-01").await, Err(StoreError::NotFound)));
    assert_eq!(s.prune_key_usage("2024-01-02").await?, 1);
    assert_eq!(s.key_usage(org, k, "2000-01-01").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn prompts_and_isolation() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _) = make_org(s, "p@example.com").await?;
    let (org_b, _) = make_org(s, "pb@example.com").await?;

    let (greet, v1) =
        make_prompt(s, org, "greeting", &["prod", "email"], "Hello {{name}} from {{ place }} {{place}}").await?;
    let (_, _) = make_prompt(s, org, "farewell_100%", &["email"], "Bye").await?;
    let (other, _) = make_prompt(s, org, "summary", &[], "Summarize").await?;

    let dup = make_prompt(s, org, "greeting", &[], "x").await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m == "a prompt with this name already exists"));
    // Same name in another org is fine.
    let (greet_b, _) = make_prompt(s, org_b, "greeting", &[], "B").await?;

    let by_name = s.get_prompt(org, "greeting").await?;
    let by_id = s.get_prompt(org, &greet.to_string()).await?;
    assert_eq!(by_name, by_id);
    assert_eq!(by_name.prompt.tags, vec!["prod".to_string(), "email".to_string()]);
    assert_eq!(by_name.latest_version, Some(1));
    assert_eq!(by_name.production_version, None);
    let v = s.get_version(org, greet, v1).await?;
    assert_eq!(v.variables, vec!["name".to_string(), "place".to_string()]);
    assert_eq!(v.status, VersionStatus::Draft);
    assert_eq!(v.name, "greeting");
    assert_eq!(v.tags, vec!["prod".to_string(), "email".to_string()]);

    // Org B cannot see org A's prompt by name or id; it sees its own.
    assert_eq!(s.get_prompt(org_b, "greeting").await?.prompt.prompt_id, greet_b);
    assert!(matches!(s.get_prompt(org_b, &greet.to_string()).await, Err(StoreError::NotFound)));
    assert!(matches!(s.get_version(org_b, greet, v1).await, Err(StoreError::NotFound)));
    assert!(s.production_version(org_b, greet).await?.is_none());
    assert!(s.latest_version(org_b, greet).await?.is_none());
    assert!(s
        .list_versions(org_b, greet, &VersionListQuery { page: page(50, None), include_archived: true })
        .await?
        .is_empty());
    assert!(matches!(new_version(s, org_b, greet, Some("x"), None).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.delete_prompt(org_b, greet, &event(org_b, "prompt.deleted", "x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_prompt(
            org_b,
            greet,
            &PromptPatch { description: Some("h".into()), tags: None },
            1,
            &event(org_b, "p", "x")
        )
        .await,
        Err(StoreError::NotFound)
    ));

    // Listing: newest first, paging, tag and text filters.
    let list = |tag: Option<&str>, q: Option<&str>, limit: u32, cursor: Option<String>| PromptListQuery {
        page: page(limit, cursor),
        tag: tag.map(str::to_owned),
        q: q.map(str::to_owned),
    };
    let names = |rows: Vec<PromptSummary>| rows.into_iter().map(|p| p.prompt.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_prompts(org, &list(None, None, 50, None)).await?),
        vec!["summary", "farewell_100%", "greeting"]
    );
    let first = s.list_prompts(org, &list(None, None, 2, None)).await?;
    let next = s.list_prompts(org, &list(None, None, 2, first.last().map(|p| p.prompt.prompt_id.to_string()))).await?;
    assert_eq!(names(next), vec!["greeting"]);
    assert_eq!(
        names(s.list_prompts(org, &list(Some("email"), None, 50, None)).await?),
        vec!["farewell_100%", "greeting"]
    );
    assert_eq!(names(s.list_prompts(org, &list(Some("prod"), None, 50, None)).await?), vec!["greeting"]);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("GREET"), 50, None)).await?), vec!["greeting"]);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("100%"), 50, None)).await?), vec!["farewell_100%"]);
    assert!(s.list_prompts(org, &list(None, Some("%"), 50, None)).await?.len() == 1);
    assert!(s.list_prompts(org, &list(None, Some("_"), 50, None)).await?.len() == 1);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("the summ"), 50, None)).await?), vec!["summary"]);
    let bad = s.list_prompts(org, &list(None, None, 50, Some("garbage".into()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Update description/tags.
    s.update_prompt(
        org,
        other,
        &PromptPatch { description: None, tags: Some(vec!["new".into()]) },
        9000,
        &event(org, "prompt.updated", "x"),
    )
    .await?;
    let p = s.get_prompt(org, "summary").await?;
    assert_eq!(p.prompt.tags, vec!["new".to_string()]);
    assert_eq!(p.prompt.description, "the summary prompt");
    assert_eq!(p.prompt.updated_at, 9000);

    // Delete cascades to versions and history.
    s.promote(
        org,
        other,
        s.latest_version(org, other).await?.map(|v| v.version_id).ok_or("no v")?,
        &promote_req(true, 1),
        &event(org, "p", "x"),
    )
    .await?;
    s.delete_prompt(org, other, &event(org, "prompt.deleted", &other.to_string())).await?;
    assert!(matches!(s.get_prompt(org, "summary").await, Err(StoreError::NotFound)));
    assert!(s.latest_version(org, other).await?.is_none());
    assert!(s.list_promotions(org, other, &page(50, None)).await?.is_empty());
    // The name is free again.
    make_prompt(s, org, "summary", &[], "again").await?;
    Ok(())
}

#[tokio::test]
async fn versions_and_drafts() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _) = make_org(s, "v@example.com").await?;
    let (other_org, _) = make_org(s, "vb@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &["t"], "one {{a}}").await?;
    let (other_pid, other_v1) = make_prompt(s, org, "q", &[], "q").await?;
    let _ = other_org;

    // Numbering: 2, 3, 4…
    let v2 = new_version(s, org, pid, Some("two {{b}}"), None).await?;
    assert_eq!((v2.version, v2.status, v2.variables.clone()), (2, VersionStatus::Draft, vec!["b".to_string()]));
    assert_eq!(v2.prompt_type, "text");
    assert_eq!(v2.metadata, serde_json::json!({}));
    assert_eq!(v2.tags, vec!["t".to_string()]);
    // Copy from v1: content copied.
    let v3 = new_version(s, org, pid, None, Some(v1)).await?;
    assert_eq!((v3.version, v3.content.as_str()), (3, "one {{a}}"));
    assert_eq!(v3.variables, vec!["a".to_string()]);
    // Copy from a version of another prompt: not found, and the number is not consumed.
    assert!(matches!(new_version(s, org, pid, None, Some(other_v1)).await, Err(StoreError::NotFound)));
    let v4 = new_version(s, org, pid, None, None).await?;
    assert_eq!((v4.version, v4.content.as_str()), (4, ""));
    assert_eq!(s.get_prompt(org, "p").await?.latest_version, Some(4));
    assert_eq!(s.get_prompt(org, "p").await?.prompt.updated_at, 3000);
    assert_eq!(s.latest_version(org, pid).await?.map(|v| v.version), Some(4));
    assert_eq!(s.latest_version(org, other_pid).await?.map(|v| v.version), Some(1));

    // Editing a draft recomputes variables.
    let patch = DraftPatch {
        content: Some("Hi {{who}} and {{ x }} {{who}} and {{what}}".into()),
        prompt_type: Some("chat".into()),
        metadata: Some(serde_json::json!({"model": "x"})),
    };
    let e = s.update_draft(org, pid, v2.version_id, &patch, 4000, &event(org, "version.updated", "x")).await?;
    assert_eq!(e.variables, vec!["who".to_string(), "what".to_string()]);
    assert_eq!((e.prompt_type.as_str(), e.updated_at), ("chat", 4000));
    assert_eq!(e.metadata, serde_json::json!({"model": "x"}));
    // Partial patch keeps other fields.
    let e2 = s
        .update_draft(
            org,
            pid,
            v2.version_id,
            &DraftPatch { metadata: Some(serde_json::json!({})), ..Default::default() },
            4100,
            &event(org, "version.updated", "x"),
        )
        .await?;
    assert_eq!(e2.content, e.content);
    assert_eq!(e2.prompt_type, "chat");
    // Bad prompt type: bad request from the CHECK constraint.
    let bad = s
        .update_draft(
            org,
            pid,
            v2.version_id,
            &DraftPatch { prompt_type: Some("image".into()), ..Default::default() },
            1,
            &event(org, "x", "x"),
        )
        .await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Published and archived versions cannot be edited.
    s.promote(org, pid, v2.version_id, &promote_req(true, 5000), &event(org, "version.promoted", "x")).await?;
    let r = s.update_draft(org, pid, v2.version_id, &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    s.set_archived(org, pid, v3.version_id, true, 1, &event(org, "version.archived", "x")).await?;
    let r = s.update_draft(org, pid, v3.version_id, &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let r = s.update_draft(org, pid, VersionId::generate(), &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)));

    // Listing: newest first, archived hidden unless asked, cursor is the number.
    let vq = |include_archived: bool, limit: u32, cursor: Option<String>| VersionListQuery {
        page: page(limit, cursor),
        include_archived,
    };
    let nums = |rows: Vec<VersionRow>| rows.into_iter().map(|v| v.version).collect::<Vec<_>>();
    assert_eq!(nums(s.list_versions(org, pid, &vq(true, 50, None)).await?), vec![4, 3, 2, 1]);
    assert_eq!(nums(s.list_versions(org, pid, &vq(false, 50, None)).await?), vec![4, 2, 1]);
    assert_eq!(nums(s.list_versions(org, pid, &vq(true, 2, Some("3".into()))).await?), vec![2, 1]);
    let bad = s.list_versions(org, pid, &vq(true, 2, Some("v_x".into()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    Ok(())
}

#[tokio::test]
async fn promote_archive_and_history() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _) = make_org(s, "pr@example.com").await?;
    let (org_b, _) = make_org(s, "prb@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?.version_id;
    let v3 = new_version(s, org, pid, Some("three"), None).await?.version_id;

    assert!(s.production_version(org, pid).await?.is_none());
    let p1 = s.promote(org, pid, v1, &promote_req(true, 100), &event(org, "version.promoted", "1")).await?;
    assert_eq!(
        (p1.status, p1.promoted_at, p1.promoted_by.as_deref()),
        (VersionStatus::Published, Some(100), Some("usr_admin"))
    );

    // Promoting again: unchanged, no history row.
    let again = s.promote(org, pid, v1, &promote_req(true, 200), &event(org, "version.promoted", "1b")).await?;
    assert_eq!(again, p1);
    assert_eq!(s.list_promotions(org, pid, &page(50, None)).await?.len(), 1);

    // archive_previous = false: v1 back to draft.
    s.promote(org, pid, v2, &promote_req(false, 300), &event(org, "version.promoted", "2")).await?;
    assert_eq!(s.get_version(org, pid, v1).await?.status, VersionStatus::Draft);
    // archive_previous = true: v2 archived.
    s.promote(org, pid, v3, &promote_req(true, 400), &event(org, "version.promoted", "3")).await?;
    assert_eq!(s.get_version(org, pid, v2).await?.status, VersionStatus::Archived);
    let prod = s.production_version(org, pid).await?.ok_or("no production version")?;
    assert_eq!(prod.version_id, v3);
    let summary = s.get_prompt(org, "p").await?;
    assert_eq!((summary.production_version, summary.production_version_id), (Some(3), Some(v3)));
    assert_eq!(summary.prompt.updated_at, 400);

    // Roll back to the archived v2 directly.
    s.promote(org, pid, v2, &promote_req(true, 500), &event(org, "version.promoted", "4")).await?;
    assert_eq!(s.get_version(org, pid, v3).await?.status, VersionStatus::Archived);

    // History newest first, with previous versions; paging by promotion id.
    let hist = s.list_promotions(org, pid, &page(50, None)).await?;
    let summary: Vec<(i64, Option<i64>)> = hist.iter().map(|h| (h.version, h.previous_version)).collect();
    assert_eq!(summary, vec![(2, Some(3)), (3, Some(2)), (2, Some(1)), (1, None)]);
    assert_eq!(hist[0].previous_version_id, Some(v3));
    assert_eq!(hist[0].notes.as_deref(), Some("ship it"));
    assert_eq!(hist[0].promoted_by, "usr_admin");
    let tail = s.list_promotions(org, pid, &page(50, Some(hist[1].promotion_id.clone()))).await?;
    assert_eq!(tail, hist[2..].to_vec());
    assert!(s.list_promotions(org_b, pid, &page(50, None)).await?.is_empty());
    assert!(matches!(
        s.list_promotions(org, pid, &page(50, Some("x' OR '1".into()))).await,
        Err(ref e) if is_domain(e, ErrorCode::BadRequest)
    ));

    // Org B cannot promote A's versions; unknown version is not found.
    assert!(matches!(
        s.promote(org_b, pid, v1, &promote_req(true, 1), &event(org_b, "x", "x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.promote(org, pid, VersionId::generate(), &promote_req(true, 1), &event(org, "x", "x")).await,
        Err(StoreError::NotFound)
    ));

    // Archive rules: published → conflict both ways; draft ↔ archived.
    let r = s.set_archived(org, pid, v2, true, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let r = s.set_archived(org, pid, v2, false, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let a = s.set_archived(org, pid, v1, true, 600, &event(org, "version.archived", "x")).await?;
    assert_eq!((a.status, a.updated_at), (VersionStatus::Archived, 600));
    let u = s.set_archived(org, pid, v3, false, 700, &event(org, "version.unarchived", "x")).await?;
    assert_eq!(u.status, VersionStatus::Draft);
    assert!(matches!(
        s.set_archived(org_b, pid, v3, true, 1, &event(org_b, "x", "x")).await,
        Err(StoreError::NotFound)
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_promotes_leave_one_published() -> TestResult {
    let f = fixture().await?;
    let s = f.store.clone();
    let (org, _) = make_org(&s, "c@example.com").await?;
    let (pid, v1) = make_prompt(&s, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for i in 0..49 {
        versions.push(new_version(&s, org, pid, Some(&format!("v{}", i + 2)), None).await?.version_id);
    }
    let mut tasks = Vec::new();
    for (i, v) in versions.iter().copied().enumerate() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let req = promote_req(i % 2 == 0, 1000 + i as i64);
            s.promote(org, pid, v, &req, &event(org, "version.promoted", &v.to_string())).await
        }));
    }
    for t in tasks {
        let row = t.await??;
        assert_eq!(row.status, VersionStatus::Published);
    }
    let all = s.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.len(), 50);
    assert_eq!(all.iter().filter(|v| v.status == VersionStatus::Published).count(), 1);
    let hist = s.list_promotions(org, pid, &page(200, None)).await?;
    assert_eq!(hist.len(), 50);
    assert_eq!(hist.iter().filter(|h| h.previous_version.is_none()).count(), 1);
    Ok(())
}

#[tokio::test]
async fn signing_keys_rotate() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    assert!(s.list_signing_keys().await?.is_empty());
    let mk = |kid: &str, at: i64| SigningKeyRow {
        kid: kid.into(),
        public_key: vec![1; 32],
        private_key: vec![2; 60],
        encrypted: true,
        created_at: at,
        retired_at: None,
    };
    s.insert_signing_key(&mk("k1", 100)).await?;
    s.insert_signing_key(&mk("k2", 200)).await?;
    s.insert_signing_key(&mk("k3", 300)).await?;
    let keys = s.list_signing_keys().await?;
    let view: Vec<(&str, Option<i64>)> = keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect();
    assert_eq!(view, vec![("k3", None), ("k2", Some(300)), ("k1", Some(200))]);
    assert!(keys[0].encrypted);
    assert_eq!(keys[0].private_key, vec![2; 60]);
    assert!(matches!(s.insert_signing_key(&mk("k3", 400)).await, Err(StoreError::Conflict(_))));
    // The failed insert rolled back: k3 is still the active one.
    assert_eq!(s.list_signing_keys().await?.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    assert_eq!(s.delete_signing_keys_retired_before(250).await?, 1);
    let left: Vec<String> = s.list_signing_keys().await?.into_iter().map(|k| k.kid).collect();
    assert_eq!(left, vec!["k3".to_string(), "k2".to_string()]);
    Ok(())
}

#[tokio::test]
async fn audit_rows_are_written_per_org() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, key) = make_org(s, "au@example.com").await?;
    let (org_b, _) = make_org(s, "aub@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "x").await?;
    s.promote(org, pid, v1, &promote_req(true, 1), &event(org, "version.promoted", &v1.to_string())).await?;
    s.revoke_api_key(org, key.key_id, "usr_a", 5, &event(org, "api_key.revoked", &key.key_id.to_string())).await?;

    let rows = s.list_audit(org, &audit_page(50, None)).await?;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["api_key.revoked", "version.promoted", "prompt.created", "api_key.created", "org.created"]
    );
    assert_eq!(rows[1].target, v1.to_string());
    assert_eq!(rows[0].details, serde_json::json!({"n": 1}));
    assert!(rows.iter().all(|r| r.org_id == org));
    // Paging.
    let next = s.list_audit(org, &audit_page(2, Some(rows[1].event_id.clone()))).await?;
    assert_eq!(next, rows[2..4].to_vec());
    // Org B only sees its own two rows.
    assert_eq!(s.list_audit(org_b, &audit_page(50, None)).await?.len(), 2);

    // A failed transaction leaves no audit row.
    let before = s.list_audit(org, &audit_page(200, None)).await?.len();
    let _ = make_prompt(s, org, "p", &[], "dup").await;
    assert_eq!(s.list_audit(org, &audit_page(200, None)).await?.len(), before);
    Ok(())
}

#[tokio::test]
async fn reopen_keeps_data_and_parallel_stores_share_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let a = SqliteStore::open(&url).await?;
    let (org, _) = make_org(&a, "re@example.com").await?;
    // A second store on the same file (another process, in effect).
    let b = SqliteStore::open(&url).await?;
    make_prompt(&b, org, "shared", &[], "x").await?;
    assert_eq!(a.get_prompt(org, "shared").await?.prompt.name, "shared");
    drop(a);
    drop(b);
    let c = scope_store::open(&url).await?;
    assert!(c.is_initialized().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_serialize_promotes() -> TestResult {
    // Two stores stand for two processes (server and CLI): their write pools
    // contend for the file lock, and BEGIN IMMEDIATE + the busy timeout make
    // them wait for each other instead of failing.
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let a = Arc::new(SqliteStore::open(&url).await?);
    let b = Arc::new(SqliteStore::open(&url).await?);
    let (org, _) = make_org(&a, "two@example.com").await?;
    let (pid, v1) = make_prompt(&a, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for _ in 0..19 {
        versions.push(new_version(&b, org, pid, Some("v"), None).await?.version_id);
    }
    let mut tasks = Vec::new();
    for (i, v) in versions.iter().copied().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.promote(org, pid, v, &promote_req(true, i as i64), &event(org, "version.promoted", "x")).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let all = a.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.len(), 20);
    assert_eq!(all.iter().filter(|v| v.status == VersionStatus::Published).count(), 1);
    assert_eq!(b.list_promotions(org, pid, &page(200, None)).await?.len(), 20);
    Ok(())
}

#[tokio::test]
async fn bulk_import_keys_and_prompts() -> TestResult {
    let f = fixture().await?;
    let store = &f.store;
    let (org, _) = make_org(store, "bulk@example.com").await?;
    let (other, _) = make_org(store, "bulk-other@example.com").await?;

    // 1 200 keys: more than one INSERT batch; two of them carry a gate.
    let mut keys: Vec<ApiKeyRow> = (0..1200).map(|i| key_row(org, &format!("k{i}"), None)).collect();
    keys[10].expires_at = Some(5_000);
    keys[20].revoked_at = Some(4_000);
    keys[20].revoked_by = Some("system".into());
    store.import_api_keys(&keys).await?;
    store.import_api_keys(&[]).await?;
    let found = store.find_api_key(keys[700].key_id).await?.ok_or("imported key missing")?;
    assert_eq!(found, keys[700]);
    assert!(matches!(store.get_api_key(other, keys[700].key_id).await, Err(StoreError::NotFound)));
    let gated: Vec<KeyId> = store.key_gate_changes(0).await?.into_iter().map(|g| g.key_id).collect();
    assert!(gated.contains(&keys[10].key_id) && gated.contains(&keys[20].key_id));
    // A duplicate id conflicts and the whole import rolls back.
    let dup = vec![key_row(org, "new", None), keys[0].clone()];
    assert!(matches!(store.import_api_keys(&dup).await, Err(StoreError::Conflict(_))));
    assert!(store.find_api_key(dup[0].key_id).await?.is_none());

    // Prompts with a published version each.
    let mut prompts = Vec::new();
    for i in 0..600 {
        let pid = prompt_id();
        let prompt = PromptRow {
            prompt_id: pid,
            org_id: org,
            name: format!("bulk-{i}"),
            description: String::new(),
            tags: vec!["bulk".into()],
            created_at: 2000,
            updated_at: 2000,
            created_by: "system".into(),
        };
        let version = |n: i64, status: VersionStatus| VersionRow {
            version_id: version_id(),
            prompt_id: pid,
            org_id: org,
            name: prompt.name.clone(),
            version: n,
            content: format!("Hello {{{{name}}}}, v{n} of {i}"),
            variables: vec![],
            status,
            prompt_type: "text".into(),
            metadata: serde_json::json!({"i": i}),
            tags: vec![],
            created_at: 2000,
            updated_at: 2000,
            created_by: "system".into(),
            promoted_at: (status == VersionStatus::Published).then_some(2500),
            promoted_by: (status == VersionStatus::Published).then(|| "system".to_owned()),
        };
        let versions = vec![version(1, VersionStatus::Archived), version(2, VersionStatus::Published)];
        prompts.push((prompt, versions));
    }
    store.import_prompts(&prompts).await?;
    let (p, vs) = &prompts[599];
    let summary = store.get_prompt(org, &p.name).await?;
    assert_eq!(summary.production_version, Some(2));
    assert_eq!(summary.latest_version, Some(2));
    let prod = store.production_version(org, p.prompt_id).await?.ok_or("no production version")?;
    assert_eq!(prod.version_id, vs[1].version_id);
    assert_eq!(prod.variables, vec!["name".to_owned()]);
    assert_eq!(prod.tags, vec!["bulk".to_owned()]);
    assert!(matches!(store.get_prompt(other, &p.name).await, Err(StoreError::NotFound)));
    // Numbers continue after the imported ones.
    let v3 = new_version(store, org, p.prompt_id, Some("next"), None).await?;
    assert_eq!(v3.version, 3);

    // Two published versions of one prompt are refused.
    let (mut p2, mut vs2) = prompts[0].clone();
    p2.prompt_id = prompt_id();
    p2.name = "two-published".into();
    for v in &mut vs2 {
        v.prompt_id = p2.prompt_id;
        v.version_id = version_id();
        v.status = VersionStatus::Published;
    }
    assert!(matches!(store.import_prompts(&[(p2, vs2)]).await, Err(StoreError::Domain(_))));
    Ok(())
}

// ---- users, invitations, sessions ---------------------------------------------------

/// An active user (with a password) or, with `password_hash = ""`, an invited one.
fn user_row(org: OrgId, email: &str, role: Role, password_hash: &str) -> UserRow {
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

fn invitation(user: &UserRow, token: u8, expires_at: i64) -> InvitationRow {
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

fn session_row(user: &UserRow, digest: u8, created_at: i64, expires_at: i64) -> SessionRow {
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
async fn add_user(store: &SqliteStore, user: &UserRow, invitation: Option<&InvitationRow>) -> Result<(), StoreError> {
    store.insert_user(user, invitation, &event(user.org_id, "user.created", &user.user_id.to_string())).await
}

async fn sign_in(store: &SqliteStore, session: &SessionRow) -> Result<(), StoreError> {
    store.create_session(session, &event(session.org_id, "user.signed_in", &session.user_id.to_string())).await
}

async fn audit_actions(store: &SqliteStore, org: OrgId) -> Result<Vec<String>, StoreError> {
    Ok(store.list_audit(org, &audit_page(200, None)).await?.into_iter().map(|r| r.action).collect())
}

#[tokio::test]
async fn users_list_newest_first_and_emails_are_unique() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _, admin) = make_org_with_admin(s, "admin@example.com").await?;
    let (org_b, _) = make_org(s, "admin-b@example.com").await?;

    // The first admin is stored with the new columns.
    let stored = s.get_user(org, admin.user_id).await?;
    assert_eq!(stored, admin);
    assert!(stored.must_change_password);
    assert_eq!(stored.status(), "active");

    let editor = user_row(org, "editor@example.com", Role::Editor, "$argon2id$e");
    let viewer = user_row(org, "viewer@example.com", Role::Viewer, "$argon2id$v");
    let invited = user_row(org, "invited@example.com", Role::Editor, "");
    add_user(s, &editor, None).await?;
    add_user(s, &viewer, None).await?;
    add_user(s, &invited, Some(&invitation(&invited, 1, 90_000))).await?;
    assert_eq!(s.get_user(org, invited.user_id).await?.status(), "invited");

    // Newest first, two at a time, following the cursor.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let rows = s.list_users(org, &page(2, cursor.clone())).await?;
        if rows.is_empty() {
            break;
        }
        cursor = rows.last().map(|u| u.user_id.to_string());
        seen.extend(rows.into_iter().map(|u| u.user_id));
    }
    assert_eq!(seen, vec![invited.user_id, viewer.user_id, editor.user_id, admin.user_id]);
    assert_eq!(s.list_users(org, &page(50, Some(viewer.user_id.to_string()))).await?, vec![editor.clone(), admin]);
    let bad = s.list_users(org, &page(50, Some(KeyId::generate().to_string()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    assert_eq!(s.list_users(org_b, &page(50, None)).await?.len(), 1);

    // Sign-in lookup across the deployment, by lower-cased e-mail.
    assert_eq!(s.find_user_by_email("editor@example.com").await?, Some(editor.clone()));
    assert_eq!(s.find_user_by_email("Editor@Example.com").await?, Some(editor.clone()));
    assert_eq!(s.find_user_by_email("admin-b@example.com").await?.map(|u| u.org_id), Some(org_b));
    assert_eq!(s.find_user_by_email("nobody@example.com").await?, None);

    // The same e-mail again, in this org or another: a conflict, and nothing
    // of the failed insert (user, invitation, audit row) is left.
    let audit_before = audit_actions(s, org_b).await?.len();
    let dup = user_row(org_b, "editor@example.com", Role::Viewer, "");
    let r = add_user(s, &dup, Some(&invitation(&dup, 2, 90_000))).await;
    assert!(matches!(r, Err(StoreError::Conflict(ref m)) if m == "a user with this email already exists"));
    assert!(matches!(s.get_user(org_b, dup.user_id).await, Err(StoreError::NotFound)));
    assert!(s.get_invitation(&[2; 32]).await?.is_none());
    assert_eq!(audit_actions(s, org_b).await?.len(), audit_before);
    Ok(())
}

#[tokio::test]
async fn invitation_is_accepted_once_and_never_after_expiry() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _) = make_org(s, "inv-admin@example.com").await?;
    let invited = user_row(org, "new@example.com", Role::Editor, "");
    let inv = invitation(&invited, 3, 10_000);
    add_user(s, &invited, Some(&inv)).await?;

    let (found, user) = s.get_invitation(&[3; 32]).await?.ok_or("invitation missing")?;
    assert_eq!(found, inv);
    assert_eq!(user, invited);
    assert!(s.get_invitation(&[4; 32]).await?.is_none());
    // Nobody can sign in as an invited user.
    assert_eq!(s.find_user_by_email("new@example.com").await?.map(|u| u.password_hash), Some(String::new()));

    // At its expiry instant it is already expired.
    let ev = event(org, "user.accepted", &invited.user_id.to_string());
    let r = s.accept_invitation(&[3; 32], "$argon2id$new", 10_000, &ev).await;
    assert!(matches!(r, Err(StoreError::NotFound)));

    let accepted = s.accept_invitation(&[3; 32], "$argon2id$new", 9_000, &ev).await?;
    assert_eq!(accepted.password_hash, "$argon2id$new");
    assert!(!accepted.must_change_password);
    assert_eq!(accepted.status(), "active");
    assert_eq!(s.get_user(org, invited.user_id).await?, accepted);
    let (after, _) = s.get_invitation(&[3; 32]).await?.ok_or("invitation missing")?;
    assert_eq!(after.accepted_at, Some(9_000));

    // Once only: a second acceptance changes nothing and writes no audit row.
    let audit_before = audit_actions(s, org).await?;
    assert_eq!(audit_before.iter().filter(|a| *a == "user.accepted").count(), 1);
    let again = s.accept_invitation(&[3; 32], "$argon2id$evil", 9_500, &event(org, "user.accepted", "x")).await;
    assert!(matches!(again, Err(StoreError::NotFound)));
    assert_eq!(s.get_user(org, invited.user_id).await?.password_hash, "$argon2id$new");
    assert_eq!(audit_actions(s, org).await?, audit_before);

    // Unknown token.
    let unknown = s.accept_invitation(&[9; 32], "$argon2id$x", 1, &event(org, "user.accepted", "x")).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));

    // An expired one stays unusable, and its user stays invited.
    let late = user_row(org, "late@example.com", Role::Viewer, "");
    add_user(s, &late, Some(&invitation(&late, 5, 2_000))).await?;
    let r = s.accept_invitation(&[5; 32], "$argon2id$late", 3_000, &event(org, "user.accepted", "x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert_eq!(s.get_user(org, late.user_id).await?.status(), "invited");
    Ok(())
}

#[tokio::test]
async fn last_active_admin_cannot_be_demoted_or_removed() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _, first) = make_org_with_admin(s, "first@example.com").await?;
    let ev = |action: &str| event(org, action, "x");

    let demote = s.update_user_role(org, first.user_id, Role::Editor, &ev("user.role_changed")).await;
    assert!(matches!(demote, Err(StoreError::Domain(ref d))
        if d.code == ErrorCode::Conflict && d.message == "the last admin of an organization cannot be demoted"));
    let remove = s.delete_user(org, first.user_id, &ev("user.removed")).await;
    assert!(matches!(remove, Err(StoreError::Domain(ref d))
        if d.code == ErrorCode::Conflict && d.message == "the last admin of an organization cannot be removed"));
    assert_eq!(s.get_user(org, first.user_id).await?.role, Role::Admin);
    assert!(!audit_actions(s, org).await?.iter().any(|a| a.starts_with("user.")));

    // An invited admin (no password yet) does not count.
    let invited = user_row(org, "invited-admin@example.com", Role::Admin, "");
    add_user(s, &invited, Some(&invitation(&invited, 6, 90_000))).await?;
    let demote = s.update_user_role(org, first.user_id, Role::Viewer, &ev("user.role_changed")).await;
    assert!(matches!(demote, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    assert!(matches!(s.delete_user(org, first.user_id, &ev("user.removed")).await, Err(ref e)
        if is_domain(e, ErrorCode::Conflict)));
    // The invited admin itself can be demoted or removed freely.
    let r = s.update_user_role(org, invited.user_id, Role::Editor, &ev("user.role_changed")).await?;
    assert_eq!(r.role, Role::Editor);
    s.update_user_role(org, invited.user_id, Role::Admin, &ev("user.role_changed")).await?;

    // Once it has accepted, it is a second active admin: the first may go.
    s.accept_invitation(&[6; 32], "$argon2id$second", 1_000, &ev("user.accepted")).await?;
    let demoted = s.update_user_role(org, first.user_id, Role::Editor, &ev("user.role_changed")).await?;
    assert_eq!(demoted.role, Role::Editor);
    assert_eq!(s.get_user(org, first.user_id).await?, demoted);
    // Now the second is the last one.
    let r = s.update_user_role(org, invited.user_id, Role::Viewer, &ev("user.role_changed")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    // Promote the first back, then the second can be removed.
    s.update_user_role(org, first.user_id, Role::Admin, &ev("user.role_changed")).await?;
    s.delete_user(org, invited.user_id, &ev("user.removed")).await?;
    assert!(matches!(s.get_user(org, invited.user_id).await, Err(StoreError::NotFound)));
    assert!(s.get_invitation(&[6; 32]).await?.is_none());
    assert!(matches!(s.delete_user(org, invited.user_id, &ev("user.removed")).await, Err(StoreError::NotFound)));

    // Unchanged role: the row comes back, nothing is audited.
    let before = audit_actions(s, org).await?;
    assert_eq!(before.iter().filter(|a| *a == "user.role_changed").count(), 4);
    let same = s.update_user_role(org, first.user_id, Role::Admin, &ev("user.role_changed")).await?;
    assert_eq!(same.role, Role::Admin);
    assert_eq!(audit_actions(s, org).await?, before);

    // Non-admins are demoted and removed without the check.
    let editor = user_row(org, "ed@example.com", Role::Editor, "$argon2id$e");
    add_user(s, &editor, None).await?;
    assert_eq!(
        s.update_user_role(org, editor.user_id, Role::Viewer, &ev("user.role_changed")).await?.role,
        Role::Viewer
    );
    s.delete_user(org, editor.user_id, &ev("user.removed")).await?;
    Ok(())
}

#[tokio::test]
async fn sessions_follow_the_user_and_end_with_it() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _, admin) = make_org_with_admin(s, "sess-admin@example.com").await?;
    let user = user_row(org, "sess@example.com", Role::Editor, "$argon2id$u");
    add_user(s, &user, None).await?;

    let session = session_row(&user, 10, 7_000, 100_000);
    sign_in(s, &session).await?;
    assert_eq!(s.get_user(org, user.user_id).await?.last_sign_in_at, Some(7_000));
    let (found, found_user) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(found, session);
    assert_eq!(found_user.role, Role::Editor);
    assert!(s.get_session(&[11; 32]).await?.is_none());
    // A session for a user of another org (or no user) is refused.
    let stray = SessionRow { org_id: OrgId::generate(), ..session_row(&user, 12, 1, 2) };
    assert!(matches!(sign_in(s, &stray).await, Err(StoreError::NotFound)));
    assert!(s.get_session(&[12; 32]).await?.is_none());

    // A role change made after sign-in shows on the next lookup.
    s.update_user_role(org, user.user_id, Role::Viewer, &event(org, "user.role_changed", "x")).await?;
    let (_, now_user) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(now_user.role, Role::Viewer);

    // Touch moves last_seen_at forward only.
    s.touch_session(&[10; 32], 8_000).await?;
    s.touch_session(&[10; 32], 7_500).await?;
    s.touch_session(&[11; 32], 8_000).await?;
    let (touched, _) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(touched.last_seen_at, 8_000);

    // Sign-out: idempotent, audited once.
    s.delete_session(&[10; 32], Some(&event(org, "user.signed_out", "x"))).await?;
    assert!(s.get_session(&[10; 32]).await?.is_none());
    s.delete_session(&[10; 32], Some(&event(org, "user.signed_out", "x"))).await?;
    s.delete_session(&[10; 32], None).await?;
    let actions = audit_actions(s, org).await?;
    assert_eq!(actions.iter().filter(|a| *a == "user.signed_out").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "user.signed_in").count(), 1);

    // Removing a user ends their sessions.
    sign_in(s, &session_row(&user, 13, 9_000, 100_000)).await?;
    sign_in(s, &session_row(&user, 14, 9_100, 100_000)).await?;
    sign_in(s, &session_row(&admin, 15, 9_200, 100_000)).await?;
    s.delete_user(org, user.user_id, &event(org, "user.removed", "x")).await?;
    assert!(s.get_session(&[13; 32]).await?.is_none());
    assert!(s.get_session(&[14; 32]).await?.is_none());
    assert!(s.get_session(&[15; 32]).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn set_password_ends_every_other_session() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _, admin) = make_org_with_admin(s, "pw-admin@example.com").await?;
    let user = user_row(org, "pw@example.com", Role::Editor, "$argon2id$old");
    add_user(s, &user, None).await?;
    for d in [20, 21, 22] {
        sign_in(s, &session_row(&user, d, 1_000, 100_000)).await?;
    }
    sign_in(s, &session_row(&admin, 23, 1_000, 100_000)).await?;

    // Changed from session 21: it stays, the user's others end.
    s.set_user_password(org, user.user_id, "$argon2id$new", false, Some(&[21; 32]), &event(org, "user.password", "x"))
        .await?;
    assert!(s.get_session(&[20; 32]).await?.is_none());
    assert!(s.get_session(&[22; 32]).await?.is_none());
    let (_, u) = s.get_session(&[21; 32]).await?.ok_or("kept session missing")?;
    assert_eq!((u.password_hash.as_str(), u.must_change_password), ("$argon2id$new", false));
    // Another user's session is untouched.
    assert!(s.get_session(&[23; 32]).await?.is_some());

    // Reset by an admin, with a one-time password: every session ends.
    s.set_user_password(org, user.user_id, "$argon2id$reset", true, None, &event(org, "user.password", "x")).await?;
    assert!(s.get_session(&[21; 32]).await?.is_none());
    let reset = s.get_user(org, user.user_id).await?;
    assert_eq!((reset.password_hash.as_str(), reset.must_change_password), ("$argon2id$reset", true));
    assert!(s.get_session(&[23; 32]).await?.is_some());
    assert_eq!(audit_actions(s, org).await?.iter().filter(|a| *a == "user.password").count(), 2);

    let unknown = s.set_user_password(org, user_id(), "$argon2id$x", false, None, &event(org, "x", "x")).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));
    Ok(())
}

#[tokio::test]
async fn users_are_scoped_by_org() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org_a, _) = make_org(s, "scope-a@example.com").await?;
    let (org_b, _) = make_org(s, "scope-b@example.com").await?;
    let user = user_row(org_a, "member-a@example.com", Role::Admin, "$argon2id$a");
    add_user(s, &user, None).await?;
    sign_in(s, &session_row(&user, 30, 1_000, 100_000)).await?;
    let ev = event(org_b, "user.x", &user.user_id.to_string());

    assert!(matches!(s.get_user(org_b, user.user_id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.update_user_role(org_b, user.user_id, Role::Viewer, &ev).await, Err(StoreError::NotFound)));
    assert!(matches!(s.delete_user(org_b, user.user_id, &ev).await, Err(StoreError::NotFound)));
    let r = s.set_user_password(org_b, user.user_id, "$argon2id$b", false, None, &ev).await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert!(!s.list_users(org_b, &page(50, None)).await?.iter().any(|u| u.user_id == user.user_id));

    // Nothing changed in org A, and org B's log holds none of the attempts.
    let now = s.get_user(org_a, user.user_id).await?;
    assert_eq!((now.role, now.password_hash.as_str()), (Role::Admin, "$argon2id$a"));
    assert!(s.get_session(&[30; 32]).await?.is_some());
    assert!(!audit_actions(s, org_b).await?.iter().any(|a| a == "user.x"));

    // An invitation must be for the user it is inserted with.
    let other = user_row(org_b, "member-b@example.com", Role::Viewer, "");
    let wrong = invitation(&user, 31, 90_000);
    assert!(matches!(add_user(s, &other, Some(&wrong)).await, Err(StoreError::Internal(_))));
    assert!(s.find_user_by_email("member-b@example.com").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn prune_sessions_drops_expired_idle_sessions_and_stale_invitations() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _, admin) = make_org_with_admin(s, "prune@example.com").await?;
    let now = 50_000;
    let idle_before = 40_000;

    let expired = session_row(&admin, 40, 45_000, now - 1);
    let idle = session_row(&admin, 41, idle_before - 1, 100_000);
    let live = session_row(&admin, 42, idle_before, now);
    for sess in [&expired, &idle, &live] {
        sign_in(s, sess).await?;
    }
    // Seen recently, so no longer idle.
    let revived = session_row(&admin, 43, 1_000, 100_000);
    sign_in(s, &revived).await?;
    s.touch_session(&[43; 32], 45_000).await?;

    let stale = user_row(org, "stale@example.com", Role::Viewer, "");
    let pending = user_row(org, "pending@example.com", Role::Viewer, "");
    let accepted = user_row(org, "accepted@example.com", Role::Viewer, "");
    add_user(s, &stale, Some(&invitation(&stale, 50, now - 1))).await?;
    add_user(s, &pending, Some(&invitation(&pending, 51, now))).await?;
    add_user(s, &accepted, Some(&invitation(&accepted, 52, 30_000))).await?;
    s.accept_invitation(&[52; 32], "$argon2id$acc", 20_000, &event(org, "user.accepted", "x")).await?;

    assert_eq!(s.prune_sessions(now, idle_before).await?, 3);
    assert!(s.get_session(&[40; 32]).await?.is_none());
    assert!(s.get_session(&[41; 32]).await?.is_none());
    assert!(s.get_session(&[42; 32]).await?.is_some());
    assert!(s.get_session(&[43; 32]).await?.is_some());
    assert!(s.get_invitation(&[50; 32]).await?.is_none());
    assert!(s.get_invitation(&[51; 32]).await?.is_some());
    // Accepted invitations are kept, expired or not.
    assert!(s.get_invitation(&[52; 32]).await?.is_some());
    // The user of a pruned invitation stays, as invited.
    assert_eq!(s.get_user(org, stale.user_id).await?.status(), "invited");
    assert_eq!(s.prune_sessions(now, idle_before).await?, 0);
    Ok(())
}

// ---- the audit log ----------------------------------------------------------------------

fn audit_at(org: OrgId, actor: &str, action: &str, target: &str, at: i64) -> AuditRow {
    AuditRow { actor: actor.into(), at, ..event(org, action, target) }
}

#[tokio::test]
async fn audit_filters_combine_and_page() -> TestResult {
    let f = fixture().await?;
    let s = &*f.store;
    let (org, _) = make_org(s, "audit-f@example.com").await?;
    let (org_b, _) = make_org(s, "audit-fb@example.com").await?;
    let rows = [
        audit_at(org, "usr_a", "user.created", "usr_x", 100),
        audit_at(org, "usr_a", "user.role_changed", "usr_x", 200),
        audit_at(org, "key_k", "api_key.created", "key_1", 300),
        audit_at(org, "usr_b", "user.signed_in", "usr_b", 400),
        audit_at(org, "usr_a", "user.removed", "usr_x", 500),
        audit_at(org, "usr_a", "users.odd", "usr_y", 600),
        audit_at(org, "usr_a", "User.created", "usr_y", 700),
        audit_at(org_b, "usr_a", "user.created", "usr_x", 300),
    ];
    for r in &rows {
        s.insert_audit(r).await?;
    }
    let ids = |v: Vec<AuditRow>| v.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    let expect = |idx: &[usize]| idx.iter().map(|&i| rows[i].event_id.clone()).collect::<Vec<_>>();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = audit_page(50, None);
        f(&mut q);
        q
    };

    // insert_audit stored the row as given.
    let all = s.list_audit(org, &q(|_| {})).await?;
    assert_eq!(all[0], rows[6]);
    assert_eq!(all.len(), 7 + 2); // plus org.created and api_key.created of make_org

    assert_eq!(ids(s.list_audit(org, &q(|q| q.actor = Some("usr_a".into()))).await?), expect(&[6, 5, 4, 1, 0]));
    // Exact action.
    assert_eq!(ids(s.list_audit(org, &q(|q| q.action = Some("user.created".into()))).await?), expect(&[0]));
    assert!(s.list_audit(org, &q(|q| q.action = Some("user".into()))).await?.is_empty());
    // Prefix: `user.` matches neither `users.odd` nor `User.created`.
    assert_eq!(ids(s.list_audit(org, &q(|q| q.action = Some("user.".into()))).await?), expect(&[4, 3, 1, 0]));
    assert_eq!(ids(s.list_audit(org, &q(|q| q.action = Some("api_key.".into()))).await?).len(), 2);
    // A LIKE wildcard is no wildcard.
    assert!(s.list_audit(org, &q(|q| q.action = Some("user%".into()))).await?.is_empty());
    assert!(s.list_audit(org, &q(|q| q.action = Some("_ser.".into()))).await?.is_empty());
    assert_eq!(ids(s.list_audit(org, &q(|q| q.target = Some("usr_x".into()))).await?), expect(&[4, 1, 0]));
    // Time range: since inclusive, until exclusive.
    assert_eq!(ids(s.list_audit(org, &q(|q| q.since_ms = Some(500))).await?), expect(&[6, 5, 4]));
    assert_eq!(ids(s.list_audit(org, &q(|q| q.until_ms = Some(200))).await?).len(), 1 + 2);
    let range = q(|q| {
        q.since_ms = Some(200);
        q.until_ms = Some(500);
    });
    assert_eq!(ids(s.list_audit(org, &range).await?), expect(&[3, 2, 1]));
    // Combined.
    let combined = q(|q| {
        q.actor = Some("usr_a".into());
        q.action = Some("user.".into());
        q.target = Some("usr_x".into());
        q.since_ms = Some(150);
        q.until_ms = Some(600);
    });
    assert_eq!(ids(s.list_audit(org, &combined).await?), expect(&[4, 1]));
    // Empty values filter nothing.
    let empty = q(|q| {
        q.actor = Some(String::new());
        q.action = Some(String::new());
        q.target = Some(String::new());
    });
    assert_eq!(s.list_audit(org, &empty).await?.len(), 9);
    // Org B sees only its own row through the same filter.
    assert_eq!(ids(s.list_audit(org_b, &q(|q| q.actor = Some("usr_a".into()))).await?), expect(&[7]));

    // Pages of a filtered list, following the cursor.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let mut page_q = q(|q| q.actor = Some("usr_a".into()));
        page_q.page = page(2, cursor.clone());
        let got = s.list_audit(org, &page_q).await?;
        if got.is_empty() {
            break;
        }
        cursor = got.last().map(|r| r.event_id.clone());
        seen.extend(ids(got));
    }
    assert_eq!(seen, expect(&[6, 5, 4, 1, 0]));
    let bad = s.list_audit(org, &audit_page(2, Some("usr_01".into()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    Ok(())
}
