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
    let org = OrgId::generate();
    let key = key_row(org, "bootstrap", None);
    let user = UserRow {
        user_id: UserId::generate(),
        org_id: org,
        email: email.into(),
        password_hash: "$argon2id$stub".into(),
        role: Role::Admin,
        created_at: 1000,
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
    Ok((org, key))
}

fn page(limit: u32, cursor: Option<String>) -> PageQuery {
    PageQuery { limit, cursor }
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
    let audit_before = s.list_audit(org, &page(200, None)).await?.len();
    let r2 = s
        .revoke_api_key(org, revoked, "usr_other", now + 5, &event(org, "api_key.revoked", &revoked.to_string()))
        .await?;
    assert_eq!(r2, r);
    assert_eq!(s.list_audit(org, &page(200, None)).await?.len(), audit_before);

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

    let rows = s.list_audit(org, &page(50, None)).await?;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["api_key.revoked", "version.promoted", "prompt.created", "api_key.created", "org.created"]
    );
    assert_eq!(rows[1].target, v1.to_string());
    assert_eq!(rows[0].details, serde_json::json!({"n": 1}));
    assert!(rows.iter().all(|r| r.org_id == org));
    // Paging.
    let next = s.list_audit(org, &page(2, Some(rows[1].event_id.clone()))).await?;
    assert_eq!(next, rows[2..4].to_vec());
    // Org B only sees its own two rows.
    assert_eq!(s.list_audit(org_b, &page(50, None)).await?.len(), 2);

    // A failed transaction leaves no audit row.
    let before = s.list_audit(org, &page(200, None)).await?.len();
    let _ = make_prompt(s, org, "p", &[], "dup").await;
    assert_eq!(s.list_audit(org, &page(200, None)).await?.len(), before);
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
