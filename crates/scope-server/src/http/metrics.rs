//! `GET /metrics`: the Prometheus text exposition of `runtime::metrics`; its
//! tests check the labels `http::telemetry` records for each request.
//!
//! Unauthenticated, like `/healthz` (Prometheus scrapes without tokens): keep
//! it reachable from the internal network only. No label names an id, email,
//! key id, token or prompt name.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::runtime::metrics;
use crate::service::App;

/// `GET /metrics`.
pub async fn serve(State(app): State<Arc<App>>) -> Response {
    let m = metrics::get();
    m.set_scrape_state(app.store.backend(), &app.store.pool_stats(), app.gates.revoked_count());
    m.set_prompt_cache(app.prompts.len(), app.prompts.bytes());
    ([(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE))], m.render()).into_response()
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use crate::config::ServerConfig;
    use crate::runtime::metrics::tests::sample;
    use crate::runtime::metrics::{HTTP_DURATION, HTTP_REQUESTS};
    use crate::service::App;

    async fn router() -> axum::Router {
        let store = scope_store::open("sqlite::memory:").await.unwrap_or_else(|e| panic!("store: {e}"));
        let app = App::start(store, ServerConfig::new("sqlite::memory:")).await.unwrap_or_else(|e| panic!("{e}"));
        crate::http::router(std::sync::Arc::new(app))
    }

    async fn call(router: &axum::Router, method: &str, path: &str) -> (StatusCode, String) {
        let req = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn requests(text: &str, method: &str, route: &str, status: u16) -> f64 {
        let series = format!("{HTTP_REQUESTS}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}");
        sample(text, &series).unwrap_or(0.0)
    }

    /// Other tests of this process record requests too: compare before and
    /// after, on routes and secrets only this test uses.
    #[tokio::test]
    async fn requests_are_labelled_by_route_template_never_by_path() {
        let router = router().await;
        let secret = "inv_s3cr3tInvitationTokenForTheLabelTest";
        let prompt = "label-test-prompt-name";
        let before = crate::runtime::metrics::get().render();

        // A matched route with a secret in its path, a nested API route, a
        // path no route matches, and a method outside the label list.
        call(&router, "GET", &format!("/invite/{secret}")).await;
        let (status, _) = call(&router, "GET", &format!("/api/v1/prompts/{prompt}/production")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&router, "GET", &format!("/no/such/{secret}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        call(&router, "BREW", "/healthz").await;

        let (status, text) = call(&router, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let delta = |m: &str, r: &str, s: u16| requests(&text, m, r, s) - requests(&before, m, r, s);
        assert!(delta("GET", "/invite/{token}", 200) + delta("GET", "/invite/{token}", 404) >= 1.0, "{text}");
        assert!(delta("GET", "/api/v1/prompts/{name}/production", 401) >= 1.0, "{text}");
        assert!(delta("GET", "unmatched", 404) >= 1.0, "{text}");
        assert!(delta("other", "/healthz", 405) >= 1.0, "{text}");
        let count = format!("{HTTP_DURATION}_count{{method=\"GET\",route=\"/api/v1/prompts/{{name}}/production\"}}");
        assert!(sample(&text, &count).is_some_and(|n| n >= 1.0), "{text}");
        for raw in [secret, prompt, "/no/such", "BREW"] {
            assert!(!text.contains(raw), "{raw} appears in /metrics:\n{text}");
        }
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text_without_a_token() {
        let router = router().await;
        let req = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("scope_build_info{"), "{text}");
        assert!(text.contains("scope_db_pool_max_connections{pool="), "{text}");
        assert!(text.contains("scope_revoked_keys "), "{text}");
    }
}
