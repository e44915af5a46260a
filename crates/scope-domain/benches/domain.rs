//! Micro-benchmarks of the domain pieces on the request hot paths:
//! JWT sign and verify (token exchange, uncached bearer check), secret digest
//! and check (token exchange), secret format check, template render.
//!
//! Run with `cargo bench -p scope-domain --bench domain`; figures are in
//! BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use scope_domain::jwt::{Claims, KeySet, Signer25519};
use scope_domain::secret::{self, SecretDigest};
use scope_domain::template::{self, Template};
use scope_domain::{secret_format, KeyId, OrgId, Role};
use secrecy::ExposeSecret;

const ISSUER: &str = "https://scope.example.com";
const NOW: i64 = 1_700_000_000;

fn claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: KeyId::generate().to_string(),
        org: OrgId::generate().to_string(),
        role: Role::Viewer,
        env: "production".into(),
        iat: NOW,
        exp: NOW + 3600,
        jti: ulid::Ulid::new().to_string(),
        scope: Some("prompts:read".into()),
        aud: None,
    }
}

fn jwt(c: &mut Criterion) {
    let signer = Signer25519::generate("sk_01JD8X3Q7V9W0K2M4N6P8R0T2V".into());
    let mut keys = KeySet::default();
    keys.insert(signer.kid.clone(), &signer.public());
    let claims = claims();
    let token = signer.sign(&claims);
    assert!(keys.verify(&token, ISSUER, NOW).is_ok());

    let mut g = c.benchmark_group("jwt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&claims))));
    g.bench_function("verify", |b| b.iter(|| keys.verify(black_box(&token), ISSUER, NOW)));
    g.finish();
}

fn secrets(c: &mut Criterion) {
    let s = secret::generate();
    let plain = s.plain.expose_secret().to_owned();
    let stored = SecretDigest::of(&plain);
    let mut g = c.benchmark_group("secret");
    g.throughput(Throughput::Elements(1));
    // What the exchange does per request: SHA-256 of the presented secret,
    // compared in constant time with the stored digest.
    g.bench_function("digest_and_check", |b| {
        b.iter(|| SecretDigest::of(black_box(&plain)).matches(black_box(&stored)))
    });
    g.bench_function("digest", |b| b.iter(|| SecretDigest::of(black_box(&plain))));
    g.bench_function("check", |b| {
        let given = SecretDigest::of(&plain);
        b.iter(|| black_box(&given).matches(black_box(&stored)))
    });
    g.bench_function("is_well_formed", |b| b.iter(|| secret_format::is_well_formed(black_box(&plain))));
    g.bench_function("generate", |b| b.iter(secret::generate));
    g.finish();
}

/// About 4 KB of text with 10 distinct variables, each used twice.
fn template_4k() -> (String, HashMap<String, String>) {
    let names: Vec<String> = (0..10).map(|i| format!("var_{i}")).collect();
    let filler = "Answer the customer politely and precisely, citing the knowledge base. ";
    let mut src = String::new();
    let mut i = 0;
    while src.len() < 4096 - 200 {
        src.push_str(filler);
        src.push_str(&format!("{{{{{}}}}} ", names[i % names.len()]));
        i += 1;
    }
    let vars = names.iter().map(|n| (n.clone(), format!("value of {n}"))).collect();
    (src, vars)
}

fn templates(c: &mut Criterion) {
    let (src, vars) = template_4k();
    assert_eq!(template::variables(&src).len(), 10);
    let parsed = Template::parse(src.clone());
    let mut g = c.benchmark_group("template_4k_10_vars");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("render", |b| b.iter(|| template::render(black_box(&src), black_box(&vars), true)));
    g.bench_function("render_parsed", |b| b.iter(|| parsed.render(black_box(&vars), true)));
    g.bench_function("variables", |b| b.iter(|| template::variables(black_box(&src))));
    g.finish();
}

criterion_group!(benches, jwt, secrets, templates);
criterion_main!(benches);
