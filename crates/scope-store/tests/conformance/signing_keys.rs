//! Token-signing keys: a new key retires the others (also when replicas
//! rotate at once), a duplicate rolls back, old retired keys are deleted.

use std::sync::Arc;

use scope_store::*;

use crate::support::*;

pub async fn signing_keys_rotate(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
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

pub async fn concurrent_rotations_leave_one_active_key(store: Arc<dyn Store>) -> TestResult {
    // Replicas rotating at the same time: every key but one ends up retired.
    warm_up(&store).await?;
    let inserted = all_at_once(10, |i| {
        let store = store.clone();
        let row = SigningKeyRow {
            kid: format!("sk_race_{i}"),
            public_key: vec![1; 32],
            private_key: vec![2; 32],
            encrypted: false,
            created_at: 1_000 + i as i64,
            retired_at: None,
        };
        async move { store.insert_signing_key(&row).await }
    })
    .await?;
    for r in inserted {
        r?;
    }
    let keys = store.list_signing_keys().await?;
    assert_eq!(keys.len(), 10);
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    Ok(())
}

pub async fn a_plaintext_key_is_sealed_once(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let plain = SigningKeyRow {
        kid: "sk_plain".into(),
        public_key: vec![1; 32],
        private_key: vec![2; 32],
        encrypted: false,
        created_at: 100,
        retired_at: None,
    };
    s.insert_signing_key(&plain).await?;
    assert!(s.seal_signing_key("sk_plain", &[3; 60]).await?);
    let keys = s.list_signing_keys().await?;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].encrypted);
    assert_eq!(keys[0].private_key, vec![3; 60]);
    assert_eq!(keys[0].public_key, vec![1; 32]);
    assert_eq!(keys[0].retired_at, None);
    // Already sealed (say, by another replica): nothing changes.
    assert!(!s.seal_signing_key("sk_plain", &[4; 60]).await?);
    assert_eq!(s.list_signing_keys().await?[0].private_key, vec![3; 60]);
    // Unknown key.
    assert!(!s.seal_signing_key("sk_nope", &[4; 60]).await?);
    Ok(())
}
