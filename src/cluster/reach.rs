//! Whether the API server has ever answered this handle, and what to say when it cannot be reached.
//!
//! A request that gets no answer (refused, unresolvable name, failed TLS handshake, no reply within the
//! request timeout) is retried only once the server has answered before: an address that never answered is
//! a configuration problem, and saying so at once beats ten retries (a refused port then fails in
//! milliseconds, a silent one after one request timeout). Whatever was tried, a request that ends without an
//! answer ends as [`ClusterError::Unreachable`], one line naming the server and what to check.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ClusterError, RetryPolicy};

/// Where the server's address came from, for the hint of an unreachable server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFrom {
    Kubeconfig,
    InCluster,
    /// A ready client or an embedded cluster: nothing for the operator to check.
    Given,
}

#[derive(Debug)]
struct Reach {
    server: String,
    from: AddressFrom,
    answered: AtomicBool,
}

/// The retry policy of a [`super::Kube`] together with what it knows of the server's reachability. Clones
/// share that knowledge.
#[derive(Debug, Clone)]
pub struct Retrier {
    pub policy: RetryPolicy,
    reach: Arc<Reach>,
}

impl Retrier {
    pub fn new(server: String, from: AddressFrom) -> Self {
        Self {
            policy: RetryPolicy::default(),
            reach: Arc::new(Reach {
                server,
                from,
                answered: AtomicBool::new(false),
            }),
        }
    }

    /// The server as operators know it (`https://10.0.0.1:6443`).
    pub fn server(&self) -> &str {
        &self.reach.server
    }

    /// Runs `op` as [`RetryPolicy::run`] does, except that a server that never answered is not retried,
    /// and a request that got no answer ends as [`ClusterError::Unreachable`].
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let reach = &self.reach;
        let result = self
            .policy
            .run_while(
                || {
                    let attempt = op();
                    async move {
                        let result = attempt.await;
                        if answered(&result) {
                            reach.answered.store(true, Ordering::Relaxed);
                        }
                        result
                    }
                },
                |_| reach.answered.load(Ordering::Relaxed),
            )
            .await;
        result.map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, error: ClusterError) -> ClusterError {
        match error {
            ClusterError::Api {
                code: None,
                transient: true,
                message,
                source,
                ..
            } => {
                let (cause, check) = cause_and_check(&source, &message, self.reach.from);
                ClusterError::Unreachable {
                    server: self.reach.server.clone(),
                    cause,
                    check,
                    source,
                }
            }
            other => other,
        }
    }
}

fn answered<T>(result: &Result<T, ClusterError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => e.code().is_some(),
    }
}

/// What went wrong on the way to the server, and what the operator should look at.
fn cause_and_check(error: &kube::Error, message: &str, from: AddressFrom) -> (String, String) {
    let address = match from {
        AddressFrom::Kubeconfig => "is the kubeconfig's server right",
        AddressFrom::InCluster => {
            "is the in-cluster API address (KUBERNETES_SERVICE_HOST) reachable from the pod"
        }
        AddressFrom::Given => "is the API server running",
    };
    let texts = chain_texts(error);
    let any = |needle: &str| texts.iter().any(|t| t.to_ascii_lowercase().contains(needle));
    let io_kind = |kind: std::io::ErrorKind| io_kinds(error).contains(&kind);
    if io_kind(std::io::ErrorKind::TimedOut) || message.starts_with("timed out") {
        return (
            "no answer (connecting or waiting for the response timed out)".into(),
            format!(
                "{address}, and does a firewall or proxy hold the connection? (--request-timeout sets the limit)"
            ),
        );
    }
    if io_kind(std::io::ErrorKind::ConnectionRefused) || any("connection refused") {
        return ("connection refused".into(), format!("{address}?"));
    }
    if any("dns error") || any("failed to lookup address") || any("name or service not known") {
        return (
            "the host name does not resolve (DNS)".into(),
            format!("{address}, and does its host name resolve from here?"),
        );
    }
    if has_tls_error(error) || any("certificate") || any("tls") || any("handshake") {
        let detail = texts
            .iter()
            .rev()
            .find(|t| !t.is_empty())
            .cloned()
            .unwrap_or_default();
        let check = match from {
            AddressFrom::InCluster => {
                "does the pod's service account CA (ca.crt) sign the API server's certificate?"
            }
            _ => {
                "does the kubeconfig's certificate-authority-data sign the server's certificate, and is its server the name the certificate carries?"
            }
        };
        return (format!("TLS handshake failed: {detail}"), check.into());
    }
    if io_kind(std::io::ErrorKind::ConnectionReset) || any("connection reset") {
        return (
            "the connection was reset".into(),
            format!("{address}, and is it an API server (not a plain HTTP or other service)?"),
        );
    }
    (message.to_string(), format!("{address}?"))
}

/// The Display text of each error in the chain (an `io::Error`'s wrapped error included, which its
/// `source()` skips).
fn chain_texts(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut texts = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        texts.push(e.to_string());
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            texts.push(inner.to_string());
        }
        cause = e.source();
    }
    texts
}

fn io_kinds(error: &(dyn std::error::Error + 'static)) -> Vec<std::io::ErrorKind> {
    let mut kinds = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kinds.push(io.kind());
        }
        cause = e.source();
    }
    kinds
}

fn has_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        let inner = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if inner.is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some()) {
            return true;
        }
        cause = e.source();
    }
    false
}
