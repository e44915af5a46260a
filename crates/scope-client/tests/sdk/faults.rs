//! Behaviour against a scripted local HTTP server: retries, timeouts,
//! connection failures, token refresh, single-flight, caching, fallback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use scope_client::{ClientBuilder, Error};
use serde_json::json;

use crate::support::{
    closed_port_url, creds, env_map, mistyped_secret, prompt_json, MockServer, Reply, KEY, LEGACY, LOGIN, ORG,
};

const PROD: &str = "/api/v1/prompts/greeting/production";

fn is_auth(path: &str) -> bool {
    path == LOGIN || path == LEGACY
}

fn ok_prompt() -> Reply {
    Reply::json(200, prompt_json("greeting", 1, "Hello {{name}}"))
}

mod retries {
    use super::*;

    #[tokio::test]
    async fn rate_limited_with_retry_after_then_ok() {
        let server = MockServer::start(|r| match (is_auth(&r.path), r.nth) {
            (true, n) => Reply::token(n + 1, 3600.0),
            (false, 0) => Reply::error(429, "rate_limited", "slow down").header("Retry-After", "1"),
            (false, _) => ok_prompt(),
        })
        .await;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&errors);
        let client =
            server.client().on_error(move |e| seen.lock().push((e.error.status(), e.will_retry))).build().unwrap();
        let started = Instant::now();
        let v = client.get_prompt_version("greeting").await.unwrap();
        let waited = started.elapsed();
        assert_eq!(v.name, "greeting");
        assert_eq!(server.count(PROD), 2);
        // Retry-After: 1 was waited exactly, not the 5 ms backoff.
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        assert_eq!(*errors.lock(), [(Some(429), true)]);
    }

    #[tokio::test]
    async fn retry_after_beyond_the_cap_is_returned_to_the_caller() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply::error(429, "rate_limited", "too many requests")
                .header("Retry-After", "120")
                .header("X-Request-ID", "req-429"),
        })
        .await;
        let client = server.client().build().unwrap();
        let started = Instant::now();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.code(), Some("rate_limited"));
        assert_eq!(err.request_id(), Some("req-429"));
        assert_eq!(server.count(PROD), 1);
    }

    #[tokio::test]
    async fn rate_limited_after_retries_are_used_up() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply::error(429, "rate_limited", "slow down").header("Retry-After", "0"),
        })
        .await;
        let client = server.client().max_retries(2).build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::ZERO));
        assert_eq!(server.count(PROD), 3);
    }

    #[tokio::test]
    async fn service_unavailable_then_ok() {
        let server = MockServer::start(|r| match (is_auth(&r.path), r.nth) {
            (true, n) => Reply::token(n + 1, 3600.0),
            (false, 0 | 1) => Reply::error(503, "internal", "restarting"),
            (false, _) => ok_prompt(),
        })
        .await;
        let client = server.client().build().unwrap();
        let v = client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(v.version, 1);
        assert_eq!(server.count(PROD), 3);
        assert_eq!(server.exchanges(), 1);
    }

    #[tokio::test]
    async fn server_errors_exhaust_max_retries() {
        for status in [500u16, 502, 504] {
            let server = MockServer::start(move |r| match is_auth(&r.path) {
                true => Reply::token(r.nth + 1, 3600.0),
                false => Reply::error(status, "internal", "boom"),
            })
            .await;
            let client = server.client().build().unwrap();
            let err = client.get_prompt_version("greeting").await.unwrap_err();
            assert!(matches!(err, Error::Server(_)), "{err:?}");
            assert_eq!(err.status(), Some(status));
            // max_retries 3 (the default): four attempts.
            assert_eq!(server.count(PROD), 4, "{status}");
        }
    }

    #[tokio::test]
    async fn other_client_errors_are_never_retried() {
        type Check = fn(&Error) -> bool;
        let cases: [(u16, &str, Check); 5] = [
            (400, "bad_request", |e| matches!(e, Error::Validation(_))),
            (403, "forbidden", |e| matches!(e, Error::Authorization(_))),
            (404, "not_found", |e| matches!(e, Error::NotFound(_))),
            (409, "conflict", |e| matches!(e, Error::Conflict(_))),
            (413, "payload_too_large", |e| matches!(e, Error::Validation(_))),
        ];
        for (status, code, check) in cases {
            let server = MockServer::start(move |r| match is_auth(&r.path) {
                true => Reply::token(r.nth + 1, 3600.0),
                false => Reply::error(status, code, "nope").header("X-Request-ID", "req-1"),
            })
            .await;
            let client = server.client().build().unwrap();
            let err = client.get_prompt_version("greeting").label("latest").await.unwrap_err();
            assert!(check(&err), "{status}: {err:?}");
            assert_eq!(err.code(), Some(code));
            assert_eq!(err.status(), Some(status));
            assert_eq!(err.request_id(), Some("req-1"));
            assert_eq!(server.api_count(), 1, "{status} was retried");
        }
    }

    #[tokio::test]
    async fn non_json_error_bodies_still_map() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply { status: 502, headers: vec![], body: "<html>bad gateway</html>".into(), delay: None },
        })
        .await;
        let client = server.client().max_retries(0).build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Server(_)));
        assert!(err.to_string().contains("Bad Gateway"), "{err}");
        assert_eq!(err.code(), None);
        // Without a server request id, the one the SDK sent is reported.
        let sent = server.requests().into_iter().find(|r| r.path == PROD).unwrap();
        assert_eq!(err.request_id(), sent.header("x-request-id"));
    }

    #[tokio::test]
    async fn undecodable_success_body_is_a_decode_error() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply::json(200, json!({"unexpected": true})),
        })
        .await;
        let client = server.client().build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
        assert_eq!(server.api_count(), 1);
    }
}

