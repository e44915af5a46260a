//! ETag revalidation and labels against a real server.

use std::time::Duration;

use scope_client::{Error, FetchSource};
use serde_json::json;

use super::Scope;

fn requests(route: &str, status: u16) -> String {
    format!("scope_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"{status}\"}}")
}

const PRODUCTION: &str = "/api/v1/prompts/{name}/production";

#[tokio::test]
async fn an_expired_entry_is_revalidated_with_its_etag() {
    let scope = Scope::start(None).await;
    let [_, v2, v3] = scope.seed_greeting().await;
    let ttl = Duration::from_millis(150);
    let client = scope.client().cache_ttl(ttl).build().unwrap();

    let first = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(first.version_id, v2);
    assert_eq!(scope.metric(&requests(PRODUCTION, 200)).await, 1.0);

    // Expired, unchanged: one conditional request, answered 304 without a
    // body; the same copy is served, renewed for another TTL.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(f.source, FetchSource::Network);
    assert!(std::sync::Arc::ptr_eq(&f.version, &first), "the cached copy is kept, not downloaded again");
    assert_eq!(scope.metric(&requests(PRODUCTION, 304)).await, 1.0);
    assert_eq!(scope.metric(&requests(PRODUCTION, 200)).await, 1.0);
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!(f.source, FetchSource::Cache, "renewed by the 304");

    // Expired and changed: the conditional request gets the new version.
    scope.promote("greeting", &v3).await;
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let v = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(v.version_id, v3);
    assert_eq!(scope.metric(&requests(PRODUCTION, 200)).await, 2.0);
    assert_eq!(scope.metric(&requests(PRODUCTION, 304)).await, 1.0);
    let f = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
    assert_eq!((f.source, f.version.version_id.as_str()), (FetchSource::Cache, v3.as_str()));
}

#[tokio::test]
async fn any_label_is_fetched_and_cached() {
    let scope = Scope::start(None).await;
    let [v1, v2, v3] = scope.seed_greeting().await;
    scope.admin_put("/prompts/greeting/labels/staging", json!({"version_id": v3})).await;
    scope.admin_put("/prompts/greeting/labels/eu-west_1", json!({"version_id": v1})).await;
    let client = scope.client().build().unwrap();

    let staging = client.get_prompt_version("greeting").label("staging").await.unwrap();
    assert_eq!((staging.version_id.as_str(), staging.version), (v3.as_str(), 3));
    let eu = client.get_prompt_version("greeting").label("eu-west_1").await.unwrap();
    assert_eq!(eu.version_id, v1);
    // Each label is its own cache entry, beside production.
    let prod = client.get_prompt_version("greeting").await.unwrap();
    assert_eq!(prod.version_id, v2);
    let f = client.get_prompt_version("greeting").label("staging").send_with_meta().await.unwrap();
    assert_eq!((f.source, f.version.version_id.as_str()), (FetchSource::Cache, v3.as_str()));
    // By prompt id too.
    let by_id = client.get_prompt_version(&prod.prompt_id).label("staging").await.unwrap();
    assert_eq!(by_id.version_id, v3);
    // A label the prompt lacks is the server's 404.
    let err = client.get_prompt_version("greeting").label("canary").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}
