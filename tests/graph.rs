//! The dependency graph of loaded topologies: waves, closures, drawings, cycles and size.

use std::collections::BTreeMap;
use std::process::Command;

use keelson::source::{Revision, Snapshot, SnapshotEntry};
use keelson::topology::{self, Topology, graph};

const TOPOLOGY: &str =
    "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: cloud\nspec:\n  namespace: openstack\n";

fn service(name: &str, project: Option<&str>, deps: &[&str]) -> String {
    let mut text = format!("apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n");
    if let Some(project) = project {
        text.push_str(&format!("  project: {project}\n"));
    }
    if !deps.is_empty() {
        text.push_str("  dependsOn:\n");
        for dep in deps {
            text.push_str(&format!("    - {dep}\n"));
        }
    }
    text.push_str(&format!("  image: {name}\n"));
    text
}

fn snapshot(services: &[(String, String)]) -> Snapshot {
    let mut entries = BTreeMap::new();
    entries.insert(
        "keelson.yaml".to_string(),
        SnapshotEntry::File(TOPOLOGY.as_bytes().to_vec()),
    );
    for (name, text) in services {
        entries.insert(
            format!("services/{name}.yaml"),
            SnapshotEntry::File(text.as_bytes().to_vec()),
        );
    }
    Snapshot::new(
        Revision {
            id: "test".into(),
            origin: "memory".into(),
        },
        None,
        entries,
    )
}

/// A small OpenStack: infrastructure, identity, image, placement, compute and network. The nova and
/// neutron *projects* depend on each other (compute needs the network server, the metadata agent
/// needs the compute API), but their components do not form a cycle.
fn openstack() -> Topology {
    let defs: &[(&str, Option<&str>, &[&str])] = &[
        ("mariadb", None, &[]),
        ("memcached", None, &[]),
        ("rabbitmq", None, &[]),
        ("keystone", None, &["mariadb", "memcached"]),
        ("glance-api", Some("glance"), &["keystone", "mariadb"]),
        ("placement-api", Some("placement"), &["keystone", "mariadb"]),
        ("nova-conductor", Some("nova"), &["mariadb", "rabbitmq"]),
        (
            "nova-api",
            Some("nova"),
            &["keystone", "placement-api", "rabbitmq"],
        ),
        ("nova-scheduler", Some("nova"), &["placement-api", "rabbitmq"]),
        ("neutron-server", Some("neutron"), &["keystone", "rabbitmq"]),
        (
            "nova-compute",
            Some("nova"),
            &["nova-conductor", "neutron-server"],
        ),
        ("neutron-metadata-agent", Some("neutron"), &["nova-api"]),
    ];
    let services: Vec<(String, String)> = defs
        .iter()
        .map(|(name, project, deps)| (name.to_string(), service(name, *project, deps)))
        .collect();
    topology::load(&snapshot(&services)).unwrap_or_else(|d| panic!("{d}"))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn openstack_waves_put_dependencies_first() {
    let topology = openstack();
    assert_eq!(
        graph::waves(&topology),
        vec![
            names(&["mariadb", "memcached", "rabbitmq"]),
            names(&["keystone", "nova-conductor"]),
            names(&["glance-api", "neutron-server", "placement-api"]),
            names(&["nova-api", "nova-compute", "nova-scheduler"]),
            names(&["neutron-metadata-agent"]),
        ]
    );
    assert_eq!(topology.components["nova-compute"].project, "nova");
    assert_eq!(topology.components["keystone"].project, "keystone");
}

#[test]
fn closures_follow_edges_transitively() {
    let topology = openstack();
    let dependents: Vec<String> = graph::dependents(&topology, "keystone").into_iter().collect();
    assert_eq!(
        dependents,
        names(&[
            "glance-api",
            "neutron-metadata-agent",
            "neutron-server",
            "nova-api",
            "nova-compute",
            "nova-scheduler",
            "placement-api",
        ])
    );
    let dependencies: Vec<String> = graph::dependencies(&topology, "nova-compute")
        .into_iter()
        .collect();
    assert_eq!(
        dependencies,
        names(&[
            "keystone",
            "mariadb",
            "memcached",
            "neutron-server",
            "nova-conductor",
            "rabbitmq"
        ])
    );
    assert!(graph::dependencies(&topology, "mariadb").is_empty());
    assert!(graph::dependents(&topology, "neutron-metadata-agent").is_empty());
    assert!(graph::dependents(&topology, "no-such-component").is_empty());
}

#[test]
fn drawings_show_projects_as_clusters() {
    let topology = openstack();
    let text = graph::format_text(&topology);
    assert!(
        text.starts_with("wave 1: mariadb, memcached, rabbitmq\n"),
        "{text}"
    );
    assert!(text.contains("wave 5: neutron-metadata-agent\n"), "{text}");
    assert!(
        text.contains("  nova-compute (nova) <- neutron-server, nova-conductor\n"),
        "{text}"
    );

    let dot = graph::format_dot(&topology);
    assert!(dot.starts_with("digraph keelson {"), "{dot}");
    let nova_cluster = dot
        .split("subgraph \"cluster_nova\" {")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .unwrap();
    for member in ["nova-api", "nova-compute", "nova-conductor", "nova-scheduler"] {
        assert!(nova_cluster.contains(&format!("\"{member}\";")), "{dot}");
    }
    assert!(!nova_cluster.contains("neutron"), "{dot}");
    assert!(dot.contains("\"nova-compute\" -> \"neutron-server\";"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 18);

    let mermaid = graph::format_mermaid(&topology);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(mermaid.matches("subgraph ").count(), 8, "{mermaid}");
    assert_eq!(mermaid.matches(" --> ").count(), 18, "{mermaid}");
    assert!(mermaid.contains("[\"nova\"]"), "{mermaid}");
}

#[test]
fn cycles_are_reported_with_their_path_and_a_depends_on_line() {
    let services = vec![
        ("alpha".to_string(), service("alpha", None, &["beta"])),
        ("beta".to_string(), service("beta", None, &["gamma"])),
        ("gamma".to_string(), service("gamma", None, &["alpha"])),
        ("delta".to_string(), service("delta", None, &["alpha"])),
    ];
    let diagnostics = topology::load(&snapshot(&services)).unwrap_err();
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    // At every entry of the cycle, so the file a change edited is among them; delta only leads into it.
    assert_eq!(
        lines,
        [
            "services/alpha.yaml:7:7: spec.dependsOn[0]: dependency cycle: alpha -> beta -> gamma -> alpha; to break it, cut `alpha` -> `beta` (services/alpha.yaml:7): drop that entry, or move what both need into a jobs-only component (`workload: None`) that each depends on",
            "services/beta.yaml:7:7: spec.dependsOn[0]: dependency cycle: beta -> gamma -> alpha -> beta; to break it, cut `alpha` -> `beta` (services/alpha.yaml:7): drop that entry, or move what both need into a jobs-only component (`workload: None`) that each depends on",
            "services/gamma.yaml:7:7: spec.dependsOn[0]: dependency cycle: gamma -> alpha -> beta -> gamma; to break it, cut `alpha` -> `beta` (services/alpha.yaml:7): drop that entry, or move what both need into a jobs-only component (`workload: None`) that each depends on",
        ]
    );
}

#[test]
fn the_graph_command_draws_and_refuses_cycles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    std::fs::write(dir.path().join("keelson.yaml"), TOPOLOGY).unwrap();
    std::fs::write(
        dir.path().join("services/a.yaml"),
        service("a", Some("p"), &["b"]),
    )
    .unwrap();
    std::fs::write(dir.path().join("services/b.yaml"), service("b", Some("p"), &[])).unwrap();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["graph", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        run("text"),
        (
            Some(0),
            "wave 1: b\n  b (p)\nwave 2: a\n  a (p) <- b\n".to_string(),
            String::new()
        )
    );
    let (code, dot, _) = run("dot");
    assert_eq!(code, Some(0));
    assert!(
        dot.contains("subgraph \"cluster_p\"") && dot.contains("\"a\" -> \"b\";"),
        "{dot}"
    );
    let (code, mermaid, _) = run("mermaid");
    assert_eq!(code, Some(0));
    assert!(mermaid.contains("c0 --> c1"), "{mermaid}");
    assert_eq!(run("svg").0, Some(2));

    std::fs::write(
        dir.path().join("services/b.yaml"),
        service("b", Some("p"), &["a"]),
    )
    .unwrap();
    let (code, _, stderr) = run("text");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("services/a.yaml:8:7: spec.dependsOn[0]: dependency cycle: a -> b -> a"),
        "{stderr}"
    );
}

