//! Scope as an OAuth 2.0 authorization server (SPEC §4, issue 12), checked
//! with libraries nobody here wrote: the `oauth2` crate's client-credentials
//! flow (client_secret_basic and client_secret_post), revocation and
//! introspection, and `jsonwebtoken` validating tokens through the JWKS as a
//! gateway would. Plus one test per RFC point over plain HTTP: RFC 6749
//! errors at `/oauth/token`, scope narrowing, RFC 8414 discovery, RFC 6750
//! challenges, RFC 7009 revocation (also across replicas), RFC 7662
//! introspection, audiences.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, IntrospectionUrl, RequestTokenError, Scope,
    TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::{json, Value};

use crate::harness::{decode_jwt, sibling_id, wait_until, Key, Resp, TestServer};

/// A form POST to `path`, with HTTP Basic credentials when given.
async fn form(server: &TestServer, path: &str, basic: Option<(&str, &str)>, params: &[(&str, &str)]) -> Resp {
    let mut rb = server.http.post(server.url(path)).form(params);
    if let Some((id, secret)) = basic {
        rb = rb.basic_auth(id, Some(secret));
    }
    Resp::from(rb).await
}

/// `POST /oauth/token` with client_secret_post.
async fn token_post(server: &TestServer, key: &Key, extra: &[(&str, &str)]) -> Resp {
    let mut params = vec![
        ("grant_type", "client_credentials"),
        ("client_id", key.key_id.as_str()),
        ("client_secret", key.secret.as_str()),
    ];
    params.extend_from_slice(extra);
    form(server, "/oauth/token", None, &params).await
}

/// The access token of a successful token response.
fn access_token(r: &Resp) -> String {
    r.assert_status(200);
    r.json()["access_token"].as_str().expect("access_token").to_owned()
}

/// Asserts an RFC 6749 §5.2 error answer, never cached.
#[track_caller]
fn assert_oauth_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"], error, "{}", r.body);
    assert!(v["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.body);
    assert!(v.get("code").is_none(), "not the SPEC body: {}", r.body);
    assert_no_store(r);
}

#[track_caller]
fn assert_no_store(r: &Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
}

fn admin_key(server: &TestServer) -> Key {
    let o = &server.org;
    Key { key_id: o.key_id.clone(), secret: o.secret.clone(), org_id: o.org_id.clone(), json: Value::Null }
}

fn oauth_http() -> reqwest::Client {
    // As the oauth2 crate recommends: never follow redirects (SSRF).
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client")
}

/// Validates `token` as a gateway would: keys from `jwks_uri`, EdDSA only,
/// the issuer, and the audience when given.
async fn validate_with_jwks(server: &TestServer, token: &str, audience: Option<&str>) -> Result<Value, String> {
    let jwks: JwkSet = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JWKS JSON");
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&server.base]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    if let Some(aud) = audience {
        validation.set_audience(&[aud]);
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims).map_err(|e| e.to_string())
}

// ---- libraries nobody here wrote -------------------------------------------------------

