//! Keelson installed by its own chart (and, separately, by `kubectl apply -k deploy/`) into a bare strict
//! simulated cluster with RBAC on, then run as its pod runs: the real `keelson run` binary with the
//! Deployment's own arguments and environment, and no credentials but the ServiceAccount token `kubectl
//! create token` mints, handed over the way a pod sees it (token, CA bundle and namespace files, the API
//! server in KUBERNETES_SERVICE_HOST/_PORT). The first pass must converge on example-repo, served from a
//! real Git repository, with every request of the ServiceAccount allowed; and every permission the
//! install grants must be used by some request, so that removing any one of them breaks the pass.
//!
//! These are the steps docs/install.md lists. The tools (helm, kubectl, git) come from
//! `scripts/install-test-tools.sh`; without them the tests fail when `CI=true` and are skipped otherwise.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keelson::sim::{Cluster, RequestRecord, SimOptions};
use serde_json::Value;

const OWN_NAMESPACE: &str = "keelson-system";
const TARGET_NAMESPACE: &str = "openstack";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:keelson-system:keelson";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
}

fn tools() -> Option<Tools> {
    let bin = root().join(".tools/bin");
    let tools = Tools {
        helm: bin.join("helm"),
        kubectl: bin.join("kubectl"),
    };
    let git = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing: Vec<String> = [&tools.helm, &tools.kubectl]
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if !git {
        missing.push("git".into());
    }
    if missing.is_empty() {
        return Some(tools);
    }
    let note = format!(
        "missing {}; run scripts/install-test-tools.sh",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("install end to end: {note}");
    }
    eprintln!("skipping install end-to-end test: {note}");
    None
}

/// Runs a command that must succeed (with `stdin` fed to it); returns its stdout.
fn run_ok(command: &mut Command, stdin: Option<&str>) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{command:?}: cannot start: {err}"));
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("manifest yaml"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// example-repo as a real Git repository with one commit; returns its `file://` URL and the commit.
fn example_git_repo(dir: &Path) -> (String, String) {
    support::copy_tree(&support::example_repo(), dir);
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=Operator", "-c", "user.email=ops@example.com"])
                .args(args)
                .current_dir(dir),
            None,
        )
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "The cloud"]);
    let head = git(&["rev-parse", "HEAD"]).trim().to_string();
    (format!("file://{}", dir.display()), head)
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The container's environment as the kubelet would give it: literal values, the pod's own namespace and
/// name from the downward API, and `envFrom` ConfigMaps from the installed objects.
fn container_environment(objects: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let name = source["configMapRef"]["name"]
            .as_str()
            .expect("only ConfigMaps feed envFrom");
        let config_map = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("envFrom ConfigMap {name} is installed"));
        for (key, value) in config_map["data"].as_object().into_iter().flatten() {
            env.insert(key.clone(), value.as_str().expect("string").to_string());
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_string();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_string()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => OWN_NAMESPACE.to_string(),
                Some("metadata.name") => "keelson-0".to_string(),
                other => panic!("env {name}: unexpected source {other:?}"),
            }
        };
        env.insert(name, value);
    }
    env
}

/// What Keelson may do, rule by rule, as (namespace or "" for cluster-wide, group, resource, verb, name).
type Grant = (String, String, String, String, Option<String>);