mod network {
    use super::*;

    #[tokio::test]
    async fn hang_past_the_timeout() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => ok_prompt().delay(Duration::from_secs(30)),
        })
        .await;
        let client = server.client().timeout(Duration::from_millis(300)).max_retries(1).build().unwrap();
        let started = Instant::now();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(err.request_id().is_some());
        assert_eq!(server.count(PROD), 2, "one retry after the timeout");
        assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn connection_refused() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&attempts);
        let client = ClientBuilder::new()
            .credentials(creds())
            .api_url(closed_port_url())
            .max_retries(2)
            .retry_base_delay(Duration::from_millis(5))
            .on_request(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
        // The token exchange was attempted three times (1 + max_retries).
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn api_refused_while_auth_is_up() {
        let auth = MockServer::scope().await;
        let client = ClientBuilder::new()
            .credentials(creds())
            .api_url(closed_port_url())
            .auth_api_url(auth.url())
            .max_retries(2)
            .retry_base_delay(Duration::from_millis(5))
            .build()
            .unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert_eq!(auth.exchanges(), 1);
    }

    #[tokio::test]
    async fn mistyped_secret_never_reaches_the_network() {
        let server = MockServer::scope().await;
        let url = server.url();
        let env = env_map(&[
            ("SCOPE_ORG_ID", ORG),
            ("SCOPE_API_KEY", KEY),
            ("SCOPE_API_SECRET", &mistyped_secret()),
            ("SCOPE_API_URL", &url),
        ]);
        let err = ClientBuilder::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(server.requests().is_empty());
    }
}

mod tokens {
    use super::*;

    #[tokio::test]
    async fn exchange_body_and_request_headers() {
        let server = MockServer::scope().await;
        let client = server.client().environment("staging").build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        let reqs = server.requests();
        let login = reqs.iter().find(|r| r.path == LOGIN).unwrap();
        assert_eq!(login.method, "POST");
        assert_eq!(
            login.json(),
            json!({"account_id": ORG, "client_id": KEY, "client_secret": crate::support::secret()})
        );
        let api = reqs.iter().find(|r| r.path == PROD).unwrap();
        assert_eq!(api.method, "GET");
        assert_eq!(api.bearer(), Some("tok-1"));
        assert_eq!(api.header("accept"), Some("application/json"));
        assert_eq!(api.header("x-scope-environment"), Some("staging"));
        let ua = api.header("user-agent").unwrap();
        assert_eq!(ua, format!("scope-client-rust/{}", env!("CARGO_PKG_VERSION")));
        assert!(!api.header("x-request-id").unwrap_or("").is_empty());
        assert_ne!(login.header("x-request-id"), api.header("x-request-id"));
    }

