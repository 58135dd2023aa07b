//! Schema-downgrade detection. OpenStack services migrate their database in pre-jobs (`db-sync`); moving such
//! a component back to an image of an older release runs old code against a newer schema, which a database
//! cannot be rolled back from by Kubernetes. So a plan that moves a component with pre-jobs to an older
//! OpenStack series than the one live is refused unless the commit or the policy allows it.
//!
//! Only the release series is compared (`2024.2 < 2025.1 < 2025.2 < master`): stable branches of one series do
//! not add migrations, so a change inside a series (a rebuilt image, another base distribution) is no risk.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::object::LABEL_SERVICE;
use crate::render::{RenderedObject, Stage};
use crate::topology::Topology;

use super::migration::{MigrationKind, classify};
use super::model::{PlanWarning, RefusalReason, WarningKind};
use super::order::ObjectKey;

/// The allowance value that allows every component's downgrade.
pub const ALLOW_ALL: &str = "all";

/// The commit trailer that allows a schema downgrade: `Keelson-Allow-Downgrade: nova, glance-api`.
pub const ALLOW_TRAILER: &str = "Keelson-Allow-Downgrade";

/// The names a commit's `Keelson-Allow-Downgrade` trailers (key, value) allow (key case-insensitive;
/// values separated by commas or spaces; lowercased, as component and project names are).
pub fn allowed_downgrades(trailers: &[(String, String)]) -> BTreeSet<String> {
    trailers
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(ALLOW_TRAILER))
        .flat_map(|(_, value)| {
            value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// OpenStack releases by name, for tags that name the release instead of its series number.
const RELEASES: &[(&str, Series)] = &[
    ("stein", Series::Numbered(2019, 1)),
    ("train", Series::Numbered(2019, 2)),
    ("ussuri", Series::Numbered(2020, 1)),
    ("victoria", Series::Numbered(2020, 2)),
    ("wallaby", Series::Numbered(2021, 1)),
    ("xena", Series::Numbered(2021, 2)),
    ("yoga", Series::Numbered(2022, 1)),
    ("zed", Series::Numbered(2022, 2)),
    ("antelope", Series::Numbered(2023, 1)),
    ("bobcat", Series::Numbered(2023, 2)),
    ("caracal", Series::Numbered(2024, 1)),
    ("dalmatian", Series::Numbered(2024, 2)),
    ("epoxy", Series::Numbered(2025, 1)),
    ("flamingo", Series::Numbered(2025, 2)),
    ("gazpacho", Series::Numbered(2026, 1)),
];

/// An OpenStack release series a tag was built from. `master` is newer than every numbered series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Series {
    Numbered(u32, u32),
    Master,
}

/// How the desired image relates to the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Same image, or another build of the same series.
    Same,
    Upgrade,
    /// An older series: the database may already carry migrations the desired code does not know.
    Downgrade,
    /// The images differ but cannot be ordered (a digest, a tag that names no series). Not blocked, but reported.
    Unknown(String),
    /// Different image names: not the same service image, nothing to compare.
    Unrelated,
}

/// An image reference split into repository, tag and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageRef<'a> {
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn parse_image(image: &str) -> ImageRef<'_> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon after the last slash separates the tag; one before it is a registry port.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => ImageRef {
            repository: &name[..last_slash + i],
            tag: Some(&name[last_slash + i + 1..]).filter(|t| !t.is_empty()),
            digest,
        },
        None => ImageRef {
            repository: name,
            tag: None,
            digest,
        },
    }
}

/// The series a Kolla tag was built from: a leading `YYYY.N` (`2025.1-ubuntu-noble`), `master`, or a release
/// name (`epoxy`, `dalmatian-ubuntu-jammy`), each followed by nothing or `-...`.
pub fn tag_series(tag: &str) -> Option<Series> {
    let head = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
    if head == "master" {
        return Some(Series::Master);
    }
    if let Some((_, series)) = RELEASES.iter().find(|(name, _)| *name == head) {
        return Some(*series);
    }
    let (year, number) = head.split_once('.')?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let year = digits(year, 4..=4)?;
    let number = digits(number, 1..=2)?;
    (year >= 2000 && number >= 1).then_some(Series::Numbered(year, number))
}

