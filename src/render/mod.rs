//! Topology -> desired Kubernetes objects. Pure and deterministic: the same topology renders
//! byte-identical objects.
//!
//! Per component: a ConfigMap carrying Kolla's `config.json` files and the config files, a Service for
//! exposed ports (headless for StatefulSets), PersistentVolumeClaims, the workload, its jobs and its raw
//! manifests. `docs/rendering.md` describes the objects, names, labels and hashes.

pub mod bootstrap;
mod canonical;
mod component;
pub mod kolla;
mod manifests;
mod same_node;
pub mod secrets;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

pub use canonical::{hash_value, sha256_hex, to_canonical_string};
pub use secrets::{KeySource, SecretRecipe, TemplatePiece};

use crate::object::{
    ANNOTATION_HASH, ANNOTATION_REVISION, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PART_OF,
    LABEL_ROLE, LABEL_SERVICE, LABEL_TOPOLOGY, MANAGED_BY_VALUE, ObjectRef, ROLE_WORKLOAD,
};
use crate::topology::{Component, Topology};

/// Where an object sits in its component's apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// ConfigMaps, ServiceAccounts, Roles, raw manifests that are configuration.
    Config,
    /// Kubernetes Services.
    Service,
    /// Jobs that must complete before the workload rolls.
    PreJob,
    /// The Deployment, StatefulSet or DaemonSet.
    Workload,
    /// Jobs that run after the workload is healthy.
    PostJob,
}

/// One desired object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedObject {
    pub component: String,
    pub stage: Stage,
    pub reference: ObjectRef,
    /// Order inside the stage: objects of one step are applied together and waited on before the next
    /// step starts (jobs run in the order written, or together when they share a group).
    #[serde(skip_serializing_if = "is_zero")]
    pub step: u32,
    /// How long the object may take to become healthy, when it says so itself (a job's `timeout`);
    /// otherwise the component's health timeout applies.
    #[serde(skip)]
    pub timeout: Option<std::time::Duration>,
    /// Value of the `keelson.dev/hash` annotation.
    pub hash: String,
    /// The complete object as it will be applied. For a Secret Keelson makes: without data.
    pub body: serde_json::Value,
    /// For a Secret Keelson makes: how the rollout makes its values. Never serialized.
    #[serde(skip)]
    pub secret: Option<SecretRecipe>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One object a builder produced, before its identity and hash are stamped.
pub(crate) struct Piece {
    pub stage: Stage,
    pub step: u32,
    pub body: Value,
    pub timeout: Option<std::time::Duration>,
    pub secret: Option<SecretRecipe>,
}

impl Piece {
    pub fn new(stage: Stage, body: Value) -> Self {
        Piece {
            stage,
            step: 0,
            body,
            timeout: None,
            secret: None,
        }
    }
}

/// Settings of one render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Stamped on every object as `keelson.dev/revision`, outside the hash.
    pub revision: Option<String>,
}

/// Every desired object of a topology, in apply order: components by dependency wave (by name inside
/// a wave), inside a component by [`Stage`], then step, then kind, then name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rendered {
    pub objects: Vec<RenderedObject>,
}

impl Rendered {
    /// The objects of one component, in apply order.
    pub fn component<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RenderedObject> + 'a {
        self.objects.iter().filter(move |o| o.component == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("component {component}: {reason}")]
    Inconsistent { component: String, reason: String },
    #[error(
        "component {component}: config file {source_path}: ConfigMap key {key:?} is invalid or already used"
    )]
    ConfigKey {
        component: String,
        source_path: String,
        key: String,
    },
    #[error("component {component}: command: {reason}")]
    Command { component: String, reason: String },
    #[error("component {component}: volume name {name:?} is reserved for the Kolla config mount")]
    ReservedVolume { component: String, name: String },
    #[error("component {component}: job {job}: timeout {value:?}: {source}")]
    JobTimeout {
        component: String,
        job: String,
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("component {component}: manifest {file}:{line}: {reason}")]
    Manifest {
        component: String,
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{reference}: rendered twice (by component {first} and component {second})")]
    Duplicate {
        reference: Box<ObjectRef>,
        first: String,
        second: String,
    },
    #[error("dependency order: {reason}")]
    Order { reason: String },
}

/// Renders every component of `topology` into Kubernetes objects, in apply order.
pub fn render(topology: &Topology, options: &RenderOptions) -> Result<Rendered, RenderError> {
    let mut objects = Vec::new();
    let mut seen: std::collections::BTreeMap<ObjectRef, String> = std::collections::BTreeMap::new();
    for wave in dependency_waves(topology)? {
        for name in wave {
            let Some(component) = topology.components.get(&name) else {
                return Err(RenderError::Order {
                    reason: format!("wave names unknown component {name}"),
                });
            };
            let mut rendered = render_component(topology, component, options)?;
            rendered.sort_by(|a, b| {
                (a.stage, a.step, &a.reference.kind, &a.reference.name).cmp(&(
                    b.stage,
                    b.step,
                    &b.reference.kind,
                    &b.reference.name,
                ))
            });
            for object in &rendered {
                if let Some(first) = seen.insert(object.reference.clone(), object.component.clone()) {
                    return Err(RenderError::Duplicate {
                        reference: Box::new(object.reference.clone()),
                        first,
                        second: object.component.clone(),
                    });
                }
            }
            objects.extend(rendered);
        }
    }
    Ok(Rendered { objects })
}

