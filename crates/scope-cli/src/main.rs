//! `scope`: runs the server and administers a deployment.

mod cli;
mod logging;
mod releases;
mod remote;
mod transfer;

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a request allocates a few dozen
/// times (headers, extensions, bodies, JSON), and mimalloc's thread-local
/// free lists take about a third of the instructions glibc's take per
/// request (docs/BENCHMARKS.md, "Per-request overhead").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
