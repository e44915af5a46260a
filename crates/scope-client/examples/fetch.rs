//! Fetch a prompt and optionally render it.
//!
//! ```text
//! export SCOPE_API_URL=http://localhost:8080 SCOPE_ORG_ID=org_... \
//!        SCOPE_API_KEY=key_... SCOPE_API_SECRET=secret_...
//! cargo run -p scope-client --example fetch -- greeting
//! cargo run -p scope-client --example fetch -- greeting --label latest name=Ada
//! cargo run -p scope-client --example fetch -- greeting --version v_01J... name=Ada
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use scope_client::{Client, Error};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            if let Some(id) = e.request_id() {
                eprintln!("request id: {id}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mut name = None;
    let mut label = None;
    let mut version = None;
    let mut vars = HashMap::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--label" => label = args.next(),
            "--version" => version = args.next(),
            _ => match arg.split_once('=') {
                Some((k, v)) => {
                    vars.insert(k.to_owned(), v.to_owned());
                }
                None => name = Some(arg),
            },
        }
    }
    let Some(name) = name else {
        eprintln!("usage: fetch NAME [--label production|latest | --version ID] [key=value ...]");
        return Ok(());
    };

    let client = Client::from_env()?;
    let mut request = client.get_prompt_version(&name);
    if let Some(l) = &label {
        request = request.label(l);
    }
    if let Some(v) = &version {
        request = request.version_id(v);
    }
    let prompt = request.await?;
    println!(
        "{} v{} [{}] {:?}{} variables: {:?}",
        prompt.name,
        prompt.version,
        prompt.version_id,
        prompt.status,
        if prompt.is_production { " (production)" } else { "" },
        prompt.variables,
    );
    if vars.is_empty() {
        println!("{}", prompt.content);
    } else {
        println!("{}", prompt.render(&vars)?);
    }
    Ok(())
}
