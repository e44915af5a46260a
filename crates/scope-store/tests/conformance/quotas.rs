//! The counts behind the per-organization quotas: scoped by organization,
//! prompts gone with their deletion, keys counted only while active.

use std::sync::Arc;

use scope_store::*;

use crate::support::*;

pub async fn counts_are_per_org_and_follow_changes(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (a, _) = make_org(s, "a@quota.test").await?;
    let (b, _) = make_org(s, "b@quota.test").await?;
    assert_eq!(s.count_prompts(a).await?, 0);
    let (p1, _) = make_prompt(s, a, "one", &[], "x").await?;
    make_prompt(s, a, "two", &[], "x").await?;
    make_prompt(s, b, "one", &[], "x").await?;
    assert_eq!(s.count_prompts(a).await?, 2);
    assert_eq!(s.count_prompts(b).await?, 1);
    s.delete_prompt(a, p1, &event(a, "prompt.deleted", &p1.to_string())).await?;
    assert_eq!(s.count_prompts(a).await?, 1);
    assert_eq!(s.count_prompts(b).await?, 1);

    // Each org starts with its bootstrap key (no expiry).
    assert_eq!(s.count_active_api_keys(a, 5_000).await?, 1);
    let expiring = key_row(a, "expiring", Some(10_000));
    s.insert_api_key(&expiring, &event(a, "api_key.created", &expiring.key_id.to_string())).await?;
    let revoked = key_row(a, "revoked", None);
    s.insert_api_key(&revoked, &event(a, "api_key.created", &revoked.key_id.to_string())).await?;
    assert_eq!(s.count_active_api_keys(a, 5_000).await?, 3);
    s.revoke_api_key(a, revoked.key_id, "system", 6_000, &event(a, "api_key.revoked", &revoked.key_id.to_string()))
        .await?;
    assert_eq!(s.count_active_api_keys(a, 6_000).await?, 2);
    // Past its expiry the expiring key no longer counts.
    assert_eq!(s.count_active_api_keys(a, 10_000).await?, 1);
    assert_eq!(s.count_active_api_keys(b, 6_000).await?, 1);
    Ok(())
}
