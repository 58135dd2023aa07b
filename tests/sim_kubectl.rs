//! Real kubectl against the simulated cluster: server-side and client-side apply, get with selectors,
//! delete, watch, and the readiness a user sees. These tests fail (not skip) without kubectl when CI=true;
//! scripts/install-test-tools.sh installs it into ./.tools/bin.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use keelson::sim::{Cluster, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn kubectl_path() -> Option<PathBuf> {
    tool_path("kubectl")
}

/// `kubectl` (v1.37) or `kubectl-1.35`: both send protobuf bodies on `create`.
fn tool_path(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/bin")
        .join(name);
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{name} not found at {} (run scripts/install-test-tools.sh)",
            p.display()
        );
    }
    eprintln!("skipping: {name} not found at {}", p.display());
    None
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    cluster: Cluster,
}

impl Kubectl {
    async fn start() -> Option<Kubectl> {
        Kubectl::start_with("kubectl").await
    }

    async fn start_with(tool: &str) -> Option<Kubectl> {
        let bin = tool_path(tool)?;
        let cluster = Cluster::start(SimOptions {
            ready_after: Duration::from_millis(500),
            unpullable_images: vec!["*:broken".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&kubeconfig).unwrap();
        Some(Kubectl {
            bin,
            kubeconfig,
            _dir: dir,
            cluster,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        // kubectl must not read the developer's own config or cache.
        c.env("HOME", self._dir.path()).env_remove("KUBECONFIG");
        c
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
        } else {
            drop(child.stdin.take());
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .unwrap()
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: shop, tier: web}
data:
  mode: fast
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
  namespace: shop
  labels: {app: shop, tier: db}
data:
  mode: slow
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - name: web
        image: shop:1
        ports: [{containerPort: 8080}]
        env: [{name: MODE, value: fast}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_get_with_selectors_and_delete() {
    let Some(k) = Kubectl::start().await else { return };
    let out = k.ok(&["apply", "--server-side", "-f", "-"], Some(OBJECTS)).await;
    assert!(out.contains("deployment.apps/web serverside-applied"), "{out}");

    let json = k
        .ok(
            &["get", "configmaps", "-n", "shop", "-l", "tier=web", "-o", "json"],
            None,
        )
        .await;
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["settings"]);
    let json = k
        .ok(
            &[
                "get",
                "cm",
                "-n",
                "shop",
                "-l",
                "tier in (web,db),app=shop",
                "-o",
                "json",
            ],
            None,
        )
        .await;
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Server-side apply records kubectl's field manager; a second apply with changes updates in place.
    let json = k
        .ok(
            &[
                "get",
                "deployment",
                "web",
                "-n",
                "shop",
                "-o",
                "json",
                "--show-managed-fields",
            ],
            None,
        )
        .await;
    let dep: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(dep["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(dep["metadata"]["managedFields"][0]["operation"], "Apply");
    let changed = OBJECTS.replace("replicas: 2", "replicas: 3");
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&changed)).await;
    let replicas = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "shop",
                "-o",
                "jsonpath={.spec.replicas} {.metadata.generation}",
            ],
            None,
        )
        .await;
    assert_eq!(replicas, "3 2");

    // Another manager changing kubectl's field conflicts unless forced.
    let other = changed.replace("replicas: 3", "replicas: 4");
    let out = k
        .run(
            &["apply", "--server-side", "--field-manager", "scaler", "-f", "-"],
            Some(&other),
        )
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    k.ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "scaler",
            "-f",
            "-",
        ],
        Some(&other),
    )
    .await;

    let out = k.ok(&["delete", "configmap", "other", "-n", "shop"], None).await;
    assert!(out.contains("deleted"), "{out}");
    let out = k.run(&["get", "configmap", "other", "-n", "shop"], None).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    k.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_creates_then_configures() {
    let Some(k) = Kubectl::start().await else { return };
    let out = k.ok(&["apply", "-f", "-"], Some(OBJECTS)).await;
    assert!(out.contains("configmap/settings created"), "{out}");
    let changed = OBJECTS
        .replace("mode: fast", "mode: turbo")
        .replace("value: fast", "value: turbo");
    let out = k.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert!(out.contains("configmap/other unchanged"), "{out}");
    let json = k
        .ok(&["get", "cm", "settings", "-n", "shop", "-o", "json"], None)
        .await;
    let cm: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(cm["data"]["mode"], "turbo");
    assert!(cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    let env = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "shop",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].env[0].value}",
            ],
            None,
        )
        .await;
    assert_eq!(env, "turbo");
    // kubectl diff against an unchanged cluster finds nothing.
    let out = k.run(&["diff", "-f", "-"], Some(&changed)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_a_change() {
    let Some(k) = Kubectl::start().await else { return };
    k.ok(&["apply", "--server-side", "-f", "-"], Some(OBJECTS)).await;
    let mut watch = k.command(&[
        "get",
        "cm",
        "settings",
        "-n",
        "shop",
        "--watch",
        "-o",
        "jsonpath={.data.mode}{\"\\n\"}",
    ]);
    watch
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = watch.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("fast"));
    k.ok(
        &[
            "patch",
            "cm",
            "settings",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"data":{"mode":"changed"}}"#,
        ],
        None,
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.as_deref(), Some("changed"));
    child.kill().await.unwrap();
    k.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_deployments_shows_them_becoming_ready() {
    let Some(k) = Kubectl::start().await else { return };
    let broken = OBJECTS.replace("image: shop:1", "image: shop:broken").replace(
        "name: web\n  namespace: shop\n  labels",
        "name: stuck\n  namespace: shop\n  labels",
    );
    k.ok(&["apply", "--server-side", "-f", "-"], Some(OBJECTS)).await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&broken)).await;
    let mut table = String::new();
    for _ in 0..60 {
        table = k.ok(&["get", "deployments", "-n", "shop"], None).await;
        if table.lines().any(|l| l.starts_with("web ") && l.contains("2/2")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let web: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&web[..4], &["web", "2/2", "2", "2"], "{table}");
    let stuck: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("stuck "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(stuck[1], "0/2", "{table}");
    let out = k
        .ok(
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "shop",
                "--timeout=20s",
            ],
            None,
        )
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    k.cluster.shutdown().await;
}

