//! Rendering the example OpenStack repository through the library and the built binary: validity,
//! determinism, hash behaviour and schema validation with the real `kubernetes-validate`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use keelson::object::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_HASH, ANNOTATION_REVISION, LABEL_COMPONENT, LABEL_MANAGED_BY,
    LABEL_NAME, LABEL_PART_OF, LABEL_SERVICE, LABEL_TOPOLOGY,
};
use keelson::render::{RenderOptions, Rendered, render};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::Value;

use support::example_repo;

/// A copy of the example repository that a test may edit.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example_repo(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn render_dir(dir: &Path, revision: Option<&str>) -> Rendered {
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).unwrap();
    let topology = keelson::topology::load(&snapshot).unwrap_or_else(|d| panic!("invalid topology:\n{d}"));
    render(
        &topology,
        &RenderOptions {
            revision: revision.map(str::to_string),
        },
    )
    .unwrap()
}

fn keelson(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .output()
        .unwrap()
}

fn hashes(r: &Rendered) -> Vec<(String, String, String)> {
    r.objects
        .iter()
        .map(|o| (o.component.clone(), o.reference.to_string(), o.hash.clone()))
        .collect()
}

fn config_hash(r: &Rendered, component: &str) -> Option<String> {
    r.component(component)
        .find(|o| {
            matches!(
                o.reference.kind.as_str(),
                "Deployment" | "StatefulSet" | "DaemonSet"
            )
        })
        .and_then(|o| o.body.pointer("/spec/template/metadata/annotations").cloned())
        .and_then(|a| {
            a.get(ANNOTATION_CONFIG_HASH)
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

#[test]
fn example_repo_validates_and_renders_every_component() {
    let out = keelson(&["validate", example_repo().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let r = render_dir(&example_repo(), None);
    let components: std::collections::BTreeSet<&str> =
        r.objects.iter().map(|o| o.component.as_str()).collect();
    assert!(components.len() >= 24, "{components:?}");
    for required in [
        "mariadb",
        "rabbitmq",
        "memcached",
        "keystone",
        "glance-api",
        "placement-api",
        "nova-api",
        "nova-scheduler",
        "nova-conductor",
        "nova-novncproxy",
        "nova-compute",
        "libvirt",
        "openvswitch-db",
        "openvswitch-vswitchd",
        "neutron-server",
        "neutron-openvswitch-agent",
        "neutron-dhcp-agent",
        "neutron-l3-agent",
        "neutron-metadata-agent",
        "cinder-api",
        "cinder-scheduler",
        "cinder-volume",
        "horizon",
        "heat-api",
        "heat-engine",
    ] {
        assert!(components.contains(required), "{required} missing");
    }
    let kind_of = |c: &str| {
        r.component(c)
            .map(|o| o.reference.kind.as_str())
            .find(|k| matches!(*k, "Deployment" | "StatefulSet" | "DaemonSet"))
            .unwrap()
            .to_string()
    };
    assert_eq!(kind_of("mariadb"), "StatefulSet");
    assert_eq!(kind_of("nova-compute"), "DaemonSet");
    assert_eq!(kind_of("keystone"), "Deployment");
    // The database comes before keystone, keystone before nova-api, libvirt before nova-compute.
    let first = |c: &str| r.objects.iter().position(|o| o.component == c).unwrap();
    assert!(first("mariadb") < first("keystone"));
    assert!(first("keystone") < first("nova-api"));
    assert!(first("libvirt") < first("nova-compute"));
    assert!(first("neutron-openvswitch-agent") < first("nova-compute"));
    // keystone: its database and user, then db-sync, the key repositories, keystone-manage bootstrap,
    // and only then the Deployment.
    let keystone: Vec<String> = r.component("keystone").map(|o| o.reference.to_string()).collect();
    let at = |prefix: &str| keystone.iter().position(|s| s.starts_with(prefix)).unwrap();
    assert!(at("Job openstack/keystone-db-init-") < at("Job openstack/keystone-db-sync-"));
    assert!(at("Job openstack/keystone-db-sync-") < at("Job openstack/keystone-ks-bootstrap-"));
    assert!(at("Job openstack/keystone-ks-bootstrap-") < at("Deployment openstack/keystone"));
    // Secrets are rendered without values: recipes only. Database URLs reach pods through secretKeyRef,
    // and every URL in a recipe is a template over a generated key.
    for secret in r.objects.iter().filter(|o| o.reference.kind == "Secret") {
        assert!(secret.body.get("data").is_none() && secret.body.get("stringData").is_none());
        assert!(secret.secret.is_some(), "{} has a recipe", secret.reference);
    }
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""name":"OS_DATABASE__CONNECTION","valueFrom":{"secretKeyRef""#));
    for (i, _) in text.match_indices("mysql+pymysql://") {
        let rest = &text[i..];
        let credentials = &rest[..rest.find('@').unwrap_or(rest.len())];
        assert!(
            credentials.contains(":{{ "),
            "a database URL with a literal password: {credentials}"
        );
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let dir = example_repo();
    let a = keelson(&["render", dir.to_str().unwrap()]);
    let b = keelson(&["render", dir.to_str().unwrap()]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout);
    let ja = keelson(&["render", dir.to_str().unwrap(), "-o", "json"]);
    let jb = keelson(&["render", dir.to_str().unwrap(), "-o", "json"]);
    assert_eq!(ja.stdout, jb.stdout);
    let list: Value = serde_json::from_slice(&ja.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        render_dir(&dir, None).objects.len()
    );
}

#[test]
fn a_config_change_touches_only_that_component() {
    let base = render_dir(&example_repo(), None);
    let copy = example_copy();
    let path = copy.path().join("config/glance/glance-api.conf");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("workers = 4", "workers = 8");
    std::fs::write(&path, text).unwrap();
    let changed = render_dir(copy.path(), None);

    assert_ne!(
        config_hash(&base, "glance-api"),
        config_hash(&changed, "glance-api")
    );
    let (a, b) = (hashes(&base), hashes(&changed));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.1, y.1, "object names do not change (jobs keep their names)");
        if x.0 == "glance-api"
            && (x.1 == "ConfigMap openstack/glance-api-config" || x.1.starts_with("Deployment"))
        {
            assert_ne!(x.2, y.2, "{}", x.1);
        } else {
            assert_eq!(x.2, y.2, "{} changed although only glance-api's config did", x.1);
        }
    }
    for c in ["keystone", "nova-api", "mariadb"] {
        assert_eq!(config_hash(&base, c), config_hash(&changed, c), "{c}");
    }
}

#[test]
fn an_image_change_renames_only_that_components_jobs() {
    let base = render_dir(&example_repo(), None);
    let copy = example_copy();
    let path = copy.path().join("services/keystone.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("image: keystone", "image: keystone:2025.1-ubuntu-noble-p1");
    std::fs::write(&path, text).unwrap();
    let changed = render_dir(copy.path(), None);

    // The bootstrap Jobs run the kolla-toolbox image and keep their names.
    let toolbox = |o: &&keelson::render::RenderedObject| {
        o.body
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .is_some_and(|i| i.contains("/kolla-toolbox:"))
    };
    let jobs = |r: &Rendered| -> Vec<(String, String)> {
        r.objects
            .iter()
            .filter(|o| o.reference.kind == "Job" && !toolbox(o))
            .map(|o| (o.component.clone(), o.reference.name.clone()))
            .collect()
    };
    let (a, b) = (jobs(&base), jobs(&changed));
    assert_eq!(a.len(), b.len());
    let mut renamed = 0;
    for (x, y) in a.iter().zip(&b) {
        if x.0 == "keystone" {
            assert_ne!(x.1, y.1);
            assert_eq!(
                x.1[..x.1.len() - 8],
                y.1[..y.1.len() - 8],
                "only the hash suffix changes"
            );
            renamed += 1;
        } else {
            assert_eq!(x, y);
        }
    }
    assert_eq!(
        renamed, 4,
        "db-sync, fernet-setup, credential-setup and ks-bootstrap"
    );
}

#[test]
fn every_object_carries_labels_and_annotations() {
    let r = render_dir(&example_repo(), Some("0123456789abcdef"));
    for o in &r.objects {
        let labels = o
            .body
            .pointer("/metadata/labels")
            .unwrap_or_else(|| panic!("{} has no labels", o.reference));
        for key in [
            LABEL_NAME,
            LABEL_COMPONENT,
            LABEL_PART_OF,
            LABEL_MANAGED_BY,
            LABEL_SERVICE,
            LABEL_TOPOLOGY,
        ] {
            assert!(
                labels
                    .get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty()),
                "{} lacks {key}",
                o.reference
            );
        }
        assert_eq!(labels[LABEL_MANAGED_BY], "keelson");
        assert_eq!(labels[LABEL_PART_OF], "openstack");
        assert_eq!(labels[LABEL_TOPOLOGY], "openstack");
        assert_eq!(labels[LABEL_SERVICE], o.component.as_str());
        let annotations = o.body.pointer("/metadata/annotations").unwrap();
        assert_eq!(annotations[ANNOTATION_HASH], o.hash.as_str());
        assert_eq!(o.hash.len(), 64);
        assert_eq!(annotations[ANNOTATION_REVISION], "0123456789abcdef");
        if let Some(template) = o.body.pointer("/spec/template/metadata") {
            let role_labels = template.get("labels").unwrap();
            assert_eq!(role_labels[LABEL_SERVICE], o.component.as_str());
            if o.reference.kind != "Job" {
                assert!(
                    template
                        .pointer("/annotations/keelson.dev~1config-hash")
                        .is_some(),
                    "{}",
                    o.reference
                );
            } else {
                assert!(
                    template
                        .pointer("/annotations/keelson.dev~1config-hash")
                        .is_none(),
                    "jobs carry no config hash"
                );
            }
        }
    }
}

#[test]
fn revision_stamping_does_not_change_hashes() {
    let plain = render_dir(&example_repo(), None);
    let stamped = render_dir(&example_repo(), Some("feedface"));
    assert_eq!(hashes(&plain), hashes(&stamped));
    let out = keelson(&[
        "render",
        example_repo().to_str().unwrap(),
        "--revision",
        "feedface",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.matches("keelson.dev/revision: feedface").count(),
        stamped.objects.len()
    );
    for o in &plain.objects {
        assert!(
            o.body
                .pointer("/metadata/annotations")
                .unwrap()
                .get(ANNOTATION_REVISION)
                .is_none()
        );
    }
}

#[test]
fn exit_codes_follow_the_cli_contract() {
    let copy = example_copy();
    std::fs::write(
        copy.path().join("services/broken.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Service\n",
    )
    .unwrap();
    let invalid = keelson(&["render", copy.path().to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("services/broken.yaml"));
    assert!(
        invalid.stdout.is_empty(),
        "nothing is rendered from an invalid topology"
    );
    let missing = keelson(&["render", "/nonexistent/keelson-example"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a directory that is not there cannot be read"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/keelson-example: cannot read"));
    let bad_format = keelson(&["render", example_repo().to_str().unwrap(), "-o", "toml"]);
    assert_eq!(bad_format.status.code(), Some(2));
}

/// Finds `kubernetes-validate`: on PATH, or in the worktree's `.tools/bin`.
fn kubernetes_validate() -> Option<PathBuf> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubernetes-validate");
    if local.exists() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|p| p.join("kubernetes-validate"))
        .find(|p| p.exists())
}

#[test]
fn every_rendered_object_passes_strict_schema_validation() {
    let Some(tool) = kubernetes_validate() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "kubernetes-validate is missing in CI"
        );
        eprintln!("skipping: kubernetes-validate not found (run scripts/install-test-tools.sh)");
        return;
    };
    let out = keelson(&["render", example_repo().to_str().unwrap(), "--revision", "abc"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let objects = render_dir(&example_repo(), None).objects.len();

    let result = Command::new(&tool)
        .args(["--strict", "-k", "1.37.0"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "kubernetes-validate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        stdout.matches(" passed for resource ").count(),
        objects,
        "every object was validated:\n{stdout}"
    );

    // The tool really rejects what the schema forbids, so the pass above means something.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bogus: 1\n",
    )
    .unwrap();
    let rejected = Command::new(&tool)
        .args(["--strict", "-k", "1.37.0"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!rejected.status.success());
}
