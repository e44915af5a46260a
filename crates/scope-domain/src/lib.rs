//! Scope's domain rules, free of I/O.
//!
//! Everything here is pure computation so that it can be unit-tested without a
//! server and shared with the `scope-client` SDK (which enables only the
//! `template`, `ids` and secret-format pieces; the `server` feature adds
//! secret generation, digests and JWT signing).

pub mod error;
pub mod ids;
pub mod labels;
pub mod lifecycle;
pub mod role;
pub mod scopes;
pub mod secret_format;
pub mod template;

#[cfg(feature = "server")]
pub mod jwt;
#[cfg(feature = "server")]
pub mod secret;

pub use error::{DomainError, ErrorCode};
pub use ids::{KeyId, OrgId, PromptId, UserId, VersionId};
pub use lifecycle::VersionStatus;
pub use role::Role;
pub use scopes::{Scope, ScopeSet};