#[tokio::test]
async fn the_oauth2_crate_gets_tokens_with_basic_and_post_and_jsonwebtoken_validates_them() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let http = oauth_http();
    let client = |auth: AuthType, secret: &str| {
        BasicClient::new(ClientId::new(org.key_id.clone()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(TokenUrl::new(server.url("/oauth/token")).expect("token URL"))
            .set_introspection_url(IntrospectionUrl::new(server.url("/oauth/introspect")).expect("introspection URL"))
            .set_auth_type(auth)
    };
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let c = client(auth.clone(), org.secret.as_str());
        // Full scope by default, returned and carried in the token.
        let t = c.exchange_client_credentials().request_async(&http).await.expect("client credentials");
        let granted: Vec<String> = t.scopes().expect("scope returned").iter().map(|s| s.to_string()).collect();
        assert_eq!(granted, ["prompts:read", "prompts:write", "keys:admin"], "{auth:?}");
        assert!(t.expires_in().is_some_and(|d| d > Duration::from_secs(3000)));
        let token = t.access_token().secret().clone();
        server.api(&token).get("/api/v1/me").await.assert_status(200);
        let claims = validate_with_jwks(&server, &token, None).await.expect("valid through the JWKS");
        assert_eq!(claims["sub"], org.key_id.as_str());
        assert_eq!(claims["scope"], "prompts:read prompts:write keys:admin");

        // Narrowed.
        let t = c
            .exchange_client_credentials()
            .add_scope(Scope::new("prompts:read".into()))
            .request_async(&http)
            .await
            .expect("narrowed");
        assert_eq!(
            t.scopes().map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(vec!["prompts:read".to_owned()])
        );
        let narrowed = t.access_token().clone();

        // The library reads a wrong secret as RFC 6749's invalid_client.
        let (head, last) = org.secret.split_at(org.secret.len() - 1);
        let wrong = format!("{head}{}", if last == "x" { "y" } else { "x" });
        match client(auth.clone(), &wrong).exchange_client_credentials().request_async(&http).await {
            Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient),
            other => panic!("{auth:?}: expected invalid_client, got {other:?}"),
        }

        // Introspection through the same library (its revocation refuses
        // plain-HTTP endpoints, as RFC 7009 asks: revoked with a form here).
        let info = c.introspect(&narrowed).request_async(&http).await.expect("introspection");
        assert!(info.active());
        assert_eq!(info.client_id().map(|c| c.to_string()), Some(org.key_id.clone()));
        assert_eq!(
            info.scopes().map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(vec!["prompts:read".to_owned()])
        );
        let revoke = [("token", narrowed.secret().as_str()), ("token_type_hint", "access_token")];
        form(&server, "/oauth/revoke", Some((org.key_id.as_str(), org.secret.as_str())), &revoke)
            .await
            .assert_status(200);
        server.api(narrowed.secret()).get("/api/v1/me").await.assert_error(401, "unauthorized");
        assert!(!c.introspect(&narrowed).request_async(&http).await.expect("introspection").active());
        let garbage = AccessToken::new("not.a.token".into());
        assert!(!c.introspect(&garbage).request_async(&http).await.expect("introspection").active());
    }
    // A gateway refuses a token signed by anyone else.
    let token = server.token(org.org_id.as_str(), org.key_id.as_str(), org.secret.as_str()).await;
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(validate_with_jwks(&server, &forged, None).await.is_err());
}

// ---- RFC 6749 at /oauth/token ----------------------------------------------------------

