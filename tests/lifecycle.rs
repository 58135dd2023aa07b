//! The acceptance suite of the GitOps lifecycle: every change a team makes to the example OpenStack
//! topology, and `git revert` as the rollback. Each test is one repository history: a copy of example-repo
//! committed with the real `git` command line, a fresh simulated cluster over real HTTP, and `keelson run`
//! (the daemon, in-process) following the repository through its local watch — the poll interval is an hour,
//! so only commits start passes. Assertions read live snapshots of every owned object through the API, the
//! simulator's request log (which objects a pass wrote, in which order), a watch recorder (what became healthy
//! before what) and the status object.
//!
//! Scenarios (issue 7), by test:
//! - 1, 2, 3, 8: `deploy_change_config_upgrade_nova_and_revert_an_older_commit_and_the_revert`
//! - 4, 5, 9: `add_and_remove_components_and_revert_both`
//! - 6, 7, 10: `bad_stuck_and_invalid_commits_are_reverted_or_fixed_and_history_lists_every_pass`
//! - 11: `mass_deletion_is_refused_by_the_prune_budget_until_policy_allows_it`
//! - 12: every test ends by asserting its whole history (and the third also reads it with `keelson history`).
//!
//! Every test also ends with a pass over its last, unchanged revision that must write nothing.

mod lifecycle_support;
mod source_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use keelson::status::{ComponentPhase, PassResult, Phase};
use keelson::topology::{SHARED_COMPONENT, Topology, graph};
use lifecycle_support::{
    Lab, Live, PASS_TIMEOUT, Written, assert_same, fast_sim, line_of, wait_for, write_positions, written,
    written_components,
};

const OLD: &str = "2025.1-ubuntu-noble";
const NEW: &str = "2025.2-ubuntu-noble";
const NOVA: &[&str] = &[
    "nova-api",
    "nova-compute",
    "nova-conductor",
    "nova-novncproxy",
    "nova-scheduler",
];
const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// For every edge `component dependsOn dependency` with both ends in `components`: every write of the
/// dependency comes before the first write of the component (or, for deletions, every delete of the
/// component before the first delete of the dependency). Returns the number of edges checked.
fn assert_dependency_order(
    topology: &Topology,
    components: &BTreeSet<String>,
    positions: &BTreeMap<String, Vec<u64>>,
    deletions: bool,
) -> usize {
    let mut checked = 0;
    for component in components {
        let Some(spec) = topology.components.get(component) else {
            panic!("{component} is not in the topology");
        };
        for dependency in &spec.spec.dependency_names() {
            if !components.contains(dependency) {
                continue;
            }
            let (first, then) = if deletions {
                (component, dependency)
            } else {
                (dependency, component)
            };
            let last_of_first = positions.get(first).and_then(|p| p.iter().max());
            let first_of_then = positions.get(then).and_then(|p| p.iter().min());
            let (Some(a), Some(b)) = (last_of_first, first_of_then) else {
                panic!("{first} or {then} was never written: {positions:?}");
            };
            assert!(
                a < b,
                "{then} was written (request #{b}) before the last write of {first} (request #{a})"
            );
            checked += 1;
        }
    }
    checked
}

/// For every edge `component dependsOn dependency` in `edges`: each workload and Job of the dependency was
/// healthy (by Keelson's own health rules, as the watch saw it) before any workload or Job of the component
/// changed. `live` names the objects of each component.
fn assert_healthy_before_dependents(lab: &Lab, live: &Live, edges: &[(String, String)]) {
    let seen = lab.recorder.seen();
    for (component, dependency) in edges {
        let gated = |c: &str| -> Vec<(String, String)> {
            live.of_component(c)
                .keys()
                .filter(|k| WORKLOAD_KINDS.contains(&k.1.as_str()) || k.1 == "Job")
                .map(|k| (k.1.clone(), k.3.clone()))
                .collect()
        };
        let own = gated(component);
        let first_change = seen
            .iter()
            .filter(|s| own.iter().any(|(k, n)| *k == s.kind && *n == s.name))
            .map(|s| s.rv)
            .min()
            .unwrap_or_else(|| panic!("no workload or Job of {component} changed"));
        for (kind, name) in gated(dependency) {
            let healthy = lab
                .recorder
                .first_healthy(&kind, &name)
                .unwrap_or_else(|| panic!("{kind} {name} of {dependency} was never seen healthy"));
            assert!(
                healthy < first_change,
                "{component} changed at resourceVersion {first_change}, before {kind} {name} of its \
                 dependency {dependency} was healthy (at {healthy})"
            );
        }
    }
}

fn edges_within(topology: &Topology, components: &BTreeSet<String>) -> Vec<(String, String)> {
    components
        .iter()
        .flat_map(|c| {
            topology.components[c]
                .spec
                .depends_on
                .iter()
                // Edges that wait for less than health (`for: SameNode`, `for: Service`) are pinned by
                // tests/ordering.rs.
                .filter(|d| components.contains(&d.component) && d.wait_for.is_healthy())
                .map(move |d| (c.clone(), d.component.clone()))
        })
        .collect()
}

