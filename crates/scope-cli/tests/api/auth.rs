//! Token exchange (SPEC §4): the three endpoints, the JWT and the JWKS, the
//! one-body-for-every-failure rule, 400s, the failure limiter, and forged
//! tokens.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{b64url, b64url_decode, decode_jwt, sibling_id, Key, TestServer};

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Checks the token response shape and returns the token.
fn token_of(r: &crate::harness::Resp) -> String {
    r.assert_status(200);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer", "{v}");
    assert!(v["expires_in"].as_i64().is_some_and(|n| n > 0), "expires_in: {v}");
    v["access_token"].as_str().expect("access_token").to_owned()
}

/// Verifies `token` against the server's JWKS, independently of the server.
async fn verify_with_jwks(server: &TestServer, token: &str) -> bool {
    let jwt = decode_jwt(token);
    let jwks = server.jwks().await;
    let kid = jwt.header["kid"].as_str().expect("kid");
    let Some(jwk) = jwks["keys"].as_array().expect("keys").iter().find(|k| k["kid"] == kid) else {
        return false;
    };
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    let x: [u8; 32] = b64url_decode(jwk["x"].as_str().expect("x")).try_into().expect("32-byte key");
    let vk = VerifyingKey::from_bytes(&x).expect("valid Ed25519 public key");
    let sig = Signature::from_slice(&b64url_decode(&jwt.parts[2])).expect("64-byte signature");
    let signed = format!("{}.{}", jwt.parts[0], jwt.parts[1]);
    vk.verify(signed.as_bytes(), &sig).is_ok()
}

#[tokio::test]
async fn sdk_token_issues_an_eddsa_jwt_verifiable_with_the_jwks() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let before = now_s();
    let r = server.exchange(&org.org_id, &org.key_id, &org.secret).await;
    let token = token_of(&r);
    assert_eq!(r.json()["expires_in"], 3600, "default SCOPE_TOKEN_TTL");
    assert!(r.header("cache-control").is_some_and(|v| v.contains("no-store")), "token responses must not be cached");

    let jwt = decode_jwt(&token);
    assert_eq!(jwt.header["alg"], "EdDSA");
    let kid = jwt.header["kid"].as_str().expect("kid in header");
    assert!(!kid.is_empty());
    let c = &jwt.claims;
    assert_eq!(c["iss"], server.base, "iss defaults to the bound address");
    assert_eq!(c["sub"], org.key_id.as_str());
    assert_eq!(c["org"], org.org_id.as_str());
    assert_eq!(c["role"], "admin");
    assert_eq!(c["env"], "production");
    let iat = c["iat"].as_i64().expect("iat");
    let exp = c["exp"].as_i64().expect("exp");
    assert!(iat >= before - 1 && iat <= now_s() + 1, "iat {iat}");
    assert_eq!(exp - iat, 3600);
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "jti");

    // The signature verifies with the published key, and a flipped bit does not.
    assert!(verify_with_jwks(&server, &token).await, "signature must verify with the JWKS");
    let mut sig = b64url_decode(&jwt.parts[2]);
    sig[0] ^= 1;
    let tampered = format!("{}.{}.{}", jwt.parts[0], jwt.parts[1], b64url(&sig));
    assert!(!verify_with_jwks(&server, &tampered).await);

    // Each exchange gets a fresh jti; the token works.
    let second = server.token(&org.org_id, &org.key_id, &org.secret).await;
    assert_ne!(decode_jwt(&second).claims["jti"], jwt.claims["jti"]);
    server.api(&token).get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn jwks_publishes_only_public_ed25519_keys() {
    let server = TestServer::start().await;
    let jwks = server.jwks().await;
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(b64url_decode(k["x"].as_str().expect("x")).len(), 32);
    assert!(k.get("d").is_none(), "the private key must never be published: {k}");
}

