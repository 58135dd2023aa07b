//! One oslo.config file against its option data: syntax, unknown groups and options, deprecated names,
//! options deprecated for removal, values against their types (after `$name` substitution), and keys
//! written twice. Every finding is `file:line: [group] option: message`.

use std::collections::{BTreeMap, BTreeSet};

use super::groups::{self, SectionOptions, Sections};
use super::ini::{self, Assignment, IniFile, normalize_group};
use super::schema::{Opt, Schema};
use super::values;
use crate::topology::Diagnostic;

/// What to check one file with.
pub struct Input<'a> {
    /// Repo-relative path, for the findings.
    pub path: &'a str,
    pub text: &'a str,
    pub schema: &'a Schema,
    /// Names the data in messages (`nova.conf option data of 2025.1`).
    pub data_name: &'a str,
    /// keystoneauth1's plugins, one group per plugin name.
    pub auth_plugins: Option<&'a Schema>,
    /// Options the component sets through oslo.config's environment source (`OS_<GROUP>__<OPTION>`),
    /// as upper-cased (group, option) pairs: their values are not known here.
    pub env: &'a BTreeSet<(String, String)>,
}

/// Errors block; warnings (deprecations, repeated keys) do not.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// The sections of a file that are no group of the data but are named by another option (cinder backends,
/// glance stores, dynamic groups): oslo-config-validator cannot know them and is told to skip them.
pub fn dynamic_sections(text: &str, schema: &Schema) -> Vec<String> {
    let (file, _) = ini::parse(text);
    let sections = groups::resolve(&file, schema);
    let dynamic: BTreeSet<String> = sections.dynamic_names().map(str::to_string).collect();
    // The names as the file writes them.
    let mut names: Vec<String> = file
        .sections
        .iter()
        .filter(|s| dynamic.contains(&normalize_group(&s.name)))
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

pub fn check(input: &Input<'_>) -> Findings {
    let (file, syntax) = ini::parse(input.text);
    let mut out = Report {
        path: input.path,
        findings: Findings::default(),
    };
    for error in syntax {
        out.error(error.line, ".", error.message);
    }
    let sections = groups::resolve(&file, input.schema);
    for problem in &sections.problems {
        out.error(
            problem.line,
            &format!("[{}] {}", problem.group, problem.option),
            problem.message.clone(),
        );
    }
    let checker = Checker {
        input,
        file: &file,
        sections: &sections,
    };
    checker.check_sections(&mut out);
    checker.check_assignments(&mut out);
    out.findings
}

struct Report<'a> {
    path: &'a str,
    findings: Findings,
}

impl Report<'_> {
    fn diagnostic(&self, line: usize, field: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.path.to_string(),
            line,
            column: 0,
            field: field.to_string(),
            message,
        }
    }

    fn error(&mut self, line: usize, field: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, field, message.into());
        self.findings.errors.push(d);
    }

    fn warning(&mut self, line: usize, field: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, field, message.into());
        self.findings.warnings.push(d);
    }
}

struct Checker<'a> {
    input: &'a Input<'a>,
    file: &'a IniFile,
    sections: &'a Sections<'a>,
}

/// The most `$name` references followed from one value (oslo.config itself stops at a cycle).
const MAX_SUBSTITUTION_DEPTH: usize = 10;

/// What substitution made of a value.
enum Substituted {
    /// The value, and whether it took in a secret option's value (and so is not to be shown).
    Known(String, bool),
    /// It refers to a value set in the environment (or too deep a chain): not checkable here.
    Unknown,
}

