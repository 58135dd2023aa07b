//! What the text and Markdown formats share: how a value and a field change read to a person.
//! Multi-line strings (config files inside ConfigMaps) get a line diff with context instead of two
//! unreadable one-line blobs.

use serde_json::Value;

use crate::object::ANNOTATION_HASH;

use super::inventory::stage_name;
use super::model::{Action, Change, FieldDiff, Summary};

/// One line of a rendered field diff: `-` removed, `+` added, ` ` context or heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub sign: char,
    pub text: String,
}

/// Lines of context kept around changed lines of a multi-line string.
const CONTEXT: usize = 2;
/// Beyond this many cells the line diff's table would cost too much memory; show both sides whole instead.
const MAX_LCS_CELLS: usize = 4_000_000;

pub fn value_text(v: &Value) -> String {
    v.to_string()
}

pub fn summary_line(s: &Summary) -> String {
    format!(
        "{} to create, {} to update, {} unchanged, {} to delete, {} refused",
        s.create, s.update, s.unchanged, s.delete, s.refused
    )
}

/// `+ create`, `~ update`, ... with a fixed width so references line up.
pub fn action_label(a: Action) -> &'static str {
    match a {
        Action::Create => "+ create   ",
        Action::Update => "~ update   ",
        Action::Unchanged => "= unchanged",
        Action::Delete => "- delete   ",
    }
}

pub fn change_title(c: &Change) -> String {
    let drift = if c.drift {
        " (drift: changed in the cluster)"
    } else {
        ""
    };
    format!("{} [{}]{drift}", c.reference, stage_name(c.stage))
}

/// The field diffs worth showing a person. The hash annotation changes whenever anything else does, so it is
/// noise next to the real change; it is shown only when it is the sole difference (a body rendered without
/// it), and always kept in the JSON.
pub fn shown_diffs(c: &Change) -> impl Iterator<Item = &FieldDiff> {
    let hash_path = format!("metadata.annotations[\"{ANNOTATION_HASH}\"]");
    let only_hash = c.diff.iter().all(|d| d.path == hash_path);
    c.diff.iter().filter(move |d| only_hash || d.path != hash_path)
}

pub fn field_lines(d: &FieldDiff) -> Vec<DiffLine> {
    let line = |sign, text| DiffLine { sign, text };
    if let (Some(Value::String(before)), Some(Value::String(after))) = (&d.before, &d.after)
        && (before.contains('\n') || after.contains('\n'))
    {
        let mut out = vec![line(' ', format!("{}:", d.path))];
        out.extend(text_diff(before, after));
        return out;
    }
    let mut out = Vec::new();
    if let Some(b) = &d.before {
        out.push(line('-', format!("{}: {}", d.path, value_text(b))));
    }
    if let Some(a) = &d.after {
        out.push(line('+', format!("{}: {}", d.path, value_text(a))));
    }
    out
}

/// Line diff of two texts (longest common subsequence), with `CONTEXT` unchanged lines around each change
/// and `...` for what is skipped. Lines are indented under the field path.
pub fn text_diff(before: &str, after: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let ops = match lcs_ops(&a, &b) {
        Some(ops) => ops,
        None => {
            let mut ops: Vec<(char, &str)> = a.iter().map(|l| ('-', *l)).collect();
            ops.extend(b.iter().map(|l| ('+', *l)));
            ops
        }
    };
    let changed: Vec<bool> = ops.iter().map(|(s, _)| *s != ' ').collect();
    let keep = |i: usize| {
        let lo = i.saturating_sub(CONTEXT);
        let hi = (i + CONTEXT).min(ops.len().saturating_sub(1));
        (lo..=hi).any(|j| changed[j])
    };
    let mut out = Vec::new();
    let mut skipped = false;
    for (i, (sign, text)) in ops.iter().enumerate() {
        if keep(i) {
            if skipped {
                out.push(DiffLine {
                    sign: ' ',
                    text: "    ...".to_string(),
                });
                skipped = false;
            }
            out.push(DiffLine {
                sign: *sign,
                text: format!("    {text}"),
            });
        } else {
            skipped = true;
        }
    }
    if skipped {
        out.push(DiffLine {
            sign: ' ',
            text: "    ...".to_string(),
        });
    }
    out
}

fn lcs_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Option<Vec<(char, &'a str)>> {
    let (n, m) = (a.len(), b.len());
    if (n + 1).checked_mul(m + 1)? > MAX_LCS_CELLS {
        return None;
    }
    // table[i][j] = LCS length of a[i..] and b[j..], flattened.
    let w = m + 1;
    let mut table = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * w + j] = if a[i] == b[j] {
                table[(i + 1) * w + j + 1] + 1
            } else {
                table[(i + 1) * w + j].max(table[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if table[(i + 1) * w + j] >= table[i * w + j + 1] {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    ops.extend(a[i..].iter().map(|l| ('-', *l)));
    ops.extend(b[j..].iter().map(|l| ('+', *l)));
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(lines: &[DiffLine]) -> Vec<String> {
        lines.iter().map(|l| format!("{}{}", l.sign, l.text)).collect()
    }

    #[test]
    fn config_file_change_shows_only_changed_lines_with_context() {
        let before = "[DEFAULT]\ndebug = false\na = 1\nb = 2\nc = 3\nd = 4\n[database]\nconnection = old\n";
        let after = "[DEFAULT]\ndebug = true\na = 1\nb = 2\nc = 3\nd = 4\n[database]\nconnection = new\n";
        let d = FieldDiff {
            path: "data[\"keystone.conf\"]".into(),
            before: Some(json!(before)),
            after: Some(json!(after)),
        };
        let got = render(&field_lines(&d));
        assert_eq!(
            got,
            vec![
                " data[\"keystone.conf\"]:",
                "     [DEFAULT]",
                "-    debug = false",
                "+    debug = true",
                "     a = 1",
                "     b = 2",
                "     ...",
                "     d = 4",
                "     [database]",
                "-    connection = old",
                "+    connection = new",
            ]
        );
    }

    #[test]
    fn scalar_changes_show_both_sides_and_absent_sides_are_left_out() {
        let d = FieldDiff {
            path: "spec.replicas".into(),
            before: Some(json!(1)),
            after: Some(json!(3)),
        };
        assert_eq!(
            render(&field_lines(&d)),
            vec!["-spec.replicas: 1", "+spec.replicas: 3"]
        );
        let added = FieldDiff {
            path: "spec.x".into(),
            before: None,
            after: Some(json!("y")),
        };
        assert_eq!(render(&field_lines(&added)), vec!["+spec.x: \"y\""]);
    }

    #[test]
    fn texts_too_large_for_the_table_fall_back_to_whole_sides() {
        let a: Vec<&str> = vec!["x"; 2100];
        let b: Vec<&str> = vec!["y"; 2100];
        assert!(lcs_ops(&a, &b).is_none());
        let lines = text_diff(&a.join("\n"), &b.join("\n"));
        assert_eq!(lines.iter().filter(|l| l.sign == '-').count(), 2100);
    }
}
