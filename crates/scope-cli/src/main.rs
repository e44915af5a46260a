//! `scope`: runs the server and administers a deployment.

mod cli;
mod logging;
mod releases;
mod remote;
mod transfer;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
