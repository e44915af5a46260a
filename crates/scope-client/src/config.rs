//! Credentials and settings, from the environment (SPEC §7) or set explicitly.
//!
//! Every reader takes a `lookup` function instead of reading the process
//! environment directly, so that tests (and programs with their own config
//! sources) can pass a map; `from_env` is `from_lookup` over `std::env`.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ConfigError;

/// The organization id (`org_…`).
pub const ENV_ORG_ID: &str = "SCOPE_ORG_ID";
/// The API key id (`key_…`); `SCOPE_CLIENT_ID` wins when both are set.
pub const ENV_API_KEY: &str = "SCOPE_API_KEY";
/// The API key secret (`secret_…`); `SCOPE_CLIENT_SECRET` wins when both are set.
pub const ENV_API_SECRET: &str = "SCOPE_API_SECRET";
/// Alternative name of `SCOPE_API_KEY`, used when set.
pub const ENV_CLIENT_ID: &str = "SCOPE_CLIENT_ID";
/// Alternative name of `SCOPE_API_SECRET`, used when set.
pub const ENV_CLIENT_SECRET: &str = "SCOPE_CLIENT_SECRET";
/// The Scope base URL; the API is at `{base}/api/v1`.
pub const ENV_API_URL: &str = "SCOPE_API_URL";
/// The base URL of the token exchange (default: `SCOPE_API_URL`).
pub const ENV_AUTH_API_URL: &str = "SCOPE_AUTH_API_URL";
/// Sent as `X-Scope-Environment` on every request.
pub const ENV_ENVIRONMENT: &str = "SCOPE_ENVIRONMENT";
/// Seconds before expiry to refresh the token (default 60).
pub const ENV_TOKEN_REFRESH_BUFFER: &str = "SCOPE_TOKEN_REFRESH_BUFFER";

/// Where the SDK looks when `SCOPE_API_URL` is unset: the address `scope
/// serve` listens on by default, so a first local run needs no setup.
pub const DEFAULT_API_URL: &str = "http://localhost:8080";

