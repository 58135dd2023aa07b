//! The RBAC authorizer, as kube-apiserver's `plugin/pkg/auth/authorizer/rbac` decides: the rules of every
//! ClusterRoleBinding, and of the RoleBindings in the request's namespace, whose subjects name the user;
//! a request is allowed when one rule matches its verb, API group, resource (with subresource), name, or
//! non-resource path.

use serde_json::{Value, json};

use super::super::resources::ResKey;
use super::super::store::Store;
use super::{Attributes, User};

pub const GROUP: &str = "rbac.authorization.k8s.io";

fn key(plural: &str) -> ResKey {
    ResKey {
        group: GROUP.into(),
        plural: plural.into(),
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one subject of a binding in `namespace` ("" for a ClusterRoleBinding) names the user.
fn applies_to(subject: &Value, user: &User, namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn binds(binding: &Value, user: &User, namespace: &str) -> bool {
    binding["subjects"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| applies_to(s, user, namespace)))
}

/// Rules of the role a binding refers to, or the error kube-apiserver reports for a missing one.
fn role_rules(store: &Store, binding: &Value, namespace: &str) -> Result<Vec<Value>, String> {
    let role_ref = &binding["roleRef"];
    let name = role_ref["name"].as_str().unwrap_or("");
    let (plural, ns, singular) = match role_ref["kind"].as_str() {
        Some("ClusterRole") => ("clusterroles", "", "clusterrole"),
        Some("Role") if !namespace.is_empty() => ("roles", namespace, "role"),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    match store.get(&key(plural), ns, name) {
        Some(role) => Ok(role["rules"].as_array().cloned().unwrap_or_default()),
        None => Err(format!("{singular}.{GROUP} {name:?} not found")),
    }
}

/// Every rule that applies to the user in the namespace (cluster-wide rules included), and the errors of
/// bindings whose roles are missing.
pub fn rules_for(store: &Store, user: &User, namespace: &str) -> (Vec<Value>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut visit = |result: Result<Vec<Value>, String>| match result {
        Ok(r) => rules.extend(r),
        Err(e) => errors.push(e),
    };
    for b in store.list(&key("clusterrolebindings"), None) {
        if b["roleRef"]["kind"] == "ClusterRole" && binds(b, user, "") {
            visit(role_rules(store, b, ""));
        }
    }
    if !namespace.is_empty() {
        for b in store.list(&key("rolebindings"), Some(namespace)) {
            if binds(b, user, namespace) {
                visit(role_rules(store, b, namespace));
            }
        }
    }
    (rules, errors)
}

fn verb_matches(rule: &Value, verb: &str) -> bool {
    strings(&rule["verbs"]).iter().any(|v| *v == "*" || *v == verb)
}

fn resource_matches(rule: &Value, combined: &str, sub: &str) -> bool {
    strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!sub.is_empty() && r.len() == sub.len() + 2 && r.starts_with("*/") && r.ends_with(sub))
    })
}

fn name_matches(rule: &Value, name: &str) -> bool {
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || names.contains(&name)
}

fn url_matches(rule: &Value, path: &str) -> bool {
    strings(&rule["nonResourceURLs"])
        .iter()
        .any(|u| *u == "*" || *u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !verb_matches(rule, &a.verb) {
        return false;
    }
    match &a.resource {
        Some(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            strings(&rule["apiGroups"])
                .iter()
                .any(|g| *g == "*" || *g == r.group)
                && resource_matches(rule, &combined, &r.subresource)
                && name_matches(rule, &r.name)
        }
        None => url_matches(rule, &a.path),
    }
}

/// The decision, and the reason kube-apiserver appends to a refusal (`RBAC: ...` for missing roles).
pub fn authorize(store: &Store, user: &User, a: &Attributes) -> (bool, String) {
    let namespace = a.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or("");
    let (rules, errors) = rules_for(store, user, namespace);
    if rules.iter().any(|r| rule_allows(r, a)) {
        return (true, String::new());
    }
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    (false, reason)
}

/// One rule per API group, resource, resource name and verb (or URL and verb): the atoms a grant is
/// checked by.
fn atoms(rule: &Value) -> Vec<(Attributes, (String, String, String, String))> {
    let list = |k: &str| -> Vec<String> { strings(&rule[k]).into_iter().map(String::from).collect() };
    let mut out = Vec::new();
    let verbs = list("verbs");
    for verb in &verbs {
        for url in list("nonResourceURLs") {
            let a = Attributes {
                verb: verb.clone(),
                path: url.clone(),
                resource: None,
            };
            out.push((a, (String::new(), url, String::new(), verb.clone())));
        }
        let names = {
            let n = list("resourceNames");
            if n.is_empty() { vec![String::new()] } else { n }
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                let (res, sub) = match resource.split_once('/') {
                    Some((r, s)) => (r.to_string(), s.to_string()),
                    None => (resource.clone(), String::new()),
                };
                for name in &names {
                    let a = Attributes {
                        verb: verb.clone(),
                        path: String::new(),
                        resource: Some(super::ResourceAttributes {
                            group: group.clone(),
                            resource: res.clone(),
                            subresource: sub.clone(),
                            namespace: String::new(),
                            name: name.clone(),
                        }),
                    };
                    out.push((a, (group.clone(), resource.clone(), name.clone(), verb.clone())));
                }
            }
        }
    }
    out
}

