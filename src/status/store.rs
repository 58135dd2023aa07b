//! Status and control storage: two ConfigMaps in Keelson's own namespace.
//!
//! ConfigMaps rather than a CRD: they need no cluster-wide install step and no extra RBAC (the install
//! already grants ConfigMaps in Keelson's namespace), `kubectl get cm keelson-status -o yaml` works on any
//! cluster, and the document is small (20 history entries). One daemon serves one namespace, so the names are
//! fixed and `keelson status` needs only the namespace.
//!
//! The status ConfigMap is written only by the daemon (field manager `keelson-status`). Requests from
//! operators (`suspend`, `resume`, `reconcile`) go to a separate control ConfigMap (field manager
//! `keelson-control`), so the two writers never contend for a field.

use serde_json::{Value, json};

use super::StatusError;
use super::model::Status;
use crate::cluster::{ApplyOptions, Kube};
use crate::object::{LABEL_MANAGED_BY, MANAGED_BY_VALUE, ObjectRef};

pub const STATUS_CONFIGMAP: &str = "keelson-status";
pub const CONTROL_CONFIGMAP: &str = "keelson-control";
pub const STATUS_KEY: &str = "status.json";
pub const STATUS_FIELD_MANAGER: &str = "keelson-status";
pub const CONTROL_FIELD_MANAGER: &str = "keelson-control";
const SUSPEND_KEY: &str = "suspend";
const RECONCILE_KEY: &str = "reconcileRequestedAt";
/// Holds the reconcile token again when that request overrides the sync windows (`--force`).
const FORCE_KEY: &str = "reconcileForce";

fn configmap(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(namespace.into()),
        name: name.into(),
    }
}

/// What operators asked of the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    pub suspend: bool,
    /// An opaque token (a timestamp); a pass is forced each time it changes.
    pub reconcile_requested_at: Option<String>,
    /// The request `reconcile_requested_at` overrides the sync windows once (`keelson reconcile --force`).
    pub force: bool,
}

/// Reads the status document; `None` when the daemon has not written one yet.
pub async fn read_status(kube: &Kube, namespace: &str) -> Result<Option<Status>, StatusError> {
    let object = configmap(namespace, STATUS_CONFIGMAP);
    let live = match kube.get(&object).await {
        Ok(live) => live,
        Err(e) if e.is_not_found() => None,
        Err(source) => {
            return Err(StatusError::Read {
                object: object.to_string(),
                source,
            });
        }
    };
    let Some(live) = live else { return Ok(None) };
    let Some(text) = live
        .pointer(&format!("/data/{STATUS_KEY}"))
        .and_then(Value::as_str)
    else {
        return Err(StatusError::Invalid {
            object: object.to_string(),
            reason: format!("data.{STATUS_KEY} missing or not a string"),
        });
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| StatusError::Invalid {
            object: object.to_string(),
            reason: e.to_string(),
        })
}

/// Writes the status document (server-side apply, field manager `keelson-status`).
pub async fn write_status(kube: &Kube, namespace: &str, status: &Status) -> Result<(), StatusError> {
    let object = configmap(namespace, STATUS_CONFIGMAP);
    let text = serde_json::to_string_pretty(status).map_err(|e| StatusError::Invalid {
        object: object.to_string(),
        reason: e.to_string(),
    })?;
    apply_key(kube, &object, STATUS_KEY, &text, STATUS_FIELD_MANAGER).await
}

/// Reads the control requests; all defaults when there is no control ConfigMap.
pub async fn read_control(kube: &Kube, namespace: &str) -> Result<Control, StatusError> {
    let object = configmap(namespace, CONTROL_CONFIGMAP);
    let live = match kube.get(&object).await {
        Ok(live) => live,
        Err(e) if e.is_not_found() => None,
        Err(source) => {
            return Err(StatusError::Read {
                object: object.to_string(),
                source,
            });
        }
    };
    let Some(live) = live else {
        return Ok(Control::default());
    };
    let field = |key: &str| live.pointer(&format!("/data/{key}")).and_then(Value::as_str);
    let suspend = match field(SUSPEND_KEY).map(str::trim) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(StatusError::Invalid {
                object: object.to_string(),
                reason: format!("data.{SUSPEND_KEY} must be \"true\" or \"false\", not {other:?}"),
            });
        }
    };
    let reconcile_requested_at = field(RECONCILE_KEY).filter(|s| !s.is_empty()).map(str::to_string);
    // The force mark names its request, so it never carries over to a later one.
    let force = reconcile_requested_at.is_some() && field(FORCE_KEY) == reconcile_requested_at.as_deref();
    Ok(Control {
        suspend,
        reconcile_requested_at,
        force,
    })
}

/// Sets or clears the suspend request.
pub async fn set_suspend(kube: &Kube, namespace: &str, suspend: bool) -> Result<(), StatusError> {
    write_control(
        kube,
        namespace,
        SUSPEND_KEY,
        if suspend { "true" } else { "false" },
    )
    .await
}

/// Asks for a pass now, even on a revision whose rollout failed.
pub async fn request_reconcile(kube: &Kube, namespace: &str, token: &str) -> Result<(), StatusError> {
    request_reconcile_with(kube, namespace, token, false).await
}

/// Asks for a pass now; with `force`, that pass also writes outside the sync windows.
pub async fn request_reconcile_with(
    kube: &Kube,
    namespace: &str,
    token: &str,
    force: bool,
) -> Result<(), StatusError> {
    let object = configmap(namespace, CONTROL_CONFIGMAP);
    let force = if force { token } else { "" };
    let data = json!({ RECONCILE_KEY: token, FORCE_KEY: force });
    apply_data(kube, &object, data, CONTROL_FIELD_MANAGER).await
}

async fn write_control(kube: &Kube, namespace: &str, key: &str, value: &str) -> Result<(), StatusError> {
    let object = configmap(namespace, CONTROL_CONFIGMAP);
    apply_key(kube, &object, key, value, CONTROL_FIELD_MANAGER).await
}

/// Server-side applies one key of one of Keelson's own ConfigMaps as `manager`.
async fn apply_key(
    kube: &Kube,
    object: &ObjectRef,
    key: &str,
    value: &str,
    manager: &str,
) -> Result<(), StatusError> {
    apply_data(kube, object, json!({ key: value }), manager).await
}

/// Server-side applies `data` (keys and values) of one of Keelson's own ConfigMaps as `manager`.
async fn apply_data(kube: &Kube, object: &ObjectRef, data: Value, manager: &str) -> Result<(), StatusError> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": object.name,
            "namespace": object.namespace,
            "labels": { LABEL_MANAGED_BY: MANAGED_BY_VALUE },
        },
        "data": data,
    });
    let options = ApplyOptions {
        field_manager: manager.to_string(),
        ..ApplyOptions::default()
    };
    kube.apply(&body, &options)
        .await
        .map(|_| ())
        .map_err(|source| StatusError::Write {
            object: object.to_string(),
            source,
        })
}

/// Creates Keelson's own namespace when it is missing.
pub async fn ensure_namespace(kube: &Kube, namespace: &str) -> Result<(), StatusError> {
    kube.ensure_namespace(namespace, STATUS_FIELD_MANAGER)
        .await
        .map(|_| ())
        .map_err(|source| StatusError::Write {
            object: format!("Namespace {namespace}"),
            source,
        })
}
