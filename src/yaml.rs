//! The one place YAML is parsed and written, so that replacing the YAML library touches one module.
//!
//! Values come from `serde_yaml`; positions come from a second, event-level pass with `saphyr-parser`
//! because `serde_yaml` forgets where a value was once it is parsed. Every node of a document is
//! recorded under its field path (`spec.ports[0].port`), so errors found long after parsing can
//! still name a line and column.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use serde_yaml::Value;

/// A 1-based line and column in a YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub const START: Location = Location { line: 1, column: 1 };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// The text is not well-formed YAML.
    #[error("{}:{}: invalid YAML: {message}", location.line, location.column)]
    Syntax { location: Location, message: String },
    /// A document is well-formed but does not have the shape the reader expects.
    #[error("{}:{}: {path}: {message}", location.line, location.column)]
    Shape {
        location: Location,
        path: String,
        message: String,
    },
    /// A value could not be written as YAML.
    #[error("cannot write YAML: {message}")]
    Write { message: String },
}

/// One document of a YAML stream: its value plus where each of its nodes was written.
#[derive(Debug, Clone)]
pub struct Document {
    value: Value,
    start: Location,
    /// Position of the value at each field path.
    values: HashMap<String, Location>,
    /// Position of the key of each mapping entry, by the entry's field path.
    keys: HashMap<String, Location>,
}

impl Document {
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Where the document's content starts (its root node; for an empty document, its `---`).
    pub fn start(&self) -> Location {
        self.start
    }

    /// Whether the document holds nothing (`---` followed by no content, or only comments).
    pub fn is_empty(&self) -> bool {
        self.value.is_null()
    }

    /// The position of the value at `path` (`spec.ports[0].port`). A path that does not exist in the
    /// text resolves to its nearest existing ancestor, so a missing field points at its parent.
    pub fn locate(&self, path: &str) -> Location {
        let mut current = path;
        loop {
            if let Some(location) = self.values.get(current) {
                return *location;
            }
            match parent_path(current) {
                Some(parent) => current = parent,
                None => return self.start,
            }
        }
    }

    /// The position of the key of the mapping entry at `path`, falling back to [`Document::locate`].
    pub fn locate_key(&self, path: &str) -> Location {
        self.keys.get(path).copied().unwrap_or_else(|| self.locate(path))
    }

    /// Deserializes the document into `T`. A failure names the field path and the position of the
    /// offending node (for an unknown field: the key itself).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, YamlError> {
        serde_path_to_error::deserialize::<_, T>(&self.value).map_err(|error| self.shape_error(&error))
    }

    /// Like [`Document::deserialize`], but reports up to `limit` problems instead of the first: after
    /// each error at a mapping key (unknown field, wrong type, bad value) the key is set aside and the
    /// document read again. Stops at an error that cannot be set aside (a missing field, a bad
    /// sequence element), since guessing past it would only produce noise.
    pub fn deserialize_all<T: DeserializeOwned>(&self, limit: usize) -> Result<T, Vec<YamlError>> {
        let mut value = self.value.clone();
        let mut errors = Vec::new();
        let mut set_aside: Vec<(String, String)> = Vec::new();
        loop {
            let error = match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(parsed) if errors.is_empty() => return Ok(parsed),
                Ok(_) => return Err(errors),
                Err(error) => error,
            };
            let message = error.inner().to_string();
            let segments: Vec<serde_path_to_error::Segment> = error.path().iter().cloned().collect();
            if message.starts_with("missing field") {
                // A required field that was set aside for being wrong is not also missing.
                let parent = path_string(error.path());
                let field = backticked(&message).unwrap_or_default().to_string();
                if !set_aside.contains(&(parent, field)) {
                    errors.push(self.shape_error(&error));
                }
                return Err(errors);
            }
            errors.push(self.shape_error(&error));
            if errors.len() >= limit {
                return Err(errors);
            }
            let Some((serde_path_to_error::Segment::Map { key }, parent)) = segments.split_last() else {
                return Err(errors);
            };
            if !remove_key(&mut value, parent, key) {
                return Err(errors);
            }
            set_aside.push((segments_string(parent), key.clone()));
        }
    }

    fn shape_error(&self, error: &serde_path_to_error::Error<serde_yaml::Error>) -> YamlError {
        let path = path_string(error.path());
        let message = error.inner().to_string();
        let location = match backticked(&message) {
            // serde_path_to_error already names the unknown key in some versions; point at the key.
            Some(field) if message.starts_with("unknown field") => {
                if path.ends_with(field) {
                    self.locate_key(&path)
                } else {
                    self.locate_key(&join_key(&path, field))
                }
            }
            _ => self.locate(&path),
        };
        YamlError::Shape {
            location,
            path: if path.is_empty() { ".".to_string() } else { path },
            message,
        }
    }

    /// The document as JSON, the form Kubernetes objects travel in.
    pub fn to_json(&self) -> Result<serde_json::Value, YamlError> {
        serde_json::to_value(&self.value).map_err(|e| YamlError::Shape {
            location: self.start,
            path: ".".to_string(),
            message: format!("cannot be represented as JSON: {e}"),
        })
    }
}

