//! `coordination.k8s.io/v1` Leases, as leader election reads and writes them. Writes carry the
//! resourceVersion they read, so two replicas racing for one Lease cannot both win: the loser gets
//! [`LeaseWrite::Conflict`].

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{ClusterError, Kube, Verb};

/// What a Lease says.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    /// `None` when released (or never held).
    pub holder: Option<String>,
    /// As the holder wrote it; compared, never parsed: clocks of different nodes are never compared.
    pub renew_time: Option<String>,
    pub duration_seconds: Option<i32>,
    pub transitions: i32,
    /// The Lease as read, so that an update carries its resourceVersion.
    read: Lease,
}

/// How a Lease write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWrite {
    Written,
    /// Someone else created or changed the Lease first.
    Conflict,
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn lease_ref(namespace: &str, name: &str) -> String {
    format!("Lease {namespace}/{name}")
}

impl Kube {
    fn leases(&self, namespace: &str) -> Api<Lease> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The Lease, or `None` when it does not exist.
    pub async fn read_lease(&self, namespace: &str, name: &str) -> Result<Option<LeaseRecord>, ClusterError> {
        let what = lease_ref(namespace, name);
        let api = self.leases(namespace);
        let lease = self
            .retry
            .run(|| async {
                api.get_opt(name)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Get, e))
            })
            .await?;
        Ok(lease.map(|read| {
            let spec = read.spec.clone().unwrap_or_default();
            LeaseRecord {
                holder: spec.holder_identity.filter(|h| !h.is_empty()),
                renew_time: spec.renew_time.map(|t| t.0.to_string()),
                duration_seconds: spec.lease_duration_seconds,
                transitions: spec.lease_transitions.unwrap_or(0),
                read,
            }
        }))
    }

    /// Creates the Lease, held by `holder` from now on for `duration_seconds`.
    pub async fn create_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        duration_seconds: i32,
    ) -> Result<LeaseWrite, ClusterError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_string()),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        let what = lease_ref(namespace, name);
        let api = self.leases(namespace);
        let created = self
            .retry
            .run(|| async {
                api.create(&PostParams::default(), &lease)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Create, e))
            })
            .await;
        conflict_or(created)
    }

    /// Renews `read` for `holder` (`None` releases it), with the renew time now. A change of holder is a
    /// transition: it sets the acquire time and counts. Fails with [`LeaseWrite::Conflict`] when the Lease
    /// changed since it was read.
    pub async fn update_lease(
        &self,
        read: &LeaseRecord,
        holder: Option<&str>,
        duration_seconds: i32,
    ) -> Result<LeaseWrite, ClusterError> {
        let mut lease = read.read.clone();
        let namespace = lease.metadata.namespace.clone().unwrap_or_default();
        let name = lease.metadata.name.clone().unwrap_or_default();
        let mut spec = lease.spec.clone().unwrap_or_default();
        let taken_over = holder.is_some() && holder != read.holder.as_deref();
        if taken_over {
            spec.acquire_time = Some(micro_now());
            spec.lease_transitions = Some(read.transitions.saturating_add(1));
        }
        spec.holder_identity = holder.map(str::to_string);
        spec.renew_time = Some(micro_now());
        spec.lease_duration_seconds = Some(duration_seconds);
        lease.spec = Some(spec);
        let what = lease_ref(&namespace, &name);
        let api = self.leases(&namespace);
        // `replace` sends the resourceVersion read: a concurrent change makes it fail with 409.
        let replaced = self
            .retry
            .run(|| async {
                api.replace(&name, &PostParams::default(), &lease)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Update, e))
            })
            .await;
        conflict_or(replaced)
    }
}

fn conflict_or<T>(result: Result<T, ClusterError>) -> Result<LeaseWrite, ClusterError> {
    match result {
        Ok(_) => Ok(LeaseWrite::Written),
        Err(e) if e.code() == Some(409) => Ok(LeaseWrite::Conflict),
        Err(e) => Err(e),
    }
}
