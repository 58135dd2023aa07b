//! oslo.config files checked against the option data of their OpenStack release.
//!
//! `keelson.yaml` `spec.configSchemas` lists, per release, the option data (`oslo-config-generator --format
//! yaml` output kept in the repository) of each oslo.config file by the file's name at its destination.
//! Every component's config file whose destination name is listed for the release of the component's
//! image is parsed the way oslo.config parses it and checked: unknown groups and options, deprecated
//! names, options deprecated for removal, and each value against its option's type. Errors block the
//! topology; deprecations are warnings. Files whose name is listed for no release (Apache, MariaDB,
//! RabbitMQ, libvirt, Horizon configuration) are not oslo.config files and are left alone.
//!
//! Pure: the snapshot and the validated components in, findings out.

mod check;
mod groups;
pub mod ini;
pub mod schema;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

pub use check::{Findings, Input, check, dynamic_sections};
pub use schema::Schema;

use super::load::read_repo_file;
use super::spec::ConfigSchemaSet;
use super::{Component, Diagnostic};
use crate::source::Snapshot;
use crate::yaml::{Location, YamlError};

/// One config file checked against option data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckedFile {
    /// Repo-relative path of the config file.
    pub source: String,
    /// Repo-relative path of the option data.
    pub schema: String,
    pub release: String,
}

/// Everything the check found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub checked: Vec<CheckedFile>,
}

/// Where a field of a Keelson document is written: `(file, field path) -> location`.
pub type Locate<'a> = dyn Fn(&str, &str) -> Location + 'a;

/// One release's data, loaded.
struct Release {
    /// Index in `spec.configSchemas`.
    index: usize,
    files: BTreeMap<String, (String, Arc<Schema>)>,
    auth_plugins: Option<Arc<Schema>>,
}

/// Checks the config files of `components` against `sets`. `default_tag` is the topology's image tag, the
/// release of components whose own image names none.
pub fn check_topology(
    snapshot: &Snapshot,
    sets: &[ConfigSchemaSet],
    components: &BTreeMap<String, Component>,
    default_tag: &str,
    locate: &Locate<'_>,
) -> Outcome {
    let mut outcome = Outcome::default();
    if sets.is_empty() {
        return outcome;
    }
    let releases = load_sets(snapshot, sets, locate, &mut outcome);
    // Every file name some valid release lists: the oslo.config files of this topology.
    let mut listed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (index, set) in sets.iter().enumerate() {
        if releases.get(&set.release).is_some_and(|r| r.index == index) {
            for name in set.files.keys() {
                listed
                    .entry(name.as_str())
                    .or_default()
                    .push(set.release.as_str());
            }
        }
    }
    for component in components.values() {
        check_component(component, &releases, &listed, default_tag, locate, &mut outcome);
    }
    outcome.checked.sort();
    outcome.checked.dedup();
    outcome
}

fn diag(file: &str, at: Location, field: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        field: field.to_string(),
        message: message.into(),
    }
}

fn data_diag(path: &str, error: YamlError) -> Diagnostic {
    match error {
        YamlError::Syntax { location, message } => diag(
            path,
            location,
            ".",
            format!("option data is not valid YAML: {message}"),
        ),
        YamlError::Shape {
            location,
            path: field,
            message,
        } => diag(
            path,
            location,
            &field,
            format!("not oslo-config-generator option data: {message}"),
        ),
        YamlError::Write { message } => diag(path, Location::START, ".", message),
    }
}

/// Parsed option data by the SHA-256 of its text: the daemon loads the same data on every pass, and it is
/// the largest part of a topology.
static PARSED: Mutex<BTreeMap<[u8; 32], Arc<Schema>>> = Mutex::new(BTreeMap::new());
/// More distinct data files than this in one process (many topologies, many releases) start the cache over.
const PARSED_LIMIT: usize = 256;

fn parse_cached(text: &str) -> Result<Arc<Schema>, YamlError> {
    let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    if let Some(schema) = PARSED.lock().ok().and_then(|cache| cache.get(&key).cloned()) {
        return Ok(schema);
    }
    let schema = Arc::new(schema::parse(text)?);
    if let Ok(mut cache) = PARSED.lock() {
        if cache.len() >= PARSED_LIMIT {
            cache.clear();
        }
        cache.insert(key, schema.clone());
    }
    Ok(schema)
}

/// Whether `release` is a release series: `YYYY.N` or `master`.
fn is_release(release: &str) -> bool {
    release == "master" || series(release).as_deref() == Some(release)
}

