//! The web console (docs/CONSOLE.md) in a real headless Chromium against a
//! real `scope serve`: each test starts its own server and browser, acts as a
//! person would (labels, button texts, the header navigation), and checks the
//! effects over HTTP too. Screenshots of every page land in
//! `target/console-screenshots/<test>/`.

use fantoccini::Locator;
use reqwest::header::{COOKIE, ORIGIN};
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::harness::{is_secret_shaped, Api, Resp, TestServer};

/// `POST /v1/auth/applications/login` (SDK 0.2 names).
async fn applications_login(server: &TestServer, org_id: &str, key_id: &str, secret: &str) -> Resp {
    server
        .anon()
        .post(
            "/v1/auth/applications/login",
            json!({"account_id": org_id, "client_id": key_id, "client_secret": secret}),
        )
        .await
}

/// Creates a prompt and publishes its v1 through the JSON API; returns v1's id.
async fn published_prompt(admin: &Api, name: &str, content: &str) -> String {
    let p = admin.create_prompt(name, content).await;
    let v1 = p["version"]["version_id"].as_str().expect("v1 id").to_owned();
    admin.post_empty(&format!("/api/v1/prompts/{name}/versions/{v1}/promote")).await.assert_status(200);
    v1
}

/// The versions of a prompt through the JSON API, as `(number, id, content)`.
async fn versions(admin: &Api, name: &str) -> Vec<(i64, String, String)> {
    let r = admin.get(&format!("/api/v1/prompts/{name}/versions?include_archived=true")).await;
    r.assert_status(200);
    r.json()["data"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().expect("version"),
                v["version_id"].as_str().expect("version_id").to_owned(),
                v["content"].as_str().expect("content").to_owned(),
            )
        })
        .collect()
}

/// A user created through the JSON API with a one-time initial password.
async fn user_with_initial_password(admin: &Api, email: &str, role: &str) -> String {
    let r = admin.post("/api/v1/users", json!({"email": email, "role": role, "onboarding": "password"})).await;
    r.assert_status(201);
    r.json()["initial_password"].as_str().expect("initial_password").to_owned()
}

/// A request carrying a browser session's cookie and the server's origin.
fn with_session(server: &TestServer, rb: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    rb.header(COOKIE, format!("scope_session={session}")).header(ORIGIN, &server.base)
}

/// Signs in as the bootstrap admin and lands on `/prompts`.
async fn admin_browser(server: &TestServer, test: &str) -> Browser {
    let b = Browser::start(test, &server.base).await;
    b.sign_in(&server.org.admin_email, &server.org.admin_password).await;
    b.wait_path("/prompts").await;
    b
}

/// The values a key-creation (or rotation) result page shows once.
struct ShownKey {
    org_id: String,
    key_id: String,
    secret: String,
}

/// Reads and checks a result page showing a new key's values once.
async fn read_shown_key(b: &Browser, server: &TestServer) -> ShownKey {
    let org_id = b.css_text("code#org-id").await.trim().to_owned();
    let key_id = b.css_text("code#key-id").await.trim().to_owned();
    let secret = b.css_text("code#key-secret").await.trim().to_owned();
    assert_eq!(org_id, server.org.org_id, "#org-id shows the organization");
    assert!(key_id.starts_with("key_"), "#key-id is a key id: {key_id}");
    assert!(is_secret_shaped(&secret), "#key-secret is a secret: {secret}");
    let env = b.css_text("pre#env-block").await;
    for (var, value) in [("SCOPE_ORG_ID", &org_id), ("SCOPE_API_KEY", &key_id), ("SCOPE_API_SECRET", &secret)] {
        assert!(env.contains(&format!("{var}={value}")), "#env-block lacks {var}={value}: {env}");
    }
    assert!(env.contains("export"), "#env-block is an export line: {env}");
    let text = b.text().await;
    assert!(text.contains("This secret will not be shown again."), "the once-only warning is missing: {text}");
    let copies = b.xpath_all("//button[normalize-space()='Copy']").await.len();
    assert!(copies >= 3, "a Copy button for each of org id, key id and secret; found {copies}");
    ShownKey { org_id, key_id, secret }
}