impl Checker<'_> {
    fn check_sections(&self, out: &mut Report<'_>) {
        let mut seen = BTreeSet::new();
        for section in &self.file.sections {
            let normalized = normalize_group(&section.name);
            if !seen.insert(normalized.clone()) {
                continue;
            }
            let field = format!("[{}]", section.name);
            if self.sections.get(&section.name).is_none()
                && self.input.schema.is_deprecated_group(&section.name)
            {
                // Its options are reported one by one: deprecated names warn, the others are unknown.
                continue;
            }
            if self.sections.get(&section.name).is_none() {
                let hint = suggestion(
                    &section.name,
                    self.input.schema.groups().map(|g| g.name.as_str()),
                    "[",
                    "]",
                );
                out.error(
                    section.line,
                    &field,
                    format!(
                        "unknown group: {} has no group [{}]{hint}",
                        self.input.data_name, section.name
                    ),
                );
            } else if normalized != section.name {
                out.warning(
                    section.line,
                    &field,
                    format!(
                        "oslo.config reads this group as [{normalized}]; oslo-config-validator and other tools \
                         do not: write [{normalized}]"
                    ),
                );
            }
        }
    }

    fn check_assignments(&self, out: &mut Report<'_>) {
        // First line of each (group, key), to report a key written twice.
        let mut first: BTreeMap<(String, String), usize> = BTreeMap::new();
        let no_options = SectionOptions {
            parts: Vec::new(),
            named_by: None,
        };
        for assignment in &self.file.assignments {
            let section = match self.sections.get(&assignment.group) {
                Some(section) => section,
                // The old name of a group whose options moved: each is a deprecated name or unknown.
                None if self.input.schema.is_deprecated_group(&assignment.group) => &no_options,
                None => continue, // The unknown group is reported once, at its header.
            };
            let field = format!("[{}] {}", assignment.group, assignment.key);
            let Some(opt) = self.find_option(section, assignment, &field, out) else {
                continue;
            };
            let key = (normalize_group(&assignment.group), opt.dest.clone());
            match first.get(&key) {
                Some(line) if !opt.multi => out.warning(
                    assignment.line,
                    &field,
                    format!("set again (first at line {line}); oslo.config uses the last value"),
                ),
                Some(_) => {}
                None => {
                    first.insert(key, assignment.line);
                }
            }
            if let Some(removal) = &opt.removal {
                let since = removal
                    .since
                    .as_deref()
                    .map(|s| format!(" since {s}"))
                    .unwrap_or_default();
                let reason = removal
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                out.warning(
                    assignment.line,
                    &field,
                    format!(
                        "deprecated for removal{since}{reason} (its value may be ignored in a later release)"
                    ),
                );
            }
            self.check_value(opt, assignment, &field, out);
        }
    }

    /// The option `assignment` sets, or `None` after reporting why there is none.
    fn find_option<'s>(
        &'s self,
        section: &SectionOptions<'s>,
        assignment: &Assignment,
        field: &str,
        out: &mut Report<'_>,
    ) -> Option<&'s Opt> {
        let key = assignment.key.as_str();
        if let Some(opt) = section.option(key) {
            return Some(opt);
        }
        if let Some(replacement) = self.input.schema.deprecated(&assignment.group, key) {
            out.warning(
                assignment.line,
                field,
                format!(
                    "deprecated name: use [{}] {} instead",
                    replacement.group, replacement.option
                ),
            );
            return self
                .sections
                .get(&replacement.group)
                .and_then(|s| s.option(&replacement.option));
        }
        if let Some(opt) = section.option_by_name(key) {
            out.error(
                assignment.line,
                field,
                format!(
                    "oslo.config reads this option from files as `{}`; `{key}` is its command-line spelling and \
                     is ignored here",
                    opt.dest
                ),
            );
            return None;
        }
        if section.loads_auth_plugin() {
            return self.auth_plugin_option(section, assignment, field, out);
        }
        self.unknown_option(section, assignment, field, out);
        None
    }

    /// An option of the keystoneauth plugin `auth_type` names, which keystoneauth loads at run time.
    fn auth_plugin_option<'s>(
        &'s self,
        section: &SectionOptions<'s>,
        assignment: &Assignment,
        field: &str,
        out: &mut Report<'_>,
    ) -> Option<&'s Opt> {
        let key = assignment.key.as_str();
        let group = assignment.group.as_str();
        let Some(plugins) = self.input.auth_plugins else {
            out.error(
                assignment.line,
                field,
                format!(
                    "unknown option: not in {}, and [{group}] loads the options of its authentication plugin \
                     (auth_type) at run time, which need keystoneauth1 option data to check \
                     (keelson.yaml spec.configSchemas[].authPlugins)",
                    self.input.data_name
                ),
            );
            return None;
        };
        let from_env = self.set_in_env(group, "auth_type");
        let plugin = self
            .file
            .last(group, "auth_type")
            .map(|a| a.value.trim().to_string());
        match plugin {
            Some(plugin) => match plugins.group(&plugin) {
                Some(options) => {
                    if let Some(opt) = options.option(key) {
                        return Some(opt);
                    }
                    let hint = suggestion(key, options.options.iter().map(|o| o.dest.as_str()), "`", "`");
                    out.error(
                        assignment.line,
                        field,
                        format!(
                            "unknown option: neither an option of [{group}] in {} nor of the keystoneauth1 \
                             plugin `{plugin}` (auth_type){hint}",
                            self.input.data_name
                        ),
                    );
                }
                None => out.error(
                    assignment.line,
                    field,
                    format!(
                        "unknown option: [{group}] auth_type names `{plugin}`, which is no keystoneauth1 \
                         authentication plugin"
                    ),
                ),
            },
            // The plugin comes from the environment: any plugin's option may be meant.
            None if from_env => {
                if let Some(opt) = plugins.groups().find_map(|g| g.option(key)) {
                    return Some(opt);
                }
                out.error(
                    assignment.line,
                    field,
                    format!("unknown option: no keystoneauth1 authentication plugin has an option `{key}`"),
                );
            }
            None => {
                let hint = suggestion(key, section.keys().into_iter(), "`", "`");
                out.error(
                    assignment.line,
                    field,
                    format!(
                        "unknown option: not an option of [{group}] in {}; were it an authentication plugin's, \
                         [{group}] sets no auth_type to load one{hint}",
                        self.input.data_name
                    ),
                );
            }
        }
        None
    }

    fn unknown_option(
        &self,
        section: &SectionOptions<'_>,
        assignment: &Assignment,
        field: &str,
        out: &mut Report<'_>,
    ) {
        let key = assignment.key.as_str();
        let mut hint = suggestion(key, section.keys().into_iter(), "`", "`");
        if hint.is_empty() {
            let elsewhere: Vec<String> = self
                .input
                .schema
                .groups()
                .filter(|g| g.option(key).is_some())
                .map(|g| format!("[{}]", g.name))
                .take(3)
                .collect();
            if !elsewhere.is_empty() {
                hint = format!("; an option of that name is in {}", elsewhere.join(", "));
            }
        }
        let place = match &section.named_by {
            Some(named_by) => format!(
                "[{}] ({named_by}) takes the options of [{}]",
                assignment.group,
                section
                    .parts
                    .iter()
                    .map(|p| p.group.name.as_str())
                    .collect::<Vec<_>>()
                    .join("], [")
            ),
            None => format!("[{}]", assignment.group),
        };
        out.error(
            assignment.line,
            field,
            format!(
                "unknown option: {} has no such option in {place} (removed or misspelt){hint}",
                self.input.data_name
            ),
        );
    }

    fn set_in_env(&self, group: &str, option: &str) -> bool {
        self.input
            .env
            .contains(&(group.to_uppercase(), option.to_uppercase()))
    }

    fn check_value(&self, opt: &Opt, assignment: &Assignment, field: &str, out: &mut Report<'_>) {
        let (value, secret) = match self.substitute(&assignment.value, &assignment.group, 0) {
            Ok(Substituted::Known(value, secret)) => (value, secret),
            Ok(Substituted::Unknown) => return,
            Err(message) => {
                out.error(assignment.line, field, message);
                return;
            }
        };
        let shown = if secret {
            Opt {
                secret: true,
                ..opt.clone()
            }
        } else {
            opt.clone()
        };
        if let Err(message) = values::check(&shown, &value) {
            let note = if value != assignment.value && !shown.secret {
                format!(" (after substitution of `{}`)", assignment.value)
            } else {
                String::new()
            };
            out.error(assignment.line, field, format!("{message}{note}"));
        }
    }

    /// oslo.config's `$name` / `${group.name}` substitution (`$$` and `\$` escape a dollar): a name is
    /// looked up in the value's own group, then in DEFAULT; a name that is no option fails the service.
    fn substitute(&self, value: &str, group: &str, depth: usize) -> Result<Substituted, String> {
        if !value.contains('$') {
            return Ok(Substituted::Known(value.to_string(), false));
        }
        if depth >= MAX_SUBSTITUTION_DEPTH {
            return Ok(Substituted::Unknown);
        }
        let value = value.replace("\\$", "$$");
        let mut out = String::new();
        let mut secret = false;
        let mut rest = value.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) if is_template_name(&braced[..end]) => (&braced[..end], &braced[end + 1..]),
                    _ => ("", after),
                }
            } else {
                let len = template_name_len(after);
                (&after[..len], &after[len..])
            };
            if name.is_empty() {
                // Not a reference: Python's safe_substitute leaves it as written.
                out.push('$');
                rest = after;
                continue;
            }
            match self.lookup(name, group, depth)? {
                Substituted::Known(v, s) => {
                    out.push_str(&v);
                    secret |= s;
                }
                Substituted::Unknown => return Ok(Substituted::Unknown),
            }
            rest = tail;
        }
        out.push_str(rest);
        Ok(Substituted::Known(out, secret))
    }

    /// The value `$name` stands for in `group`.
    fn lookup(&self, name: &str, group: &str, depth: usize) -> Result<Substituted, String> {
        let candidates: Vec<(String, &str)> = match name.split_once('.') {
            Some((g, option)) => vec![(g.to_string(), option), ("DEFAULT".to_string(), name)],
            None => vec![(group.to_string(), name), ("DEFAULT".to_string(), name)],
        };
        for (candidate_group, option) in &candidates {
            let Some(opt) = self.sections.get(candidate_group).and_then(|s| s.option(option)) else {
                continue;
            };
            if self.set_in_env(candidate_group, &opt.dest) {
                return Ok(Substituted::Unknown);
            }
            let value = match self.file.last(candidate_group, &opt.dest) {
                Some(assignment) => self.substitute(&assignment.value, candidate_group, depth + 1)?,
                None if opt.computed_default => Substituted::Unknown,
                None => match &opt.default {
                    Some(default) => self.substitute(default, candidate_group, depth + 1)?,
                    None => Substituted::Known(String::new(), false),
                },
            };
            return Ok(match value {
                Substituted::Known(value, secret) => Substituted::Known(value, secret || opt.secret),
                Substituted::Unknown => Substituted::Unknown,
            });
        }
        Err(format!(
            "`${name}` refers to no option (looked up in [{}] and [DEFAULT]); oslo.config fails on it. \
             Write `$$` for a literal dollar sign",
            candidates[0].0
        ))
    }
}

/// Python `string.Template` names: `[_a-z][._a-z0-9]*`, case-insensitive.
fn template_name_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return 0,
    }
    s.char_indices()
        .skip(1)
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(s.len(), |(i, _)| i)
}

fn is_template_name(s: &str) -> bool {
    !s.is_empty() && template_name_len(s) == s.len()
}

/// ` (did you mean X?)` for the closest candidate within two edits, or nothing.
fn suggestion<'c>(word: &str, candidates: impl Iterator<Item = &'c str>, open: &str, close: &str) -> String {
    let lower = word.to_lowercase();
    let best = candidates
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, c)| (*d, c.len()));
    match best {
        Some((_, c)) => format!(" (did you mean {open}{c}{close}?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push((previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