/// Parses every document of a YAML stream. Empty documents are kept (see [`Document::is_empty`]) so
/// that callers decide whether they matter.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    // Editors on some platforms write a byte order mark; it is invisible, so it must not matter.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| {
            let mut error = syntax_error(e);
            // serde_yaml places a duplicate key at its mapping; the event walk knows the key itself.
            if let YamlError::Syntax { location, message } = &mut error {
                if message.contains("duplicate entry") {
                    if let Some(at) = positions(text).iter().find_map(|p| p.duplicates.first().copied()) {
                        *location = at;
                    }
                }
            }
            error
        })?;
        values.push(value);
    }
    // An empty stream is one empty document to serde_yaml's point of view only sometimes; make it explicit.
    if values.is_empty() {
        values.push(Value::Null);
    }
    let mut positions = positions(text);
    if positions.len() != values.len() {
        // The two parsers split the stream differently: positions could point into the wrong
        // document, so none are used.
        positions.clear();
    }
    let mut documents = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        // The two parsers agree on well-formed input; should they ever not, positions degrade to the
        // start of the text instead of pointing at the wrong place.
        let (start, values, keys) = match positions.get_mut(index) {
            // A document "starts" at its content; the `---` line before it carries nothing to point at.
            Some(p) => (
                p.values.get("").copied().unwrap_or(p.start),
                std::mem::take(&mut p.values),
                std::mem::take(&mut p.keys),
            ),
            None => (Location::START, HashMap::new(), HashMap::new()),
        };
        documents.push(Document {
            value,
            start,
            values,
            keys,
        });
    }
    Ok(documents)
}

/// Parses a single-document YAML text.
pub fn parse_document(text: &str) -> Result<Document, YamlError> {
    let mut documents = parse_documents(text)?;
    if documents.len() > 1 {
        let second = documents[1].start;
        return Err(YamlError::Syntax {
            location: second,
            message: format!("expected one document, found {}", documents.len()),
        });
    }
    Ok(documents.remove(0))
}

/// Parses a single-document YAML text straight into `T`; errors carry the field path and position.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    parse_document(text)?.deserialize()
}

/// [`from_str`] for large documents read often (option data): one pass without recording positions, which
/// are worked out only when the text turns out to be invalid.
pub fn from_str_quick<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_yaml::from_str(text) {
        Ok(value) => Ok(value),
        Err(_) => from_str(text),
    }
}

/// Writes a value as YAML.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError::Write {
        message: e.to_string(),
    })
}

fn syntax_error(error: serde_yaml::Error) -> YamlError {
    let location = error
        .location()
        .map(|l| Location {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or(Location::START);
    let message = strip_positions(&error.to_string());
    YamlError::Syntax { location, message }
}

/// Removes serde_yaml's first ` at line N column M` phrase: that is the problem's position, reported
/// separately. A later one belongs to the context (`while parsing a flow sequence at line 3 column 4`) and
/// stays: it is often where the mistake is, such as an unclosed bracket or quote above the reported line.
fn strip_positions(message: &str) -> String {
    let Some(at) = message.find(" at line ") else {
        return message.to_string();
    };
    let after = &message[at + " at line ".len()..];
    let after = after.trim_start_matches(|c: char| c.is_ascii_digit());
    let after = after.strip_prefix(" column ").unwrap_or(after);
    let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{}{rest}", &message[..at])
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let segments: Vec<serde_path_to_error::Segment> = path.iter().cloned().collect();
    segments_string(&segments)
}

/// Removes `key` from the mapping at `parent`; false when there is no such mapping or key.
fn remove_key(value: &mut Value, parent: &[serde_path_to_error::Segment], key: &str) -> bool {
    let mut current = value;
    for segment in parent {
        let next = match segment {
            serde_path_to_error::Segment::Seq { index } => current.get_mut(*index),
            serde_path_to_error::Segment::Map { key } => current.get_mut(key.as_str()),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    current.as_mapping_mut().and_then(|m| m.remove(key)).is_some()
}

fn segments_string(segments: &[serde_path_to_error::Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            serde_path_to_error::Segment::Seq { index } => push_index(&mut out, *index),
            serde_path_to_error::Segment::Map { key } => out = join_key(&out, key),
            serde_path_to_error::Segment::Enum { variant } => out = join_key(&out, variant),
            serde_path_to_error::Segment::Unknown => out = join_key(&out, "?"),
        }
    }
    out
}

/// `parent.key`, or `key` at the root.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub fn join_index(parent: &str, index: usize) -> String {
    let mut out = parent.to_string();
    push_index(&mut out, index);
    out
}

fn push_index(out: &mut String, index: usize) {
    out.push('[');
    out.push_str(&index.to_string());
    out.push(']');
}

/// The path one level up, or `None` at the root. Keys containing `.` or `[` make paths ambiguous;
/// the worst outcome is that a position resolves to an ancestor.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        if let Some(open) = path.rfind('[') {
            return Some(&path[..open]);
        }
    }
    Some(match path.rfind(['.', '[']) {
        Some(i) if path.as_bytes()[i] == b'.' => &path[..i],
        Some(i) => &path[..i],
        None => "",
    })
}