/// The process environment as a lookup function.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable's value, with blank values treated as unset.
pub(crate) fn lookup_nonblank(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// An organization id, an API key id and its secret.
///
/// The secret is held in a `secrecy::SecretString`: it never appears in `Debug`
/// output, logs or errors.
#[derive(Clone)]
pub struct ClientCredentials {
    org_id: String,
    key_id: String,
    secret: SecretString,
    /// Where the key id came from (`SCOPE_CLIENT_ID`, `SCOPE_API_KEY`, or
    /// `key_id` for explicit credentials), named in authentication errors.
    key_source: String,
}

impl ClientCredentials {
    /// Explicit credentials. The identifiers must have their Scope shape
    /// (`org_…`, `key_…`) and the secret's checksum must match, so a typo is
    /// caught here rather than as a 401 from the server.
    pub fn new(
        org_id: impl Into<String>,
        key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        Self::validated(org_id.into(), key_id.into(), secret.into(), ["org_id", "key_id", "secret"])
    }

    /// From `SCOPE_ORG_ID` and `SCOPE_API_KEY`/`SCOPE_API_SECRET` (or
    /// `SCOPE_CLIENT_ID`/`SCOPE_CLIENT_SECRET`, which win when both are set).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        let org = lookup_nonblank(lookup, ENV_ORG_ID)
            .ok_or_else(|| ConfigError::new(ENV_ORG_ID, "not set (the organization id, org_...)"))?;
        let (key, key_var) = match lookup_nonblank(lookup, ENV_CLIENT_ID) {
            Some(v) => (v, ENV_CLIENT_ID),
            None => match lookup_nonblank(lookup, ENV_API_KEY) {
                Some(v) => (v, ENV_API_KEY),
                None => {
                    return Err(ConfigError::new(
                        ENV_API_KEY,
                        format!("not set (the API key id, key_...; {ENV_CLIENT_ID} also works)"),
                    ))
                }
            },
        };
        let (secret, secret_var) = match lookup_nonblank(lookup, ENV_CLIENT_SECRET) {
            Some(v) => (v, ENV_CLIENT_SECRET),
            None => match lookup_nonblank(lookup, ENV_API_SECRET) {
                Some(v) => (v, ENV_API_SECRET),
                None => {
                    return Err(ConfigError::new(
                        ENV_API_SECRET,
                        format!("not set (the API key secret, secret_...; {ENV_CLIENT_SECRET} also works)"),
                    ))
                }
            },
        };
        Self::validated(org, key, secret, [ENV_ORG_ID, key_var, secret_var])
    }

    fn validated(org_id: String, key_id: String, secret: String, names: [&str; 3]) -> Result<Self, ConfigError> {
        let secret = SecretString::from(secret);
        check_prefixed_ulid(&org_id, "org_", names[0], "an organization id")?;
        check_prefixed_ulid(&key_id, "key_", names[1], "an API key id")?;
        if !scope_domain::secret_format::is_well_formed(secret.expose_secret()) {
            // Never echo the value: it may be a real secret with one typo.
            return Err(ConfigError::new(
                names[2],
                "not a valid Scope API secret (expected secret_ + 43 base62 characters + _ + a 6-character \
                 checksum; the checksum does not match, so the value is mistyped or truncated)",
            ));
        }
        Ok(Self { org_id, key_id, secret, key_source: names[1].to_owned() })
    }

    /// The organization id (`account_id` in the token exchange).
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The public key id (`client_id` / `key_id` in the token exchange).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Where the key id came from: `SCOPE_CLIENT_ID` or `SCOPE_API_KEY`
    /// for credentials from the environment, `key_id` for explicit ones.
    pub fn key_source(&self) -> &str {
        &self.key_source
    }

    pub(crate) fn secret(&self) -> &SecretString {
        &self.secret
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("org_id", &self.org_id)
            .field("key_id", &self.key_id)
            .field("key_source", &self.key_source)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn check_prefixed_ulid(value: &str, prefix: &str, name: &str, what: &str) -> Result<(), ConfigError> {
    let ok = value.strip_prefix(prefix).is_some_and(|rest| ulid::Ulid::from_string(rest).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(name, format!("'{value}' is not {what} (expected '{prefix}' followed by a ULID)")))
    }
}

/// Parse a base URL (`SCOPE_API_URL`, `SCOPE_AUTH_API_URL`): http or https,
/// no query or fragment; a trailing `/` and, when `strip_api_suffix`, a
/// trailing `/api/v1` are removed so that both forms of the base work.
pub(crate) fn parse_base_url(raw: &str, name: &str, strip_api_suffix: bool) -> Result<Url, ConfigError> {
    let mut s = raw.trim().trim_end_matches('/');
    if strip_api_suffix {
        s = s.strip_suffix("/api/v1").unwrap_or(s);
    }
    let url = Url::parse(s).map_err(|e| ConfigError::new(name, format!("'{raw}' is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(name, format!("'{raw}' must be an http:// or https:// URL")));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(ConfigError::new(name, format!("'{raw}' must name a host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(name, format!("'{raw}' must not have a query or fragment")));
    }
    Ok(url)
}

/// A number of seconds (integer or decimal, not negative).
pub(crate) fn parse_seconds(raw: &str, name: &str) -> Result<Duration, ConfigError> {
    let v: f64 =
        raw.trim().parse().map_err(|_| ConfigError::new(name, format!("'{raw}' is not a number of seconds")))?;
    if !(0.0..=1.0e9).contains(&v) {
        return Err(ConfigError::new(name, format!("'{raw}' must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(v))
}

/// An `X-Scope-Environment` value must be a valid header value.
pub(crate) fn check_environment(value: &str, name: &str) -> Result<(), ConfigError> {
    if value.is_empty() || reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(ConfigError::new(name, format!("'{value}' is not a valid environment label")));
    }
    Ok(())
}
