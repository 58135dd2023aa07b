//! The Kolla way of delivering configuration: every container reads
//! `/var/lib/kolla/config_files/config.json`, whose `command` `kolla_start` execs after
//! `kolla_set_configs` copied each `config_files` entry from the mounted directory to its `dest`
//! with the given owner and mode (strategy `COPY_ALWAYS`: on every container start).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::RenderError;
use crate::topology::{Component, ConfigFile};

/// Where the component's ConfigMap is mounted in every Kolla container.
pub const CONFIG_DIR: &str = "/var/lib/kolla/config_files";
/// The file `kolla_set_configs` reads inside [`CONFIG_DIR`].
pub const CONFIG_JSON: &str = "config.json";
/// Environment that makes `kolla_set_configs` copy the files on every start.
pub const STRATEGY_ENV: &str = "KOLLA_CONFIG_STRATEGY";
pub const STRATEGY_VALUE: &str = "COPY_ALWAYS";
/// Entry point of Kolla images.
pub const START_COMMAND: &str = "kolla_start";

/// A config file placed under a ConfigMap key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedFile<'a> {
    pub key: String,
    pub file: &'a ConfigFile,
    pub content: &'a str,
}

/// The ConfigMap key holding a job's config.json.
pub fn job_config_key(job: &str) -> String {
    format!("{job}.{CONFIG_JSON}")
}

/// Assigns each config file a ConfigMap key: its base name, or, when that is taken (by another file
/// or by a generated config.json), its whole source path made key-safe. Deterministic, so the same
/// files always land under the same keys.
pub fn key_files(component: &Component) -> Result<Vec<KeyedFile<'_>>, RenderError> {
    let files = &component.spec.config_files;
    if files.len() != component.config_contents.len() {
        return Err(RenderError::Inconsistent {
            component: component.name.clone(),
            reason: format!(
                "{} config files declared but {} contents loaded",
                files.len(),
                component.config_contents.len()
            ),
        });
    }
    let mut reserved: BTreeSet<String> = BTreeSet::new();
    reserved.insert(CONFIG_JSON.to_string());
    for job in &component.spec.jobs {
        reserved.insert(job_config_key(&job.name));
    }
    let mut basename_count: BTreeMap<String, usize> = BTreeMap::new();
    for file in files {
        *basename_count
            .entry(sanitize(basename(&file.source)))
            .or_default() += 1;
    }
    let mut used = reserved.clone();
    let mut out = Vec::with_capacity(files.len());
    for (file, content) in files.iter().zip(&component.config_contents) {
        let base = sanitize(basename(&file.source));
        let key = if !reserved.contains(&base) && basename_count.get(&base) == Some(&1) && !base.is_empty() {
            base
        } else {
            sanitize(&file.source)
        };
        if key.is_empty() || key.len() > 253 || !used.insert(key.clone()) {
            return Err(RenderError::ConfigKey {
                component: component.name.clone(),
                source_path: file.source.clone(),
                key,
            });
        }
        out.push(KeyedFile { key, file, content });
    }
    Ok(out)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// ConfigMap keys allow `[-._a-zA-Z0-9]`; anything else becomes `-`. Leading dots are dropped so a
/// key never is `.` or `..`.
fn sanitize(path: &str) -> String {
    let mapped: String = path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_start_matches('.').to_string()
}

/// One `permissions` entry: a writable data directory handed to the service user, as Kolla's own
/// deployment tooling does for `/var/lib/<service>`, because a fresh volume is owned by root.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub path: String,
    pub owner: String,
}

/// The config.json for one container.
pub fn config_json(command: &str, files: &[KeyedFile<'_>], permissions: &[Permission]) -> Value {
    let config_files: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "source": format!("{CONFIG_DIR}/{}", f.key),
                "dest": f.file.dest,
                "owner": f.file.owner,
                "perm": f.file.perm,
            })
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("command".into(), Value::String(command.to_string()));
    doc.insert("config_files".into(), Value::Array(config_files));
    if !permissions.is_empty() {
        let perms: Vec<Value> = permissions
            .iter()
            .map(|p| json!({"path": p.path, "owner": p.owner, "recurse": true}))
            .collect();
        doc.insert("permissions".into(), Value::Array(perms));
    }
    Value::Object(doc)
}

