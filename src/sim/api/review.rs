//! Requests that are answered, never stored: TokenRequest (`serviceaccounts/<name>/token`), TokenReview,
//! SelfSubjectReview, and the access reviews `kubectl auth can-i` sends (SelfSubjectAccessReview,
//! SelfSubjectRulesReview, SubjectAccessReview, LocalSubjectAccessReview).

use serde_json::{Value, json};

use super::super::auth::token::Claims;
use super::super::auth::{self, API_AUDIENCES, Attributes, Authenticator, ResourceAttributes, User, rbac};
use super::super::meta;
use super::super::request::Target;
use super::super::resources::ResKey;
use super::super::status::ApiError;
use super::State;

/// kube-apiserver's bounds on a requested token lifetime.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The body must be the kind the endpoint takes (or say nothing of its kind).
fn expect_kind(body: &Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON or YAML object"));
    }
    let got_kind = body["kind"].as_str().unwrap_or("");
    let got_version = body["apiVersion"].as_str().unwrap_or("");
    if (got_kind.is_empty() && got_version.is_empty()) || (got_kind == kind && got_version == api_version) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "the API version in the data ({got_version}) does not match the expected API version ({api_version}) or kind ({got_kind}) does not match {kind}"
    )))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn answer(body: &Value, api_version: &str, kind: &str, status: Value) -> Value {
    let mut out = json!({"kind": kind, "apiVersion": api_version, "metadata": {"creationTimestamp": null}});
    out["spec"] = body["spec"].clone();
    out["status"] = status;
    out
}

/// The attributes a review asks about: exactly one of resource and non-resource attributes.
fn review_attributes(spec: &Value, kind: &str) -> Result<Attributes, ApiError> {
    let res = &spec["resourceAttributes"];
    let non = &spec["nonResourceAttributes"];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    match (res.is_object(), non.is_object()) {
        (true, false) => Ok(Attributes {
            verb: s(res, "verb"),
            path: String::new(),
            resource: Some(ResourceAttributes {
                group: s(res, "group"),
                resource: s(res, "resource"),
                subresource: s(res, "subresource"),
                namespace: s(res, "namespace"),
                name: s(res, "name"),
            }),
        }),
        (false, true) => Ok(Attributes {
            verb: s(non, "verb"),
            path: s(non, "path"),
            resource: None,
        }),
        _ => Err(ApiError::invalid(
            kind,
            "authorization.k8s.io",
            "",
            vec![(
                "spec.resourceAttributes".into(),
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
            )],
        )),
    }
}

fn decision(store: &super::super::store::Store, user: &User, a: &Attributes) -> Value {
    let (allowed, reason) = auth::authorize(store, user, a);
    let mut st = json!({"allowed": allowed});
    if !reason.is_empty() {
        st["reason"] = json!(reason);
    }
    st
}

