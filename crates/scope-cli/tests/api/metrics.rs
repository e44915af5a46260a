//! `GET /metrics` (SPEC §… "Prometheus"): the text exposition format, request
//! series labelled by route template, token-exchange outcomes, cache hits,
//! revocation lag, build info — and no id, email, secret, token or prompt
//! name anywhere in the body.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::harness::{wait_until, TestServer};

/// One sample: metric name, labels in order, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4) strictly enough to catch a
/// malformed body: `# HELP name text`, `# TYPE name kind` and sample lines
/// `name{label="value",…} number`.
fn parse(text: &str) -> Vec<Sample> {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, tail) = (parts.next(), parts.next(), parts.next());
            match (kw, name) {
                (Some("HELP"), Some(n)) => assert!(is_name(n), "bad HELP line: {line}"),
                (Some("TYPE"), Some(n)) => {
                    assert!(is_name(n), "bad TYPE line: {line}");
                    let kind = tail.unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad TYPE line: {line}"
                    );
                    assert!(types.insert(n.to_owned(), kind.to_owned()).is_none(), "TYPE given twice: {line}");
                }
                _ => {}
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment line: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(is_name(name), "bad metric name: {line}");
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    // Every sample belongs to a declared family.
    for s in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| types.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(&s.name);
        assert!(types.contains_key(family), "no TYPE for {}", s.name);
    }
    samples
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in: {line}"));
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in: {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in: {line}"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// The value of the sample `name` whose labels include all of `labels`
/// (0 when there is none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

async fn scrape(server: &TestServer) -> (String, Vec<Sample>) {
    let r = server.anon().get("/metrics").await;
    r.assert_status(200);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type: {ct}");
    let samples = parse(&r.body);
    (r.body, samples)
}

#[tokio::test]
async fn metrics_show_exchanges_requests_and_caches_by_template_without_secrets() {
    let server = TestServer::start().await;
    let admin_token = server.token(&server.org.org_id, &server.org.key_id, &server.org.secret).await;
    let admin = server.api(&admin_token);
    // A failed exchange (wrong secret) and a malformed one (no secret).
    let (head, last) = server.org.secret.split_at(server.org.secret.len() - 1);
    let wrong = format!("{head}{}", if last == "x" { "y" } else { "x" });
    server.exchange(&server.org.org_id, &server.org.key_id, &wrong).await.assert_error(401, "invalid_credentials");
    server
        .anon()
        .post("/v1/auth/sdk-token", json!({"account_id": server.org.org_id, "key_id": server.org.key_id}))
        .await
        .assert_status(400);
    // OAuth too: counted with the same outcomes.
    assert_eq!(oauth_status(&server, &server.org.key_id, &server.org.secret).await, 200);

    let name = "metrics-secret-prompt-name";
    let p = admin.create_prompt(name, "hello {{who}}").await;
    let v1 = p["version"]["version_id"].as_str().expect("v1").to_owned();
    admin.post_empty(&format!("/api/v1/prompts/{name}/versions/{v1}/promote")).await.assert_status(200);
    settle_change_feed().await;
    let production = format!("/api/v1/prompts/{name}/production");
    admin.get(&production).await.assert_status(200);
    admin.get(&production).await.assert_status(200);
    server.anon().get("/no/such/route").await.assert_status(404);

    let (body, samples) = scrape(&server).await;
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    // Exchanges by outcome.
    assert!(v("scope_token_exchanges_total", &[("outcome", "issued")]) >= 2.0, "{body}");
    assert!(v("scope_token_exchanges_total", &[("outcome", "invalid_credentials")]) >= 1.0, "{body}");
    assert!(v("scope_token_exchanges_total", &[("outcome", "bad_request")]) >= 1.0, "{body}");
    // Requests by route template, method and status.
    let route = "/api/v1/prompts/{name}/production";
    let by_route = [("method", "GET"), ("route", route), ("status", "200")];
    assert_eq!(v("scope_http_requests_total", &by_route), 2.0, "{body}");
    let exchanges = [("method", "POST"), ("route", "/v1/auth/sdk-token"), ("status", "401")];
    assert_eq!(v("scope_http_requests_total", &exchanges), 1.0, "{body}");
    assert!(v("scope_http_requests_total", &[("route", "unmatched"), ("status", "404")]) >= 1.0, "{body}");
    assert_eq!(v("scope_http_request_duration_seconds_count", &[("method", "GET"), ("route", route)]), 2.0);
    let inf = [("route", route), ("le", "+Inf")];
    assert_eq!(v("scope_http_request_duration_seconds_bucket", &inf), 2.0, "{body}");
    // The second fetch came from the prompt cache; the admin's token was
    // verified once and then found in the token cache.
    assert!(v("scope_cache_requests_total", &[("cache", "prompt"), ("result", "hit")]) >= 1.0, "{body}");
    assert!(v("scope_cache_requests_total", &[("cache", "prompt"), ("result", "miss")]) >= 1.0, "{body}");
    assert!(v("scope_cache_requests_total", &[("cache", "token"), ("result", "hit")]) >= 1.0, "{body}");
    assert!(v("scope_cache_requests_total", &[("cache", "key"), ("result", "miss")]) >= 1.0, "{body}");
    // Build and pool.
    let build = samples.iter().find(|s| s.name == "scope_build_info").expect("scope_build_info");
    assert_eq!(build.value, 1.0);
    assert!(build.labels.iter().any(|(k, v)| k == "backend" && v == server.backend().name()), "{body}");
    assert!(build.labels.iter().any(|(k, v)| k == "version" && !v.is_empty()), "{body}");
    assert!(v("scope_db_pool_max_connections", &[]) >= 1.0, "{body}");
    assert!(samples.iter().any(|s| s.name == "scope_db_pool_connections"), "{body}");

    // Nothing that names a tenant, a key, a secret, a token or a prompt.
    for secret in [
        server.org.org_id.as_str(),
        server.org.key_id.as_str(),
        server.org.secret.as_str(),
        wrong.as_str(),
        server.org.admin_email.as_str(),
        admin_token.as_str(),
        v1.as_str(),
        name,
        "/no/such/route",
    ] {
        assert!(!body.contains(secret), "/metrics shows {secret}:\n{body}");
    }
    for s in &samples {
        if let Some((_, r)) = s.labels.iter().find(|(k, _)| k == "route") {
            assert!(r == "unmatched" || r.starts_with('/'), "route label {r}");
            assert!(!r.contains("prm_") && !r.contains("key_") && !r.contains("org_"), "route label {r}");
        }
    }
}

/// On PostgreSQL a server also hears its own writes back on the change feed
/// a few milliseconds after they commit, and drops the organization's cached
/// prompts once more (harmless: the next fetch refills it). Tests that count
/// cache hits let that happen before they count.
async fn settle_change_feed() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_repeated_fetch_counts_a_prompt_cache_hit() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("cached", "hi").await;
    settle_change_feed().await;
    admin.get("/api/v1/prompts/cached/latest").await.assert_status(200);
    let (_, before) = scrape(&server).await;
    for _ in 0..3 {
        admin.get("/api/v1/prompts/cached/latest").await.assert_status(200);
    }
    let (body, after) = scrape(&server).await;
    let hit = [("cache", "prompt"), ("result", "hit")];
    let delta = value(&after, "scope_cache_requests_total", &hit) - value(&before, "scope_cache_requests_total", &hit);
    assert_eq!(delta, 3.0, "{body}");
    let miss = [("cache", "prompt"), ("result", "miss")];
    assert_eq!(
        value(&after, "scope_cache_requests_total", &miss),
        value(&before, "scope_cache_requests_total", &miss),
        "{body}"
    );
}