#[tokio::test]
async fn token_errors_are_rfc6749_bodies_never_cached() {
    let server = TestServer::start().await;
    let key = admin_key(&server);
    let creds = [("client_id", key.key_id.as_str()), ("client_secret", key.secret.as_str())];
    let url = server.url("/oauth/token");

    let r = form(&server, "/oauth/token", None, &[&[("grant_type", "password")][..], &creds].concat()).await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    let r = form(&server, "/oauth/token", None, &creds).await;
    assert_oauth_error(&r, 400, "invalid_request");
    // Repeated parameters (RFC 6749 §3.2).
    let r = form(
        &server,
        "/oauth/token",
        None,
        &[&[("grant_type", "client_credentials"), ("scope", "prompts:read"), ("scope", "keys:admin")][..], &creds]
            .concat(),
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    // Credentials in the form and in Basic at once.
    let both = [&[("grant_type", "client_credentials")][..], &creds].concat();
    let r = form(&server, "/oauth/token", Some((key.key_id.as_str(), key.secret.as_str())), &both).await;
    assert_oauth_error(&r, 400, "invalid_request");
    // Forms only.
    let r = Resp::from(
        server
            .http
            .post(&url)
            .json(&json!({"grant_type": "client_credentials", "client_id": key.key_id, "client_secret": key.secret})),
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = Resp::from(
        server
            .http
            .post(&url)
            .basic_auth(key.key_id.as_str(), Some(key.secret.as_str()))
            .body("grant_type=client_credentials"),
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    // A form client_id equal to the Basic one is tolerated; the content type
    // may carry a charset.
    let r = Resp::from(
        server
            .http
            .post(&url)
            .basic_auth(key.key_id.as_str(), Some(key.secret.as_str()))
            .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
            .body(format!("grant_type=client_credentials&client_id={}", key.key_id)),
    )
    .await;
    access_token(&r);
    assert_no_store(&r);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "prompts:read prompts:write keys:admin");
    assert!(v["expires_in"].as_i64().is_some_and(|n| n > 0));
    // The JSON endpoints keep the SPEC body.
    server.exchange(key.org_id.as_str(), key.key_id.as_str(), "nope").await.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn every_client_authentication_failure_has_one_body() {
    let server = TestServer::start().await;
    let org = server.org.clone();
    let admin = server.admin().await;
    let revoked = server.create_key(&admin, "revoked", "viewer").await;
    admin.post_empty(&format!("/api/v1/api-keys/{}/revoke", revoked.key_id)).await.assert_status(200);
    let other = server.create_key(&admin, "other", "viewer").await;
    let org_b = server.create_org("Beta", "admin@beta.test").await;
    let mut mistyped = org.secret.clone();
    let c = mistyped.remove(10);
    mistyped.insert(10, if c == 'A' { 'B' } else { 'A' });
    let unknown = sibling_id(org.key_id.as_str());

    let cases: Vec<(&str, &str, &str)> = vec![
        ("unknown key", unknown.as_str(), org.secret.as_str()),
        ("wrong secret", org.key_id.as_str(), other.secret.as_str()),
        ("mistyped secret", org.key_id.as_str(), mistyped.as_str()),
        ("revoked key", revoked.key_id.as_str(), revoked.secret.as_str()),
        ("secret of another org's key", org.key_id.as_str(), org_b.secret.as_str()),
        ("garbage", "nope", "nope"),
    ];
    let grant = [("grant_type", "client_credentials")];
    let mut bodies = Vec::new();
    for (what, id, secret) in cases.iter().copied() {
        // client_secret_post: no challenge.
        let r = form(
            &server,
            "/oauth/token",
            None,
            &[&grant[..], &[("client_id", id), ("client_secret", secret)]].concat(),
        )
        .await;
        assert_oauth_error(&r, 401, "invalid_client");
        assert_eq!(r.header("www-authenticate"), None, "{what}");
        bodies.push((format!("{what} (post)"), r.body));
        // client_secret_basic: 401 with the Basic challenge.
        let r = form(&server, "/oauth/token", Some((id, secret)), &grant).await;
        assert_oauth_error(&r, 401, "invalid_client");
        assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{what}: {r:?}");
        bodies.push((format!("{what} (basic)"), r.body));
    }
    // No credentials at all, a secret without an id, a malformed Basic header.
    let r = form(&server, "/oauth/token", None, &grant).await;
    assert_oauth_error(&r, 401, "invalid_client");
    bodies.push(("none".into(), r.body));
    let r = form(
        &server,
        "/oauth/token",
        None,
        &[("grant_type", "client_credentials"), ("client_secret", org.secret.as_str())],
    )
    .await;
    bodies.push(("no client_id".into(), r.body));
    let r = Resp::from(server.http.post(server.url("/oauth/token")).header("authorization", "Basic !!!").form(&grant))
        .await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")));
    bodies.push(("malformed basic".into(), r.body));
    let (first_what, first) = &bodies[0];
    for (what, body) in &bodies {
        assert_eq!(body.as_bytes(), first.as_bytes(), "body for '{what}' differs from '{first_what}'");
    }
    // Nothing above locked the real key out.
    access_token(&token_post(&server, &admin_key(&server), &[]).await);
}

#[tokio::test]
async fn failures_at_the_token_endpoint_are_rate_limited_as_rfc6749_errors() {
    let server = TestServer::builder().env("SCOPE_AUTH_FAILURE_LIMIT", "2").start().await;
    let org = server.org.clone();
    let wrong = sibling_id(org.key_id.as_str());
    let params =
        [("grant_type", "client_credentials"), ("client_id", wrong.as_str()), ("client_secret", org.secret.as_str())];
    for _ in 0..2 {
        assert_oauth_error(&form(&server, "/oauth/token", None, &params).await, 401, "invalid_client");
    }
    let r = form(&server, "/oauth/token", None, &params).await;
    assert_oauth_error(&r, 429, "temporarily_unavailable");
    assert!(r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| (1..=60).contains(&s)));
}

// ---- scope ---------------------------------------------------------------------------------

#[tokio::test]
async fn scope_narrows_a_token_and_never_widens_it() {
    let server = TestServer::start().await;
    let admin_token = server.admin().await;
    admin_token.create_prompt("scoped", "Hi {{name}}").await;
    let admin = admin_key(&server);
    let viewer = server.create_key(&admin_token, "viewer", "viewer").await;
    let editor = server.create_key(&admin_token, "editor", "editor").await;

    // Narrowed: returned, carried in the token, enforced with 403 and an
    // insufficient_scope challenge; the body is the SPEC one.
    let r = token_post(&server, &admin, &[("scope", "prompts:read")]).await;
    assert_eq!(r.json()["scope"], "prompts:read");
    let read_only = server.api(&access_token(&r));
    assert_eq!(decode_jwt(read_only.token()).claims["scope"], "prompts:read");
    read_only.get("/api/v1/prompts/scoped/latest").await.assert_status(200);
    let r = read_only.post("/api/v1/prompts", json!({"name": "nope", "content": "x"})).await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.header("www-authenticate"), Some("Bearer error=\"insufficient_scope\", scope=\"prompts:write\""));
    let r = read_only.get("/api/v1/api-keys").await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.header("www-authenticate"), Some("Bearer error=\"insufficient_scope\", scope=\"keys:admin\""));

    // Scopes are independent: keys:admin alone manages keys, reads no prompt.
    let keys_only = server.api(&access_token(&token_post(&server, &admin, &[("scope", "keys:admin")]).await));
    keys_only.get("/api/v1/api-keys").await.assert_status(200);
    keys_only.get("/api/v1/prompts/scoped/latest").await.assert_error(403, "forbidden");

    // Order and repetition do not matter; the answer is canonical.
    let r = token_post(&server, &editor, &[("scope", "prompts:write prompts:read prompts:write")]).await;
    assert_eq!(r.json()["scope"], "prompts:read prompts:write");
    // Without scope: the key's full set.
    assert_eq!(token_post(&server, &viewer, &[]).await.json()["scope"], "prompts:read");
    assert_eq!(
        decode_jwt(&server.token_for(&editor).await).claims["scope"],
        "prompts:read prompts:write",
        "JSON endpoints too"
    );

    // Never wider than the role, never unknown.
    assert_oauth_error(&token_post(&server, &viewer, &[("scope", "prompts:write")]).await, 400, "invalid_scope");
    assert_oauth_error(
        &token_post(&server, &editor, &[("scope", "prompts:read keys:admin")]).await,
        400,
        "invalid_scope",
    );
    assert_oauth_error(&token_post(&server, &admin, &[("scope", "admin")]).await, 400, "invalid_scope");
    // A role check still comes first: a viewer's plain 403 has no challenge.
    let viewer_api = server.api(&server.token_for(&viewer).await);
    let r = viewer_api.post("/api/v1/prompts", json!({"name": "nope", "content": "x"})).await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.header("www-authenticate"), None);
}

