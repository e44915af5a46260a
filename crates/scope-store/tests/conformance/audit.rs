//! The audit log: rows written with their changes (and not with failed
//! ones), per organization; filters, action prefixes, time ranges and paging.

use std::sync::Arc;

use scope_domain::ErrorCode;
use scope_store::*;

use crate::support::*;

pub async fn audit_rows_are_written_per_org(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
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

pub async fn audit_filters_combine_and_page(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
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
