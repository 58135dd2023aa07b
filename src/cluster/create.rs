//! Create-only writes: a POST that fails with 409 when the object exists, so an object whose content must
//! never be overwritten (a Secret with generated values) is written only where there is none.

use kube::api::{DynamicObject, PostParams};
use serde_json::Value;

use super::{ClusterError, FIELD_MANAGER, Kube, Verb, object_ref, to_value};

/// What [`Kube::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The object as the server stored it.
    Created(Value),
    /// It exists already (someone, or an earlier attempt whose answer was lost, made it); nothing was written.
    AlreadyExists,
}

impl Kube {
    /// Create `obj` (field manager `keelson`); never replaces an existing object.
    pub async fn create(&self, obj: &Value, dry_run: bool) -> Result<Created, ClusterError> {
        let object = object_ref(obj)?;
        let what = object.to_string();
        let api = self.api_for(&object).await?;
        let dynamic: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|e| ClusterError::InvalidObject {
                object: what.clone(),
                reason: format!("not a Kubernetes object: {e}"),
            })?;
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let result = self
            .retry
            .run(|| async {
                api.create(&params, &dynamic)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Create, e))
            })
            .await;
        match result {
            Ok(created) => Ok(Created::Created(to_value(&what, created)?)),
            Err(e) if e.code() == Some(409) => Ok(Created::AlreadyExists),
            Err(e) => Err(e),
        }
    }
}
