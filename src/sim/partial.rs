//! Metadata-only responses: the `meta.k8s.io/v1` PartialObjectMetadata form a client asks for with
//! `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (kube's `Api::list_metadata`,
//! `metadata_watcher`, `kubectl get -o name`), which leaves out everything but `metadata`.

use serde_json::{Value, json};

/// Which metadata form the Accept header asks for, if any: `as=PartialObjectMetadata` (one object, or
/// the objects of watch events) or `as=PartialObjectMetadataList` (a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataForm {
    Object,
    List,
}

pub fn wants_metadata(accept: &str) -> Option<MetadataForm> {
    accept.split(',').find_map(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if !has("g=meta.k8s.io") || !has("v=v1") {
            return None;
        }
        if has("as=PartialObjectMetadataList") {
            Some(MetadataForm::List)
        } else if has("as=PartialObjectMetadata") {
            Some(MetadataForm::Object)
        } else {
            None
        }
    })
}

/// Whether every media type `accept` names is a metadata form that does not fit `verb` (a list asked
/// for as one `PartialObjectMetadata`, a get or watch as a `PartialObjectMetadataList`): kube-apiserver
/// answers 406 then, having nothing the client accepts.
pub fn unacceptable(accept: &str, verb: &str) -> bool {
    let fits = |form: MetadataForm| match form {
        MetadataForm::List => verb == "list",
        MetadataForm::Object => matches!(verb, "get" | "watch"),
    };
    let parts: Vec<Option<MetadataForm>> = accept.split(',').map(wants_metadata).collect();
    !accept.trim().is_empty()
        && matches!(verb, "get" | "list" | "watch")
        && parts.iter().all(|p| p.is_some_and(|f| !fits(f)))
}

/// One object reduced to its metadata.
pub fn object(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// A list reduced to its items' metadata; the list's own metadata (resourceVersion, continue) is kept.
pub fn list(body: &Value) -> Value {
    let items: Vec<Value> = body
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(object).collect())
        .unwrap_or_default();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": body["metadata"], "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_names_the_form() {
        let cases = [
            (
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                Some(MetadataForm::List),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                Some(MetadataForm::Object),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1,application/json",
                None,
            ),
            ("application/json;as=Table;v=v1;g=meta.k8s.io", None),
            ("application/json", None),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_metadata(accept), want, "{accept}");
        }
    }

    #[test]
    fn a_form_that_does_not_fit_the_verb_is_not_acceptable() {
        let list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        let one = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert!(!unacceptable(list, "list"));
        assert!(unacceptable(list, "get"));
        assert!(unacceptable(one, "list"));
        assert!(!unacceptable(one, "watch"));
        assert!(!unacceptable(&format!("{one},application/json"), "list"));
        assert!(!unacceptable("application/json", "get"));
    }

    #[test]
    fn lists_keep_their_resource_version_and_items_only_their_metadata() {
        let body = json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}}]});
        assert_eq!(
            list(&body),
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "7"},
                "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "labels": {"x": "y"}}}]})
        );
    }
}
