//! `{{variable}}` templates (SPEC §6), shared by the server and the SDK.
//!
//! A placeholder is `{{` + one or more of `[A-Za-z0-9_]` + `}}`, with no spaces
//! inside the braces; anything else (`{{ x }}`, `{{}}`, `{{a-b}}`) is literal
//! text. Rendering is a single pass: a substituted value is copied as is and
//! never scanned again, so a value containing `{{x}}` stays literal.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Why a render failed. Each variant names every offending variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("missing variables: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("unknown variables: {}", .0.join(", "))]
    Unknown(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Byte range of literal text in the source.
    Text(usize, usize),
    /// Byte range of a variable name in the source.
    Var(usize, usize),
}

/// A parsed template: parse once, render many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<String>,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// If `bytes[at..]` starts with a placeholder, the end of its name.
fn placeholder_at(bytes: &[u8], at: usize) -> Option<usize> {
    let start = at + 2;
    let mut end = start;
    while end < bytes.len() && is_name_byte(bytes[end]) {
        end += 1;
    }
    (end > start && bytes.get(end) == Some(&b'}') && bytes.get(end + 1) == Some(&b'}')).then_some(end)
}

fn for_each_placeholder(source: &str, mut f: impl FnMut(usize, usize, usize)) {
    // f(text_start, name_start, name_end): literal text runs from text_start
    // to name_start - 2.
    let bytes = source.as_bytes();
    let mut text_start = 0;
    let mut search = 0;
    while let Some(off) = source[search..].find("{{") {
        let at = search + off;
        match placeholder_at(bytes, at) {
            Some(end) => {
                f(text_start, at + 2, end);
                text_start = end + 2;
                search = text_start;
            }
            None => search = at + 1,
        }
    }
}

/// The ordered, de-duplicated variable names of `source`.
pub fn variables(source: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for_each_placeholder(source, |_, s, e| {
        let name = &source[s..e];
        if seen.insert(name) {
            out.push(name.to_owned());
        }
    });
    out
}

impl Template {
    pub fn parse(source: impl Into<String>) -> Self {
        let source = source.into();
        let mut segments = Vec::new();
        let mut last = 0;
        for_each_placeholder(&source, |text_start, s, e| {
            if s - 2 > text_start {
                segments.push(Segment::Text(text_start, s - 2));
            }
            segments.push(Segment::Var(s, e));
            last = e + 2;
        });
        if last < source.len() {
            segments.push(Segment::Text(last, source.len()));
        }
        let variables = variables(&source);
        Template { source, segments, variables }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Ordered, de-duplicated variable names.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Substitute every placeholder in one pass. Missing variables are an
    /// error naming all of them; with `strict`, so are variables that the
    /// template does not use.
    pub fn render<K, V>(&self, vars: &HashMap<K, V>, strict: bool) -> Result<String, RenderError>
    where
        K: Borrow<str> + Hash + Eq,
        V: AsRef<str>,
    {
        self.render_with(|name| vars.get(name).map(AsRef::as_ref), || vars.keys().map(Borrow::borrow), strict)
    }

    /// [`render`](Self::render) with the values from `lookup` (a name to its
    /// value) instead of a map; `names` lists every name supplied, and is
    /// only called with `strict`, to report the ones the template does not
    /// use.
    pub fn render_with<'v, L, N, I>(&self, lookup: L, names: N, strict: bool) -> Result<String, RenderError>
    where
        L: Fn(&str) -> Option<&'v str>,
        N: FnOnce() -> I,
        I: Iterator<Item = &'v str>,
    {
        let missing: Vec<String> = self.variables.iter().filter(|v| lookup(v).is_none()).cloned().collect();
        if !missing.is_empty() {
            return Err(RenderError::Missing(missing));
        }
        if strict {
            let mut unknown: Vec<String> =
                names().filter(|k| !self.variables.iter().any(|v| v == k)).map(str::to_owned).collect();
            if !unknown.is_empty() {
                unknown.sort();
                unknown.dedup();
                return Err(RenderError::Unknown(unknown));
            }
        }
        let mut len = 0;
        for seg in &self.segments {
            len += match *seg {
                Segment::Text(s, e) => e - s,
                Segment::Var(s, e) => lookup(&self.source[s..e]).map_or(0, str::len),
            };
        }
        let mut out = String::with_capacity(len);
        for seg in &self.segments {
            match *seg {
                Segment::Text(s, e) => out.push_str(&self.source[s..e]),
                Segment::Var(s, e) => {
                    if let Some(v) = lookup(&self.source[s..e]) {
                        out.push_str(v);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Parse and render in one call.
pub fn render<K, V>(source: &str, vars: &HashMap<K, V>, strict: bool) -> Result<String, RenderError>
where
    K: Borrow<str> + Hash + Eq,
    V: AsRef<str>,
{
    Template::parse(source).render(vars, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn extracts_ordered_unique_names() {
        assert_eq!(variables("Hi {{name}}, {{x_1}} and {{name}} again {{Name}}"), ["name", "x_1", "Name"]);
        assert!(variables("no vars").is_empty());
    }

    #[test]
    fn ignores_non_placeholders() {
        let src = "{{ spaced }} {{}} {{a-b}} {single} {{{inner}}} {{unclosed";
        assert_eq!(variables(src), ["inner"]);
        let out = render(src, &vars(&[("inner", "X")]), false);
        assert_eq!(out.as_deref(), Ok("{{ spaced }} {{}} {{a-b}} {single} {X} {{unclosed"));
    }

    #[test]
    fn renders_single_pass() {
        let out = render("{{a}} and {{b}}", &vars(&[("a", "{{b}}"), ("b", "B")]), false);
        assert_eq!(out.as_deref(), Ok("{{b}} and B"));
    }

    #[test]
    fn missing_names_all_of_them() {
        let err = render("{{a}} {{b}} {{c}}", &vars(&[("b", "1")]), false);
        assert_eq!(err, Err(RenderError::Missing(vec!["a".into(), "c".into()])));
    }

    #[test]
    fn strict_rejects_unknown() {
        let v = vars(&[("a", "1"), ("zz", "2"), ("yy", "3")]);
        assert_eq!(render("{{a}}", &v, false).as_deref(), Ok("1"));
        assert_eq!(render("{{a}}", &v, true), Err(RenderError::Unknown(vec!["yy".into(), "zz".into()])));
    }

    #[test]
    fn case_sensitive_and_unicode_text_kept() {
        let out = render("héllo {{Name}} {{name}} ✓", &vars(&[("Name", "A"), ("name", "b")]), true);
        assert_eq!(out.as_deref(), Ok("héllo A b ✓"));
    }

    #[test]
    fn adjacent_and_edge_placeholders() {
        let out = render("{{a}}{{b}}", &vars(&[("a", "1"), ("b", "2")]), false);
        assert_eq!(out.as_deref(), Ok("12"));
        let t = Template::parse("{{a}}");
        assert_eq!(t.variables(), ["a"]);
        assert_eq!(render("", &vars(&[]), true).as_deref(), Ok(""));
    }
}
