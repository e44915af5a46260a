//! Export and import: a populated store exports a snapshot that imports into
//! an empty one unchanged (the second export equals the first), only into an
//! empty one, all or nothing, and the imported store behaves like the
//! original (gates, version numbers, sign-in data, labels and their history,
//! protected labels, revoked tokens, the event log's positions).

use std::collections::BTreeSet;
use std::sync::Arc;

use scope_domain::{KeyId, OrgId, PromptId, Role, VersionId, VersionStatus};
use scope_store::*;

use crate::labels::move_req;
use crate::support::*;

/// Far in the future: revocations that have not expired.
const LATER: i64 = 4_000_000_000_000;

/// What `populate` made, for the checks after an import.
struct Populated {
    org: OrgId,
    org_b: OrgId,
    /// A prompt with published, archived and draft versions.
    prompt: PromptId,
    revoked: KeyId,
    /// The signed-in user's session digest (sessions are not exported).
    session: [u8; 32],
    /// The draft v3 of `prompt`, which `staging` and `beta` point at.
    v3: VersionId,
    /// A key and the `jti` of one of its tokens, revoked on its own.
    token_key: KeyId,
    revoked_jti: String,
}

fn revocation(org: OrgId, key: KeyId, jti: &str, revoked_at: i64, expires_at: i64) -> RevokedTokenRow {
    RevokedTokenRow {
        jti: jti.into(),
        org_id: org,
        key_id: key,
        expires_at,
        revoked_at,
        revoked_by: key.to_string(),
        change_seq: 0,
    }
}

