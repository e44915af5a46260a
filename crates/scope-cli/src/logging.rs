//! Log output of the `scope` binary: tracing's fmt subscriber on stderr,
//! text or JSON lines, filtered by `SCOPE_LOG` (default `info`).
//!
//! Text logs that go to a file or a pipe (not a terminal) use [`TextFields`]
//! rather than tracing-subscriber's default field formatter: the same
//! `name=value` output, without the styling machinery the default runs for
//! every field even when colours are off. Every request opens a span with
//! three fields, formatted when the span is created, so this is on the hot
//! path (docs/BENCHMARKS.md, "Per-request overhead").

use std::fmt;
use std::io::IsTerminal as _;

use tracing_subscriber::field::{RecordFields, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

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
    match format {
        LogFormat::Text if terminal => builder.init(),
        LogFormat::Text => builder.fmt_fields(TextFields).init(),
        LogFormat::Json => builder.json().init(),
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
                    self.writer.write_str(name).and_then(|()| self.writer.write_char('=')).and_then(|()| self.writer.write_fmt(value))
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
}
