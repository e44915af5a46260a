//! `scope prompt` commands the SDK does not cover (labels, rollback, diff,
//! fetching a label other than `production`/`latest`): the Scope API over
//! HTTP, with the SDK's environment variables (`SCOPE_API_URL`,
//! `SCOPE_AUTH_API_URL`, `SCOPE_ORG_ID`, `SCOPE_API_KEY`/`SCOPE_CLIENT_ID`,
//! `SCOPE_API_SECRET`/`SCOPE_CLIENT_SECRET`) and the SDK's HTTP client. A
//! token is exchanged once per command; the secret is never printed.

use std::time::Duration;

use anyhow::{anyhow, Context};
use scope_client::reqwest::{self, Method, Url};
use scope_client::ClientCredentials;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub struct Remote {
    http: reqwest::Client,
    /// `{SCOPE_API_URL}/api/v1`.
    api: Url,
    token: SecretString,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A base URL as the SDK takes it: `http(s)://host[:port][/prefix]`, with or
/// without a trailing `/api/v1`.
fn base_url(raw: &str, var: &str) -> anyhow::Result<Url> {
    let trimmed = raw.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v1").unwrap_or(trimmed);
    let url = Url::parse(&format!("{trimmed}/")).with_context(|| format!("{var}: '{raw}' is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(anyhow!("{var}: '{raw}' must be an http:// or https:// URL"));
    }
    Ok(url)
}

/// The SPEC §5 error body as one line.
fn api_error(status: reqwest::StatusCode, body: &str) -> anyhow::Error {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match (v["message"].as_str(), v["code"].as_str()) {
        (Some(m), Some(c)) => anyhow!("{m} (HTTP {}, {c})", status.as_u16()),
        _ => anyhow!("HTTP {}", status.as_u16()),
    }
}

impl Remote {
    /// Reads the SDK's variables and exchanges the key for a token.
    pub async fn from_env() -> anyhow::Result<Self> {
        let creds = ClientCredentials::from_env()?;
        let secret = env("SCOPE_CLIENT_SECRET")
            .or_else(|| env("SCOPE_API_SECRET"))
            .map(SecretString::from)
            .ok_or_else(|| anyhow!("SCOPE_API_SECRET is not set"))?;
        let base =
            base_url(&env("SCOPE_API_URL").unwrap_or_else(|| scope_client::DEFAULT_API_URL.into()), "SCOPE_API_URL")?;
        let auth = match env("SCOPE_AUTH_API_URL") {
            Some(u) => base_url(&u, "SCOPE_AUTH_API_URL")?,
            None => base.clone(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("scope-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let body = serde_json::json!({
            "account_id": creds.org_id(),
            "client_id": creds.key_id(),
            "client_secret": secret.expose_secret(),
        });
        let resp = http.post(auth.join("v1/auth/applications/login")?).json(&body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(api_error(status, &text).context("token exchange failed"));
        }
        let v: Value = serde_json::from_str(&text).context("token exchange: unexpected answer")?;
        let token = v["access_token"].as_str().ok_or_else(|| anyhow!("token exchange: no access_token"))?;
        Ok(Self { http, api: base.join("api/v1/")?, token: SecretString::from(token.to_owned()) })
    }

    /// `{api}/seg/seg/…`, each segment percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Url> {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow!("SCOPE_API_URL cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A call to the Scope API; the JSON answer (`Null` for 204).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, self.url(segments, query)?).bearer_auth(self.token.expose_secret());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("unexpected answer from the Scope API")
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Value> {
        self.call(Method::GET, segments, query, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for raw in ["http://h:8080", "http://h:8080/", "http://h:8080/api/v1", "http://h:8080/api/v1/"] {
            assert_eq!(base_url(raw, "X").map(|u| u.to_string()).ok().as_deref(), Some("http://h:8080/"), "{raw}");
        }
        assert!(base_url("ftp://h", "X").is_err());
        assert!(base_url("not a url", "X").is_err());
    }
}