fn generations_unchanged_except(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
    rolled: &BTreeSet<String>,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the set of workloads changed"
    );
    for (workload, generation) in before {
        if rolled.contains(workload) {
            assert_eq!(after[workload], generation + 1, "{workload} rolls once");
        } else {
            assert_eq!(after[workload], *generation, "{workload} must not roll");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_change_config_upgrade_nova_and_revert_an_older_commit_and_the_revert() {
    let (lab, initial) = Lab::start(fast_sim(), |_| {}).await;

    // Scenario 1: initial deploy. Everything healthy, in dependency order.
    let status = lab.applied(&initial).await;
    let s0 = lab.snapshot().await;
    let topology = lab.topology();
    let all: BTreeSet<String> = topology.components.keys().cloned().collect();
    // 25 services and keelson.yaml's shared Secrets.
    assert_eq!(all.len(), 26);
    assert_eq!(s0.components(), all, "every component has live objects");
    assert_eq!(status.components.len(), 26);
    for component in &status.components {
        assert_eq!(
            component.state,
            ComponentPhase::Healthy,
            "{}: {}",
            component.name,
            component.reason
        );
    }
    let unhealthy = lab.unhealthy().await;
    assert!(
        unhealthy.is_empty(),
        "not healthy after the deploy: {unhealthy:?}"
    );
    let writes = lab.writes_since(0);
    let owners = lab.owners(&[&s0]);
    assert_eq!(
        written_components(&writes, &owners),
        all.iter()
            .cloned()
            .chain(["(namespaces/openstack)".to_string()])
            .collect(),
        "the deploy writes every component and the namespace, nothing else"
    );
    assert_eq!(
        written(&writes)
            .into_iter()
            .filter(|(resource, _)| resource != "namespaces")
            .collect::<BTreeSet<Written>>(),
        lab.changed(&Live::default(), &s0)
            .into_iter()
            .filter(|(resource, _)| resource != "namespaces")
            .collect(),
        "every owned object was written by the deploy"
    );
    let edges = assert_dependency_order(&topology, &all, &write_positions(&writes, &owners), false);
    assert!(edges > 40, "only {edges} dependency edges checked");
    assert_healthy_before_dependents(&lab, &s0, &edges_within(&topology, &all));

    // Scenario 2: config change (one line of keystone.conf). Only keystone's pods roll; the pass writes
    // only keystone objects.
    let generations = lab.generations().await;
    let mark = lab.mark();
    lab.edit(
        "config/keystone/keystone.conf",
        "[token]",
        "[token]\n# rotated by change 1234",
    );
    let config_change = lab.commit("keystone: rotate tokens");
    lab.applied(&config_change).await;
    let s1 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s1])),
        set(&["keystone"])
    );
    assert_eq!(
        written(&writes),
        lab.changed(&s0, &s1),
        "the pass wrote exactly the objects that changed"
    );
    assert_eq!(
        written(&writes),
        BTreeSet::from([
            ("configmaps".to_string(), "keystone-config".to_string()),
            ("deployments".to_string(), "keystone".to_string()),
        ])
    );
    generations_unchanged_except(
        &generations,
        &lab.generations().await,
        &set(&["deployments/keystone"]),
    );

    // Scenario 3: release upgrade of nova's image tag. nova-api's migrations (pre-jobs) run anew under new
    // names and complete before any nova workload changes; nothing outside nova is written.
    let generations = lab.generations().await;
    let mark = lab.mark();
    for service in NOVA {
        lab.edit(
            &format!("services/{service}.yaml"),
            &format!("  image: {service}\n"),
            &format!("  image: {service}:{NEW}\n"),
        );
    }
    let upgrade = lab.commit("Upgrade nova to 2025.2");
    lab.applied(&upgrade).await;
    let s2 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    let nova = set(NOVA);
    let mut nova_and_dependents = nova.clone();
    for service in NOVA {
        nova_and_dependents.extend(graph::dependents(&topology, service));
    }
    let touched = written_components(&writes, &lab.owners(&[&s1, &s2]));
    assert!(
        touched.is_subset(&nova_and_dependents),
        "written outside nova and its dependents: {touched:?}"
    );
    assert_eq!(touched, nova, "every nova component and nothing else");
    assert_eq!(written(&writes), lab.changed(&s1, &s2));
    // The bootstrap Jobs (database, RabbitMQ, Keystone) run the toolbox image: a Nova release does not
    // touch them.
    let bootstrap = |name: &str| {
        ["-db-init-", "-rabbit-init-", "-ks-register-"]
            .iter()
            .any(|b| name.contains(b))
    };
    let old_jobs: BTreeSet<String> = s1
        .of_component("nova-api")
        .keys()
        .filter(|k| k.1 == "Job" && !bootstrap(&k.3))
        .map(|k| k.3.clone())
        .collect();
    let new_jobs: BTreeSet<String> = s2
        .of_component("nova-api")
        .keys()
        .filter(|k| k.1 == "Job" && !bootstrap(&k.3))
        .map(|k| k.3.clone())
        .collect();
    assert_eq!(
        new_jobs.len(),
        4,
        "api-db-sync, map-cell0, create-cell, db-sync: {new_jobs:?}"
    );
    assert!(
        old_jobs.is_disjoint(&new_jobs),
        "the migrations run anew under new names: {old_jobs:?} {new_jobs:?}"
    );
    let migrated = new_jobs
        .iter()
        .map(|job| {
            lab.recorder
                .first_healthy("Job", job)
                .unwrap_or_else(|| panic!("Job {job} never completed"))
        })
        .max()
        .expect("jobs");
    for (key, _) in s2
        .objects
        .iter()
        .filter(|(k, _)| WORKLOAD_KINDS.contains(&k.1.as_str()) && nova.iter().any(|n| *n == k.3))
    {
        let plural = format!("{}s", key.1.to_lowercase());
        let before = generations[&format!("{plural}/{}", key.3)];
        let changed = lab
            .recorder
            .first_spec_change(&key.1, &key.3, before)
            .unwrap_or_else(|| panic!("{} {} never changed", key.1, key.3));
        assert!(
            migrated < changed,
            "{} {} changed (resourceVersion {changed}) before nova-api's migrations completed ({migrated})",
            key.1,
            key.3
        );
    }
    let rolled: BTreeSet<String> = generations
        .keys()
        .filter(|w| nova.iter().any(|n| w.ends_with(&format!("/{n}"))))
        .cloned()
        .collect();
    assert_eq!(rolled.len(), 5);
    generations_unchanged_except(&generations, &lab.generations().await, &rolled);

    // Scenario 8: reverting an older commit (the config change, not the tip) undoes only that commit:
    // keystone is back to what it was before the change, nova stays upgraded.
    let mark = lab.mark();
    let revert_config = lab.revert(&config_change);
    let status = lab.applied(&revert_config).await;
    assert_eq!(
        status.history[0].revert_of.as_deref(),
        Some(config_change.as_str())
    );
    let s3 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s3])),
        set(&["keystone"])
    );
    assert_eq!(written(&writes), lab.changed(&s2, &s3));
    assert_same(
        "keystone after reverting its config change",
        &s0.of_component("keystone"),
        &s3.of_component("keystone"),
    );
    assert_same(
        "everything else after reverting keystone's config change",
        &s2.without(&["keystone"]),
        &s3.without(&["keystone"]),
    );
    assert!(
        s3.objects
            .values()
            .filter(|v| v["kind"] == "Deployment" && v["metadata"]["name"] == "nova-api")
            .all(|v| v["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(NEW))),
        "nova stays at {NEW}, not {OLD}"
    );

    // Scenario 8: the revert of the revert re-applies the change: the cluster equals the state after it.
    let mark = lab.mark();
    let reapply = lab.revert(&revert_config);
    let status = lab.applied(&reapply).await;
    assert_eq!(
        status.history[0].revert_of.as_deref(),
        Some(revert_config.as_str())
    );
    let s4 = lab.snapshot().await;
    assert_same("after the revert of the revert", &s2.objects, &s4.objects);
    let writes = lab.writes_since(mark);
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s4])),
        set(&["keystone"])
    );
    assert_eq!(written(&writes), lab.changed(&s3, &s4));

    // Scenario 12: every pass above is in the history.
    assert_history(
        &lab,
        &[
            (&reapply, Some(&revert_config), PassResult::Succeeded),
            (&revert_config, Some(&config_change), PassResult::Succeeded),
            (&upgrade, None, PassResult::Succeeded),
            (&config_change, None, PassResult::Succeeded),
            (&initial, None, PassResult::Succeeded),
        ],
    )
    .await;
    lab.assert_quiet_pass().await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_components_and_revert_both() {
    let heat = set(&["heat-api", "heat-engine"]);
    let cinder = set(&["cinder-api", "cinder-scheduler", "cinder-volume"]);
    let (lab, initial) = Lab::start(fast_sim(), |dir| {
        for name in ["heat-api", "heat-engine"] {
            std::fs::remove_file(dir.join(format!("services/{name}.yaml"))).expect("remove");
        }
    })
    .await;
    lab.applied(&initial).await;
    let s0 = lab.snapshot().await;
    assert!(s0.components().is_disjoint(&heat));

    // Scenario 4: add a component (heat). Created after its dependencies were healthy; nothing else written.
    let mark = lab.mark();
    for name in ["heat-api", "heat-engine"] {
        let file = format!("services/{name}.yaml");
        std::fs::copy(support::example_repo().join(&file), lab.path(&file)).expect("copy");
    }
    let addition = lab.commit("Add heat");
    let status = lab.applied(&addition).await;
    let s1 = lab.snapshot().await;
    let topology = lab.topology();
    let writes = lab.writes_since(mark);
    let owners = lab.owners(&[&s1]);
    assert_eq!(written_components(&writes, &owners), heat);
    assert_eq!(written(&writes), lab.changed(&s0, &s1));
    assert!(
        writes.iter().all(|r| r.verb == "patch" || r.verb == "create"),
        "an addition only creates: {writes:?}"
    );
    assert_same(
        "everything but heat",
        &s0.objects,
        &s1.without(&["heat-api", "heat-engine"]),
    );
    assert_eq!(s1.components(), s0.components().union(&heat).cloned().collect());
    assert_eq!(
        assert_dependency_order(&topology, &heat, &write_positions(&writes, &owners), false),
        1,
        "heat-engine after heat-api"
    );
    assert_healthy_before_dependents(&lab, &s1, &edges_within(&topology, &heat));
    for name in &heat {
        let dependencies = &topology.components[name].spec.depends_on;
        assert!(!dependencies.is_empty());
        let entry = status
            .components
            .iter()
            .find(|c| c.name == *name)
            .expect("listed");
        assert_eq!(entry.state, ComponentPhase::Healthy, "{}", entry.reason);
    }
    assert!(lab.unhealthy().await.is_empty());

    // Scenario 5: remove a component (cinder, three services in a chain). Its objects are deleted,
    // dependents before dependencies; nothing else touched.
    let before_removal = lab.topology();
    let mark = lab.mark();
    for name in &cinder {
        lab.remove(&format!("services/{name}.yaml"));
    }
    let removal = lab.commit("Remove cinder");
    lab.applied(&removal).await;
    let s2 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    let owners = lab.owners(&[&s1]);
    assert!(
        writes.iter().all(|r| r.verb == "delete"),
        "a removal only deletes: {writes:?}"
    );
    assert_eq!(written_components(&writes, &owners), cinder);
    assert_eq!(written(&writes), lab.changed(&s1, &s2));
    assert!(s2.components().is_disjoint(&cinder), "{:?}", s2.components());
    assert_same(
        "everything but cinder",
        &s1.without(&["cinder-api", "cinder-scheduler", "cinder-volume"]),
        &s2.objects,
    );
    assert_eq!(
        assert_dependency_order(&before_removal, &cinder, &write_positions(&writes, &owners), true),
        2,
        "cinder-volume, then cinder-scheduler, then cinder-api"
    );
    // Inside a component, reverse stage order: the workload goes before its configuration.
    let api_deletes: Vec<&str> = writes
        .iter()
        .filter(|r| {
            owners.get(&(r.resource.clone(), r.name.clone().unwrap_or_default()))
                == Some(&"cinder-api".to_string())
        })
        .map(|r| r.resource.as_str())
        .collect();
    let at = |resource: &str| {
        api_deletes
            .iter()
            .position(|r| *r == resource)
            .unwrap_or(usize::MAX)
    };
    assert!(at("deployments") < at("configmaps"), "{api_deletes:?}");

    // Scenario 9: the revert of the removal brings cinder back, dependencies first, object for object.
    let mark = lab.mark();
    let restore = lab.revert(&removal);
    let status = lab.applied(&restore).await;
    assert_eq!(status.history[0].revert_of.as_deref(), Some(removal.as_str()));
    let s3 = lab.snapshot().await;
    assert_same("after reverting the removal", &s1.objects, &s3.objects);
    let writes = lab.writes_since(mark);
    let owners = lab.owners(&[&s3]);
    assert_eq!(written_components(&writes, &owners), cinder);
    assert_eq!(written(&writes), lab.changed(&s2, &s3));
    assert_eq!(
        assert_dependency_order(&topology, &cinder, &write_positions(&writes, &owners), false),
        2
    );
    // Cinder's dependencies outside cinder stayed live and healthy; its own chain is gated on health again.
    let cinder_edges = edges_within(&topology, &cinder);
    assert_eq!(cinder_edges.len(), 2);
    assert_healthy_before_dependents(&lab, &s3, &cinder_edges);
    assert!(lab.unhealthy().await.is_empty());

    // Scenario 9: the revert of the addition (an older commit) prunes what it added, dependents first; the
    // cluster equals the state before heat was added.
    let mark = lab.mark();
    let unadd = lab.revert(&addition);
    let status = lab.applied(&unadd).await;
    assert_eq!(status.history[0].revert_of.as_deref(), Some(addition.as_str()));
    let s4 = lab.snapshot().await;
    assert_same("after reverting the addition", &s0.objects, &s4.objects);
    let writes = lab.writes_since(mark);
    let owners = lab.owners(&[&s3]);
    assert!(writes.iter().all(|r| r.verb == "delete"), "{writes:?}");
    assert_eq!(written_components(&writes, &owners), heat);
    assert_eq!(written(&writes), lab.changed(&s3, &s4));
    assert_eq!(
        assert_dependency_order(&topology, &heat, &write_positions(&writes, &owners), true),
        1,
        "heat-engine before heat-api"
    );

    // Scenario 12: every pass above is in the history.
    assert_history(
        &lab,
        &[
            (&unadd, Some(&addition), PassResult::Succeeded),
            (&restore, Some(&removal), PassResult::Succeeded),
            (&removal, None, PassResult::Succeeded),
            (&addition, None, PassResult::Succeeded),
            (&initial, None, PassResult::Succeeded),
        ],
    )
    .await;
    lab.assert_quiet_pass().await;
    lab.stop().await;
}

