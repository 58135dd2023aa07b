//! The vocabulary every stage shares about an object: its identity and the labels and annotations that
//! mark it as Keelson's. A leaf: it depends on nothing else in Keelson.

use serde::Serialize;

/// Ownership label carried by every object Keelson applies.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "keelson";
/// The component an object belongs to.
pub const LABEL_SERVICE: &str = "keelson.dev/service";
/// The topology (`keelson.yaml` `metadata.name`) an object belongs to.
pub const LABEL_TOPOLOGY: &str = "keelson.dev/topology";
/// sha256 of the canonical object, without the revision.
pub const ANNOTATION_HASH: &str = "keelson.dev/hash";
/// The revision that last wrote the object; stamped outside the hash.
pub const ANNOTATION_REVISION: &str = "keelson.dev/revision";
/// On pod templates: hash of the config the pods read, so a config change rolls exactly those pods.
pub const ANNOTATION_CONFIG_HASH: &str = "keelson.dev/config-hash";
/// On pod templates: identities (recipe hashes, never values) of the Keelson-made Secrets the pods read,
/// so a rotation in Git rolls exactly those pods and re-runs the Jobs that read them.
pub const ANNOTATION_SECRETS_HASH: &str = "keelson.dev/secrets-hash";
/// On Job templates: sha256 of the script the Job runs.
pub const ANNOTATION_SCRIPT_HASH: &str = "keelson.dev/script-hash";
/// On Secrets Keelson makes: how each key is made (generator, template, ciphertext hash), never a value.
pub const ANNOTATION_RECIPE: &str = "keelson.dev/secret-recipe";
/// On Secrets Keelson makes: the `rotation` counter from Git the generated keys were made for.
pub const ANNOTATION_ROTATION: &str = "keelson.dev/rotation";
/// On Secrets Keelson makes: the keys it generated. Such a Secret is pruned only with a tombstone in Git.
pub const ANNOTATION_GENERATED: &str = "keelson.dev/generated-keys";
/// Recommended Kubernetes labels: the OpenStack project, the component, the topology.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// On pods: `workload` or `job`, so a Service or workload selector never matches a job's pods.
pub const LABEL_ROLE: &str = "keelson.dev/role";
pub const ROLE_WORKLOAD: &str = "workload";
pub const ROLE_JOB: &str = "job";
/// On job pods: the job's name as written in the service file.
pub const LABEL_JOB: &str = "keelson.dev/job";
/// On PersistentVolumeClaims (and their StatefulSet templates): data that pruning must not delete
/// unless the policy allows it.
pub const ANNOTATION_PERSISTENT: &str = "keelson.dev/persistent";

/// Identity of a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