fn granted(objects: &[Value]) -> BTreeSet<Grant> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut grants = BTreeSet::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let namespace = binding["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == binding["roleRef"]["kind"]
                    && o["metadata"]["name"] == binding["roleRef"]["name"]
                    && o["metadata"]["namespace"] == binding["metadata"]["namespace"]
            })
            .expect("bound role installed");
        for rule in role["rules"].as_array().into_iter().flatten() {
            let names = strings(&rule["resourceNames"]);
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            grants.insert((
                                namespace.clone(),
                                group.clone(),
                                resource.clone(),
                                verb.clone(),
                                name.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
    grants
}

/// Whether `grant` is what authorizes `request` (the narrowest grant: a named one for a named request).
fn authorizes(grant: &Grant, request: &RequestRecord) -> bool {
    let (namespace, group, resource, verb, name) = grant;
    let resource_matches = match &request.subresource {
        Some(sub) => *resource == format!("{}/{sub}", request.resource),
        None => *resource == request.resource,
    };
    // The verbs the authorizer allowed, as the cluster logged them: a server-side apply that creates the
    // object is authorized as `patch` and then `create` (kube-apiserver's patch handler,
    // createAuthorizerAttributes).
    let verb_matches = request.authorized.iter().any(|v| v == verb);
    (namespace.is_empty() || Some(namespace.as_str()) == request.namespace.as_deref())
        && *group == request.group
        && resource_matches
        && verb_matches
        && name.as_ref().is_none_or(|n| Some(n) == request.name.as_ref())
}

/// One install on a bare cluster, then `keelson run` with only the ServiceAccount's token until the first
/// pass converged; returns the installed objects and the ServiceAccount's requests.
fn install_and_run(
    tools: &Tools,
    install: impl FnOnce(&Path, &str) -> Vec<Value>,
) -> (Vec<Value>, Vec<RequestRecord>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime
        .block_on(Cluster::start(support::example_nodes(SimOptions {
            ready_after: Duration::from_millis(100),
            job_duration: Duration::from_millis(100),
            ..SimOptions::default()
        })))
        .expect("simulator starts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let admin = tmp.path().join("admin.kubeconfig");
    sim.write_kubeconfig(&admin).expect("kubeconfig");
    let repo_dir = tmp.path().join("repo");
    std::fs::create_dir(&repo_dir).expect("repo dir");
    let (repo_url, head) = example_git_repo(&repo_dir);

    let objects = install(&admin, &repo_url);

    // The token a pod of the Deployment would hold, and the files the kubelet would mount.
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
        .clone();
    let pod = &deployment["spec"]["template"]["spec"];
    let service_account = pod["serviceAccountName"].as_str().expect("serviceAccountName");
    let token = run_ok(
        Command::new(&tools.kubectl)
            .arg("--kubeconfig")
            .arg(&admin)
            .args(["-n", OWN_NAMESPACE, "create", "token", service_account]),
        None,
    );
    let account_dir = tmp.path().join("serviceaccount");
    std::fs::create_dir(&account_dir).expect("serviceaccount dir");
    std::fs::write(account_dir.join("token"), token.trim()).expect("token");
    std::fs::write(account_dir.join("ca.crt"), sim.ca_certificate_pem()).expect("ca.crt");
    std::fs::write(account_dir.join("namespace"), OWN_NAMESPACE).expect("namespace");

    let container = &pod["containers"][0];
    let mut env = container_environment(&objects, container);
    // Only what cannot be as in the pod: where the repository, the cache and the listener are.
    env.insert("KEELSON_REPO".into(), repo_url);
    env.insert(
        "KEELSON_CACHE_DIR".into(),
        tmp.path().join("cache").display().to_string(),
    );
    env.insert("KEELSON_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("KEELSON_LOG_FORMAT".into(), "text".into());
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    sim.clear_request_log();
    let mut daemon = Child(
        Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", tmp.path())
            .envs(&env)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", sim.addr().port().to_string())
            .env("KEELSON_SERVICE_ACCOUNT_DIR", &account_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keelson run"),
    );

    let started = Instant::now();
    loop {
        if let Some(exit) = daemon.0.try_wait().expect("try_wait") {
            let mut logs = String::new();
            let _ = std::io::Read::read_to_string(daemon.0.stderr.as_mut().expect("stderr"), &mut logs);
            panic!("keelson run exited ({exit}):\n{logs}");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["status", "-o", "json", "--kubeconfig"])
            .arg(&admin)
            .output()
            .expect("keelson status");
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if status["lastAppliedRevision"] == head.as_str() && status["phase"] == "Ready" {
            break;
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = Command::new("kill")
                .args(["-TERM", &daemon.0.id().to_string()])
                .status();
            let mut logs = String::new();
            let _ = std::io::Read::read_to_string(daemon.0.stderr.as_mut().expect("stderr"), &mut logs);
            let denied: Vec<String> = sim
                .request_log()
                .iter()
                .filter(|r| r.user == SERVICE_ACCOUNT && r.status >= 400)
                .map(|r| {
                    format!(
                        "{} {} {:?}/{} {:?} -> {}",
                        r.verb, r.group, r.namespace, r.resource, r.name, r.status
                    )
                })
                .collect();
            panic!("the first pass did not converge: {status}\ndenied: {denied:#?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Stopping gives up the Lease: that write counts too.
    let killed = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = daemon.0.wait().expect("wait");
    let mut logs = String::new();
    let _ = std::io::Read::read_to_string(daemon.0.stderr.as_mut().expect("stderr"), &mut logs);
    assert!(exit.success(), "keelson run stopped with {exit}:\n{logs}");
    let requests: Vec<RequestRecord> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.user == SERVICE_ACCOUNT)
        .collect();
    runtime.block_on(sim.shutdown());
    (objects, requests)
}

fn describe(r: &RequestRecord) -> String {
    format!(
        "{} {}/{}{} in {:?} name {:?} -> {}",
        r.verb,
        r.group,
        r.resource,
        r.subresource
            .as_deref()
            .map(|s| format!("/{s}"))
            .unwrap_or_default(),
        r.namespace,
        r.name,
        r.status
    )
}

/// Every request was allowed; the status, inventory, Lease, Events and the cloud's objects were written;
/// and each permission granted authorized at least one request (or is named below with the code path
/// that needs it and the test that exercises it).
fn assert_least_privilege_and_every_write(objects: &[Value], requests: &[RequestRecord]) {
    let denied: Vec<String> = requests
        .iter()
        .filter(|r| matches!(r.status, 401 | 403))
        .map(describe)
        .collect();
    assert!(denied.is_empty(), "the install grants too little: {denied:#?}");
    let written = |namespace: &str, resource: &str| {
        requests.iter().any(|r| {
            r.namespace.as_deref() == Some(namespace)
                && r.resource == resource
                && matches!(r.verb.as_str(), "create" | "patch" | "update")
                && (200..300).contains(&r.status)
        })
    };
    for (namespace, resource) in [
        (OWN_NAMESPACE, "configmaps"),
        (OWN_NAMESPACE, "leases"),
        (OWN_NAMESPACE, "events"),
        (TARGET_NAMESPACE, "secrets"),
        (TARGET_NAMESPACE, "deployments"),
        (TARGET_NAMESPACE, "statefulsets"),
        (TARGET_NAMESPACE, "jobs"),
    ] {
        assert!(
            written(namespace, resource),
            "no successful write of {resource} in {namespace}"
        );
    }
    // The status object (own namespace) and the inventory (beside the objects it lists).
    let config_maps: BTreeSet<(String, String)> = requests
        .iter()
        .filter(|r| r.resource == "configmaps" && r.verb == "patch" && (200..300).contains(&r.status))
        .filter_map(|r| Some((r.namespace.clone()?, r.name.clone()?)))
        .collect();
    assert!(
        config_maps.contains(&(OWN_NAMESPACE.to_string(), "keelson-status".to_string())),
        "status written: {config_maps:?}"
    );
    assert!(
        config_maps
            .iter()
            .any(|(namespace, name)| namespace == TARGET_NAMESPACE && name.starts_with("keelson-inventory-")),
        "inventory written: {config_maps:?}"
    );

    // Grants a first pass on a bare cluster does not exercise, each with the code path that needs it.
    let needed_later: BTreeMap<(&str, &str), &str> = BTreeMap::from([
        (
            ("", "delete"),
            "pruning what Git no longer holds (tests/lifecycle.rs)",
        ),
        (
            ("", "get"),
            "reading one object the watch-fed view cannot answer for: the deletion of an object recreated for \
             an immutable field (rollout/component.rs), a Secret read again after a create conflict \
             (rollout/secrets.rs)",
        ),
        (
            ("", "watch"),
            "drift watching, which may start after the first pass converged (tests/daemon.rs)",
        ),
        (
            ("secrets", "patch"),
            "a derived Secret recomputed when its input changes (tests/openstack.rs)",
        ),
        (
            ("pods", "get"),
            "held, not sent: the entrypoint Role of a `for: SameNode` component grants its Pods get on Pods, \
             and kube-apiserver's escalation check lets Keelson write it only while Keelson holds it",
        ),
        // Kinds a topology may render (raw manifests, service accounts).
        (("serviceaccounts", ""), "a service's own ServiceAccount"),
        (("networkpolicies", ""), "a service's NetworkPolicy"),
        (("roles", ""), "a service's Role (never wider than Keelson's own)"),
        (("rolebindings", ""), "a service's RoleBinding"),
    ]);
    let grants = granted(objects);
    let mut unused = Vec::new();
    for grant in &grants {
        // A 404 is an allowed request too (a get of what does not exist yet).
        let used = requests
            .iter()
            .any(|r| authorizes(grant, r) && ((200..300).contains(&r.status) || r.status == 404));
        if used {
            continue;
        }
        let (_, _, resource, verb, _) = grant;
        let explained = needed_later.contains_key(&(resource.as_str(), verb.as_str()))
            || needed_later.contains_key(&(resource.as_str(), ""))
            || needed_later.contains_key(&("", verb.as_str()));
        if !explained {
            unused.push(format!("{grant:?}"));
        }
    }
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
}

#[test]
fn the_chart_installs_keelson_on_a_bare_cluster_and_its_token_alone_converges_example_repo() {
    let Some(tools) = tools() else { return };
    let (objects, requests) = install_and_run(&tools, |admin, repo| {
        let yaml = run_ok(
            Command::new(&tools.helm)
                .args(["template", "keelson"])
                .arg(root().join("charts/keelson"))
                .args(["--namespace", OWN_NAMESPACE, "--set"])
                .arg(format!("git.repo={repo}")),
            None,
        );
        // What `helm install --create-namespace` does before applying the chart.
        run_ok(
            Command::new(&tools.kubectl).arg("--kubeconfig").arg(admin).args([
                "create",
                "namespace",
                OWN_NAMESPACE,
            ]),
            None,
        );
        run_ok(
            Command::new(&tools.kubectl)
                .arg("--kubeconfig")
                .arg(admin)
                .args(["apply", "-f", "-"]),
            Some(&yaml),
        );
        documents(&yaml)
    });
    assert_least_privilege_and_every_write(&objects, &requests);
}

#[test]
fn the_plain_manifests_install_keelson_on_a_bare_cluster_and_its_token_alone_converges_example_repo() {
    let Some(tools) = tools() else { return };
    let (objects, requests) = install_and_run(&tools, |admin, _repo| {
        run_ok(
            Command::new(&tools.kubectl)
                .arg("--kubeconfig")
                .arg(admin)
                .args(["apply", "-k"])
                .arg(root().join("deploy")),
            None,
        );
        documents(&run_ok(
            Command::new(&tools.kubectl)
                .arg("kustomize")
                .arg(root().join("deploy")),
            None,
        ))
    });
    assert_least_privilege_and_every_write(&objects, &requests);
}
