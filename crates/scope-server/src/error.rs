//! The service-level error, mapped to HTTP in exactly one place
//! (`http::error`).

use scope_domain::{DomainError, ErrorCode};
use scope_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule refused the request; code and message go to the client.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Any credential failure at the token exchange. One body for all causes.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Missing, malformed, forged, expired or revoked bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// Too many attempts; retry after this many seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// The database cannot be reached right now: 503 with `Retry-After`, the
    /// SPEC error body with code `internal` (the SPEC's list of codes is
    /// closed; the status tells clients it is worth retrying, and the
    /// reference SDKs retry 503). The cause is logged, never sent.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Something broke; logged with the request id, answered with a generic
    /// 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Domain(d) => d.code,
            AppError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AppError::Unauthorized => ErrorCode::Unauthorized,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::Internal(_) | AppError::Unavailable(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::Domain(DomainError::not_found("not found")),
            StoreError::Conflict(m) => AppError::Domain(DomainError::conflict(m)),
            StoreError::Domain(d) => AppError::Domain(d),
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Internal(m) => AppError::Internal(m),
        }
    }
}

/// Gives a NotFound a precise message ("prompt not found").
pub trait NotFoundAs<T> {
    fn not_found_as(self, what: &str) -> Result<T, AppError>;
}

impl<T> NotFoundAs<T> for Result<T, StoreError> {
    fn not_found_as(self, what: &str) -> Result<T, AppError> {
        self.map_err(|e| match e {
            StoreError::NotFound => AppError::Domain(DomainError::not_found(format!("{what} not found"))),
            other => other.into(),
        })
    }
}
