//! In-memory views that keep the request hot path off the database while
//! staying correct: every change made in this process updates them before
//! the call returns, and a poller picks up changes made elsewhere.

pub mod events;
pub mod gates;
pub mod key_cache;
pub mod metrics;
pub mod prompt_cache;
pub mod rate_limit;
pub mod revoked_tokens;
pub mod signing;
pub mod token_cache;
pub mod usage;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
