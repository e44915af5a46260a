//! The server at its edge: who the client is behind proxies (and what the
//! failure limiters count), and what a connection may cost — header, body,
//! idle and request timeouts, connection and request caps. Slow clients are
//! raw TCP streams, so every byte on the wire is the test's choice.

use serde_json::json;

use crate::harness::{sibling_id, Resp, TestServer};

// ---- client addresses and the failure limiters -------------------------------------------

/// A token exchange as relayed by a proxy that says the client is `xff`.
async fn exchange_via(server: &TestServer, xff: &str, org: &str, key_id: &str, secret: &str) -> Resp {
    let body = json!({"account_id": org, "key_id": key_id, "key_secret": secret});
    Resp::from(server.http.post(server.url("/v1/auth/sdk-token")).header("X-Forwarded-For", xff).json(&body)).await
}

/// A server that believes X-Forwarded-For from the test process (loopback).
async fn behind_proxy(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder().env("SCOPE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start().await
}

#[tokio::test]
async fn junk_from_one_client_behind_a_trusted_proxy_stops_nobody_elses_valid_exchange() {
    let server = behind_proxy(&[]).await;
    let org = server.org.clone();
    let admin = server.admin().await;
    let other = server.create_key(&admin, "other", "viewer").await;
    // 30 failures from 203.0.113.5: unknown keys, and the real key with a
    // well-formed secret of another key.
    let unknown = sibling_id(&org.key_id);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (key, secret) = if i % 2 == 0 { (&unknown, &org.secret) } else { (&org.key_id, &other.secret) };
        statuses.push(exchange_via(&server, "203.0.113.5", &org.org_id, key, secret).await.status);
    }
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "the junk itself is limited: {statuses:?}");

    // Another client behind the same proxy: its failures are its own...
    let r = exchange_via(&server, "198.51.100.7", &org.org_id, &unknown, &org.secret).await;
    r.assert_error(401, "invalid_credentials");
    // ...and its valid exchange goes through.
    exchange_via(&server, "198.51.100.7", &org.org_id, &org.key_id, &org.secret).await.assert_status(200);
    // Even the noisy client's valid credentials are served: they verify.
    exchange_via(&server, "203.0.113.5", &org.org_id, &org.key_id, &org.secret).await.assert_status(200);
    exchange_via(&server, "203.0.113.5", &other.org_id, &other.key_id, &other.secret).await.assert_status(200);
    // While its failures stay limited.
    let r = exchange_via(&server, "203.0.113.5", &org.org_id, &unknown, &org.secret).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
}

#[tokio::test]
async fn the_right_most_untrusted_hop_is_the_client_and_earlier_hops_are_not_believed() {
    let server = behind_proxy(&[("SCOPE_AUTH_FAILURE_LIMIT", "3")]).await;
    let org = server.org.clone();
    let unknown = sibling_id(&org.key_id);
    // The client forges hops to the left; a second proxy (10.x) sits between.
    for i in 0..3 {
        let xff = format!("192.0.2.{i}, 203.0.113.5, 10.1.2.3");
        exchange_via(&server, &xff, &org.org_id, &unknown, &org.secret).await.assert_error(401, "invalid_credentials");
    }
    exchange_via(&server, "192.0.2.99, 203.0.113.5", &org.org_id, &unknown, &org.secret)
        .await
        .assert_error(429, "rate_limited");
    exchange_via(&server, "203.0.113.6", &org.org_id, &unknown, &org.secret)
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    // No trusted proxies: the client is the TCP peer, whatever it claims.
    let server = TestServer::builder().env("SCOPE_AUTH_FAILURE_LIMIT", "3").start().await;
    let org = server.org.clone();
    let unknown = sibling_id(&org.key_id);
    for i in 0..3 {
        let xff = format!("198.51.100.{i}");
        exchange_via(&server, &xff, &org.org_id, &unknown, &org.secret).await.assert_error(401, "invalid_credentials");
    }
    // A new address in the header does not buy a new allowance.
    exchange_via(&server, "198.51.100.200", &org.org_id, &unknown, &org.secret).await.assert_error(429, "rate_limited");
    // And the peer's valid exchange is still served.
    exchange_via(&server, "198.51.100.201", &org.org_id, &org.key_id, &org.secret).await.assert_status(200);
}

#[tokio::test]
async fn ipv6_clients_in_one_slash_64_share_a_bucket() {
    let server = behind_proxy(&[("SCOPE_AUTH_FAILURE_LIMIT", "3")]).await;
    let org = server.org.clone();
    let unknown = sibling_id(&org.key_id);
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"] {
        exchange_via(&server, host, &org.org_id, &unknown, &org.secret).await.assert_error(401, "invalid_credentials");
    }
    exchange_via(&server, "2001:db8:1:2:abcd::9", &org.org_id, &unknown, &org.secret)
        .await
        .assert_error(429, "rate_limited");
    // The next /64 is another client.
    exchange_via(&server, "2001:db8:1:3::1", &org.org_id, &unknown, &org.secret)
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn one_key_under_attack_is_limited_without_limiting_the_whole_address() {
    // Everything comes from one address (no proxy configured): the key's
    // own limit (3) trips long before the address's (20).
    let server = TestServer::builder().env("SCOPE_AUTH_KEY_FAILURE_LIMIT", "3").start().await;
    let org = server.org.clone();
    let admin = server.admin().await;
    let victim = server.create_key(&admin, "victim", "viewer").await;
    let bystander = server.create_key(&admin, "bystander", "viewer").await;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(server.exchange(&victim.org_id, &victim.key_id, &org.secret).await.status);
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another key's failure from the same address is an ordinary 401: the
    // attacked key used up only its own allowance.
    server.exchange(&bystander.org_id, &bystander.key_id, &org.secret).await.assert_error(401, "invalid_credentials");
    // Valid credentials are served, the attacked key's included.
    server.token_for(&victim).await;
    server.token_for(&bystander).await;
}

#[tokio::test]
async fn console_sign_in_limits_and_audit_name_the_forwarded_client() {
    let server = behind_proxy(&[]).await;
    let org = server.org.clone();
    let sign_in = |xff: &str, email: String, password: String| {
        let body = json!({"email": email, "password": password});
        Resp::from(server.http.post(server.url("/api/v1/sessions")).header("X-Forwarded-For", xff).json(&body))
    };
    // Ten failures (unknown accounts) from one client use its allowance.
    for i in 0..10 {
        sign_in("203.0.113.5", format!("guess{i}@acme.test"), "wrong".into())
            .await
            .assert_error(401, "invalid_credentials");
    }
    sign_in("203.0.113.5", "guess10@acme.test".into(), "wrong".into()).await.assert_error(429, "rate_limited");
    // Another client behind the same proxy signs in.
    sign_in("198.51.100.7", org.admin_email.clone(), "not the password".into())
        .await
        .assert_error(401, "invalid_credentials");
    sign_in("198.51.100.7", org.admin_email.clone(), org.admin_password.clone()).await.assert_status(201);
    // The audit log names the client, not the proxy.
    let admin = server.admin().await;
    let events = admin.get("/api/v1/audit-events").await;
    events.assert_status(200);
    let clients: Vec<String> = events.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("user.sign")))
        .map(|e| e["details"]["client"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!clients.is_empty(), "{}", events.body);
    assert!(clients.iter().all(|c| c == "198.51.100.7"), "{clients:?}");
}