fn load_sets(
    snapshot: &Snapshot,
    sets: &[ConfigSchemaSet],
    locate: &Locate<'_>,
    outcome: &mut Outcome,
) -> BTreeMap<String, Release> {
    const KEELSON: &str = super::TOPOLOGY_FILE;
    let mut cache: BTreeMap<String, Option<Arc<Schema>>> = BTreeMap::new();
    let mut load = |path: &str, field: &str, outcome: &mut Outcome| -> Option<Arc<Schema>> {
        if let Some(cached) = cache.get(path) {
            return cached.clone();
        }
        let schema = match read_repo_file(snapshot, path) {
            Err(e) => {
                outcome
                    .errors
                    .push(diag(KEELSON, locate(KEELSON, field), field, e));
                None
            }
            Ok(text) => match parse_cached(text) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    outcome.errors.push(data_diag(path, e));
                    None
                }
            },
        };
        cache.insert(path.to_string(), schema.clone());
        schema
    };
    let mut releases = BTreeMap::new();
    for (index, set) in sets.iter().enumerate() {
        let base = format!("spec.configSchemas[{index}]");
        let mut ok = true;
        if !is_release(&set.release) {
            let field = format!("{base}.release");
            outcome.errors.push(diag(
                KEELSON,
                locate(KEELSON, &field),
                &field,
                format!(
                    "`{}` is not an OpenStack release series such as `2025.1`",
                    set.release
                ),
            ));
            ok = false;
        } else if let Some(Release { index: first, .. }) = releases.get(&set.release) {
            let field = format!("{base}.release");
            outcome.errors.push(diag(
                KEELSON,
                locate(KEELSON, &field),
                &field,
                format!(
                    "release {} is already listed at spec.configSchemas[{first}]",
                    set.release
                ),
            ));
            ok = false;
        }
        if set.files.is_empty() {
            let field = format!("{base}.files");
            outcome.errors.push(diag(
                KEELSON,
                locate(KEELSON, &field),
                &field,
                "lists no option data",
            ));
        }
        let mut files = BTreeMap::new();
        for (name, path) in &set.files {
            let field = format!("{base}.files.{name}");
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                outcome.errors.push(diag(
                    KEELSON,
                    locate(KEELSON, &field),
                    &field,
                    format!(
                        "`{name}` must be a config file's name at its destination (`nova.conf`), not a path"
                    ),
                ));
                continue;
            }
            if let Some(schema) = load(path, &field, outcome) {
                files.insert(name.clone(), (path.clone(), schema));
            }
        }
        let auth_plugins = set.auth_plugins.as_ref().and_then(|path| {
            let schema = load(path, &format!("{base}.authPlugins"), outcome);
            if schema.as_ref().is_some_and(|s| s.groups().next().is_none()) {
                let field = format!("{base}.authPlugins");
                outcome.errors.push(diag(
                    KEELSON,
                    locate(KEELSON, &field),
                    &field,
                    format!("`{path}` describes no authentication plugin"),
                ));
            }
            schema
        });
        if ok {
            releases.insert(
                set.release.clone(),
                Release {
                    index,
                    files,
                    auth_plugins,
                },
            );
        }
    }
    releases
}

/// The name a config file has at its destination.
fn dest_name(dest: &str) -> &str {
    dest.rsplit('/').next().unwrap_or(dest)
}

/// `(GROUP, OPTION)` for an oslo.config environment variable `OS_<GROUP>__<OPTION>`.
fn env_option(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("OS_")?;
    let (group, option) = rest.split_once("__")?;
    (!group.is_empty() && !option.is_empty()).then(|| (group.to_string(), option.to_string()))
}

