//! Errors of the cluster door: each names the object (or kind) first, says which verb failed, and knows
//! whether retrying can help.

use std::time::Duration;

/// The API operation that failed; part of every API error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Discover,
    Get,
    List,
    Watch,
    Create,
    Update,
    Apply,
    Delete,
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verb::Discover => "discovery",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No client could be built for the target (missing kubeconfig, unknown context, not in a pod).
    #[error("{target}: cannot connect: {source}")]
    Connect {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kubeconfig cannot be read: not there, unreadable, or not a kubeconfig. `named_by` says where its
    /// name came from (`--kubeconfig`, `$KUBECONFIG`, the default location).
    #[error("{}", kubeconfig_message(path, named_by, source.as_ref()))]
    Kubeconfig {
        path: std::path::PathBuf,
        named_by: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer from the API server: refused, unresolvable, TLS failure, or silent past the request timeout.
    #[error("cannot reach {server}: {cause} — {check}")]
    Unreachable {
        server: String,
        cause: String,
        /// What the operator should look at.
        check: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The object given to apply lacks what identifies it.
    #[error("{object}: invalid object: {reason}")]
    InvalidObject { object: String, reason: String },
    /// The server does not serve this apiVersion/kind, even after refreshing discovery.
    #[error("{kind} {api_version}: the API server does not serve this kind")]
    UnknownKind { api_version: String, kind: String },
    /// An API request failed; `transient` says whether a retry may help.
    #[error("{object}: {verb} failed: {message}")]
    Api {
        object: String,
        verb: Verb,
        /// HTTP status code when the server answered.
        code: Option<u16>,
        message: String,
        transient: bool,
        /// The server's `Retry-After` hint (Status `details.retryAfterSeconds`).
        retry_after: Option<Duration>,
        #[source]
        source: Box<kube::Error>,
    },
    /// The server refused a change to a field that cannot change after creation.
    #[error(
        "{object}: apply failed: field {field} is immutable (the object must be recreated to change it): {message}"
    )]
    Immutable {
        object: String,
        field: String,
        message: String,
    },
    /// Deleting and re-creating an object (after an immutable-field rejection) did not complete.
    #[error("{object}: recreate failed: {reason}")]
    Recreate { object: String, reason: String },
    /// The object exists but Keelson does not own it; taking it over would steal someone else's object.
    #[error("{object}: refusing to take over an object Keelson does not own: {reason}")]
    Foreign { object: String, reason: String },
    /// The inventory ConfigMap exists but is not readable as one.
    #[error("{object}: invalid inventory: {reason}")]
    Inventory { object: String, reason: String },
}

fn kubeconfig_message(
    path: &std::path::Path,
    named_by: &str,
    source: &(dyn std::error::Error + Send + Sync + 'static),
) -> String {
    let missing = source
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if missing {
        format!(
            "no kubeconfig at {} ({named_by}): pass --kubeconfig FILE, set KUBECONFIG, or use --in-cluster",
            path.display()
        )
    } else {
        format!("kubeconfig {} ({named_by}): {source}", path.display())
    }
}

impl ClusterError {
    /// The kind of error as a metric label value: stable, lowercase, one per variant.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ClusterError::Connect { .. } | ClusterError::Kubeconfig { .. } => "connect",
            ClusterError::InvalidObject { .. } => "invalid_object",
            ClusterError::UnknownKind { .. } => "unknown_kind",
            ClusterError::Unreachable { .. } => "unreachable",
            ClusterError::Api { code: Some(401), .. } => "unauthorized",
            ClusterError::Api { code: Some(403), .. } => "forbidden",
            ClusterError::Api { .. } => "api",
            ClusterError::Immutable { .. } => "immutable",
            ClusterError::Recreate { .. } => "recreate",
            ClusterError::Foreign { .. } => "foreign",
            ClusterError::Inventory { .. } => "inventory",
        }
    }

    /// Whether the same request may succeed later (5xx, 429, timeouts, connection failures).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClusterError::Api { transient: true, .. } | ClusterError::Unreachable { .. }
        )
    }

    /// Errors no retry can fix: credentials the server refuses (401), a permission Keelson lacks (403),
    /// someone else's object in the way, an unreadable inventory. They wait for a person.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            ClusterError::Api {
                code: Some(401 | 403),
                ..
            } | ClusterError::Foreign { .. }
                | ClusterError::Inventory { .. }
        )
    }

    /// The permission a 403 says is missing.
    pub fn missing_permission(&self) -> Option<&str> {
        match self {
            ClusterError::Api {
                code: Some(403),
                message,
                ..
            } => message.split_once("missing permission: ").map(|(_, p)| p),
            _ => None,
        }
    }

    /// How long the server asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClusterError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => *code,
            ClusterError::Immutable { .. } => Some(422),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Classify a kube error for `object`/`verb`, recognising immutable-field rejections on apply.
    pub(crate) fn from_kube(object: &str, verb: Verb, source: kube::Error) -> Self {
        match &source {
            kube::Error::Api(status) => {
                let code = status.code;
                let message = if status.message.is_empty() {
                    format!("{} {}", code, status.reason)
                } else {
                    status.message.clone()
                };
                if verb == Verb::Apply && code == 422 {
                    if let Some(field) = immutable_field(status) {
                        return ClusterError::Immutable {
                            object: object.to_string(),
                            field,
                            message,
                        };
                    }
                }
                let retry_after = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s)));
                let message = match code {
                    401 => format!(
                        "401 Unauthorized: the API server does not accept the credentials ({message}) — check the \
                         kubeconfig's user (token, client certificate, exec plugin) or the service account token"
                    ),
                    403 => match permission(&message) {
                        Some(permission) => format!("403 Forbidden: missing permission: {permission}"),
                        None => format!("403: {message}"),
                    },
                    _ => format!("{code}: {message}"),
                };
                ClusterError::Api {
                    object: object.to_string(),
                    verb,
                    code: Some(code),
                    message,
                    transient: is_transient_code(code),
                    retry_after,
                    source: Box::new(source),
                }
            }
            // No answer from the server: connection refused/reset, timeouts, TLS hiccups.
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
                let message = if timed_out(&source) {
                    "timed out: the API server did not answer within the request timeout".to_string()
                } else {
                    source.to_string()
                };
                ClusterError::Api {
                    object: object.to_string(),
                    verb,
                    code: None,
                    message,
                    transient: true,
                    retry_after: None,
                    source: Box::new(source),
                }
            }
            _ => ClusterError::Api {
                object: object.to_string(),
                verb,
                code: None,
                message: source.to_string(),
                transient: false,
                retry_after: None,
                source: Box::new(source),
            },
        }
    }
}

