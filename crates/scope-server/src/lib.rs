//! Scope's server: the auth API, the Scope API and the services below them.
//!
//! Layout:
//! - [`service`]: business rules that need I/O (who may do what, what a
//!   revoke does, the token exchange), called by HTTP handlers and the CLI;
//! - [`http`]: axum routes, extractors and the single error mapping, kept thin;
//! - [`web`]: the web console's pages, calling the same services as [`http`];
//! - [`runtime`]: in-memory views that keep the hot path off the database
//!   (revocation view, verified-token cache, usage counters, signing keys).

pub mod config;
pub mod error;
pub mod http;
pub mod listener;
pub mod net;
pub mod runtime;
pub mod service;
pub mod views;
pub mod web;

use std::sync::Arc;

pub use config::ServerConfig;
pub use error::AppError;
pub use service::App;

/// Opens the store, loads the in-memory views, and serves until `shutdown`
/// resolves. Prints `Scope listening on http://ADDR` on stdout once bound.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    // Every store call is timed for `/metrics` (scope_db_query_duration_seconds).
    let store = runtime::metrics::metered(scope_store::open_with(&config.database_url, &config.store).await?);
    let app = Arc::new(App::start(store, config.clone()).await?);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| AppError::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| AppError::Internal(e.to_string()))?;
    app.set_listen_addr(addr);
    if let Some(bootstrap) = service::bootstrap::bootstrap_if_empty(&app).await? {
        bootstrap.print_first_run(&addr.to_string());
    }
    let router = http::router(app.clone());
    println!("Scope listening on http://{addr}");
    tracing::info!(%addr, "listening");
    // The graceful shutdown waits for every connection to finish: open event
    // streams never would, so they are ended as soon as the signal comes.
    let streams = app.clone();
    let shutdown = async move {
        shutdown.await;
        streams.events.close();
    };
    // Timeouts, connection and request caps: `listener`.
    listener::serve(listener, router, listener::Limits::of(&app.config), shutdown).await;
    app.shutdown().await;
    Ok(())
}
