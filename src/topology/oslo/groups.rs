//! Which options a section of a file may hold. Most sections are groups the option data declares; some
//! are named by another option's value and take the options of a sample group:
//! - oslo.config's dynamic groups: a sample group with `dynamic_group_owner: X` stands for every group
//!   `[DEFAULT] X` names, with the driver options its `driver_option` picks (`config_source`);
//! - cinder's backends: `[DEFAULT] enabled_backends = lvm-1,ceph` names sections holding the options of
//!   `[backend_defaults]`;
//! - glance's stores: `[DEFAULT] enabled_backends = fast:rbd,local:file` names sections holding the options
//!   of their store type's group (`rbd`, or `glance.store.rbd.store`), and glance's reserved
//!   `os_glance_staging_store` / `os_glance_tasks_store` take the `file` store's;
//! - keystoneauth's `auth_section = name` moves a group's authentication options to `[name]`.

use std::collections::{BTreeMap, BTreeSet};

use super::ini::{IniFile, normalize_group};
use super::schema::{Group, Kind, Opt, Schema};

/// glance's stores that glance itself configures with the `file` store's options.
const GLANCE_RESERVED_STORES: [&str; 2] = ["os_glance_staging_store", "os_glance_tasks_store"];

/// Part of a section's options: a data group, or the named subset of one.
#[derive(Debug, Clone)]
pub struct Part<'s> {
    pub group: &'s Group,
    /// Only these options (by dest) of `group`; all when `None`.
    pub only: Option<BTreeSet<String>>,
}

/// The options one section may hold.
#[derive(Debug, Clone)]
pub struct SectionOptions<'s> {
    pub parts: Vec<Part<'s>>,
    /// Why a section that is no group of the data has options (`named by [DEFAULT] enabled_backends`).
    pub named_by: Option<String>,
}

impl<'s> SectionOptions<'s> {
    pub fn option(&self, key: &str) -> Option<&'s Opt> {
        self.parts.iter().find_map(|part| {
            let allowed = part.only.as_ref().is_none_or(|only| only.contains(key));
            part.group.option(key).filter(|_| allowed)
        })
    }

    /// An option the generator names `name` while files spell it otherwise (`auth-url`).
    pub fn option_by_name(&self, name: &str) -> Option<&'s Opt> {
        self.parts.iter().find_map(|part| {
            part.group
                .option_by_name(name)
                .filter(|o| part.only.as_ref().is_none_or(|only| only.contains(&o.dest)))
        })
    }

    pub fn loads_auth_plugin(&self) -> bool {
        self.option("auth_type").is_some() && self.option("auth_section").is_some()
    }

    /// Every key the section may hold, for suggestions.
    pub fn keys(&self) -> Vec<&'s str> {
        let mut keys = Vec::new();
        for part in &self.parts {
            for opt in &part.group.options {
                if part.only.as_ref().is_none_or(|only| only.contains(&opt.dest)) {
                    keys.push(opt.dest.as_str());
                }
            }
        }
        keys
    }
}

/// A problem with a value that names sections, reported at that value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingProblem {
    pub line: usize,
    pub group: String,
    pub option: String,
    pub message: String,
}

/// The sections of `file` that have options, by normalized name.
pub struct Sections<'s> {
    map: BTreeMap<String, SectionOptions<'s>>,
    pub problems: Vec<NamingProblem>,
}

impl<'s> Sections<'s> {
    pub fn get(&self, name: &str) -> Option<&SectionOptions<'s>> {
        self.map.get(&normalize_group(name))
    }

    /// Names of the sections that are no group of the data but named by another option.
    pub fn dynamic_names(&self) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .filter(|(_, s)| s.named_by.is_some())
            .map(|(name, _)| name.as_str())
    }

    fn add(&mut self, name: &str, part: Part<'s>, named_by: String) {
        let entry = self
            .map
            .entry(normalize_group(name))
            .or_insert_with(|| SectionOptions {
                parts: Vec::new(),
                named_by: Some(named_by),
            });
        entry.parts.push(part);
    }
}

/// Comma-separated names, blanks dropped.
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

pub fn resolve<'s>(file: &IniFile, schema: &'s Schema) -> Sections<'s> {
    let mut sections = Sections {
        map: schema
            .groups()
            .map(|g| {
                let options = SectionOptions {
                    parts: vec![Part { group: g, only: None }],
                    named_by: None,
                };
                (normalize_group(&g.name), options)
            })
            .collect(),
        problems: Vec::new(),
    };
    oslo_dynamic_groups(file, schema, &mut sections);
    enabled_backends(file, schema, &mut sections);
    auth_sections(file, &mut sections);
    sections
}

