//! Health, readiness and `GET /api/v1/me`.

use crate::harness::TestServer;

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        let r = server.anon().get(path).await;
        r.assert_status(200);
        assert!(r.json().is_object(), "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn me_describes_the_calling_key() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/me").await;
    r.assert_status(200);
    let v = r.json();
    assert_eq!(v["org_id"], server.org.org_id.as_str());
    assert_eq!(v["principal_type"], "api_key");
    assert_eq!(v["principal_id"], server.org.key_id.as_str());
    assert_eq!(v["role"], "admin");

    let (viewer, key) = server.client_with_role(&admin, "viewer").await;
    let v = viewer.get("/api/v1/me").await.json();
    assert_eq!(v["principal_id"], key.key_id.as_str());
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["org_id"], server.org.org_id.as_str());

    server.anon().get("/api/v1/me").await.assert_error(401, "unauthorized");
}