/// kube-apiserver's escalation check: a user may grant (in a role, or by binding one) only permissions
/// they hold in that namespace. The error lists what is missing, as kube-apiserver does.
pub fn confirm_no_escalation(
    store: &Store,
    user: &User,
    namespace: &str,
    rules: &[Value],
) -> Result<(), String> {
    let (owned, errors) = rules_for(store, user, namespace);
    let mut missing: std::collections::BTreeMap<(String, String, String), Vec<String>> = Default::default();
    let mut urls: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rule in rules {
        for (a, (group, resource, name, verb)) in atoms(rule) {
            if owned.iter().any(|o| rule_allows(o, &a)) {
                continue;
            }
            if a.resource.is_none() {
                urls.entry(resource).or_default().push(verb);
            } else {
                missing.entry((group, resource, name)).or_default().push(verb);
            }
        }
    }
    if missing.is_empty() && urls.is_empty() {
        return Ok(());
    }
    let q = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines: Vec<String> = missing
        .into_iter()
        .map(|((group, resource, name), verbs)| {
            let names = if name.is_empty() {
                String::new()
            } else {
                format!(" ResourceNames:[{name:?}],")
            };
            format!(
                "{{APIGroups:[{group:?}], Resources:[{resource:?}],{names} Verbs:[{}]}}",
                q(&verbs)
            )
        })
        .collect();
    lines.extend(
        urls.into_iter()
            .map(|(url, verbs)| format!("{{NonResourceURLs:[{url:?}], Verbs:[{}]}}", q(&verbs))),
    );
    let mut msg = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        q(&user.groups),
        lines.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(msg)
}

/// The roles and bindings kube-apiserver bootstraps that matter to a client: full access for
/// `system:masters`, discovery and self-reviews for every authenticated user, health and version for all.
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let meta = |name: &str| {
        json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    let role = |name: &str, rules: Value| json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole", "metadata": meta(name), "rules": rules});
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRoleBinding", "metadata": meta(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                       {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                    "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews",
                    "selfsubjectrulesreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:public-info-viewer",
                json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterrolebindings",
            binding("cluster-admin", &["system:masters"]),
        ),
        (
            "clusterrolebindings",
            binding("system:discovery", &["system:authenticated"]),
        ),
        (
            "clusterrolebindings",
            binding("system:basic-user", &["system:authenticated"]),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::ResourceAttributes;
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: String::new(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: name.into(),
            }),
        }
    }

    #[test]
    fn rule_matching_table() {
        let rule = |v: Value| v;
        let cases = [
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})),
                res("get", "", "pods", "", "a", "p"),
                true,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})),
                res("list", "", "pods", "", "a", ""),
                false,
            ),
            (
                rule(json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]})),
                res("delete", "", "pods", "", "a", "p"),
                true,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]})),
                res("get", "", "pods", "", "a", "p"),
                false,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})),
                res("get", "", "pods", "log", "a", "p"),
                false,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})),
                res("get", "", "pods", "log", "a", "p"),
                true,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]})),
                res("get", "", "pods", "log", "a", "p"),
                true,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]})),
                res("get", "", "pods", "", "a", "p"),
                false,
            ),
            (
                rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]})),
                res("get", "", "pods", "log", "a", "p"),
                true,
            ),
            (
                rule(
                    json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["x"]}),
                ),
                res("get", "", "cm", "", "a", "x"),
                true,
            ),
            (
                rule(
                    json!({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["x"]}),
                ),
                res("get", "", "cm", "", "a", "y"),
                false,
            ),
            (
                rule(
                    json!({"verbs": ["list"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["x"]}),
                ),
                res("list", "", "cm", "", "a", ""),
                false,
            ),
        ];
        for (i, (r, a, want)) in cases.iter().enumerate() {
            assert_eq!(rule_allows(r, a), *want, "case {i}: {r} {a:?}");
        }
        let url = |path: &str| Attributes {
            verb: "get".into(),
            path: path.into(),
            resource: None,
        };
        let r = json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/apis/*"]});
        assert!(rule_allows(&r, &url("/api")));
        assert!(!rule_allows(&r, &url("/api/v1")));
        assert!(rule_allows(&r, &url("/apis/apps/v1")));
        assert!(!rule_allows(&r, &url("/version")));
        // A resource rule never grants a path, nor a path rule a resource.
        assert!(!rule_allows(
            &json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}),
            &url("/api")
        ));
        assert!(!rule_allows(&r, &res("get", "", "pods", "", "a", "p")));
    }

    #[test]
    fn service_account_subjects_take_the_binding_namespace() {
        let user = User::service_account("ns", "sa", "uid");
        assert!(applies_to(
            &json!({"kind": "ServiceAccount", "name": "sa"}),
            &user,
            "ns"
        ));
        assert!(!applies_to(
            &json!({"kind": "ServiceAccount", "name": "sa"}),
            &user,
            ""
        ));
        assert!(applies_to(
            &json!({"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}),
            &user,
            ""
        ));
        assert!(applies_to(
            &json!({"kind": "Group", "name": "system:serviceaccounts:ns"}),
            &user,
            ""
        ));
        assert!(!applies_to(&json!({"kind": "User", "name": "sa"}), &user, "ns"));
    }
}