fn oslo_dynamic_groups<'s>(file: &IniFile, schema: &'s Schema, sections: &mut Sections<'s>) {
    let samples: Vec<&Group> = schema
        .groups()
        .filter(|g| g.dynamic_group_owner.is_some())
        .collect();
    let owners: BTreeSet<&str> = samples
        .iter()
        .filter_map(|g| g.dynamic_group_owner.as_deref())
        .collect();
    for owner in owners {
        let Some(assignment) = file.last("DEFAULT", owner) else {
            continue;
        };
        for name in list_items(&assignment.value) {
            let candidates: Vec<&Group> = samples
                .iter()
                .copied()
                .filter(|g| g.dynamic_group_owner.as_deref() == Some(owner))
                .collect();
            let driver = candidates
                .iter()
                .find_map(|g| g.driver_option.as_deref())
                .and_then(|option| file.last(name, option))
                .map(|a| a.value.trim().to_string());
            let template = driver
                .as_deref()
                .and_then(|d| candidates.iter().find(|g| g.driver_opts.contains_key(d)))
                .or(candidates.first())
                .copied();
            let Some(template) = template else { continue };
            let only = match &driver {
                Some(driver) if !template.driver_opts.is_empty() => {
                    let driver_specific: BTreeSet<&String> =
                        template.driver_opts.values().flatten().collect();
                    let mut only: BTreeSet<String> = template
                        .options
                        .iter()
                        .filter(|o| !driver_specific.contains(&o.name))
                        .map(|o| o.dest.clone())
                        .collect();
                    for opt_name in template.driver_opts.get(driver).into_iter().flatten() {
                        if let Some(opt) = template.option_by_name(opt_name) {
                            only.insert(opt.dest.clone());
                        }
                    }
                    Some(only)
                }
                _ => None,
            };
            sections.add(
                name,
                Part {
                    group: template,
                    only,
                },
                format!("named by [DEFAULT] {owner}"),
            );
        }
    }
}

fn enabled_backends<'s>(file: &IniFile, schema: &'s Schema, sections: &mut Sections<'s>) {
    let Some(option) = schema.group("DEFAULT").and_then(|g| g.option("enabled_backends")) else {
        return;
    };
    let named_by = "named by [DEFAULT] enabled_backends".to_string();
    match option.kind {
        Kind::List => {
            let Some(template) = schema.group("backend_defaults") else {
                return;
            };
            let Some(assignment) = file.last("DEFAULT", "enabled_backends") else {
                return;
            };
            for name in list_items(&assignment.value) {
                sections.add(
                    name,
                    Part {
                        group: template,
                        only: None,
                    },
                    named_by.clone(),
                );
            }
        }
        Kind::Dict => {
            if let Some(file_store) = schema.group("file") {
                for reserved in GLANCE_RESERVED_STORES {
                    sections.add(
                        reserved,
                        Part {
                            group: file_store,
                            only: None,
                        },
                        "configured by glance for its own use".to_string(),
                    );
                }
            }
            let Some(assignment) = file.last("DEFAULT", "enabled_backends") else {
                return;
            };
            for pair in list_items(&assignment.value) {
                let Some((name, store_type)) = pair.split_once(':') else {
                    continue; // The dict check reports the malformed value.
                };
                let (name, store_type) = (name.trim(), store_type.trim());
                let template = schema
                    .group(store_type)
                    .or_else(|| schema.group(&format!("glance.store.{store_type}.store")));
                match template {
                    Some(template) => sections.add(name, Part { group: template, only: None }, named_by.clone()),
                    None => sections.problems.push(NamingProblem {
                        line: assignment.line,
                        group: assignment.group.clone(),
                        option: "enabled_backends".into(),
                        message: format!(
                            "store `{name}` has the type `{store_type}`, which the option data has no options \
                             for (no group [{store_type}] or [glance.store.{store_type}.store])"
                        ),
                    }),
                }
            }
        }
        _ => {}
    }
}

/// `auth_section = name` in a group that loads an authentication plugin: `[name]` holds its options.
fn auth_sections(file: &IniFile, sections: &mut Sections<'_>) {
    let mut added = Vec::new();
    for assignment in file.assignments.iter().filter(|a| a.key == "auth_section") {
        let target = assignment.value.trim();
        if target.is_empty() || sections.get(target).is_some() {
            continue;
        }
        let Some(source) = sections.get(&assignment.group) else {
            continue;
        };
        if !source.loads_auth_plugin() {
            continue;
        }
        let parts: Vec<Part<'_>> = source
            .parts
            .iter()
            .map(|p| Part {
                group: p.group,
                only: Some(["auth_type".to_string(), "auth_section".to_string()].into()),
            })
            .collect();
        added.push((
            target.to_string(),
            parts,
            format!("named by [{}] auth_section", assignment.group),
        ));
    }
    for (name, parts, named_by) in added {
        for part in parts {
            sections.add(&name, part, named_by.clone());
        }
    }
}
