//! Plans over a real repository: files on disk, loaded and validated by the topology loader, rendered by
//! the renderer, planned against an in-memory stand-in for the cluster that stores what the plan applies
//! (with the fields an API server adds). Pins idempotence, "a config change rolls exactly its component",
//! "git revert restores the previous state" and the ordering of a removed component's deletion.

use std::path::Path;

use serde_json::{Value, json};

use keelson::plan::{Action, Inventory, Plan, PlanInput, PlanOptions, plan, to_markdown};
use keelson::render::{RenderOptions, render};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use keelson::topology::{Topology, load};

const TOPOLOGY: &str = "\
apiVersion: keelson.dev/v1
kind: Topology
metadata:
  name: demo
spec:
  namespace: openstack
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
  ports:
    - name: api
      port: 5000
  configFiles:
    - source: config/keystone/keystone.conf
      dest: /etc/keystone/keystone.conf
  jobs:
    - name: db-sync
      phase: pre
      command: keystone-manage db_sync
";

const GLANCE: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: glance
spec:
  dependsOn: [keystone]
  image: glance-api
  ports:
    - name: api
      port: 9292
";

fn write(dir: &Path, path: &str, content: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
    std::fs::write(full, content).expect("write");
}

fn repo(dir: &Path, keystone_conf: &str, with_glance: bool) {
    let _ = std::fs::remove_dir_all(dir);
    write(dir, "keelson.yaml", TOPOLOGY);
    write(dir, "services/mariadb.yaml", MARIADB);
    write(dir, "services/keystone.yaml", KEYSTONE);
    write(dir, "config/keystone/keystone.conf", keystone_conf);
    if with_glance {
        write(dir, "services/glance.yaml", GLANCE);
    }
}

/// The in-memory cluster: objects as the API server would return them.
#[derive(Default)]
struct Cluster {
    objects: Vec<Value>,
    inventory: Option<Inventory>,
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["kind"] == b["kind"]
        && a["metadata"]["namespace"] == b["metadata"]["namespace"]
        && a["metadata"]["name"] == b["metadata"]["name"]
}

impl Cluster {
    /// Apply a plan the way the rollout would, counting writes; the server adds its own fields.
    fn apply(&mut self, plan: &Plan) -> usize {
        assert!(!plan.is_blocked(), "{:?}", plan.blocked_message());
        let mut writes = 0;
        for change in plan.apply_changes().filter(|c| c.action != Action::Unchanged) {
            let mut object = change.desired.clone().expect("body to apply");
            object["metadata"]["uid"] = json!(format!("uid-{}", change.reference.name));
            object["metadata"]["resourceVersion"] = json!("1");
            object["status"] = json!({"observedGeneration": 1});
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
            }
            self.objects.retain(|o| !same_object(o, &object));
            self.objects.push(object);
            writes += 1;
        }
        for change in plan.deletion_changes() {
            let r = &change.reference;
            self.objects
                .retain(|o| !(o["kind"] == json!(r.kind) && o["metadata"]["name"] == json!(r.name)));
            writes += 1;
        }
        self.inventory = Some(Inventory::from_plan(plan));
        writes
    }

    fn plan(&self, topology: &Topology, revision: &str, options: &PlanOptions) -> Plan {
        let desired = render(
            topology,
            &RenderOptions {
                revision: Some(revision.to_string()),
            },
        )
        .expect("render");
        plan(&PlanInput {
            topology,
            revision,
            desired: &desired.objects,
            live: &self.objects,
            foreign: &[],
            inventory: self.inventory.as_ref(),
            options,
        })
        .expect("plan")
    }
}

fn load_dir(dir: &Path) -> Topology {
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    load(&snapshot).unwrap_or_else(|d| panic!("topology: {d}"))
}

fn changed(plan: &Plan) -> Vec<(String, String, Action)> {
    plan.apply_changes()
        .chain(plan.deletion_changes())
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| (c.reference.kind.clone(), c.reference.name.clone(), c.action))
        .collect()
}