/// Fills a store through the trait with a bit of everything an export holds.
async fn populate(s: &dyn Store) -> Result<Populated, Box<dyn std::error::Error>> {
    let (org, admin_key, admin) = make_org_with_admin(s, "transfer-admin@example.com").await?;
    let (org_b, key_b, _) = make_org_with_admin(s, "transfer-b@example.com").await?;

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
    let v3 = new_version(s, org, prompt, None, Some(v1)).await?.version_id;
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
    let (prompt_b, b1) = make_prompt(s, org_b, "welcome", &[], "B's {{thing}}").await?;

    // Labels: `staging` moved twice and `beta` onto v3, `canary` put on v2
    // and removed again, a roll-back of production to v1 and forward again
    // (all in the label history, production's moves included); one in the
    // other organization. Protected labels in both.
    let v2_id = v2.version_id;
    let mut at = 14_000;
    for (label, to) in
        [("staging", Some(v2_id)), ("staging", Some(v3)), ("beta", Some(v3)), ("canary", Some(v2_id)), ("canary", None)]
    {
        at += 100;
        s.move_label(org, prompt, &move_req(label, to, at), &event(org, "label.moved", &prompt.to_string())).await?;
    }
    let mut back = move_req("production", Some(v1), 15_000);
    back.kind = LabelMoveKind::Rollback;
    back.if_current = Some(Some(v2_id));
    back.archive_previous = false;
    s.move_label(org, prompt, &back, &event(org, "label.rolled_back", "x")).await?;
    s.promote(org, prompt, v2_id, &promote_req(true, 15_500), &event(org, "version.promoted", "x")).await?;
    s.move_label(org_b, prompt_b, &move_req("qa", Some(b1), 16_000), &event(org_b, "label.moved", "x")).await?;
    s.set_protected_labels(org, &["production".into(), "staging".into()], &event(org, "settings.x", "x")).await?;
    s.set_protected_labels(org_b, &["qa".into()], &event(org_b, "settings.x", "x")).await?;
    s.set_audiences(org, &["billing-api".into(), "https://gateway.example".into()], &event(org, "org.x", "x")).await?;
    s.set_audiences(org_b, &["https://gateway.example".into()], &event(org_b, "org.x", "x")).await?;

    // Single tokens revoked: one of the successor key's, still valid, one of
    // another organization's, and one long expired (not yet pruned).
    let revoked_jti = "jti-transfer-live".to_owned();
    s.revoke_token(&revocation(org, successor.key_id, &revoked_jti, 16_500, LATER), &event(org, "token.revoked", "x"))
        .await?;
    s.revoke_token(
        &revocation(org_b, key_b.key_id, "jti-transfer-b", 16_600, LATER),
        &event(org_b, "token.revoked", "x"),
    )
    .await?;
    s.revoke_token(&revocation(org, expiring.key_id, "jti-transfer-old", 16_700, 1), &event(org, "token.revoked", "x"))
        .await?;

    // The event log, pruned of what happened before 9 s: the mark rises.
    assert!(s.prune_events(9_000).await? > 0);
    assert!(s.event_bounds().await?.pruned_through > 0);

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
    Ok(Populated {
        org,
        org_b,
        prompt,
        revoked: revoked.key_id,
        session: session.session_digest,
        v3,
        token_key: successor.key_id,
        revoked_jti,
    })
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
    assert_eq!(first.promotions.len(), 4); // two promotions, a roll-back, a promotion
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
    assert_eq!((published.promoted_at, published.promoted_by.as_deref()), (Some(15_500), Some("usr_admin")));
    assert_eq!(published.variables, vec!["name".to_owned(), "team".to_owned()]);
    assert_eq!(published.metadata, serde_json::json!({"model": "m", "temperature": 0.5}));
    let revoked = first.api_keys.iter().find(|k| k.key_id == p.revoked).ok_or("revoked key not exported")?;
    assert_eq!((revoked.revoked_at, revoked.revoked_by.as_deref()), (Some(8_000), Some("usr_admin")));
    assert!(first.invitations.iter().any(|i| i.accepted_at == Some(7_000)));
    assert!(first.signing_keys[0].encrypted && first.signing_keys[0].retired_at == Some(200));
    // Releases: stored labels (not production), every move, protected labels.
    let stored: Vec<_> = first.labels.iter().map(|l| (l.label.as_str(), l.version_id)).collect();
    assert_eq!(stored.len(), 3);
    assert!(stored.contains(&("staging", p.v3)) && stored.contains(&("beta", p.v3)));
    assert!(sorted_by(&first.labels, |l| (l.prompt_id.to_string(), l.label.clone())));
    let v3 = first.versions.iter().find(|v| v.version_id == p.v3).ok_or("no v3")?;
    assert_eq!(v3.labels, vec!["beta".to_owned(), "staging".to_owned()]);
    let moves: Vec<_> = first
        .label_moves
        .iter()
        .filter(|m| m.label_move.prompt_id == p.prompt)
        .map(|m| (m.label_move.seq, m.label_move.label.as_str(), m.label_move.kind))
        .collect();
    assert_eq!(moves.len(), 9, "{moves:?}"); // 2 promotions, 5 moves, a roll-back, a promotion
    assert!(moves.iter().any(|m| m.2 == LabelMoveKind::Remove) && moves.iter().any(|m| m.2 == LabelMoveKind::Rollback));
    assert!(moves.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    assert!(sorted_by(&first.label_moves, |m| (m.label_move.prompt_id.to_string(), m.label_move.seq)));
    assert_eq!(first.protected_labels.len(), 3);
    assert!(sorted_by(&first.protected_labels, |l| (l.org_id.to_string(), l.label.clone())));
    assert_eq!(first.org_audiences.len(), 3);
    assert!(sorted_by(&first.org_audiences, |a| (a.org_id.to_string(), a.audience.clone())));
    // Revocations in the order they were made, without the database's
    // numbers, expired ones too (the file format leaves those out).
    let jtis: Vec<_> = first.revoked_tokens.iter().map(|t| t.jti.as_str()).collect();
    assert_eq!(jtis, vec![p.revoked_jti.as_str(), "jti-transfer-b", "jti-transfer-old"]);
    assert!(first.revoked_tokens.iter().all(|t| t.change_seq == 0));
    // The event log with its positions and mark.
    let bounds_a = a.event_bounds().await?;
    assert!(first.events_pruned_through > 0 && first.events_pruned_through == bounds_a.pruned_through);
    assert!(!first.events.is_empty() && sorted_by(&first.events, |e| e.seq));
    assert_eq!(first.events.last().map(|e| e.seq), Some(bounds_a.head));

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
    // Labels, their history and the protected labels read the same.
    assert_eq!(b.list_labels(p.org, p.prompt).await?, a.list_labels(p.org, p.prompt).await?);
    let history = LabelMoveQuery { page: page(200, None), label: None };
    assert_eq!(
        b.list_label_moves(p.org, p.prompt, &history).await?,
        a.list_label_moves(p.org, p.prompt, &history).await?
    );
    for org in [p.org, p.org_b] {
        assert_eq!(b.protected_labels(org).await?, a.protected_labels(org).await?);
    }
    assert_eq!(b.get_version(p.org, p.prompt, p.v3).await?, a.get_version(p.org, p.prompt, p.v3).await?);
    // The event log: same bounds, same events, so a stream resuming from any
    // position continues the same way.
    assert_eq!(b.event_bounds().await?, bounds_a);
    for org in [p.org, p.org_b] {
        assert_eq!(b.list_events(org, 0, 1000).await?, a.list_events(org, 0, 1000).await?);
        let from = first.events[0].seq;
        assert_eq!(b.list_events(org, from, 1000).await?, a.list_events(org, from, 1000).await?);
    }
    // Revoked tokens that have not expired are in the view, numbered afresh
    // in the order they were revoked.
    let now = 20_000;
    let view = b.revoked_token_changes(0, now).await?;
    assert_eq!(view.iter().map(|t| t.jti.as_str()).collect::<Vec<_>>(), vec![p.revoked_jti.as_str(), "jti-transfer-b"]);
    assert!(view[0].change_seq > 0 && view[1].change_seq > view[0].change_seq);
    assert_eq!((view[0].key_id, view[0].revoked_at, view[0].expires_at), (p.token_key, 16_500, LATER));
    let v5 = new_version(b, p.org, p.prompt, Some("next"), None).await?;
    assert_eq!(v5.version, 5);
    // Events written after the import continue above the imported ones.
    let appended = b.list_events(p.org, bounds_a.head, 1000).await?;
    assert_eq!(appended.len(), 1);
    assert!(appended[0].seq > bounds_a.head && appended[0].event_type == "prompt.version_created");
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
    // A token revoked after the import comes after the imported ones, and
    // revoking an imported one again changes nothing.
    // (The expired one was imported as well, last.)
    let all = b.revoked_token_changes(0, 0).await?;
    assert_eq!(all.last().map(|t| t.jti.as_str()), Some("jti-transfer-old"));
    let top = all.iter().map(|t| t.change_seq).max().unwrap_or(0);
    let again = revocation(p.org, p.token_key, &p.revoked_jti, 21_000, LATER);
    assert!(!b.revoke_token(&again, &event(p.org, "token.revoked", "x")).await?);
    let later = revocation(p.org, p.token_key, "jti-after-move", 21_000, LATER);
    assert!(b.revoke_token(&later, &event(p.org, "token.revoked", "x")).await?);
    let after = b.revoked_token_changes(top, now).await?;
    assert_eq!(after.iter().map(|t| t.jti.as_str()).collect::<Vec<_>>(), vec!["jti-after-move"]);
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

    // So are labels and moves naming a version the snapshot does not hold
    // (or one of another prompt), and rows of an organization it does not
    // hold; each with a message naming the row, before anything is written.
    let full = a.export().await?;
    let other_prompts_version =
        full.versions.iter().find(|v| v.prompt_id != p.prompt).map(|v| v.version_id).ok_or("no other version")?;
    let mut label = full.clone();
    label.labels.iter_mut().find(|l| l.prompt_id == p.prompt).ok_or("no label")?.version_id = other_prompts_version;
    let mut moved = full.clone();
    let m = moved.label_moves.iter_mut().find(|m| m.label_move.prompt_id == p.prompt).ok_or("no move")?;
    m.label_move.to_version_id = Some(scope_domain::VersionId::generate());
    let mut production = full.clone();
    production.labels[0].label = "production".into();
    let mut token = full.clone();
    token.revoked_tokens[0].org_id = OrgId::generate();
    let mut protected = full.clone();
    protected.protected_labels[0].org_id = OrgId::generate();
    let mut event_row = full.clone();
    event_row.events[0].org_id = OrgId::generate();
    for (what, bad) in [
        ("label", label),
        ("label move", moved),
        ("production label", production),
        ("revoked token", token),
        ("protected label", protected),
        ("event", event_row),
    ] {
        let e = b.import(&bad).await;
        assert!(matches!(e, Err(StoreError::Domain(_))), "{what}: {e:?}");
        assert_eq!(b.export().await?, Snapshot::default(), "{what}");
    }

    // The empty snapshot imports to nothing; the store stays uninitialized.
    b.import(&Snapshot::default()).await?;
    assert!(!b.is_initialized().await?);
    Ok(())
}

/// A position far above any this test's databases hand out themselves.
const FAR: i64 = 1_000_000;

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
    // An event log pruned past its last event.
    snapshot.events.clear();
    snapshot.events_pruned_through = FAR;
    b.import(&snapshot).await?;
    assert_eq!(b.event_bounds().await?, EventBounds { pruned_through: FAR, head: FAR });

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

    // The log was pruned past its last event, at positions far above this
    // database's: the mark is kept, and events written after the import are
    // numbered above it, so the server's fan-out (which starts from the
    // log's head) and streams resuming from an old position see them.
    let events = b.event_feed(0, 10).await?;
    assert_eq!(events.len(), 2, "{events:?}"); // v7, the revocation
    assert!(events.iter().all(|e| e.seq > FAR));
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
