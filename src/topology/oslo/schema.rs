//! Option data as `oslo-config-generator --format yaml` writes it (or the reduction of it that
//! scripts/generate-oslo-schemas.sh keeps): per group, each option's name, type, default, choices,
//! bounds and deprecation, plus the deprecated names that still map to an option.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ini::normalize_group;
use crate::yaml::{self, YamlError};

/// What an option accepts, from the generator's `type` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
    Float,
    Port,
    List,
    Dict,
    /// A MultiStrOpt: every repetition of the key is one more value.
    MultiString,
    IpAddress,
    Hostname,
    HostAddress,
    HostDomain,
    Uri,
    Range,
    /// A type the data does not describe well enough to check (custom types, `unknown value`).
    Other(String),
}

impl Kind {
    fn from_type_name(name: &str) -> Kind {
        match name {
            "string value" => Kind::String,
            "boolean value" => Kind::Boolean,
            "integer value" => Kind::Integer,
            "floating point value" => Kind::Float,
            "port value" | "port" => Kind::Port,
            "list value" => Kind::List,
            "dict value" => Kind::Dict,
            "multi valued" => Kind::MultiString,
            "IP address value" => Kind::IpAddress,
            "hostname value" => Kind::Hostname,
            "host address value" => Kind::HostAddress,
            "host domain value" => Kind::HostDomain,
            "uri value" => Kind::Uri,
            "range value" => Kind::Range,
            other => Kind::Other(other.to_string()),
        }
    }
}

/// Why and since when an option is going away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub since: Option<String>,
    pub reason: Option<String>,
}

/// One option of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    /// The generator's name; command-line style (`auth-url`) for some library options.
    pub name: String,
    /// The key a config file sets (`auth_url`): oslo.config reads files by this name.
    pub dest: String,
    pub kind: Kind,
    /// Several values, one per repetition of the key (MultiStrOpt, MultiOpt).
    pub multi: bool,
    /// The default as oslo.config would substitute it into `$name` references.
    pub default: Option<String>,
    /// The default is computed where the service runs (a path, the host name): the data shows a
    /// `sample_default` instead, and `default` is not the value.
    pub computed_default: bool,
    pub choices: Vec<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Never echoed in a message.
    pub secret: bool,
    pub removal: Option<Removal>,
}

/// One group's options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The name as the data spells it.
    pub name: String,
    pub options: Vec<Opt>,
    by_dest: BTreeMap<String, usize>,
    by_name: BTreeMap<String, usize>,
    /// Set on a sample group that stands for groups named by this option's values (oslo.config's
    /// dynamic groups, e.g. `config_source`).
    pub dynamic_group_owner: Option<String>,
    /// The option whose value picks which `driver_opts` apply.
    pub driver_option: Option<String>,
    pub driver_opts: BTreeMap<String, Vec<String>>,
}

impl Group {
    /// The option a file sets with `key` (its dest).
    pub fn option(&self, key: &str) -> Option<&Opt> {
        self.by_dest.get(key).map(|&i| &self.options[i])
    }

    /// The option the generator calls `name` (`auth-url`), when that differs from how files spell it.
    pub fn option_by_name(&self, name: &str) -> Option<&Opt> {
        self.by_name.get(name).map(|&i| &self.options[i])
    }

    /// Whether keystoneauth loads this group's authentication options at run time (by `auth_type`).
    pub fn loads_auth_plugin(&self) -> bool {
        self.option("auth_type").is_some() && self.option("auth_section").is_some()
    }
}

/// Where a deprecated name's value goes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub group: String,
    /// As a file spells it.
    pub option: String,
}

/// All option data of one oslo.config file (or of keystoneauth's plugins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    /// By normalized group name (`DEFAULT`, or lower case).
    groups: BTreeMap<String, Group>,
    /// (normalized group, name as a file spells it) -> replacement.
    deprecated: BTreeMap<(String, String), Replacement>,
    /// The generator namespaces the data was made from.
    pub namespaces: Vec<String>,
}

impl Schema {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(&normalize_group(name))
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The replacement of a deprecated name.
    pub fn deprecated(&self, group: &str, key: &str) -> Option<&Replacement> {
        self.deprecated.get(&(normalize_group(group), key.to_string()))
    }

    /// Whether `group` is the old name of options that moved to other groups.
    pub fn is_deprecated_group(&self, group: &str) -> bool {
        let group = normalize_group(group);
        self.deprecated.keys().any(|(g, _)| *g == group)
    }
}

