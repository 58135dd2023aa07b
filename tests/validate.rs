//! `keelson validate` against a small valid topology with one breakage at a time: every problem must
//! come out as `file:line:column: field: message` with exit code 1.

mod support;

use std::path::Path;
use std::process::Command;

const TOPOLOGY: &str = "\
apiVersion: keelson.dev/v1
kind: Topology
metadata:
  name: demo
spec:
  namespace: openstack
  healthTimeout: 5m
  policy:
    allowedNamespaces: [monitoring]
";

const MARIADB: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: mariadb
spec:
  workload: StatefulSet
  image: mariadb-server
  ports:
    - name: mysql
      port: 3306
  volumes:
    - name: data
      mountPath: /var/lib/mysql
      persistent:
        size: 10Gi
";

const KEYSTONE: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: keystone
spec:
  dependsOn: [mariadb]
  image: keystone
  replicas: 2
  command: /usr/sbin/apache2 -DFOREGROUND
  env:
    - name: OS_DB_PASSWORD
      secretKeyRef: {name: keystone-db, key: password}
  ports:
    - name: api
      port: 5000
  readinessProbe:
    httpGet: {path: /v3, port: 5000}
  configFiles:
    - source: config/keystone/keystone.conf
      dest: /etc/keystone/keystone.conf
      owner: keystone
      perm: \"0640\"
  jobs:
    - name: db-sync
      phase: pre
      command: keystone-manage db_sync
  manifests: [manifests/keystone.yaml]
";

const MANIFEST: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: keystone
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: keystone
spec:
  maxUnavailable: 1
";

const KEYSTONE_CONF: &str = "[DEFAULT]\ndebug = false\n";