#[tokio::test]
async fn applications_login_exchanges_client_credentials() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let r = server
        .anon()
        .post(
            "/v1/auth/applications/login",
            json!({"account_id": org.org_id, "client_id": org.key_id, "client_secret": org.secret}),
        )
        .await;
    let token = token_of(&r);
    let jwt = decode_jwt(&token);
    assert_eq!(jwt.header["alg"], "EdDSA");
    assert_eq!(jwt.claims["sub"], org.key_id.as_str());
    assert_eq!(jwt.claims["org"], org.org_id.as_str());
    assert!(verify_with_jwks(&server, &token).await);
    server.api(&token).get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn oauth_token_accepts_form_and_http_basic() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let url = server.url("/oauth/token");

    // Form body.
    let form = [("grant_type", "client_credentials"), ("client_id", &org.key_id), ("client_secret", &org.secret)];
    let r = crate::harness::Resp::from(server.http.post(&url).form(&form)).await;
    let t1 = token_of(&r);
    assert_eq!(decode_jwt(&t1).claims["org"], org.org_id.as_str(), "organization taken from the key");
    assert!(verify_with_jwks(&server, &t1).await);
    server.api(&t1).get("/api/v1/me").await.assert_status(200);

    // HTTP Basic.
    let r = crate::harness::Resp::from(
        server.http.post(&url).basic_auth(&org.key_id, Some(&org.secret)).form(&[("grant_type", "client_credentials")]),
    )
    .await;
    let t2 = token_of(&r);
    assert_eq!(decode_jwt(&t2).claims["sub"], org.key_id.as_str());
    server.api(&t2).get("/api/v1/me").await.assert_status(200);

    // An RFC 6749 endpoint (SPEC §4): its errors are RFC 6749 bodies.
    // Wrong grant type, missing grant type, JSON instead of a form, both
    // Basic and form credentials: 400; missing credentials: 401.
    let oauth_error = |r: &crate::harness::Resp, status: u16, error: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.json()["error"], error, "{}", r.body);
    };
    let r = crate::harness::Resp::from(server.http.post(&url).form(&[
        ("grant_type", "password"),
        ("client_id", org.key_id.as_str()),
        ("client_secret", org.secret.as_str()),
    ]))
    .await;
    oauth_error(&r, 400, "unsupported_grant_type");
    let f = [("client_id", org.key_id.as_str()), ("client_secret", org.secret.as_str())];
    oauth_error(&crate::harness::Resp::from(server.http.post(&url).form(&f)).await, 400, "invalid_request");
    let f = [("grant_type", "client_credentials")];
    oauth_error(&crate::harness::Resp::from(server.http.post(&url).form(&f)).await, 401, "invalid_client");
    let r = crate::harness::Resp::from(server.http.post(&url).json(&json!({"grant_type": "client_credentials"}))).await;
    oauth_error(&r, 400, "invalid_request");
    let r =
        crate::harness::Resp::from(server.http.post(&url).basic_auth(&org.key_id, Some(&org.secret)).form(&form)).await;
    oauth_error(&r, 400, "invalid_request");

    // Wrong secret over Basic: 401 invalid_client with the Basic challenge.
    let other = server.create_key(&server.admin().await, "other", "viewer").await;
    let r = crate::harness::Resp::from(
        server
            .http
            .post(&url)
            .basic_auth(&org.key_id, Some(&other.secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{r:?}");
}

#[tokio::test]
async fn every_credential_failure_has_the_same_401_body() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let admin = server.admin().await;

    // An expiring key first, so its time runs out while the rest is set up.
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(2000);
    let r = admin
        .post(
            "/api/v1/api-keys",
            json!({"name": "short-lived", "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    r.assert_status(201);
    let expiring = Key {
        key_id: r.json()["key_id"].as_str().expect("key_id").to_owned(),
        secret: r.json()["secret"].as_str().expect("secret").to_owned(),
        org_id: org.org_id.clone(),
        json: r.json(),
    };
    // It works before it expires, and so does a token issued for it.
    let expiring_token = server.token_for(&expiring).await;
    server.api(&expiring_token).get("/api/v1/me").await.assert_status(200);

    let victim = server.create_key(&admin, "to revoke", "viewer").await;
    let other_secret_holder = server.create_key(&admin, "other", "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", victim.key_id)).await.assert_status(200);
    let org_b = server.create_org("Beta", "admin@beta.test").await;

    // A secret with the right shape but a broken checksum.
    let mut mistyped = org.secret.clone();
    let c = mistyped.remove(10);
    mistyped.insert(10, if c == 'A' { 'B' } else { 'A' });

    // Wait out the expiring key.
    let left = expires - chrono::Utc::now() + chrono::Duration::milliseconds(300);
    if let Ok(d) = left.to_std() {
        tokio::time::sleep(d).await;
    }

    let cases: Vec<(&str, String, String, String)> = vec![
        ("unknown key", org.org_id.clone(), sibling_id(&org.key_id), org.secret.clone()),
        ("wrong secret", org.org_id.clone(), org.key_id.clone(), other_secret_holder.secret.clone()),
        ("mistyped secret", org.org_id.clone(), org.key_id.clone(), mistyped),
        ("revoked key", org.org_id.clone(), victim.key_id.clone(), victim.secret.clone()),
        ("expired key", org.org_id.clone(), expiring.key_id.clone(), expiring.secret.clone()),
        ("key of another org", org.org_id.clone(), org_b.key_id.clone(), org_b.secret.clone()),
        ("own key under another org", org_b.org_id.clone(), org.key_id.clone(), org.secret.clone()),
        ("unknown org", sibling_id(&org.org_id), org.key_id.clone(), org.secret.clone()),
        ("garbage ids", "nope".into(), "nope".into(), "nope".into()),
    ];
    let mut bodies = Vec::new();
    for (what, account, key, secret) in &cases {
        let r = server.exchange(account, key, secret).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.assert_error(401, "invalid_credentials");
        bodies.push((what, r.body.clone()));
    }
    // The other two endpoints answer with the very same body.
    let r = server
        .anon()
        .post(
            "/v1/auth/applications/login",
            json!({"account_id": org.org_id, "client_id": victim.key_id, "client_secret": victim.secret}),
        )
        .await;
    bodies.push((&"revoked key via applications/login", r.body.clone()));
    r.assert_status(401);
    // (`/oauth/token` answers RFC 6749 bodies, one for every failure there:
    // tests/api/oauth.rs.)
    let r = crate::harness::Resp::from(server.http.post(server.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", expiring.key_id.as_str()),
        ("client_secret", expiring.secret.as_str()),
    ]))
    .await;
    r.assert_status(401);
    assert_eq!(r.json()["error"], "invalid_client", "{}", r.body);

    let (first_what, first) = &bodies[0];
    for (what, body) in &bodies {
        assert_eq!(body.as_bytes(), first.as_bytes(), "body for '{what}' differs from '{first_what}'");
    }

    // The token issued before expiry does not outlive its key.
    server.api(&expiring_token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    // The expired key is listed as expired.
    let r = admin.get(&format!("/api/v1/api-keys/{}", expiring.key_id)).await;
    r.assert_status(200);
    assert_eq!(r.json()["status"], "expired");
    // And the legitimate key still works: nothing above was a lock-out.
    server.token(&org.org_id, &org.key_id, &org.secret).await;
}

#[tokio::test]
async fn malformed_exchange_bodies_are_400() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let url = server.url("/v1/auth/sdk-token");
    let json_ct = "application/json";
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("not JSON", Some(json_ct), "{not json".into()),
        ("missing key_secret", Some(json_ct), json!({"account_id": org.org_id, "key_id": org.key_id}).to_string()),
        (
            "wrong type",
            Some(json_ct),
            json!({"account_id": 1, "key_id": org.key_id, "key_secret": org.secret}).to_string(),
        ),
        ("array", Some(json_ct), "[]".into()),
        ("empty body", Some(json_ct), String::new()),
        (
            "no content type",
            None,
            json!({"account_id": org.org_id, "key_id": org.key_id, "key_secret": org.secret}).to_string(),
        ),
    ];
    for (what, ct, body) in cases {
        let mut rb = server.http.post(&url).body(body);
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let r = crate::harness::Resp::from(rb).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        r.assert_error(400, "bad_request");
    }
    let r = server.anon().post("/v1/auth/applications/login", json!({"account_id": org.org_id})).await;
    r.assert_error(400, "bad_request");
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_with_retry_after() {
    let server = TestServer::builder().env("SCOPE_AUTH_FAILURE_LIMIT", "3").start().await;
    let org = server.org.clone();
    let wrong = sibling_id(&org.key_id);
    for i in 0..3 {
        let r = server.exchange(&org.org_id, &wrong, &org.secret).await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let r = server.exchange(&org.org_id, &wrong, &org.secret).await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").expect("Retry-After header").parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // OAuth goes through the same limiter (with an RFC 6749 body).
    let r = crate::harness::Resp::from(server.http.post(server.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", wrong.as_str()),
        ("client_secret", org.secret.as_str()),
    ]))
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"], "temporarily_unavailable", "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{r:?}");
}

// ---- forged tokens ------------------------------------------------------------------

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn enc(v: &Value) -> String {
    b64url(v.to_string().as_bytes())
}

fn sign_ed25519(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", enc(header), enc(claims));
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&sig.to_bytes()))
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (viewer, viewer_key) = server.client_with_role(&admin, "viewer").await;
    let real = viewer.token().to_owned();
    viewer.get("/api/v1/me").await.assert_status(200);

    let jwt = decode_jwt(&real);
    let kid = jwt.header["kid"].as_str().expect("kid").to_owned();
    let jwks = server.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_owned();

    let mut promoted = jwt.claims.clone();
    promoted["role"] = json!("admin");
    let mut other_sub = jwt.claims.clone();
    other_sub["sub"] = json!(server.org.key_id);
    let mut longer = jwt.claims.clone();
    longer["exp"] = json!(jwt.claims["exp"].as_i64().expect("exp") + 86_400);

    let attacker = SigningKey::from_bytes(&[7u8; 32]);
    let hs_input =
        |claims: &Value| format!("{}.{}", enc(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})), enc(claims));

    let forged: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            format!("{}.{}.", enc(&json!({"alg": "none", "typ": "JWT", "kid": kid})), jwt.parts[1]),
        ),
        (
            "alg none, original signature",
            format!("{}.{}.{}", enc(&json!({"alg": "none", "typ": "JWT", "kid": kid})), jwt.parts[1], jwt.parts[2]),
        ),
        ("HS256 keyed with the public key bytes", {
            let input = hs_input(&promoted);
            let mac = hmac_sha256(&b64url_decode(&x), input.as_bytes());
            format!("{input}.{}", b64url(&mac))
        }),
        ("HS256 keyed with the JWK x text", {
            let input = hs_input(&jwt.claims);
            let mac = hmac_sha256(x.as_bytes(), input.as_bytes());
            format!("{input}.{}", b64url(&mac))
        }),
        ("role edited, original signature", format!("{}.{}.{}", jwt.parts[0], enc(&promoted), jwt.parts[2])),
        ("sub edited, original signature", format!("{}.{}.{}", jwt.parts[0], enc(&other_sub), jwt.parts[2])),
        ("exp extended, original signature", format!("{}.{}.{}", jwt.parts[0], enc(&longer), jwt.parts[2])),
        (
            "other Ed25519 key, same kid",
            sign_ed25519(&attacker, &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}), &promoted),
        ),
        (
            "unknown kid",
            sign_ed25519(&attacker, &json!({"alg": "EdDSA", "typ": "JWT", "kid": "sk_attacker"}), &jwt.claims),
        ),
        ("no kid", sign_ed25519(&attacker, &json!({"alg": "EdDSA", "typ": "JWT"}), &jwt.claims)),
        ("signature of another token", {
            let other = server.token(&server.org.org_id, &server.org.key_id, &server.org.secret).await;
            format!("{}.{}.{}", jwt.parts[0], jwt.parts[1], decode_jwt(&other).parts[2])
        }),
        ("truncated signature", format!("{}.{}.{}", jwt.parts[0], jwt.parts[1], &jwt.parts[2][..20])),
        ("two parts", format!("{}.{}", jwt.parts[0], jwt.parts[1])),
        ("four parts", format!("{real}.{}", jwt.parts[2])),
        ("garbage", "garbage".into()),
        ("dots", "a.b.c".into()),
        ("API secret as bearer", viewer_key.secret.clone()),
    ];
    let mut bodies = Vec::new();
    for (what, token) in &forged {
        let r = server.api(token).get("/api/v1/me").await;
        assert_eq!(r.status, 401, "{what} was not refused: {}", r.body);
        r.assert_error(401, "unauthorized");
        bodies.push(r.body);
    }
    // The role-edited forgeries get no admin access either.
    for (what, token) in &forged[..6] {
        let r = server.api(token).get("/api/v1/api-keys").await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
    }
    // Missing or non-bearer Authorization.
    server.anon().get("/api/v1/me").await.assert_error(401, "unauthorized");
    let r =
        crate::harness::Resp::from(server.http.get(server.url("/api/v1/me")).header("authorization", real.as_str()))
            .await;
    r.assert_error(401, "unauthorized");
    let basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", viewer_key.key_id, viewer_key.secret)));
    let r = crate::harness::Resp::from(server.http.get(server.url("/api/v1/me")).header("authorization", basic)).await;
    r.assert_error(401, "unauthorized");
    bodies.push(r.body);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "all 401s share one body");

    // The genuine token still works after all that.
    viewer.get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = TestServer::builder().env("SCOPE_TOKEN_TTL", "2").start().await;
    let org = server.org.clone();
    let r = server.exchange(&org.org_id, &org.key_id, &org.secret).await;
    let token = token_of(&r);
    assert_eq!(r.json()["expires_in"], 2, "SCOPE_TOKEN_TTL is honoured");
    let c = decode_jwt(&token).claims;
    assert_eq!(c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"), 2);
    server.api(&token).get("/api/v1/me").await.assert_status(200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.api(&token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    // A fresh token works again.
    server.login(&org).await.get("/api/v1/me").await.assert_status(200);
}

#[tokio::test]
async fn tokens_with_a_wrong_issuer_are_refused() {
    // Two servers on one database share the signing keys; only the issuer
    // differs, so the signature is valid and `iss` alone must decide.
    let a = TestServer::start().await;
    let b =
        TestServer::builder().same_database_as(&a).env("SCOPE_PUBLIC_URL", "https://scope.example.test").start().await;
    let org = a.org.clone();
    let from_a = a.token(&org.org_id, &org.key_id, &org.secret).await;
    let from_b = b.token(&org.org_id, &org.key_id, &org.secret).await;
    assert_eq!(decode_jwt(&from_b).claims["iss"], "https://scope.example.test");
    assert_eq!(decode_jwt(&from_a).header["kid"], decode_jwt(&from_b).header["kid"], "same signing key");
    assert!(verify_with_jwks(&a, &from_b).await, "the signature itself is valid");

    a.api(&from_a).get("/api/v1/me").await.assert_status(200);
    b.api(&from_b).get("/api/v1/me").await.assert_status(200);
    b.api(&from_a).get("/api/v1/me").await.assert_error(401, "unauthorized");
    a.api(&from_b).get("/api/v1/me").await.assert_error(401, "unauthorized");
}