fn render_component(
    topology: &Topology,
    component: &Component,
    options: &RenderOptions,
) -> Result<Vec<RenderedObject>, RenderError> {
    let ctx = Ctx { topology, component };
    let mut pieces = component::render(&ctx)?;
    pieces.extend(
        manifests::render(&ctx)?
            .into_iter()
            .map(|(stage, body)| Piece::new(stage, body)),
    );
    pieces
        .into_iter()
        .map(|piece| finish(&ctx, piece, options))
        .collect()
}

/// Components grouped into dependency waves; every component appears exactly once.
fn dependency_waves(topology: &Topology) -> Result<Vec<Vec<String>>, RenderError> {
    let waves = crate::topology::graph::waves(topology);
    let listed: BTreeSet<&String> = waves.iter().flatten().collect();
    let count: usize = waves.iter().map(Vec::len).sum();
    if count != topology.components.len() || listed.len() != count {
        return Err(RenderError::Order {
            reason: format!(
                "waves list {count} entries for {} components; the dependency graph is not valid",
                topology.components.len()
            ),
        });
    }
    Ok(waves)
}

/// What every builder needs to know about where it renders.
pub(crate) struct Ctx<'a> {
    pub topology: &'a Topology,
    pub component: &'a Component,
}

impl Ctx<'_> {
    pub fn namespace(&self) -> &str {
        &self.topology.spec.namespace
    }

    /// The labels every object of the component carries. None of them changes across revisions of the
    /// same component except `app.kubernetes.io/name`, which is therefore never used in selectors.
    pub fn labels(&self) -> serde_json::Map<String, Value> {
        let c = self.component;
        let t = &self.topology.name;
        let mut m = serde_json::Map::new();
        for (k, v) in [
            (LABEL_NAME, c.project.as_str()),
            (LABEL_COMPONENT, c.name.as_str()),
            (LABEL_PART_OF, t.as_str()),
            (LABEL_MANAGED_BY, MANAGED_BY_VALUE),
            (LABEL_SERVICE, c.name.as_str()),
            (LABEL_TOPOLOGY, t.as_str()),
        ] {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
        m
    }

    /// Selector of the workload's pods: only labels fixed for the component's lifetime.
    pub fn selector(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(LABEL_SERVICE.into(), Value::String(self.component.name.clone()));
        m.insert(LABEL_TOPOLOGY.into(), Value::String(self.topology.name.clone()));
        m.insert(LABEL_ROLE.into(), Value::String(ROLE_WORKLOAD.into()));
        m
    }

    /// `metadata` of a generated namespaced object.
    pub fn metadata(&self, name: &str) -> Value {
        serde_json::json!({
            "name": name,
            "namespace": self.namespace(),
            "labels": Value::Object(self.labels()),
        })
    }
}

/// Stamps the content hash (and the revision, outside the hash) and derives the object's identity.
fn finish(ctx: &Ctx<'_>, piece: Piece, options: &RenderOptions) -> Result<RenderedObject, RenderError> {
    let Piece {
        stage,
        step,
        mut body,
        timeout,
        secret,
    } = piece;
    let component = ctx.component.name.clone();
    let bad = |reason: &str| RenderError::Inconsistent {
        component: component.clone(),
        reason: reason.to_string(),
    };
    let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(bad("object without metadata"));
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(annotations) = annotations.as_object_mut() else {
        return Err(bad("metadata.annotations is not a map"));
    };
    annotations.remove(ANNOTATION_HASH);
    annotations.remove(ANNOTATION_REVISION);
    let hash = hash_value(&body);
    let reference =
        object_ref(&body).ok_or_else(|| bad("object without apiVersion, kind or metadata.name"))?;
    if let Some(annotations) = body
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(ANNOTATION_HASH.into(), Value::String(hash.clone()));
        if let Some(revision) = &options.revision {
            annotations.insert(ANNOTATION_REVISION.into(), Value::String(revision.clone()));
        }
    }
    Ok(RenderedObject {
        component,
        stage,
        step,
        timeout,
        reference,
        hash,
        body,
        secret,
    })
}

fn object_ref(body: &Value) -> Option<ObjectRef> {
    Some(ObjectRef {
        api_version: body.get("apiVersion")?.as_str()?.to_string(),
        kind: body.get("kind")?.as_str()?.to_string(),
        namespace: body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        name: body.pointer("/metadata/name")?.as_str()?.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
