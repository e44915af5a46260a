//! Export and import: a populated store exports a snapshot that imports into
//! an empty one unchanged (the second export equals the first), only into an
//! empty one, all or nothing, and the imported store behaves like the
//! original (gates, version numbers, sign-in data).

use std::collections::BTreeSet;
use std::sync::Arc;

use scope_domain::{KeyId, OrgId, PromptId, Role, VersionStatus};
use scope_store::*;

use crate::support::*;

/// What `populate` made, for the checks after an import.
struct Populated {
    org: OrgId,
    org_b: OrgId,
    /// A prompt with published, archived and draft versions.
    prompt: PromptId,
    revoked: KeyId,
    /// The signed-in user's session digest (sessions are not exported).
    session: [u8; 32],
}

/// Fills a store through the trait with a bit of everything an export holds.
async fn populate(s: &dyn Store) -> Result<Populated, Box<dyn std::error::Error>> {
    let (org, admin_key, admin) = make_org_with_admin(s, "transfer-admin@example.com").await?;
    let (org_b, _, _) = make_org_with_admin(s, "transfer-b@example.com").await?;

    // Users: an active editor who signed in, an invited viewer, an accepted invitation.
    let editor = user_row(org, "transfer-editor@example.com", Role::Editor, "$argon2id$editor");
    add_user(s, &editor, None).await?;
    let session = session_row(&editor, 70, 6_000, 900_000);
    sign_in(s, &session).await?;
    let invited = user_row(org, "transfer-invited@example.com", Role::Viewer, "");
    add_user(s, &invited, Some(&invitation(&invited, 71, 800_000))).await?;
    let joined = user_row(org_b, "transfer-joined@example.com", Role::Admin, "");
    add_user(s, &joined, Some(&invitation(&joined, 72, 800_000))).await?;
    s.accept_invitation(&[72; 32], "$argon2id$joined", 7_000, &event(org_b, "user.accepted", "x")).await?;

    // Keys: one expiring, one revoked, the admin key rotated (its successor
    // remembers it, it expires after the grace period), used on two days.
    let expiring = key_row(org, "expiring", Some(500_000));
    s.insert_api_key(&expiring, &event(org, "api_key.created", &expiring.key_id.to_string())).await?;
    let revoked = key_row(org, "revoked", None);
    s.insert_api_key(&revoked, &event(org, "api_key.created", &revoked.key_id.to_string())).await?;
    s.revoke_api_key(org, revoked.key_id, "usr_admin", 8_000, &event(org, "api_key.revoked", "x")).await?;
    let mut successor = key_row(org, "bootstrap", None);
    successor.rotated_from = Some(admin_key.key_id);
    s.rotate_api_key(org, admin_key.key_id, 600_000, &successor, &event(org, "api_key.rotated", "x")).await?;
    s.record_key_usage(&[
        KeyUsageDelta { key_id: successor.key_id, day: "2024-03-01".into(), count: 4, last_used_at: 9_000 },
        KeyUsageDelta { key_id: successor.key_id, day: "2024-03-02".into(), count: 2, last_used_at: 9_500 },
        KeyUsageDelta { key_id: expiring.key_id, day: "2024-03-02".into(), count: 1, last_used_at: 9_100 },
    ])
    .await?;

    // Prompts: v1 published then archived by v2's promotion, v3 a draft copied
    // from v1, v4 archived; tags and a description edit; a second prompt in
    // the other organization.
    let (prompt, v1) = make_prompt(s, org, "welcome", &["email", "prod"], "Hi {{name}}").await?;
    s.promote(org, prompt, v1, &promote_req(true, 10_000), &event(org, "version.promoted", "x")).await?;
    let v2 = new_version(s, org, prompt, Some("Hello {{name}} from {{team}}"), None).await?;
    s.update_draft(
        org,
        prompt,
        v2.version_id,
        &DraftPatch {
            prompt_type: Some("chat".into()),
            metadata: Some(serde_json::json!({"model": "m", "temperature": 0.5})),
            ..DraftPatch::default()
        },
        10_500,
        &event(org, "version.updated", "x"),
    )
    .await?;
    s.promote(org, prompt, v2.version_id, &promote_req(true, 11_000), &event(org, "version.promoted", "x")).await?;
    new_version(s, org, prompt, None, Some(v1)).await?;
    let v4 = new_version(s, org, prompt, Some("old idea"), None).await?;
    s.set_archived(org, prompt, v4.version_id, true, 12_000, &event(org, "version.archived", "x")).await?;
    s.update_prompt(
        org,
        prompt,
        &PromptPatch { description: Some("greets people".into()), tags: None },
        12_500,
        &event(org, "prompt.updated", "x"),
    )
    .await?;
    make_prompt(s, org_b, "welcome", &[], "B's {{thing}}").await?;

    // Audit: a row of its own with nested details.
    let mut failed = audit_at(org, "system", "user.sign_in_failed", &admin.user_id.to_string(), 13_000);
    failed.details = serde_json::json!({"reason": "bad password", "attempt": {"n": 3, "ip": null}});
    s.insert_audit(&failed).await?;

    // Signing keys: an encrypted one, retired by a plain one.
    for (kid, at, encrypted) in [("sk_transfer_1", 100, true), ("sk_transfer_2", 200, false)] {
        s.insert_signing_key(&SigningKeyRow {
            kid: kid.into(),
            public_key: vec![at as u8; 32],
            private_key: vec![7; if encrypted { 60 } else { 32 }],
            encrypted,
            created_at: at,
            retired_at: None,
        })
        .await?;
    }
    Ok(Populated { org, org_b, prompt, revoked: revoked.key_id, session: session.session_digest })
}

