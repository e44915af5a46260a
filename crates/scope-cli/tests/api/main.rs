//! Integration tests of the `scope` server: each test starts the real binary
//! (`scope init` + `scope serve` on an ephemeral port over a database of its
//! own: a temporary SQLite file, or with `SCOPE_TEST_DATABASE=postgres` a
//! fresh PostgreSQL database) and talks HTTP to it. One test binary, modules
//! by concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod auth;
mod browser;
mod cli;
mod console;
mod crash;
mod edge;
mod errors;
mod events;
mod harness;
mod hardening;
mod labels;
mod limits;
mod meta;
mod metrics;
mod oauth;
mod openapi;
mod prompts;
mod replicas;
mod revocation;
mod secrets_and_logs;
mod shutdown;
mod tenancy;
mod users;
mod versions;