/// The first `` `quoted` `` word of a serde message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[derive(Debug, Default)]
struct Positions {
    /// Keys that repeat an earlier key of the same mapping, in text order.
    duplicates: Vec<Location>,
    start: Location,
    values: HashMap<String, Location>,
    keys: HashMap<String, Location>,
}

/// Where a container node is in the walk of its document.
enum Frame {
    Sequence {
        path: String,
        next: usize,
    },
    /// `key` is `None` while the next node is a key.
    Mapping {
        path: String,
        key: Option<String>,
    },
    /// Inside a non-scalar mapping key; its content has no field path.
    ComplexKey {
        depth: usize,
        parent_path: String,
    },
}

/// Walks the event stream and records a position for every node. Iterative: nesting depth is
/// bounded by memory, not by the call stack.
fn positions(text: &str) -> Vec<Positions> {
    let mut out: Vec<Positions> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let here = Location {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let Some(current) = out.last_mut() else {
            if let Event::DocumentStart(_) = event {
                out.push(Positions {
                    start: here,
                    ..Positions::default()
                });
            }
            continue;
        };
        match event {
            Event::DocumentStart(_) => out.push(Positions {
                start: here,
                ..Positions::default()
            }),
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::Scalar(text, ..) => {
                if let Some(path) = node_path(&mut stack, current, here, Some(&text)) {
                    current.values.entry(path).or_insert(here);
                }
            }
            Event::Alias(_) => {
                if let Some(path) = node_path(&mut stack, current, here, None) {
                    current.values.entry(path).or_insert(here);
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if let Some(Frame::ComplexKey { depth, .. }) = stack.last_mut() {
                    *depth += 1;
                    continue;
                }
                let is_key = matches!(stack.last(), Some(Frame::Mapping { key: None, .. }));
                if is_key {
                    let parent_path = match stack.last() {
                        Some(Frame::Mapping { path, .. }) => path.clone(),
                        _ => String::new(),
                    };
                    stack.push(Frame::ComplexKey {
                        depth: 1,
                        parent_path,
                    });
                    continue;
                }
                let path = node_path(&mut stack, current, here, None).unwrap_or_default();
                current.values.entry(path.clone()).or_insert(here);
                if matches!(event, Event::SequenceStart(..)) {
                    stack.push(Frame::Sequence { path, next: 0 });
                } else {
                    stack.push(Frame::Mapping { path, key: None });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Frame::ComplexKey { depth, parent_path }) = stack.last_mut() {
                    *depth -= 1;
                    if *depth == 0 {
                        let parent_path = std::mem::take(parent_path);
                        stack.pop();
                        // The complex key is done; its value follows under a placeholder name.
                        if let Some(Frame::Mapping { key, .. }) = stack.last_mut() {
                            *key = Some(join_key(&parent_path, "?"));
                        }
                    }
                    continue;
                }
                stack.pop();
            }
        }
    }
    out
}

/// The field path of the node that starts now, advancing the enclosing container. Returns `None`
/// for a mapping key (recorded in `keys` instead) and for nodes inside complex keys.
fn node_path(
    stack: &mut [Frame],
    current: &mut Positions,
    here: Location,
    scalar: Option<&str>,
) -> Option<String> {
    match stack.last_mut() {
        None => Some(String::new()),
        Some(Frame::Sequence { path, next }) => {
            let p = join_index(path, *next);
            *next += 1;
            Some(p)
        }
        Some(Frame::Mapping { path, key }) => match key.take() {
            None => {
                let entry = join_key(path, scalar.unwrap_or("?"));
                if current.keys.contains_key(&entry) {
                    current.duplicates.push(here);
                } else {
                    current.keys.insert(entry.clone(), here);
                }
                *key = Some(entry);
                None
            }
            Some(entry) => Some(entry),
        },
        Some(Frame::ComplexKey { .. }) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Port {
        name: String,
        port: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Spec {
        ports: Vec<Port>,
    }

    #[test]
    fn locates_nested_values_and_keys() {
        let text = "a: 1\nspec:\n  ports:\n    - name: http\n      port: 80\n    - {name: x, port: 81}\n";
        let doc = parse_document(text).unwrap();
        assert_eq!(doc.locate("a"), Location { line: 1, column: 4 });
        assert_eq!(doc.locate("spec.ports[0].port"), Location { line: 5, column: 13 });
        assert_eq!(
            doc.locate_key("spec.ports[0].port"),
            Location { line: 5, column: 7 }
        );
        assert_eq!(doc.locate("spec.ports[1].port"), Location { line: 6, column: 23 });
        // Missing paths resolve to the nearest ancestor.
        assert_eq!(
            doc.locate("spec.ports[0].missing"),
            Location { line: 4, column: 7 }
        );
        assert_eq!(doc.locate("nothing.here"), Location { line: 1, column: 1 });
    }

    #[test]
    fn deserialize_errors_carry_path_and_position() {
        let cases = [
            (
                "ports:\n  - name: a\n    port: eighty\n",
                "ports[0].port",
                3,
                "invalid type",
            ),
            (
                "ports:\n  - name: a\n    port: 1\n    colour: red\n",
                "ports[0].colour",
                4,
                "unknown field `colour`",
            ),
            ("ports:\n  - name: a\n", "ports[0]", 2, "missing field `port`"),
        ];
        for (text, path, line, fragment) in cases {
            let doc = parse_document(text).unwrap();
            match doc.deserialize::<Spec>() {
                Err(YamlError::Shape {
                    location,
                    path: p,
                    message,
                }) => {
                    assert_eq!(p, path, "{text}: {message}");
                    assert_eq!(location.line, line, "{text}");
                    assert!(message.contains(fragment), "{message}");
                }
                other => panic!("{text}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn deserialize_all_reports_every_key_error_once() {
        let text =
            "ports:\n  - name: a\n    port: x\n    colour: red\n  - name: 7\n    port: 2\n    size: 1\n";
        let doc = parse_document(text).unwrap();
        let errors = doc.deserialize_all::<Spec>(10).unwrap_err();
        let found: Vec<(String, usize)> = errors
            .iter()
            .map(|e| match e {
                YamlError::Shape { path, location, .. } => (path.clone(), location.line),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // `port: x` is set aside, so `port` is not reported missing as well; the run then stops,
        // because nothing sensible can stand in for a required field.
        assert_eq!(
            found,
            [
                ("ports[0].port".to_string(), 3),
                ("ports[0].colour".to_string(), 4),
            ]
        );
        let text =
            "ports:\n  - name: a\n    port: 1\n    colour: red\n  - name: b\n    port: 2\n    size: 1\n";
        let doc = parse_document(text).unwrap();
        assert_eq!(doc.deserialize_all::<Spec>(10).unwrap_err().len(), 2);
        assert_eq!(doc.deserialize_all::<Spec>(1).unwrap_err().len(), 1);
        let fine = parse_document("ports:\n  - name: a\n    port: 1\n").unwrap();
        assert!(fine.deserialize_all::<Spec>(10).is_ok());
        let missing = parse_document("ports:\n  - name: a\n").unwrap();
        assert_eq!(missing.deserialize_all::<Spec>(10).unwrap_err().len(), 1);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        match err {
            YamlError::Syntax { location, message } => {
                // The parser notices the unclosed bracket on the next line; the message keeps where the
                // sequence started, which is the line to fix.
                assert_eq!(location.line, 3, "{location:?}");
                assert!(!message.contains("line 3 column"), "{message}");
                assert!(
                    message.contains("while parsing a flow sequence at line 2 column 4"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn byte_order_marks_and_crlf_line_ends_are_accepted() {
        let doc = parse_document("\u{feff}a: 1\r\nb:\r\n  c: x\r\n").unwrap();
        assert_eq!(doc.value().get("a").and_then(Value::as_i64), Some(1));
        assert_eq!(doc.locate("b.c"), Location { line: 3, column: 6 });
    }

    #[test]
    fn duplicate_keys_point_at_the_repeated_key() {
        match parse_documents("spec:\n  a: 1\n  b: 2\n  a: 3\n") {
            Err(YamlError::Syntax { location, message }) => {
                assert_eq!(location, Location { line: 4, column: 3 });
                assert!(message.contains("duplicate entry"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn multiple_documents_have_own_positions() {
        let text = "a: 1\n---\nb: 2\n---\n# nothing\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].locate("b").line, 3);
        assert_eq!(docs[1].start(), Location { line: 3, column: 1 });
        assert!(docs[2].is_empty());
        assert!(parse_document(text).is_err());
        assert!(parse_documents("").unwrap()[0].is_empty());
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_position_walk() {
        let depth = 5000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // Whatever either parser makes of it, neither may exhaust the stack.
        let _ = positions(&text);
        let _ = parse_documents(&text);
    }
}