/// The flow a person follows: `keelson sim serve` in one terminal, kubectl in another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keelson_sim_serve_with_kubectl() {
    let Some(bin) = kubectl_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args([
            "sim",
            "serve",
            "--port",
            "0",
            "--ready-after",
            "300ms",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        // The file is written after the server listens; wait until it is complete.
        if std::fs::read_to_string(&kubeconfig).is_ok_and(|t| t.contains("current-context")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kubectl = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG");
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let mut apply = kubectl(&["apply", "--server-side", "-f", "-"]).spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = apply.stdin.take().unwrap();
        stdin.write_all(OBJECTS.as_bytes()).await.unwrap();
    }
    let out = apply.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut ready = false;
    for _ in 0..50 {
        let out = kubectl(&["get", "deployments", "-n", "shop"])
            .output()
            .await
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        if table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().get(..4) == Some(&["web", "2/2", "2", "2"][..]))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the deployment never showed 2/2 ready");
    serve.kill().await.unwrap();
}

/// The commands a person types against a fresh cluster, each checked in the stored object: imperative
/// `create` (protobuf bodies), a ServiceAccount token that authenticates with exactly its RBAC, `scale`,
/// `label`, `annotate`, `edit`, `rollout restart` and `delete`.
/// `kubectl auth can-i`: its answer, whatever its exit code (1 for "no").
async fn can_i(k: &Kubectl, token: &str, args: &[&str]) -> String {
    let mut all = vec!["--token", token, "auth", "can-i"];
    all.extend_from_slice(args);
    let out = k.run(&all, None).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn imperative_verbs(tool: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
    use kube::Api;
    let Some(k) = Kubectl::start_with(tool).await else {
        return;
    };
    let client = k.cluster.client();
    let out = k.ok(&["create", "namespace", "shop"], None).await;
    assert!(out.contains("namespace/shop created"), "{out}");
    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "shop",
            "--from-literal=password=s3cret",
        ],
        None,
    )
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), "shop")
        .get("creds")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.data.unwrap()["password"].0, b"s3cret");
    k.ok(
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "shop",
            "--from-literal=mode=fast",
        ],
        None,
    )
    .await;

    // A ServiceAccount token: it is who it says, and may do only what RBAC grants.
    k.ok(&["create", "serviceaccount", "robot", "-n", "shop"], None)
        .await;
    let token = k.ok(&["create", "token", "robot", "-n", "shop"], None).await;
    let token = token.trim();
    let whoami = k
        .ok(&["--token", token, "auth", "whoami", "-o", "json"], None)
        .await;
    let whoami: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(
        whoami["status"]["userInfo"]["username"],
        "system:serviceaccount:shop:robot"
    );
    let denied = k
        .run(&["--token", token, "get", "configmaps", "-n", "shop"], None)
        .await;
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains(
            "configmaps is forbidden: User \"system:serviceaccount:shop:robot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"shop\""
        ),
        "{stderr}"
    );
    assert_eq!(
        can_i(&k, token, &["list", "configmaps", "-n", "shop"]).await,
        "no"
    );
    k.ok(
        &[
            "create",
            "role",
            "reader",
            "-n",
            "shop",
            "--verb=get,list",
            "--resource=configmaps",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "create",
            "rolebinding",
            "robot-reads",
            "-n",
            "shop",
            "--role=reader",
            "--serviceaccount=shop:robot",
        ],
        None,
    )
    .await;
    let listed = k
        .ok(
            &["--token", token, "get", "configmaps", "-n", "shop", "-o", "name"],
            None,
        )
        .await;
    assert!(listed.contains("configmap/settings"), "{listed}");
    assert_eq!(
        can_i(&k, token, &["list", "configmaps", "-n", "shop"]).await,
        "yes"
    );
    assert_eq!(
        can_i(&k, token, &["delete", "configmaps", "-n", "shop"]).await,
        "no"
    );
    let bogus = k
        .run(&["--token", "not-a-token", "get", "namespaces"], None)
        .await;
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("Unauthorized"));

    // scale, label, annotate, edit, rollout restart.
    let deployment = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}}}"#;
    k.ok(&["apply", "-f", "-"], Some(deployment)).await;
    k.ok(
        &["scale", "deployment", "web", "-n", "shop", "--replicas=3"],
        None,
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "shop");
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(3));
    k.ok(
        &["label", "configmap", "settings", "-n", "shop", "tier=web"],
        None,
    )
    .await;
    k.ok(
        &[
            "annotate",
            "configmap",
            "settings",
            "-n",
            "shop",
            "note=hand-made",
        ],
        None,
    )
    .await;
    let editor = k._dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/mode: fast/mode: slow/' \"$1\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut edit = k.command(&["edit", "configmap", "settings", "-n", "shop"]);
    let out = edit.env("KUBE_EDITOR", &editor).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "shop")
        .get("settings")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "slow");
    assert_eq!(cm.metadata.labels.unwrap()["tier"], "web");
    assert_eq!(cm.metadata.annotations.unwrap()["note"], "hand-made");
    k.ok(&["rollout", "restart", "deployment", "web", "-n", "shop"], None)
        .await;
    let template = deployments.get("web").await.unwrap().spec.template;
    assert!(
        template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/restartedAt"),
        "rollout restart stamps the pod template"
    );

    // delete: one object, then the namespace and everything in it.
    k.ok(&["delete", "configmap", "settings", "-n", "shop"], None)
        .await;
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "shop")
            .get_opt("settings")
            .await
            .unwrap()
            .is_none()
    );
    k.ok(&["delete", "namespace", "shop"], None).await;
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt("shop")
        .await
        .unwrap();
    assert!(ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
    k.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_verbs_with_kubectl_1_37() {
    imperative_verbs("kubectl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_verbs_with_kubectl_1_35() {
    imperative_verbs("kubectl-1.35").await;
}

/// The stored object at `path`, as JSON.
async fn stored(client: &kube::Client, path: &str) -> serde_json::Value {
    let req = http::Request::builder().uri(path).body(Vec::new()).unwrap();
    client
        .request::<serde_json::Value>(req)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// kubectl's imperative creates send protobuf bodies; the objects are stored with the defaults a real
/// server sets, and a body with a field the simulator does not read is refused, naming it.
async fn imperative_creates(tool: &str) {
    use serde_json::json;
    let Some(k) = Kubectl::start_with(tool).await else {
        return;
    };
    let client = k.cluster.client();
    k.ok(&["create", "namespace", "shop"], None).await;
    let creates: &[&[&str]] = &[
        &[
            "create",
            "deployment",
            "web",
            "--image=shop:1",
            "--replicas=2",
            "--port=80",
        ],
        &["create", "job", "once", "--image=tool:1", "--", "echo", "hi"],
        &["create", "service", "clusterip", "api", "--tcp=5678:8080"],
        &[
            "create",
            "service",
            "nodeport",
            "edge",
            "--tcp=80:8080",
            "--node-port=30080",
        ],
        &[
            "expose",
            "deployment",
            "web",
            "--name=web-svc",
            "--port=8080",
            "--target-port=80",
        ],
        &[
            "run",
            "tool",
            "--image=tool:1",
            "--restart=Never",
            "--env=MODE=fast",
            "--labels=role=tool",
            "--",
            "sleep",
            "10",
        ],
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ],
        &[
            "create",
            "ingress",
            "web",
            "--class=nginx",
            "--rule=shop.example/=web-svc:8080",
        ],
    ];
    for args in creates {
        // The namespace goes first: what follows `--` is the container's command.
        let mut all = vec!["-n", "shop"];
        all.extend_from_slice(args);
        k.ok(&all, None).await;
    }
    // Every create went through the protobuf decoder and was answered 201.
    let log = k.cluster.request_log();
    for resource in [
        "deployments",
        "jobs",
        "services",
        "pods",
        "poddisruptionbudgets",
        "ingresses",
    ] {
        assert!(
            log.iter()
                .any(|r| r.verb == "create" && r.resource == resource && r.status == 201),
            "{tool}: no create of {resource}: {log:#?}"
        );
    }

    let d = stored(&client, "/apis/apps/v1/namespaces/shop/deployments/web").await;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("shop"), Some("shop:1"))
    );
    assert_eq!(c["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");

    let j = stored(&client, "/apis/batch/v1/namespaces/shop/jobs/once").await;
    assert_eq!(j["spec"]["backoffLimit"], 6);
    assert_eq!(j["spec"]["completions"], 1);
    assert_eq!(j["spec"]["parallelism"], 1);
    assert_eq!(j["spec"]["completionMode"], "NonIndexed");
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );

    let api = stored(&client, "/api/v1/namespaces/shop/services/api").await;
    assert_eq!(api["spec"]["type"], "ClusterIP");
    assert!(
        api["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{api}"
    );
    assert_eq!(api["spec"]["clusterIPs"], json!([api["spec"]["clusterIP"]]));
    assert_eq!(api["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(api["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(api["spec"]["sessionAffinity"], "None");
    assert_eq!(api["spec"]["selector"], json!({"app": "api"}));
    assert_eq!(
        api["spec"]["ports"],
        json!([{"name": "5678-8080", "port": 5678, "targetPort": 8080, "protocol": "TCP"}])
    );
    let edge = stored(&client, "/api/v1/namespaces/shop/services/edge").await;
    assert_eq!(edge["spec"]["type"], "NodePort");
    assert_eq!(edge["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(edge["spec"]["externalTrafficPolicy"], "Cluster");
    let exposed = stored(&client, "/api/v1/namespaces/shop/services/web-svc").await;
    assert_eq!(exposed["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(exposed["spec"]["ports"][0]["port"], 8080);
    assert_eq!(exposed["spec"]["ports"][0]["targetPort"], 80);

    let pod = stored(&client, "/api/v1/namespaces/shop/pods/tool").await;
    assert_eq!(pod["metadata"]["labels"], json!({"role": "tool"}));
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["containers"][0]["args"], json!(["sleep", "10"]));
    assert_eq!(
        spec["containers"][0]["env"],
        json!([{"name": "MODE", "value": "fast"}])
    );

    let pdb = stored(
        &client,
        "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web",
    )
    .await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));

    let ing = stored(
        &client,
        "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web",
    )
    .await;
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ing["spec"]["rules"],
        json!([{"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Exact",
            "backend": {"service": {"name": "web-svc", "port": {"number": 8080}}}}]}}])
    );

    // A field kubectl's flags do not set (here through `--overrides`) is never dropped on the way: it is
    // stored, or the body is refused naming it (a protobuf body the simulator does not fully read).
    let out = k
        .run(
            &[
                "run",
                "odd",
                "--image=tool:1",
                "-n",
                "shop",
                "--overrides={\"spec\":{\"shareProcessNamespace\":true}}",
            ],
            None,
        )
        .await;
    if out.status.success() {
        let odd = stored(&client, "/api/v1/namespaces/shop/pods/odd").await;
        assert_eq!(odd["spec"]["shareProcessNamespace"], true, "{tool}: {odd}");
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "field spec.shareProcessNamespace is set, which the simulated cluster does not read from protobuf"
            ),
            "{tool}: {stderr}"
        );
    }
    k.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_creates_with_kubectl_1_37() {
    imperative_creates("kubectl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_creates_with_kubectl_1_35() {
    imperative_creates("kubectl-1.35").await;
}
