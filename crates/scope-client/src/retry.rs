//! Retry policy: exponential backoff with full jitter, honouring
//! `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// When and how long to wait before trying a request again.
///
/// Retried: 429, 500, 502, 503, 504, timeouts and connection failures. Never
/// other 4xx. The wait before retry `n` (0-based) is uniform in
/// `[0, min(max_delay, base_delay * 2^n)]` ("full jitter"), unless the
/// response carried `Retry-After`, which is then waited exactly; a
/// `Retry-After` longer than `max_delay` ends the retries and surfaces as
/// [`Error::RateLimited`](crate::Error::RateLimited) with its `retry_after`,
/// so the caller decides whether to wait that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// The ceiling of the first backoff; it doubles for each further retry.
    pub base_delay: Duration,
    /// The largest backoff, and the longest `Retry-After` that is waited.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 3, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// A policy with these limits (the type is `#[non_exhaustive]`, so this
    /// is how code outside the crate builds one).
    pub fn new(max_retries: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self { max_retries, base_delay, max_delay }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// The upper bound of the jittered wait before retry `retry` (0-based):
    /// `min(max_delay, base_delay * 2^retry)`, without overflow.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        2u32.checked_pow(retry)
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// A full-jitter wait before retry `retry`: uniform in `[0, ceiling]`.
    pub fn backoff<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(0..=nanos))
    }

    /// The wait before retry `retry`, or `None` when the request should not be
    /// retried: retries are used up, or the server asked to wait longer than
    /// `max_delay`.
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, retry_after: Option<Duration>, rng: &mut R) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.max_delay => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry, rng)),
        }
    }
}

/// Whether a response with this status is worth retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Parse a `Retry-After` value: delay-seconds (`120`; decimals accepted) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in
/// the past means no wait. Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (0.0..1.0e9).contains(&secs).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
