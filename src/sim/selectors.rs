//! Label selectors (equality- and set-based) and field selectors, as list and watch accept them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(s) {
            let p = part.trim();
            let err = || SelectorError(p.to_string());
            if p.is_empty() {
                return Err(err());
            }
            if let Some(k) = p.strip_prefix('!') {
                let k = k.trim();
                if !valid_key(k) {
                    return Err(err());
                }
                reqs.push(Req::NotExists(k.into()));
            } else if let Some((k, v)) = p.split_once("!=") {
                let (k, v) = (k.trim(), v.trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(err());
                }
                reqs.push(Req::NotEq(k.into(), v.into()));
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                let (k, v) = (k.trim(), v.trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(err());
                }
                reqs.push(Req::Eq(k.into(), v.into()));
            } else if let Some((k, rest)) = split_set_op(p, " notin ") {
                reqs.push(Req::NotIn(k, parse_values(&rest).ok_or_else(err)?));
            } else if let Some((k, rest)) = split_set_op(p, " in ") {
                reqs.push(Req::In(k, parse_values(&rest).ok_or_else(err)?));
            } else {
                if !valid_key(p) {
                    return Err(err());
                }
                reqs.push(Req::Exists(p.into()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_set_op(p: &str, op: &str) -> Option<(String, String)> {
    let (k, rest) = p.split_once(op)?;
    let k = k.trim();
    if !valid_key(k) {
        return None;
    }
    Some((k.to_string(), rest.trim().to_string()))
}

fn parse_values(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if vals.iter().all(|v| valid_value(v)) {
        Some(vals)
    } else {
        None
    }
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, comma-joined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks each field against the fields the resource supports.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(out));
        }
        for part in s.split(',') {
            let p = part.trim();
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
            };
            let k = k.trim();
            if !supported.contains(&k) {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            let mut found = true;
            for seg in path.split('.') {
                match cur.get(seg) {
                    Some(v) => cur = v,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            let have = if !found {
                String::new()
            } else {
                match cur {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                }
            };
            (have == *want) == *eq
        })
    }
}

/// Field selector labels each resource supports (metadata.name/namespace everywhere, plus the usual few).
pub fn supported_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "status.phase",
            "spec.serviceAccountName",
        ],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "events" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "jobs" => &["metadata.name", "metadata.namespace", "status.successful"],
        "namespaces" => &["metadata.name", "status.phase"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_table() {
        let labels = json!({"app": "web", "tier": "front", "env": "prod"});
        let l = labels.as_object();
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front, back),!missing", true),
            ("app=web,env=dev", false),
        ];
        for (sel, want) in cases {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(l), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for bad in ["app=", "=x", "a in x", "a in (b", ",", "app=we b"] {
            let r = LabelSelector::parse(bad);
            // "app=" is a valid selector for an empty value in Kubernetes.
            if bad == "app=" {
                assert!(r.is_ok());
            } else {
                assert!(r.is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn field_selector_table() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}, "type": "Opaque"});
        let f = |s| {
            FieldSelector::parse(s, supported_fields("secrets"))
                .unwrap()
                .matches(&obj)
        };
        assert!(f("metadata.name=a"));
        assert!(!f("metadata.name!=a"));
        assert!(f("metadata.namespace==ns,type=Opaque"));
        assert!(FieldSelector::parse("spec.foo=1", supported_fields("configmaps")).is_err());
    }
}
