//! Access tokens revoked one by one (RFC 7009): recorded once with their
//! audit row, listed for the in-memory views by a sequence that is never
//! reused (also after pruning), pruned once the token has expired; under
//! concurrency, every revocation reaches a poller.

use std::collections::BTreeSet;
use std::sync::Arc;

use scope_domain::{KeyId, OrgId};
use scope_store::*;

use crate::support::*;

fn revoked(org: OrgId, key: KeyId, jti: &str, expires_at: i64) -> RevokedTokenRow {
    RevokedTokenRow {
        jti: jti.into(),
        org_id: org,
        key_id: key,
        expires_at,
        revoked_at: 1_000,
        revoked_by: key.to_string(),
        change_seq: 0,
    }
}

pub async fn revoked_tokens_are_listed_once_in_order_until_pruned(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, key) = make_org(s, "tokens@example.com").await?;
    let (org_b, key_b) = make_org(s, "tokens-b@example.com").await?;
    let now = 50_000;
    assert!(s.revoked_token_changes(0, now).await?.is_empty());

    let audit_before = s.list_audit(org, &audit_page(200, None)).await?.len();
    let ev = |o, jti: &str| event(o, "api_key.token_revoked", jti);
    assert!(s.revoke_token(&revoked(org, key.key_id, "jti-expired", now - 1), &ev(org, "jti-expired")).await?);
    assert!(s.revoke_token(&revoked(org, key.key_id, "jti-a", now + 10_000), &ev(org, "jti-a")).await?);
    assert!(s.revoke_token(&revoked(org_b, key_b.key_id, "jti-b", now + 20_000), &ev(org_b, "jti-b")).await?);
    // Idempotent: the same jti again changes, audits and lists nothing new.
    assert!(!s.revoke_token(&revoked(org, key.key_id, "jti-a", now + 99_000), &ev(org, "jti-a")).await?);
    let audit = s.list_audit(org, &audit_page(200, None)).await?;
    assert_eq!(audit.len(), audit_before + 2, "one audit row per new revocation, in its organization");
    assert!(audit.iter().any(|a| a.action == "api_key.token_revoked" && a.target == "jti-a"));

    // The initial load: every revocation whose token has not expired, in
    // sequence order, rows as stored.
    let all = s.revoked_token_changes(0, now).await?;
    let jtis: Vec<&str> = all.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(jtis, ["jti-a", "jti-b"]);
    assert_eq!(
        all[0],
        RevokedTokenRow { change_seq: all[0].change_seq, ..revoked(org, key.key_id, "jti-a", now + 10_000) }
    );
    assert_eq!(all[1].org_id, org_b);
    assert!(all[0].change_seq > 0 && all[1].change_seq > all[0].change_seq);

    // Incremental polls: strictly above the cursor, expired ones included
    // (the caller drops them).
    let since_first = s.revoked_token_changes(all[0].change_seq, now).await?;
    assert_eq!(since_first.iter().map(|r| r.jti.as_str()).collect::<Vec<_>>(), ["jti-b"]);
    let last = all[1].change_seq;
    assert!(s.revoked_token_changes(last, now).await?.is_empty());

    // Pruning drops what expired before the cutoff, newest number included;
    // the next revocation still gets a number above every one handed out.
    assert_eq!(s.prune_revoked_tokens(now + 30_000).await?, 3);
    assert!(s.revoked_token_changes(0, 0).await?.is_empty());
    assert!(s.revoke_token(&revoked(org, key.key_id, "jti-c", now + 40_000), &ev(org, "jti-c")).await?);
    let after = s.revoked_token_changes(last, now).await?;
    assert_eq!(after.len(), 1);
    assert!(after[0].change_seq > last, "a pruned number is never handed out again");
    assert_eq!(s.prune_revoked_tokens(now).await?, 0);
    Ok(())
}

pub async fn token_poller_never_misses_a_concurrent_revocation(store: Arc<dyn Store>) -> TestResult {
    // As for key gates: writers racing each other must not commit a number
    // below one a poller has already seen.
    let (org, key) = make_org(&*store, "token-race@example.com").await?;
    warm_up(&store).await?;
    let n = 40;
    let writers = {
        let store = store.clone();
        tokio::spawn(async move {
            all_at_once(n, |i| {
                let store = store.clone();
                let jti = format!("race-{i}");
                async move {
                    let ev = event(org, "api_key.token_revoked", &jti);
                    store.revoke_token(&revoked(org, key.key_id, &jti, i64::MAX / 2), &ev).await
                }
            })
            .await
        })
    };
    let mut cursor = 0;
    let mut seen = BTreeSet::new();
    loop {
        let done = writers.is_finished();
        for row in store.revoked_token_changes(cursor, 0).await? {
            assert!(row.change_seq > cursor, "each revocation has its own number, above the cursor");
            cursor = row.change_seq;
            seen.insert(row.jti);
        }
        if done {
            break;
        }
    }
    for written in writers.await?? {
        assert!(written?, "each jti is new");
    }
    let expected: BTreeSet<String> = (0..n).map(|i| format!("race-{i}")).collect();
    assert_eq!(seen, expected, "the poller missed a revocation");
    Ok(())
}
