//! Reads: get (the object, `/status`, `/scale`) and list (selectors, pages with continue tokens).

use serde_json::{Value, json};

use super::super::request::{ListQuery, Target};
use super::super::status::ApiError;
use super::State;

impl State {
    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let obj = self.lookup(t)?;
        match t.sub.as_deref() {
            None | Some("status") => Ok(self.as_version(t, &obj)),
            Some("scale") if t.info.has_scale => Ok(scale_of(&obj)),
            Some(_) => Err(ApiError::path_not_found()),
        }
    }

    pub fn list(&self, t: &Target, q: &ListQuery) -> Result<Value, ApiError> {
        let key = t.info.key();
        let ns = t.namespace.as_deref();
        let iter = match &q.cont {
            Some(c) => {
                let (cns, cname) = decode_continue(c)?;
                self.store.list_after(&key, ns, (cns, cname))
            }
            None => self.store.list(&key, ns),
        };
        let mut items = Vec::new();
        let mut more = false;
        let mut remaining = 0usize;
        let mut last_key = None;
        for obj in iter {
            if !q.labels.matches(obj["metadata"]["labels"].as_object()) || !q.fields.matches(obj) {
                continue;
            }
            if let Some(limit) = q.limit {
                if items.len() >= limit {
                    more = true;
                    remaining += 1;
                    continue;
                }
            }
            last_key = Some((
                obj["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
            ));
            let mut item = (**obj).clone();
            if t.info.builtin {
                if let Some(m) = item.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            } else {
                item["apiVersion"] = json!(t.info.api_version());
            }
            items.push(item);
        }
        let mut meta = json!({"resourceVersion": self.store.current_rv().to_string()});
        if more {
            if let Some((ns, name)) = last_key {
                meta["continue"] = json!(encode_continue(&ns, &name));
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": format!("{}List", t.info.kind),
            "apiVersion": t.info.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }
}

pub(super) fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}\u{0}{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.is_ascii() || token.len() % 2 != 0 || token.len() > 2048 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (ns, name) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue("ns", "a.b");
        assert_eq!(
            decode_continue(&t).unwrap(),
            ("ns".to_string(), "a.b".to_string())
        );
        for bad in ["zz", "abc", "41", "", "é1"] {
            assert!(decode_continue(bad).is_err(), "{bad}");
        }
    }
}
