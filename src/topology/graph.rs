//! The dependency graph between components: topological waves, transitive closures, cycle search,
//! and drawings as text, Graphviz DOT and Mermaid. Every walk is iterative, so a chain of
//! thousands of components needs no deep call stack.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use super::{Topology, WaitFor};

/// Components in apply order: wave `n` holds the components whose dependencies all lie in earlier
/// waves; names are sorted inside a wave. Components on a cycle (impossible in a validated
/// topology) are left out.
pub fn waves(topology: &Topology) -> Vec<Vec<String>> {
    levels(&edges(topology)).0
}

/// The wave index (0-based) of each component.
pub fn wave_index(topology: &Topology) -> BTreeMap<String, usize> {
    waves(topology)
        .into_iter()
        .enumerate()
        .flat_map(|(i, wave)| wave.into_iter().map(move |name| (name, i)))
        .collect()
}

/// Every component that depends on `name`, directly or through others.
pub fn dependents(topology: &Topology, name: &str) -> BTreeSet<String> {
    let mut reverse: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (component, deps) in edges(topology) {
        for dep in deps {
            reverse.entry(dep).or_default().push(component);
        }
    }
    reachable(&reverse, name)
}

/// Every component `name` depends on, directly or through others.
pub fn dependencies(topology: &Topology, name: &str) -> BTreeSet<String> {
    reachable(&edges(topology), name)
}

/// Output formats of `keelson graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Dot,
    Mermaid,
}

pub fn format(topology: &Topology, format: Format) -> String {
    match format {
        Format::Text => format_text(topology),
        Format::Dot => format_dot(topology),
        Format::Mermaid => format_mermaid(topology),
    }
}

/// One line per wave: `wave 1: mariadb, memcached, rabbitmq`, then each component's direct
/// dependencies.
pub fn format_text(topology: &Topology) -> String {
    let mut out = String::new();
    if topology.components.is_empty() {
        out.push_str("no components\n");
    }
    for (i, wave) in waves(topology).iter().enumerate() {
        let _ = writeln!(out, "wave {}: {}", i + 1, wave.join(", "));
        for name in wave {
            if let Some(component) = topology.components.get(name) {
                let deps: BTreeSet<String> = component
                    .spec
                    .depends_on
                    .iter()
                    .map(|d| match d.wait_for {
                        WaitFor::Healthy => d.component.clone(),
                        other => format!("{} [{}]", d.component, other.label()),
                    })
                    .collect();
                if deps.is_empty() {
                    let _ = writeln!(out, "  {name} ({})", component.project);
                } else {
                    let deps: Vec<String> = deps.into_iter().collect();
                    let _ = writeln!(out, "  {name} ({}) <- {}", component.project, deps.join(", "));
                }
            }
        }
    }
    out
}

/// Graphviz: one cluster per project; an edge `a -> b` means `a` depends on `b`.
pub fn format_dot(topology: &Topology) -> String {
    let mut out = String::from("digraph keelson {\n  rankdir=LR;\n  node [shape=box];\n");
    for (project, members) in projects(topology) {
        let _ = writeln!(out, "  subgraph {} {{", dot_id(&format!("cluster_{project}")));
        let _ = writeln!(out, "    label={};", dot_id(project));
        for member in members {
            let _ = writeln!(out, "    {};", dot_id(member));
        }
        out.push_str("  }\n");
    }
    for (component, deps) in edges(topology) {
        for dep in deps {
            let style = match wait_for(topology, component, dep) {
                WaitFor::Healthy => String::new(),
                other => format!(" [style=dashed, label={}]", dot_id(other.label())),
            };
            let _ = writeln!(out, "  {} -> {}{style};", dot_id(component), dot_id(dep));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart: one subgraph per project; an edge `a --> b` means `a` depends on `b`.
pub fn format_mermaid(topology: &Topology) -> String {
    // Mermaid ids may not contain every character a name can; number the nodes instead.
    let ids: BTreeMap<&str, String> = topology
        .components
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), format!("c{i}")))
        .collect();
    let mut out = String::from("flowchart LR\n");
    for (i, (project, members)) in projects(topology).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph p{i} [\"{}\"]", mermaid_text(project));
        for member in members {
            if let Some(id) = ids.get(member) {
                let _ = writeln!(out, "    {id}[\"{}\"]", mermaid_text(member));
            }
        }
        out.push_str("  end\n");
    }
    for (component, deps) in edges(topology) {
        for dep in deps {
            if let (Some(from), Some(to)) = (ids.get(component), ids.get(dep)) {
                match wait_for(topology, component, dep) {
                    WaitFor::Healthy => {
                        let _ = writeln!(out, "  {from} --> {to}");
                    }
                    other => {
                        let _ = writeln!(out, "  {from} -. {} .-> {to}", other.label());
                    }
                }
            }
        }
    }
    out
}