#[tokio::test]
async fn an_admin_creates_a_key_in_the_console_uses_it_once_and_revokes_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    published_prompt(&admin, "welcome", "Hello {{name}}").await;

    let b = admin_browser(&server, "create_use_revoke_key").await;
    b.click_nav("Settings").await;
    b.click_link("API Keys").await;
    b.wait_path("/settings/api-keys").await;
    assert_eq!(b.css_text("h1").await.trim(), "API Keys");
    b.click_link("Create API Key").await;
    b.wait_path("/settings/api-keys/new").await;
    b.fill("Name", "ci-staging").await;
    b.select("Environment", &["staging"]).await;
    b.select("Role", &["viewer"]).await;
    assert!(b.has_field("Expires").await, "the form has an optional Expires field");
    b.shot("create-form-filled").await;
    b.click_button("Create API Key").await;

    let shown = read_shown_key(&b, &server).await;

    // The shown credentials work, with the SDK 0.2 exchange.
    let r = applications_login(&server, &shown.org_id, &shown.key_id, &shown.secret).await;
    r.assert_status(200);
    let token = r.json()["access_token"].as_str().expect("access_token").to_owned();
    let key_api = server.api(&token);
    let r = key_api.get("/api/v1/prompts/welcome/production").await;
    r.assert_status(200);
    assert_eq!(r.json()["content"], "Hello {{name}}");

    // Shown once: neither a reload nor the list shows the secret again.
    b.reload("result-reloaded").await;
    assert!(!b.source().await.contains(&shown.secret), "the secret is shown again after a reload ({})", b.path().await);
    b.visit("/settings/api-keys", "list-after-create").await;
    assert!(!b.source().await.contains(&shown.secret), "the list page shows the secret");

    let row = format!("tr[data-key-id='{}']", shown.key_id);
    let tr = b.css(&row).await;
    assert_eq!(tr.attr("data-status").await.expect("attr").as_deref(), Some("active"));
    let row_text = tr.text().await.expect("row text");
    assert!(
        row_text.contains("ci-staging") && row_text.contains("staging") && row_text.contains("viewer"),
        "{row_text}"
    );
    let (last_used, html) = b.cell(&row, "Last used").await.expect("a Last used column in the key's row");
    assert!(!last_used.is_empty() && last_used != "Never", "Last used after an exchange: {last_used:?}");
    assert!(
        html.contains("<time") && html.contains("title="),
        "Last used is a <time> with the exact time as title: {html}"
    );

    // Revoke through the confirmation page.
    b.click_in(&row, "Revoke").await;
    b.wait_path(&format!("/settings/api-keys/{}/revoke", shown.key_id)).await;
    let text = b.text().await;
    let question = format!("Revoke API key “ci-staging” ({})?", shown.key_id);
    assert!(text.contains(&question), "the confirmation names the key as {question:?}: {text}");
    b.click_button("Revoke").await;
    b.wait_path("/settings/api-keys").await;
    let status = b.css(&row).await.attr("data-status").await.expect("attr");
    assert_eq!(status.as_deref(), Some("revoked"), "the row shows the key revoked");

    // Revoked for good: no new exchange, and the issued token is refused.
    applications_login(&server, &shown.org_id, &shown.key_id, &shown.secret).await.assert_status(401);
    key_api.get("/api/v1/prompts/welcome/production").await.assert_status(401);
    b.close().await;
}

