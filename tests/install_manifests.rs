//! How Keelson is installed in a cluster: the Helm chart (`charts/keelson`) and the plain manifests
//! (`deploy/`). Both are rendered with the real tools (helm, kubectl kustomize), validated strictly against
//! the API schemas of the oldest Kubernetes the chart supports and the newest one kubernetes-validate knows,
//! and checked for the properties the install promises: least-privilege RBAC, an unprivileged pod with a
//! read-only root filesystem, credentials that reach the daemon as files, and a chart that agrees with the
//! plain manifests.
//!
//! The tools come from `scripts/install-test-tools.sh` into `./.tools/bin`. Without them the tests fail
//! when `CI=true` and are skipped with a note otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The newest Kubernetes version the manifests are validated against (kubernetes-validate's newest schema).
const NEWEST_KUBE: &str = "1.37.0";
const RELEASE: &str = "keelson";
const OWN_NAMESPACE: &str = "keelson-system";
const CACHE_DIR: &str = "/var/cache/keelson";
/// The one value the chart cannot default: with it, the chart's defaults make a working install.
const REQUIRED_VALUES: [&str; 2] = [
    "--set",
    "git.repo=https://git.example.com/ops/openstack-topology.git",
];

struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
    validate: PathBuf,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/keelson")
}

/// The tools, or `None` (after a note) when they are missing outside CI.
fn tools() -> Option<Tools> {
    let bin = root().join(".tools/bin");
    let tools = Tools {
        helm: bin.join("helm"),
        kubectl: bin.join("kubectl"),
        validate: bin.join("kubernetes-validate"),
    };
    let missing: Vec<String> = [&tools.helm, &tools.kubectl, &tools.validate]
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(tools);
    }
    let note = format!(
        "missing {}; run scripts/install-test-tools.sh",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("install manifests: {note}");
    }
    eprintln!("skipping install manifest checks: {note}");
    None
}

/// Runs a command that must succeed; returns its stdout.
fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: cannot start: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// Runs a command that must fail; returns stdout and stderr together.
fn run_failing(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: cannot start: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "{command:?} succeeded but should have failed:\n{text}"
    );
    text
}

/// The minimum of the chart's `kubeVersion: ">=X.Y.Z-0"` constraint.
fn oldest_kube() -> String {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("read Chart.yaml");
    let chart: Value = serde_yaml::from_str(&text).expect("parse Chart.yaml");
    let constraint = chart["kubeVersion"].as_str().expect("Chart.yaml has kubeVersion");
    let version = constraint
        .strip_prefix(">=")
        .map(|rest| rest.trim().trim_end_matches("-0"))
        .unwrap_or_else(|| panic!("kubeVersion {constraint:?} is not of the form \">=X.Y.Z-0\""));
    assert_eq!(version.split('.').count(), 3, "kubeVersion {constraint:?}");
    version.to_string()
}

fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// One rendered installation: a name for messages and the multi-document YAML.
struct ManifestSet {
    name: String,
    yaml: String,
}

impl ManifestSet {
    fn objects(&self) -> Vec<Value> {
        documents(&self.yaml).unwrap_or_else(|err| panic!("{}: {err}", self.name))
    }
}

fn documents(yaml: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The chart's values files for CI: every option, spread over files because some exclude each other.
fn ci_values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("read charts/keelson/ci")
        .map(|entry| entry.expect("list charts/keelson/ci").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "charts/keelson/ci holds the values files that exercise the options"
    );
    files
}

fn helm_template(tools: &Tools, values: Option<&Path>, kube_version: &str) -> String {
    let mut command = Command::new(&tools.helm);
    command.args(["template", RELEASE]).arg(chart_dir()).args([
        "--namespace",
        OWN_NAMESPACE,
        "--kube-version",
        kube_version,
    ]);
    match values {
        Some(values) => command.arg("--values").arg(values),
        None => command.args(REQUIRED_VALUES),
    };
    run_ok(&mut command)
}

/// The chart rendered with its default values (first) and with each CI values file; rendered once per
/// test binary.
fn chart_manifest_sets(tools: &Tools) -> &'static [ManifestSet] {
    static SETS: OnceLock<Vec<ManifestSet>> = OnceLock::new();
    SETS.get_or_init(|| {
        let mut sets = vec![ManifestSet {
            name: "chart, default values and git.repo".into(),
            yaml: helm_template(tools, None, NEWEST_KUBE),
        }];
        for file in ci_values_files() {
            sets.push(ManifestSet {
                name: format!(
                    "chart, {}",
                    file.file_name().unwrap_or_default().to_string_lossy()
                ),
                yaml: helm_template(tools, Some(&file), NEWEST_KUBE),
            });
        }
        sets
    })
}

