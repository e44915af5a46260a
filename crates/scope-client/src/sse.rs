//! A Server-Sent Events parser (the WHATWG "event stream interpretation"),
//! fed with the chunks of a response body as they arrive.
//!
//! Lines end with `\n`, `\r\n` or `\r` (a `\r` at the end of one chunk and
//! a `\n` at the start of the next are one line end); a line starting with
//! `:` is a comment; `field: value` loses one space after the colon; `data`
//! lines of one message are joined with `\n`; a blank line dispatches the
//! message if it has data. `id` (without NUL) sets the last event id even
//! on a message without data; `retry` takes digits only. Unknown fields are
//! ignored. A line longer than the limit is an error (a server that never
//! ends its line must not grow our memory without bound).

use std::fmt;

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The `event` field, `message` when absent.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The last event id at dispatch (this message's `id`, or an earlier one).
    pub id: Option<String>,
    /// A `retry` field seen in this message, in milliseconds.
    pub retry: Option<u64>,
}

/// What a chunk produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Message(Message),
    /// A comment line (`: heartbeat`), without the colon.
    Comment(String),
}

/// A line (or one message's data) longer than the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong(pub usize);

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event stream line or message longer than {} bytes", self.0)
    }
}

pub(crate) struct Parser {
    max_len: usize,
    /// The current, incomplete line.
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` belongs to it.
    after_cr: bool,
    /// Nothing has been read yet (a leading BOM is skipped).
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<u64>,
}

impl Parser {
    pub(crate) fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(1),
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            retry: None,
        }
    }

    /// Parse `chunk`, appending what it completes to `out`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLong> {
        if self.at_start && !chunk.is_empty() {
            // The BOM may itself be split across chunks; only a whole one at
            // the very start is skipped, which is what servers send.
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                chunk = rest;
            }
            self.at_start = false;
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push_line_bytes(&chunk[..pos])?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            self.line = line;
            self.line.clear();
            if chunk[pos] == b'\r' {
                match chunk.get(pos + 1) {
                    Some(b'\n') => chunk = &chunk[pos + 2..],
                    Some(_) => chunk = &chunk[pos + 1..],
                    None => {
                        self.after_cr = true;
                        chunk = &[];
                    }
                }
            } else {
                chunk = &chunk[pos + 1..];
            }
        }
        self.push_line_bytes(chunk)
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        if self.line.len() + bytes.len() > self.max_len {
            self.line.clear();
            return Err(TooLong(self.max_len));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Item>) -> Result<(), TooLong> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.strip_prefix(' ').unwrap_or(comment).to_owned()));
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_len {
                    self.reset_message();
                    return Err(TooLong(self.max_len));
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        if !self.has_data {
            self.reset_message();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = match std::mem::take(&mut self.event) {
            e if e.is_empty() => "message".to_owned(),
            e => e,
        };
        out.push(Item::Message(Message { event, data, id: self.last_id.clone(), retry: self.retry.take() }));
        self.has_data = false;
    }

    fn reset_message(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.retry = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Item> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    fn msg(event: &str, data: &str, id: Option<&str>) -> Item {
        Item::Message(Message { event: event.into(), data: data.into(), id: id.map(Into::into), retry: None })
    }

    const READY: &[u8] = b"event: ready\nid: 1042\nretry: 1000\ndata: {\"type\":\"ready\"}\n\n";

    #[test]
    fn a_whole_message() {
        let out = parse_chunks(&[READY]);
        assert_eq!(
            out,
            vec![Item::Message(Message {
                event: "ready".into(),
                data: "{\"type\":\"ready\"}".into(),
                id: Some("1042".into()),
                retry: Some(1000),
            })]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let stream: &[u8] = b": heartbeat\r\nevent: a\r\nid: 7\r\ndata: x\r\n\r\nevent: b\rdata: y\r\rdata: z\n\n";
        let whole = parse_chunks(&[stream]);
        assert_eq!(
            whole,
            vec![
                Item::Comment("heartbeat".into()),
                msg("a", "x", Some("7")),
                msg("b", "y", Some("7")),
                msg("message", "z", Some("7"))
            ]
        );
        for i in 0..=stream.len() {
            assert_eq!(parse_chunks(&[&stream[..i], &stream[i..]]), whole, "split at {i}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let out = parse_chunks(&[b"data: one\ndata:two\ndata\ndata:  four\n\n"]);
        assert_eq!(out, vec![msg("message", "one\ntwo\n\n four", None)]);
    }

    #[test]
    fn comments_and_unknown_fields_are_not_messages() {
        let out = parse_chunks(&[b":\n: heartbeat\nfoo: bar\nevent: x\n\n"]);
        // A message without data is not dispatched, and its event type is
        // forgotten.
        assert_eq!(out, vec![Item::Comment(String::new()), Item::Comment("heartbeat".into())]);
        let out = parse_chunks(&[b"event: x\n\ndata: d\n\n"]);
        assert_eq!(out, vec![msg("message", "d", None)]);
    }

    #[test]
    fn id_persists_and_counts_without_data() {
        let out = parse_chunks(&[b"id: 5\n\ndata: a\n\nid\ndata: b\n\nid: 6\0\ndata: c\n\n"]);
        // `id: 5` alone sets the last id; a bare `id` empties it; an id with
        // NUL is ignored.
        assert_eq!(
            out,
            vec![msg("message", "a", Some("5")), msg("message", "b", Some("")), msg("message", "c", Some(""))]
        );
    }

    #[test]
    fn retry_takes_digits_only() {
        let mut p = Parser::new(1024);
        let mut out = Vec::new();
        p.feed(b"retry: 15x\ndata: a\n\nretry: 250\ndata: b\n\n", &mut out).unwrap();
        let retries: Vec<_> = out
            .iter()
            .map(|i| match i {
                Item::Message(m) => m.retry,
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(retries, vec![None, Some(250)]);
    }

    #[test]
    fn a_leading_bom_is_skipped() {
        let out = parse_chunks(&[b"\xEF\xBB\xBFdata: a\n\n"]);
        assert_eq!(out, vec![msg("message", "a", None)]);
    }

    #[test]
    fn an_endless_line_is_an_error_not_a_leak() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: 0123456789", &mut out), Ok(()));
        assert_eq!(p.feed(b"0123456789", &mut out), Err(TooLong(16)));
        // Many short data lines adding up past the limit, too.
        let mut p = Parser::new(16);
        let r = p.feed(b"data: 0123456\ndata: 0123456\ndata: 0123456\n", &mut out);
        assert_eq!(r, Err(TooLong(16)));
        assert!(out.is_empty());
    }
}
