//! A blocking facade for programs without an async runtime (CLIs, scripts,
//! worker threads).
//!
//! It owns a small tokio runtime (one worker thread, shared by every clone of
//! the client, so background cache refreshes keep running between calls) and
//! an async [`crate::Client`]. Each call runs on that runtime while the
//! calling thread waits, the way `reqwest::blocking` works, so it can be used
//! from any thread where blocking is allowed: plain threads, many threads at
//! once, and `tokio::task::spawn_blocking`. Inside async code on a
//! multi-thread tokio runtime it works too (the wait goes through
//! `tokio::task::block_in_place`), but the async [`crate::Client`] is the
//! better choice there. Directly inside the `block_on` future of a
//! current-thread runtime (the body of `#[tokio::main(flavor =
//! "current_thread")]` or of a default `#[tokio::test]`) blocking would stall
//! the whole runtime, so calls there return [`Error::BlockingInAsyncContext`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::client::{ClientBuilder, Fetched, GetPromptVersion as AsyncGet};
use crate::error::Error;
use crate::prompt::{PromptVersion, Selector};

/// The blocking Scope client. Cheap to clone: clones share the runtime, the
/// token, the cache and the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<OwnedRuntime>,
}

/// The runtime, shut down without blocking when the last clone goes (dropping
/// a runtime inside another runtime would panic).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client").field("inner", &self.inner).finish()
    }
}

impl Client {
    /// A builder with every option at its default; finish it with
    /// [`ClientBuilder::build_blocking`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from the `SCOPE_*` environment variables.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_builder(ClientBuilder::from_env()?)
    }

    /// A client with the builder's settings.
    pub fn from_builder(builder: ClientBuilder) -> Result<Self, Error> {
        Self::new(builder.build()?)
    }

    /// Wrap an async client (the two share the token and the cache).
    pub fn new(client: crate::Client) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scope-client")
            .enable_all()
            .build()
            .map_err(|e| Error::BlockingRuntime { message: format!("cannot start the client runtime: {e}") })?;
        // `watch`: the stream runs on this runtime, between calls too.
        client.start_watch_on(runtime.handle());
        Ok(Self { inner: client, runtime: Arc::new(OwnedRuntime(Some(runtime))) })
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
    pub fn render_prompt<I, K, V>(&self, name: &str, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.get_prompt_version(name).send()?.render(vars)
    }

    /// Drop every cached prompt version.
    pub fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    /// Run `fut` on the client's runtime and wait for it on this thread.
    fn run<T, F>(&self, fut: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let flavor = Handle::try_current().ok().map(|h| h.runtime_flavor());
        // In the root future of a current-thread runtime, no task id is set:
        // blocking there would stall everything on that runtime (a server in
        // the same test, say). In `spawn_blocking` a task id is set.
        if flavor == Some(RuntimeFlavor::CurrentThread) && tokio::task::try_id().is_none() {
            return Err(Error::BlockingInAsyncContext);
        }
        let Some(rt) = &self.runtime.0 else {
            return Err(Error::BlockingRuntime { message: "the client runtime has been shut down".into() });
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = move || rx.recv();
        let received = match flavor {
            // On a worker thread of a multi-thread runtime, hand the worker's
            // other tasks to another thread while this one waits; elsewhere
            // (spawn_blocking, plain threads) this just runs `wait`.
            Some(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        received
            .map_err(|_| Error::BlockingRuntime { message: "the request was dropped by the client runtime".into() })?
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
    /// See [`crate::GetPromptVersion::label`].
    pub fn label(self, label: &'a str) -> Self {
        Self { inner: self.inner.label(label), ..self }
    }

    /// See [`crate::GetPromptVersion::version_id`].
    pub fn version_id(self, version_id: &'a str) -> Self {
        Self { inner: self.inner.version_id(version_id), ..self }
    }

    /// The old name of [`version_id`](Self::version_id).
    #[deprecated(note = "takes a version id, not a number: use `version_id`")]
    pub fn version(self, version_id: &'a str) -> Self {
        self.version_id(version_id)
    }

    /// See [`crate::GetPromptVersion::selector`].
    pub fn selector(self, selector: Selector<'a>) -> Self {
        Self { inner: self.inner.selector(selector), ..self }
    }

    /// See [`crate::GetPromptVersion::skip_cache`].
    pub fn skip_cache(self) -> Self {
        Self { inner: self.inner.skip_cache(), ..self }
    }

    /// See [`crate::GetPromptVersion::cache`].
    pub fn cache(self, enabled: bool) -> Self {
        Self { inner: self.inner.cache(enabled), ..self }
    }

    /// See [`crate::GetPromptVersion::cache_ttl`].
    pub fn cache_ttl(self, ttl: Duration) -> Self {
        Self { inner: self.inner.cache_ttl(ttl), ..self }
    }

    /// Fetch, waiting on this thread.
    pub fn send(self) -> Result<Arc<PromptVersion>, Error> {
        Ok(self.send_with_meta()?.version)
    }

    /// See [`crate::GetPromptVersion::send_with_meta`].
    pub fn send_with_meta(self) -> Result<Fetched, Error> {
        let AsyncGet { client, name, selector, use_cache, ttl } = self.inner;
        let client = client.clone();
        let name = name.to_owned();
        let (is_version, sel) = match selector {
            Selector::Label(l) => (false, l.to_owned()),
            Selector::Version(v) => (true, v.to_owned()),
        };
        self.client.run(async move {
            let selector = if is_version { Selector::Version(&sel) } else { Selector::Label(&sel) };
            client.fetch(&name, selector, use_cache, ttl).await
        })
    }

    /// Fetch and render with `vars` (missing variables are an error).
    pub fn render<I, K, V>(self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.send()?.render(vars)
    }

    /// Fetch and render strictly (unknown variables are an error too).
    pub fn render_strict<I, K, V>(self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.send()?.render_strict(vars)
    }
}