// ---- RFC 6750 on the Scope API -------------------------------------------------------------

#[tokio::test]
async fn the_scope_api_answers_rfc6750_challenges_with_unchanged_bodies() {
    let server = TestServer::start().await;
    let r = server.anon().get("/api/v1/me").await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "no credentials: no error code");
    let r = server.api("not.a.token").get("/api/v1/me").await;
    r.assert_error(401, "unauthorized");
    let challenge = r.header("www-authenticate").unwrap_or("");
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
    let anon_body = server.anon().get("/api/v1/prompts").await.body;
    assert_eq!(anon_body, r.body, "the body is the SPEC body, the same as before");
}

// ---- discovery -----------------------------------------------------------------------------

#[tokio::test]
async fn discovery_documents_name_the_issuer_of_the_tokens() {
    let server = TestServer::start().await;
    let token = server.admin().await.token().to_owned();
    let iss = decode_jwt(&token).claims["iss"].as_str().expect("iss").to_owned();
    assert_eq!(iss, server.base);

    let r = server.anon().get("/.well-known/oauth-authorization-server").await;
    r.assert_status(200);
    let m = r.json();
    assert_eq!(m["issuer"], iss.as_str());
    assert_eq!(m["token_endpoint"], format!("{iss}/oauth/token"));
    assert_eq!(m["jwks_uri"], format!("{iss}/.well-known/jwks.json"));
    assert_eq!(m["revocation_endpoint"], format!("{iss}/oauth/revoke"));
    assert_eq!(m["introspection_endpoint"], format!("{iss}/oauth/introspect"));
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(m["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post"]));
    assert_eq!(m["scopes_supported"], json!(["prompts:read", "prompts:write", "keys:admin"]));
    assert!(m["response_types_supported"].is_array());

    let r = server.anon().get("/.well-known/openid-configuration").await;
    r.assert_status(200);
    let o = r.json();
    assert_eq!(o["issuer"], iss.as_str());
    assert_eq!(o["jwks_uri"], m["jwks_uri"]);
    assert_eq!(o["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    // The JWKS it names verifies the token.
    let jwks = server.anon().get("/.well-known/jwks.json").await;
    jwks.assert_status(200);
    validate_with_jwks(&server, &token, None).await.expect("valid");

    // With SCOPE_PUBLIC_URL, that is the issuer everywhere.
    let public = TestServer::builder().env("SCOPE_PUBLIC_URL", "https://scope.example.com/").start().await;
    let m = public.anon().get("/.well-known/oauth-authorization-server").await.json();
    assert_eq!(m["issuer"], "https://scope.example.com");
    assert_eq!(m["token_endpoint"], "https://scope.example.com/oauth/token");
    let t = public.admin().await;
    assert_eq!(decode_jwt(t.token()).claims["iss"], "https://scope.example.com");
}

// ---- RFC 7009 revocation -------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_next_request_and_the_key_keeps_working() {
    let server = TestServer::start().await;
    let admin_api = server.admin().await;
    let admin = admin_key(&server);
    let viewer = server.create_key(&admin_api, "viewer", "viewer").await;
    let other_viewer = server.create_key(&admin_api, "other viewer", "viewer").await;

    // Its own token, client_secret_post.
    let t = server.token_for(&viewer).await;
    server.api(&t).get("/api/v1/me").await.assert_status(200);
    let r = form(
        &server,
        "/oauth/revoke",
        None,
        &[("token", t.as_str()), ("client_id", viewer.key_id.as_str()), ("client_secret", viewer.secret.as_str())],
    )
    .await;
    r.assert_status(200);
    assert_no_store(&r);
    server.api(&t).get("/api/v1/me").await.assert_error(401, "unauthorized");
    // Only that token: the key gets new ones that work.
    let fresh = server.token_for(&viewer).await;
    server.api(&fresh).get("/api/v1/me").await.assert_status(200);
    // Again, a garbage token, a token_type_hint: 200 (RFC 7009 §2.2).
    for token in [t.as_str(), "garbage"] {
        let r = form(
            &server,
            "/oauth/revoke",
            Some((viewer.key_id.as_str(), viewer.secret.as_str())),
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await;
        r.assert_status(200);
    }

    // Another key's token: not the caller's to revoke (200, nothing done)…
    let r = form(
        &server,
        "/oauth/revoke",
        Some((other_viewer.key_id.as_str(), other_viewer.secret.as_str())),
        &[("token", fresh.as_str())],
    )
    .await;
    r.assert_status(200);
    server.api(&fresh).get("/api/v1/me").await.assert_status(200);
    // …unless the caller is an admin key of the organization.
    form(&server, "/oauth/revoke", Some((admin.key_id.as_str(), admin.secret.as_str())), &[("token", fresh.as_str())])
        .await
        .assert_status(200);
    server.api(&fresh).get("/api/v1/me").await.assert_error(401, "unauthorized");

    // Another organization's admin revokes nothing here.
    let org_b = server.create_org("Beta", "admin@beta.test").await;
    let kept = server.token_for(&viewer).await;
    form(&server, "/oauth/revoke", Some((org_b.key_id.as_str(), org_b.secret.as_str())), &[("token", kept.as_str())])
        .await
        .assert_status(200);
    server.api(&kept).get("/api/v1/me").await.assert_status(200);

    // Client authentication is required; a missing token is invalid_request.
    assert_oauth_error(&form(&server, "/oauth/revoke", None, &[("token", kept.as_str())]).await, 401, "invalid_client");
    let r = form(
        &server,
        "/oauth/revoke",
        Some((viewer.key_id.as_str(), other_viewer.secret.as_str())),
        &[("token", kept.as_str())],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")));
    assert_oauth_error(
        &form(&server, "/oauth/revoke", Some((viewer.key_id.as_str(), viewer.secret.as_str())), &[]).await,
        400,
        "invalid_request",
    );
    server.api(&kept).get("/api/v1/me").await.assert_status(200);

    // The revocation is in the audit log.
    let events = admin_api.get("/api/v1/audit-events?action=api_key.token_revoked").await;
    events.assert_status(200);
    assert_eq!(events.json()["data"].as_array().map(Vec::len), Some(2), "{}", events.body);
}

#[tokio::test]
async fn a_revocation_reaches_another_replica_within_a_second() {
    // Replicas behind one URL share the issuer.
    let a = TestServer::builder().env("SCOPE_PUBLIC_URL", "http://scope.test").start().await;
    let b = TestServer::builder().env("SCOPE_PUBLIC_URL", "http://scope.test").same_database_as(&a).start().await;
    let key = admin_key(&a);
    let token = a.token(key.org_id.as_str(), key.key_id.as_str(), key.secret.as_str()).await;
    b.api(&token).get("/api/v1/me").await.assert_status(200);
    // A second token stays valid: one token is revoked, not the key.
    let other = a.token(key.org_id.as_str(), key.key_id.as_str(), key.secret.as_str()).await;

    form(&a, "/oauth/revoke", Some((key.key_id.as_str(), key.secret.as_str())), &[("token", token.as_str())])
        .await
        .assert_status(200);
    a.api(&token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    let b_api = b.api(&token);
    let seen = wait_until(Duration::from_secs(1), Duration::from_millis(20), || {
        let b_api = b_api.clone();
        async move { b_api.get("/api/v1/me").await.status == 401 }
    })
    .await;
    assert!(seen.is_some(), "replica B still accepted the revoked token after 1 s");
    b.api(&other).get("/api/v1/me").await.assert_status(200);

    // A replica started later loads it too.
    let c = TestServer::builder().env("SCOPE_PUBLIC_URL", "http://scope.test").same_database_as(&a).start().await;
    c.api(&token).get("/api/v1/me").await.assert_error(401, "unauthorized");
    c.api(&other).get("/api/v1/me").await.assert_status(200);
}

// ---- RFC 7662 introspection ----------------------------------------------------------------

#[tokio::test]
async fn introspection_tells_an_admin_of_the_organization_what_is_active() {
    let server = TestServer::start().await;
    let admin_api = server.admin().await;
    let admin = admin_key(&server);
    let viewer = server.create_key(&admin_api, "viewer", "viewer").await;
    let introspect = |token: String| {
        let (id, secret) = (admin.key_id.clone(), admin.secret.clone());
        let server = &server;
        async move {
            let r =
                form(server, "/oauth/introspect", Some((id.as_str(), secret.as_str())), &[("token", token.as_str())])
                    .await;
            r.assert_status(200);
            assert_no_store(&r);
            r.json()
        }
    };

    // An expiring key's token (expires with its key in ~1 s).
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1200);
    let r = admin_api
        .post(
            "/api/v1/api-keys",
            json!({"name": "short", "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    r.assert_status(201);
    let short = Key {
        key_id: r.json()["key_id"].as_str().expect("key_id").to_owned(),
        secret: r.json()["secret"].as_str().expect("secret").to_owned(),
        org_id: admin.org_id.clone(),
        json: r.json(),
    };
    let expiring = server.token_for(&short).await;

    // Active: the RFC 7662 fields.
    let t = access_token(&token_post(&server, &viewer, &[]).await);
    let v = introspect(t.clone()).await;
    let claims = decode_jwt(&t).claims;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["sub"], viewer.key_id.as_str());
    assert_eq!(v["client_id"], viewer.key_id.as_str());
    assert_eq!(v["org"], viewer.org_id.as_str());
    assert_eq!(v["scope"], "prompts:read");
    assert_eq!(v["token_type"], "Bearer");
    for claim in ["exp", "iat", "jti", "iss"] {
        assert_eq!(v[claim], claims[claim], "{claim}");
    }

    // Revoked.
    form(&server, "/oauth/revoke", Some((viewer.key_id.as_str(), viewer.secret.as_str())), &[("token", t.as_str())])
        .await
        .assert_status(200);
    assert_eq!(introspect(t).await, json!({"active": false}));
    // A revoked key's tokens.
    let of_revoked_key = server.token_for(&viewer).await;
    admin_api.post_empty(&format!("/api/v1/api-keys/{}/revoke", viewer.key_id)).await.assert_status(200);
    assert_eq!(introspect(of_revoked_key).await, json!({"active": false}));
    // Garbage.
    for garbage in ["garbage", "a.b.c", ""] {
        let r = form(
            &server,
            "/oauth/introspect",
            Some((admin.key_id.as_str(), admin.secret.as_str())),
            &[("token", garbage)],
        )
        .await;
        if garbage.is_empty() {
            assert_oauth_error(&r, 400, "invalid_request");
        } else {
            assert_eq!(r.json(), json!({"active": false}), "{garbage}");
        }
    }
    // Another organization's token, asked by this one's admin; and this
    // organization's token asked by the other's admin.
    let org_b = server.create_org("Beta", "admin@beta.test").await;
    let b_token = server.token(org_b.org_id.as_str(), org_b.key_id.as_str(), org_b.secret.as_str()).await;
    assert_eq!(introspect(b_token).await, json!({"active": false}));
    let mine = server.admin().await.token().to_owned();
    let r = form(
        &server,
        "/oauth/introspect",
        Some((org_b.key_id.as_str(), org_b.secret.as_str())),
        &[("token", mine.as_str())],
    )
    .await;
    assert_eq!(r.json(), json!({"active": false}));
    // Expired.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(introspect(expiring).await, json!({"active": false}));

    // Callers: an admin's bearer token works; a non-admin key is refused
    // (403), no credentials are invalid_client (401).
    let active = server.admin().await.token().to_owned();
    let r = Resp::from(
        server
            .http
            .post(server.url("/oauth/introspect"))
            .bearer_auth(admin_api.token())
            .form(&[("token", active.as_str())]),
    )
    .await;
    r.assert_status(200);
    assert_eq!(r.json()["active"], true);
    let narrowed = access_token(&token_post(&server, &admin, &[("scope", "prompts:read")]).await);
    let r = Resp::from(
        server.http.post(server.url("/oauth/introspect")).bearer_auth(&narrowed).form(&[("token", active.as_str())]),
    )
    .await;
    assert_oauth_error(&r, 403, "insufficient_scope");
    let r = Resp::from(
        server.http.post(server.url("/oauth/introspect")).bearer_auth("garbage").form(&[("token", active.as_str())]),
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_token");
    let editor = server.create_key(&admin_api, "editor", "editor").await;
    let r = form(
        &server,
        "/oauth/introspect",
        Some((editor.key_id.as_str(), editor.secret.as_str())),
        &[("token", active.as_str())],
    )
    .await;
    assert_oauth_error(&r, 403, "unauthorized_client");
    assert_oauth_error(
        &form(&server, "/oauth/introspect", None, &[("token", active.as_str())]).await,
        401,
        "invalid_client",
    );
}

// ---- audiences -----------------------------------------------------------------------------

#[tokio::test]
async fn resource_or_audience_sets_aud_when_allowed() {
    let billing = "https://billing.example.com";
    let server =
        TestServer::builder().env("SCOPE_TOKEN_AUDIENCES", &format!("{billing},urn:scope:reports")).start().await;
    let admin = admin_key(&server);

    // For a service behind a gateway: the gateway accepts it, Scope does not.
    let t = access_token(&token_post(&server, &admin, &[("resource", billing)]).await);
    assert_eq!(decode_jwt(&t).claims["aud"], billing);
    let claims = validate_with_jwks(&server, &t, Some(billing)).await.expect("valid for billing");
    assert_eq!(claims["aud"], billing);
    assert!(validate_with_jwks(&server, &t, Some("https://other.example.com")).await.is_err());
    let r = server.api(&t).get("/api/v1/me").await;
    r.assert_error(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some_and(|h| h.contains("invalid_token")));
    let t = access_token(&token_post(&server, &admin, &[("audience", "urn:scope:reports")]).await);
    assert_eq!(decode_jwt(&t).claims["aud"], "urn:scope:reports");

    // For Scope itself (the issuer): accepted; without aud: accepted.
    let t = access_token(&token_post(&server, &admin, &[("resource", server.base.as_str())]).await);
    assert_eq!(decode_jwt(&t).claims["aud"], server.base.as_str());
    server.api(&t).get("/api/v1/me").await.assert_status(200);
    let t = access_token(&token_post(&server, &admin, &[]).await);
    assert!(decode_jwt(&t).claims.get("aud").is_none());

    // Anything else is refused.
    assert_oauth_error(
        &token_post(&server, &admin, &[("resource", "https://evil.example.com")]).await,
        400,
        "invalid_target",
    );
    assert_oauth_error(
        &token_post(&server, &admin, &[("resource", billing), ("resource", server.base.as_str())]).await,
        400,
        "invalid_target",
    );
    assert_oauth_error(
        &token_post(&server, &admin, &[("resource", billing), ("audience", "urn:scope:reports")]).await,
        400,
        "invalid_request",
    );
}

/// `PUT /api/v1/org/audiences` with `{"audiences": …}`.
async fn put_audiences(api: &crate::harness::Api, audiences: Value) -> Resp {
    Resp::from(api.request(reqwest::Method::PUT, "/api/v1/org/audiences").json(&json!({ "audiences": audiences })))
        .await
}

#[tokio::test]
async fn an_organization_allows_its_own_audiences() {
    let gateway = "https://gateway.example";
    let server = TestServer::start().await;
    let admin_api = server.admin().await;
    let admin = admin_key(&server);
    let org_b = server.create_org("Beta", "admin@beta.test").await;
    let other = Key {
        key_id: org_b.key_id.clone(),
        secret: org_b.secret.clone(),
        org_id: org_b.org_id.clone(),
        json: Value::Null,
    };

    // Not allowed yet, for either organization.
    assert_oauth_error(&token_post(&server, &admin, &[("resource", gateway)]).await, 400, "invalid_target");
    admin_api.get("/api/v1/org/audiences").await.assert_status(200);
    assert_eq!(admin_api.get("/api/v1/org/audiences").await.json(), json!({"data": []}));

    // An editor cannot change them; an admin can, audited.
    let (editor, _) = server.client_with_role(&admin_api, "editor").await;
    put_audiences(&editor, json!([gateway])).await.assert_error(403, "forbidden");
    let r = put_audiences(&admin_api, json!([gateway, "billing-api", gateway])).await;
    r.assert_status(200);
    assert_eq!(r.json(), json!({"data": ["billing-api", gateway]}));
    assert_eq!(admin_api.get("/api/v1/org/audiences").await.json(), json!({"data": ["billing-api", gateway]}));
    let audit = admin_api.get("/api/v1/audit-events?action=org.audiences_changed").await;
    audit.assert_status(200);
    assert!(audit.body.contains("org.audiences_changed"), "{}", audit.body);

    // Refused values: 400 with the SPEC body, nothing changed.
    for bad in [
        json!(["ftp://files.example"]),
        json!([""]),
        json!(["has space"]),
        json!(["a\u{7}b"]),
        json!(["x".repeat(256)]),
    ] {
        put_audiences(&admin_api, bad).await.assert_error(400, "bad_request");
    }
    let many: Vec<String> = (0..51).map(|i| format!("api-{i}")).collect();
    put_audiences(&admin_api, json!(many)).await.assert_error(400, "bad_request");
    assert_eq!(admin_api.get("/api/v1/org/audiences").await.json(), json!({"data": ["billing-api", gateway]}));

    // This organization's tokens may name it, with `resource` or `audience`.
    let t = access_token(&token_post(&server, &admin, &[("resource", gateway)]).await);
    assert_eq!(decode_jwt(&t).claims["aud"], gateway);
    assert_eq!(validate_with_jwks(&server, &t, Some(gateway)).await.expect("valid for the gateway")["aud"], gateway);
    let t = access_token(&token_post(&server, &admin, &[("audience", "billing-api")]).await);
    assert_eq!(decode_jwt(&t).claims["aud"], "billing-api");
    // The Scope API still takes only its own audience.
    server.api(&t).get("/api/v1/me").await.assert_error(401, "unauthorized");

    // Another organization's tokens may not.
    assert_oauth_error(&token_post(&server, &other, &[("resource", gateway)]).await, 400, "invalid_target");
    let b = server.login(&org_b).await;
    assert_eq!(b.get("/api/v1/org/audiences").await.json(), json!({"data": []}));

    // Emptied: refused again.
    put_audiences(&admin_api, json!([])).await.assert_status(200);
    assert_oauth_error(&token_post(&server, &admin, &[("resource", gateway)]).await, 400, "invalid_target");
}