impl State {
    /// `POST serviceaccounts/<name>/token`: a signed token for the ServiceAccount, for the requested
    /// audiences and lifetime, optionally bound to a Pod or Secret.
    pub fn create_token(
        &self,
        t: &Target,
        body: &Value,
        authn: &Authenticator,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        const API: &str = "authentication.k8s.io/v1";
        expect_kind(body, API, "TokenRequest")?;
        let sa = self.lookup(&Target {
            sub: None,
            ..t.clone()
        })?;
        let spec = &body["spec"];
        let invalid = |field: &str, msg: String| {
            ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                t.name(),
                vec![(field.into(), msg)],
            )
        };
        let expiration = match &spec["expirationSeconds"] {
            Value::Null => DEFAULT_EXPIRATION,
            v => v.as_i64().ok_or_else(|| {
                invalid(
                    "spec.expirationSeconds",
                    format!("Invalid value: {v}: must be an integer"),
                )
            })?,
        };
        if expiration < MIN_EXPIRATION {
            return Err(invalid(
                "spec.expirationSeconds",
                format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"),
            ));
        }
        if expiration > MAX_EXPIRATION {
            return Err(invalid(
                "spec.expirationSeconds",
                format!("Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"),
            ));
        }
        let mut audiences = strings(&spec["audiences"]);
        if audiences.is_empty() {
            audiences = API_AUDIENCES.iter().map(|a| a.to_string()).collect();
        }
        let bound = match &spec["boundObjectRef"] {
            Value::Null => None,
            r => {
                let kind = r["kind"].as_str().unwrap_or("");
                let name = r["name"].as_str().unwrap_or("");
                let plural = match kind {
                    "Pod" => "pods",
                    "Secret" => "secrets",
                    other => {
                        return Err(invalid(
                            "spec.boundObjectRef.kind",
                            format!("Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\""),
                        ));
                    }
                };
                let key = ResKey {
                    group: String::new(),
                    plural: plural.into(),
                };
                let obj = self
                    .store
                    .get(&key, t.ns(), name)
                    .ok_or_else(|| ApiError::not_found(plural, name))?;
                let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
                if let Some(want) = r["uid"].as_str().filter(|u| !u.is_empty()) {
                    if want != uid {
                        return Err(ApiError::conflict(plural, name));
                    }
                }
                Some((kind.to_string(), name.to_string(), uid))
            }
        };
        let now = now_secs();
        let claims = Claims {
            namespace: t.ns().to_string(),
            service_account: t.name().to_string(),
            service_account_uid: sa["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            audiences: audiences.clone(),
            issued_at: now,
            expires_at: now + expiration as u64,
            bound,
        };
        let token = if dry_run {
            String::new()
        } else {
            authn.mint(&claims)
        };
        let mut out = json!({
            "kind": "TokenRequest", "apiVersion": API,
            "metadata": {"name": t.name(), "namespace": t.ns(), "creationTimestamp": null},
            "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": spec["boundObjectRef"]},
            "status": {"token": token, "expirationTimestamp": meta::rfc3339(claims.expires_at)},
        });
        if spec["boundObjectRef"].is_null() {
            if let Some(s) = out["spec"].as_object_mut() {
                s.remove("boundObjectRef");
            }
        }
        Ok(out)
    }

    /// A create on a review resource: the answer for this user, from the stored RBAC.
    pub fn review(
        &self,
        t: &Target,
        body: &Value,
        user: &User,
        authn: &Authenticator,
    ) -> Result<Value, ApiError> {
        let api = t.info.api_version();
        let kind = t.info.kind.as_str();
        expect_kind(body, &api, kind)?;
        let spec = &body["spec"];
        let status = match kind {
            "SelfSubjectAccessReview" => decision(&self.store, user, &review_attributes(spec, kind)?),
            "SubjectAccessReview" | "LocalSubjectAccessReview" => {
                let a = review_attributes(spec, kind)?;
                if kind == "LocalSubjectAccessReview"
                    && a.resource.as_ref().is_none_or(|r| r.namespace != t.ns())
                {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {}",
                        t.ns()
                    )));
                }
                let subject = User {
                    name: spec["user"].as_str().unwrap_or("").to_string(),
                    uid: spec["uid"].as_str().unwrap_or("").to_string(),
                    groups: strings(&spec["groups"]),
                };
                if subject.name.is_empty() && subject.groups.is_empty() {
                    return Err(ApiError::invalid(
                        kind,
                        "authorization.k8s.io",
                        "",
                        vec![(
                            "spec.user".into(),
                            "Invalid value: \"\": at least one of user or group must be specified".into(),
                        )],
                    ));
                }
                decision(&self.store, &subject, &a)
            }
            "SelfSubjectRulesReview" => {
                let ns = spec["namespace"].as_str().unwrap_or("");
                let (rules, errors) = rbac::rules_for(&self.store, user, ns);
                let pick = |r: &Value, keys: &[&str]| {
                    let mut o = serde_json::Map::new();
                    for k in keys {
                        if let Some(v) = r.get(*k).filter(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
                            o.insert(k.to_string(), v.clone());
                        }
                    }
                    Value::Object(o)
                };
                let resource_rules: Vec<Value> = rules
                    .iter()
                    .filter(|r| r.get("resources").is_some())
                    .map(|r| pick(r, &["verbs", "apiGroups", "resources", "resourceNames"]))
                    .collect();
                let non_resource_rules: Vec<Value> = rules
                    .iter()
                    .filter(|r| r.get("nonResourceURLs").is_some())
                    .map(|r| pick(r, &["verbs", "nonResourceURLs"]))
                    .collect();
                let mut st = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                    "incomplete": !errors.is_empty()});
                if !errors.is_empty() {
                    st["evaluationError"] = json!(errors.join(", "));
                }
                st
            }
            "SelfSubjectReview" => json!({"userInfo": user.to_json()}),
            "TokenReview" => {
                let token = spec["token"].as_str().unwrap_or("");
                let mut audiences = strings(&spec["audiences"]);
                if audiences.is_empty() {
                    audiences = API_AUDIENCES.iter().map(|a| a.to_string()).collect();
                }
                let wanted: Vec<&str> = audiences.iter().map(String::as_str).collect();
                let admin = token == authn.admin_token();
                match authn.valid_claims(token, &self.store, &wanted) {
                    Ok(c) => {
                        let u =
                            User::service_account(&c.namespace, &c.service_account, &c.service_account_uid);
                        let matched: Vec<&String> = c
                            .audiences
                            .iter()
                            .filter(|a| wanted.contains(&a.as_str()))
                            .collect();
                        json!({"authenticated": true, "user": u.to_json(), "audiences": matched})
                    }
                    Err(_) if admin => {
                        json!({"authenticated": true, "user": User::admin().to_json(), "audiences": audiences})
                    }
                    Err(_) => json!({"authenticated": false, "error": "invalid bearer token"}),
                }
            }
            other => return Err(ApiError::internal(format!("no review handler for {other}"))),
        };
        Ok(answer(body, &api, kind, status))
    }
}