/// Component -> its known, distinct dependencies.
fn edges(topology: &Topology) -> BTreeMap<&str, Vec<&str>> {
    topology
        .components
        .iter()
        .map(|(name, component)| {
            let deps: BTreeSet<&str> = component
                .spec
                .depends_on
                .iter()
                .map(|d| d.component.as_str())
                .filter(|dep| topology.components.contains_key(*dep))
                .collect();
            (name.as_str(), deps.into_iter().collect())
        })
        .collect()
}

/// What `component` waits for of `dep`.
fn wait_for(topology: &Topology, component: &str, dep: &str) -> WaitFor {
    topology
        .components
        .get(component)
        .and_then(|c| c.spec.depends_on.iter().find(|d| d.component == dep))
        .map_or(WaitFor::Healthy, |d| d.wait_for)
}

fn projects(topology: &Topology) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, component) in &topology.components {
        out.entry(component.project.as_str())
            .or_default()
            .push(name.as_str());
    }
    out
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn reachable<N>(graph: &BTreeMap<N, Vec<N>>, start: &str) -> BTreeSet<String>
where
    N: AsRef<str> + Ord + std::borrow::Borrow<str>,
{
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<&str> = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            if next.as_ref() != start && seen.insert(next.as_ref().to_string()) {
                queue.push_back(next.as_ref());
            }
        }
    }
    seen
}

/// Kahn's algorithm by levels over `node -> dependencies`. Dependencies that are not nodes are
/// ignored. Returns the waves and the nodes that could not be placed (those on or behind a cycle).
pub(crate) fn levels<N>(graph: &BTreeMap<N, Vec<N>>) -> (Vec<Vec<String>>, BTreeSet<String>)
where
    N: AsRef<str> + Ord + std::borrow::Borrow<str>,
{
    let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (node, deps) in graph {
        let known: BTreeSet<&str> = deps
            .iter()
            .map(AsRef::as_ref)
            .filter(|d| graph.contains_key(*d))
            .collect();
        pending.insert(node.as_ref(), known.len());
        for dep in known {
            dependents.entry(dep).or_default().push(node.as_ref());
        }
    }
    let mut current: Vec<&str> = pending
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut waves = Vec::new();
    while !current.is_empty() {
        current.sort_unstable();
        let mut next = Vec::new();
        for node in &current {
            placed.insert(node);
            for dependent in dependents.get(node).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(count) = pending.get_mut(dependent) {
                    *count -= 1;
                    if *count == 0 {
                        next.push(*dependent);
                    }
                }
            }
        }
        waves.push(current.iter().map(|s| s.to_string()).collect());
        current = next;
    }
    let stuck = pending
        .keys()
        .filter(|k| !placed.contains(*k))
        .map(|k| k.to_string())
        .collect();
    (waves, stuck)
}

