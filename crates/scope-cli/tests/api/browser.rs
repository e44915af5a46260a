//! The browser harness of the console tests: a real headless Chromium driven
//! over WebDriver (`fantoccini` → a `chromedriver` process of our own on a
//! free port), with helpers that act as a person would (fields by their
//! visible label, buttons and links by their text) and a screenshot of every
//! page a test sees under `target/console-screenshots/<test>/`.
//!
//! Each `Browser` owns its chromedriver (and so its Chromium, with a fresh
//! profile in a temporary directory); both end when it is dropped, even when
//! the test panics. Nothing here downloads a browser: Debian's `chromium` and
//! `chromium-driver` must be installed, and a missing one fails the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "install chromium and chromium-driver: apt-get install -y chromium chromium-driver";

/// How long to wait for an element, a navigation or chromedriver. Generous:
/// the tests share two cores with the compiler.
const PATIENCE: Duration = Duration::from_secs(20);

/// Where a test's screenshots go; shared by the browsers of one test so the
/// numbering tells the order across them.
struct Shots {
    dir: PathBuf,
    n: AtomicU32,
}

impl Shots {
    fn new(test: &str) -> Self {
        let dir = target_dir().join("console-screenshots").join(test);
        // Stale pictures of an earlier run would mislead whoever reads them.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self { dir, n: AtomicU32::new(0) }
    }

    fn path(&self, who: Option<&str>, label: &str) -> PathBuf {
        let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        let mut name = format!("{n:02}-");
        if let Some(w) = who {
            name.push_str(w);
            name.push('-');
        }
        name.extend(label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }));
        self.dir.join(format!("{name}.png"))
    }
}

/// `CARGO_TARGET_DIR` when set (at run time, else at build time), else the
/// workspace's `target/`.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = option_env!("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("target")
}

/// A `chromedriver` process in its own process group (Chromium is its
/// child); ended on drop.
struct Driver {
    child: Child,
    port: u16,
    /// The Chromium profile and the driver's log.
    dir: tempfile::TempDir,
}