/// The permission a kube-apiserver refusal names, as one phrase: `User "u" cannot list resource
/// "configmaps" in API group "" in the namespace "os"` becomes `system:... may not list configmaps in
/// namespace os (grant it to this identity: RBAC verb list, resource configmaps, API group "")`.
fn permission(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("User \"")?;
    let (user, rest) = rest.split_once("\" cannot ")?;
    let (verb, rest) = rest.split_once(" resource \"")?;
    let (resource, rest) = rest.split_once("\" in API group \"")?;
    let (group, rest) = rest.split_once('"')?;
    let scope = match rest.trim_start().strip_prefix("in the namespace \"") {
        Some(ns) => format!("in namespace {}", ns.split('"').next().unwrap_or_default()),
        None => "cluster-wide".to_string(),
    };
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    Some(format!(
        "{user} may not {verb} {qualified} {scope} (grant verb {verb:?} on resource {resource:?} in API group {group:?})"
    ))
}

/// Whether a connect, read or write timeout of the client config ended the request (somewhere down the
/// chain of causes: kube wraps hyper, which wraps the timeout's I/O error).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// 408 (timeout), 429 (throttled) and every 5xx may succeed on retry; other 4xx will not.
pub(crate) fn is_transient_code(code: u16) -> bool {
    code == 408 || code == 429 || (500..600).contains(&code)
}

