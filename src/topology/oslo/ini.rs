//! oslo.config's own INI dialect, read the way `oslo_config.iniparser` reads it, with the line of every
//! section and assignment: `[group]` headers, `key = value` or `key: value` (the first `=` or `:` splits),
//! values continued on indented lines (joined with newlines, ended by a blank line), `#` and `;` comments
//! only at the start of a line (so `debug = true # note` is the value `true # note`), one pair of matching
//! quotes stripped from a value, and repeated keys kept (a MultiStrOpt reads them all).

/// One `key = value` in a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The section header as written (`DEFAULT`, `database`).
    pub group: String,
    pub key: String,
    /// Continuation lines are joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A `[group]` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
}

/// A line oslo.config refuses, which makes the service fail to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// A parsed file: its headers and assignments in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IniFile {
    pub sections: Vec<Section>,
    pub assignments: Vec<Assignment>,
}

impl IniFile {
    /// Values of `key` in `group` (compared as oslo.config compares: the DEFAULT group exactly, other group
    /// names case-insensitively), in file order.
    pub fn values<'a>(&'a self, group: &str, key: &'a str) -> impl Iterator<Item = &'a Assignment> + 'a {
        let group = normalize_group(group);
        self.assignments
            .iter()
            .filter(move |a| a.key == key && normalize_group(&a.group) == group)
    }

    /// The value oslo.config uses for a single-valued option: the last one written.
    pub fn last(&self, group: &str, key: &str) -> Option<&Assignment> {
        let group = normalize_group(group);
        self.assignments
            .iter()
            .rev()
            .find(|a| a.key == key && normalize_group(&a.group) == group)
    }
}