impl Driver {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join("chromedriver.log")
    }

    /// The end of chromedriver's log, for failure messages.
    fn log(&self) -> String {
        let s = std::fs::read_to_string(Self::log_path(self.dir.path())).unwrap_or_default();
        let skip = s.chars().count().saturating_sub(4000);
        s.chars().skip(skip).collect()
    }

    async fn start() -> Driver {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(Path::new(path).exists(), "{what} not found at {path}: {INSTALL_HINT}");
        }
        let mut last_err = String::new();
        // A free port can be taken between our probe and chromedriver's bind:
        // try a few.
        for _ in 0..3 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir for the browser profile");
            let log = std::fs::File::create(Self::log_path(dir.path())).expect("chromedriver log file");
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}): {INSTALL_HINT}"));
            let mut d = Driver { child, port, dir };
            match d.wait_ready().await {
                Ok(()) => return d,
                Err(e) => last_err = format!("{e}\nchromedriver log:\n{}", d.log()),
            }
        }
        panic!("chromedriver did not become ready: {last_err}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("chromedriver exited with {st}"));
            }
            if let Ok(r) = http.get(&url).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return Ok(());
                    }
                }
            }
            if start.elapsed() > PATIENCE {
                return Err(format!("no ready answer at {url} after {PATIENCE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` ends the sessions (so Chromium quits cleanly) and then
        // chromedriver itself; whatever is left of the process group is
        // killed after.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    l.local_addr().expect("probe address").port()
}

/// One headless Chromium with a fresh profile, bound to one server.
pub struct Browser {
    pub client: Client,
    base: String,
    shots: Arc<Shots>,
    who: Option<String>,
    // Dropped after `client`: the driver outlives the session handle.
    _driver: Driver,
}

/// An XPath string literal for `s` (XPath 1.0 has no escapes).
pub fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// XPath for a clickable control (link, button, submit input) whose visible
/// text is `text`.
fn control_xpath(prefix: &str, text: &str) -> String {
    let t = xpath_literal(text);
    format!(
        "{prefix}//a[normalize-space()={t}] | {prefix}//button[normalize-space()={t}] | \
         {prefix}//input[(@type='submit' or @type='button') and normalize-space(@value)={t}]"
    )
}

impl Browser {
    /// Starts chromedriver and a headless Chromium for the test `test`
    /// (the screenshot folder's name) against the server at `base`.
    pub async fn start(test: &str, base: &str) -> Browser {
        Self::launch(Arc::new(Shots::new(test)), None, base).await
    }

    /// A second, independent browser (own process and profile, so no shared
    /// cookies) whose screenshots go beside this one's, labelled `who`.
    pub async fn another(&self, who: &str) -> Browser {
        Self::launch(self.shots.clone(), Some(who.to_owned()), &self.base).await
    }

    async fn launch(shots: Arc<Shots>, who: Option<String>, base: &str) -> Browser {
        let driver = Driver::start().await;
        let profile = driver.dir.path().join("profile");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                panic!("cannot start headless Chromium ({e}); {INSTALL_HINT}\nchromedriver log:\n{}", driver.log())
            }
        };
        Browser { client, base: base.to_owned(), shots, who, _driver: driver }
    }

    /// Ends the WebDriver session (the drop would too, less politely).
    pub async fn close(self) {
        let Browser { client, _driver, .. } = self;
        let _ = client.close().await;
    }

    fn abs(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    /// Navigates to `url` (a path on the server, or absolute) and takes a
    /// screenshot named `label`.
    pub async fn visit(&self, url: &str, label: &str) {
        let abs = self.abs(url);
        self.client.goto(&abs).await.unwrap_or_else(|e| panic!("navigate to {abs}: {e}"));
        self.shot(label).await;
    }

    /// Reloads the page and takes a screenshot.
    pub async fn reload(&self, label: &str) {
        self.client.refresh().await.unwrap_or_else(|e| panic!("reload: {e}"));
        self.shot(label).await;
    }

    /// Saves a PNG of the viewport as `NN-label.png`.
    pub async fn shot(&self, label: &str) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {label}: {e}"));
        let path = self.shots.path(self.who.as_deref(), label);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap_or_else(|e| panic!("page source: {e}"))
    }

    /// The visible text of the whole page.
    pub async fn text(&self) -> String {
        self.css("body").await.text().await.unwrap_or_else(|e| panic!("body text: {e}"))
    }

    /// The current URL's path (and `?query` if any).
    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.unwrap_or_else(|e| panic!("current url: {e}"));
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// The HTTP status of the page being shown (its navigation's response,
    /// also after a form POST).
    pub async fn status(&self) -> u16 {
        let v = self
            .js("const n = performance.getEntriesByType('navigation'); return n.length ? n[0].responseStatus : 0;")
            .await;
        v.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0)
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Runs `script` with `arguments[0..]` = `args`.
    pub async fn js_args(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// The cell of the row matching `row_css` in the column headed `column`
    /// (its visible text and inner HTML), or `None` when the row or the
    /// column is missing.
    pub async fn cell(&self, row_css: &str, column: &str) -> Option<(String, String)> {
        let v = self
            .js_args(
                "const row = document.querySelector(arguments[0]); if (!row) return null; \
                 const table = row.closest('table'); if (!table) return null; \
                 const heads = Array.from(table.querySelectorAll('thead th')); \
                 const ths = heads.length ? heads : Array.from(table.querySelectorAll('tr:first-child th')); \
                 const i = ths.findIndex(th => th.textContent.trim() === arguments[1]); \
                 if (i < 0 || i >= row.cells.length) return null; \
                 return [row.cells[i].innerText, row.cells[i].innerHTML];",
                vec![json!(row_css), json!(column)],
            )
            .await;
        let a = v.as_array()?;
        Some((a.first()?.as_str()?.trim().to_owned(), a.get(1)?.as_str()?.to_owned()))
    }

    async fn context(&self) -> String {
        let path = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let text: String = text.chars().take(1500).collect();
        format!("page {path}; its text:\n{text}")
    }

    /// The first element matching `selector`, waiting a little for it.
    pub async fn css(&self, selector: &str) -> Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(selector)).await {
            Ok(e) => e,
            Err(e) => panic!("no element {selector} ({e}); {}", self.context().await),
        }
    }

    /// Every element matching `selector` now.
    pub async fn css_all(&self, selector: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(selector)).await.unwrap_or_else(|e| panic!("find {selector}: {e}"))
    }

    pub async fn has_css(&self, selector: &str) -> bool {
        !self.css_all(selector).await.is_empty()
    }

    /// The text of the first element matching `selector`.
    pub async fn css_text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap_or_else(|e| panic!("text of {selector}: {e}"))
    }

    pub async fn xpath_all(&self, xpath: &str) -> Vec<Element> {
        self.client.find_all(Locator::XPath(xpath)).await.unwrap_or_else(|e| panic!("find {xpath}: {e}"))
    }

    /// The first displayed element matching `xpath` (waiting a little).
    async fn displayed_xpath(&self, xpath: &str, what: &str) -> Element {
        let start = Instant::now();
        loop {
            for e in self.xpath_all(xpath).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            if start.elapsed() > PATIENCE {
                panic!("no visible {what}; {}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An XPath prefix for [`Browser::fill_within`] and friends: the form
    /// with the button (or submit input) `button`.
    pub fn form_with(button: &str) -> String {
        let t = xpath_literal(button);
        format!("//form[.//button[normalize-space()={t}] or .//input[@type='submit' and normalize-space(@value)={t}]]")
    }

    /// The form control labelled `label`: the element named by the `for` of
    /// `<label>label</label>`, or the control nested inside the label.
    pub async fn field(&self, label: &str) -> Element {
        self.field_within("", label).await
    }

    /// Like [`Browser::field`], with the label inside `prefix` (an XPath
    /// such as [`Browser::form_with`]).
    pub async fn field_within(&self, prefix: &str, label: &str) -> Element {
        let start = Instant::now();
        let l = xpath_literal(label);
        // The label's own text, ignoring a nested control's text (a select's
        // options) and surrounding whitespace.
        let xpath = format!(
            "{prefix}//label[normalize-space()={l} or normalize-space(text())={l} or \
             normalize-space(.//text()[not(ancestor::select) and not(ancestor::option)][normalize-space()][1])={l}]"
        );
        loop {
            for lab in self.xpath_all(&xpath).await {
                if let Ok(Some(id)) = lab.attr("for").await {
                    if let Ok(e) = self.client.find(Locator::Id(&id)).await {
                        return e;
                    }
                }
                if let Ok(e) = lab.find(Locator::Css("input, select, textarea")).await {
                    return e;
                }
            }
            if start.elapsed() > PATIENCE {
                panic!("no field labelled {label:?}; {}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a control labelled `label` is on the page now.
    pub async fn has_field(&self, label: &str) -> bool {
        let l = xpath_literal(label);
        !self.xpath_all(&format!("//label[normalize-space()={l} or normalize-space(text())={l}]")).await.is_empty()
    }

    /// Replaces the value of the field labelled `label` with `value`.
    pub async fn fill(&self, label: &str, value: &str) {
        self.fill_within("", label, value).await;
    }

    pub async fn fill_within(&self, prefix: &str, label: &str, value: &str) {
        let e = self.field_within(prefix, label).await;
        e.clear().await.unwrap_or_else(|err| panic!("clear {label:?}: {err}"));
        e.send_keys(value).await.unwrap_or_else(|err| panic!("type into {label:?}: {err}"));
    }

    /// Chooses in the select labelled `label` the option whose value or
    /// visible text (case-insensitive) is one of `choices`, tried in order.
    pub async fn select(&self, label: &str, choices: &[&str]) {
        self.select_within("", label, choices).await;
    }

    pub async fn select_within(&self, prefix: &str, label: &str, choices: &[&str]) {
        let sel = self.field_within(prefix, label).await;
        let options =
            sel.find_all(Locator::Css("option")).await.unwrap_or_else(|e| panic!("options of {label:?}: {e}"));
        let mut seen = Vec::new();
        for o in &options {
            let value = o.attr("value").await.ok().flatten().unwrap_or_default();
            let text = o.text().await.unwrap_or_default().trim().to_owned();
            seen.push((value, text));
        }
        for want in choices {
            for (i, (value, text)) in seen.iter().enumerate() {
                if value == want || text.eq_ignore_ascii_case(want) {
                    options[i].click().await.unwrap_or_else(|e| panic!("choose {want:?} in {label:?}: {e}"));
                    return;
                }
            }
        }
        panic!("select {label:?} has no option {choices:?}; it has (value, text) {seen:?}");
    }

    /// Ticks the checkbox labelled `label`.
    pub async fn check(&self, label: &str) {
        let e = self.field(label).await;
        if !e.is_selected().await.unwrap_or(false) {
            e.click().await.unwrap_or_else(|err| panic!("tick {label:?}: {err}"));
        }
    }

    /// Clicks the visible button (or submit input) with text `text`, and
    /// takes a screenshot of where that leads.
    pub async fn click_button(&self, text: &str) {
        let t = xpath_literal(text);
        let xpath =
            format!("//button[normalize-space()={t}] | //input[(@type='submit' or @type='button') and normalize-space(@value)={t}]");
        let e = self.displayed_xpath(&xpath, &format!("button {text:?}")).await;
        e.click().await.unwrap_or_else(|err| panic!("click button {text:?}: {err}"));
        self.shot(&format!("after-{text}")).await;
    }

    /// Clicks the visible link with text `text`, and takes a screenshot.
    pub async fn click_link(&self, text: &str) {
        let xpath = format!("//a[normalize-space()={}]", xpath_literal(text));
        let e = self.displayed_xpath(&xpath, &format!("link {text:?}")).await;
        e.click().await.unwrap_or_else(|err| panic!("click link {text:?}: {err}"));
        self.shot(&format!("after-{text}")).await;
    }

    /// Clicks the link or button with text `text` inside the first element
    /// matching `scope_css` (a table row, say), and takes a screenshot.
    pub async fn click_in(&self, scope_css: &str, text: &str) {
        let scope = self.css(scope_css).await;
        let xpath = control_xpath(".", text);
        let found = scope.find_all(Locator::XPath(&xpath)).await.unwrap_or_default();
        let Some(e) = found.into_iter().next() else {
            panic!("no control {text:?} in {scope_css}; {}", self.context().await);
        };
        e.click().await.unwrap_or_else(|err| panic!("click {text:?} in {scope_css}: {err}"));
        self.shot(&format!("after-{text}")).await;
    }

    /// Whether any link, button or submit input with text `text` is on the
    /// page (displayed or not).
    pub async fn has_control(&self, text: &str) -> bool {
        !self.xpath_all(&control_xpath("", text)).await.is_empty()
    }

    /// The header navigation's links (`<header>` or `<nav>`), as texts.
    pub async fn nav_links(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in self.xpath_all("//header//a | //nav//a").await {
            out.push(a.text().await.unwrap_or_default().trim().to_owned());
        }
        out
    }

    /// Clicks the header navigation link `text`.
    pub async fn click_nav(&self, text: &str) {
        let t = xpath_literal(text);
        let xpath = format!("//header//a[normalize-space()={t}] | //nav//a[normalize-space()={t}]");
        let e = self.displayed_xpath(&xpath, &format!("header link {text:?}")).await;
        e.click().await.unwrap_or_else(|err| panic!("click header link {text:?}: {err}"));
        self.shot(&format!("nav-{text}")).await;
    }

    /// Waits until the path (without query) is `path`.
    pub async fn wait_path(&self, path: &str) {
        let start = Instant::now();
        loop {
            let p = self.path().await;
            if p.split('?').next() == Some(path) {
                return;
            }
            if start.elapsed() > PATIENCE {
                panic!("expected to be on {path}, but on {p}; {}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `/login`, fills Email and Password, clicks **Sign in**.
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.visit("/login", "login").await;
        self.fill("Email", email).await;
        self.fill("Password", password).await;
        self.click_button("Sign in").await;
    }

    /// The value of a cookie of this browser (`HttpOnly` ones too).
    pub async fn cookie(&self, name: &str) -> String {
        let c = self.client.get_named_cookie(name).await.unwrap_or_else(|e| panic!("cookie {name}: {e}"));
        c.value().to_owned()
    }

    /// The session's CSRF token: the hidden `csrf` field of the header's
    /// **Sign out** form.
    pub async fn csrf(&self) -> String {
        let e = self.css("form[action='/logout'] input[name='csrf']").await;
        e.attr("value").await.ok().flatten().unwrap_or_else(|| panic!("the Sign out form's csrf field has no value"))
    }

    /// Presses `key` (and releases it) wherever the focus is.
    pub async fn press(&self, key: Key) {
        let c: char = key.into();
        self.keys(&c.to_string()).await;
    }

    /// Types `text` wherever the focus is, one key at a time.
    pub async fn keys(&self, text: &str) {
        let mut seq = KeyActions::new("keyboard".into());
        for c in text.chars() {
            seq = seq.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(seq).await.unwrap_or_else(|e| panic!("type keys: {e}"));
    }

    /// A description of the focused element: `tag#id[name]`.
    pub async fn focused(&self) -> String {
        let v = self
            .js("const e = document.activeElement; if (!e) return ''; \
                 return e.tagName.toLowerCase() + '#' + (e.id || '') + '[' + (e.getAttribute('name') || '') + ']';")
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }
}