/// Compare the live image with the desired one.
pub fn compare_images(live: &str, desired: &str) -> Direction {
    if live == desired {
        return Direction::Same;
    }
    let (l, d) = (parse_image(live), parse_image(desired));
    // The image name, not the whole repository: moving to a mirror (`registry.local/kolla/nova-api`) in the
    // same commit as a rollback must not hide the rollback.
    let name = |repository: &str| repository.rsplit('/').next().unwrap_or(repository).to_string();
    if name(l.repository) != name(d.repository) {
        return Direction::Unrelated;
    }
    let (Some(live_tag), Some(desired_tag)) = (l.tag, d.tag) else {
        let what = if l.digest.is_some() || d.digest.is_some() {
            "an image pinned by digest has no release to compare"
        } else {
            "an image without a tag has no release to compare"
        };
        return Direction::Unknown(what.to_string());
    };
    match (tag_series(live_tag), tag_series(desired_tag)) {
        (Some(from), Some(to)) => match to.cmp(&from) {
            Ordering::Less => Direction::Downgrade,
            Ordering::Equal => Direction::Same,
            Ordering::Greater => Direction::Upgrade,
        },
        (from, _) => {
            let unreadable = if from.is_none() { live_tag } else { desired_tag };
            Direction::Unknown(format!("tag `{unreadable}` names no OpenStack release series"))
        }
    }
}

/// The tag of an image for messages; the digest or the whole reference when it has none.
fn tag_of(image: &str) -> String {
    let r = parse_image(image);
    r.tag
        .or(r.digest)
        .map(str::to_string)
        .unwrap_or_else(|| image.to_string())
}

/// Container images of a pod-bearing object (workload or job), containers and init containers.
fn images(object: &Value) -> Vec<&str> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|field| object.pointer(&format!("/spec/template/spec/{field}")))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect()
}

/// What the planner does with one component's detected image change.
pub(super) enum Finding {
    /// Refuse the workload object: a blocking refusal with this reason and message.
    Refuse(RefusalReason, String),
    /// Apply, but report.
    Warn(PlanWarning),
}

/// Downgrade findings keyed by the desired workload object they are reported on.
///
/// `live_owned` maps object identity to the owned live object. `allow` holds the names from the commit
/// trailer and the operator's flags (component names, project names, or `all`).
pub(super) fn findings(
    topology: &Topology,
    desired: &[RenderedObject],
    live_owned: &BTreeMap<ObjectKey, &Value>,
    allow: &BTreeSet<String>,
) -> BTreeMap<ObjectKey, Vec<Finding>> {
    let with_pre_jobs: BTreeSet<&str> = desired
        .iter()
        .filter(|o| o.stage == Stage::PreJob)
        .map(|o| o.component.as_str())
        .collect();
    let mut out: BTreeMap<ObjectKey, Vec<Finding>> = BTreeMap::new();
    for component in with_pre_jobs {
        let workloads: Vec<&RenderedObject> = desired
            .iter()
            .filter(|o| o.component == component && o.stage == Stage::Workload)
            .collect();
        // The refusal goes on the first workload; without one there is nothing running old code to refuse.
        let Some(anchor) = workloads.first() else {
            continue;
        };
        let live_images: BTreeSet<&str> = workloads
            .iter()
            .filter_map(|w| live_owned.get(&ObjectKey::of(&w.reference)))
            .flat_map(|live| images(live))
            .collect();
        if live_images.is_empty() {
            continue;
        }
        let desired_images: BTreeSet<&str> = desired
            .iter()
            .filter(|o| o.component == component && matches!(o.stage, Stage::Workload | Stage::PreJob))
            .flat_map(|o| images(&o.body))
            .collect();

        let mut downgrades = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for to in &desired_images {
            for from in &live_images {
                match compare_images(from, to) {
                    Direction::Downgrade => {
                        downgrades.insert((*from, *to));
                    }
                    Direction::Unknown(why) => {
                        unknown.insert((*from, *to, why));
                    }
                    Direction::Same | Direction::Upgrade | Direction::Unrelated => {}
                }
            }
        }
        let findings = out.entry(ObjectKey::of(&anchor.reference)).or_default();
        for (from, to, why) in unknown {
            findings.push(Finding::Warn(PlanWarning {
                reference: anchor.reference.clone(),
                component: component.to_string(),
                kind: WarningKind::ImageOrderUnknown {
                    from: from.to_string(),
                    to: to.to_string(),
                },
                message: format!(
                    "component {component} has database migrations (pre-jobs) and moves from image {from} to \
                     {to}, which cannot be ordered ({why}); it is applied, so check that this is not a \
                     rollback past a schema migration"
                ),
            }));
        }
        // One finding per component: several images of one release (workload and db-sync) tell one story.
        let Some((from, to)) = downgrades.into_iter().next() else {
            continue;
        };
        let (from_tag, to_tag) = (tag_of(from), tag_of(to));
        let contracted = completed_contract(live_owned, component);
        let contract_text = match &contracted {
            Some(job) => format!(
                "; its contract phase ran on {from_tag} (Job {job} completed), which removed what older code \
                 reads, so {to_tag} needs the database restored from before the upgrade"
            ),
            None => String::new(),
        };
        let project = topology
            .components
            .get(component)
            .map(|c| c.project.as_str())
            .unwrap_or(component);
        let allowed_by = [ALLOW_ALL, component, project]
            .into_iter()
            .find(|name| allow.contains(*name))
            .map(|name| format!("commit trailer `{ALLOW_TRAILER}: {name}`"))
            .or_else(|| {
                topology
                    .spec
                    .policy
                    .allow_schema_downgrade
                    .then(|| "spec.policy.allowSchemaDowngrade".to_string())
            });
        match allowed_by {
            Some(allowed_by) => findings.push(Finding::Warn(PlanWarning {
                reference: anchor.reference.clone(),
                component: component.to_string(),
                message: format!(
                    "schema-downgrade risk allowed by {allowed_by}: component {component} has database \
                     migrations (pre-jobs) and moves from {from_tag} back to the older release \
                     {to_tag}{contract_text}"
                ),
                kind: WarningKind::SchemaDowngradeAllowed {
                    from: from_tag,
                    to: to_tag,
                    allowed_by,
                },
            })),
            None => findings.push(Finding::Refuse(
                RefusalReason::SchemaDowngrade {
                    from: from_tag.clone(),
                    to: to_tag.clone(),
                },
                match &contracted {
                    Some(job) => format!(
                        "schema downgrade after contract: component {component} ran the contract phase of \
                         {from_tag} (Job {job} completed), which removed the columns and tables the older \
                         release {to_tag} reads, so its code cannot run against this database; restore the \
                         database from before the upgrade first, then allow the move with the trailer \
                         `{ALLOW_TRAILER}: {component}` (or `{project}`, or `{ALLOW_ALL}`)"
                    ),
                    None => format!(
                        "schema-downgrade risk: component {component} has database migrations (pre-jobs) and \
                         would move from {from_tag} back to the older release {to_tag}, whose code may not run \
                         against the migrated database; to allow it, add the trailer `{ALLOW_TRAILER}: \
                         {component}` (or `{project}`, or `{ALLOW_ALL}`) to the commit message, or set \
                         `spec.policy.allowSchemaDowngrade: true` in keelson.yaml"
                    ),
                },
            )),
        }
    }
    out.retain(|_, f| !f.is_empty());
    out
}