/// The field an immutable-field rejection names: from the Status causes when given, else from the
/// message (`Kind.group "name" is invalid: spec.selector: Invalid value: ...: field is immutable`).
fn immutable_field(status: &kube::core::Status) -> Option<String> {
    let msg = &status.message;
    let statefulset_forbidden = msg.contains("updates to statefulset spec for fields other than");
    if !msg.contains("field is immutable") && !statefulset_forbidden {
        return None;
    }
    if let Some(details) = &status.details {
        for cause in &details.causes {
            if !cause.field.is_empty() && (cause.message.contains("immutable") || cause.message.is_empty()) {
                return Some(cause.field.clone());
            }
        }
        if let Some(cause) = details.causes.iter().find(|c| !c.field.is_empty()) {
            return Some(cause.field.clone());
        }
    }
    // Take the segment before the one that says "field is immutable" / "Forbidden".
    let after = msg
        .split_once("is invalid: ")
        .map(|(_, rest)| rest)
        .unwrap_or(msg);
    let field = after.split(':').next().unwrap_or("").trim();
    if field.is_empty() || field.contains(' ') {
        Some("spec".to_string())
    } else {
        Some(field.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusDetails};

    fn api(code: u16, message: &str, details: Option<StatusDetails>) -> kube::Error {
        let mut s = Status::failure(message, "Invalid").with_code(code);
        s.details = details;
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn classifies_codes() {
        let cases = [
            (500, true),
            (503, true),
            (504, true),
            (429, true),
            (408, true),
            (400, false),
            (403, false),
            (404, false),
            (409, false),
            (422, false),
        ];
        for (code, transient) in cases {
            let e = ClusterError::from_kube("Deployment a/b", Verb::Apply, api(code, "x", None));
            assert_eq!(e.is_transient(), transient, "code {code}");
            assert_eq!(e.code(), Some(code));
        }
    }

    #[test]
    fn error_text_names_object_first() {
        let e = ClusterError::from_kube(
            "Deployment openstack/keystone-api",
            Verb::Apply,
            api(500, "etcd unavailable", None),
        );
        assert_eq!(
            e.to_string(),
            "Deployment openstack/keystone-api: apply failed: 500: etcd unavailable"
        );
    }

    #[test]
    fn a_refusal_names_the_permission_and_rejected_credentials_what_to_check() {
        let cases = [
            (
                "configmaps \"inv\" is forbidden: User \"system:serviceaccount:k:keelson\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"openstack\"",
                "system:serviceaccount:k:keelson may not get configmaps in namespace openstack (grant verb \"get\" on resource \"configmaps\" in API group \"\")",
            ),
            (
                "namespaces \"openstack\" is forbidden: User \"alice\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope",
                "alice may not get namespaces cluster-wide (grant verb \"get\" on resource \"namespaces\" in API group \"\")",
            ),
            (
                "deployments.apps \"api\" is forbidden: User \"bob\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"os\": RBAC: role not found",
                "bob may not patch deployments.apps in namespace os (grant verb \"patch\" on resource \"deployments\" in API group \"apps\")",
            ),
        ];
        for (message, permission) in cases {
            let e = ClusterError::from_kube("x", Verb::Get, api(403, message, None));
            assert_eq!(e.missing_permission(), Some(permission), "{e}");
            assert!(e.is_configuration() && !e.is_transient());
            assert_eq!(e.metric_label(), "forbidden");
        }
        let e = ClusterError::from_kube(
            "x",
            Verb::Get,
            api(403, "forbidden: User \"a\" cannot get path \"/x\"", None),
        );
        assert_eq!(e.missing_permission(), None);
        assert!(
            e.to_string()
                .ends_with("403: forbidden: User \"a\" cannot get path \"/x\""),
            "{e}"
        );
        let e = ClusterError::from_kube("x", Verb::List, api(401, "Unauthorized", None));
        assert!(
            e.to_string().contains("401 Unauthorized")
                && e.to_string().contains("check the kubeconfig's user")
        );
        assert!(e.is_configuration() && !e.is_transient());
        let e = ClusterError::from_kube("x", Verb::List, api(503, "down", None));
        assert!(!e.is_configuration());
    }

    #[test]
    fn reads_retry_after() {
        let details: StatusDetails =
            serde_json::from_value(serde_json::json!({"retryAfterSeconds": 3})).unwrap();
        let e = ClusterError::from_kube("x", Verb::Get, api(429, "slow down", Some(details)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e = ClusterError::from_kube("x", Verb::Get, api(429, "slow down", None));
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn recognises_immutable_fields() {
        let cases: Vec<(&str, Option<StatusDetails>, Option<&str>)> = vec![
            (
                "Deployment.apps \"k\" is invalid: spec.selector: Invalid value: {}: field is immutable",
                None,
                Some("spec.selector"),
            ),
            (
                "Job.batch \"j\" is invalid: spec.template: Invalid value: x: field is immutable",
                None,
                Some("spec.template"),
            ),
            (
                "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden",
                None,
                Some("spec"),
            ),
            (
                "field is immutable",
                Some(serde_json::from_value(serde_json::json!({"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: field is immutable", "field": "spec.selector"}]})).unwrap()),
                Some("spec.selector"),
            ),
            (
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                None,
                None,
            ),
        ];
        for (message, details, want) in cases {
            let e = ClusterError::from_kube("StatefulSet o/db", Verb::Apply, api(422, message, details));
            match (want, &e) {
                (Some(field), ClusterError::Immutable { field: got, .. }) => {
                    assert_eq!(got, field, "{message}")
                }
                (None, ClusterError::Api { .. }) => {}
                _ => panic!("{message}: unexpected {e:?}"),
            }
        }
        let e = ClusterError::from_kube(
            "StatefulSet o/db",
            Verb::Apply,
            api(
                422,
                "x is invalid: spec.selector: Invalid value: field is immutable",
                None,
            ),
        );
        assert!(
            e.to_string()
                .starts_with("StatefulSet o/db: apply failed: field spec.selector is immutable")
        );
    }
}