/// One pass as the history records it: revision, subject, the reverted commit, result.
type Pass = (String, String, Option<String>, PassResult);

/// Scenario 12: asserts the stored history is exactly `passes` (newest first: revision, reverted commit,
/// result), each with its commit's subject and author, the oldest started by the daemon's start. Returns the
/// expected entries.
async fn assert_history(lab: &Lab, passes: &[(&String, Option<&String>, PassResult)]) -> Vec<Pass> {
    let expected: Vec<Pass> = passes
        .iter()
        .map(|(revision, revert_of, result)| {
            (
                revision.to_string(),
                lab.subject(revision),
                revert_of.cloned(),
                *result,
            )
        })
        .collect();
    let status = lab.stored().await.expect("status");
    let history: Vec<Pass> = status
        .history
        .iter()
        .map(|h| {
            (
                h.revision.clone(),
                h.subject.clone(),
                h.revert_of.clone(),
                h.result,
            )
        })
        .collect();
    assert_eq!(history, expected);
    assert_eq!(status.history.last().expect("first pass").trigger, "start");
    assert!(
        status
            .history
            .iter()
            .all(|h| h.author == "Test Author <author@example.com>")
    );
    expected
}

/// The line of the first `file:line:column:` position of `file` in `message`.
fn position_in(message: &str, file: &str) -> Option<usize> {
    let at = message.find(&format!("{file}:"))?;
    let rest = &message[at + file.len() + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Asserts a stalled pass over `revision`: nothing written outside Keelson's namespace since `mark`, status
/// Stalled with `needle` (a `file:line:` position) in the Ready condition, the last applied revision and the
/// live objects unchanged. Returns the condition message.
async fn assert_stalled(
    lab: &Lab,
    revision: &str,
    mark: u64,
    applied: &str,
    before: &Live,
    needles: &[String],
) -> String {
    let status = lab.finished(revision, PassResult::Stalled).await;
    let writes = lab.writes_since(mark);
    assert!(writes.is_empty(), "an invalid commit wrote: {writes:?}");
    assert_eq!(status.phase, Phase::Stalled);
    assert_eq!(status.last_attempted_revision.as_deref(), Some(revision));
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(applied),
        "the previous state stays applied"
    );
    let ready = status.condition("Ready").expect("Ready condition");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "InvalidConfiguration");
    assert!(
        needles.iter().any(|n| ready.message.contains(n.as_str())),
        "none of {needles:?} in the Ready message: {}",
        ready.message
    );
    assert_eq!(
        status.condition("Stalled").expect("Stalled condition").status,
        "True"
    );
    assert!(
        status
            .components
            .iter()
            .all(|c| c.state == ComponentPhase::Healthy),
        "the components of the applied revision stay reported healthy: {:?}",
        status.components
    );
    // `keelson status` shows the operator the same position.
    let table = lab.keelson(&["status"]).await;
    assert!(
        table.contains("Stalled") && needles.iter().any(|n| table.contains(n.as_str())),
        "none of {needles:?} in `keelson status`:\n{table}"
    );
    assert_same(
        "the live state after an invalid commit",
        &before.objects,
        &lab.snapshot().await.objects,
    );
    ready.message.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stuck_and_invalid_commits_are_reverted_or_fixed_and_history_lists_every_pass() {
    // glance-api gives up after 8 seconds (each of its Job steps too), so that a bad image fails its rollout
    // quickly while its first install, a chain of Jobs on a loaded machine, still fits.
    let (lab, initial) = Lab::start(fast_sim(), |dir| {
        lifecycle_support::edit(
            dir,
            "services/glance-api.yaml",
            "  image: glance-api\n",
            "  image: glance-api\n  healthTimeout: 8s\n",
        );
        // Its db-sync Job follows the component's timeout instead of keeping its own 15 minutes.
        lifecycle_support::edit(dir, "services/glance-api.yaml", "    timeout: 15m\n", "");
    })
    .await;
    lab.applied(&initial).await;
    let s0 = lab.snapshot().await;
    let topology = lab.topology();
    let dependents = graph::dependents(&topology, "glance-api");
    assert!(dependents.contains("nova-compute"), "{dependents:?}");

    // Scenario 6: a bad commit (an image that never pulls) fails glance-api; its dependents are not
    // touched; the status says Failed and names the commit.
    let mark = lab.mark();
    lab.edit(
        "services/glance-api.yaml",
        "  image: glance-api\n",
        "  image: glance-api:broken\n",
    );
    let bad = lab.commit("glance-api: new image");
    let status = lab.finished(&bad, PassResult::Failed).await;
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.last_attempted_revision.as_deref(), Some(bad.as_str()));
    assert_eq!(status.last_applied_revision.as_deref(), Some(initial.as_str()));
    let ready = status.condition("Ready").expect("Ready condition");
    assert_eq!(ready.reason, "RolloutFailed");
    assert!(
        ready.message.contains(&bad[..12]) && ready.message.contains("glance-api"),
        "{}",
        ready.message
    );
    for component in &status.components {
        let expected = if component.name == "glance-api" {
            ComponentPhase::Failed
        } else if dependents.contains(&component.name) {
            ComponentPhase::Blocked
        } else {
            ComponentPhase::Healthy
        };
        assert_eq!(
            component.state, expected,
            "{}: {}",
            component.name, component.reason
        );
    }
    let writes = lab.writes_since(mark);
    let s_bad = lab.snapshot().await;
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s0, &s_bad])),
        set(&["glance-api"]),
        "only glance-api is written; its dependents are not touched"
    );
    wait_for("the RolloutFailed event", Duration::from_secs(10), || async {
        lab.events()
            .await
            .iter()
            .any(|(reason, message)| reason == "RolloutFailed" && message.contains(&bad[..12]))
    })
    .await;

    // Scenario 6: `git revert` of the bad commit: the live state equals, object for object, the state
    // before the bad commit.
    let mark = lab.mark();
    let revert_bad = lab.revert(&bad);
    let status = lab.applied(&revert_bad).await;
    assert_eq!(status.history[0].revert_of.as_deref(), Some(bad.as_str()));
    let s2 = lab.snapshot().await;
    assert_same("after reverting the bad commit", &s0.objects, &s2.objects);
    let writes = lab.writes_since(mark);
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s_bad, &s2])),
        set(&["glance-api"])
    );
    assert_eq!(written(&writes), lab.changed(&s_bad, &s2));
    assert!(lab.unhealthy().await.is_empty());

    // Scenario 7: revert while stuck. With an hour to become healthy, a bad rollout waits; the revert lands
    // during the wait and Keelson abandons it at once and converges to the reverted state.
    lab.edit(
        "services/glance-api.yaml",
        "  healthTimeout: 8s\n",
        "  healthTimeout: 1h\n",
    );
    let patient = lab.commit("glance-api: wait up to an hour for health");
    lab.applied(&patient).await;
    let s3 = lab.snapshot().await;
    lab.edit(
        "services/glance-api.yaml",
        "  image: glance-api\n",
        "  image: glance-api:broken\n",
    );
    let stuck = lab.commit("glance-api: new image, again");
    wait_for("the rollout waiting on glance-api", PASS_TIMEOUT, || async {
        let s = lab.shared.status();
        s.phase == Phase::Reconciling
            && s.last_attempted_revision.as_deref() == Some(stuck.as_str())
            && s.components
                .iter()
                .any(|c| c.name == "glance-api" && c.state == ComponentPhase::Progressing)
    })
    .await;
    wait_for("the broken Job created", PASS_TIMEOUT, || async {
        lab.snapshot()
            .await
            .of_component("glance-api")
            .values()
            .any(|v| v["kind"] == "Job" && v.to_string().contains("glance-api:broken"))
    })
    .await;
    let reverted_at = Instant::now();
    let unstick = lab.revert(&stuck);
    let status = lab.applied(&unstick).await;
    let took = reverted_at.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the revert took {took:?}: the stuck rollout was not abandoned at once (its timeout is an hour)"
    );
    assert_eq!(status.history[0].revert_of.as_deref(), Some(stuck.as_str()));
    assert_eq!(status.history[1].revision, stuck);
    assert_eq!(status.history[1].result, PassResult::Cancelled);
    let s5 = lab.snapshot().await;
    assert_same("after reverting the stuck commit", &s3.objects, &s5.objects);
    assert!(lab.unhealthy().await.is_empty());

    // Scenario 10: invalid commits (a YAML error, a cycle, an unknown dependency). Nothing is written, the
    // status is Stalled with the file and line, the previous state stays live; the fixing commit applies.
    // Each invalid commit also carries a valid change, which only its fix brings to the cluster.
    let mark = lab.mark();
    lab.edit("services/heat-api.yaml", "  replicas: 2\n", "  replicas: [3\n");
    let line = line_of(&lab.repo.path, "services/heat-api.yaml", "replicas: [3");
    let yaml_error = lab.commit("heat-api: three replicas");
    let message = assert_stalled(
        &lab,
        &yaml_error,
        mark,
        &unstick,
        &s5,
        &["services/heat-api.yaml:".to_string()],
    )
    .await;
    // The parser notices the unclosed bracket on a later line; the line of the mistake is the reported
    // position or the position of the construct the message names.
    let reported = position_in(&message, "services/heat-api.yaml");
    assert!(
        reported == Some(line) || message.contains(&format!("at line {line} column")),
        "line {line} of services/heat-api.yaml is not named: {message}"
    );
    let mark = lab.mark();
    lab.edit("services/heat-api.yaml", "  replicas: [3\n", "  replicas: 3\n");
    let yaml_fix = lab.commit("heat-api: fix the replica count");
    lab.applied(&yaml_fix).await;
    let s6 = lab.snapshot().await;
    assert_eq!(
        written(&lab.writes_since(mark)),
        BTreeSet::from([("deployments".to_string(), "heat-api".to_string())])
    );
    assert_eq!(lab.changed(&s5, &s6), written(&lab.writes_since(mark)));
    assert!(s6.objects.values().any(|v| v["kind"] == "Deployment"
        && v["metadata"]["name"] == "heat-api"
        && v["spec"]["replicas"] == 3));

    let mark = lab.mark();
    lab.edit("config/keystone/keystone.conf", "[token]", "[token]\n# audited");
    lab.edit(
        "services/keystone.yaml",
        "  - memcached\n",
        "  - memcached\n  - horizon\n",
    );
    let keystone_edge = line_of(&lab.repo.path, "services/keystone.yaml", "- horizon");
    let horizon_edge = line_of(&lab.repo.path, "services/horizon.yaml", "- keystone");
    let cycle = lab.commit("keystone: audit tokens, start after horizon");
    let message = assert_stalled(
        &lab,
        &cycle,
        mark,
        &yaml_fix,
        &s6,
        // The edited file is named (a cycle is reported at each of its entries).
        &[format!("services/keystone.yaml:{keystone_edge}:")],
    )
    .await;
    assert!(message.contains("dependency cycle"), "{message}");
    assert!(
        message.contains(&format!("services/horizon.yaml:{horizon_edge}:")),
        "{message}"
    );
    let mark = lab.mark();
    lab.edit("services/keystone.yaml", "  - horizon\n", "");
    let cycle_fix = lab.commit("keystone: horizon depends on keystone, not the other way");
    lab.applied(&cycle_fix).await;
    let s7 = lab.snapshot().await;
    assert_eq!(
        written(&lab.writes_since(mark)),
        BTreeSet::from([
            ("configmaps".to_string(), "keystone-config".to_string()),
            ("deployments".to_string(), "keystone".to_string()),
        ])
    );
    assert_eq!(lab.changed(&s6, &s7), written(&lab.writes_since(mark)));

    let mark = lab.mark();
    lab.edit("config/glance/glance-api.conf", "workers = 4", "workers = 8");
    lab.edit(
        "services/glance-api.yaml",
        "  - memcached\n",
        "  - memcached\n  - swift-proxy\n",
    );
    let line = line_of(&lab.repo.path, "services/glance-api.yaml", "- swift-proxy");
    let unknown = lab.commit("glance-api: eight workers, store in swift");
    let message = assert_stalled(
        &lab,
        &unknown,
        mark,
        &cycle_fix,
        &s7,
        &[format!("services/glance-api.yaml:{line}:")],
    )
    .await;
    assert!(message.contains("swift-proxy"), "{message}");
    let mark = lab.mark();
    lab.edit("services/glance-api.yaml", "  - swift-proxy\n", "");
    let unknown_fix = lab.commit("glance-api: no swift yet");
    lab.applied(&unknown_fix).await;
    let s8 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    assert_eq!(
        written_components(&writes, &lab.owners(&[&s8])),
        set(&["glance-api"])
    );
    assert_eq!(lab.changed(&s7, &s8), written(&writes));

    // Scenario 12: the history lists every pass above, newest first, with revision, subject, the commit a
    // revert reverts, and the outcome.
    let expected = assert_history(
        &lab,
        &[
            (&unknown_fix, None, PassResult::Succeeded),
            (&unknown, None, PassResult::Stalled),
            (&cycle_fix, None, PassResult::Succeeded),
            (&cycle, None, PassResult::Stalled),
            (&yaml_fix, None, PassResult::Succeeded),
            (&yaml_error, None, PassResult::Stalled),
            (&unstick, Some(&stuck), PassResult::Succeeded),
            (&stuck, None, PassResult::Cancelled),
            (&patient, None, PassResult::Succeeded),
            (&revert_bad, Some(&bad), PassResult::Succeeded),
            (&bad, None, PassResult::Failed),
            (&initial, None, PassResult::Succeeded),
        ],
    )
    .await;

    // The same through `keelson history`, as an operator reads it.
    let table = lab.keelson(&["history"]).await;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), expected.len(), "{table}");
    for (row, (revision, subject, revert_of, result)) in rows.iter().zip(&expected) {
        assert!(row.starts_with(&revision[..12]), "{row}");
        assert!(row.contains(&result.to_string()), "{row}");
        assert!(row.contains(subject.as_str()), "{row}");
        if let Some(reverted) = revert_of {
            assert!(row.contains(&reverted[..12]), "{row}");
        }
    }
    lab.assert_quiet_pass().await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletion_is_refused_by_the_prune_budget_until_policy_allows_it() {
    let (lab, initial) = Lab::start(fast_sim(), |_| {}).await;
    lab.applied(&initial).await;
    let s0 = lab.snapshot().await;
    let topology = lab.topology();
    let all: BTreeSet<String> = topology.components.keys().cloned().collect();

    // Scenario 11: a commit removing every service is refused by the prune budget (30% in example-repo):
    // nothing is deleted, and the status says how to allow it.
    let mark = lab.mark();
    for name in all.iter().filter(|n| *n != SHARED_COMPONENT) {
        lab.remove(&format!("services/{name}.yaml"));
    }
    let wipe = lab.commit("Remove every service");
    let status = lab.finished(&wipe, PassResult::Stalled).await;
    let writes = lab.writes_since(mark);
    assert!(writes.is_empty(), "a refused prune wrote: {writes:?}");
    assert_same(
        "after the refused prune",
        &s0.objects,
        &lab.snapshot().await.objects,
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(initial.as_str()));
    let ready = status.condition("Ready").expect("Ready condition");
    assert_eq!(ready.status, "False");
    for needle in [
        &wipe[..12],
        "prune would delete",
        "over the budget of 30%",
        "spec.policy.pruneBudgetPercent",
        "--allow-prune-over-budget",
    ] {
        assert!(
            ready.message.contains(needle),
            "{needle:?} not in: {}",
            ready.message
        );
    }

    let table = lab.keelson(&["status"]).await;
    assert!(
        table.contains("Stalled") && table.contains("spec.policy.pruneBudgetPercent"),
        "`keelson status` says how to allow it:\n{table}"
    );

    // Scenario 11: with the allowance in policy the prune proceeds, dependents before dependencies.
    let mark = lab.mark();
    lab.edit(
        "keelson.yaml",
        "pruneBudgetPercent: 30",
        "pruneBudgetPercent: 100",
    );
    let allow = lab.commit("Allow removing every service");
    let status = lab.applied(&allow).await;
    let s2 = lab.snapshot().await;
    let writes = lab.writes_since(mark);
    assert!(
        writes.iter().all(|r| r.verb == "delete"),
        "only deletions: {writes:?}"
    );
    let owners = lab.owners(&[&s0]);
    // keelson.yaml (and its shared Secrets) stays; every service goes.
    let services: BTreeSet<String> = all.iter().filter(|n| *n != SHARED_COMPONENT).cloned().collect();
    assert_eq!(written_components(&writes, &owners), services);
    assert_eq!(written(&writes), lab.changed(&s0, &s2));
    let edges = assert_dependency_order(&topology, &services, &write_positions(&writes, &owners), true);
    assert!(edges > 40, "only {edges} dependency edges checked");
    // Persistent data stays (policy prunePersistentData: false), and so do Secrets: keelson.yaml's are
    // still declared, the removed services' generated ones are kept without a tombstone. Nothing else does.
    let kept: BTreeSet<&str> = s2.objects.keys().map(|k| k.1.as_str()).collect();
    assert!(
        kept.iter()
            .all(|k| *k == "PersistentVolumeClaim" || *k == "Namespace" || *k == "Secret"),
        "{kept:?}"
    );
    assert_eq!(status.history[0].counts.deleted, writes.len());

    // Scenario 12: every pass above is in the history.
    assert_history(
        &lab,
        &[
            (&allow, None, PassResult::Succeeded),
            (&wipe, None, PassResult::Stalled),
            (&initial, None, PassResult::Succeeded),
        ],
    )
    .await;
    lab.assert_quiet_pass().await;
    lab.stop().await;
}

/// A refused plan writes nothing, so the status keeps reporting the components of the applied revision
/// (as it does after an invalid commit, see `assert_stalled`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_plan_keeps_reporting_the_components_of_the_applied_revision() {
    let (lab, initial) = Lab::start(fast_sim(), |_| {}).await;
    let applied = lab.applied(&initial).await;
    for name in lab
        .topology()
        .components
        .keys()
        .filter(|n| *n != SHARED_COMPONENT)
    {
        lab.remove(&format!("services/{name}.yaml"));
    }
    let wipe = lab.commit("Remove every service");
    let status = lab.finished(&wipe, PassResult::Stalled).await;
    assert_eq!(status.components, applied.components);
    lab.stop().await;
}
