//! Log output of the `scope` binary: tracing's fmt subscriber on stderr,
//! text or JSON lines, filtered by `SCOPE_LOG` (default `info`).
//!
//! Text logs that go to a file or a pipe (not a terminal) use [`TextFields`]
//! rather than tracing-subscriber's default field formatter: the same
//! `name=value` output, without the styling machinery the default runs for
//! every field even when colours are off (docs/BENCHMARKS.md, "Per-request
//! overhead").
//!
//! Requests do not open a tracing span (the server's `http/telemetry.rs`
//! says why): [`WithRequest`] writes the request being answered into each
//! line logged while it is, where and as the span's fields used to appear.

use std::fmt;
use std::io::IsTerminal as _;

use scope_server::http::telemetry::{current_request, RequestLog};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::{RecordFields, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCOPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(terminal);
    let text = WithRequest::text(tracing_subscriber::fmt::format().with_ansi(terminal));
    match format {
        LogFormat::Text if terminal => builder.event_format(text).init(),
        LogFormat::Text => builder.fmt_fields(TextFields).event_format(text).init(),
        LogFormat::Json => {
            builder.json().event_format(WithRequest::json(tracing_subscriber::fmt::format().json())).init()
        }
    }
}

/// An event formatter that adds the request being answered on this thread
/// (`scope_server::http::telemetry::current_request`) to the line `inner`
/// writes, as tracing-subscriber writes a root span named `request` with the
/// fields `method`, `path` and `request_id`: in text before the target,
/// `request{method=GET path=/x request_id=…}: `; in JSON as the `span`
/// entry (when the line has no span of its own) and the first of `spans`.
/// Lines written outside a request are `inner`'s, untouched.
pub struct WithRequest<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequest<F> {
    pub fn text(inner: F) -> Self {
        Self { inner, json: false }
    }