    #[tokio::test]
    async fn paths_for_labels_versions_and_odd_names() {
        let server = MockServer::scope().await;
        let client = server.client().build().unwrap();
        client.get_prompt_version("greeting").label("latest").await.unwrap();
        client.get_prompt_version("greeting").version_id("v_01JD8X3Q7V9W0K2M4N6P8R0T2V").await.unwrap();
        client.get_prompt_version("pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V").await.unwrap();
        let _ = client.get_prompt_version("a b/c").await;
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).filter(|p| !is_auth(p)).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/prompts/greeting/latest",
                "/api/v1/prompts/greeting/versions/v_01JD8X3Q7V9W0K2M4N6P8R0T2V",
                "/api/v1/prompts/pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V/production",
                "/api/v1/prompts/a%20b%2Fc/production",
            ]
        );
        // Empty names and ids are rejected locally.
        assert!(matches!(client.get_prompt_version("").await, Err(Error::Validation(_))));
        assert!(matches!(client.get_prompt_version("x").version_id("").await, Err(Error::Validation(_))));
    }

    #[tokio::test]
    async fn selectors_are_checked_before_sending() {
        let server = MockServer::scope().await;
        let client = server.client().build().unwrap();
        // A version number is not a version id.
        let err = client.get_prompt_version("greeting").version_id("1").await.unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        assert!(err.to_string().contains("'1' is not a version id"), "{err}");
        for bad in ["v_", "v_123", "01JD8X3Q7V9W0K2M4N6P8R0T2V", "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V"] {
            let err = client.get_prompt_version("greeting").version_id(bad).await.unwrap_err();
            assert!(matches!(err, Error::Validation(_)), "{bad}: {err:?}");
        }
        // A label must have a label's shape (SPEC §9): refused locally,
        // saying what a label is.
        for bad in ["Staging", "a b", "-x", "", "_x", "stag/ing", &"x".repeat(65)] {
            let err = client.get_prompt_version("greeting").label(bad).await.unwrap_err();
            assert!(matches!(err, Error::Validation(_)), "{bad}: {err:?}");
        }
        let err = client.get_prompt_version("greeting").label("Staging").await.unwrap_err();
        assert!(err.to_string().contains("'Staging' is not a label"), "{err}");
        assert!(server.requests().is_empty(), "nothing was sent: {:?}", server.requests());
        // The deprecated name still works.
        #[allow(deprecated)]
        let v = client.get_prompt_version("greeting").version("v_01JD8X3Q7V9W0K2M4N6P8R0T2V").await.unwrap();
        assert_eq!(v.name, "greeting");
        // Any well-formed label is fetched: production and latest at their
        // SPEC §5 paths, the others at SPEC §9's /labels/{label}.
        for label in ["staging", "eu-west_2", "0", &"x".repeat(64)] {
            client.get_prompt_version("greeting").label(label).await.unwrap();
        }
        client.get_prompt_version("greeting").label("latest").await.unwrap();
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).filter(|p| !is_auth(p)).collect();
        let long = format!("/api/v1/prompts/greeting/labels/{}", "x".repeat(64));
        assert_eq!(
            paths,
            [
                "/api/v1/prompts/greeting/versions/v_01JD8X3Q7V9W0K2M4N6P8R0T2V",
                "/api/v1/prompts/greeting/labels/staging",
                "/api/v1/prompts/greeting/labels/eu-west_2",
                "/api/v1/prompts/greeting/labels/0",
                &long,
                "/api/v1/prompts/greeting/latest",
            ]
        );
    }

    #[tokio::test]
    async fn falls_back_to_sdk_token_on_404_and_remembers() {
        let server = MockServer::start(|r| match r.path.as_str() {
            LOGIN => Reply::error(404, "not_found", "no such route"),
            LEGACY => Reply::token(r.nth + 1, 3600.0),
            _ => ok_prompt(),
        })
        .await;
        let client = server.client().build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        let legacy = server.requests().into_iter().find(|r| r.path == LEGACY).unwrap();
        assert_eq!(legacy.json(), json!({"account_id": ORG, "key_id": KEY, "key_secret": crate::support::secret()}));
        client.clear_token();
        client.get_prompt_version("greeting").skip_cache().await.unwrap();
        assert_eq!(server.count(LOGIN), 1, "the 0.2 endpoint is not asked again");
        assert_eq!(server.count(LEGACY), 2);
    }

    #[tokio::test]
    async fn both_token_endpoints_missing_is_not_found() {
        let server = MockServer::start(|_| Reply::error(404, "not_found", "nothing here")).await;
        let client = server.client().build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("SCOPE_AUTH_API_URL"), "{err}");
    }

    #[tokio::test]
    async fn refused_credentials_are_an_authentication_error() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::error(401, "invalid_credentials", "invalid credentials"),
            false => ok_prompt(),
        })
        .await;
        let client = server.client().build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err:?}");
        assert_eq!(err.code(), Some("invalid_credentials"));
        // The refused key and where it came from are named.
        assert_eq!(err.message(), Some(format!("invalid credentials (key {KEY} from key_id)").as_str()));
        assert_eq!(server.exchanges(), 1, "401 is not retried");
        assert_eq!(server.api_count(), 0);
        assert!(!err.to_string().contains(&crate::support::secret()));
    }

    #[tokio::test]
    async fn a_401_on_a_fresh_token_refreshes_once_and_retries() {
        let server = MockServer::start(|r| {
            if is_auth(&r.path) {
                return Reply::token(r.nth + 1, 3600.0);
            }
            match r.bearer() {
                Some("tok-1") => Reply::error(401, "unauthorized", "token revoked"),
                _ => ok_prompt(),
            }
        })
        .await;
        let client = server.client().build().unwrap();
        let v = client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(v.name, "greeting");
        assert_eq!(server.exchanges(), 2);
        assert_eq!(server.count(PROD), 2);
        let bearers: Vec<Option<String>> =
            server.requests().iter().filter(|r| r.path == PROD).map(|r| r.bearer().map(str::to_owned)).collect();
        assert_eq!(bearers, [Some("tok-1".to_owned()), Some("tok-2".to_owned())]);
    }

    #[tokio::test]
    async fn a_second_401_is_returned() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply::error(401, "unauthorized", "key revoked"),
        })
        .await;
        let client = server.client().build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err:?}");
        assert_eq!(server.exchanges(), 2, "refreshed exactly once");
        assert_eq!(server.count(PROD), 2);
    }

    #[tokio::test]
    async fn token_is_reused_then_refreshed_before_expiry() {
        // 1 s tokens: the 60 s buffer is clamped to half the lifetime.
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 1.0),
            false => ok_prompt(),
        })
        .await;
        let client = server.client().cache(false).build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.exchanges(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.exchanges(), 2);
        let last = server.requests().into_iter().rfind(|r| r.path == PROD).unwrap();
        assert_eq!(last.bearer(), Some("tok-2"));
    }

    #[tokio::test]
    async fn a_failed_early_refresh_keeps_the_valid_token() {
        let server = MockServer::start(|r| match (is_auth(&r.path), r.nth) {
            (true, 0) => Reply::token(1, 2.0),
            (true, _) => Reply::error(503, "internal", "auth down"),
            (false, _) => ok_prompt(),
        })
        .await;
        let client = server.client().cache(false).max_retries(0).build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Past the refresh point, before expiry: the refresh fails, the
        // current token still works.
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.exchanges(), 2);
        let last = server.requests().into_iter().rfind(|r| r.path == PROD).unwrap();
        assert_eq!(last.bearer(), Some("tok-1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_on_an_expired_token() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            // A slow exchange widens the window for duplicate refreshes.
            true => Reply::token(r.nth + 1, 1.0).delay(Duration::from_millis(100)),
            false => ok_prompt(),
        })
        .await;
        let client = server.client().cache(false).build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.exchanges(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get_prompt_version("greeting").await.map(|v| v.version) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(server.exchanges(), 2, "64 callers, one refresh");
        assert_eq!(server.count(PROD), 65);
        let bearers: std::collections::HashSet<String> = server
            .requests()
            .iter()
            .filter(|r| r.path == PROD)
            .skip(1)
            .filter_map(|r| r.bearer().map(str::to_owned))
            .collect();
        assert_eq!(bearers.into_iter().collect::<Vec<_>>(), ["tok-2"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_cache_misses_share_one_fetch() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            // A slow answer keeps all 64 callers waiting on the same miss.
            false => ok_prompt().delay(Duration::from_millis(200)),
        })
        .await;
        let client = server.client().build().unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get_prompt_version("greeting").await })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        assert_eq!(server.count(PROD), 1, "64 concurrent misses, one request");
        assert!(got.iter().all(|v| Arc::ptr_eq(v, &got[0])));
        // With the cache off, every call is its own request.
        let uncached = server.client().cache(false).build().unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = uncached.clone();
                tokio::spawn(async move { c.get_prompt_version("greeting").await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(server.count(PROD), 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_on_a_cold_start() {
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0).delay(Duration::from_millis(100)),
            false => ok_prompt(),
        })
        .await;
        let client = server.client().cache(false).build().unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get_prompt_version("greeting").await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(server.exchanges(), 1);
    }
}