/// `deploy/` as `kubectl apply -k deploy/` sees it (first), and the example overlay with every component.
fn deploy_manifest_sets(tools: &Tools) -> &'static [ManifestSet] {
    static SETS: OnceLock<Vec<ManifestSet>> = OnceLock::new();
    SETS.get_or_init(|| {
        ["deploy", "deploy/overlays/example"]
            .into_iter()
            .map(|dir| ManifestSet {
                name: format!("kustomize {dir}"),
                yaml: run_ok(
                    Command::new(&tools.kubectl)
                        .arg("kustomize")
                        .arg(root().join(dir)),
                ),
            })
            .collect()
    })
}

/// Every installation variant the project ships. A check that applies them to a cluster (the embedded
/// simulator) iterates over exactly these.
fn install_manifest_sets(tools: &Tools) -> Vec<&'static ManifestSet> {
    chart_manifest_sets(tools)
        .iter()
        .chain(deploy_manifest_sets(tools))
        .collect()
}

/// Validates every object of `yaml` with `kubernetes-validate --strict` against the oldest supported and
/// the newest Kubernetes; fails on any error, and on any warning (an unknown kind is skipped with a
/// warning only, which would let a typo in apiVersion through).
fn validate_strictly(tools: &Tools, name: &str, yaml: &str) {
    let objects = documents(yaml).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert!(!objects.is_empty(), "{name}: rendered nothing");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, yaml).expect("write manifests");
    let versions = [oldest_kube(), NEWEST_KUBE.to_string()];
    let mut command = Command::new(&tools.validate);
    command.arg("--strict");
    for version in &versions {
        command.args(["--kubernetes-version", version]);
    }
    let output = run_ok(command.arg(&file));
    let mut passed: BTreeMap<String, usize> = BTreeMap::new();
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        assert!(
            line.starts_with("INFO ") && line.contains(" passed "),
            "{name}: {line}\n{output}"
        );
        let version = line.rsplit(' ').next().unwrap_or_default().to_string();
        *passed.entry(version).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = versions
        .iter()
        .map(|version| (major_minor(version), objects.len()))
        .collect();
    assert_eq!(
        passed, expected,
        "{name}: objects validated per Kubernetes version\n{output}"
    );
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn of_kind<'a>(objects: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    objects.iter().filter(|object| kind(object) == wanted).collect()
}

fn the_deployment(set: &ManifestSet) -> Value {
    let objects = set.objects();
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 1, "{}: one Deployment", set.name);
    deployments[0].clone()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_string))
        .collect()
}

/// A Role's rules flattened to `(apiGroup, resource) -> verbs`.
fn grants(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut grants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                grants
                    .entry((group.clone(), resource))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    grants
}

fn expect_grants(table: &[(&str, &[&str], &[&str])]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut grants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (group, resources, verbs) in table {
        for resource in *resources {
            grants
                .entry((group.to_string(), resource.to_string()))
                .or_default()
                .extend(verbs.iter().map(|verb| verb.to_string()));
        }
    }
    grants
}

const APPLY_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// Exactly what Keelson needs where it applies OpenStack objects.
fn target_grants() -> BTreeMap<(String, String), BTreeSet<String>> {
    expect_grants(&[
        (
            "",
            &[
                "configmaps",
                "services",
                "serviceaccounts",
                "persistentvolumeclaims",
            ],
            APPLY_VERBS,
        ),
        // The Secrets the topology declares: Keelson makes them (create only when absent).
        ("", &["secrets"], APPLY_VERBS),
        (
            "apps",
            &["deployments", "statefulsets", "daemonsets"],
            APPLY_VERBS,
        ),
        ("batch", &["jobs"], APPLY_VERBS),
        ("policy", &["poddisruptionbudgets"], APPLY_VERBS),
        ("networking.k8s.io", &["networkpolicies"], APPLY_VERBS),
        (
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            APPLY_VERBS,
        ),
        // Health reads a workload's Pods (and a Deployment's ReplicaSets) for the reason it is not ready;
        // `get` is held for the Role of a `for: SameNode` component, which grants its Pods get and list.
        ("", &["pods"], &["get", "list", "watch"]),
        ("apps", &["replicasets"], &["list", "watch"]),
    ])
}