#[tokio::test]
async fn rotating_a_key_in_the_console_shows_a_working_successor_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let old = server.create_key(&admin, "deploy", "editor").await;

    let b = admin_browser(&server, "rotate_key").await;
    b.visit("/settings/api-keys", "keys").await;
    let old_row = format!("tr[data-key-id='{}']", old.key_id);
    b.click_in(&old_row, "Rotate").await;
    b.wait_path(&format!("/settings/api-keys/{}/rotate", old.key_id)).await;
    b.fill("Grace period (hours)", "2").await;
    b.click_button("Rotate").await;

    let shown = read_shown_key(&b, &server).await;
    assert_ne!(shown.key_id, old.key_id, "the successor has a new key id");
    assert_ne!(shown.secret, old.secret, "the successor has a new secret");
    let result_text = b.text().await;

    // The successor works; the old key still does during the grace period.
    server.token(&shown.org_id, &shown.key_id, &shown.secret).await;
    applications_login(&server, &shown.org_id, &shown.key_id, &shown.secret).await.assert_status(200);
    server.exchange(&old.org_id, &old.key_id, &old.secret).await.assert_status(200);
    let r = admin.get(&format!("/api/v1/api-keys/{}", shown.key_id)).await;
    r.assert_status(200);
    let v = r.json();
    assert_eq!((v["name"].as_str(), v["role"].as_str()), (Some("deploy"), Some("editor")), "same name and role: {v}");
    let r = admin.get(&format!("/api/v1/api-keys/{}", old.key_id)).await;
    assert!(r.json()["expires_at"].is_string(), "the old key now expires: {}", r.body);

    b.reload("result-reloaded").await;
    assert!(!b.source().await.contains(&shown.secret), "the successor's secret is shown again after a reload");
    b.visit("/settings/api-keys", "list-after-rotate").await;
    assert!(!b.source().await.contains(&shown.secret));
    let new_row = format!("tr[data-key-id='{}']", shown.key_id);
    assert_eq!(b.css(&new_row).await.attr("data-status").await.expect("attr").as_deref(), Some("active"));
    // Last, the wording CONSOLE.md gives for the previous key's end.
    assert!(
        result_text.contains("The previous key stops working at"),
        "the result says \"The previous key stops working at …\": {result_text}"
    );
    b.close().await;
}

