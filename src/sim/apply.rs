//! Server-side apply and field ownership (managedFields), generic over JSON objects.

use serde_json::{Value, json};

use super::fieldset::{self, FieldSet, Path};
use super::resources::ResourceInfo;

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }
}

/// Reads managedFields from an object (entries that do not parse are dropped, as they cannot be owned).
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e.get("subresource").and_then(Value::as_str).map(String::from),
                set: e
                    .get("fieldsV1")
                    .map(fieldset::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes entries back into `metadata.managedFields`, leaving out managers that own nothing.
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldset::to_fields_v1(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

pub struct ApplyRequest<'a> {
    pub info: &'a ResourceInfo,
    pub live: Option<&'a Value>,
    pub applied: &'a Value,
    pub manager: &'a str,
    pub force: bool,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

/// Applies a configuration: returns the merged object with updated managedFields, or the conflicts.
pub fn apply(req: ApplyRequest<'_>) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let live = req.live.unwrap_or(&empty);
    let mut entries = read_entries(live);
    let new_set = fieldset::collect(req.applied, req.info);

    let mut conflicts = Vec::new();
    for e in entries.iter_mut() {
        if e.same_slot(req.manager, "Apply", req.subresource) || e.subresource.as_deref() != req.subresource {
            continue;
        }
        let mut taken: Vec<Path> = Vec::new();
        for p in e.set.intersection(&new_set) {
            if is_item_path(p) {
                continue;
            }
            if fieldset::get(live, p) != fieldset::get(req.applied, p) {
                taken.push(p.clone());
            }
        }
        for p in taken {
            if req.force {
                e.set.remove(&p);
            } else {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: fieldset::display(&p),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mut merged = live.clone();
    if !merged.is_object() {
        merged = json!({});
    }
    fieldset::merge(&mut merged, req.applied, &mut Vec::new(), req.info);

    // Fields this manager applied before, does not apply now, and nobody else owns, go away.
    let old_set = entries
        .iter()
        .find(|e| e.same_slot(req.manager, "Apply", req.subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !e.same_slot(req.manager, "Apply", req.subresource))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut to_remove: Vec<&Path> = old_set
        .iter()
        .filter(|p| !new_set.contains(*p) && !others.contains(*p))
        .collect();
    // Deepest first, so a removed item does not shift the paths of its children.
    to_remove.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in to_remove {
        if is_item_path(p) && others.iter().any(|o| o.len() > p.len() && o.starts_with(p)) {
            continue;
        }
        fieldset::remove(&mut merged, p);
    }

    match entries
        .iter_mut()
        .find(|e| e.same_slot(req.manager, "Apply", req.subresource))
    {
        Some(e) => {
            e.set = new_set;
            e.time = req.now.to_string();
            e.api_version = req.info.api_version();
        }
        None => entries.push(Entry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version: req.info.api_version(),
            time: req.now.to_string(),
            subresource: req.subresource.map(String::from),
            set: new_set,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

fn is_item_path(p: &Path) -> bool {
    p.last()
        .is_some_and(|l| l.starts_with("k:") || l.starts_with("v:"))
}

/// Records a non-apply write (create, update, patch): the writer takes the fields it changed, fields that
/// disappeared lose their owners.
pub fn record_update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let empty = json!({});
    let created = old.is_none();
    let old = old.unwrap_or(&empty);
    let mut entries = read_entries(old);
    // A status write changes only status (the commit keeps everything else): only that part is compared.
    let (old_part, new_part);
    let (old_fields, new_fields) = if subresource == Some("status") {
        old_part = json!({"status": old.get("status").cloned().unwrap_or(Value::Null)});
        new_part = json!({"status": new.get("status").cloned().unwrap_or(Value::Null)});
        (&old_part, &new_part)
    } else {
        (old, &*new)
    };
    let old_set = fieldset::collect(old_fields, info);
    let new_set = fieldset::collect(new_fields, info);
    let changed: FieldSet = if created {
        new_set.clone()
    } else {
        new_set
            .iter()
            .filter(|p| {
                if is_item_path(p) {
                    !old_set.contains(*p)
                } else {
                    fieldset::get(old_fields, p) != fieldset::get(new_fields, p)
                }
            })
            .cloned()
            .collect()
    };
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        e.set.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_slot(manager, "Update", subresource))
        {
            Some(e) => {
                e.set.extend(changed);
                e.time = now.to_string();
                e.api_version = info.api_version();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: info.api_version(),
                time: now.to_string(),
                subresource: subresource.map(String::from),
                set: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// The 409 message a real server writes for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let mut msg = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager, c.api_version, c.path
            )
        })
        .collect();
    msg.push_str(&parts.join("\n"));
    msg
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;

    fn info() -> ResourceInfo {
        Registry::with_builtins()
            .get("apps", "v1", "deployments")
            .unwrap()
            .clone()
    }

    fn dep(replicas: i64, image: &str, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn apply_as(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        let info = info();
        apply(ApplyRequest {
            info: &info,
            live,
            applied,
            manager,
            force,
            subresource: None,
            now: "t",
        })
    }

    #[test]
    fn conflicts_only_on_differing_values_and_force_takes_ownership() {
        let a = apply_as(None, &dep(1, "i1", json!({"x": "1"})), "alice", false).unwrap();
        // Same values: shared ownership, no conflict.
        let shared = apply_as(Some(&a), &dep(1, "i1", json!({})), "bob", false).unwrap();
        assert_eq!(read_entries(&shared).len(), 2);
        // Different replicas: conflict naming alice and the field.
        let err = apply_as(Some(&a), &dep(3, "i1", json!({})), "bob", false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                api_version: "apps/v1".into(),
                path: ".spec.replicas".into()
            }]
        );
        assert!(conflict_message(&err).contains("conflict with \"alice\" using apps/v1: .spec.replicas"));
        let forced = apply_as(Some(&a), &dep(3, "i1", json!({})), "bob", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let alice = read_entries(&forced)
            .into_iter()
            .find(|e| e.manager == "alice")
            .unwrap();
        assert!(
            !alice
                .set
                .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        );
    }

    #[test]
    fn dropping_a_solely_owned_field_removes_it() {
        let a = apply_as(None, &dep(1, "i1", json!({"x": "1", "y": "2"})), "alice", false).unwrap();
        let b = apply_as(Some(&a), &dep(1, "i1", json!({"x": "1"})), "alice", false).unwrap();
        assert_eq!(b["metadata"]["labels"], json!({"x": "1"}));
    }

    #[test]
    fn field_owned_by_another_manager_survives_when_dropped() {
        let a = apply_as(None, &dep(1, "i1", json!({"x": "1"})), "alice", false).unwrap();
        let b = apply_as(Some(&a), &dep(1, "i1", json!({"x": "1"})), "bob", false).unwrap();
        let c = apply_as(Some(&b), &dep(1, "i1", json!({})), "alice", false).unwrap();
        assert_eq!(c["metadata"]["labels"], json!({"x": "1"}));
    }

    #[test]
    fn update_takes_changed_fields_from_appliers() {
        let info = info();
        let a = apply_as(None, &dep(1, "i1", json!({})), "alice", false).unwrap();
        let mut edited = a.clone();
        edited["spec"]["replicas"] = json!(5);
        record_update(&info, Some(&a), &mut edited, "kubectl-edit", None, "t");
        let entries = read_entries(&edited);
        let alice = entries.iter().find(|e| e.manager == "alice").unwrap();
        let edit = entries.iter().find(|e| e.manager == "kubectl-edit").unwrap();
        let replicas = vec!["f:spec".to_string(), "f:replicas".to_string()];
        assert!(!alice.set.contains(&replicas));
        assert!(edit.set.contains(&replicas));
        assert_eq!(edit.operation, "Update");
        // alice now conflicts when applying a different value.
        assert!(apply_as(Some(&edited), &dep(1, "i1", json!({})), "alice", false).is_err());
    }
}