mod errors {
    use super::*;

    #[tokio::test]
    async fn no_production_version_versus_missing_prompt() {
        let server = MockServer::start(|r| {
            if is_auth(&r.path) {
                return Reply::token(r.nth + 1, 3600.0);
            }
            if r.path.contains("/drafty/") {
                Reply::error(404, "no_production_version", "prompt 'drafty' has no production version")
                    .header("X-Request-ID", "rq-7")
            } else if r.path.contains("/wordy/") {
                // The code decides, never the message.
                Reply::error(404, "not_found", "no production version of that name here")
            } else {
                Reply::error(404, "not_found", "prompt not found")
            }
        })
        .await;
        let client = server.client().build().unwrap();
        match client.get_prompt_version("drafty").await {
            Err(e @ Error::NoProductionVersion { .. }) => {
                assert_eq!(e.status(), Some(404));
                assert_eq!(e.code(), Some("no_production_version"));
                assert_eq!(e.request_id(), Some("rq-7"));
                let Error::NoProductionVersion { name, .. } = &e else { unreachable!() };
                assert_eq!(name, "drafty");
            }
            other => panic!("{other:?}"),
        }
        let missing = client.get_prompt_version("ghost").await.unwrap_err();
        assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
        assert_eq!(missing.code(), Some("not_found"));
        let wordy = client.get_prompt_version("wordy").await.unwrap_err();
        assert!(matches!(wordy, Error::NotFound(_)), "{wordy:?}");
    }

