//! The glue between the store and the simulated workload controllers: one pass writes the status each
//! tracked workload's simulation has reached.

use serde_json::Value;

use super::super::controllers::{self, Tracked};
use super::super::meta;
use super::super::request::Target;
use super::super::resources::ResourceInfo;
use super::write::Managed;
use super::{ObjKey, State};

impl State {
    /// A workload was written: a new generation starts its simulated rollout from what it had.
    pub(super) fn track_workload(
        &mut self,
        info: &ResourceInfo,
        t: &Target,
        old: Option<&Value>,
        stored: &Value,
    ) {
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = old.is_none_or(|o| o["metadata"]["generation"].as_i64() != Some(generation));
        if !changed {
            return;
        }
        let key: ObjKey = (info.key(), t.ns().to_string(), t.name().to_string());
        let prev_ready = old
            .map(|o| controllers::current_ready(&info.plural, o))
            .unwrap_or(0);
        let prev_revision = old.and_then(|o| o["status"]["updateRevision"].as_str().map(String::from));
        self.tracked.insert(
            key,
            Tracked {
                generation,
                since: std::time::Instant::now(),
                since_wall: controllers::start_wall(),
                prev_ready,
                prev_revision,
            },
        );
    }

    /// One pass of the workload controllers: writes status where the simulation moved on.
    pub fn run_controllers(&mut self) {
        if self.tracked.is_empty() {
            return;
        }
        let now = meta::now_rfc3339();
        let keys: Vec<ObjKey> = self.tracked.keys().cloned().collect();
        for key in keys {
            let Some(tr) = self.tracked.get(&key).cloned() else {
                continue;
            };
            let (rk, ns, name) = &key;
            let Some(obj) = self.store.get(rk, ns, name).cloned() else {
                self.tracked.remove(&key);
                continue;
            };
            let Some(out) =
                controllers::simulate(&rk.plural, &obj, &tr, tr.since.elapsed(), &self.behaviour, &now)
            else {
                continue;
            };
            if out.done {
                self.tracked.remove(&key);
            }
            if strip_cond_times(&obj["status"]) == strip_cond_times(&out.status) {
                continue;
            }
            let Some(info) = self.registry.all().find(|r| r.key() == *rk).cloned() else {
                continue;
            };
            let t = Target {
                info,
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                sub: Some("status".into()),
            };
            let mut new = (*obj).clone();
            new["status"] = out.status;
            let _ = self.commit(&t, Some(obj), new, Managed::Controller, false);
        }
    }
}

fn strip_cond_times(s: &Value) -> Value {
    let mut s = s.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        m.remove("completionTime");
    }
    s
}
