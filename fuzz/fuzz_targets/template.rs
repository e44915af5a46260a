//! Template parse + render (scope-domain `template.rs`, SPEC §6).
//!
//! Properties, for any source text and any values:
//! - `variables` are unique, in order of first appearance, each of
//!   `[A-Za-z0-9_]+`, and each appears as `{{name}}` in the source;
//! - rendering matches an independent single-pass reference renderer
//!   (so a value holding `{{x}}` is never expanded again);
//! - rendering every variable to its own placeholder gives the source back;
//! - leaving one variable out is `Missing([that one])`; an extra name is
//!   ignored, or `Unknown([it])` when strict.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scope_domain::template::{self, RenderError, Template};

#[derive(Debug, Arbitrary)]
struct Input {
    source: String,
    /// Values handed out to the variables in order (cycled).
    values: Vec<String>,
    /// Which variable to leave out (modulo their number).
    drop: u8,
    /// An extra name supplied in strict mode.
    extra: String,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The reference: scan left to right; at `{{` + name + `}}` substitute and
/// continue after the `}}`, else copy one character.
fn reference(source: &str, vars: &HashMap<String, String>) -> String {
    let b = source.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"{{") {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > i + 2 && b[j..].starts_with(b"}}") {
                out.push_str(&vars[&source[i + 2..j]]);
                i = j + 2;
                continue;
            }
        }
        let ch = source[i..].chars().next().expect("in bounds, on a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fuzz_target!(|input: Input| {
    let t = Template::parse(input.source.as_str());
    assert_eq!(t.source(), input.source);
    let names = t.variables().to_vec();
    assert_eq!(names, template::variables(&input.source));
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        assert!(is_name(n), "bad variable name {n:?}");
        assert!(seen.insert(n.clone()), "duplicate variable {n:?}");
        assert!(input.source.contains(&format!("{{{{{n}}}}}")), "{n:?} not in the source");
    }

    // Values from the input: the output is the reference's.
    let vars: HashMap<String, String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let v = if input.values.is_empty() { String::new() } else { input.values[i % input.values.len()].clone() };
            (n.clone(), v)
        })
        .collect();
    let out = t.render(&vars, true).expect("every variable supplied, none extra");
    assert_eq!(out, reference(&input.source, &vars));
    assert_eq!(template::render(&input.source, &vars, false).as_deref(), Ok(out.as_str()));

    // Each variable rendered as its own placeholder: the source again.
    let identity: HashMap<String, String> = names.iter().map(|n| (n.clone(), format!("{{{{{n}}}}}"))).collect();
    assert_eq!(t.render(&identity, true).as_deref(), Ok(input.source.as_str()));

    // One left out: exactly that one is missing.
    if !names.is_empty() {
        let gone = &names[input.drop as usize % names.len()];
        let mut fewer = vars.clone();
        fewer.remove(gone);
        assert_eq!(t.render(&fewer, false), Err(RenderError::Missing(vec![gone.clone()])));
    }

    // An extra name: ignored unless strict.
    if !names.contains(&input.extra) {
        let mut more = vars.clone();
        more.insert(input.extra.clone(), "x".into());
        assert_eq!(t.render(&more, false).as_deref(), Ok(out.as_str()));
        assert_eq!(t.render(&more, true), Err(RenderError::Unknown(vec![input.extra.clone()])));
    }
});