    /// How often `needle` occurs in `hay`, ignoring case.
    fn occurrences(hay: &str, needle: &str) -> usize {
        hay.to_lowercase().matches(&needle.to_lowercase()).count()
    }

    #[tokio::test]
    async fn an_anyhow_chain_prints_each_fact_once() {
        // A configuration error: its text once (it is not also a source).
        let env = env_map(&[("SCOPE_API_KEY", KEY)]);
        let err = ClientBuilder::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(err.message(), Some("not set (the organization id, org_...)"));
        let text = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(text, "configuration error: SCOPE_ORG_ID: not set (the organization id, org_...)");

        // No production version: the server's message is not repeated.
        let server = MockServer::start(|r| match is_auth(&r.path) {
            true => Reply::token(r.nth + 1, 3600.0),
            false => Reply::error(404, "no_production_version", "prompt 'drafty' has no production version")
                .header("X-Request-ID", "rq-9"),
        })
        .await;
        let err = server.client().build().unwrap().get_prompt_version("drafty").await.unwrap_err();
        assert_eq!(err.message(), Some("prompt 'drafty' has no production version"));
        assert_eq!(err.api_error().and_then(|a| a.code.as_deref()), Some("no_production_version"));
        let text = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            text,
            "prompt 'drafty' has no production version (HTTP 404, code no_production_version, request id rq-9)"
        );

