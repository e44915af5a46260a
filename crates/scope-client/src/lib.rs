// The crate documentation is the README, so that docs.rs and crates.io show
// the same page and its examples are compiled as doctests.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "blocking")]
pub mod blocking;
mod cache;
mod client;
mod config;
mod error;
mod hooks;
mod prompt;
mod retry;
mod sse;
mod token;
mod transport;
mod watch;

pub use client::{
    Client, ClientBuilder, FetchSource, Fetched, GetPromptVersion, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REFRESH_AHEAD, DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_REFRESH_BUFFER, USER_AGENT,
};
pub use config::{
    ClientCredentials, DEFAULT_API_URL, ENV_API_KEY, ENV_API_SECRET, ENV_API_URL, ENV_AUTH_API_URL, ENV_CLIENT_ID,
    ENV_CLIENT_SECRET, ENV_ENVIRONMENT, ENV_ORG_ID, ENV_TOKEN_REFRESH_BUFFER,
};
pub use error::{ApiError, Chain, ConfigError, Error};
pub use hooks::{ErrorEvent, RequestEvent, ResponseEvent};
pub use prompt::{cache_key, PromptStatus, PromptType, PromptVersion, Selector, LABEL_LATEST, LABEL_PRODUCTION};
pub use retry::{is_retryable_status, parse_retry_after, RetryPolicy};
/// The template engine shared with the server.
pub use scope_domain::template;
pub use watch::{
    WatchState, DEFAULT_WATCH_BACKOFF, DEFAULT_WATCH_BACKOFF_MAX, DEFAULT_WATCH_IDLE_TIMEOUT, DEFAULT_WATCH_MAX_AGE,
};
// Crates whose types appear in this crate's public API, re-exported so that
// applications use the same versions: `chrono` (the timestamps of
// `PromptVersion`), `serde_json` (its metadata), `rand` (the random source of
// `RetryPolicy::backoff`) and `reqwest` (`ClientBuilder::http_client`, the
// source of connection errors).
pub use chrono;
pub use rand;
pub use reqwest;
pub use serde_json;
