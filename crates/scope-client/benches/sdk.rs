//! SDK benchmarks: a cache hit of `get_prompt_version`, rendering a 4 KB
//! template with 10 variables, and fetch throughput against a local HTTP
//! server with caching off.
//!
//! Run with `cargo bench -p scope-client --bench sdk`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scope_client::{Client, ClientCredentials, PromptVersion};
use serde_json::{json, Value};

const ORG: &str = "org_01JD8X3Q7V9W0K2M4N6P8R0T2V";
const KEY: &str = "key_01JD8X4B7V9W0K2M4N6P8R0T2V";

fn secret() -> String {
    let payload = format!("secret_{}", "7Gm".repeat(14) + "Q");
    let sum = scope_domain::secret_format::checksum(&payload);
    format!("{payload}_{sum}")
}

fn prompt_json(name: &str, content: &str) -> Value {
    json!({
        "prompt_id": "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V", "version_id": "v_01JD8X3Q7V9W0K2M4N6P8R0T2V",
        "name": name, "version": 7, "content": content,
        "variables": scope_domain::template::variables(content),
        "status": "published", "is_production": true, "prompt_type": "text",
        "metadata": {"model": "gpt-4o"}, "tags": ["bench"],
        "created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T03:04:05Z",
        "promoted_at": "2025-01-02T03:04:05Z", "promoted_by": "usr_01JD8X3Q7V9W0K2M4N6P8R0T2V"
    })
}

/// A minimal Scope on a loopback port: token exchange and prompt reads.
fn local_server(rt: &tokio::runtime::Runtime) -> String {
    let app = Router::new()
        .route(
            "/v1/auth/applications/login",
            post(|| async { Json(json!({"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"})) }),
        )
        .route(
            "/api/v1/prompts/{name}/{label}",
            get(|Path((name, _label)): Path<(String, String)>| async move {
                Json(prompt_json(&name, "Hello {{name}}, you are {{age}} years old."))
            }),
        );
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    })
}

fn client(url: &str) -> Client {
    Client::builder().credentials(ClientCredentials::new(ORG, KEY, secret()).unwrap()).api_url(url).build().unwrap()
}

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = local_server(&rt);
    let client = client(&url);
    rt.block_on(client.get_prompt_version("greeting").send()).unwrap();
    let mut g = c.benchmark_group("get_prompt_version");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter(|| async { client.get_prompt_version("greeting").send().await.unwrap() })
    });
    g.finish();
}

/// About 4 KB of prose with 10 distinct variables, each used twice.
fn template_4k() -> (String, HashMap<String, String>) {
    let names = ["user", "company", "product", "tone", "language", "date", "topic", "audience", "length", "format"];
    let filler = "The assistant answers precisely and cites its sources when it can. ";
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 4096 - 80 {
        s.push_str(filler);
        s.push_str("{{");
        s.push_str(names[i % names.len()]);
        s.push_str("}} ");
        i += 1;
    }
    while s.len() < 4096 {
        s.push('.');
    }
    let vars = names.iter().map(|n| (n.to_string(), format!("value-of-{n}"))).collect();
    (s, vars)
}

fn render(c: &mut Criterion) {
    let (content, vars) = template_4k();
    let version: PromptVersion = serde_json::from_value(prompt_json("big", &content)).unwrap();
    assert_eq!(version.variables.len(), 10);
    version.render(&vars).unwrap();
    let mut g = c.benchmark_group("render_4k_10_vars");
    g.throughput(Throughput::Bytes(content.len() as u64));
    g.bench_function("prompt_version_render", |b| b.iter(|| version.render(&vars).unwrap()));
    g.bench_function("parse_and_render", |b| {
        b.iter(|| scope_client::template::render(&content, &vars, false).unwrap())
    });
    g.finish();
}

fn fetch_uncached(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = local_server(&rt);
    let client = client(&url);
    rt.block_on(client.get_prompt_version("greeting").skip_cache().send()).unwrap();
    let mut g = c.benchmark_group("fetch_local_server_no_cache");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.to_async(&rt).iter(|| async { client.get_prompt_version("greeting").skip_cache().send().await.unwrap() })
    });
    g.throughput(Throughput::Elements(16));
    g.bench_function("16_concurrent", |b| {
        b.to_async(&rt).iter(|| async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move { c.get_prompt_version("greeting").skip_cache().send().await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, cache_hit, render, fetch_uncached);
criterion_main!(benches);