        // A refused connection: our summary once, then reqwest's causes, each
        // once, and the io::Error reachable through `source()`.
        let client =
            ClientBuilder::new().credentials(creds()).api_url(closed_port_url()).max_retries(0).build().unwrap();
        let err = client.get_prompt_version("greeting").await.unwrap_err();
        assert!(err.message().is_none());
        let rid = err.request_id().expect("request id").to_owned();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_connect), "{source:?}");
        let mut io_kind = None;
        let mut next = Some(source);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            next = e.source();
        }
        assert_eq!(io_kind, Some(std::io::ErrorKind::ConnectionRefused));
        let chain = err.chain().to_string();
        let text = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(text, chain);
        assert!(text.starts_with(&format!("connection failed (request id {rid}): ")), "{text}");
        for fact in ["connection failed", rid.as_str(), "connection refused", "error sending request"] {
            assert_eq!(occurrences(&text, fact), 1, "{fact:?} in {text}");
        }
        let parts: Vec<&str> = text.split(": ").collect();
        let mut unique = parts.clone();
        unique.dedup();
        assert_eq!(parts, unique, "a cause repeated: {text}");
    }

    #[tokio::test]
    async fn hooks_see_every_attempt_but_no_secrets() {
        let server = MockServer::start(|r| match (is_auth(&r.path), r.nth) {
            (true, n) => Reply::token(n + 1, 3600.0),
            (false, 0) => Reply::error(503, "internal", "blip"),
            (false, _) => ok_prompt(),
        })
        .await;
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let (l1, l2, l3) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
        let client = server
            .client()
            .on_request(move |e| l1.lock().push(format!("req {} {} #{} {}", e.method, e.url, e.attempt, e.request_id)))
            .on_response(move |e| l2.lock().push(format!("resp {} #{} {}", e.status, e.attempt, e.request_id)))
            .on_error(move |e| l3.lock().push(format!("err {} retry={}", e.error, e.will_retry)))
            .build()
            .unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        let log = log.lock().clone();
        let kinds: Vec<&str> = log.iter().map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(kinds, ["req", "resp", "req", "resp", "err", "req", "resp"], "{log:#?}");
        assert!(log[2].contains("/api/v1/prompts/greeting/production #0"));
        assert!(log[5].contains("#1"));
        assert!(log[4].contains("retry=true"));
        let all = log.join("\n");
        assert!(!all.contains("tok-1") && !all.contains(&crate::support::secret()), "{all}");
    }
}

mod cache {
    use super::*;