/// Key ids of the gated keys with what the revocation view needs, without
/// the sequence numbers (each database hands out its own).
async fn gates(s: &dyn Store) -> Result<BTreeSet<(String, bool, Option<i64>, Option<i64>)>, StoreError> {
    Ok(s.key_gate_changes(0)
        .await?
        .into_iter()
        .map(|g| (g.key_id.to_string(), g.revoked, g.revoked_at, g.expires_at))
        .collect())
}

fn sorted_by<T, K: Ord>(rows: &[T], key: impl Fn(&T) -> K) -> bool {
    rows.windows(2).all(|w| key(&w[0]) < key(&w[1]))
}

pub async fn export_import_round_trip(a: Arc<dyn Store>, b: Arc<dyn Store>) -> TestResult {
    let (a, b) = (&*a, &*b);
    let p = populate(a).await?;
    let first = a.export().await?;

    // Everything made above is there, each table in creation order.
    assert_eq!(first.orgs.len(), 2);
    assert_eq!(first.users.len(), 5);
    assert_eq!(first.invitations.len(), 2);
    assert_eq!(first.api_keys.len(), 5);
    assert_eq!(first.key_usage.len(), 3);
    assert_eq!(first.prompts.len(), 2);
    assert_eq!(first.versions.len(), 5);
    assert_eq!(first.promotions.len(), 2);
    assert_eq!(first.signing_keys.len(), 2);
    let audited_a = a.list_audit(p.org, &audit_page(200, None)).await?;
    let audited_b = a.list_audit(p.org_b, &audit_page(200, None)).await?;
    assert_eq!(first.audit.len(), audited_a.len() + audited_b.len());
    assert!(sorted_by(&first.orgs, |o| (o.created_at, o.org_id.to_string())));
    assert!(sorted_by(&first.users, |u| u.user_id.to_string()));
    assert!(sorted_by(&first.api_keys, |k| k.key_id.to_string()));
    assert!(sorted_by(&first.key_usage, |u| (u.key_id.to_string(), u.day.clone())));
    assert!(sorted_by(&first.prompts, |p| p.prompt.prompt_id.to_string()));
    assert!(sorted_by(&first.versions, |v| (v.prompt_id.to_string(), v.version)));
    assert!(sorted_by(&first.promotions, |p| p.promotion.promotion_id.clone()));
    assert!(sorted_by(&first.audit, |e| e.event_id.clone()));
    assert!(sorted_by(&first.signing_keys, |k| (k.created_at, k.kid.clone())));
    let welcome = first.prompts.iter().find(|s| s.prompt.prompt_id == p.prompt).ok_or("prompt not exported")?;
    assert_eq!(welcome.next_version, 5);
    assert_eq!(welcome.prompt.description, "greets people");
    let statuses: Vec<_> =
        first.versions.iter().filter(|v| v.prompt_id == p.prompt).map(|v| (v.version, v.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (1, VersionStatus::Archived),
            (2, VersionStatus::Published),
            (3, VersionStatus::Draft),
            (4, VersionStatus::Archived)
        ]
    );
    let published = first.versions.iter().find(|v| v.version == 2 && v.prompt_id == p.prompt).ok_or("no v2")?;
    assert_eq!((published.promoted_at, published.promoted_by.as_deref()), (Some(11_000), Some("usr_admin")));
    assert_eq!(published.variables, vec!["name".to_owned(), "team".to_owned()]);
    assert_eq!(published.metadata, serde_json::json!({"model": "m", "temperature": 0.5}));
    let revoked = first.api_keys.iter().find(|k| k.key_id == p.revoked).ok_or("revoked key not exported")?;
    assert_eq!((revoked.revoked_at, revoked.revoked_by.as_deref()), (Some(8_000), Some("usr_admin")));
    assert!(first.invitations.iter().any(|i| i.accepted_at == Some(7_000)));
    assert!(first.signing_keys[0].encrypted && first.signing_keys[0].retired_at == Some(200));

    // Into an empty store, then out again: the same snapshot.
    assert!(!b.is_initialized().await?);
    b.import(&first).await?;
    let second = b.export().await?;
    assert_eq!(second, first);

    // The imported store behaves like the original.
    assert!(b.is_initialized().await?);
    assert_eq!(gates(b).await?, gates(a).await?);
    let gated = b.key_gate_changes(0).await?;
    assert_eq!(gated.len(), 3); // expiring, revoked, the rotated admin key
    assert!(gated.iter().any(|g| g.key_id == p.revoked && g.revoked));
    assert!(gated.iter().all(|g| g.change_seq > 0));
    let top = gated.iter().map(|g| g.change_seq).max().unwrap_or(0);
    assert!(b.key_gate_changes(top).await?.is_empty());
    let summary = b.get_prompt(p.org, "welcome").await?;
    assert_eq!(summary, a.get_prompt(p.org, "welcome").await?);
    assert_eq!((summary.latest_version, summary.production_version), (Some(4), Some(2)));
    assert_eq!(
        b.list_promotions(p.org, p.prompt, &page(50, None)).await?,
        a.list_promotions(p.org, p.prompt, &page(50, None)).await?
    );
    let v5 = new_version(b, p.org, p.prompt, Some("next"), None).await?;
    assert_eq!(v5.version, 5);
    // Both logs as they were, plus the version just made.
    assert_eq!(b.list_audit(p.org_b, &audit_page(200, None)).await?, audited_b);
    assert_eq!(b.list_audit(p.org, &audit_page(200, None)).await?[1..], audited_a[..]);
    assert_eq!(b.list_signing_keys().await?, a.list_signing_keys().await?);
    let editor = b.find_user_by_email("transfer-editor@example.com").await?.ok_or("editor not imported")?;
    assert_eq!(editor.last_sign_in_at, Some(6_000));
    assert!(b
        .get_invitation(&[71; 32])
        .await?
        .is_some_and(|(i, u)| i.accepted_at.is_none() && u.status() == "invited"));
    let successor = first.api_keys.iter().find(|k| k.rotated_from.is_some()).ok_or("no successor")?;
    assert_eq!(b.key_usage(p.org, successor.key_id, "2024-01-01").await?.len(), 2);
    // Sessions stay behind: people sign in again after a move.
    assert!(a.get_session(&p.session).await?.is_some());
    assert!(b.get_session(&p.session).await?.is_none());
    Ok(())
}

