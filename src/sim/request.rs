//! What a request asks for once HTTP is peeled off: the target object, its options, and the limits every
//! request is held to. Shared by the HTTP layer, the API and watches, so none of them imports another.

use super::auth::{Attributes, User};
use super::resources::ResourceInfo;
use super::selectors::{FieldSelector, LabelSelector};

/// Request bodies larger than a real API server accepts (3 MiB) are refused.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The resource, scope and object a request addresses.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub info: ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
    pub force: bool,
    pub field_validation: FieldValidation,
}

/// `fieldValidation`: what becomes of fields the kind's schema does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, each named in a `Warning` header (the server's default).
    #[default]
    Warn,
    /// The request is refused.
    Strict,
}

/// What one request brings and collects while the API handles it.
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    /// Who asks; None for the simulator's own writes (controllers, garbage collection, bootstrap).
    pub user: Option<User>,
    pub field_validation: FieldValidation,
    /// `Warning` headers for the response.
    pub warnings: Vec<String>,
    /// What a server-side apply asks the authorizer, as `create`, if it turns out to make a new object
    /// (kube-apiserver's `createAuthorizerAttributes` in its patch handler). None for other requests.
    pub create_attributes: Option<Attributes>,
    /// Verbs authorized while the request ran, beyond the one its method asks for: `create` for a
    /// server-side apply that makes a new object.
    pub authorized: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub cont: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds`: how long a Pod may take to stop (0: at once).
    pub grace_period: Option<i64>,
}