/// Cycles of `node -> dependencies`, each as its nodes in dependency order starting from its
/// smallest name (the first node is not repeated). At least one cycle is reported for every
/// tangle of nodes that cannot be ordered; cycles sharing nodes with a reported one may be omitted.
pub(crate) fn cycles<N>(graph: &BTreeMap<N, Vec<N>>) -> Vec<Vec<String>>
where
    N: AsRef<str> + Ord + std::borrow::Borrow<str>,
{
    let (_, mut remaining) = levels(graph);
    let mut found = Vec::new();
    while let Some(start) = remaining.iter().next().cloned() {
        remaining.remove(&start);
        // Shortest path from `start` back to itself through nodes still in play.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue: VecDeque<&str> = VecDeque::from([start.as_str()]);
        let mut closing: Option<&str> = None;
        'search: while let Some(node) = queue.pop_front() {
            let deps: BTreeSet<&str> = graph
                .get(node)
                .map(|d| d.iter().map(AsRef::as_ref).collect())
                .unwrap_or_default();
            for dep in deps {
                if dep == start {
                    closing = Some(node);
                    break 'search;
                }
                if remaining.contains(dep) && !parent.contains_key(dep) {
                    parent.insert(dep, node);
                    queue.push_back(dep);
                }
            }
        }
        let Some(mut node) = closing else { continue };
        let mut path = vec![node.to_string()];
        while node != start {
            match parent.get(node) {
                Some(p) => node = p,
                None => break,
            }
            path.push(node.to_string());
        }
        path.reverse();
        for member in &path {
            remaining.remove(member);
        }
        found.push(path);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(node, dependencies)` pairs, and the expected result as lists of names.
    type Edges<'a> = &'a [(&'a str, &'a [&'a str])];
    type Lists<'a> = &'a [&'a [&'a str]];

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(n, deps)| (n.to_string(), deps.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn levels_order_dependencies_first() {
        let cases: &[(Edges, Lists)] = &[
            (&[], &[]),
            (&[("a", &[])], &[&["a"]]),
            (&[("b", &["a"]), ("a", &[])], &[&["a"], &["b"]]),
            (
                &[
                    ("keystone", &["mariadb", "memcached"]),
                    ("mariadb", &[]),
                    ("memcached", &[]),
                    ("glance", &["keystone"]),
                ],
                &[&["mariadb", "memcached"], &["keystone"], &["glance"]],
            ),
            // Diamond: d waits for the longest path.
            (
                &[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["a", "c"])],
                &[&["a"], &["b"], &["c"], &["d"]],
            ),
            // Unknown dependencies are ignored here; validation reports them.
            (&[("a", &["ghost"])], &[&["a"]]),
        ];
        for (edges, want) in cases {
            let (waves, stuck) = levels(&graph(edges));
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|w| w.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(waves, want, "{edges:?}");
            assert!(stuck.is_empty());
        }
    }

    #[test]
    fn cycles_are_found_and_rotated_to_smallest_name() {
        let cases: &[(Edges, Lists)] = &[
            (&[("a", &["b"]), ("b", &[])], &[]),
            (
                &[("a", &["b"]), ("b", &["c"]), ("c", &["a"])],
                &[&["a", "b", "c"]],
            ),
            (&[("b", &["a"]), ("a", &["b"]), ("x", &["a"])], &[&["a", "b"]]),
            (&[("a", &["a"])], &[&["a"]]),
            (
                &[
                    ("a", &["b"]),
                    ("b", &["a"]),
                    ("c", &["d"]),
                    ("d", &["c"]),
                    ("e", &["a", "c"]),
                ],
                &[&["a", "b"], &["c", "d"]],
            ),
        ];
        for (edges, want) in cases {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|w| w.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(cycles(&graph(edges)), want, "{edges:?}");
        }
    }

    #[test]
    fn long_chains_need_no_recursion() {
        let n = 20_000;
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in 0..n {
            let deps = if i == 0 {
                vec![]
            } else {
                vec![format!("c{:05}", i - 1)]
            };
            g.insert(format!("c{i:05}"), deps);
        }
        assert_eq!(levels(&g).0.len(), n);
        g.get_mut("c00000").unwrap().push(format!("c{:05}", n - 1));
        let found = cycles(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n);
    }
}
