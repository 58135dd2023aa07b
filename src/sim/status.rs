//! Kubernetes `Status` error bodies: the shape, codes and reasons a real API server returns.

use serde_json::{Value, json};

/// An error answered to a client as a `kind: Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429 and some 5xx).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn set_details(&mut self, details: Value) {
        self.details = Some(Box::new(details));
    }

    /// No valid credentials: kube-apiserver says no more than this.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(qualified: &str, name: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        let mut e = Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"));
        e.set_details(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(qualified: &str, name: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        );
        e.set_details(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    pub fn conflict(qualified: &str, name: &str) -> Self {
        let (resource, group) = split_qualified(qualified);
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        );
        e.set_details(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let summary: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let mut e = Self::new(
            422,
            "Invalid",
            format!(
                "{kind}{} \"{name}\" is invalid: {}",
                dotted(group),
                summary.join(", ")
            ),
        );
        let causes: Vec<Value> = causes
            .into_iter()
            .map(
                |(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}),
            )
            .collect();
        e.set_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}));
        e
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// A body in a media type the resource has no decoder for; built-in kinds also take protobuf.
    pub fn unsupported_media_type(builtin: bool) -> Self {
        let accepted = if builtin {
            "application/json, application/yaml, application/vnd.kubernetes.protobuf"
        } else {
            "application/json, application/yaml"
        };
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    /// A PATCH in a media type that is no patch format; strategic merge exists for built-in kinds only.
    pub fn unsupported_patch_type(builtin: bool) -> Self {
        let accepted = if builtin {
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
        } else {
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        };
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object as the server writes it.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = (**d).clone();
        }
        if let Some(secs) = self.retry_after {
            let details = v.as_object_mut().and_then(|o| {
                o.entry("details").or_insert_with(|| json!({}));
                o.get_mut("details")
            });
            if let Some(d) = details {
                d["retryAfterSeconds"] = json!(secs);
            }
        }
        v
    }
}

fn dotted(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    }
}

/// "deployments.apps" -> ("deployments", "apps"); "pods" -> ("pods", "").
fn split_qualified(q: &str) -> (&str, &str) {
    match q.split_once('.') {
        Some((r, g)) => (r, g),
        None => (q, ""),
    }
}

/// The success Status returned by some deletes.
pub fn success_status(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_body_matches_real_server_shape() {
        let b = ApiError::not_found("deployments.apps", "web").body();
        assert_eq!(b["kind"], "Status");
        assert_eq!(b["code"], 404);
        assert_eq!(b["reason"], "NotFound");
        assert_eq!(b["message"], "deployments.apps \"web\" not found");
        assert_eq!(b["details"]["group"], "apps");
        assert_eq!(b["details"]["kind"], "deployments");
    }

    #[test]
    fn retry_after_lands_in_details() {
        let mut e = ApiError::new(429, "TooManyRequests", "slow down");
        e.retry_after = Some(2);
        assert_eq!(e.body()["details"]["retryAfterSeconds"], 2);
    }
}