fn chain(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let name = format!("c{i:04}");
            let deps = if i == 0 {
                vec![]
            } else {
                vec![format!("c{:04}", i - 1)]
            };
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            (name.clone(), service(&name, None, &deps))
        })
        .collect()
}

#[test]
fn a_thousand_component_chain_orders_without_recursion() {
    let topology = topology::load(&snapshot(&chain(1000))).unwrap_or_else(|d| panic!("{d}"));
    let waves = graph::waves(&topology);
    assert_eq!(waves.len(), 1000);
    assert!(
        waves
            .iter()
            .enumerate()
            .all(|(i, w)| w == &vec![format!("c{i:04}")])
    );
    assert_eq!(graph::dependents(&topology, "c0000").len(), 999);
    assert_eq!(graph::dependencies(&topology, "c0999").len(), 999);
    assert_eq!(graph::format_dot(&topology).matches(" -> ").count(), 999);
}

#[test]
fn a_thousand_component_ring_is_one_cycle() {
    let mut services = chain(1000);
    services[0].1 = service("c0000", None, &["c0999"]);
    let diagnostics = topology::load(&snapshot(&services)).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics}");
    let message = &diagnostics.0[0].message;
    assert!(
        message.starts_with("dependency cycle: c0000 -> c0999 -> c0998"),
        "{}",
        &message[..80]
    );
    let (path, advice) = message.split_once(';').expect("a cycle names the edge to cut");
    assert!(path.ends_with("c0001 -> c0000"));
    assert_eq!(path.matches(" -> ").count(), 1000);
    assert!(advice.contains("cut `c0000` -> `c0999`"), "{advice}");
}

#[test]
fn a_thousand_wide_topology_is_two_waves() {
    let mut services = vec![("root".to_string(), service("root", None, &[]))];
    for i in 0..1000 {
        let name = format!("leaf{i:04}");
        services.push((name.clone(), service(&name, Some("leaves"), &["root"])));
    }
    let topology = topology::load(&snapshot(&services)).unwrap_or_else(|d| panic!("{d}"));
    let waves = graph::waves(&topology);
    assert_eq!(waves.len(), 2);
    assert_eq!(waves[0], names(&["root"]));
    assert_eq!(waves[1].len(), 1000);
    assert!(waves[1].windows(2).all(|w| w[0] < w[1]));
    assert_eq!(graph::dependents(&topology, "root").len(), 1000);
}

#[test]
fn a_thousand_component_chain_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    std::fs::write(dir.path().join("keelson.yaml"), TOPOLOGY).unwrap();
    for (name, text) in chain(1000) {
        std::fs::write(dir.path().join(format!("services/{name}.yaml")), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("graph")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wave 1000: c0999\n"));
}