/// The live, completed Job of `component` that ran a contract phase (`db_sync --contract`,
/// `db contract`, `upgrade --contract`), as `namespace/name`: its release's schema no longer serves older
/// code.
fn completed_contract(live_owned: &BTreeMap<ObjectKey, &Value>, component: &str) -> Option<String> {
    // The job's name as written in the service file is on its Pods' labels.
    let label = |o: &Value, at: &str, key: &str| {
        o.pointer(at)
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    live_owned.values().find_map(|job| {
        let is_job = job.get("kind").and_then(Value::as_str) == Some("Job");
        if !is_job || label(job, "/metadata/labels", LABEL_SERVICE).as_deref() != Some(component) {
            return None;
        }
        let name = super::impact::job_label(job)?;
        if classify(name, "") != Some(MigrationKind::Contract) {
            return None;
        }
        let complete = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Complete" && c["status"] == "True"));
        let namespace = job
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let object = job
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        complete.then(|| format!("{namespace}/{object}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_series_table() {
        let rows: &[(&str, Option<Series>)] = &[
            ("2025.1-ubuntu-noble", Some(Series::Numbered(2025, 1))),
            ("2024.2-ubuntu-jammy", Some(Series::Numbered(2024, 2))),
            ("2025.2", Some(Series::Numbered(2025, 2))),
            ("2025.10-rocky-9", Some(Series::Numbered(2025, 10))),
            ("master-ubuntu-noble", Some(Series::Master)),
            ("master", Some(Series::Master)),
            ("epoxy", Some(Series::Numbered(2025, 1))),
            ("Dalmatian-ubuntu-jammy", Some(Series::Numbered(2024, 2))),
            ("zed", Some(Series::Numbered(2022, 2))),
            ("latest", None),
            ("17.1.0", None),
            ("2025", None),
            ("2025.", None),
            ("2025.x-ubuntu", None),
            ("25.1-ubuntu", None),
            ("2025.0", None),
            ("2025.123", None),
            ("", None),
            ("masterful", None),
        ];
        for (tag, want) in rows {
            assert_eq!(tag_series(tag), *want, "{tag:?}");
        }
    }

    #[test]
    fn series_order() {
        let ordered = [
            Series::Numbered(2024, 1),
            Series::Numbered(2024, 2),
            Series::Numbered(2025, 1),
            Series::Numbered(2025, 2),
            Series::Numbered(2025, 10),
            Series::Master,
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn compare_images_table() {
        let repo = "quay.io/openstack.kolla/nova-api";
        let img = |tag: &str| format!("{repo}:{tag}");
        let digest = |d: &str| format!("{repo}@sha256:{d}");
        let rows: Vec<(String, String, &str)> = vec![
            (img("2025.1-ubuntu-noble"), img("2025.1-ubuntu-noble"), "same"),
            (img("2025.1-ubuntu-noble"), img("2025.1-ubuntu-jammy"), "same"),
            (img("2025.1-ubuntu-noble"), img("2025.2-ubuntu-noble"), "upgrade"),
            (
                img("2025.2-ubuntu-noble"),
                img("2025.1-ubuntu-noble"),
                "downgrade",
            ),
            (
                img("2025.1-ubuntu-noble"),
                img("2024.2-ubuntu-jammy"),
                "downgrade",
            ),
            (
                img("master-ubuntu-noble"),
                img("2025.2-ubuntu-noble"),
                "downgrade",
            ),
            (img("2025.1"), img("master"), "upgrade"),
            (img("epoxy"), img("dalmatian"), "downgrade"),
            (img("epoxy"), img("2025.1-ubuntu-noble"), "same"),
            (digest("aaaa"), digest("bbbb"), "unknown"),
            (img("2025.2-ubuntu-noble"), digest("bbbb"), "unknown"),
            (digest("aaaa"), digest("aaaa"), "same"),
            (img("latest"), img("2025.1-ubuntu-noble"), "unknown"),
            (img("2025.1-ubuntu-noble"), img("hotfix"), "unknown"),
            (repo.to_string(), img("2025.1"), "unknown"),
            (
                format!("{}@sha256:aaaa", img("2025.2-ubuntu-noble")),
                format!("{}@sha256:bbbb", img("2025.1-ubuntu-noble")),
                "downgrade",
            ),
            (
                img("2025.2-ubuntu-noble"),
                "quay.io/openstack.kolla/glance-api:2025.1-ubuntu-noble".to_string(),
                "unrelated",
            ),
            (
                img("2025.2-ubuntu-noble"),
                "registry.local:5000/kolla/nova-api:2025.1-ubuntu-noble".to_string(),
                "downgrade",
            ),
            (
                img("2025.2-ubuntu-noble"),
                "quay.io/openstack.kolla/nova-api-extra:2025.1-ubuntu-noble".to_string(),
                "unrelated",
            ),
            (
                "registry:5000/nova-api:2025.2".to_string(),
                "registry:5000/nova-api:2025.1".to_string(),
                "downgrade",
            ),
            (
                "registry:5000/nova-api".to_string(),
                "registry:5000/nova-api:2025.1".to_string(),
                "unknown",
            ),
        ];
        for (live, desired, want) in rows {
            let got = match compare_images(&live, &desired) {
                Direction::Same => "same",
                Direction::Upgrade => "upgrade",
                Direction::Downgrade => "downgrade",
                Direction::Unknown(_) => "unknown",
                Direction::Unrelated => "unrelated",
            };
            assert_eq!(got, want, "{live} -> {desired}");
        }
    }

    #[test]
    fn trailer_allowances() {
        type Trailers<'a> = &'a [(&'a str, &'a str)];
        let rows: &[(Trailers, &[&str])] = &[
            (&[("Keelson-Allow-Downgrade", "nova")], &["nova"]),
            (
                &[
                    ("KEELSON-ALLOW-DOWNGRADE", "Nova-API, glance"),
                    ("keelson-allow-downgrade", "all"),
                ],
                &["all", "glance", "nova-api"],
            ),
            (&[("Signed-off-by", "A <a@b>")], &[]),
            (&[("Keelson-Allow-Downgrade", "")], &[]),
            (
                &[("Keelson-Allow-Downgrade", " nova  glance,,")],
                &["glance", "nova"],
            ),
        ];
        for (trailers, want) in rows {
            let trailers: Vec<(String, String)> = trailers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(allowed_downgrades(&trailers), want, "{trailers:?}");
        }
    }

    #[test]
    fn image_parts() {
        assert_eq!(
            parse_image("registry:5000/ns/nova-api:2025.1@sha256:ab"),
            ImageRef {
                repository: "registry:5000/ns/nova-api",
                tag: Some("2025.1"),
                digest: Some("sha256:ab"),
            }
        );
        assert_eq!(
            tag_of("quay.io/k/nova-api:2025.1-ubuntu-noble"),
            "2025.1-ubuntu-noble"
        );
        assert_eq!(tag_of("quay.io/k/nova-api@sha256:ab"), "sha256:ab");
    }
}