/// Exactly what Keelson needs in its own namespace.
fn own_grants() -> BTreeMap<(String, String), BTreeSet<String>> {
    expect_grants(&[
        ("coordination.k8s.io", &["leases"], &["get", "create", "update"]),
        ("", &["configmaps"], &["get", "list", "watch", "create", "patch"]),
        ("", &["events"], &["create"]),
    ])
}

#[test]
fn helm_lint_passes_with_the_required_value_and_every_ci_values_file() {
    let Some(tools) = tools() else { return };
    run_ok(
        Command::new(&tools.helm)
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(REQUIRED_VALUES),
    );
    for file in ci_values_files() {
        run_ok(
            Command::new(&tools.helm)
                .args(["lint", "--strict"])
                .arg(chart_dir())
                .arg("--values")
                .arg(&file),
        );
    }
}

#[test]
fn chart_renders_validate_strictly_on_oldest_and_newest_kubernetes() {
    let Some(tools) = tools() else { return };
    let oldest = oldest_kube();
    for set in chart_manifest_sets(&tools) {
        validate_strictly(&tools, &set.name, &set.yaml);
    }
    // Rendering for the oldest version too: the chart's kubeVersion constraint must admit it.
    let rendered = helm_template(&tools, None, &oldest);
    validate_strictly(&tools, &format!("chart for Kubernetes {oldest}"), &rendered);
}

#[test]
fn chart_refuses_a_kubernetes_older_than_it_supports() {
    let Some(tools) = tools() else { return };
    let oldest = oldest_kube();
    let minor: u32 = oldest
        .split('.')
        .nth(1)
        .and_then(|minor| minor.parse().ok())
        .expect("minor version");
    let too_old = format!("1.{}.0", minor - 1);
    let text = run_failing(
        Command::new(&tools.helm)
            .args(["template", RELEASE])
            .arg(chart_dir())
            .args(REQUIRED_VALUES)
            .args(["--kube-version", &too_old]),
    );
    assert!(
        text.contains("kubeVersion") || text.contains("incompatible"),
        "{text}"
    );
}

#[test]
fn deploy_kustomizations_and_secret_templates_validate_strictly() {
    let Some(tools) = tools() else { return };
    for set in deploy_manifest_sets(&tools) {
        validate_strictly(&tools, &set.name, &set.yaml);
    }
    let mut templates: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/secrets"))
        .expect("read deploy/secrets")
        .map(|entry| entry.expect("list deploy/secrets").path())
        .collect();
    templates.sort();
    assert_eq!(
        templates.len(),
        4,
        "token, basic-auth, ssh and webhook Secret templates"
    );
    for template in templates {
        let yaml = std::fs::read_to_string(&template).expect("read Secret template");
        validate_strictly(&tools, &template.display().to_string(), &yaml);
        for object in documents(&yaml).expect("parse Secret template") {
            assert_eq!(kind(&object), "Secret", "{}", template.display());
            assert_eq!(
                object["metadata"]["namespace"],
                OWN_NAMESPACE,
                "{}",
                template.display()
            );
        }
    }
}

#[test]
fn chart_rejects_inconsistent_values_with_a_message_naming_the_value() {
    let Some(tools) = tools() else { return };
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "rbac.scope=everywhere"], "/rbac/scope"),
        (&["--set", "git.interval=soon"], "/git/interval"),
        (&["--set", "git.path=../outside"], "/git/path"),
        (&["--set", "git.path=/etc"], "/git/path"),
        (&["--set", "git.repo=not a url"], "/git/repo"),
        (&["--set", "git.auth.type=password"], "/git/auth/type"),
        (&["--set", "image.digest=sha256:abc"], "/image/digest"),
        (&["--set", "port=80"], "/port"),
        (
            &[
                "--set-json",
                r#"syncWindows=[{"kind":"later","schedule":"0 2 * * 2","duration":"1h"}]"#,
            ],
            "/syncWindows/0/kind",
        ),
        (
            &[
                "--set-json",
                r#"syncWindows=[{"kind":"deny","schedule":"0 2 * * 2","duration":"soon"}]"#,
            ],
            "/syncWindows/0/duration",
        ),
        (&["--set", "unknownOption=true"], "unknownOption"),
        (
            &["--set", "replicas=2,leaderElection.enabled=false"],
            "needs leaderElection.enabled=true",
        ),
        (&["--set", "git.auth.type=token"], "git.auth.type=token needs"),
        (
            &["--set", "git.auth.type=basic,git.auth.values.username=u"],
            "git.auth.type=basic needs",
        ),
        (
            &["--set", "git.auth.type=ssh,git.auth.values.sshPrivateKey=k"],
            "git.auth.type=ssh needs",
        ),
        (&["--set", "webhook.enabled=true"], "webhook.enabled=true needs"),
        (
            &["--set", "webhook.ingress.enabled=true"],
            "needs webhook.enabled=true",
        ),
        (
            &[
                "--set",
                "webhook.enabled=true,webhook.secret=s,webhook.ingress.enabled=true",
            ],
            "webhook.ingress.host",
        ),
        (
            &["--set-json", "rbac.targetNamespaces=[]"],
            "rbac.targetNamespaces",
        ),
    ];
    for (args, expected) in cases {
        let text = run_failing(
            Command::new(&tools.helm)
                .args(["template", RELEASE])
                .arg(chart_dir())
                .args(REQUIRED_VALUES)
                .args(*args),
        );
        assert!(
            text.contains(expected),
            "{args:?}: expected {expected:?} in:\n{text}"
        );
    }
}

