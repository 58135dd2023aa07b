//! How the impact reads to a person; shared by the text and Markdown formats of a review.

use super::impact::{FileChange, JobRun, PodCount, RestartReason, WorkloadEffect, WorkloadImpact};
use super::inventory::stage_name;

/// `3 Pods`, `2 -> 3 Pods`, `one Pod per node with openstack.org/compute=enabled`.
pub fn pods_text(w: &WorkloadImpact) -> String {
    match &w.pods {
        PodCount::Replicas { count, from } => {
            let noun = if *count == 1 { "Pod" } else { "Pods" };
            match from {
                Some(from) if w.effect == WorkloadEffect::Scale => format!("{from} -> {count} {noun}"),
                _ => format!("{count} {noun}"),
            }
        }
        PodCount::PerNode { node_selector } if node_selector.is_empty() => "one Pod per node".to_string(),
        PodCount::PerNode { node_selector } => {
            let selector: Vec<String> = node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("one Pod per node with {}", selector.join(","))
        }
    }
}

/// `restart`, `start`, `scale`, `stop`.
pub fn effect_text(e: WorkloadEffect) -> &'static str {
    match e {
        WorkloadEffect::Start => "start",
        WorkloadEffect::Restart => "restart",
        WorkloadEffect::Scale => "scale",
        WorkloadEffect::Stop => "stop",
    }
}

/// One reason, one line: `image api: 2025.1-ubuntu-noble -> 2025.2-ubuntu-noble`.
pub fn reason_text(r: &RestartReason) -> String {
    match r {
        RestartReason::Image { container, from, to } => {
            let (from, to) = (
                from.as_deref().unwrap_or("(none)"),
                to.as_deref().unwrap_or("(none)"),
            );
            let (from, to) = shorten_images(from, to);
            format!("image of container {container}: {from} -> {to}")
        }
        RestartReason::ConfigFile { file, change, .. } => {
            let what = match change {
                FileChange::Added => "added",
                FileChange::Changed => "changed",
                FileChange::Removed => "removed",
            };
            format!("config file {file} {what}")
        }
        RestartReason::Config { annotation } => format!("configuration changed ({annotation})"),
        RestartReason::Env { container, variables } => {
            format!("env of container {container} changed: {}", variables.join(", "))
        }
        RestartReason::SecretRotated { secrets, annotation } if secrets.is_empty() => {
            format!("a Secret the Pods read was rotated ({annotation})")
        }
        RestartReason::SecretRotated { secrets, .. } => {
            format!("Secret {} rotated", secrets.join(", "))
        }
        RestartReason::PodSpec { fields } => format!("pod spec changed: {}", fields.join(", ")),
    }
}

/// The same repository on both sides prints as its tags only.
fn shorten_images<'a>(from: &'a str, to: &'a str) -> (&'a str, &'a str) {
    let split = |image: &'a str| -> Option<(&'a str, &'a str)> {
        let slash = image.rfind('/').map_or(0, |i| i + 1);
        let colon = image[slash..].rfind(':')? + slash;
        (!image.contains('@')).then(|| (&image[..colon], &image[colon + 1..]))
    };
    match (split(from), split(to)) {
        (Some((rf, tf)), Some((rt, tt))) if rf == rt => (tf, tt),
        _ => (from, to),
    }
}

/// `pre-job, schema sync migration, replaces keystone-db-sync-1a2b3c4d`.
pub fn job_text(j: &JobRun) -> String {
    let mut parts = vec![stage_name(j.stage).to_string()];
    if let Some(kind) = j.migration {
        parts.push(format!("migration: {}", kind.as_str()));
    }
    match &j.replaces {
        Some(old) => parts.push(format!("re-runs, replacing {old}")),
        None => parts.push("first run".to_string()),
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_one_repository_print_as_tags() {
        assert_eq!(
            shorten_images(
                "quay.io/k/nova-api:2025.1-ubuntu-noble",
                "quay.io/k/nova-api:2025.2-ubuntu-noble"
            ),
            ("2025.1-ubuntu-noble", "2025.2-ubuntu-noble")
        );
        assert_eq!(
            shorten_images("reg:5000/nova-api:1", "mirror/nova-api:2"),
            ("reg:5000/nova-api:1", "mirror/nova-api:2")
        );
        assert_eq!(
            shorten_images("a@sha256:1", "a@sha256:2"),
            ("a@sha256:1", "a@sha256:2")
        );
    }
}