#[tokio::test]
async fn a_viewer_sees_no_admin_or_editor_controls_and_is_refused_key_management() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("welcome", "Hello {{name}}").await; // v1, a draft
    let initial = user_with_initial_password(&admin, "viewer@acme.test", "viewer").await;

    // First the admin, in the same browser: read the key form's field names
    // and keep the session for a control request.
    let b = admin_browser(&server, "viewer_is_refused").await;
    b.visit("/settings/api-keys/new", "admin-new-key-form").await;
    let mut names = Vec::new();
    for label in ["Name", "Environment", "Role"] {
        let n = b.field(label).await.attr("name").await.expect("attr").expect("the field has a name");
        names.push(n);
    }
    let admin_session = b.cookie("scope_session").await;
    let admin_csrf = b.csrf().await;
    b.client.delete_all_cookies().await.expect("delete cookies");

    // The viewer signs in with the one-time password and must change it.
    b.sign_in("viewer@acme.test", &initial).await;
    b.wait_path("/account/password").await;
    b.visit("/prompts", "viewer-forced-to-change-password").await;
    b.wait_path("/account/password").await;
    b.fill("Current password", &initial).await;
    b.fill("New password", "viewer-password-2024!").await;
    b.fill("Confirm new password", "viewer-password-2024!").await;
    b.click_button("Change password").await;
    b.visit("/prompts", "viewer-prompts").await;
    b.wait_path("/prompts").await;

    let nav = b.nav_links().await;
    assert!(nav.iter().any(|t| t == "Prompts"), "the header has Prompts: {nav:?}");
    assert!(!nav.iter().any(|t| t == "Settings"), "a viewer's header has no Settings link: {nav:?}");
    assert!(!nav.iter().any(|t| t == "Audit log"), "a viewer's header has no Audit log link: {nav:?}");
    assert!(b.has_css("tr[data-prompt='welcome']").await, "the viewer sees the prompt");
    assert!(!b.has_control("New prompt").await, "a viewer sees no New prompt");

    b.visit("/prompts/welcome", "viewer-prompt-page").await;
    assert!(b.has_css("pre#version-content").await);
    for control in ["Promote", "Create version", "New version", "Edit", "Archive"] {
        assert!(!b.has_control(control).await, "a viewer sees no {control:?} control");
    }

    // The viewer's real session and the CSRF token of its Sign out form.
    let session = b.cookie("scope_session").await;
    let csrf = b.csrf().await;

    b.visit("/settings/api-keys", "viewer-api-keys-403").await;
    assert_eq!(b.status().await, 403, "a viewer gets a 403 page for API keys");
    assert!(!b.has_control("Create API Key").await, "the 403 page offers no Create API Key");
    assert!(!b.source().await.contains("data-key-id"), "the 403 page lists no keys");
    let forbidden_page_has_sign_out = b.has_css("form[action='/logout'] input[name='csrf']").await;

    // The viewer's real session and CSRF token, used directly.
    let r = Resp::from(with_session(&server, server.http.get(server.url("/prompts")), &session)).await;
    r.assert_status(200);
    let form = [
        ("csrf", csrf.as_str()),
        (names[0].as_str(), "sneaky"),
        (names[1].as_str(), "production"),
        (names[2].as_str(), "admin"),
    ];
    let r = Resp::from(with_session(&server, server.http.post(server.url("/settings/api-keys")), &session).form(&form))
        .await;
    r.assert_status(403);
    let r = Resp::from(
        with_session(&server, server.http.post(server.url("/api/v1/api-keys")), &session)
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": "sneaky", "role": "viewer"})),
    )
    .await;
    r.assert_status(403);

    // The same requests with the admin's session succeed: the 403s above
    // are the viewer's role, not a malformed request.
    let r = Resp::from(
        with_session(&server, server.http.post(server.url("/api/v1/api-keys")), &admin_session)
            .header("X-CSRF-Token", &admin_csrf)
            .json(&json!({"name": "by-admin-session", "role": "viewer"})),
    )
    .await;
    r.assert_status(201);
    let form = [
        ("csrf", admin_csrf.as_str()),
        (names[0].as_str(), "by-admin-form"),
        (names[1].as_str(), "production"),
        (names[2].as_str(), "viewer"),
    ];
    let r = Resp::from(
        with_session(&server, server.http.post(server.url("/settings/api-keys")), &admin_session).form(&form),
    )
    .await;
    assert!(r.status < 400, "the admin's form post is accepted: {} {}", r.status, r.body);
    let keys = admin.get("/api/v1/api-keys").await.json();
    let names_made: Vec<&str> =
        keys["data"].as_array().expect("keys").iter().filter_map(|k| k["name"].as_str()).collect();
    assert!(!names_made.contains(&"sneaky"), "the viewer created no key: {names_made:?}");
    // Last: "every page has a header with … a Sign out button", the 403 page too.
    assert!(forbidden_page_has_sign_out, "the 403 page has the header with the Sign out form");
    b.close().await;
}

/// The Preview form's field for `var`: labelled with the variable's name
/// (bare or in braces), else named after it.
async fn preview_field(b: &Browser, var: &str) -> fantoccini::elements::Element {
    for label in [var.to_owned(), format!("{{{{{var}}}}}")] {
        if b.has_field(&label).await {
            return b.field(&label).await;
        }
    }
    let form = b.xpath_all("//form[.//button[normalize-space()='Render'] or .//input[@value='Render']]").await;
    let form = form.into_iter().next().expect("a Preview form with a Render button");
    for sel in [format!("[name='{var}']"), format!("[name='var.{var}']"), format!("[name='vars[{var}]']")] {
        if let Ok(e) = form.find(Locator::Css(&sel)).await {
            return e;
        }
    }
    panic!("the Preview form has no field for {var:?}")
}