#[test]
fn rbac_is_least_privilege_in_every_variant() {
    let Some(tools) = tools() else { return };
    let forbidden_verbs = ["*", "escalate", "bind", "impersonate"];
    for set in install_manifest_sets(&tools) {
        let objects = set.objects();
        for role in of_kind(&objects, "Role")
            .into_iter()
            .chain(of_kind(&objects, "ClusterRole"))
        {
            let name = format!("{}: {} {}", set.name, kind(role), role["metadata"]["name"]);
            // Secrets only where Keelson makes the topology's: beside the kinds it renders (a target Role, or
            // the ClusterRole of a cluster-wide install), never in the Role of its own namespace, where its
            // Git credentials live.
            let granted = grants(role);
            let target_role = role["metadata"]["namespace"] != OWN_NAMESPACE
                && granted.contains_key(&("apps".to_string(), "deployments".to_string()));
            for ((group, resource), verbs) in granted {
                assert!(
                    (resource != "secrets" || target_role) && resource != "*" && group != "*",
                    "{name}: grants {group}/{resource}"
                );
                for verb in forbidden_verbs {
                    assert!(
                        !verbs.contains(verb),
                        "{name}: grants {verb} on {group}/{resource}"
                    );
                }
            }
        }
        let roles = of_kind(&objects, "Role");
        let own: Vec<_> = roles
            .iter()
            .filter(|role| role["metadata"]["namespace"] == OWN_NAMESPACE)
            .copied()
            .collect();
        if !own.is_empty() {
            assert_eq!(own.len(), 1, "{}: one Role in {OWN_NAMESPACE}", set.name);
            assert_eq!(
                grants(own[0]),
                own_grants(),
                "{}: Role in {OWN_NAMESPACE}",
                set.name
            );
        }
        // Each target Role holds the needed rules; anything more comes from rbac.extraRules.
        for role in roles
            .iter()
            .filter(|role| role["metadata"]["namespace"] != OWN_NAMESPACE)
        {
            let granted = grants(role);
            for (key, verbs) in target_grants() {
                assert_eq!(
                    granted.get(&key),
                    Some(&verbs),
                    "{}: {key:?} in {}",
                    set.name,
                    role["metadata"]
                );
            }
        }
    }
}

