//! `scope prompt labels | label | rollback | diff` and `get --label <any>`:
//! releases over the Scope API (`remote.rs`), printed for people (or as the
//! API's JSON with `--json`).

use std::io::IsTerminal;

use anyhow::anyhow;
use scope_client::reqwest::Method;
use serde_json::{json, Value};

use crate::remote::Remote;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn version_of(v: &Value) -> String {
    match v.as_i64() {
        Some(n) => format!("v{n}"),
        None => "—".into(),
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `scope prompt labels NAME [--history] [--json]`.
pub async fn labels(name: &str, history: bool, as_json: bool) -> anyhow::Result<()> {
    let remote = Remote::from_env().await?;
    if history {
        let h = remote.get(&["prompts", name, "label-history"], &[("limit", "200")]).await?;
        if as_json {
            return print_json(&h);
        }
        println!("{:<24}  {:<16}  {:<8}  {:<6}  {:<6}  {:<30}  NOTES", "WHEN", "LABEL", "KIND", "FROM", "TO", "BY");
        for m in h["data"].as_array().into_iter().flatten() {
            println!(
                "{:<24}  {:<16}  {:<8}  {:<6}  {:<6}  {:<30}  {}",
                s(&m["moved_at"]),
                s(&m["label"]),
                s(&m["kind"]),
                version_of(&m["from_version"]),
                version_of(&m["to_version"]),
                s(&m["moved_by"]),
                s(&m["notes"])
            );
        }
        return Ok(());
    }
    let l = remote.get(&["prompts", name, "labels"], &[]).await?;
    if as_json {
        return print_json(&l);
    }
    println!(
        "{:<16}  {:<7}  {:<30}  {:<24}  {:<30}  PROTECTED",
        "LABEL", "VERSION", "VERSION_ID", "MOVED_AT", "MOVED_BY"
    );
    for x in l["data"].as_array().into_iter().flatten() {
        println!(
            "{:<16}  {:<7}  {:<30}  {:<24}  {:<30}  {}",
            s(&x["label"]),
            version_of(&x["version"]),
            s(&x["version_id"]),
            s(&x["moved_at"]),
            s(&x["moved_by"]),
            if x["protected"].as_bool() == Some(true) { "yes" } else { "" }
        );
    }
    Ok(())
}

/// `scope prompt label NAME LABEL --version ID|N [--notes …]`.
pub async fn move_label(
    name: &str,
    label: &str,
    version: &str,
    notes: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut body = match version.parse::<i64>() {
        Ok(n) => json!({ "version": n }),
        Err(_) => json!({ "version_id": version }),
    };
    if let Some(n) = notes {
        body["notes"] = n.into();
    }
    let remote = Remote::from_env().await?;
    let v = remote.call(Method::PUT, &["prompts", name, "labels", label], &[], Some(body)).await?;
    if as_json {
        return print_json(&v);
    }
    println!("{name}: {label} → {} ({})", version_of(&v["version"]), s(&v["version_id"]));
    Ok(())
}

/// `scope prompt rollback NAME LABEL [--notes …]`.
pub async fn rollback(name: &str, label: &str, notes: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let body = match notes {
        Some(n) => json!({ "notes": n }),
        None => json!({}),
    };
    let remote = Remote::from_env().await?;
    let v = remote.call(Method::POST, &["prompts", name, "labels", label, "rollback"], &[], Some(body)).await?;
    if as_json {
        return print_json(&v);
    }
    println!("{name}: {label} rolled back to {} ({})", version_of(&v["version"]), s(&v["version_id"]));
    Ok(())
}

/// The version a label points at, for `scope prompt get|render --label X`
/// with a label the SDK does not fetch.
pub async fn labelled(name: &str, label: &str) -> anyhow::Result<scope_client::PromptVersion> {
    let remote = Remote::from_env().await?;
    let v = remote.get(&["prompts", name, "labels", label], &[]).await?;
    serde_json::from_value(v).map_err(|e| anyhow!("unexpected answer from the Scope API: {e}"))
}

/// Whether to colour: `--color always|never`, or `auto`: stdout is a
/// terminal and `NO_COLOR` is unset.
pub fn use_colour(choice: &str) -> bool {
    match choice {
        "always" => true,
        "never" => false,
        _ => {
            let no_color = matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
            std::io::stdout().is_terminal() && !no_color
        }
    }
}

/// `scope prompt diff NAME FROM TO`: FROM and TO are version ids, numbers
/// or labels.
pub async fn diff(name: &str, from: &str, to: &str, as_json: bool, colour: bool) -> anyhow::Result<()> {
    let remote = Remote::from_env().await?;
    let d = remote.get(&["prompts", name, "diff"], &[("from", from), ("to", to)]).await?;
    if as_json {
        return print_json(&d);
    }
    print!("{}", render_diff(name, &d, colour));
    Ok(())
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The diff as text: a header per side, what changed besides the content,
/// then every line prefixed with ` `, `-` or `+` (coloured when asked).
pub fn render_diff(name: &str, d: &Value, colour: bool) -> String {
    let paint = |code: &str, text: String| if colour { format!("{code}{text}{RESET}") } else { text };
    let side = |v: &Value| {
        let labels: Vec<&str> = v["labels"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let labels = if labels.is_empty() { String::new() } else { format!(" [{}]", labels.join(", ")) };
        format!("{name} {} ({}, {}){labels}", version_of(&v["version"]), s(&v["version_id"]), s(&v["status"]))
    };
    let mut out = String::new();
    out.push_str(&paint(BOLD, format!("--- {}", side(&d["from"]))));
    out.push('\n');
    out.push_str(&paint(BOLD, format!("+++ {}", side(&d["to"]))));
    out.push('\n');
    let changed = &d["changed"];
    if let Some(t) = changed["prompt_type"].as_object() {
        let line = format!("prompt_type: {} → {}", s(&t["from"]), s(&t["to"]));
        out.push_str(&paint(CYAN, line));
        out.push('\n');
    }
    let list = |v: &Value, sign: char| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(|x| format!("{sign}{x}")).collect()
    };
    if changed["variables"].is_object() {
        let v = &changed["variables"];
        let parts = [list(&v["added"], '+'), list(&v["removed"], '-')].concat();
        let detail = if parts.is_empty() { "reordered".to_owned() } else { parts.join(" ") };
        out.push_str(&paint(CYAN, format!("variables: {detail}")));
        out.push('\n');
    }
    if changed["metadata"].is_object() {
        let m = &changed["metadata"];
        let parts = [list(&m["added"], '+'), list(&m["removed"], '-'), list(&m["changed"], '~')].concat();
        out.push_str(&paint(CYAN, format!("metadata: {}", parts.join(" "))));
        out.push('\n');
    }
    for h in d["content"].as_array().into_iter().flatten() {
        let (sign, code) = match s(&h["op"]) {
            "insert" => ('+', Some(GREEN)),
            "delete" => ('-', Some(RED)),
            _ => (' ', None),
        };
        for line in h["lines"].as_array().into_iter().flatten() {
            let text = format!("{sign}{}", s(line));
            match code {
                Some(c) => out.push_str(&paint(c, text)),
                None => out.push_str(&text),
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "from": {"version_id": "v_1", "version": 1, "status": "archived", "labels": []},
            "to": {"version_id": "v_2", "version": 2, "status": "published", "labels": ["production"]},
            "content": [
                {"op": "equal", "lines": ["Hi"], "old_start": 1, "new_start": 1},
                {"op": "delete", "lines": ["old"], "old_start": 2, "new_start": 2},
                {"op": "insert", "lines": ["new {{x}}"], "old_start": 3, "new_start": 2},
            ],
            "changed": {"metadata": null, "prompt_type": {"from": "text", "to": "chat"},
                        "variables": {"from": [], "to": ["x"], "added": ["x"], "removed": []}},
        })
    }

    #[test]
    fn plain_diff() {
        let text = render_diff("greeting", &sample(), false);
        assert_eq!(
            text,
            "--- greeting v1 (v_1, archived)\n+++ greeting v2 (v_2, published) [production]\n\
             prompt_type: text → chat\nvariables: +x\n Hi\n-old\n+new {{x}}\n"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn coloured_diff() {
        let text = render_diff("greeting", &sample(), true);
        assert!(text.contains("\x1b[31m-old\x1b[0m"));
        assert!(text.contains("\x1b[32m+new {{x}}\x1b[0m"));
        assert!(text.contains(" Hi\n"));
    }
}