#[tokio::test]
async fn an_editor_flow_creates_versions_edits_a_draft_and_promotes_it_to_production() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let b = admin_browser(&server, "prompt_lifecycle").await;
    b.click_link("New prompt").await;
    b.wait_path("/prompts/new").await;
    b.fill("Name", "greeting").await;
    b.fill("Description", "Greets a new user").await;
    b.fill("Tags", "onboarding, email").await;
    b.select("Type", &["text"]).await;
    b.fill("Content", "Hello {{name}}!").await;
    b.click_button("Create prompt").await;
    b.wait_path("/prompts/greeting").await;
    let marks = b.css_all("pre#version-content mark.var").await;
    assert_eq!(marks.len(), 1, "one highlighted variable");
    assert!(marks[0].text().await.expect("mark").contains("name"), "the mark is the variable");
    assert!(b.has_css("tr[data-version='1'][data-status='draft']").await, "v1 is listed as a draft");

    // Publish v1 so that promoting v2 replaces something.
    let v1 = versions(&admin, "greeting").await.into_iter().find(|v| v.0 == 1).expect("v1").1;
    admin.post_empty(&format!("/api/v1/prompts/greeting/versions/{v1}/promote")).await.assert_status(200);

    b.visit("/prompts/greeting", "prompt-v1-published").await;
    b.select("Copy from", &[&v1, "v1", "1", "Version 1", "version 1"]).await;
    b.click_button("Create version").await;
    let vs = versions(&admin, "greeting").await;
    let (_, v2, copied) = vs.iter().find(|v| v.0 == 2).cloned().expect("v2 created");
    assert_eq!(copied, "Hello {{name}}!", "v2 is a copy of v1");

    b.visit(&format!("/prompts/greeting?version={v2}"), "v2-selected").await;
    assert!(b.has_css("tr[data-version='2'][data-status='draft']").await, "v2 is a draft");
    let row = "tr[data-version='2']";
    if b.css(row)
        .await
        .find(Locator::XPath(".//a[normalize-space()='Edit'] | .//button[normalize-space()='Edit']"))
        .await
        .is_ok()
    {
        b.click_in(row, "Edit").await;
    } else {
        b.click_in("body", "Edit").await;
    }
    b.wait_path(&format!("/prompts/greeting/versions/{v2}/edit")).await;
    assert!(
        b.has_field("Type").await && b.has_field("Metadata (JSON)").await,
        "the edit form has Type and Metadata (JSON)"
    );
    let new_content = "Hi {{name}}, welcome to {{place}}.";
    b.fill("Content", new_content).await;
    b.click_button("Save draft").await;

    b.visit(&format!("/prompts/greeting?version={v2}"), "v2-edited").await;
    assert_eq!(b.css_text("pre#version-content").await.trim(), new_content);
    assert_eq!(b.css_all("pre#version-content mark.var").await.len(), 2, "both variables highlighted");

    // Promote, through the confirmation page.
    if b.css(row)
        .await
        .find(Locator::XPath(".//a[normalize-space()='Promote'] | .//button[normalize-space()='Promote']"))
        .await
        .is_ok()
    {
        b.click_in(row, "Promote").await;
    } else {
        b.click_in("body", "Promote").await;
    }
    let text = b.text().await.to_lowercase();
    assert!(
        text.contains("v1") || text.contains("version 1"),
        "the confirmation names the version it replaces: {text}"
    );
    b.check("Archive the version it replaces").await;
    b.fill("Notes", "Welcome the new user by place").await;
    b.click_button("Promote").await;

    // What the SDK now gets, with a token of the bootstrap key.
    let r = admin.get("/api/v1/prompts/greeting/production").await;
    r.assert_status(200);
    let v = r.json();
    assert_eq!((v["version"].as_i64(), v["content"].as_str()), (Some(2), Some(new_content)), "{v}");

    // Preview renders with the shared template engine.
    b.visit(&format!("/prompts/greeting?version={v2}"), "v2-production").await;
    assert!(b.has_css("tr[data-version='2'][data-status='published']").await, "v2 is published");
    b.visit("/prompts/greeting?archived=1", "with-archived").await;
    assert!(b.has_css("tr[data-version='1'][data-status='archived']").await, "v1 was archived as asked");
    b.visit(&format!("/prompts/greeting?version={v2}"), "v2-preview").await;
    preview_field(&b, "name").await.send_keys("Ada").await.expect("type");
    preview_field(&b, "place").await.send_keys("Paris").await.expect("type");
    b.click_button("Render").await;
    assert_eq!(b.css_text("pre#render-output").await.trim(), "Hi Ada, welcome to Paris.");

    // The side-by-side diff of v1 and v2.
    // (v1 is archived now, so list it to compare against it.)
    b.visit("/prompts/greeting?archived=1", "prompt-page-compare").await;
    let compare = Browser::form_with("Compare");
    let form = b.xpath_all(&compare).await.into_iter().next().expect("the prompt page has a Compare form");
    for (param, id) in [("from", &v1), ("to", &v2)] {
        let sel = form.find(Locator::Css(&format!("select[name='{param}']"))).await.expect("from/to selects");
        sel.select_by_value(id).await.unwrap_or_else(|e| panic!("choose {id} as {param}: {e}"));
    }
    b.click_button("Compare").await;
    b.wait_path("/prompts/greeting/diff").await;
    let at = b.path().await;
    assert!(at.contains(&format!("from={v1}")) && at.contains(&format!("to={v2}")), "the diff URL: {at}");
    let diff = b.css_text("table#diff").await;
    assert!(diff.contains("Hello") && diff.contains("welcome"), "the diff shows both sides: {diff}");
    b.close().await;
}

