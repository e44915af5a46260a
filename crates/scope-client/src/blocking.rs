//! A blocking facade for programs without an async runtime (CLIs, scripts).
//!
//! It owns a small tokio runtime (one worker thread, so background cache
//! refreshes keep running between calls) and an async [`crate::Client`].
//! Do not use it from inside an async runtime: calls there return a
//! configuration error instead of blocking the executor.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientBuilder, GetPromptVersion as AsyncGet};
use crate::error::{ConfigError, Error};
use crate::prompt::{PromptVersion, Selector};

/// The blocking Scope client.
pub struct Client {
    inner: crate::Client,
    // `Option` so that `Drop` can shut the runtime down without blocking
    // (dropping a runtime inside another runtime would panic).
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client").field("inner", &self.inner).finish()
    }
}

impl Client {
    /// A client configured from the `SCOPE_*` environment variables.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_builder(ClientBuilder::from_env()?)
    }

    pub fn from_builder(builder: ClientBuilder) -> Result<Self, Error> {
        Self::new(builder.build()?)
    }

    /// Wrap an async client.
    pub fn new(client: crate::Client) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scope-client")
            .enable_all()
            .build()
            .map_err(|e| ConfigError::general(format!("cannot start the client runtime: {e}")))?;
        Ok(Self { inner: client, runtime: Some(runtime) })
    }

    /// The async client inside (sharing the token and the cache).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// See [`crate::Client::get_prompt_version`]; finish with
    /// [`send`](GetPromptVersion::send).
    pub fn get_prompt_version<'a>(&'a self, name: &'a str) -> GetPromptVersion<'a> {
        GetPromptVersion { client: self, inner: self.inner.get_prompt_version(name) }
    }

    /// Fetch the production version of `name` and render it with `vars`.
    pub fn render_prompt<K, V>(&self, name: &str, vars: &HashMap<K, V>) -> Result<String, Error>
    where
        K: Borrow<str> + Hash + Eq,
        V: AsRef<str>,
    {
        self.get_prompt_version(name).send()?.render(vars)
    }

    pub fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ConfigError::general(
                "scope_client::blocking::Client was called from inside an async runtime; use scope_client::Client there",
            )
            .into());
        }
        match &self.runtime {
            Some(rt) => Ok(rt.block_on(fut)),
            None => Err(ConfigError::general("the client runtime has been shut down").into()),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A pending blocking `get_prompt_version` call.
#[must_use = "nothing is fetched until send is called"]
#[derive(Debug, Clone)]
pub struct GetPromptVersion<'a> {
    client: &'a Client,
    inner: AsyncGet<'a>,
}

impl<'a> GetPromptVersion<'a> {
    pub fn label(self, label: &'a str) -> Self {
        Self { inner: self.inner.label(label), ..self }
    }

    pub fn version(self, version_id: &'a str) -> Self {
        Self { inner: self.inner.version(version_id), ..self }
    }

    pub fn selector(self, selector: Selector<'a>) -> Self {
        Self { inner: self.inner.selector(selector), ..self }
    }

    pub fn skip_cache(self) -> Self {
        Self { inner: self.inner.skip_cache(), ..self }
    }

    pub fn cache(self, enabled: bool) -> Self {
        Self { inner: self.inner.cache(enabled), ..self }
    }

    pub fn cache_ttl(self, ttl: Duration) -> Self {
        Self { inner: self.inner.cache_ttl(ttl), ..self }
    }

    pub fn send(self) -> Result<Arc<PromptVersion>, Error> {
        self.client.block_on(self.inner.send())?
    }

    pub fn render<K, V>(self, vars: &HashMap<K, V>) -> Result<String, Error>
    where
        K: Borrow<str> + Hash + Eq,
        V: AsRef<str>,
    {
        self.send()?.render(vars)
    }

    pub fn render_strict<K, V>(self, vars: &HashMap<K, V>) -> Result<String, Error>
    where
        K: Borrow<str> + Hash + Eq,
        V: AsRef<str>,
    {
        self.send()?.render_strict(vars)
    }
}
