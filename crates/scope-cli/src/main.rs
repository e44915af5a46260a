//! `scope`: runs the server and administers a deployment.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
