//! Labels (SPEC §9): moving, removing and listing them, `production` as a
//! promotion, the label history as a chain, archive refused while labelled,
//! protected labels per organization; under concurrency, one target and a
//! complete history.

use std::sync::Arc;

use scope_domain::{ErrorCode, OrgId, PromptId, VersionId, VersionStatus};
use scope_store::*;

use crate::support::*;

pub fn move_req(label: &str, to: Option<VersionId>, now_ms: i64) -> MoveLabelRequest {
    MoveLabelRequest {
        label: label.into(),
        to,
        kind: if to.is_some() { LabelMoveKind::Move } else { LabelMoveKind::Remove },
        if_current: None,
        notes: Some(format!("to {to:?}")),
        archive_previous: true,
        actor: "usr_mover".into(),
        now_ms,
        move_id: format!("lbm_{}", ulid_text()),
        promotion_id: format!("prm_{}", ulid_text()),
    }
}

async fn move_to(
    s: &dyn Store,
    org: OrgId,
    pid: PromptId,
    label: &str,
    to: Option<VersionId>,
) -> Result<Option<VersionRow>, StoreError> {
    s.move_label(org, pid, &move_req(label, to, 5000), &event(org, "label.moved", &pid.to_string())).await
}

fn names(rows: &[LabelRow]) -> Vec<(String, i64)> {
    rows.iter().map(|l| (l.label.clone(), l.version)).collect()
}

fn hist_query(label: Option<&str>) -> LabelMoveQuery {
    LabelMoveQuery { page: page(200, None), label: label.map(str::to_owned) }
}

