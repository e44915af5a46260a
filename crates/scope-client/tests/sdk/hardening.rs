//! Issue 9, finding 8: no redirect is followed (the token exchange carries
//! the API secret), response bodies are capped, and plain http to a remote
//! host is warned about.

use std::sync::Arc;

use parking_lot::Mutex;
use scope_client::{ClientBuilder, Error, DEFAULT_MAX_RESPONSE_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn a_redirect_of_the_token_exchange_is_not_followed() {
    let thief = MockServer::scope().await;
    let location = format!("{}{LOGIN}", thief.url());
    let server = MockServer::start(move |r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::json(307, serde_json::json!({})).header("Location", &location),
        _ => Reply::json(200, prompt_json("greeting", 1, "x")),
    })
    .await;
    let client = server.client().build().unwrap();
    let err = client.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err:?}");
    assert_eq!(err.status(), Some(307));
    let text = err.to_string();
    assert!(text.contains("redirect") && text.contains(&thief.url()), "{text}");
    assert!(thief.requests().is_empty(), "the secret went to {:?}", thief.requests());
    // Not retried: one attempt.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_redirect_of_a_prompt_fetch_is_not_followed() {
    let thief = MockServer::scope().await;
    let location = format!("{}/api/v1/prompts/greeting/production", thief.url());
    let server = MockServer::start(move |r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        _ => Reply::json(302, serde_json::json!({})).header("Location", &location),
    })
    .await;
    let err = server.client().build().unwrap().get_prompt_version("greeting").await.unwrap_err();
    assert_eq!(err.status(), Some(302), "{err:?}");
    assert!(thief.requests().is_empty(), "the token went to {:?}", thief.requests());
}

fn huge_prompt(content_len: usize) -> Reply {
    Reply::json(200, prompt_json("greeting", 1, &"x".repeat(content_len)))
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let server = MockServer::start(|r| match r.path.as_str() {
        LOGIN | LEGACY => Reply::token(r.nth + 1, 3600.0),
        "/api/v1/prompts/big/production" => huge_prompt(DEFAULT_MAX_RESPONSE_BYTES + 1),
        "/api/v1/prompts/small/production" => huge_prompt(4000),
        _ => huge_prompt(2 << 20),
    })
    .await;
    let client = server.client().build().unwrap();
    let err = client.get_prompt_version("big").await.unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { limit, .. } if limit == DEFAULT_MAX_RESPONSE_BYTES), "{err:?}");
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    assert!(!err.is_transient());
    // Under the default limit: fine.
    assert_eq!(client.get_prompt_version("medium").await.unwrap().content.len(), 2 << 20);

    let client = server.client().max_response_bytes(1 << 20).build().unwrap();
    let err = client.get_prompt_version("medium").await.unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { limit, .. } if limit == 1 << 20), "{err:?}");
    client.get_prompt_version("small").await.unwrap();
    assert!(matches!(server.client().max_response_bytes(0).build(), Err(Error::Config(_))));
}

/// A server that answers the token exchange, then streams an endless
/// chunked body (no `Content-Length`) for anything else.
async fn endless_chunked_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                if head.contains("/v1/auth/") {
                    let body = r#"{"access_token":"tok","expires_in":3600,"token_type":"Bearer"}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: \
                         close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    return;
                }
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                    )
                    .await;
                let piece = vec![b'x'; 64 * 1024];
                let frame = [format!("{:x}\r\n", piece.len()).into_bytes(), piece, b"\r\n".to_vec()].concat();
                // Stops when the client hangs up.
                while sock.write_all(&frame).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_endless_body_without_length_is_cut_at_the_limit() {
    let url = endless_chunked_server().await;
    let client = ClientBuilder::new().credentials(creds()).api_url(url).max_response_bytes(256 * 1024).build().unwrap();
    let err = client.get_prompt_version("greeting").await.unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { limit, .. } if limit == 256 * 1024), "{err:?}");
}

/// Collects the messages of WARN events.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut f = Fields(String::new());
            event.record(&mut f);
            self.0.lock().push(f.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings_building(api_url: &str, auth_url: Option<&str>) -> Vec<String> {
    let w = Warnings::default();
    tracing::subscriber::with_default(w.clone(), || {
        let mut b = ClientBuilder::new().credentials(creds()).api_url(api_url);
        if let Some(a) = auth_url {
            b = b.auth_api_url(a);
        }
        b.build().unwrap();
    });
    let v = w.0.lock().clone();
    v
}

#[test]
fn credentials_over_plain_http_to_a_remote_host_are_warned_about_once() {
    let w = warnings_building("http://scope.example.com", None);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("plain http") && w[0].contains("scope.example.com"), "{w:?}");
    // The auth URL alone over http.
    let w = warnings_building("https://scope.example.com", Some("http://10.0.0.5:8080"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("10.0.0.5"), "{w:?}");
    for quiet in ["https://scope.example.com", "http://localhost:8080", "http://127.0.0.1:9", "http://[::1]:8080"] {
        assert_eq!(warnings_building(quiet, None), Vec::<String>::new(), "{quiet}");
    }
}