    pub fn json(inner: F) -> Self {
        Self { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(request) = current_request() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        if self.json {
            json_with_request(&mut line, &request);
        } else {
            text_with_request(&mut line, event.metadata().target(), &request);
        }
        writer.write_str(&line)
    }
}

/// Inserts `request{…}: ` before the target (after the time, level and
/// colour codes, if any).
fn text_with_request(line: &mut String, target: &str, request: &RequestLog) {
    let mut at = line.find(target).unwrap_or(0);
    const DIMMED: &str = "\x1b[2m";
    if line[..at].ends_with(DIMMED) {
        at -= DIMMED.len();
    }
    let span =
        format!("request{{method={} path={} request_id={}}}: ", request.method(), request.path(), request.request_id());
    line.insert_str(at, &span);
}

/// Adds the `span` and `spans` entries a root `request` span gives a JSON
/// line (the object's last entries).
fn json_with_request(line: &mut String, request: &RequestLog) {
    #[derive(serde::Serialize)]
    struct Span<'a> {
        method: &'a str,
        path: &'a str,
        request_id: &'a str,
        name: &'static str,
    }
    let span =
        Span { method: request.method(), path: request.path(), request_id: request.request_id(), name: "request" };
    let Ok(span) = serde_json::to_string(&span) else { return };
    if let Some(at) = line.find(r#","spans":["#) {
        // The line has spans of its own: the request is the outermost.
        line.insert_str(at + r#","spans":["#.len(), &format!("{span},"));
    } else if let Some(at) = line.rfind('}') {
        line.insert_str(at, &format!(r#","span":{span},"spans":[{span}]"#));
    }
}

/// `name=value` fields separated by spaces, the `message` field bare, as
/// tracing-subscriber's default text formatter writes them without colours.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor { writer, empty: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn write(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if !self.empty {
            self.result = self.writer.write_char(' ');
        }
        self.empty = false;
        if self.result.is_ok() {
            self.result = match name {
                "message" => self.writer.write_fmt(value),
                name => {
                    let name = name.strip_prefix("r#").unwrap_or(name);
                    self.writer
                        .write_str(name)
                        .and_then(|()| self.writer.write_char('='))
                        .and_then(|()| self.writer.write_fmt(value))
                }
            };
        }
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.write("message", format_args!("{value}"));
        } else {
            self.write(field.name(), format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field.name(), format_args!("{value}"));
        let mut source = value.source();
        while let Some(s) = source {
            if self.result.is_ok() {
                self.result = self.writer.write_fmt(format_args!(": {s}"));
            }
            source = s.source();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.write(field.name(), format_args!("{value:?}"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce(), fields: bool) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || out.clone()).with_ansi(false).without_time();
        if fields {
            tracing::subscriber::with_default(builder.fmt_fields(TextFields).finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// The same text as tracing-subscriber's default formatter writes.
    #[test]
    fn writes_what_the_default_formatter_writes() {
        let emit = || {
            let id = "01ABC";
            let span = tracing::info_span!("request", method = %"GET", path = %"/healthz", request_id = %id);
            let _e = span.enter();
            let err = std::io::Error::other("disk full");
            tracing::info!(status = 200u16, ok = true, name = "quoted", r#type = "x", "served {}", 1);
            tracing::warn!(error = %err, "failed");
        };
        let ours = capture(emit, true);
        let theirs = capture(emit, false);
        assert_eq!(ours, theirs);
        assert!(ours.contains(r#"request{method=GET path=/healthz request_id=01ABC}: "#), "{ours}");
        assert!(ours.contains(r#"served 1 status=200 ok=true name="quoted" type="x""#), "{ours}");
    }

    fn capture_with<S: tracing::Subscriber + Send + Sync + 'static>(
        make: impl FnOnce(Buf) -> S,
        f: impl FnOnce(),
    ) -> String {
        let buf = Buf::default();
        tracing::subscriber::with_default(make(buf.clone()), f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn events() {
        let err = std::io::Error::other("disk full");
        tracing::info!(status = 200u16, ok = true, name = "quoted", "served {}", 1);
        tracing::warn!(error = %err, "failed");
    }

    /// Inside a real `request` span, with tracing-subscriber's formatters.
    fn in_span() {
        let span = tracing::info_span!("request", method = %"POST", path = %"/v1/auth/applications/login", request_id = %"01ABC");
        let _e = span.enter();
        events();
    }

    /// With the request entered as the server's telemetry layer does.
    fn in_request() {
        let request = std::sync::Arc::new(RequestLog::new(
            axum::http::Method::POST,
            axum::http::Uri::from_static("/v1/auth/applications/login?x=1"),
            axum::http::HeaderValue::from_static("01ABC"),
        ));
        let _e = scope_server::http::telemetry::enter_request(&request);
        events();
    }

    #[test]
    fn text_lines_of_a_request_read_as_they_did_with_a_span() {
        let base = |b: Buf| tracing_subscriber::fmt().with_writer(move || b.clone()).with_ansi(false).without_time();
        let theirs = capture_with(|b| base(b).fmt_fields(TextFields).finish(), in_span);
        let format = || tracing_subscriber::fmt::format().with_ansi(false).without_time();
        let ours = capture_with(
            |b| base(b).fmt_fields(TextFields).event_format(WithRequest::text(format())).finish(),
            in_request,
        );
        assert_eq!(ours, theirs);
        assert!(ours.contains("request{method=POST path=/v1/auth/applications/login request_id=01ABC}: "), "{ours}");
        // Outside a request: no request, the inner formatter's line.
        let outside =
            capture_with(|b| base(b).fmt_fields(TextFields).event_format(WithRequest::text(format())).finish(), events);
        assert_eq!(outside, capture_with(|b| base(b).fmt_fields(TextFields).finish(), events));
        assert!(!outside.contains("request{"), "{outside}");
    }

    #[test]
    fn text_lines_keep_the_request_before_the_target_with_colours() {
        let format = || tracing_subscriber::fmt::format().with_ansi(true).without_time();
        let ours = capture_with(
            |b| {
                tracing_subscriber::fmt()
                    .with_writer(move || b.clone())
                    .event_format(WithRequest::text(format()))
                    .finish()
            },
            in_request,
        );
        let theirs = capture_with(
            |b| tracing_subscriber::fmt().with_writer(move || b.clone()).event_format(format()).finish(),
            in_span,
        );
        // The same text once colour codes are stripped (the span's name and
        // braces are bold in tracing-subscriber's; ours are plain).
        let plain = |s: &str| {
            let mut out = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    for c in chars.by_ref() {
                        if c == 'm' {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            out
        };
        assert_eq!(plain(&ours), plain(&theirs));
    }

    #[test]
    fn json_lines_of_a_request_read_as_they_did_with_a_span() {
        let theirs = capture_with(
            |b| tracing_subscriber::fmt().with_writer(move || b.clone()).json().without_time().finish(),
            in_span,
        );
        let format = || tracing_subscriber::fmt::format().json().without_time();
        let json = |b: Buf| tracing_subscriber::fmt().with_writer(move || b.clone()).json().without_time();
        let ours = capture_with(|b| json(b).event_format(WithRequest::json(format())).finish(), in_request);
        assert_eq!(ours, theirs);
        for line in ours.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["span"]["request_id"], "01ABC", "{line}");
            assert_eq!(v["spans"][0]["name"], "request", "{line}");
        }
        let outside = capture_with(|b| json(b).event_format(WithRequest::json(format())).finish(), events);
        assert_eq!(outside, capture_with(|b| json(b).finish(), events));
    }
}
