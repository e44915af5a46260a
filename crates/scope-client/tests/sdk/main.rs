//! The SDK's integration tests against a scripted local server (modules
//! below share it, in `support`). Tests against a real `scope serve` are the
//! other test binary, `tests/real_server.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod faults;
mod hardening;
mod support;
mod unit;
mod watch;
