//! The server at its edge: who the client is behind proxies (and what the
//! failure limiters count), and what a connection may cost — header, body,
//! idle and request timeouts, connection and request caps. Slow clients are
//! raw TCP streams, so every byte on the wire is the test's choice.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

// ---- connections: timeouts and caps -------------------------------------------------------

/// Longest any test here waits for something that must happen: well past the
/// (shortened) limit under test, well short of the defaults that would also
/// end the connection (10 s header read, 30 s request and body).
const SOON: Duration = Duration::from_secs(6);

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the peer closes the connection (`Some(bytes)`), or `None`
/// if it is still open after `limit`.
async fn read_until_closed(conn: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// Reads one response (headers and a `Content-Length` body) from a
/// keep-alive connection: `(status line, whole text)`, or `None` if none
/// comes within `limit`.
async fn read_response(conn: &mut TcpStream, limit: Duration) -> Option<(String, String)> {
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    let status = text.lines().next().unwrap_or_default().to_owned();
                    return Some((status, text));
                }
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn healthz_request(server: &TestServer) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.base.trim_start_matches("http://"))
}

/// `GET /healthz` on `conn`, which must answer 200 (the connection stays open).
async fn healthz_on(conn: &mut TcpStream, server: &TestServer) {
    conn.write_all(healthz_request(server).as_bytes()).await.expect("send");
    let (status, text) = read_response(conn, SOON).await.expect("an answer on the connection");
    assert!(status.starts_with("HTTP/1.1 200"), "{text}");
}