/// The generator's document. Unknown fields are allowed: the generator writes many this check does not use.
#[derive(Debug, Deserialize)]
struct RawData {
    options: BTreeMap<String, RawGroup>,
    #[serde(default)]
    deprecated_options: BTreeMap<String, Vec<RawDeprecated>>,
    #[serde(default)]
    generator_options: Option<RawGeneratorOptions>,
}

#[derive(Debug, Deserialize)]
struct RawGeneratorOptions {
    #[serde(default)]
    namespace: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawGroup {
    #[serde(default)]
    opts: Vec<RawOpt>,
    #[serde(default)]
    dynamic_group_owner: Option<String>,
    #[serde(default)]
    driver_option: Option<String>,
    #[serde(default)]
    driver_opts: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct RawOpt {
    name: String,
    #[serde(default)]
    dest: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    multi: bool,
    #[serde(default)]
    default: serde_yaml::Value,
    #[serde(default)]
    sample_default: serde_yaml::Value,
    /// `[value, description]` pairs (older generators: plain values).
    #[serde(default)]
    choices: Vec<serde_yaml::Value>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    deprecated_for_removal: bool,
    #[serde(default)]
    deprecated_reason: Option<String>,
    #[serde(default)]
    deprecated_since: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawDeprecated {
    name: String,
    replacement_group: String,
    replacement_name: String,
}

/// Parses option data. A shape error names the field path and line inside the data file.
pub fn parse(text: &str) -> Result<Schema, YamlError> {
    let raw: RawData = yaml::from_str_quick(text)?;
    Ok(build(raw))
}

/// How oslo.config renders a default into a `$name` substitution (Python's `str()`).
fn python_str(value: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value;
    match value {
        Value::Null => None,
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Sequence(items) => Some(items.iter().filter_map(python_str).collect::<Vec<_>>().join(",")),
        Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

fn choice_value(choice: &serde_yaml::Value) -> Option<String> {
    match choice {
        serde_yaml::Value::Sequence(pair) => pair.first().and_then(python_str),
        other => python_str(other),
    }
}

fn build(raw: RawData) -> Schema {
    let mut groups = BTreeMap::new();
    for (name, body) in raw.options {
        let mut group = Group {
            name: name.clone(),
            dynamic_group_owner: body.dynamic_group_owner.filter(|s| !s.is_empty()),
            driver_option: body.driver_option.filter(|s| !s.is_empty()),
            driver_opts: body.driver_opts,
            ..Group::default()
        };
        for opt in body.opts {
            let dest = opt.dest.clone().unwrap_or_else(|| opt.name.replace('-', "_"));
            let index = group.options.len();
            group.by_dest.entry(dest.clone()).or_insert(index);
            group.by_name.entry(opt.name.clone()).or_insert(index);
            // Reasons are wrapped help text: one line in a message.
            let one_line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let removal = opt.deprecated_for_removal.then(|| Removal {
                since: opt.deprecated_since.map(one_line).filter(|s| !s.is_empty()),
                reason: opt.deprecated_reason.map(one_line).filter(|s| !s.is_empty()),
            });
            group.options.push(Opt {
                kind: Kind::from_type_name(&opt.type_name),
                multi: opt.multi || opt.type_name == "multi valued",
                default: python_str(&opt.default),
                computed_default: !opt.sample_default.is_null(),
                choices: opt.choices.iter().filter_map(choice_value).collect(),
                min: opt.min,
                max: opt.max,
                secret: opt.secret,
                removal,
                name: opt.name,
                dest,
            });
        }
        groups.insert(normalize_group(&name), group);
    }
    let mut deprecated = BTreeMap::new();
    for (group, entries) in raw.deprecated_options {
        for entry in entries {
            // The replacement is named the generator's way; files spell it by its dest.
            let option = groups
                .get(&normalize_group(&entry.replacement_group))
                .and_then(|g: &Group| g.option_by_name(&entry.replacement_name))
                .map(|o| o.dest.clone())
                .unwrap_or_else(|| entry.replacement_name.replace('-', "_"));
            deprecated
                .entry((normalize_group(&group), entry.name.replace('-', "_")))
                .or_insert(Replacement {
                    group: entry.replacement_group,
                    option,
                });
        }
    }
    Schema {
        groups,
        deprecated,
        namespaces: raw.generator_options.map(|g| g.namespace).unwrap_or_default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small document in the generator's format, with every feature the checks read.
    pub const NOVA_LIKE: &str = r#"
generator_options:
  namespace: [nova.conf, oslo.log]
deprecated_options:
  DEFAULT:
  - name: logfile
    replacement_group: DEFAULT
    replacement_name: log-file
  api:
  - name: old_limit
    replacement_group: api
    replacement_name: max_limit
  osapi_v21:
  - name: project_id_regex
    replacement_group: api
    replacement_name: project_id_regex
options:
  DEFAULT:
    driver_option: ''
    driver_opts: {}
    dynamic_group_owner: ''
    opts:
    - name: debug
      dest: debug
      type: boolean value
      default: false
    - name: log-file
      dest: log_file
      type: string value
      default: null
    - name: state_path
      dest: state_path
      type: string value
      default: /var/lib/nova
    - name: pybasedir
      dest: pybasedir
      type: string value
      default: null
      sample_default: <Path>
    - name: workers
      dest: workers
      type: integer value
      default: null
      min: 1
    - name: listen_port
      dest: listen_port
      type: port value
      default: 8774
      min: 0
      max: 65535
    - name: my_ip
      dest: my_ip
      type: host address value
      default: 10.0.0.1
    - name: enabled_apis
      dest: enabled_apis
      type: list value
      default: [osapi_compute, metadata]
    - name: pci_alias
      dest: pci_alias
      type: multi valued
      default: []
    - name: allocation_ratio
      dest: allocation_ratio
      type: floating point value
      default: 1.0
      min: 0.0
    - name: old_thing
      dest: old_thing
      type: string value
      default: null
      deprecated_for_removal: true
      deprecated_reason: Nothing reads it.
      deprecated_since: '30.0.0'
  api:
    opts:
    - name: max_limit
      dest: max_limit
      type: integer value
      default: 1000
    - name: project_id_regex
      dest: project_id_regex
      type: string value
      default: null
    - name: auth_strategy
      dest: auth_strategy
      type: string value
      default: keystone
      choices:
      - [keystone, Use keystone]
      - [noauth2, Testing only]
  neutron:
    opts:
    - {name: auth_type, dest: auth_type, type: unknown type, default: null}
    - {name: auth_section, dest: auth_section, type: unknown type, default: null}
    - {name: auth-url, dest: auth_url, type: unknown type, default: null}
    - {name: password, dest: password, type: unknown type, default: null, secret: true}
    - {name: metadata_proxy_shared_secret, dest: metadata_proxy_shared_secret, type: string value, default: '', secret: true}
    - {name: url, dest: url, type: uri value, default: null}
"#;

    #[test]
    fn reads_options_types_and_deprecations() {
        let schema = parse(NOVA_LIKE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(schema.namespaces, ["nova.conf", "oslo.log"]);
        let default = schema.group("DEFAULT").expect("DEFAULT");
        assert_eq!(default.option("debug").map(|o| &o.kind), Some(&Kind::Boolean));
        assert_eq!(
            default.option("debug").and_then(|o| o.default.as_deref()),
            Some("False")
        );
        assert_eq!(
            default.option("enabled_apis").and_then(|o| o.default.as_deref()),
            Some("osapi_compute,metadata")
        );
        assert!(default.option("pci_alias").is_some_and(|o| o.multi));
        assert_eq!(default.option("workers").and_then(|o| o.min), Some(1.0));
        assert_eq!(
            default.option("old_thing").and_then(|o| o.removal.clone()),
            Some(Removal {
                since: Some("30.0.0".into()),
                reason: Some("Nothing reads it.".into())
            })
        );
        let api = schema
            .group("API")
            .expect("groups are looked up case-insensitively");
        assert_eq!(
            api.option("auth_strategy").map(|o| o.choices.clone()),
            Some(vec!["keystone".to_string(), "noauth2".to_string()])
        );
        let neutron = schema.group("neutron").expect("neutron");
        assert!(neutron.loads_auth_plugin());
        assert_eq!(
            neutron.option("auth_url").map(|o| o.name.as_str()),
            Some("auth-url")
        );
        assert!(
            neutron.option("auth-url").is_none(),
            "files spell options by their dest"
        );
        assert_eq!(
            schema.deprecated("DEFAULT", "logfile"),
            Some(&Replacement {
                group: "DEFAULT".into(),
                option: "log_file".into()
            })
        );
    }

    #[test]
    fn data_of_the_wrong_shape_names_the_line() {
        let error = parse("options:\n  DEFAULT:\n    opts:\n    - name: x\n").expect_err("type is required");
        assert!(matches!(error, YamlError::Shape { .. }), "{error}");
        assert!(error.to_string().contains("options.DEFAULT.opts[0]"), "{error}");
    }
}
