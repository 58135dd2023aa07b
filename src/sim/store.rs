//! Object storage: every object by resource, namespace and name, one global resourceVersion counter, and
//! the event history watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::ResKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ResKey,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions on MODIFIED).
    pub prev: Option<Arc<Value>>,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

pub struct Store {
    rv: u64,
    objects: HashMap<ResKey, Objects>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    tx: broadcast::Sender<Arc<Event>>,
    empty: Objects,
    /// Counts removals and writes of objects being deleted (what the garbage collector acts on).
    deletion_epoch: u64,
}

/// The requested resourceVersion is older than the retained history.
#[derive(Debug)]
pub struct TooOld {
    pub oldest: u64,
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            tx,
            empty: BTreeMap::new(),
            deletion_epoch: 0,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn deletion_epoch(&self) -> u64 {
        self.deletion_epoch
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn get(&self, key: &ResKey, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects.get(key)?.get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, in (namespace, name) order, optionally one namespace only.
    pub fn list<'a>(
        &'a self,
        key: &ResKey,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
        let objs = self.objects.get(key).unwrap_or(&self.empty);
        match ns {
            Some(ns) => Box::new(
                objs.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
            None => Box::new(objs.values()),
        }
    }

    /// Objects after a (namespace, name) position, for `continue`.
    pub fn list_after<'a>(
        &'a self,
        key: &ResKey,
        ns: Option<&'a str>,
        after: (String, String),
    ) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
        let objs = self.objects.get(key).unwrap_or(&self.empty);
        let iter = objs
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .filter(move |((n, _), _)| ns.is_none_or(|want| n == want))
            .map(|(_, v)| v);
        Box::new(iter)
    }

    pub fn count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    /// Whether any namespaced object lives in `ns`.
    pub fn has_objects_in(&self, ns: &str) -> bool {
        self.objects.values().any(|objs| {
            objs.range((ns.to_string(), String::new())..)
                .next()
                .is_some_and(|((n, _), _)| n == ns)
        })
    }

    /// Every stored object, with its resource (for garbage collection scans).
    pub fn all(&self) -> impl Iterator<Item = (&ResKey, &Arc<Value>)> {
        self.objects
            .iter()
            .flat_map(|(k, objs)| objs.values().map(move |v| (k, v)))
    }

    fn record(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            self.history.pop_front();
        }
        let _ = self.tx.send(ev);
    }

    /// Stores an object under a new resourceVersion and records the event.
    pub fn put(&mut self, key: &ResKey, ns: &str, name: &str, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            self.deletion_epoch += 1;
        }
        let rv = self.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let obj = Arc::new(obj);
        let prev = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv,
            kind,
            key: key.clone(),
            namespace: ns.to_string(),
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object; the DELETED event carries it with a fresh resourceVersion.
    pub fn remove(&mut self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        self.deletion_epoch += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let last = Arc::new(last);
        self.record(Event {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            namespace: ns.to_string(),
            object: last.clone(),
            prev: Some(old),
        });
        Some(last)
    }

    /// Events after `rv` (exclusive); an error if that point is no longer in the history.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, TooOld> {
        let oldest = self.history.front().map(|e| e.rv).unwrap_or(self.rv + 1);
        // Every event after `rv` must still be retained: rv+1 must be >= oldest retained.
        if rv + 1 < oldest && rv < self.rv {
            return Err(TooOld { oldest });
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ResKey {
        ResKey {
            group: "".into(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn rv_is_global_and_monotonic_and_history_expires() {
        let mut s = Store::new(3);
        let a = s.put(&key(), "ns", "a", json!({"metadata": {"name": "a"}}));
        let b = s.put(&key(), "ns", "b", json!({"metadata": {"name": "b"}}));
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(b["metadata"]["resourceVersion"], "3");
        assert_eq!(s.events_since(2).unwrap().len(), 1);
        s.put(&key(), "ns", "c", json!({"metadata": {}}));
        s.put(&key(), "ns", "d", json!({"metadata": {}}));
        let removed = s.remove(&key(), "ns", "a").unwrap();
        assert_eq!(removed["metadata"]["resourceVersion"], "6");
        // History holds rv 4..=6: resuming from 3 still sees every later event, from 2 it cannot.
        assert!(s.events_since(2).is_err());
        assert_eq!(s.events_since(3).unwrap().len(), 3);
        assert_eq!(s.events_since(4).unwrap().len(), 2);
        assert_eq!(s.events_since(6).unwrap().len(), 0);
    }

    #[test]
    fn list_is_ordered_and_scoped() {
        let mut s = Store::new(10);
        for (ns, n) in [("b", "x"), ("a", "z"), ("a", "y"), ("c", "w")] {
            s.put(&key(), ns, n, json!({"metadata": {"name": n}}));
        }
        let names: Vec<_> = s
            .list(&key(), Some("a"))
            .map(|o| o["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("y"), json!("z")]);
        let after: Vec<_> = s
            .list_after(&key(), None, ("a".into(), "z".into()))
            .map(|o| o["metadata"]["name"].clone())
            .collect();
        assert_eq!(after, vec![json!("x"), json!("w")]);
    }
}