fn check_component(
    component: &Component,
    releases: &BTreeMap<String, Release>,
    listed: &BTreeMap<&str, Vec<&str>>,
    default_tag: &str,
    locate: &Locate<'_>,
    outcome: &mut Outcome,
) {
    let spec = &component.spec;
    // Every environment variable of the workload and its jobs: they all read the same files.
    let env_vars: Vec<(String, &str)> = spec
        .env
        .iter()
        .enumerate()
        .map(|(i, var)| (format!("spec.env[{i}].name"), var.name.as_str()))
        .chain(spec.jobs.iter().enumerate().flat_map(|(j, job)| {
            job.env
                .iter()
                .enumerate()
                .map(move |(i, var)| (format!("spec.jobs[{j}].env[{i}].name"), var.name.as_str()))
        }))
        .collect();
    let env: BTreeSet<(String, String)> = env_vars.iter().filter_map(|(_, name)| env_option(name)).collect();
    let release = image_series(&component.image).or_else(|| tag_series(default_tag));
    let mut used: Vec<(Arc<Schema>, Option<Arc<Schema>>, String)> = Vec::new();
    for (i, file) in spec.config_files.iter().enumerate() {
        let name = dest_name(&file.dest);
        let Some(listed_for) = listed.get(name) else {
            continue;
        };
        let field = format!("spec.configFiles[{i}].dest");
        let found = release
            .as_deref()
            .and_then(|r| releases.get(r).map(|set| (r, set)))
            .and_then(|(r, set)| set.files.get(name).map(|data| (r, set, data)));
        let Some((release, set, (schema_path, schema))) = found else {
            // A listed file name whose data failed to load is reported where it is listed.
            if release.as_deref().is_some_and(|r| listed_for.contains(&r)) {
                continue;
            }
            // Checking it against another release's options would be wrong both ways (new options refused,
            // removed ones accepted); an upgrade is not blocked for want of data, but nobody is told it was
            // checked either.
            let runs = match &release {
                Some(r) => format!("release {r}"),
                None => format!("an image whose tag names no release (`{}`)", component.image),
            };
            outcome.warnings.push(diag(
                &component.file,
                locate(&component.file, &field),
                &field,
                format!(
                    "`{}` is not checked: `{name}` has option data for {} only (keelson.yaml \
                     spec.configSchemas), and this component runs {runs}; generate the data of its release \
                     (scripts/generate-oslo-schemas.sh) and list it",
                    file.source,
                    listed_for.join(", ")
                ),
            ));
            continue;
        };
        let data_name = format!("{name} option data of {release}");
        let findings = check::check(&Input {
            path: &file.source,
            text: component.config_contents.get(i).map(String::as_str).unwrap_or(""),
            schema,
            data_name: &data_name,
            auth_plugins: set.auth_plugins.as_deref(),
            env: &env,
        });
        outcome.errors.extend(findings.errors);
        outcome.warnings.extend(findings.warnings);
        outcome.checked.push(CheckedFile {
            source: file.source.clone(),
            schema: schema_path.clone(),
            release: release.to_string(),
        });
        used.push((schema.clone(), set.auth_plugins.clone(), data_name));
    }
    if used.is_empty() {
        return;
    }
    for (field, name) in &env_vars {
        let Some((group, option)) = env_option(name) else {
            continue;
        };
        let known = used
            .iter()
            .any(|(schema, plugins, _)| env_is_known(schema, plugins.as_deref(), &group, &option));
        if !known {
            let data: Vec<&str> = used.iter().map(|(_, _, name)| name.as_str()).collect();
            outcome.errors.push(diag(
                &component.file,
                locate(&component.file, field),
                field,
                format!(
                    "`{name}` is read by oslo.config as [{}] {}, which is no option in {}",
                    group.to_lowercase(),
                    option.to_lowercase(),
                    data.join(", ")
                ),
            ));
        }
    }
}

fn env_is_known(schema: &Schema, plugins: Option<&Schema>, group: &str, option: &str) -> bool {
    let Some(data) = schema.groups().find(|g| g.name.to_uppercase() == group) else {
        return false;
    };
    let has = |g: &schema::Group| g.options.iter().any(|o| o.dest.to_uppercase() == option);
    has(data) || (data.loads_auth_plugin() && plugins.is_some_and(|p| p.groups().any(has)))
}

/// OpenStack releases that Kolla tags by name.
const RELEASE_NAMES: &[(&str, &str)] = &[
    ("stein", "2019.1"),
    ("train", "2019.2"),
    ("ussuri", "2020.1"),
    ("victoria", "2020.2"),
    ("wallaby", "2021.1"),
    ("xena", "2021.2"),
    ("yoga", "2022.1"),
    ("zed", "2022.2"),
    ("antelope", "2023.1"),
    ("bobcat", "2023.2"),
    ("caracal", "2024.1"),
    ("dalmatian", "2024.2"),
    ("epoxy", "2025.1"),
    ("flamingo", "2025.2"),
    ("gazpacho", "2026.1"),
];

/// The release series a `YYYY.N...` string starts with.
fn series(text: &str) -> Option<String> {
    let (year, rest) = text.split_once('.')?;
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let year_ok = year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit());
    (year_ok && (1..=2).contains(&number.len())).then(|| format!("{year}.{number}"))
}

/// The release series a Kolla tag was built from: `2025.1-ubuntu-noble` -> `2025.1`, `epoxy` -> `2025.1`.
pub fn tag_series(tag: &str) -> Option<String> {
    let head = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
    if head == "master" {
        return Some(head);
    }
    if let Some((_, series)) = RELEASE_NAMES.iter().find(|(name, _)| *name == head) {
        return Some(series.to_string());
    }
    series(&head).filter(|s| *s == head)
}

/// The release series of an image reference's tag.
fn image_series(image: &str) -> Option<String> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, tag)| tag)?;
    tag_series(tag)
}

#[cfg(test)]
mod tests;