#[test]
fn defaults_grant_cluster_wide_only_reading_the_named_namespaces_and_every_grant_is_bound() {
    let Some(tools) = tools() else { return };
    let chart_default = &chart_manifest_sets(&tools)[0];
    for set in [chart_default]
        .into_iter()
        .chain(deploy_manifest_sets(&tools).iter())
    {
        let objects = set.objects();
        let cluster_roles = of_kind(&objects, "ClusterRole");
        assert_eq!(cluster_roles.len(), 1, "{}: one ClusterRole by default", set.name);
        assert_eq!(
            cluster_roles[0]["rules"],
            serde_json::json!([{
                "apiGroups": [""],
                "resources": ["namespaces"],
                "verbs": ["get"],
                "resourceNames": ["openstack", OWN_NAMESPACE],
            }]),
            "{}: only get on the namespaces Keelson works in, by name",
            set.name
        );
        assert_eq!(
            of_kind(&objects, "ClusterRoleBinding").len(),
            1,
            "{}: one ClusterRoleBinding",
            set.name
        );
        // The target namespace comes with the install, so that its Role can be made on a bare cluster;
        // the chart keeps it when the release is uninstalled.
        let target_namespace = of_kind(&objects, "Namespace")
            .into_iter()
            .find(|ns| ns["metadata"]["name"] == "openstack")
            .unwrap_or_else(|| panic!("{}: makes the openstack namespace", set.name));
        if set.name.starts_with("chart") {
            assert_eq!(
                target_namespace["metadata"]["annotations"]["helm.sh/resource-policy"],
                "keep"
            );
        }
        let target: Vec<_> = of_kind(&objects, "Role")
            .into_iter()
            .filter(|role| role["metadata"]["namespace"] == "openstack")
            .collect();
        assert_eq!(target.len(), 1, "{}: a Role in openstack", set.name);
        assert_eq!(
            grants(target[0]),
            target_grants(),
            "{}: exactly the needed rules",
            set.name
        );
    }
    for set in install_manifest_sets(&tools) {
        let objects = set.objects();
        let service_account = the_deployment(set)["spec"]["template"]["spec"]["serviceAccountName"].clone();
        for binding in of_kind(&objects, "RoleBinding")
            .into_iter()
            .chain(of_kind(&objects, "ClusterRoleBinding"))
        {
            let role_kind = if kind(binding) == "RoleBinding" {
                "Role"
            } else {
                "ClusterRole"
            };
            let role_ref = &binding["roleRef"];
            assert_eq!(
                role_ref["kind"], role_kind,
                "{}: {}",
                set.name, binding["metadata"]
            );
            let role_exists = of_kind(&objects, role_kind).iter().any(|role| {
                role["metadata"]["name"] == role_ref["name"]
                    && role["metadata"]["namespace"] == binding["metadata"]["namespace"]
            });
            assert!(
                role_exists,
                "{}: {} binds a missing {role_kind}",
                set.name, binding["metadata"]
            );
            let subjects = binding["subjects"].as_array().expect("subjects");
            assert_eq!(subjects.len(), 1, "{}: {}", set.name, binding["metadata"]);
            assert_eq!(subjects[0]["kind"], "ServiceAccount");
            assert_eq!(
                subjects[0]["name"], service_account,
                "{}: binds the pod's ServiceAccount",
                set.name
            );
            assert_eq!(subjects[0]["namespace"], OWN_NAMESPACE);
        }
    }
}

#[test]
fn the_pod_runs_unprivileged_with_a_read_only_root_and_a_writable_cache() {
    let Some(tools) = tools() else { return };
    for set in install_manifest_sets(&tools) {
        let name = &set.name;
        let pod = the_deployment(set)["spec"]["template"]["spec"].clone();
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null(), "{name}");
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{name}");
        let container = &containers[0];
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["privileged"], false, "{name}");
        assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"], "{name}");
        assert!(security["capabilities"]["add"].is_null(), "{name}");
        assert_eq!(
            strings(&container["args"]).first().map(String::as_str),
            Some("run"),
            "{name}"
        );
        assert!(
            !container["resources"]["limits"]["memory"].is_null(),
            "{name}: a memory limit"
        );
        assert!(
            !container["resources"]["requests"]["cpu"].is_null(),
            "{name}: a CPU request"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{name}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{name}"
        );
        assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz", "{name}");

        let env = env_values(container);
        assert_eq!(
            env.get("KEELSON_CACHE_DIR").map(String::as_str),
            Some(CACHE_DIR),
            "{name}"
        );
        let cache_volume =
            mount_volume(&pod, container, CACHE_DIR).unwrap_or_else(|| panic!("{name}: cache mount"));
        assert!(
            cache_volume["emptyDir"].is_object(),
            "{name}: the cache is an emptyDir"
        );
        assert!(mount_volume(&pod, container, "/tmp").is_some_and(|volume| volume["emptyDir"].is_object()));
        let namespace_from =
            &container_env(container)["KEELSON_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"];
        assert_eq!(
            namespace_from, "metadata.namespace",
            "{name}: own objects go to the pod's namespace"
        );
    }
}

fn container_env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|var| var["name"].as_str().map(|name| (name.to_string(), var.clone())))
        .collect()
}

fn env_values(container: &Value) -> BTreeMap<String, String> {
    container_env(container)
        .into_iter()
        .filter_map(|(name, var)| var["value"].as_str().map(|value| (name, value.to_string())))
        .collect()
}

/// The volume mounted at `path` in `container`.
fn mount_volume(pod: &Value, container: &Value, path: &str) -> Option<Value> {
    let mount = container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|mount| mount["mountPath"] == path)?;
    pod["volumes"]
        .as_array()?
        .iter()
        .find(|volume| volume["name"] == mount["name"])
        .cloned()
}

