//! `scope-ceiling`: the ceiling row of `bench/run.sh`. A bare axum server
//! with one route, `GET /healthz` answering `ok`, built with the same
//! release profile and tokio runtime as `scope serve` and no middleware at
//! all: what this machine, this HTTP stack and wrk can do when a request
//! does no work. Scope's rows are reported as a share of it.
//!
//! Prints `Scope listening on http://ADDR` once bound, like `scope serve`,
//! so the benchmark starts both the same way.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let router = Router::new().route("/healthz", get(|| async { "ok" }));
    println!("Scope listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