/// oslo.config looks groups up by this name: `DEFAULT` stays, every other name is lower-cased.
pub fn normalize_group(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

/// Parses `text`. oslo.config stops at the first bad line; this reports every one and keeps what it could
/// read, so a single pass names every problem.
pub fn parse(text: &str) -> (IniFile, Vec<SyntaxError>) {
    let mut parser = Parser::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.split('\n').enumerate() {
        parser.line(index + 1, raw);
    }
    parser.flush();
    (parser.file, parser.errors)
}

#[derive(Default)]
struct Parser {
    file: IniFile,
    errors: Vec<SyntaxError>,
    section: Option<String>,
    /// The assignment being read: key, line, value lines.
    pending: Option<(String, usize, Vec<String>)>,
}

impl Parser {
    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(SyntaxError {
            line,
            message: message.into(),
        });
    }

    fn flush(&mut self) {
        let Some((key, line, lines)) = self.pending.take() else {
            return;
        };
        match &self.section {
            Some(group) => self.file.assignments.push(Assignment {
                group: group.clone(),
                key,
                value: lines.join("\n"),
                line,
            }),
            None => self.error(
                line,
                format!("`{key}` is set before any [section]; oslo.config refuses the file"),
            ),
        }
    }

    fn line(&mut self, number: usize, raw: &str) {
        let line = raw.trim_end();
        if line.is_empty() {
            // A blank line ends a value continued over several lines.
            self.flush();
            return;
        }
        if line.starts_with([' ', '\t']) {
            match &mut self.pending {
                Some((_, _, lines)) => lines.push(line.trim_start().to_string()),
                None => self.error(
                    number,
                    "unexpected continuation line: an indented line continues the value above it, and \
                     there is none; remove the indentation",
                ),
            }
            return;
        }
        self.flush();
        if line.starts_with('[') {
            if !line.ends_with(']') {
                self.error(number, "invalid section header: it must end with `]`");
            } else if line.len() <= 2 {
                self.error(number, "empty section name `[]`");
            } else {
                let name = line[1..line.len() - 1].to_string();
                self.file.sections.push(Section {
                    name: name.clone(),
                    line: number,
                });
                self.section = Some(name);
            }
            return;
        }
        if line.starts_with(['#', ';']) {
            return;
        }
        let split = match (line.find('='), line.find(':')) {
            (Some(equal), Some(colon)) => Some(equal.min(colon)),
            (Some(at), None) | (None, Some(at)) => Some(at),
            (None, None) => None,
        };
        let Some(at) = split else {
            self.error(number, "no `=` or `:` in this assignment");
            return;
        };
        let key = line[..at].trim();
        if key.is_empty() {
            self.error(number, "empty option name before the `=`");
            return;
        }
        let mut value = line[at + 1..].trim();
        if value.len() >= 2 && (value.starts_with('"') || value.starts_with('\'')) {
            let quote = &value[..1];
            if value.ends_with(quote) {
                value = &value[1..value.len() - 1];
            }
        } else if value == "\"" || value == "'" {
            // oslo.config strips "both" quotes of a lone quote character.
            value = "";
        }
        self.pending = Some((key.to_string(), number, vec![value.to_string()]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignments(text: &str) -> Vec<(String, String, String, usize)> {
        let (file, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        file.assignments
            .into_iter()
            .map(|a| (a.group, a.key, a.value, a.line))
            .collect()
    }

    fn a(group: &str, key: &str, value: &str, line: usize) -> (String, String, String, usize) {
        (group.into(), key.into(), value.into(), line)
    }

    #[test]
    fn reads_sections_keys_and_values_with_their_lines() {
        let text = "# comment\n[DEFAULT]\ndebug = True\n; other comment\nhost: node-1\n\n[database]\nconnection=mysql+pymysql://u:p@db/nova\n";
        assert_eq!(
            assignments(text),
            [
                a("DEFAULT", "debug", "True", 3),
                a("DEFAULT", "host", "node-1", 5),
                a("database", "connection", "mysql+pymysql://u:p@db/nova", 8),
            ]
        );
    }

    #[test]
    fn the_first_equals_or_colon_splits_key_from_value() {
        assert_eq!(
            assignments("[g]\nurl = http://h:5000\nmap: a:b=c\n"),
            [a("g", "url", "http://h:5000", 2), a("g", "map", "a:b=c", 3)]
        );
    }

    #[test]
    fn continuation_lines_join_with_newlines_until_a_blank_line() {
        let text = "[g]\nkey = first\n  second\n\tthird\n\nother = x\n";
        assert_eq!(
            assignments(text),
            [a("g", "key", "first\nsecond\nthird", 2), a("g", "other", "x", 6)]
        );
    }

    #[test]
    fn comments_count_only_at_the_start_of_a_line() {
        assert_eq!(
            assignments("[g]\ndebug = true # really\n"),
            [a("g", "debug", "true # really", 2)]
        );
    }

    #[test]
    fn one_pair_of_matching_quotes_is_stripped() {
        assert_eq!(
            assignments("[g]\na = \"x y\"\nb = 'z'\nc = \"open\nd = \"\ne = '\"\n"),
            [
                a("g", "a", "x y", 2),
                a("g", "b", "z", 3),
                a("g", "c", "\"open", 4),
                a("g", "d", "", 5),
                a("g", "e", "'\"", 6),
            ]
        );
    }

    #[test]
    fn repeated_keys_are_all_kept_and_the_last_one_is_the_value() {
        let (file, _) = parse("[DEFAULT]\nx = 1\nx = 2\n[Database]\ny = 3\n");
        assert_eq!(file.values("DEFAULT", "x").count(), 2);
        assert_eq!(file.last("DEFAULT", "x").map(|a| a.value.as_str()), Some("2"));
        assert_eq!(file.last("database", "y").map(|a| a.line), Some(5));
        assert_eq!(file.sections.len(), 2);
    }

    #[test]
    fn empty_values_and_crlf_line_ends_are_read() {
        assert_eq!(
            assignments("[g]\r\nextensions =\r\nk = v\r\n"),
            [a("g", "extensions", "", 2), a("g", "k", "v", 3)]
        );
    }

    #[test]
    fn lines_oslo_config_refuses_are_reported_with_their_line() {
        let text = "  indented\nkey = before\n[open\n[]\n[g]\nno assignment\n= value\n";
        let (_, errors) = parse(text);
        let lines: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines[0].0 == 1 && lines[0].1.contains("continuation"));
        assert!(lines[1].0 == 2 && lines[1].1.contains("before any [section]"));
        assert!(lines[2].0 == 3 && lines[2].1.contains("end with `]`"));
        assert!(lines[3].0 == 4 && lines[3].1.contains("empty section"));
        assert!(lines[4].0 == 6 && lines[4].1.contains("no `=`"));
        assert!(lines[5].0 == 7 && lines[5].1.contains("empty option name"));
    }
}