pub async fn import_needs_an_empty_store(a: Arc<dyn Store>, b: Arc<dyn Store>) -> TestResult {
    let (a, b) = (&*a, &*b);
    populate(a).await?;
    let snapshot = a.export().await?;
    // Into itself: it holds organizations already.
    assert!(matches!(a.import(&snapshot).await, Err(StoreError::Conflict(_))));
    assert_eq!(a.export().await?, snapshot);

    // Into another store holding one organization of its own (disjoint ids
    // and e-mails, so only the emptiness check can refuse it): nothing written.
    let (org, _) = make_org(b, "already-here@example.com").await?;
    make_prompt(b, org, "mine", &[], "x").await?;
    let before = b.export().await?;
    assert!(matches!(b.import(&snapshot).await, Err(StoreError::Conflict(_))));
    assert_eq!(b.export().await?, before);
    Ok(())
}

pub async fn import_is_all_or_nothing(a: Arc<dyn Store>, b: Arc<dyn Store>) -> TestResult {
    let (a, b) = (&*a, &*b);
    let p = populate(a).await?;
    let mut snapshot = a.export().await?;
    // The last rows written clash with each other: everything before them
    // must be rolled back too.
    let duplicate = snapshot.signing_keys[0].clone();
    snapshot.signing_keys.push(duplicate);
    assert!(matches!(b.import(&snapshot).await, Err(StoreError::Conflict(_))));
    assert!(!b.is_initialized().await?);
    assert_eq!(b.export().await?, Snapshot::default());
    assert!(b.key_gate_changes(0).await?.is_empty());

    // A version of a prompt the snapshot does not hold is refused as well.
    let mut orphan = a.export().await?;
    orphan.prompts.retain(|s| s.prompt.prompt_id != p.prompt);
    assert!(b.import(&orphan).await.is_err());
    assert_eq!(b.export().await?, Snapshot::default());

    // The empty snapshot imports to nothing; the store stays uninitialized.
    b.import(&Snapshot::default()).await?;
    assert!(!b.is_initialized().await?);
    Ok(())
}