enum Edit {
    /// Replace the first occurrence of a text in a file; the text must be there.
    Replace(&'static str, &'static str, &'static str),
    Write(&'static str, String),
    Bytes(&'static str, Vec<u8>),
    Remove(&'static str),
    Symlink(&'static str, &'static str),
}
use Edit::*;

fn write_base(dir: &Path) {
    for (path, text) in [
        ("keelson.yaml", TOPOLOGY),
        ("services/mariadb.yaml", MARIADB),
        ("services/keystone.yaml", KEYSTONE),
        ("manifests/keystone.yaml", MANIFEST),
        ("config/keystone/keystone.conf", KEYSTONE_CONF),
    ] {
        write(dir, path, text.as_bytes());
    }
}

fn write(dir: &Path, path: &str, bytes: &[u8]) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, bytes).unwrap();
}

fn apply(dir: &Path, edit: &Edit) {
    match edit {
        Replace(path, from, to) => {
            let text = std::fs::read_to_string(dir.join(path)).unwrap();
            assert!(text.contains(from), "{path} does not contain {from:?}");
            write(dir, path, text.replacen(from, to, 1).as_bytes());
        }
        Write(path, text) => write(dir, path, text.as_bytes()),
        Bytes(path, bytes) => write(dir, path, bytes),
        Remove(path) => std::fs::remove_file(dir.join(path)).unwrap(),
        Symlink(path, target) => {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, full).unwrap();
        }
    }
}

fn validate(dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_base_topology_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    write_base(dir.path());
    // A placeholder file is not a stray file.
    write(dir.path(), "services/.gitkeep", b"");
    let (code, stdout, stderr) = validate(dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("topology demo is valid: 2 components in 2 waves"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

fn keystone_with(from: &'static str, to: &'static str) -> Vec<Edit> {
    vec![Replace("services/keystone.yaml", from, to)]
}

fn new_service(name: &str, body: &str) -> String {
    format!("apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{body}")
}

#[test]
fn each_breakage_is_reported_at_its_line() {
    // (what is broken, edits, expected `file:line`, fragment of the message on that line)
    let cases: Vec<(&str, Vec<Edit>, &str, &str)> = vec![
        (
            "yaml syntax",
            keystone_with("  replicas: 2\n", "  replicas: [2\n"),
            "services/keystone.yaml:9",
            "invalid YAML",
        ),
        (
            "wrong type",
            keystone_with("replicas: 2", "replicas: two"),
            "services/keystone.yaml:8",
            "invalid type",
        ),
        (
            "unknown field",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  replica: 3\n"),
            "services/keystone.yaml:9",
            "unknown field `replica`",
        ),
        (
            "missing field",
            keystone_with("  image: keystone\n", ""),
            "services/keystone.yaml:6",
            "missing field `image`",
        ),
        (
            "wrong apiVersion",
            keystone_with("keelson.dev/v1", "keelson.dev/v2"),
            "services/keystone.yaml:1",
            "must be `keelson.dev/v1`",
        ),
        (
            "wrong kind",
            vec![Replace("keelson.yaml", "kind: Topology", "kind: Service")],
            "keelson.yaml:2",
            "must be `Topology`",
        ),
        (
            "invalid component name",
            vec![Write(
                "services/nova_api.yaml",
                new_service("nova_api", "  image: nova-api\n"),
            )],
            "services/nova_api.yaml:4",
            "not a valid DNS-1123 label",
        ),
        (
            "name does not match file",
            keystone_with("name: keystone", "name: keystone-api"),
            "services/keystone.yaml:4",
            "must match the file name `keystone`",
        ),
        (
            "duplicate component name",
            vec![Write(
                "services/keystone2.yaml",
                new_service("keystone", "  image: keystone\n"),
            )],
            "services/keystone2.yaml:4",
            "duplicate component name `keystone`",
        ),
        (
            "bad port name",
            keystone_with("- name: api", "- name: API_port"),
            "services/keystone.yaml:14",
            "not a valid port name",
        ),
        (
            "bad job name",
            keystone_with("- name: db-sync", "- name: db_sync"),
            "services/keystone.yaml:24",
            "DNS-1123 label",
        ),
        (
            "job name too long once rendered",
            keystone_with(
                "- name: db-sync",
                "- name: database-schema-synchronisation-before-upgrade",
            ),
            "services/keystone.yaml:24",
            "would be 64 characters, at most 63",
        ),
        (
            "bad volume name",
            vec![Replace("services/mariadb.yaml", "- name: data", "- name: Data")],
            "services/mariadb.yaml:12",
            "DNS-1123 label",
        ),
        (
            "unknown dependency",
            keystone_with("[mariadb]", "[mariadb, rabbitmq]"),
            "services/keystone.yaml:6",
            "unknown component `rabbitmq`",
        ),
        (
            "self dependency",
            keystone_with("[mariadb]", "[mariadb, keystone]"),
            "services/keystone.yaml:6",
            "cannot depend on itself",
        ),
        (
            "dependency cycle",
            vec![Replace(
                "services/mariadb.yaml",
                "spec:\n",
                "spec:\n  dependsOn: [keystone]\n",
            )],
            "services/keystone.yaml:6",
            "dependency cycle: keystone -> mariadb -> keystone",
        ),
        (
            "negative replicas",
            keystone_with("replicas: 2", "replicas: -1"),
            "services/keystone.yaml:8",
            "must not be negative",
        ),
        (
            "absurd replicas",
            keystone_with("replicas: 2", "replicas: 5000"),
            "services/keystone.yaml:8",
            "more than 1000",
        ),
        (
            "bad topology duration",
            vec![Replace(
                "keelson.yaml",
                "healthTimeout: 5m",
                "healthTimeout: soon",
            )],
            "keelson.yaml:7",
            "is not a duration",
        ),
        (
            "zero component duration",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  healthTimeout: 0s\n"),
            "services/keystone.yaml:9",
            "greater than zero",
        ),
        (
            "bad image",
            keystone_with("image: keystone", "image: Keystone"),
            "services/keystone.yaml:7",
            "repository component",
        ),
        (
            "image without tag",
            keystone_with("image: keystone", "image: docker.io/library/keystone"),
            "services/keystone.yaml:7",
            "neither a tag nor a digest",
        ),
        (
            "env with two sources",
            keystone_with("      secretKeyRef:", "      value: plain\n      secretKeyRef:"),
            "services/keystone.yaml:11",
            "exactly one of value, secretKeyRef, configMapKeyRef",
        ),
        (
            "env with no source",
            keystone_with("      secretKeyRef: {name: keystone-db, key: password}\n", ""),
            "services/keystone.yaml:11",
            "exactly one of value, secretKeyRef, configMapKeyRef",
        ),
        (
            "duplicate env name",
            keystone_with(
                "  ports:\n",
                "    - name: OS_DB_PASSWORD\n      value: x\n  ports:\n",
            ),
            "services/keystone.yaml:13",
            "is set twice",
        ),
        (
            "probe with two handlers",
            keystone_with(
                "    httpGet: {path: /v3, port: 5000}\n",
                "    httpGet: {path: /v3, port: 5000}\n    tcpSocket: {port: 5000}\n",
            ),
            "services/keystone.yaml:17",
            "exactly one of httpGet, tcpSocket, exec",
        ),
        (
            "volume with two sources",
            vec![Replace(
                "services/mariadb.yaml",
                "      persistent:\n",
                "      emptyDir: {}\n      persistent:\n",
            )],
            "services/mariadb.yaml:12",
            "exactly one of emptyDir, hostPath, secret, configMap, persistent",
        ),
        (
            "duplicate volume name",
            vec![Replace(
                "services/mariadb.yaml",
                "  volumes:\n",
                "  volumes:\n    - name: data\n      mountPath: /tmp\n      emptyDir: {}\n",
            )],
            "services/mariadb.yaml:15",
            "volume name `data` is used twice",
        ),
        (
            "duplicate port name",
            keystone_with(
                "  readinessProbe:\n",
                "    - name: api\n      port: 5001\n  readinessProbe:\n",
            ),
            "services/keystone.yaml:16",
            "port name `api` is used twice",
        ),
        (
            "port out of range",
            keystone_with("      port: 5000\n", "      port: 70000\n"),
            "services/keystone.yaml:15",
            "out of range",
        ),
        (
            "relative config dest",
            keystone_with("dest: /etc/keystone/keystone.conf", "dest: etc/keystone.conf"),
            "services/keystone.yaml:20",
            "must be an absolute file path",
        ),
        (
            "bad perm",
            keystone_with("perm: \"0640\"", "perm: \"0999\""),
            "services/keystone.yaml:22",
            "octal mode",
        ),
        (
            "absolute config source",
            keystone_with("source: config/keystone/keystone.conf", "source: /etc/passwd"),
            "services/keystone.yaml:19",
            "must be relative to the repository root",
        ),
        (
            "config source leaving the repo",
            keystone_with(
                "source: config/keystone/keystone.conf",
                "source: config/../../secret.conf",
            ),
            "services/keystone.yaml:19",
            "must not contain `..`",
        ),
        (
            "config source is a symlink out of the repo",
            {
                let mut e = keystone_with(
                    "source: config/keystone/keystone.conf",
                    "source: config/keystone/link.conf",
                );
                e.push(Symlink("config/keystone/link.conf", "/etc/passwd"));
                e
            },
            "services/keystone.yaml:19",
            "points outside the repository",
        ),
        (
            "config source through a symlinked directory",
            {
                let mut e = keystone_with(
                    "source: config/keystone/keystone.conf",
                    "source: conf/keystone/keystone.conf",
                );
                e.push(Symlink("conf", "config"));
                e
            },
            "services/keystone.yaml:19",
            "goes through the symlink `conf`",
        ),
        (
            "missing config source",
            keystone_with(
                "source: config/keystone/keystone.conf",
                "source: config/keystone/missing.conf",
            ),
            "services/keystone.yaml:19",
            "does not exist in the repository",
        ),
        (
            "config source too large",
            vec![Bytes(
                "config/keystone/keystone.conf",
                vec![b'#'; 1024 * 1024 + 1],
            )],
            "services/keystone.yaml:19",
            "larger than the 1048576 byte limit",
        ),
        (
            "config source not UTF-8",
            vec![Bytes("config/keystone/keystone.conf", vec![0xff, 0xfe, b'a'])],
            "services/keystone.yaml:19",
            "not valid UTF-8",
        ),
        (
            "manifest without kind",
            vec![Replace("manifests/keystone.yaml", "kind: ServiceAccount\n", "")],
            "manifests/keystone.yaml:1",
            "missing kind",
        ),
        (
            "manifest without metadata.name",
            vec![Replace(
                "manifests/keystone.yaml",
                "metadata:\n  name: keystone\n---",
                "metadata: {}\n---",
            )],
            "manifests/keystone.yaml:3",
            "missing metadata.name",
        ),
        (
            "manifest holding a Secret",
            vec![Replace(
                "manifests/keystone.yaml",
                "apiVersion: policy/v1\nkind: PodDisruptionBudget",
                "apiVersion: v1\nkind: Secret",
            )],
            "manifests/keystone.yaml:7",
            "Secret values never live in Git",
        ),
        (
            "manifest in a forbidden namespace",
            vec![Replace(
                "manifests/keystone.yaml",
                "  name: keystone\n",
                "  name: keystone\n  namespace: kube-system\n",
            )],
            "manifests/keystone.yaml:5",
            "namespace `kube-system` is not allowed",
        ),
        (
            "manifest of a cluster-scoped kind",
            vec![Replace(
                "manifests/keystone.yaml",
                "apiVersion: v1\nkind: ServiceAccount",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole",
            )],
            "manifests/keystone.yaml:2",
            "cluster-scoped kind ClusterRole",
        ),
        (
            "manifest of an unlisted custom kind",
            vec![Replace(
                "manifests/keystone.yaml",
                "apiVersion: v1\nkind: ServiceAccount",
                "apiVersion: cert-manager.io/v1\nkind: Certificate",
            )],
            "manifests/keystone.yaml:2",
            "not a built-in namespaced kind",
        ),
        (
            "manifest with a YAML error",
            vec![Replace(
                "manifests/keystone.yaml",
                "  maxUnavailable: 1\n",
                "  maxUnavailable: 1: 2\n",
            )],
            "manifests/keystone.yaml:11",
            "invalid YAML",
        ),
        (
            "absolute manifest path",
            keystone_with("[manifests/keystone.yaml]", "[/etc/kubernetes/admin.yaml]"),
            "services/keystone.yaml:27",
            "must be relative to the repository root",
        ),
        (
            "host network without policy",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  hostNetwork: true\n"),
            "services/keystone.yaml:9",
            "allowHostNetwork",
        ),
        (
            "privileged without policy",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  privileged: true\n"),
            "services/keystone.yaml:9",
            "allowPrivileged",
        ),
        (
            "bad resource quantity",
            keystone_with(
                "  replicas: 2\n",
                "  replicas: 2\n  resources:\n    limits: {memory: 1GB}\n",
            ),
            "services/keystone.yaml:10",
            "not a valid Kubernetes quantity",
        ),
        (
            "file in services/ that is not YAML",
            vec![Write("services/README.md", "# notes\n".into())],
            "services/README.md:1",
            "only .yaml files",
        ),
        (
            "missing keelson.yaml",
            vec![Remove("keelson.yaml")],
            "keelson.yaml:1",
            "must hold keelson.yaml",
        ),
        (
            "bad topology namespace",
            vec![Replace(
                "keelson.yaml",
                "namespace: openstack",
                "namespace: OpenStack",
            )],
            "keelson.yaml:6",
            "not a valid DNS-1123 label",
        ),
        (
            "unknown field in keelson.yaml",
            vec![Replace(
                "keelson.yaml",
                "  healthTimeout: 5m\n",
                "  healthTimeout: 5m\n  pruneBudget: 10\n",
            )],
            "keelson.yaml:8",
            "unknown field `pruneBudget`",
        ),
        (
            "two documents in a service file",
            keystone_with(
                "  manifests: [manifests/keystone.yaml]\n",
                "  manifests: [manifests/keystone.yaml]\n---\na: 1\n",
            ),
            "services/keystone.yaml:29",
            "expected one document",
        ),
        (
            "StatefulSet name too long for its pods' revision label",
            vec![Write(
                "services/galera-cluster-with-a-rather-long-and-descriptive-name.yaml",
                new_service(
                    "galera-cluster-with-a-rather-long-and-descriptive-name",
                    "  workload: StatefulSet\n  image: mariadb-server\n",
                ),
            )],
            "services/galera-cluster-with-a-rather-long-and-descriptive-name.yaml:4",
            "at most 52 characters",
        ),
        (
            "duplicate YAML key",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  replicas: 3\n"),
            "services/keystone.yaml:9",
            "duplicate entry with key",
        ),
        (
            "replicas on a DaemonSet",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  workload: DaemonSet\n"),
            "services/keystone.yaml:8",
            "DaemonSet runs one pod per node",
        ),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (what, edits, location, fragment) in &cases {
        let dir = tempfile::tempdir().unwrap();
        write_base(dir.path());
        for edit in edits {
            apply(dir.path(), edit);
        }
        let (code, stdout, stderr) = validate(dir.path());
        let prefix = format!("{location}:");
        let matched = stdout
            .lines()
            .any(|line| line.starts_with(&prefix) && line.contains(fragment));
        if code != Some(1) || !matched {
            failures.push(format!(
                "{what}: exit {code:?}, wanted `{location}` with `{fragment}`; got:\n{stdout}{stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn all_problems_are_listed_sorted_and_the_run_does_not_stop_at_the_first_file() {
    let dir = tempfile::tempdir().unwrap();
    write_base(dir.path());
    apply(
        dir.path(),
        &Replace("services/mariadb.yaml", "port: 3306", "port: 0"),
    );
    apply(
        dir.path(),
        &Replace("services/keystone.yaml", "replicas: 2", "replicas: -2"),
    );
    apply(
        dir.path(),
        &Replace("services/keystone.yaml", "perm: \"0640\"", "perm: rw"),
    );
    apply(
        dir.path(),
        &Replace("keelson.yaml", "healthTimeout: 5m", "healthTimeout: 5x"),
    );
    let (code, stdout, _) = validate(dir.path());
    assert_eq!(code, Some(1));
    let prefixes: Vec<&str> = stdout
        .lines()
        .map(|l| l.splitn(3, ':').take(2).collect::<Vec<_>>().join(":").leak() as &str)
        .collect();
    assert_eq!(
        prefixes,
        [
            "keelson.yaml:7",
            "services/keystone.yaml:8",
            "services/keystone.yaml:22",
            "services/mariadb.yaml:10"
        ],
        "{stdout}"
    );
    for line in stdout.lines() {
        let parts: Vec<&str> = line.splitn(5, ':').collect();
        assert_eq!(parts.len(), 5, "{line}");
        assert!(
            parts[1].parse::<usize>().is_ok() && parts[2].parse::<usize>().is_ok(),
            "{line}"
        );
    }
}

#[test]
fn several_shape_errors_in_one_file_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    write_base(dir.path());
    apply(
        dir.path(),
        &Replace("services/keystone.yaml", "replicas: 2", "replicas: many"),
    );
    apply(
        dir.path(),
        &Replace("services/keystone.yaml", "  command:", "  comand:"),
    );
    apply(
        dir.path(),
        &Replace(
            "services/keystone.yaml",
            "      port: 5000\n",
            "      port: 5000\n      expose: sometimes\n",
        ),
    );
    let (code, stdout, _) = validate(dir.path());
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("services/keystone.yaml:8:13: spec.replicas: invalid type"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("services/keystone.yaml:9:3: spec.comand: unknown field `comand`"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("services/keystone.yaml:16:15: spec.ports[0].expose: invalid type"),
        "{stdout}"
    );
}

#[test]
fn a_missing_directory_cannot_be_read_and_no_directory_means_the_current_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("validate")
        .arg("/nonexistent/keelson-topology")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("/nonexistent/keelson-topology: cannot read"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("validate")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".: topology openstack is valid"));
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["validate", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

#[test]
fn arbitrary_bytes_never_crash_the_validator() {
    // A few hostile inputs in every file the loader reads; each must end in exit code 1, never a panic.
    let inputs: [&[u8]; 7] = [
        b"",
        b"---\n---\n",
        b"[[[[[[[[[[",
        b"a: &x [*x]\n",
        b"\xff\xfe\x00",
        b"!!binary AAAA",
        b"? [a, b]\n: c\n",
    ];
    for input in inputs {
        for file in [
            "keelson.yaml",
            "services/keystone.yaml",
            "manifests/keystone.yaml",
        ] {
            let dir = tempfile::tempdir().unwrap();
            write_base(dir.path());
            apply(dir.path(), &Bytes(file, input.to_vec()));
            let (code, stdout, stderr) = validate(dir.path());
            assert_eq!(code, Some(1), "{file} = {input:?}: {stdout}{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn every_truncation_and_line_deletion_of_a_service_file_is_handled() {
    // Cut the service file at every byte and drop each line in turn: the loader must answer with a
    // topology or diagnostics, never panic, and every diagnostic must name a real position.
    use keelson::source::{Revision, Snapshot, SnapshotEntry};
    let snapshot = |keystone: &[u8]| {
        let mut entries = std::collections::BTreeMap::new();
        for (path, text) in [
            ("keelson.yaml", TOPOLOGY),
            ("services/mariadb.yaml", MARIADB),
            ("manifests/keystone.yaml", MANIFEST),
            ("config/keystone/keystone.conf", KEYSTONE_CONF),
        ] {
            entries.insert(path.to_string(), SnapshotEntry::File(text.as_bytes().to_vec()));
        }
        entries.insert(
            "services/keystone.yaml".to_string(),
            SnapshotEntry::File(keystone.to_vec()),
        );
        Snapshot::new(
            Revision {
                id: "t".into(),
                origin: "memory".into(),
            },
            None,
            entries,
        )
    };
    let check = |bytes: &[u8]| {
        if let Err(diagnostics) = keelson::topology::load(&snapshot(bytes)) {
            assert!(!diagnostics.is_empty());
            for d in diagnostics.iter() {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(
                    d.line <= KEYSTONE.lines().count() + 1 || d.file != "services/keystone.yaml",
                    "{d}"
                );
            }
        }
    };
    let bytes = KEYSTONE.as_bytes();
    for end in 0..bytes.len() {
        check(&bytes[..end]);
    }
    let lines: Vec<&str> = KEYSTONE.lines().collect();
    for skip in 0..lines.len() {
        let text: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        check(text.join("\n").as_bytes());
    }
}

/// One mistake, one line: on the example topology, a broken keelson.yaml key does not make every service's
/// policy check fail, a renamed component is reported at the rename (not at each component that depends on
/// it), and a near-miss dependency name gets a suggestion.
#[test]
fn one_mistake_is_reported_once() {
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        (
            "a misspelled policy key",
            "keelson.yaml",
            "    allowHostNetwork: true",
            "    allowHostNetworks: true",
            "keelson.yaml:17:5: spec.policy.allowHostNetworks: unknown field `allowHostNetworks`",
        ),
        (
            "a misspelled namespace key",
            "keelson.yaml",
            "\n  namespace: openstack",
            "\n  namespaces: openstack",
            "keelson.yaml:7:3: spec: missing field `namespace`",
        ),
        (
            "a renamed component",
            "services/keystone.yaml",
            "  name: keystone\n",
            "  name: keystone-api\n",
            "services/keystone.yaml:4:9: metadata.name: `keystone-api` must match the file name `keystone`",
        ),
        (
            "a near-miss dependency",
            "services/keystone.yaml",
            "- memcached",
            "- memcache",
            "services/keystone.yaml:8:5: spec.dependsOn[1]: unknown component `memcache` (no \
             services/memcache.yaml); did you mean `memcached`?",
        ),
    ];
    for (what, file, from, to, first) in cases {
        let dir = tempfile::tempdir().unwrap();
        support::copy_tree(&support::example_repo(), dir.path());
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{what}: {file} lacks {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let (code, stdout, stderr) = validate(dir.path());
        assert_eq!(code, Some(1), "{what}: {stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines[0].starts_with(first), "{what}: {stdout}");
        // The misspelled key also reports the field it should have been, in the same document.
        let in_the_edited_file = lines.iter().all(|l| l.starts_with(file));
        assert!(
            in_the_edited_file && lines.len() <= 2,
            "{what}: only the mistake itself:\n{stdout}"
        );
    }
}

/// `secrets:` declared in keystone right after its replicas (line 8): the block starts at line 9.
fn keystone_secrets(block: &'static str) -> Edit {
    Replace("services/keystone.yaml", "  replicas: 2\n", block)
}

#[test]
fn secrets_bootstrap_fields_and_pod_details_are_reported_at_their_line() {
    let cases: Vec<(&str, Vec<Edit>, &str, &str)> = vec![
        (
            "template over an undeclared Secret",
            vec![keystone_secrets(
                "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random}\n        url: {template: \"mysql+pymysql://k:{{ nope.password }}@db/k\"}\n",
            )],
            "services/keystone.yaml:13",
            "`nope` is not a Secret declared in spec.secrets",
        ),
        (
            "template over a key that is not generated",
            vec![keystone_secrets(
                "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random}\n        url: {template: \"x{{ keystone-db.url2 }}\"}\n        url2: {template: \"y{{ keystone-db.password }}\"}\n",
            )],
            "services/keystone.yaml:13",
            "`keystone-db.url2` is not a generated key",
        ),
        (
            "a pod reads a key the Secret does not declare",
            vec![keystone_secrets(
                "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        pw: {generate: random}\n",
            )],
            "services/keystone.yaml:16",
            "Secret `keystone-db` has no key `password` (it declares pw)",
        ),
        (
            "a Secret of a component one does not depend on",
            vec![
                keystone_secrets(
                    "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random}\n",
                ),
                Replace(
                    "services/mariadb.yaml",
                    "  image: mariadb-server\n",
                    "  image: mariadb-server\n  env:\n    - name: X\n      secretKeyRef: {name: keystone-db, key: password}\n",
                ),
            ],
            "services/mariadb.yaml:10",
            "declared by component `keystone`, which this component does not depend on",
        ),
        (
            "two ways to make one key",
            vec![keystone_secrets(
                "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random, template: \"{{ a.b }}\"}\n",
            )],
            "services/keystone.yaml:12",
            "exactly one of generate, template, encrypted",
        ),
        (
            "a random value too short to be a secret",
            vec![keystone_secrets(
                "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random, length: 4}\n",
            )],
            "services/keystone.yaml:12",
            "must be between 8 and 4096",
        ),
        (
            "an encrypted value that is not an age file",
            vec![
                keystone_secrets(
                    "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {encrypted: secrets/password.age}\n",
                ),
                Write("secrets/password.age", "hunter2\n".into()),
            ],
            "services/keystone.yaml:12",
            "is not an age-encrypted file",
        ),
        (
            "a database field without the MariaDB server",
            keystone_with(
                "  replicas: 2\n",
                "  replicas: 2\n  database: {name: keystone, user: keystone, passwordFrom: {secret: keystone-db, key: password}}\n",
            ),
            "services/keystone.yaml:9",
            "needs the MariaDB server in keelson.yaml spec.bootstrap.database",
        ),
        (
            "a database name MariaDB would need quoting for",
            vec![
                Replace(
                    "keelson.yaml",
                    "  healthTimeout: 5m\n",
                    "  healthTimeout: 5m\n  bootstrap:\n    database: {host: mariadb.openstack.svc, adminPasswordFrom: {secret: root, key: password}}\n",
                ),
                Replace(
                    "services/keystone.yaml",
                    "  replicas: 2\n",
                    "  replicas: 2\n  database:\n    name: key-stone\n    user: keystone\n    passwordFrom: {secret: keystone-db, key: password}\n",
                ),
            ],
            "services/keystone.yaml:10",
            "must be 1-64 letters, digits or `_`",
        ),
        (
            "Bidirectional propagation without privilege",
            vec![Replace(
                "services/mariadb.yaml",
                "      mountPath: /var/lib/mysql\n",
                "      mountPath: /var/lib/mysql\n      mountPropagation: Bidirectional\n",
            )],
            "services/mariadb.yaml:14",
            "needs a privileged container",
        ),
        (
            "hostPID without the policy",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  hostPID: true\n"),
            "services/keystone.yaml:9",
            "spec.policy.allowHostPID",
        ),
        (
            "a job with both command and script",
            keystone_with(
                "      command: keystone-manage db_sync\n",
                "      command: keystone-manage db_sync\n      script: echo\n",
            ),
            "services/keystone.yaml:24",
            "exactly one of command, script",
        ),
        (
            "a job taking a bootstrap Job's name",
            keystone_with("    - name: db-sync\n", "    - name: db-init\n"),
            "services/keystone.yaml:24",
            "name of a bootstrap Job",
        ),
        (
            "anti-affinity on a DaemonSet",
            vec![Replace(
                "services/mariadb.yaml",
                "  workload: StatefulSet\n",
                "  workload: DaemonSet\n  antiAffinity: required\n",
            )],
            "services/mariadb.yaml:7",
            "only a Deployment's or StatefulSet's replicas can be kept apart",
        ),
        (
            "a disruption budget with both bounds",
            keystone_with(
                "  replicas: 2\n",
                "  replicas: 2\n  disruptionBudget: {maxUnavailable: 1, minAvailable: 1}\n",
            ),
            "services/keystone.yaml:9",
            "at most one of maxUnavailable and minAvailable",
        ),
        (
            "a sidecar mounting an undeclared volume",
            keystone_with(
                "  replicas: 2\n",
                "  replicas: 2\n  sidecars:\n    - name: logs\n      command: [tail, -F, /var/log/x]\n      volumeMounts: [logs]\n",
            ),
            "services/keystone.yaml:12",
            "`logs` is not one of the component's spec.volumes",
        ),
        (
            "a readiness probe on an init container",
            keystone_with(
                "  replicas: 2\n",
                "  replicas: 2\n  initContainers:\n    - name: wait\n      command: [sleep, '1']\n      readinessProbe: {tcpSocket: {port: 1}}\n",
            ),
            "services/keystone.yaml:12",
            "only sidecars have readiness",
        ),
        (
            "a tombstone for a Secret still declared",
            vec![
                Replace(
                    "keelson.yaml",
                    "  healthTimeout: 5m\n",
                    "  healthTimeout: 5m\n  tombstones:\n    secrets: [keystone-db]\n",
                ),
                keystone_secrets(
                    "  replicas: 2\n  secrets:\n    - name: keystone-db\n      data:\n        password: {generate: random}\n",
                ),
            ],
            "keelson.yaml:9",
            "Secret `keystone-db` is still declared by component `keystone`",
        ),
        (
            "a workload field on a component without workload",
            keystone_with("  replicas: 2\n", "  replicas: 2\n  workload: None\n"),
            "services/keystone.yaml:8",
            "`workload: None` has no pods of its own",
        ),
    ];
    let mut failures = Vec::new();
    for (what, edits, location, fragment) in &cases {
        let dir = tempfile::tempdir().unwrap();
        write_base(dir.path());
        for edit in edits {
            apply(dir.path(), edit);
        }
        let (code, stdout, stderr) = validate(dir.path());
        let prefix = format!("{location}:");
        let matched = stdout
            .lines()
            .any(|line| line.starts_with(&prefix) && line.contains(fragment));
        if code != Some(1) || !matched {
            failures.push(format!(
                "{what}: exit {code:?}, wanted `{location}` with `{fragment}`; got:\n{stdout}{stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
