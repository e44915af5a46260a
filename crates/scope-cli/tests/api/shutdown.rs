//! Graceful shutdown: on SIGTERM the server stops accepting, finishes the
//! requests in flight, flushes the coalesced usage counters and exits 0 —
//! what a rolling restart of replicas relies on.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_flushes_usage() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let key = server.create_key(&admin, "counted", "viewer").await;
    // Exchanges counted in memory (flushed every 2 s): none flushed yet.
    for _ in 0..4 {
        server.token_for(&key).await;
    }

    // A request in flight: headers and half of the body sent.
    let token = admin.token().to_owned();
    let body = json!({"name": "in-flight", "content": "finished after SIGTERM"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/prompts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("send head");
    conn.write_all(first.as_bytes()).await.expect("send half");
    conn.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while the old one finishes.
    assert!(reqwest::get(server.url("/healthz")).await.is_err(), "no new requests after SIGTERM");
    conn.write_all(rest.as_bytes()).await.expect("send the rest");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "the in-flight request completes: {answer}");

    let status = server.wait_exit(Duration::from_secs(10)).await.expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status}");

    // The counters were flushed on the way out, and the write is there.
    let again = TestServer::builder().same_database_as(&server).start().await;
    let admin = again.login(&again.org).await;
    admin.get("/api/v1/prompts/in-flight").await.assert_status(200);
    let r = admin.get(&format!("/api/v1/api-keys/{}/usage", key.key_id)).await;
    r.assert_status(200);
    assert_eq!(r.json()["total"], 4, "{}", r.body);
}
