//! Fixtures shared by Scope's test suites (a dev-dependency only).
//!
//! - [`pg`]: a throwaway PostgreSQL cluster started for the test process (or
//!   the one named by `SCOPE_TEST_PG_URL`), a fresh database per test;
//! - [`bin`]: the `scope` binary under test, built on demand so that any
//!   crate's tests can start a real `scope serve`.

pub mod bin;
pub mod pg;