#[tokio::test]
async fn an_invited_user_sets_a_password_and_loses_their_session_when_removed() {
    let server = TestServer::start().await;
    let email = "invitee@acme.test";
    let admin_b = admin_browser(&server, "invite_and_remove_user").await;
    admin_b.click_nav("Settings").await;
    admin_b.click_link("Users").await;
    admin_b.wait_path("/settings/users").await;
    let invite = Browser::form_with("Invite user");
    admin_b.fill_within(&invite, "Email", email).await;
    admin_b.select_within(&invite, "Role", &["editor"]).await;
    admin_b.click_button("Invite user").await;
    let url = admin_b.css_text("code#invitation-url").await.trim().to_owned();
    assert!(url.starts_with(&format!("{}/invite/", server.base)), "an invitation link on this server: {url}");

    // The invitee, in a browser of their own.
    let user_b = admin_b.another("invitee").await;
    user_b.visit(&url, "invitation").await;
    user_b.fill("Password", "invitee-password-2024!").await;
    user_b.fill("Confirm password", "invitee-password-2024!").await;
    user_b.click_button("Set password").await;
    user_b.wait_path("/prompts").await;
    assert!(user_b.text().await.contains(email), "the header shows the signed-in email");

    // The link is single-use.
    let r = Resp::from(server.http.get(&url)).await;
    assert_eq!(r.status, 404, "a used invitation link is a 404 page");

    // Signing out and in again works with the new password.
    user_b.click_button("Sign out").await;
    user_b.visit("/prompts", "signed-out").await;
    user_b.wait_path("/login").await;
    user_b.sign_in(email, "invitee-password-2024!").await;
    user_b.wait_path("/prompts").await;

    // The admin removes them.
    admin_b.visit("/settings/users", "users").await;
    let row = format!("tr[data-email='{email}']");
    let tr = admin_b.css(&row).await;
    let user_id = tr.attr("data-user-id").await.expect("attr").expect("data-user-id");
    assert!(user_id.starts_with("usr_"), "{user_id}");
    admin_b.click_in(&row, "Remove").await;
    assert!(admin_b.text().await.contains(email), "the confirmation names the user");
    admin_b.click_button("Remove user").await;
    admin_b.wait_path("/settings/users").await;
    assert!(!admin_b.has_css(&row).await, "the removed user is no longer listed");

    // Their open session is refused at once.
    user_b.reload("after-removal").await;
    user_b.wait_path("/login").await;
    user_b.close().await;
    admin_b.close().await;
}

