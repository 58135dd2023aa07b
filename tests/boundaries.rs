//! The module boundaries of docs/design (DESIGN.md's module table), read from the source: `cluster` is the
//! only door to Kubernetes (the simulator, which is a Kubernetes API server, excepted), and the arrows the
//! pipeline depends on point one way.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `(file relative to src/, line number, line)` for every code line (comments skipped) in which one of
/// `needles` occurs as a path: outside string literals, preceded by neither a letter, a digit nor `_`.
fn uses(needles: &[&str]) -> Vec<(String, usize, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in sources(&src) {
        let text = std::fs::read_to_string(&file).expect("read source");
        let name = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            // A path, not a word inside a longer name or a string literal (a log filter names crates).
            let hit = needles.iter().any(|needle| {
                line.match_indices(needle).any(|(at, _)| {
                    let before = &line[..at];
                    let in_string = before.matches('"').count() % 2 == 1;
                    let in_word = before
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !in_string && !in_word
                })
            });
            if hit {
                found.push((name.clone(), n + 1, line.trim().to_string()));
            }
        }
    }
    found
}

fn report(found: &[(String, usize, String)]) -> String {
    found
        .iter()
        .map(|(file, line, text)| format!("src/{file}:{line}: {text}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_cluster_and_the_simulator_talk_to_kubernetes_through_kube() {
    let outside: Vec<_> = uses(&["kube::", "kube_runtime", "kube_client", "k8s_openapi", "use kube"])
        .into_iter()
        .filter(|(file, _, _)| !file.starts_with("cluster/") && !file.starts_with("sim/"))
        .collect();
    assert!(
        outside.is_empty(),
        "kube and k8s-openapi are for src/cluster (and src/sim) only; go through `cluster::Kube`:\n{}",
        report(&outside)
    );
}

#[test]
fn the_pipeline_arrows_point_one_way() {
    // (module, modules it must not use, why)
    let rules: &[(&str, &[&str], &str)] = &[
        (
            "rollout/",
            &["crate::topology"],
            "health timeouts and recreate permissions travel on the plan",
        ),
        (
            "plan/",
            &["crate::source"],
            "the commit's allowances come in as values",
        ),
        (
            "cluster/",
            &["crate::render", "crate::plan", "crate::topology"],
            "cluster is a leaf door",
        ),
        (
            "status/",
            &["crate::render", "crate::plan", "crate::topology"],
            "status stores what it is given",
        ),
        (
            "object.rs",
            &["crate::"],
            "the shared vocabulary depends on nothing",
        ),
    ];
    let mut broken = Vec::new();
    for (module, forbidden, why) in rules {
        let found: Vec<_> = uses(forbidden)
            .into_iter()
            .filter(|(file, _, _)| file.starts_with(module))
            .collect();
        if !found.is_empty() {
            broken.push(format!(
                "{module} must not use {forbidden:?} ({why}):\n{}",
                report(&found)
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