/// `kolla_start` runs `exec ${CMD} ${ARGS}`: the command line is split on whitespace with no
/// quoting, so an argument holding whitespace cannot be expressed and is refused.
pub fn command_line(component: &str, command: &str, args: &[String]) -> Result<String, RenderError> {
    let mut line = command.trim().to_string();
    if line.is_empty() {
        return Err(RenderError::Command {
            component: component.to_string(),
            reason: "command is empty".into(),
        });
    }
    for arg in args {
        if arg.is_empty() || arg.chars().any(char::is_whitespace) {
            return Err(RenderError::Command {
                component: component.to_string(),
                reason: format!(
                    "argument {arg:?} is empty or holds whitespace, which kolla_start would split"
                ),
            });
        }
        line.push(' ');
        line.push_str(arg);
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::component;

    fn file(source: &str, dest: &str) -> ConfigFile {
        ConfigFile {
            source: source.into(),
            dest: dest.into(),
            owner: "nova".into(),
            perm: "0600".into(),
        }
    }

    #[test]
    fn keys_are_basenames_unless_they_clash() {
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["config/nova/nova.conf"], vec!["nova.conf"]),
            (
                vec!["config/nova/policy.yaml", "config/placement/policy.yaml"],
                vec!["config-nova-policy.yaml", "config-placement-policy.yaml"],
            ),
            (vec!["config/x/config.json"], vec!["config-x-config.json"]),
            (
                vec!["config/x/db-sync.config.json"],
                vec!["config-x-db-sync.config.json"],
            ),
            (vec!["config/x/we ird+.conf"], vec!["we-ird-.conf"]),
            (vec!["config/x/.hidden"], vec!["hidden"]),
        ];
        for (sources, expected) in cases {
            let mut c = component("nova-api");
            c.spec.jobs.push(crate::render::tests::job(
                "db-sync",
                crate::topology::JobPhase::Pre,
            ));
            c.job_images.push("img".into());
            c.spec.config_files = sources.iter().map(|s| file(s, "/etc/x")).collect();
            c.config_contents = sources.iter().map(|_| "x".to_string()).collect();
            let keys: Vec<String> = key_files(&c).unwrap().into_iter().map(|k| k.key).collect();
            assert_eq!(keys, expected, "sources {sources:?}");
        }
    }

    #[test]
    fn duplicate_sources_and_missing_contents_are_errors() {
        let mut c = component("nova-api");
        c.spec.config_files = vec![file("config/a.conf", "/etc/a"), file("config/a.conf", "/etc/b")];
        c.config_contents = vec!["1".into(), "2".into()];
        assert!(matches!(key_files(&c), Err(RenderError::ConfigKey { .. })));
        c.config_contents.pop();
        assert!(matches!(key_files(&c), Err(RenderError::Inconsistent { .. })));
    }

    #[test]
    fn config_json_lists_files_and_permissions() {
        let f = file("config/nova/nova.conf", "/etc/nova/nova.conf");
        let keyed = vec![KeyedFile {
            key: "nova.conf".into(),
            file: &f,
            content: "",
        }];
        let perms = vec![Permission {
            path: "/var/lib/nova".into(),
            owner: "nova".into(),
        }];
        let doc = config_json("nova-api", &keyed, &perms);
        assert_eq!(
            doc,
            json!({
                "command": "nova-api",
                "config_files": [{"source": "/var/lib/kolla/config_files/nova.conf", "dest": "/etc/nova/nova.conf", "owner": "nova", "perm": "0600"}],
                "permissions": [{"path": "/var/lib/nova", "owner": "nova", "recurse": true}],
            })
        );
        assert!(config_json("x", &[], &[]).get("permissions").is_none());
    }

    #[test]
    fn command_lines_refuse_unsplittable_arguments() {
        let ok = command_line("c", " apache2 ", &["-DFOREGROUND".into()]).unwrap();
        assert_eq!(ok, "apache2 -DFOREGROUND");
        for bad in [
            vec!["a b".to_string()],
            vec![String::new()],
            vec!["tab\there".to_string()],
        ] {
            assert!(command_line("c", "x", &bad).is_err(), "{bad:?}");
        }
        assert!(command_line("c", "  ", &[]).is_err());
    }
}