#[test]
fn every_credential_file_the_daemon_is_told_about_is_mounted_from_a_secret_key() {
    let Some(tools) = tools() else { return };
    let mut seen = BTreeSet::new();
    for set in install_manifest_sets(&tools) {
        let name = &set.name;
        let pod = the_deployment(set)["spec"]["template"]["spec"].clone();
        let container = &pod["containers"][0];
        for (var, file) in env_values(container)
            .into_iter()
            .filter(|(var, _)| var.ends_with("_FILE"))
        {
            let path = Path::new(&file);
            let dir = path.parent().and_then(Path::to_str).unwrap_or_default();
            let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let volume = mount_volume(&pod, container, dir)
                .unwrap_or_else(|| panic!("{name}: {var}: no mount at {dir}"));
            let mount = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == dir);
            assert_eq!(
                mount.map(|m| &m["readOnly"]),
                Some(&Value::Bool(true)),
                "{name}: {var} mount is read-only"
            );
            let secret = &volume["secret"];
            assert!(
                secret["secretName"].is_string(),
                "{name}: {var} comes from a Secret"
            );
            let items: Vec<&Value> = secret["items"].as_array().into_iter().flatten().collect();
            assert!(
                items
                    .iter()
                    .any(|item| item["path"] == file_name && item["key"] == file_name),
                "{name}: {var}={file} is not an item of Secret {}",
                secret["secretName"]
            );
            // Group-readable for fsGroup 65532 at most; never world-readable.
            let mode = secret["defaultMode"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {var}: defaultMode"));
            assert_eq!(mode & 0o007, 0, "{name}: {var}: mode {mode:o}");
            seen.insert(var);
        }
    }
    let expected: BTreeSet<String> = [
        "KEELSON_GIT_TOKEN_FILE",
        "KEELSON_GIT_USERNAME_FILE",
        "KEELSON_GIT_PASSWORD_FILE",
        "KEELSON_SSH_KEY_FILE",
        "KEELSON_SSH_KNOWN_HOSTS_FILE",
        "KEELSON_SSH_PASSPHRASE_FILE",
        "KEELSON_WEBHOOK_SECRET_FILE",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        seen, expected,
        "the variants together cover every credential file"
    );
}

#[test]
fn chart_made_secrets_hold_exactly_the_keys_the_pod_mounts() {
    let Some(tools) = tools() else { return };
    for set in chart_manifest_sets(&tools) {
        let objects = set.objects();
        let pod = the_deployment(set)["spec"]["template"]["spec"].clone();
        for secret in of_kind(&objects, "Secret") {
            let secret_name = &secret["metadata"]["name"];
            let keys: BTreeSet<String> = secret["stringData"]
                .as_object()
                .expect("stringData")
                .keys()
                .cloned()
                .collect();
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|volume| &volume["secret"]["secretName"] == secret_name)
                .unwrap_or_else(|| panic!("{}: Secret {secret_name} is not mounted", set.name));
            let mounted: BTreeSet<String> = volume["secret"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item["key"].as_str().map(String::from))
                .collect();
            assert_eq!(keys, mounted, "{}: Secret {secret_name}", set.name);
        }
    }
}

#[test]
fn the_sync_windows_of_the_values_reach_the_daemon_as_it_reads_them() {
    let Some(tools) = tools() else { return };
    for set in chart_manifest_sets(&tools) {
        let deployment = the_deployment(set);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let env = env_values(container);
        let windows = env.get("KEELSON_SYNC_WINDOWS");
        if !set.name.contains("all-options") {
            assert_eq!(windows, None, "{}: no windows unless configured", set.name);
            continue;
        }
        let windows = windows.expect("KEELSON_SYNC_WINDOWS");
        let parsed: Vec<_> = windows
            .lines()
            .map(|line| {
                keelson::topology::sync_windows::SyncWindow::parse_flag(line)
                    .unwrap_or_else(|e| panic!("{}: {e}", set.name))
            })
            .collect();
        let shown: Vec<String> = parsed.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            [
                "deny window \"0 22 * * 5\" for 60h (Europe/Berlin)",
                "allow window \"0 2 * * 2\" for 2h (UTC)"
            ],
            "{}",
            set.name
        );
        assert!(parsed[0].spec.manual_sync);
    }
}

