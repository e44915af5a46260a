//! Rust SDK for Scope, the self-hosted LLM prompt
//! registry.
//!
//! Applications authenticate with an API key (organization id, key id and
//! secret), which the client exchanges for a short-lived JWT and refreshes
//! ahead of expiry. Prompt versions are fetched by label (`production`, the
//! default, or `latest`) or by version id, cached in memory for five minutes,
//! retried with backoff on transient failures, and rendered locally with the
//! same single-pass `{{variable}}` substitution as the server.
//!
//! # Configuration
//!
//! [`Client::from_env`] reads:
//!
//! | variable | meaning |
//! |---|---|
//! | `SCOPE_ORG_ID` | organization id (`org_…`), required |
//! | `SCOPE_API_KEY` / `SCOPE_API_SECRET` | key id (`key_…`) and secret (`secret_…`), required; `SCOPE_CLIENT_ID` / `SCOPE_CLIENT_SECRET` also work |
//! | `SCOPE_API_URL` | Scope base URL, API at `{base}/api/v1` (default `http://localhost:8080`) |
//! | `SCOPE_AUTH_API_URL` | auth API base URL (default: `SCOPE_API_URL`) |
//! | `SCOPE_ENVIRONMENT` | sent as `X-Scope-Environment` |
//! | `SCOPE_TOKEN_REFRESH_BUFFER` | seconds before expiry to refresh the token (default 60) |
//!
//! A missing or malformed value is an [`Error::Config`] naming the variable;
//! a secret whose checksum does not match is rejected before any request.
//! Every option (timeouts, cache, retries, hooks, stale-if-error,
//! background refresh) has a [`ClientBuilder`] method.
//!
//! # Example
//!
//! ```no_run
//! use std::collections::HashMap;
//!
//! # async fn run() -> Result<(), scope_client::Error> {
//! let client = scope_client::Client::from_env()?;
//!
//! // The production version (cached for 5 minutes).
//! let prompt = client.get_prompt_version("greeting").await?;
//! println!("{} v{} ({:?})", prompt.name, prompt.version, prompt.status);
//!
//! // The newest draft, bypassing the cache.
//! let latest = client.get_prompt_version("greeting").label("latest").skip_cache().await?;
//! assert!(latest.version >= prompt.version);
//!
//! // Fetch and render in one call.
//! let vars = HashMap::from([("name", "Ada")]);
//! let text = client.render_prompt("greeting", &vars).await?;
//! println!("{text}");
//! # Ok(())
//! # }
//! ```
//!
//! Rendering needs no network and reports every missing variable at once:
//!
//! ```
//! use std::collections::HashMap;
//! use scope_client::{Error, PromptVersion};
//!
//! let json = r#"{
//!     "prompt_id": "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V", "version_id": "v_01JD8X3Q7V9W0K2M4N6P8R0T2W",
//!     "name": "greeting", "version": 3, "content": "Hello {{name}}, welcome to {{place}}!",
//!     "variables": ["name", "place"], "status": "published", "is_production": true,
//!     "prompt_type": "text", "metadata": {"model": "gpt-4o"}, "tags": [],
//!     "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
//!     "promoted_at": null, "promoted_by": null
//! }"#;
//! let prompt: PromptVersion = serde_json::from_str(json).unwrap();
//! assert!(prompt.is_published());
//! assert_eq!(prompt.metadata_str("model"), Some("gpt-4o"));
//!
//! let vars = HashMap::from([("name", "Ada"), ("place", "{{name}}land")]);
//! assert_eq!(prompt.render(&vars).unwrap(), "Hello Ada, welcome to {{name}}land!");
//!
//! let err = prompt.render(&HashMap::<&str, &str>::new()).unwrap_err();
//! assert!(matches!(err, Error::MissingVariables { ref variables } if variables == &["name", "place"]));
//! ```
//!
//! Programs without an async runtime use [`blocking::Client`], which has the
//! same methods.
//!
//! # Behaviour
//!
//! - **Tokens**: exchanged at `POST {auth}/v1/auth/applications/login`
//!   (falling back to `/v1/auth/sdk-token` when that answers 404), refreshed
//!   `token_refresh_buffer` before expiry. Refresh is single-flight: any
//!   number of concurrent callers cause one exchange. A request refused with
//!   401 refreshes the token once and is repeated.
//! - **Retries**: 429, 500, 502, 503, 504, timeouts and connection errors,
//!   up to `max_retries` (3) with full-jitter exponential backoff (0.5 s base,
//!   30 s cap), waiting exactly `Retry-After` when the server sends one. Other
//!   4xx are never retried. See [`RetryPolicy`].
//! - **Cache**: keyed `prompt:{name}:{label|version}` ([`cache_key`]); a hit
//!   touches neither the network nor the allocator beyond an `Arc` clone.
//! - **Observability**: `tracing` spans `scope_client.get_prompt_version` and
//!   `scope_client.http`, and request/response/error hooks. Requests carry
//!   `Accept`, `User-Agent: scope-client-rust/VERSION` and `X-Request-ID`.
//!   Secrets and tokens never appear in `Debug` output, logs or errors.

pub mod blocking;
mod cache;
mod client;
mod config;
mod error;
mod hooks;
mod prompt;
mod retry;
mod token;
mod transport;

pub use client::{
    Client, ClientBuilder, GetPromptVersion, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REFRESH_AHEAD, DEFAULT_TIMEOUT, DEFAULT_TOKEN_REFRESH_BUFFER, USER_AGENT,
};
pub use config::{
    ClientCredentials, DEFAULT_API_URL, ENV_API_KEY, ENV_API_SECRET, ENV_API_URL, ENV_AUTH_API_URL, ENV_CLIENT_ID,
    ENV_CLIENT_SECRET, ENV_ENVIRONMENT, ENV_ORG_ID, ENV_TOKEN_REFRESH_BUFFER,
};
pub use error::{ApiError, ConfigError, Error};
pub use hooks::{ErrorEvent, RequestEvent, ResponseEvent};
pub use prompt::{cache_key, PromptStatus, PromptType, PromptVersion, Selector, LABEL_LATEST, LABEL_PRODUCTION};
pub use retry::{is_retryable_status, parse_retry_after, RetryPolicy};
/// The template engine shared with the server (SPEC §6).
pub use scope_domain::template;
