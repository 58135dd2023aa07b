//! Authentication and authorization, as kube-apiserver runs them before a request reaches the API: a bearer
//! token names the user (the cluster's admin token, or a ServiceAccount token minted through TokenRequest;
//! no token is `system:anonymous`), impersonation headers switch to another user when RBAC allows it, and
//! RBAC decides from the stored roles and bindings. A bad token is 401; a refusal is 403 worded as
//! kube-apiserver words it.

pub mod rbac;
pub mod token;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, header};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::resources::ResKey;
use super::status::ApiError;
use super::store::Store;
use token::{Claims, Signer};

/// The group whose members pass every authorization check (kube-apiserver's privileged group).
pub const MASTERS: &str = "system:masters";
/// The user the admin token authenticates as (kubeadm's name for the first admin).
pub const ADMIN_USER: &str = "kubernetes-admin";

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    pub fn admin() -> User {
        User {
            name: ADMIN_USER.into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), "system:authenticated".into()],
        }
    }

    pub fn service_account(namespace: &str, name: &str, uid: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v
    }
}

/// What a request asks to do, as the authorizer sees it (kube-apiserver's `RequestInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    pub verb: String,
    pub path: String,
    /// None for a non-resource request (discovery, health, version).
    pub resource: Option<ResourceAttributes>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceAttributes {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// Reads the request the way kube-apiserver's RequestInfoFactory does, from the path alone: the
    /// registry is not consulted, so an unknown resource is authorized (and then not found) like any other.
    pub fn of_request(method: &Method, path: &str, query: &HashMap<String, String>) -> Attributes {
        let http_verb = method.as_str().to_ascii_lowercase();
        let non_resource = || Attributes {
            verb: if http_verb == "head" {
                "get".into()
            } else {
                http_verb.clone()
            },
            path: path.to_string(),
            resource: None,
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => return non_resource(),
        };
        let (group, mut rest) = rest;
        let mut r = ResourceAttributes {
            group: group.into(),
            ..Default::default()
        };
        if rest[0] == "namespaces" && rest.len() > 1 {
            r.namespace = rest[1].into();
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        r.resource = rest[0].into();
        if let Some(n) = rest.get(1) {
            r.name = (*n).into();
        }
        if let Some(s) = rest.get(2) {
            r.subresource = (*s).into();
        }
        let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
        let verb = match (method.as_str(), r.name.is_empty()) {
            ("GET" | "HEAD", false) => "get",
            ("GET" | "HEAD", true) if watch => "watch",
            ("GET" | "HEAD", true) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", false) => "delete",
            ("DELETE", true) => "deletecollection",
            _ => http_verb.as_str(),
        };
        Attributes {
            verb: verb.into(),
            path: path.to_string(),
            resource: Some(r),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cluster's credentials: its admin token and the key ServiceAccount tokens are signed with.
pub struct Authenticator {
    admin_token: String,
    signer: Signer,
}

/// The audiences kube-apiserver accepts by default; a token for another audience is not for it.
pub const API_AUDIENCES: [&str; 1] = [token::ISSUER];

impl Authenticator {
    pub fn new() -> Authenticator {
        let random = |n: usize| -> Vec<u8> { (0..n).map(|_| rand::random::<u8>()).collect() };
        let admin_token: String = random(32).iter().map(|b| format!("{b:02x}")).collect();
        Authenticator {
            admin_token,
            signer: Signer::new(&random(32)),
        }
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn mint(&self, claims: &Claims) -> String {
        self.signer.sign(claims, &super::meta::new_uid())
    }

    /// The user a bearer token stands for, or 401 when it stands for nobody (anymore).
    pub fn user_for_token(&self, token: &str, store: &Store) -> Result<User, ApiError> {
        if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) {
            return Ok(User::admin());
        }
        let claims = self.valid_claims(token, store, &API_AUDIENCES)?;
        Ok(User::service_account(
            &claims.namespace,
            &claims.service_account,
            &claims.service_account_uid,
        ))
    }

    /// A ServiceAccount token's claims, if it is ours, unexpired, for one of `audiences`, and the
    /// ServiceAccount (and the object it is bound to) still exist with the uid it was issued for.
    pub fn valid_claims(&self, token: &str, store: &Store, audiences: &[&str]) -> Result<Claims, ApiError> {
        let claims = self.signer.verify(token).ok_or_else(ApiError::unauthorized)?;
        let now = now_secs();
        if claims.expires_at <= now || claims.issued_at > now + 60 {
            return Err(ApiError::unauthorized());
        }
        if !claims.audiences.iter().any(|a| audiences.contains(&a.as_str())) {
            return Err(ApiError::unauthorized());
        }
        let exists = |plural: &str, ns: &str, name: &str, uid: &str| {
            let key = ResKey {
                group: String::new(),
                plural: plural.into(),
            };
            store
                .get(&key, ns, name)
                .is_some_and(|o| o["metadata"]["uid"] == uid && o["metadata"]["deletionTimestamp"].is_null())
        };
        if !exists(
            "serviceaccounts",
            &claims.namespace,
            &claims.service_account,
            &claims.service_account_uid,
        ) {
            return Err(ApiError::unauthorized());
        }
        if let Some((kind, name, uid)) = &claims.bound {
            let plural = match kind.as_str() {
                "Secret" => "secrets",
                "Pod" => "pods",
                _ => "nodes",
            };
            if !exists(plural, &claims.namespace, name, uid) {
                return Err(ApiError::unauthorized());
            }
        }
        Ok(claims)
    }

    /// The user of a request: its bearer token, then impersonation (checked by RBAC as kube-apiserver
    /// checks it), or anonymous without credentials.
    pub fn authenticate(&self, headers: &HeaderMap, store: &Store) -> Result<User, ApiError> {
        let user = match headers.get(header::AUTHORIZATION) {
            None => User::anonymous(),
            Some(v) => {
                let v = v.to_str().map_err(|_| ApiError::unauthorized())?;
                let (scheme, token) = v.split_once(' ').ok_or_else(ApiError::unauthorized)?;
                if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                    return Err(ApiError::unauthorized());
                }
                self.user_for_token(token.trim(), store)?
            }
        };
        impersonate(user, headers, store)
    }
}

/// `Impersonate-User` / `Impersonate-Group`: the requester needs `impersonate` on each, as on a real
/// server; the impersonated user is then authenticated like any other.
fn impersonate(user: User, headers: &HeaderMap, store: &Store) -> Result<User, ApiError> {
    let Some(target) = headers.get("impersonate-user") else {
        if headers.get("impersonate-group").is_some() {
            return Err(ApiError::bad_request(
                "requested Impersonate-Group without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let target = target
        .to_str()
        .map_err(|_| ApiError::bad_request("Impersonate-User: not a valid header value"))?
        .to_string();
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|g| g.to_str().ok().map(String::from))
        .collect();
    let mut checks = Vec::new();
    let sa = target
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    match sa {
        Some((ns, name)) => checks.push(("serviceaccounts", "", ns.to_string(), name.to_string())),
        None => checks.push(("users", "", String::new(), target.clone())),
    }
    for g in &groups {
        checks.push(("groups", "", String::new(), g.clone()));
    }
    for (resource, group, namespace, name) in checks {
        let a = Attributes {
            verb: "impersonate".into(),
            path: String::new(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace,
                name,
            }),
        };
        let (allowed, reason) = authorize(store, &user, &a);
        if !allowed {
            return Err(forbidden(&user, &a, &reason));
        }
    }
    let mut out = match sa {
        Some((ns, name)) => {
            let mut u = User::service_account(ns, name, "");
            u.groups.retain(|g| g != "system:authenticated");
            u
        }
        None => User {
            name: target,
            uid: String::new(),
            groups: Vec::new(),
        },
    };
    out.groups.extend(groups);
    if out.name != "system:anonymous" && !out.groups.iter().any(|g| g == "system:authenticated") {
        out.groups.push("system:authenticated".into());
    }
    Ok(out)
}

/// Privileged users pass; everyone else is decided by RBAC.
pub fn authorize(store: &Store, user: &User, a: &Attributes) -> (bool, String) {
    if user.is_privileged() {
        return (true, String::new());
    }
    rbac::authorize(store, user, a)
}

/// Writing a role or a binding grants permissions: kube-apiserver allows it only to users who hold them
/// (in the role's namespace), or who may `escalate` roles or `bind` the referenced role.
pub fn check_grant(
    store: &Store,
    user: &User,
    plural: &str,
    namespace: &str,
    name: &str,
    obj: &serde_json::Value,
) -> Result<(), ApiError> {
    if user.is_privileged() {
        return Ok(());
    }
    let forbidden = |msg: String| {
        let mut e = ApiError::new(
            403,
            "Forbidden",
            format!("{plural}.{} {name:?} is forbidden: {msg}", rbac::GROUP),
        );
        e.set_details(json!({"name": name, "group": rbac::GROUP, "kind": plural}));
        e
    };
    let may = |verb: &str, resource: &str, resource_name: &str| {
        let a = Attributes {
            verb: verb.into(),
            path: String::new(),
            resource: Some(ResourceAttributes {
                group: rbac::GROUP.into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: resource_name.into(),
            }),
        };
        authorize(store, user, &a).0
    };
    let rules = match plural {
        "roles" | "clusterroles" => {
            if may("escalate", plural, name) {
                return Ok(());
            }
            obj["rules"].as_array().cloned().unwrap_or_default()
        }
        "rolebindings" | "clusterrolebindings" => {
            let role = obj["roleRef"]["name"].as_str().unwrap_or("");
            let (role_plural, role_ns, singular) = match obj["roleRef"]["kind"].as_str() {
                Some("ClusterRole") => ("clusterroles", "", "clusterrole"),
                Some("Role") => ("roles", namespace, "role"),
                // Validation refuses other references.
                _ => return Ok(()),
            };
            if may("bind", role_plural, role) {
                return Ok(());
            }
            let key = ResKey {
                group: rbac::GROUP.into(),
                plural: role_plural.into(),
            };
            match store.get(&key, role_ns, role) {
                Some(r) => r["rules"].as_array().cloned().unwrap_or_default(),
                None => {
                    return Err(forbidden(format!(
                        "{singular}.{} {role:?} not found",
                        rbac::GROUP
                    )));
                }
            }
        }
        _ => return Ok(()),
    };
    rbac::confirm_no_escalation(store, user, namespace, &rules).map_err(forbidden)
}

/// kube-apiserver's refusal: `<resource> "<name>" is forbidden: User "<user>" cannot <verb> resource
/// "<resource>[/<sub>]" in API group "<group>" in the namespace "<ns>"` (or `at the cluster scope`, or
/// `cannot <verb> path "<path>"`), with the authorizer's reason after a colon.
pub fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = match &a.resource {
        None => format!("User {:?} cannot {} path {:?}", user.name, a.verb, a.path),
        Some(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
                user.name, a.verb, resource, r.group
            )
        }
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let (group, resource, name) = match &a.resource {
        Some(r) => (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
        None => ("", "", ""),
    };
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {name:?} is forbidden: {msg}")
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    // StatusDetails leaves empty fields out.
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    if !details.is_empty() {
        e.set_details(serde_json::Value::Object(details));
    }
    e
}

/// kube-apiserver's refusal of the `create` a server-side apply needs when the object is new (its patch
/// handler's `withAuthorization`): `<resource>.<group> "<name>" is forbidden: <authorizer's reason>`, with
/// no "User ... cannot" sentence, and nothing after the colon when RBAC simply found no rule.
pub fn forbidden_on_create(a: &Attributes, reason: &str) -> ApiError {
    let Some(r) = &a.resource else {
        return ApiError::new(403, "Forbidden", format!("forbidden: {reason}"));
    };
    let qualified = if r.group.is_empty() {
        r.resource.clone()
    } else {
        format!("{}.{}", r.resource, r.group)
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!("{qualified} {:?} is forbidden: {reason}", r.name),
    );
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", &r.name), ("group", &r.group), ("kind", &r.resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    e.set_details(serde_json::Value::Object(details));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str, watch: bool) -> Attributes {
        let mut q = HashMap::new();
        if watch {
            q.insert("watch".to_string(), "true".to_string());
        }
        Attributes::of_request(&method.parse().unwrap(), path, &q)
    }

    #[test]
    fn request_info_table() {
        let r = |verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str| {
            (
                verb.to_string(),
                Some(ResourceAttributes {
                    group: group.into(),
                    resource: resource.into(),
                    subresource: sub.into(),
                    namespace: ns.into(),
                    name: name.into(),
                }),
            )
        };
        let cases = [
            (
                "GET",
                "/api/v1/namespaces",
                false,
                r("list", "", "namespaces", "", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/a",
                false,
                r("get", "", "namespaces", "", "a", "a"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/a/status",
                false,
                r("update", "", "namespaces", "status", "a", "a"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods",
                true,
                r("watch", "", "pods", "", "a", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/serviceaccounts/s/token",
                false,
                r("create", "", "serviceaccounts", "token", "a", "s"),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments",
                false,
                r("deletecollection", "apps", "deployments", "", "a", ""),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                false,
                r("patch", "apps", "deployments", "scale", "a", "d"),
            ),
            (
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/x",
                false,
                r("get", "rbac.authorization.k8s.io", "clusterroles", "", "", "x"),
            ),
            ("GET", "/api/v1", false, ("get".to_string(), None)),
            ("GET", "/apis/apps", false, ("get".to_string(), None)),
            ("POST", "/version", false, ("post".to_string(), None)),
        ];
        for (method, path, watch, want) in cases {
            let a = attrs(method, path, watch);
            assert_eq!((a.verb.clone(), a.resource.clone()), want, "{method} {path}");
        }
    }

    #[test]
    fn forbidden_messages_are_worded_as_kube_apiserver_words_them() {
        let u = User::service_account("keelson-system", "keelson", "x");
        let e = forbidden(&u, &attrs("GET", "/api/v1/namespaces", false), "");
        assert_eq!(
            e.message,
            "namespaces is forbidden: User \"system:serviceaccount:keelson-system:keelson\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        let e = forbidden(
            &u,
            &attrs("GET", "/apis/apps/v1/namespaces/os/deployments/web/scale", false),
            "",
        );
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:keelson-system:keelson\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"os\""
        );
        let e = forbidden(&User::anonymous(), &attrs("GET", "/api", false), "");
        assert_eq!(
            e.message,
            "forbidden: User \"system:anonymous\" cannot get path \"/api\""
        );
        let e = forbidden(
            &u,
            &attrs("GET", "/api/v1/namespaces/a/pods", false),
            "RBAC: role.rbac.authorization.k8s.io \"r\" not found",
        );
        assert!(
            e.message
                .ends_with("in the namespace \"a\": RBAC: role.rbac.authorization.k8s.io \"r\" not found"),
            "{}",
            e.message
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.body()["details"], json!({"kind": "pods"}));
    }

    #[test]
    fn the_create_an_apply_needs_is_refused_with_the_authorizers_reason_alone() {
        let create = |path: &str| Attributes {
            verb: "create".into(),
            ..attrs("PATCH", path, false)
        };
        let cases = [
            (
                "/apis/apps/v1/namespaces/os/deployments/web",
                "",
                "deployments.apps \"web\" is forbidden: ",
                json!({"name": "web", "group": "apps", "kind": "deployments"}),
            ),
            (
                "/api/v1/namespaces/os/configmaps/c",
                "RBAC: role.rbac.authorization.k8s.io \"r\" not found",
                "configmaps \"c\" is forbidden: RBAC: role.rbac.authorization.k8s.io \"r\" not found",
                json!({"name": "c", "kind": "configmaps"}),
            ),
            (
                "/api/v1/namespaces/fresh",
                "",
                "namespaces \"fresh\" is forbidden: ",
                json!({"name": "fresh", "kind": "namespaces"}),
            ),
        ];
        for (path, reason, message, details) in cases {
            let e = forbidden_on_create(&create(path), reason);
            assert_eq!((e.code, e.message.as_str()), (403, message), "{path}");
            assert_eq!(e.body()["details"], details, "{path}");
        }
    }
}