#[test]
fn plan_apply_replan_change_revert_and_remove() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("repo");
    let options = PlanOptions::default();
    let mut cluster = Cluster::default();

    // r1 on an empty cluster: everything is created, in dependency waves.
    repo(&dir, "[DEFAULT]\ndebug = false\n", true);
    let r1 = load_dir(&dir);
    let first = cluster.plan(&r1, "r1", &options);
    let waves: Vec<Vec<&str>> = first
        .waves
        .iter()
        .map(|w| w.components.iter().map(|c| c.name.as_str()).collect())
        .collect();
    assert_eq!(waves, vec![vec!["mariadb"], vec!["keystone"], vec!["glance"]]);
    assert!(first.summary.create > 0 && first.summary.update == 0 && first.summary.delete == 0);
    let created = cluster.apply(&first);
    assert_eq!(created, first.summary.create);

    // The same revision again: zero writes (idempotence), despite the server-added fields.
    let again = cluster.plan(&r1, "r1", &options);
    assert_eq!(changed(&again), vec![], "{}", to_markdown(&again));
    assert!(!again.has_changes());

    // A new commit that changes nothing rendered still changes nothing: the revision stamp is ignored.
    let same = cluster.plan(&r1, "r1-bis", &options);
    assert!(!same.has_changes(), "{}", to_markdown(&same));

    // r2 edits keystone.conf: keystone's ConfigMap and workload change (the config hash rolls the pods),
    // mariadb and glance do not.
    repo(&dir, "[DEFAULT]\ndebug = true\n", true);
    let r2 = load_dir(&dir);
    let edit = cluster.plan(&r2, "r2", &options);
    let touched: Vec<(String, Action)> = changed(&edit).into_iter().map(|(k, _, a)| (k, a)).collect();
    assert!(
        touched.contains(&("ConfigMap".to_string(), Action::Update)),
        "{touched:?}"
    );
    assert!(
        touched.contains(&("Deployment".to_string(), Action::Update)),
        "{touched:?}"
    );
    for component in ["mariadb", "glance"] {
        let c = edit
            .waves
            .iter()
            .flat_map(|w| &w.components)
            .find(|c| c.name == component)
            .expect("component");
        assert!(
            c.changes.iter().all(|ch| ch.action == Action::Unchanged),
            "{component} must not change"
        );
    }
    let md = to_markdown(&edit);
    assert!(
        md.contains("-     debug = false") && md.contains("+     debug = true"),
        "{md}"
    );
    cluster.apply(&edit);

    // git revert: r1's files again render r1's objects; applying them brings the cluster back, after which
    // r1 plans as unchanged once more.
    repo(&dir, "[DEFAULT]\ndebug = false\n", true);
    let reverted = load_dir(&dir);
    let back = cluster.plan(&reverted, "r3-revert", &options);
    assert_eq!(
        changed(&back).len(),
        changed(&edit).len(),
        "the revert touches what the edit touched"
    );
    cluster.apply(&back);
    assert!(!cluster.plan(&r1, "r1", &options).has_changes());

    // Removing glance deletes its objects after all apply waves, workload before Service.
    repo(&dir, "[DEFAULT]\ndebug = false\n", false);
    let without = load_dir(&dir);
    let strict = cluster.plan(&without, "r4", &options);
    let glance_objects = first.waves[2].components[0].changes.len();
    let owned = cluster.objects.len();
    let over_budget = glance_objects * 100 > owned * 30;
    assert_eq!(strict.is_blocked(), over_budget, "{glance_objects} of {owned}");
    let allowed = cluster.plan(
        &without,
        "r4",
        &PlanOptions {
            allow_prune_over_budget: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(allowed.deletions.len(), 1);
    assert_eq!(allowed.deletions[0].components[0].name, "glance");
    let kinds: Vec<&str> = allowed.deletions[0].components[0]
        .changes
        .iter()
        .map(|c| c.reference.kind.as_str())
        .collect();
    let workload = kinds
        .iter()
        .position(|k| *k == "Deployment")
        .expect("deployment deleted");
    let service = kinds
        .iter()
        .position(|k| *k == "Service")
        .expect("service deleted");
    assert!(workload < service, "{kinds:?}");
    cluster.apply(&allowed);
    assert!(!cluster.plan(&without, "r4", &options).has_changes());
}