#[test]
fn the_webhook_ingress_exposes_only_the_hook_path() {
    let Some(tools) = tools() else { return };
    let mut ingresses = 0;
    for set in install_manifest_sets(&tools) {
        let objects = set.objects();
        for ingress in of_kind(&objects, "Ingress") {
            ingresses += 1;
            let services: Vec<&Value> = of_kind(&objects, "Service");
            for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
                for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                    assert_eq!(path["path"], "/hooks/git", "{}", set.name);
                    assert_eq!(path["pathType"], "Exact", "{}", set.name);
                    let backend = &path["backend"]["service"];
                    assert!(
                        services
                            .iter()
                            .any(|service| service["metadata"]["name"] == backend["name"]),
                        "{}: the Ingress points at Keelson's Service",
                        set.name
                    );
                }
            }
        }
    }
    assert!(
        ingresses >= 2,
        "the chart's all-options values and the example overlay each have an Ingress"
    );
}

/// The parts of an installation that must not differ between Helm and kustomize.
fn comparable(set: &ManifestSet) -> BTreeMap<String, Value> {
    let objects = set.objects();
    let mut parts = BTreeMap::new();
    for role in of_kind(&objects, "Role") {
        let namespace = role["metadata"]["namespace"].as_str().unwrap_or_default();
        parts.insert(
            format!("Role in {namespace}"),
            serde_json::to_value(grants(role).into_iter().collect::<Vec<_>>()).expect("json"),
        );
    }
    for binding in of_kind(&objects, "RoleBinding") {
        let namespace = binding["metadata"]["namespace"].as_str().unwrap_or_default();
        parts.insert(format!("RoleBinding in {namespace}"), binding["subjects"].clone());
    }
    for role in of_kind(&objects, "ClusterRole") {
        let name = role["metadata"]["name"].as_str().unwrap_or_default();
        parts.insert(format!("ClusterRole {name}"), role["rules"].clone());
    }
    for binding in of_kind(&objects, "ClusterRoleBinding") {
        let name = binding["metadata"]["name"].as_str().unwrap_or_default();
        parts.insert(format!("ClusterRoleBinding {name}"), binding["subjects"].clone());
    }
    let service = of_kind(&objects, "Service");
    assert_eq!(service.len(), 1, "{}: one Service", set.name);
    let mut service_spec = service[0]["spec"].clone();
    service_spec["type"] = service_spec["type"].as_str().unwrap_or("ClusterIP").into();
    parts.insert("Service spec".into(), service_spec);
    let deployment = the_deployment(set);
    let spec = &deployment["spec"];
    parts.insert("Deployment selector".into(), spec["selector"].clone());
    parts.insert("Deployment strategy".into(), spec["strategy"].clone());
    let pod = &spec["template"]["spec"];
    for field in [
        "securityContext",
        "volumes",
        "serviceAccountName",
        "terminationGracePeriodSeconds",
    ] {
        parts.insert(format!("pod {field}"), pod[field].clone());
    }
    let container = &pod["containers"][0];
    for field in [
        "args",
        "ports",
        "securityContext",
        "resources",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "volumeMounts",
    ] {
        parts.insert(format!("container {field}"), container[field].clone());
    }
    for var in [
        "KEELSON_NAMESPACE",
        "KEELSON_CACHE_DIR",
        "KEELSON_LISTEN",
        "KEELSON_LEADER_ELECT",
    ] {
        parts.insert(
            format!("env {var}"),
            container_env(container).get(var).cloned().unwrap_or(Value::Null),
        );
    }
    parts
}

