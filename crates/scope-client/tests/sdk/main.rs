//! The SDK's one integration-test binary (modules below share the scripted
//! server in `support`). Tests against a real `scope serve` live in
//! `tests/real_server.rs.pending` until the server crate is ready.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod faults;
mod support;
mod unit;