/// `script[src]`, `link[href]` and `img[src]` of the current page.
async fn referenced_urls(b: &Browser) -> Vec<String> {
    let v = b
        .js("return Array.from(document.querySelectorAll('script[src], link[href], img[src]')) \
             .map(e => e.getAttribute('src') || e.getAttribute('href'));")
        .await;
    v.as_array().expect("urls").iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_console_works_from_the_keyboard_and_loads_nothing_from_elsewhere() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_prompt("welcome", "Hello {{name}}").await;
    let b = Browser::start("keyboard_and_headers", &server.base).await;

    // Sign in with the keyboard alone.
    b.visit("/login", "login").await;
    let mut tabs = 0;
    while !b.focused().await.contains("[email]") {
        tabs += 1;
        assert!(tabs <= 20, "Tab never reaches the Email field (focus on {})", b.focused().await);
        b.press(fantoccini::key::Key::Tab).await;
    }
    let ring = b
        .js("const s = getComputedStyle(document.activeElement); \
             return (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow !== 'none';")
        .await;
    b.shot("email-focused").await;
    assert_eq!(ring, Value::Bool(true), "the focused Email field shows a focus ring");
    b.keys(&server.org.admin_email).await;
    b.press(fantoccini::key::Key::Tab).await;
    assert!(b.focused().await.contains("[password]"), "Tab goes from Email to Password, not {}", b.focused().await);
    b.keys(&server.org.admin_password).await;
    b.press(fantoccini::key::Key::Enter).await;
    b.wait_path("/prompts").await;
    b.shot("signed-in-by-keyboard").await;

    // Headers of a console page, signed out and signed in.
    let session = b.cookie("scope_session").await;
    let signed_out = Resp::from(server.http.get(server.url("/login"))).await;
    let signed_in = Resp::from(with_session(&server, server.http.get(server.url("/prompts")), &session)).await;
    signed_in.assert_status(200);
    for (what, r) in [("/login", &signed_out), ("/prompts", &signed_in)] {
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{what}: CSP {csp:?}");
        for directive in ["script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{what}: CSP lacks {directive}: {csp:?}");
        }
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    }

    // No page loads anything from another origin; the assets are immutable.
    let mut assets = Vec::new();
    for (path, label) in [
        ("/prompts", "prompts"),
        ("/prompts/welcome", "prompt"),
        ("/prompts/new", "new-prompt"),
        ("/settings/api-keys", "api-keys"),
        ("/settings/api-keys/new", "new-key"),
        ("/settings/users", "users"),
        ("/audit", "audit"),
        ("/account/password", "password"),
        ("/no/such/page", "not-found"),
    ] {
        b.visit(path, label).await;
        for u in referenced_urls(&b).await {
            let lower = u.to_ascii_lowercase();
            assert!(
                !(lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//"))
                    || lower.starts_with(&server.base),
                "{path} references an external URL: {u}"
            );
            if u.starts_with("/assets/") && !assets.contains(&u) {
                assets.push(u);
            }
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".css")), "pages use the embedded stylesheet: {assets:?}");
    for a in &assets {
        let r = Resp::from(server.http.get(server.url(a))).await;
        r.assert_status(200);
        assert!(a.starts_with("/assets/app."), "assets are /assets/app.<hash>.<ext>: {a}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"), "{a}");
    }

    // On a phone-sized window the pages do not scroll sideways (wide tables
    // scroll inside their own box) and the navigation stays reachable.
    b.client.set_window_size(390, 844).await.expect("resize");
    for (path, label) in
        [("/prompts", "phone-prompts"), ("/prompts/welcome", "phone-prompt"), ("/settings/api-keys", "phone-api-keys")]
    {
        b.visit(path, label).await;
        let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;").await;
        assert!(overflow.as_i64().unwrap_or(i64::MAX) <= 0, "{path} scrolls sideways on a phone by {overflow}px");
        assert!(b.nav_links().await.iter().any(|t| t == "Settings"), "{path}: the header keeps its navigation");
    }
    b.close().await;
}
