//! Discovery documents: /version, /api, /apis, /apis/<group>, as a real server serves them (the legacy,
//! unaggregated form; clients that ask for aggregated discovery fall back to it).

use serde_json::{Value, json};

use super::resources::Registry;

/// The Kubernetes version the simulator claims to be (the API it models).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "37";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "emulationMajor": MAJOR,
        "emulationMinor": MINOR,
        "minCompatibilityMajor": MAJOR,
        "minCompatibilityMinor": "36",
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-keelson-sim"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg.groups().iter().map(|(g, vs)| group_entry(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let groups = reg.groups();
    let vs = groups.get(name)?;
    let mut g = group_entry(name, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_list_names_every_builtin_group_with_preferred_version() {
        let reg = Registry::with_builtins();
        let l = group_list(&reg);
        let names: Vec<&str> = l["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for want in [
            "apps",
            "batch",
            "policy",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        assert_eq!(
            group(&reg, "apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(group(&reg, "nope").is_none());
    }
}
