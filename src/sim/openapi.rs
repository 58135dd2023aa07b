//! OpenAPI v3 documents: enough for kubectl to find, per kind, the operations and query parameters the
//! server supports (it checks `fieldValidation` before choosing server-side validation). Schemas are
//! permissive (`x-kubernetes-preserve-unknown-fields`): the simulator does not publish field schemas.

use serde_json::{Map, Value, json};

use super::resources::{Registry, ResourceInfo};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Content hash of a group/version's document, so clients can cache it until a CRD changes it.
fn hash(reg: &Registry, group: &str, version: &str) -> String {
    use sha2::{Digest, Sha256};
    let list = reg.resource_list(group, version).unwrap_or(Value::Null);
    let d = Sha256::digest(list.to_string().as_bytes());
    d.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`: every group/version with the URL of its document.
pub fn root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = reg.all().map(|r| (r.group.clone(), r.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(reg, &g, &v))}),
        );
    }
    json!({"paths": paths})
}

fn schema_name(info: &ResourceInfo) -> String {
    let group = if info.group.is_empty() {
        "core".to_string()
    } else {
        info.group.clone()
    };
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), info.version, info.kind)
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": {"type": "string", "uniqueItems": true}})
}

fn op(info: &ResourceInfo, action: &str, params: &[&str], body: Option<&[&str]>) -> Value {
    let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let schema = json!({"$ref": format!("#/components/schemas/{}", schema_name(info))});
    let mut v = json!({
        "operationId": format!("{action}{}", info.kind),
        "parameters": params.iter().map(|p| param(p, "query")).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(types) = body {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema})))
            .collect();
        v["requestBody"] = json!({"content": content, "required": true});
    }
    v
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceInfo> = reg
        .all()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    let patch_params = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"];
    let patch_types: &[&str] = &[
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    let list_params = [
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ];
    for info in resources {
        let base = format!("/{}", gv_path(group, version));
        let (collection, scope_params) = if info.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", info.plural),
                vec![param("namespace", "path")],
            )
        } else {
            (format!("{base}/{}", info.plural), vec![])
        };
        if info.create_only {
            paths.insert(
                collection.clone(),
                json!({
                    "post": op(info, "post", &write, Some(&["application/json", "application/yaml"])),
                    "parameters": scope_params,
                }),
            );
            schemas.insert(schema_name(info), json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.kind}]}));
            continue;
        }
        paths.insert(collection.clone(), json!({
            "get": op(info, "list", &list_params, None),
            "post": op(info, "post", &write, Some(&["application/json", "application/yaml"])),
            "delete": op(info, "deletecollection", &["dryRun", "labelSelector", "fieldSelector", "propagationPolicy"], None),
            "parameters": scope_params,
        }));
        let mut item_params = scope_params.clone();
        item_params.push(param("name", "path"));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op(info, "get", &["pretty"], None),
                "put": op(info, "put", &write, Some(&["application/json", "application/yaml"])),
                "patch": op(info, "patch", &patch_params, Some(patch_types)),
                "delete": op(info, "delete", &["dryRun", "propagationPolicy"], None),
                "parameters": item_params.clone(),
            }),
        );
        if info.has_status {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({
                    "get": op(info, "get", &["pretty"], None),
                    "put": op(info, "put", &write, Some(&["application/json"])),
                    "patch": op(info, "patch", &patch_params, Some(patch_types)),
                    "parameters": item_params,
                }),
            );
        }
        schemas.insert(schema_name(info), json!({
            "type": "object",
            "description": format!("{} ({}), as served by the Keelson simulated cluster.", info.kind, info.api_version()),
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
            "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.kind}],
        }));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", super::discovery::MAJOR, super::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_group_versions_and_documents_resolve() {
        let reg = Registry::with_builtins();
        let r = root(&reg);
        let url = r["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(r["paths"]["api/v1"].is_object());
        let doc = group_version(&reg, "apps", "v1").unwrap();
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version(&reg, "nope", "v1").is_none());
    }
}
