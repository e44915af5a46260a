//! The difference between two versions of a prompt (SPEC §9): the content
//! line by line (the `similar` crate's Myers diff), as runs of equal,
//! deleted and inserted lines, and which of metadata, prompt type and
//! variables changed. Pure computation; `views::DiffView` is its wire shape.

use scope_store::VersionRow;
use serde::Serialize;
use similar::{DiffTag, TextDiff};

/// A run of lines that are equal in both, or only in the old (`delete`) or
/// the new (`insert`) content. Line numbers are 1-based; a run starts at
/// `old_start` in the old content and `new_start` in the new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Hunk {
    #[schema(schema_with = crate::http::openapi::hunk_op)]
    pub op: &'static str,
    pub lines: Vec<String>,
    pub old_start: usize,
    pub new_start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FromTo<T> {
    pub from: T,
    pub to: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VariablesChange {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MetadataChange {
    #[schema(value_type = Object)]
    pub from: serde_json::Value,
    #[schema(value_type = Object)]
    pub to: serde_json::Value,
    /// Top-level keys only in the new metadata, only in the old, in both
    /// with different values.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// What changed besides the content; `None` where nothing did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Changed {
    pub metadata: Option<MetadataChange>,
    pub prompt_type: Option<FromTo<String>>,
    pub variables: Option<VariablesChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VersionDiff {
    pub content: Vec<Hunk>,
    pub changed: Changed,
}

impl VersionDiff {
    /// Whether the two versions differ at all.
    pub fn is_empty(&self) -> bool {
        self.content.iter().all(|h| h.op == "equal")
            && self.changed.metadata.is_none()
            && self.changed.prompt_type.is_none()
            && self.changed.variables.is_none()
    }
}

/// The line runs turning `old` into `new`.
pub fn lines(old: &str, new: &str) -> Vec<Hunk> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let diff = TextDiff::configure().diff_slices(&old_lines, &new_lines);
    let mut out: Vec<Hunk> = Vec::new();
    let mut push = |op: &'static str, lines: &[&str], old_start: usize, new_start: usize| {
        if lines.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.op == op => last.lines.extend(lines.iter().map(|l| (*l).to_owned())),
            _ => out.push(Hunk {
                op,
                lines: lines.iter().map(|l| (*l).to_owned()).collect(),
                old_start: old_start + 1,
                new_start: new_start + 1,
            }),
        }
    };
    for op in diff.ops() {
        let (tag, o, n) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => push("equal", &old_lines[o.clone()], o.start, n.start),
            DiffTag::Delete => push("delete", &old_lines[o.clone()], o.start, n.start),
            DiffTag::Insert => push("insert", &new_lines[n.clone()], o.start, n.start),
            DiffTag::Replace => {
                push("delete", &old_lines[o.clone()], o.start, n.start);
                push("insert", &new_lines[n.clone()], o.end, n.start);
            }
        }
    }
    out
}

fn metadata(from: &serde_json::Value, to: &serde_json::Value) -> Option<MetadataChange> {
    if from == to {
        return None;
    }
    let empty = serde_json::Map::new();
    let (a, b) = (from.as_object().unwrap_or(&empty), to.as_object().unwrap_or(&empty));
    let added = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    let removed = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    let changed = a.iter().filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v)).map(|(k, _)| k.clone()).collect();
    Some(MetadataChange { from: from.clone(), to: to.clone(), added, removed, changed })
}

fn variables(from: &[String], to: &[String]) -> Option<VariablesChange> {
    if from == to {
        return None;
    }
    Some(VariablesChange {
        from: from.to_vec(),
        to: to.to_vec(),
        added: to.iter().filter(|v| !from.contains(v)).cloned().collect(),
        removed: from.iter().filter(|v| !to.contains(v)).cloned().collect(),
    })
}

pub fn compute(from: &VersionRow, to: &VersionRow) -> VersionDiff {
    VersionDiff {
        content: lines(&from.content, &to.content),
        changed: Changed {
            metadata: metadata(&from.metadata, &to.metadata),
            prompt_type: (from.prompt_type != to.prompt_type)
                .then(|| FromTo { from: from.prompt_type.clone(), to: to.prompt_type.clone() }),
            variables: variables(&from.variables, &to.variables),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(h: &[Hunk]) -> Vec<(&str, Vec<&str>, usize, usize)> {
        h.iter().map(|h| (h.op, h.lines.iter().map(String::as_str).collect(), h.old_start, h.new_start)).collect()
    }

    #[test]
    fn line_runs() {
        let h = lines("a\nb\nc\nd", "a\nB\nc\nd\ne");
        assert_eq!(
            ops(&h),
            vec![
                ("equal", vec!["a"], 1, 1),
                ("delete", vec!["b"], 2, 2),
                ("insert", vec!["B"], 3, 2),
                ("equal", vec!["c", "d"], 3, 3),
                ("insert", vec!["e"], 5, 5),
            ]
        );
        assert!(lines("same\n", "same").iter().all(|h| h.op == "equal"));
        assert!(lines("", "").is_empty());
        assert_eq!(ops(&lines("", "x")), vec![("insert", vec!["x"], 1, 1)]);
    }

    #[test]
    fn changed_fields() {
        let m = metadata(&serde_json::json!({"a": 1, "b": 2}), &serde_json::json!({"b": 3, "c": 4}));
        let m = m.map(|m| (m.added, m.removed, m.changed));
        assert_eq!(m, Some((vec!["c".to_owned()], vec!["a".to_owned()], vec!["b".to_owned()])));
        assert_eq!(metadata(&serde_json::json!({}), &serde_json::json!({})), None);
        let v = variables(&["x".into(), "y".into()], &["y".into(), "z".into()]).map(|v| (v.added, v.removed));
        assert_eq!(v, Some((vec!["z".to_owned()], vec!["x".to_owned()])));
        // Order counts: the variables list is ordered.
        assert!(variables(&["x".into(), "y".into()], &["y".into(), "x".into()]).is_some());
    }
}