#[tokio::test]
async fn a_revoke_by_the_cli_is_observed_as_propagation_lag() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let key = server.create_key(&admin, "revoked elsewhere", "viewer").await;
    // Revoked in this process: marked before the call returns, so a poll
    // that reads its row later has nothing new to observe. (A poll landing
    // between the commit and the mark would observe a lag of ~0.)
    let local = server.create_key(&admin, "revoked here", "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", local.key_id)).await.assert_status(200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (body, samples) = scrape(&server).await;
    let count = |s: &[Sample]| value(s, "scope_revocation_propagation_seconds_count", &[]);
    let fast = |s: &[Sample]| value(s, "scope_revocation_propagation_seconds_bucket", &[("le", "0.05")]);
    let before = count(&samples);
    assert!(before <= 1.0 && fast(&samples) == before, "{body}");
    assert_eq!(value(&samples, "scope_revoked_keys", &[]), 1.0, "{body}");

    // Revoked by the CLI on the same database: learned by the next poll.
    server.cli_json(&["keys", "revoke", "--org", &server.org.org_id, &key.key_id, "--json"]).await;
    let anon = server.anon();
    let seen = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let anon = anon.clone();
        async move { count(&parse(&anon.get("/metrics").await.body)) == before + 1.0 }
    })
    .await;
    assert!(seen.is_some(), "the poll did not observe the CLI's revoke");
    let (body, samples) = scrape(&server).await;
    assert_eq!(count(&samples), before + 1.0, "{body}");
    assert_eq!(value(&samples, "scope_revoked_keys", &[]), 2.0, "{body}");
    // The poll runs every 250 ms: the lag is well under 10 s.
    let within = value(&samples, "scope_revocation_propagation_seconds_bucket", &[("le", "10")]);
    assert_eq!(within, before + 1.0, "{body}");
    assert!(!body.contains(&key.key_id) && !body.contains(&local.key_id), "{body}");
}

/// The status of a client-credentials `POST /oauth/token`.
async fn oauth_status(server: &TestServer, id: &str, secret: &str) -> u16 {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    let r = server.http.post(server.url("/oauth/token")).form(&form).send().await.expect("oauth request");
    r.status().as_u16()
}
