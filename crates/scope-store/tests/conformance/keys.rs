//! API keys: creation, listing and status filters, revocation, rotation,
//! usage counters, the gate sequence the revocation views poll, bulk import;
//! under concurrency, gates reach a poller and usage adds up.

use std::collections::BTreeSet;
use std::sync::Arc;

use scope_domain::{ErrorCode, KeyId, OrgId};
use scope_store::*;

use crate::support::*;

pub async fn orgs_and_keys(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
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

pub async fn rotate_usage_and_gates(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
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

pub async fn bulk_import_keys(store: Arc<dyn Store>) -> TestResult {
    let store = &*store;
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
    Ok(())
}

pub async fn gate_poller_never_misses_a_concurrent_change(store: Arc<dyn Store>) -> TestResult {
    // Each server polls `key_gate_changes(last seen)`. Writers racing each
    // other must not commit a sequence number below one a poller has already
    // seen, or that poller would never learn of the change.
    let (org, _) = make_org(&*store, "gate-race@example.com").await?;
    let mut keys = Vec::new();
    for i in 0..40 {
        let key = key_row(org, &format!("k{i}"), None);
        store.insert_api_key(&key, &event(org, "api_key.created", &key.key_id.to_string())).await?;
        keys.push(key);
    }
    warm_up(&store).await?;
    let writers = {
        let (store, keys) = (store.clone(), keys.clone());
        tokio::spawn(async move {
            all_at_once(keys.len(), |i| {
                let (store, key) = (store.clone(), keys[i].clone());
                async move {
                    let ev = event(org, "api_key.changed", &key.key_id.to_string());
                    if i % 2 == 0 {
                        store.revoke_api_key(org, key.key_id, "usr_a", 5, &ev).await.map(|_| ())
                    } else {
                        let successor = key_row(org, "next", None);
                        store.rotate_api_key(org, key.key_id, 9_000, &successor, &ev).await.map(|_| ())
                    }
                }
            })
            .await
        })
    };
    let mut cursor = 0;
    let mut seen = BTreeSet::new();
    loop {
        // Decided before the poll: a poll that starts after every writer
        // committed must see everything.
        let done = writers.is_finished();
        for gate in store.key_gate_changes(cursor).await? {
            assert!(gate.change_seq > cursor, "each change has its own sequence number, above the cursor");
            cursor = gate.change_seq;
            seen.insert(gate.key_id);
        }
        if done {
            break;
        }
    }
    for written in writers.await?? {
        written?;
    }
    let expected: BTreeSet<KeyId> = keys.iter().map(|k| k.key_id).collect();
    assert_eq!(seen, expected, "the poller missed a change");
    Ok(())
}

pub async fn concurrent_usage_adds_up(store: Arc<dyn Store>) -> TestResult {
    let (org, key) = make_org(&*store, "usage-race@example.com").await?;
    warm_up(&store).await?;
    let flushed = all_at_once(24, |i| {
        let store = store.clone();
        let delta = KeyUsageDelta {
            key_id: key.key_id,
            day: if i % 3 == 0 { "2024-05-01" } else { "2024-05-02" }.into(),
            count: 2,
            last_used_at: 1_000 + i as i64,
        };
        async move { store.record_key_usage(&[delta]).await }
    })
    .await?;
    for r in flushed {
        r?;
    }
    let usage = store.key_usage(org, key.key_id, "2024-01-01").await?;
    assert_eq!(
        usage,
        vec![UsageDay { day: "2024-05-01".into(), count: 16 }, UsageDay { day: "2024-05-02".into(), count: 32 }]
    );
    assert_eq!(store.get_api_key(org, key.key_id).await?.last_used_at, Some(1_023));
    Ok(())
}