#[test]
fn chart_defaults_and_plain_manifests_install_the_same_keelson() {
    let Some(tools) = tools() else { return };
    let chart = &chart_manifest_sets(&tools)[0];
    let plain = &deploy_manifest_sets(&tools)[0];
    let (chart_parts, plain_parts) = (comparable(chart), comparable(plain));
    assert_eq!(
        chart_parts.keys().collect::<Vec<_>>(),
        plain_parts.keys().collect::<Vec<_>>()
    );
    for (part, value) in &chart_parts {
        assert_eq!(
            Some(value),
            plain_parts.get(part),
            "{part} differs between the chart and deploy/"
        );
    }
    // The chart leaves the release namespace to `helm install --create-namespace`; deploy/ makes it,
    // with the restricted Pod Security level the pod above satisfies. Both make the target namespace.
    let names = |set: &ManifestSet| -> Vec<String> {
        of_kind(&set.objects(), "Namespace")
            .iter()
            .map(|ns| ns["metadata"]["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(chart), ["openstack"]);
    assert_eq!(names(plain), [OWN_NAMESPACE, "openstack"]);
    let objects = plain.objects();
    let own = of_kind(&objects, "Namespace")
        .into_iter()
        .find(|ns| ns["metadata"]["name"] == OWN_NAMESPACE)
        .expect("own namespace");
    assert_eq!(
        own["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn notes_tell_how_to_see_status_and_install_refuses_a_missing_repository() {
    let Some(tools) = tools() else { return };
    let notes = |args: &[&str]| {
        let output = run_ok(
            Command::new(&tools.helm)
                .args(["install", RELEASE])
                .arg(chart_dir())
                .args(["--namespace", OWN_NAMESPACE, "--dry-run=client"])
                .args(args)
                // A dry run on the client must not need a cluster.
                .env("KUBECONFIG", root().join("no-such-kubeconfig")),
        );
        output
            .split_once("NOTES:")
            .map(|(_, notes)| notes.to_string())
            .unwrap_or_else(|| panic!("no NOTES:\n{output}"))
    };
    let install = |args: &[&str]| {
        let mut command = Command::new(&tools.helm);
        command
            .args(["install", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", OWN_NAMESPACE, "--dry-run=client"])
            .args(args)
            .env("KUBECONFIG", root().join("no-such-kubeconfig"));
        command
    };
    // Without a repository the install stops before anything reaches the cluster, naming the value.
    for args in [&[][..], &["--set", "git.repo="][..]] {
        let refused = run_failing(&mut install(args));
        assert!(refused.contains("git.repo is required"), "{args:?}: {refused}");
        assert!(!refused.contains("NOTES:"), "{refused}");
    }
    let default = notes(&REQUIRED_VALUES);
    assert!(
        default.contains("It follows https://git.example.com/ops/openstack-topology.git at main"),
        "{default}"
    );
    assert!(
        default.contains("kubectl -n keelson-system logs deployment/keelson"),
        "{default}"
    );
    assert!(default.contains("keelson status"), "{default}");
    assert!(!default.contains("Webhook"), "{default}");

    let values = chart_dir().join("ci/all-options-values.yaml");
    let configured = notes(&["--values", values.to_str().expect("utf-8 path")]);
    assert!(
        configured.contains("https://keelson.example.com/hooks/git"),
        "{configured}"
    );
    assert!(configured.contains("every namespace"), "{configured}");
}

/// Every install variant applies cleanly to the simulated cluster with real kubectl (server-side apply), twice.
#[test]
fn every_install_variant_applies_to_the_simulated_cluster() {
    let Some(tools) = tools() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for set in install_manifest_sets(&tools) {
        let sim = runtime
            .block_on(keelson::sim::Cluster::start(keelson::sim::SimOptions::default()))
            .expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        // helm installs into an existing namespace (or --create-namespace); the manifests' own Namespace
        // objects, when present, are applied like everything else.
        let namespaces: BTreeSet<String> = set
            .objects()
            .iter()
            .filter_map(|o| o["metadata"]["namespace"].as_str().map(str::to_string))
            .chain(["openstack".to_string()])
            .collect();
        for namespace in &namespaces {
            let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
            let file = dir.path().join(format!("ns-{namespace}.yaml"));
            std::fs::write(&file, manifest).expect("write namespace");
            run_ok(
                Command::new(&tools.kubectl)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["apply", "--server-side", "-f"])
                    .arg(&file),
            );
        }
        let file = dir.path().join("install.yaml");
        std::fs::write(&file, &set.yaml).expect("write manifests");
        let apply = |what: &str| {
            run_ok(
                Command::new(&tools.kubectl)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["apply", "--server-side", "--field-manager", "helm", "-f"])
                    .arg(&file),
            )
            .lines()
            .filter(|line| line.contains(what))
            .count()
        };
        let objects = set.objects().len();
        assert_eq!(
            apply("serverside-applied"),
            objects,
            "{}: every object applied",
            set.name
        );
        // Applying the same manifests again (an upgrade without changes) meets no conflict.
        assert_eq!(
            apply("serverside-applied"),
            objects,
            "{}: a repeated apply",
            set.name
        );
        let failed: Vec<_> = sim
            .request_log()
            .into_iter()
            .filter(|r| r.is_write() && r.status >= 400)
            .collect();
        assert!(failed.is_empty(), "{}: refused writes: {failed:#?}", set.name);
        runtime.block_on(sim.shutdown());
    }
}