pub async fn labels_move_list_and_remove(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "labels@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "greeting", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?.version_id;
    let v3 = new_version(s, org, pid, Some("three"), None).await?.version_id;
    assert!(s.list_labels(org, pid).await?.is_empty());

    // A new label on a draft; the version carries it.
    let moved = move_to(s, org, pid, "staging", Some(v1)).await?.ok_or("no row")?;
    assert_eq!((moved.version_id, moved.labels.clone()), (v1, vec!["staging".to_owned()]));
    assert_eq!(names(&s.list_labels(org, pid).await?), vec![("staging".into(), 1)]);
    let l = &s.list_labels(org, pid).await?[0];
    assert_eq!((l.moved_at, l.moved_by.as_str()), (5000, "usr_mover"));

    // Moving it again; a second label on the same version; production is
    // the published version and comes first.
    move_to(s, org, pid, "staging", Some(v2)).await?;
    move_to(s, org, pid, "canary", Some(v2)).await?;
    s.promote(org, pid, v3, &promote_req(true, 6000), &event(org, "version.promoted", "x")).await?;
    assert_eq!(
        names(&s.list_labels(org, pid).await?),
        vec![("production".into(), 3), ("canary".into(), 2), ("staging".into(), 2)]
    );
    assert_eq!(s.get_version(org, pid, v2).await?.labels, vec!["canary".to_owned(), "staging".to_owned()]);
    assert_eq!(s.get_version(org, pid, v3).await?.labels, vec!["production".to_owned()]);
    assert!(s.get_version(org, pid, v1).await?.labels.is_empty());
    let listed = s.list_versions(org, pid, &VersionListQuery { page: page(10, None), include_archived: true }).await?;
    assert_eq!(listed[1].labels, vec!["canary".to_owned(), "staging".to_owned()]);
    let prod = s.production_version(org, pid).await?.ok_or("no production")?;
    assert_eq!(prod.labels, vec!["production".to_owned()]);

    // Moving where it already points records nothing.
    let before = s.list_label_moves(org, pid, &hist_query(None)).await?.len();
    move_to(s, org, pid, "staging", Some(v2)).await?;
    assert_eq!(s.list_label_moves(org, pid, &hist_query(None)).await?.len(), before);

    // Remove; removing again, or a label never set, is not found.
    assert_eq!(move_to(s, org, pid, "canary", None).await?, None);
    for label in ["canary", "nope"] {
        let e = move_to(s, org, pid, label, None).await;
        assert!(matches!(e, Err(ref e) if is_domain(e, ErrorCode::NotFound)), "{label}: {e:?}");
    }
    // `production` cannot be removed, `latest` never set; a version of
    // another prompt is not found.
    let e = move_to(s, org, pid, "production", None).await;
    assert!(matches!(e, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    let e = move_to(s, org, pid, "latest", Some(v1)).await;
    assert!(matches!(e, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    let (_, other_v1) = make_prompt(s, org, "other", &[], "x").await?;
    let e = move_to(s, org, pid, "staging", Some(other_v1)).await;
    assert!(matches!(e, Err(ref e) if is_domain(e, ErrorCode::NotFound)));

    // The history: newest first, each move with where it came from.
    let hist = s.list_label_moves(org, pid, &hist_query(None)).await?;
    let summary: Vec<_> = hist.iter().map(|h| (h.label.as_str(), h.kind, h.from_version, h.to_version)).collect();
    assert_eq!(
        summary,
        vec![
            ("canary", LabelMoveKind::Remove, Some(2), None),
            ("production", LabelMoveKind::Move, None, Some(3)),
            ("canary", LabelMoveKind::Move, None, Some(2)),
            ("staging", LabelMoveKind::Move, Some(1), Some(2)),
            ("staging", LabelMoveKind::Move, None, Some(1)),
        ]
    );
    assert!(hist.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(hist[3].notes.as_deref(), Some(&*format!("to {:?}", Some(v2))));
    let staging = s.list_label_moves(org, pid, &hist_query(Some("staging"))).await?;
    assert_eq!(staging.len(), 2);
    // Paging by seq.
    let first = s.list_label_moves(org, pid, &LabelMoveQuery { page: page(2, None), label: None }).await?;
    let next = s
        .list_label_moves(
            org,
            pid,
            &LabelMoveQuery { page: page(10, first.last().map(|h| h.seq.to_string())), label: None },
        )
        .await?;
    assert_eq!(first.len() + next.len(), hist.len());
    assert_eq!(next[0].seq, hist[2].seq);
    let bad = s.list_label_moves(org, pid, &LabelMoveQuery { page: page(2, Some("x".into())), label: None }).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Deleting the prompt takes its labels and history with it.
    s.delete_prompt(org, pid, &event(org, "prompt.deleted", "x")).await?;
    assert!(s.list_labels(org, pid).await?.is_empty());
    assert!(s.list_label_moves(org, pid, &hist_query(None)).await?.is_empty());
    Ok(())
}

pub async fn production_moves_are_promotions(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "prod-labels@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?.version_id;

    // Through the label: v1 published, recorded in both histories.
    let row = move_to(s, org, pid, "production", Some(v1)).await?.ok_or("no row")?;
    assert_eq!((row.status, row.promoted_by.as_deref()), (VersionStatus::Published, Some("usr_mover")));
    assert_eq!(s.list_promotions(org, pid, &page(10, None)).await?.len(), 1);

    // Through promote: recorded in both as well.
    s.promote(org, pid, v2, &promote_req(true, 7000), &event(org, "version.promoted", "x")).await?;
    assert_eq!(s.get_version(org, pid, v1).await?.status, VersionStatus::Archived);
    let hist = s.list_label_moves(org, pid, &hist_query(Some("production"))).await?;
    assert_eq!(
        hist.iter().map(|h| (h.from_version, h.to_version)).collect::<Vec<_>>(),
        vec![(Some(1), Some(2)), (None, Some(1))]
    );
    assert_eq!(hist[0].notes.as_deref(), Some("ship it"));
    assert_eq!(s.list_promotions(org, pid, &page(10, None)).await?.len(), 2);

    // Back to the archived v1 (a rollback): production may point at an
    // archived version, which is published again.
    let mut back = move_req("production", Some(v1), 8000);
    back.kind = LabelMoveKind::Rollback;
    back.if_current = Some(Some(v2));
    let row = s.move_label(org, pid, &back, &event(org, "label.rolled_back", "x")).await?.ok_or("no row")?;
    assert_eq!(row.status, VersionStatus::Published);
    assert_eq!(s.get_version(org, pid, v2).await?.status, VersionStatus::Archived);
    assert_eq!(s.list_label_moves(org, pid, &hist_query(Some("production"))).await?[0].kind, LabelMoveKind::Rollback);

    // A stale expectation is a conflict, and changes nothing.
    let mut stale = move_req("production", Some(v2), 9000);
    stale.if_current = Some(Some(v2));
    let e = s.move_label(org, pid, &stale, &event(org, "x", "x")).await;
    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    assert_eq!(s.production_version(org, pid).await?.map(|v| v.version_id), Some(v1));

    // The version a promotion replaces returns to draft instead of being
    // archived while another label points at it.
    let v3 = new_version(s, org, pid, Some("three"), None).await?.version_id;
    move_to(s, org, pid, "staging", Some(v1)).await?;
    s.promote(org, pid, v3, &promote_req(true, 9500), &event(org, "version.promoted", "x")).await?;
    let v1_row = s.get_version(org, pid, v1).await?;
    assert_eq!((v1_row.status, v1_row.labels), (VersionStatus::Draft, vec!["staging".to_owned()]));
    Ok(())
}

pub async fn labelled_versions_cannot_be_archived(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "archive-labels@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?.version_id;
    move_to(s, org, pid, "staging", Some(v1)).await?;
    let ev = event(org, "version.archived", "x");
    let e = s.set_archived(org, pid, v1, true, 1, &ev).await;
    assert!(
        matches!(e, Err(StoreError::Domain(ref d)) if d.code == ErrorCode::Conflict && d.message.contains("'staging'")),
        "{e:?}"
    );
    assert_eq!(s.get_version(org, pid, v1).await?.status, VersionStatus::Draft);
    // Once the label moves, it can be.
    move_to(s, org, pid, "staging", Some(v2)).await?;
    assert_eq!(s.set_archived(org, pid, v1, true, 1, &ev).await?.status, VersionStatus::Archived);
    // An archived version takes no label other than production.
    let e = move_to(s, org, pid, "staging", Some(v1)).await;
    assert!(matches!(e, Err(ref e) if is_domain(e, ErrorCode::Conflict)), "{e:?}");
    assert_eq!(s.get_version(org, pid, v2).await?.labels, vec!["staging".to_owned()]);
    Ok(())
}

pub async fn labels_are_scoped_by_org(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "la@example.com").await?;
    let (org_b, _) = make_org(s, "lb@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "one").await?;
    move_to(s, org, pid, "staging", Some(v1)).await?;
    // Org B sees none of A's labels and cannot move them.
    assert!(s.list_labels(org_b, pid).await?.is_empty());
    assert!(s.list_label_moves(org_b, pid, &hist_query(None)).await?.is_empty());
    let e = move_to(s, org_b, pid, "staging", Some(v1)).await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
    let e = move_to(s, org_b, pid, "staging", None).await;
    assert!(matches!(e, Err(StoreError::NotFound)), "{e:?}");
    assert_eq!(names(&s.list_labels(org, pid).await?), vec![("staging".into(), 1)]);

    // Protected labels are per organization too.
    assert!(s.protected_labels(org).await?.is_empty());
    s.set_protected_labels(org, &["production".into(), "staging".into()], &event(org, "settings.updated", "x")).await?;
    assert_eq!(s.protected_labels(org).await?, vec!["production".to_owned(), "staging".to_owned()]);
    assert!(s.protected_labels(org_b).await?.is_empty());
    s.set_protected_labels(org, &["eu".into()], &event(org, "settings.updated", "x")).await?;
    assert_eq!(s.protected_labels(org).await?, vec!["eu".to_owned()]);
    s.set_protected_labels(org, &[], &event(org, "settings.updated", "x")).await?;
    assert!(s.protected_labels(org).await?.is_empty());
    Ok(())
}

pub async fn concurrent_moves_leave_one_target_and_a_chain(store: Arc<dyn Store>) -> TestResult {
    let s = store;
    let (org, _) = make_org(&*s, "label-race@example.com").await?;
    let (pid, v1) = make_prompt(&*s, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for i in 0..49 {
        versions.push(new_version(&*s, org, pid, Some(&format!("v{}", i + 2)), None).await?.version_id);
    }
    warm_up(&s).await?;
    // 50 moves of one label, each to its own version, at once; the
    // production label races along on the same prompt.
    let moved = all_at_once(versions.len(), |i| {
        let (s, v) = (s.clone(), versions[i]);
        async move {
            if i % 10 == 0 {
                let ev = event(org, "version.promoted", &v.to_string());
                s.promote(org, pid, v, &promote_req(false, 1000 + i as i64), &ev).await.map(|_| ())?;
            }
            let ev = event(org, "label.moved", &v.to_string());
            s.move_label(org, pid, &move_req("staging", Some(v), 1000 + i as i64), &ev).await.map(|_| ())
        }
    })
    .await?;
    for m in moved {
        m?;
    }
    let hist = s.list_label_moves(org, pid, &hist_query(Some("staging"))).await?;
    assert_eq!(hist.len(), 50, "every move is recorded");
    // A chain: each move starts where the one before it ended.
    for w in hist.windows(2) {
        assert_eq!(w[0].from_version_id, w[1].to_version_id, "moves {} and {}", w[1].seq, w[0].seq);
    }
    assert_eq!(hist.last().and_then(|h| h.from_version_id), None);
    let targets: std::collections::BTreeSet<_> = hist.iter().filter_map(|h| h.to_version_id).collect();
    assert_eq!(targets.len(), 50);
    let labels = s.list_labels(org, pid).await?;
    let staging: Vec<_> = labels.iter().filter(|l| l.label == "staging").collect();
    assert_eq!(staging.len(), 1, "one target");
    assert_eq!(Some(staging[0].version_id), hist[0].to_version_id, "the target is the last move's");
    let prod = s.list_label_moves(org, pid, &hist_query(Some("production"))).await?;
    assert_eq!(prod.len(), 5);
    for w in prod.windows(2) {
        assert_eq!(w[0].from_version_id, w[1].to_version_id);
    }
    let all = s.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.iter().filter(|v| v.status == VersionStatus::Published).count(), 1);
    Ok(())
}
