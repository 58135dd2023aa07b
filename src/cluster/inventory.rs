//! Inventory storage: one ConfigMap per topology holding an opaque JSON string (the plan module owns
//! its content). It is labelled apart from the objects it records (no topology label), so listing
//! owned objects never finds it and a prune can never delete it.

use serde_json::{Value, json};

use super::{ApplyOptions, ClusterError, Kube, ObjectRef};
use crate::object::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// Label naming the topology whose inventory a ConfigMap holds.
pub const LABEL_INVENTORY_OF: &str = "keelson.dev/inventory-of";
/// The ConfigMap data key holding the inventory JSON.
pub const INVENTORY_KEY: &str = "inventory.json";

/// `keelson-inventory-<topology>`.
pub fn inventory_name(topology: &str) -> String {
    format!("keelson-inventory-{topology}")
}

pub(super) fn inventory_ref(namespace: &str, topology: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(namespace.into()),
        name: inventory_name(topology),
    }
}

impl Kube {
    /// The stored inventory of `topology`, or `None` when none was written yet.
    pub async fn read_inventory(
        &self,
        namespace: &str,
        topology: &str,
    ) -> Result<Option<String>, ClusterError> {
        let object = inventory_ref(namespace, topology);
        let live = self.get(&object).await?;
        parse_inventory(&object, live.as_ref(), topology)
    }

    /// Store `content` as the inventory of `topology` (server-side apply, field manager `keelson`).
    pub async fn write_inventory(
        &self,
        namespace: &str,
        topology: &str,
        content: &str,
        dry_run: bool,
    ) -> Result<(), ClusterError> {
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": inventory_name(topology),
                "namespace": namespace,
                "labels": {
                    LABEL_MANAGED_BY: MANAGED_BY_VALUE,
                    LABEL_INVENTORY_OF: topology,
                },
            },
            "data": { INVENTORY_KEY: content },
        });
        self.apply(
            &body,
            &ApplyOptions {
                dry_run,
                ..ApplyOptions::default()
            },
        )
        .await
        .map(|_| ())
    }
}

/// The inventory text a stored inventory ConfigMap holds, checked to be one Keelson wrote for `topology`.
pub(super) fn parse_inventory(
    object: &ObjectRef,
    live: Option<&Value>,
    topology: &str,
) -> Result<Option<String>, ClusterError> {
    let Some(live) = live else {
        return Ok(None);
    };
    let invalid = |reason: String| ClusterError::Inventory {
        object: object.to_string(),
        reason,
    };
    let labels = live.pointer("/metadata/labels");
    if labels
        .and_then(|l| l.get(LABEL_INVENTORY_OF))
        .and_then(Value::as_str)
        != Some(topology)
    {
        return Err(invalid(format!(
            "missing label {LABEL_INVENTORY_OF}={topology}; not written by Keelson"
        )));
    }
    match live.pointer(&format!("/data/{INVENTORY_KEY}")) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("data.{INVENTORY_KEY} is not a string"))),
        None => Err(invalid(format!("data.{INVENTORY_KEY} missing"))),
    }
}