pub async fn import_keeps_stored_numbers_and_gates(a: Arc<dyn Store>, b: Arc<dyn Store>) -> TestResult {
    let (a, b) = (&*a, &*b);
    let (org, _) = make_org(a, "numbers@example.com").await?;
    let (prompt, _) = make_prompt(a, org, "numbered", &[], "v1").await?;
    new_version(a, org, prompt, Some("v2"), None).await?;
    let mut snapshot = a.export().await?;
    // A number was used once by a version that is no longer exported (as
    // after a bulk import of a trimmed history): it must not come back.
    snapshot.prompts[0].next_version = 7;
    // Keys made revoked or expiring by another deployment.
    let mut revoked = key_row(org, "gone", None);
    revoked.revoked_at = Some(50);
    revoked.revoked_by = Some("usr_old".into());
    let expiring = key_row(org, "soon", Some(60));
    snapshot.api_keys.extend([revoked.clone(), expiring.clone()]);
    b.import(&snapshot).await?;

    assert_eq!(new_version(b, org, prompt, Some("v7"), None).await?.version, 7);
    assert_eq!(b.get_prompt(org, "numbered").await?.latest_version, Some(7));
    let gated = b.key_gate_changes(0).await?;
    assert_eq!(gated.iter().map(|g| g.key_id).collect::<Vec<_>>(), vec![revoked.key_id, expiring.key_id]);
    assert!(gated[0].change_seq > 0 && gated[1].change_seq > gated[0].change_seq);
    // Gates raised after the import come after the imported ones.
    b.revoke_api_key(org, expiring.key_id, "usr_new", 70, &event(org, "api_key.revoked", "x")).await?;
    let later = b.key_gate_changes(gated[1].change_seq).await?;
    assert_eq!(later.len(), 1);
    assert!(later[0].key_id == expiring.key_id && later[0].revoked);
    Ok(())
}

pub async fn export_is_a_consistent_snapshot(store: Arc<dyn Store>) -> TestResult {
    let (org, _) = make_org(&*store, "consistent@example.com").await?;
    // A writer adds keys, each with its audit row in the same transaction,
    // while exports run: every export holds both or neither of each pair.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                let key = key_row(org, &format!("k{i}"), None);
                store.insert_api_key(&key, &event(org, "api_key.created", &key.key_id.to_string())).await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    let mut exports = 0;
    while !writer.is_finished() || exports < 3 {
        let snapshot = store.export().await?;
        let keys: BTreeSet<String> = snapshot.api_keys.iter().map(|k| k.key_id.to_string()).collect();
        let audited: BTreeSet<String> =
            snapshot.audit.iter().filter(|e| e.action == "api_key.created").map(|e| e.target.clone()).collect();
        assert_eq!(keys, audited, "export {exports} mixes two states of the database");
        exports += 1;
    }
    writer.await??;
    Ok(())
}