    #[tokio::test]
    async fn hits_do_not_reach_the_server() {
        let server = MockServer::scope().await;
        let client = server.client().build().unwrap();
        let first = client.get_prompt_version("greeting").await.unwrap();
        for _ in 0..20 {
            let again = client.get_prompt_version("greeting").await.unwrap();
            assert!(Arc::ptr_eq(&first, &again));
        }
        assert_eq!(server.api_count(), 1);
        // Other labels and versions are other keys.
        client.get_prompt_version("greeting").label("latest").await.unwrap();
        client.get_prompt_version("greeting").version_id("v_01JD8X3Q7V9W0K2M4N6P8R0T01").await.unwrap();
        client.get_prompt_version("greeting").label("latest").await.unwrap();
        assert_eq!(server.api_count(), 3);
        assert_eq!(client.cache_len(), 3);
        // skip_cache always asks, and refreshes the cached copy.
        let fresh = client.get_prompt_version("greeting").skip_cache().await.unwrap();
        assert_eq!(server.api_count(), 4);
        assert!(Arc::ptr_eq(&fresh, &client.get_prompt_version("greeting").await.unwrap()));
        // clear_cache empties it.
        client.clear_cache();
        assert_eq!(client.cache_len(), 0);
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.api_count(), 5);
        // render_prompt uses the cache too.
        let text = client.render_prompt("greeting", &HashMap::from([("name", "Ada")])).await.unwrap();
        assert_eq!(text, "Hello Ada");
        assert_eq!(server.api_count(), 5);
    }

    #[tokio::test]
    async fn ttl_expiry_and_per_call_ttl() {
        let server = MockServer::scope().await;
        let client = server.client().cache_ttl(Duration::from_millis(150)).build().unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.api_count(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // A per-call TTL shorter than the entry's age is a miss.
        client.get_prompt_version("greeting").cache_ttl(Duration::from_millis(30)).await.unwrap();
        assert_eq!(server.api_count(), 2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.get_prompt_version("greeting").await.unwrap();
        assert_eq!(server.api_count(), 3);
    }

    #[tokio::test]
    async fn disabled_cache_always_asks() {
        let server = MockServer::scope().await;
        let client = server.client().cache(false).build().unwrap();
        for _ in 0..3 {
            client.get_prompt_version("greeting").await.unwrap();
        }
        assert_eq!(server.api_count(), 3);
        assert_eq!(client.cache_len(), 0);
    }

    #[tokio::test]
    async fn stale_if_error_serves_the_last_good_copy() {
        let fail = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&fail);
        let server = MockServer::start(move |r| {
            if is_auth(&r.path) {
                return Reply::token(r.nth + 1, 3600.0);
            }
            match flag.load(Ordering::SeqCst) {
                0 => ok_prompt(),
                1 => Reply::error(503, "internal", "down"),
                _ => Reply::error(404, "not_found", "prompt not found"),
            }
        })
        .await;
        let ttl = Duration::from_millis(100);
        let stale =
            server.client().cache_ttl(ttl).max_retries(0).stale_if_error(Duration::from_secs(60)).build().unwrap();
        let strict = server.client().cache_ttl(ttl).max_retries(0).build().unwrap();
        let good = stale.get_prompt_version("greeting").await.unwrap();
        strict.get_prompt_version("greeting").await.unwrap();
        fail.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let served = stale.get_prompt_version("greeting").await.unwrap();
        assert!(Arc::ptr_eq(&good, &served));
        assert!(matches!(strict.get_prompt_version("greeting").await, Err(Error::Server(_))));
        // Not for definitive answers: a 404 is returned as is.
        fail.store(2, Ordering::SeqCst);
        assert!(matches!(stale.get_prompt_version("greeting").await, Err(Error::NotFound(_))));
    }

    #[tokio::test]
    async fn send_with_meta_tells_cache_network_and_stale_apart() {
        use scope_client::FetchSource;
        let fail = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&fail);
        let server = MockServer::start(move |r| {
            if is_auth(&r.path) {
                return Reply::token(r.nth + 1, 3600.0);
            }
            match flag.load(Ordering::SeqCst) {
                0 => ok_prompt(),
                _ => Reply::error(503, "internal", "down"),
            }
        })
        .await;
        let ttl = Duration::from_millis(200);
        let client =
            server.client().cache_ttl(ttl).max_retries(0).stale_if_error(Duration::from_secs(60)).build().unwrap();
        let first = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
        assert_eq!((first.source, first.age), (FetchSource::Network, Duration::ZERO));
        assert!(first.error.is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let hit = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
        assert_eq!(hit.source, FetchSource::Cache);
        assert!(hit.age >= Duration::from_millis(50) && hit.age < ttl, "{:?}", hit.age);
        assert!(Arc::ptr_eq(&first.version, &hit.version));
        // Past the TTL with the server failing: the stale copy, its age and
        // the error that caused it.
        fail.store(1, Ordering::SeqCst);
        tokio::time::sleep(ttl).await;
        let stale = client.get_prompt_version("greeting").send_with_meta().await.unwrap();
        assert_eq!(stale.source, FetchSource::Stale);
        assert!(stale.age >= ttl, "{:?}", stale.age);
        assert!(matches!(stale.error, Some(Error::Server(_))), "{:?}", stale.error);
        assert!(Arc::ptr_eq(&first.version, &stale.version));
        // skip_cache always asks the server, so no stale copy either.
        let err = client.get_prompt_version("greeting").skip_cache().send_with_meta().await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        // The blocking client says the same.
        fail.store(0, Ordering::SeqCst);
        let blocking = server.client().build_blocking().unwrap();
        let meta = tokio::task::spawn_blocking(move || {
            let a = blocking.get_prompt_version("greeting").send_with_meta().unwrap().source;
            let b = blocking.get_prompt_version("greeting").send_with_meta().unwrap().source;
            (a, b)
        })
        .await
        .unwrap();
        assert_eq!(meta, (FetchSource::Network, FetchSource::Cache));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_refresh_keeps_hot_prompts_off_the_network() {
        let server = MockServer::start(|r| match (is_auth(&r.path), r.nth) {
            (true, n) => Reply::token(n + 1, 3600.0),
            (false, 0) => Reply::json(200, prompt_json("greeting", 1, "v")),
            // Refreshes are slow: a caller waiting on one would notice.
            (false, n) => {
                Reply::json(200, prompt_json("greeting", n as u32 + 1, "v")).delay(Duration::from_millis(300))
            }
        })
        .await;
        let client = server.client().cache_ttl(Duration::from_secs(1)).background_refresh_at(0.5).build().unwrap();
        assert_eq!(client.get_prompt_version("greeting").await.unwrap().version, 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Past half the TTL: served from the cache at once, refreshed behind.
        let started = Instant::now();
        assert_eq!(client.get_prompt_version("greeting").await.unwrap().version, 1);
        assert!(started.elapsed() < Duration::from_millis(150), "{:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(550)).await;
        // Past the original TTL, yet the refreshed copy is served.
        assert_eq!(server.api_count(), 2, "one background refresh");
        assert_eq!(client.get_prompt_version("greeting").await.unwrap().version, 2);
        assert_eq!(server.api_count(), 2);
    }
}

mod blocking {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_client_fetches_and_renders() {
        let server = MockServer::scope().await;
        let builder = server.client();
        let worker = std::thread::spawn(move || {
            let client = scope_client::blocking::Client::from_builder(builder).unwrap();
            let v = client.get_prompt_version("greeting").label("latest").send().unwrap();
            let text = client.render_prompt("greeting", &HashMap::from([("name", "Bob")])).unwrap();
            let strict =
                client.get_prompt_version("greeting").render_strict(&HashMap::from([("name", "Bob"), ("extra", "x")]));
            (v.version, text, strict)
        });
        let (version, text, strict) = tokio::task::spawn_blocking(move || worker.join().unwrap()).await.unwrap();
        assert_eq!(version, 1);
        assert_eq!(text, "Hello Bob");
        assert!(matches!(strict, Err(Error::UnknownVariables { .. })));
        assert_eq!(server.api_count(), 2);
    }

    #[tokio::test]
    async fn blocking_client_in_async_code_on_a_current_thread_runtime_errors_instead_of_stalling() {
        let server = MockServer::scope().await;
        let client = scope_client::blocking::Client::from_builder(server.client()).unwrap();
        let err = client.get_prompt_version("greeting").send().unwrap_err();
        assert!(matches!(err, Error::BlockingInAsyncContext), "{err:?}");
        assert!(err.to_string().contains("spawn_blocking"), "{err}");
        assert_eq!(server.api_count(), 0);
        drop(client); // Must not panic either.
    }

    #[tokio::test]
    async fn blocking_client_inside_spawn_blocking() {
        // The mock server runs on this (current-thread) runtime, which stays
        // free while the blocking call waits on a blocking-pool thread.
        let server = MockServer::scope().await;
        let client = scope_client::blocking::Client::builder()
            .credentials(creds())
            .api_url(server.url())
            .build_blocking()
            .unwrap();
        let c = client.clone();
        let text = tokio::task::spawn_blocking(move || c.render_prompt("greeting", &HashMap::from([("name", "Al")])))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(text, "Hello Al");
        // The clone shares the cache: no second fetch.
        let again = tokio::task::spawn_blocking(move || client.get_prompt_version("greeting").send()).await.unwrap();
        assert_eq!(again.unwrap().version, 1);
        assert_eq!(server.api_count(), 1);
        assert_eq!(server.exchanges(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_client_in_async_code_on_a_multi_thread_runtime() {
        let server = MockServer::scope().await;
        let client = server.client().build_blocking().unwrap();
        let v = client.get_prompt_version("greeting").send().unwrap();
        assert_eq!(v.name, "greeting");
        let handle = tokio::spawn(async move { client.get_prompt_version("greeting").skip_cache().send() });
        assert_eq!(handle.await.unwrap().unwrap().version, 1);
        assert_eq!(server.api_count(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_client_from_50_threads() {
        let server = MockServer::scope().await;
        let client = server.client().cache(false).build_blocking().unwrap();
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let c = client.clone();
                std::thread::spawn(move || {
                    let name = format!("T{i}");
                    c.render_prompt("greeting", &HashMap::from([("name", name.as_str())]))
                })
            })
            .collect();
        let texts = tokio::task::spawn_blocking(move || {
            threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(texts.len(), 50);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(t, &format!("Hello T{i}"));
        }
        assert_eq!(server.api_count(), 50);
        assert_eq!(server.exchanges(), 1, "one token for every thread");
        drop(client);
    }
}
