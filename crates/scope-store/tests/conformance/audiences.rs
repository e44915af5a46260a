//! Audiences an organization allows in its tokens' `aud` (RFC 8707):
//! replaced as a set with its audit row, per organization, kept with who
//! added them and when through an export.

use std::sync::Arc;

use scope_store::*;

use crate::support::*;

pub async fn audiences_are_replaced_per_org_and_audited(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "aa@example.com").await?;
    let (org_b, _) = make_org(s, "ab@example.com").await?;
    assert!(s.list_audiences(org).await?.is_empty());

    let set = vec!["https://gateway.example".to_owned(), "billing-api".to_owned()];
    s.set_audiences(org, &set, &audit_at(org, "usr_a", "org.audiences_changed", &org.to_string(), 10)).await?;
    assert_eq!(s.list_audiences(org).await?, vec!["billing-api".to_owned(), "https://gateway.example".to_owned()]);
    assert!(s.list_audiences(org_b).await?.is_empty(), "another organization's list stays its own");

    // Replacing: kept values keep who added them and when, new ones get the
    // audit row's actor and time, dropped ones go.
    let set = vec!["https://gateway.example".to_owned(), "https://other.example".to_owned()];
    s.set_audiences(org, &set, &audit_at(org, "usr_b", "org.audiences_changed", &org.to_string(), 20)).await?;
    assert_eq!(s.list_audiences(org).await?, set);
    let exported = s.export().await?;
    let rows: Vec<_> =
        exported.org_audiences.iter().map(|a| (a.audience.as_str(), a.created_at, a.created_by.as_str())).collect();
    assert_eq!(rows, vec![("https://gateway.example", 10, "usr_a"), ("https://other.example", 20, "usr_b")]);
    assert!(exported.org_audiences.iter().all(|a| a.org_id == org));

    // Each change is audited in its transaction.
    let actions = audit_actions(s, org).await?;
    assert_eq!(actions.iter().filter(|a| *a == "org.audiences_changed").count(), 2, "{actions:?}");

    s.set_audiences(org, &[], &event(org, "org.audiences_changed", "x")).await?;
    assert!(s.list_audiences(org).await?.is_empty());
    Ok(())
}