/// The head of a token exchange that promises a body of `len` bytes.
fn slow_post_head(server: &TestServer, len: usize) -> String {
    format!(
        "POST /v1/auth/sdk-token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
        server.base.trim_start_matches("http://")
    )
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let server = TestServer::builder().env("SCOPE_HEADER_READ_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    let host = server.base.trim_start_matches("http://").to_owned();
    conn.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes()).await.expect("send");
    let answer = read_until_closed(&mut conn, SOON).await.expect("the server closes a connection whose headers stall");
    assert!(!answer.starts_with("HTTP/1.1 2"), "no answer to half a request: {answer}");
    // The server itself is fine.
    reqwest::get(server.url("/healthz")).await.expect("healthz").error_for_status().expect("200");
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_after_a_kept_alive_request_is_cut() {
    // Every byte moves the connection (so the idle timeout never fires);
    // only the header-read timeout ends it. The head would take 40 s.
    let server = TestServer::builder().env("SCOPE_HEADER_READ_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    healthz_on(&mut conn, &server).await;
    let started = std::time::Instant::now();
    let head = healthz_request(&server);
    let mut cut = false;
    for byte in head.as_bytes().iter().take(head.len() - 1) {
        if conn.write_all(std::slice::from_ref(byte)).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(n)) => panic!("no answer to half a head: {}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
        assert!(started.elapsed() < SOON, "still open after {:?} of trickling", started.elapsed());
    }
    assert!(cut, "the connection was closed before the head was complete");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout() {
    // Waiting for the next request is the idle timeout's business.
    let server = TestServer::builder()
        .env("SCOPE_HEADER_READ_TIMEOUT_SECS", "1")
        .env("SCOPE_IDLE_TIMEOUT_SECS", "30")
        .start()
        .await;
    let mut conn = connect(&server).await;
    for _ in 0..2 {
        healthz_on(&mut conn, &server).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let server = TestServer::builder().env("SCOPE_HEADER_READ_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    let answer = read_until_closed(&mut conn, SOON).await.expect("the server closes a silent connection");
    assert!(answer.is_empty(), "{answer}");
}

#[tokio::test]
async fn a_slow_request_body_is_cut() {
    let server = TestServer::builder().env("SCOPE_BODY_READ_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    conn.write_all(slow_post_head(&server, 200).as_bytes()).await.expect("send head");
    conn.write_all(b"{\"account_id\": ").await.expect("send some body");
    let answer = read_until_closed(&mut conn, SOON).await.expect("a stalled body ends the request and the connection");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""), "the SPEC error body: {answer}");
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_503_with_retry_after() {
    // The handler waits for a body that does not come (the body timeout is
    // the default 30 s): the request timeout answers first.
    let server = TestServer::builder().env("SCOPE_REQUEST_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    conn.write_all(slow_post_head(&server, 200).as_bytes()).await.expect("send head");
    let (status, text) = read_response(&mut conn, SOON).await.expect("an answer past the request timeout");
    assert!(status.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
    assert!(text.contains("\"code\":\"internal\""), "the SPEC error body: {text}");
    // Ordinary requests are not affected.
    reqwest::get(server.url("/healthz")).await.expect("healthz").error_for_status().expect("200");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::builder().env("SCOPE_IDLE_TIMEOUT_SECS", "1").start().await;
    let mut conn = connect(&server).await;
    healthz_on(&mut conn, &server).await;
    // Kept alive, then idle for the idle timeout (1 s here): closed.
    let rest = read_until_closed(&mut conn, SOON).await.expect("the idle connection is closed");
    assert!(rest.is_empty(), "nothing more is sent: {rest}");
}

#[tokio::test]
async fn event_streams_outlive_the_request_and_idle_timeouts() {
    let server = TestServer::builder()
        .env("SCOPE_REQUEST_TIMEOUT_SECS", "1")
        .env("SCOPE_IDLE_TIMEOUT_SECS", "2")
        .env("SCOPE_EVENT_HEARTBEAT_SECS", "1")
        .start()
        .await;
    let admin = server.admin().await;
    let mut stream = admin.request(Method::GET, "/api/v1/events").send().await.expect("open the stream");
    assert_eq!(stream.status(), 200);
    // Past both timeouts, then a change: the stream still carries it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    admin.create_prompt("after-the-timeouts", "Hi").await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + SOON;
    while !seen.contains("after-the-timeouts") {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled ({other:?}); got: {seen}"),
        }
    }
}

#[tokio::test]
async fn the_connection_cap_holds() {
    let server = TestServer::builder().env("SCOPE_MAX_CONNECTIONS", "2").start().await;
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    for conn in [&mut first, &mut second] {
        healthz_on(conn, &server).await;
    }
    // A third connection is left waiting while two are open...
    let mut third = connect(&server).await;
    third.write_all(healthz_request(&server).as_bytes()).await.expect("send");
    assert!(read_response(&mut third, Duration::from_millis(700)).await.is_none(), "a third connection is not served");
    // ...and served as soon as one of them closes.
    drop(first);
    let (status, _) = read_response(&mut third, SOON).await.expect("served once a slot is free");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[tokio::test]
async fn requests_past_the_concurrency_cap_get_503_with_retry_after() {
    let server = TestServer::builder().env("SCOPE_MAX_CONCURRENT_REQUESTS", "1").start().await;
    // One request in flight, its handler waiting for the rest of its body.
    let mut slow = connect(&server).await;
    let body = json!({"account_id": "org_x", "key_id": "key_x", "key_secret": "secret_x"}).to_string();
    let (half, rest) = body.split_at(10);
    slow.write_all(slow_post_head(&server, body.len()).as_bytes()).await.expect("send head");
    slow.write_all(half.as_bytes()).await.expect("send half");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = Resp::from(server.http.get(server.url("/healthz")).header("X-Request-ID", "busy-1")).await;
    r.assert_error(503, "internal");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("x-request-id"), Some("busy-1"));
    // Once it is done, requests are served again.
    slow.write_all(rest.as_bytes()).await.expect("send the rest");
    let (status, text) = read_response(&mut slow, SOON).await.expect("the slow request is answered");
    assert!(status.starts_with("HTTP/1.1 401") || status.starts_with("HTTP/1.1 400"), "{text}");
    Resp::from(server.http.get(server.url("/healthz"))).await.assert_status(200);
}
