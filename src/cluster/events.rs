//! Kubernetes Events (core/v1), created through the same retry policy as every other request.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};

use super::{ClusterError, Kube, ObjectRef, Verb};

/// One Event about `regarding`, recorded in its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord<'a> {
    pub regarding: &'a ObjectRef,
    /// `Normal` or `Warning`.
    pub kind: &'a str,
    pub reason: &'a str,
    /// At most 1 KiB: the API refuses longer messages.
    pub message: &'a str,
    /// The reporting component (`keelson`).
    pub component: &'a str,
}

impl Kube {
    pub async fn record_event(&self, event: &EventRecord<'_>) -> Result<(), ClusterError> {
        let namespace = event
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = k8s_openapi::jiff::Timestamp::now();
        // Unique per Event: the object's name, the time and a random suffix (as client-go does).
        let name = format!(
            "{}.{:x}{:04x}",
            event.regarding.name,
            now.as_nanosecond(),
            rand::random::<u16>()
        );
        let body = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(event.regarding.api_version.clone()),
                kind: Some(event.regarding.kind.clone()),
                name: Some(event.regarding.name.clone()),
                namespace: event.regarding.namespace.clone(),
                ..ObjectReference::default()
            },
            reason: Some(event.reason.to_string()),
            message: Some(event.message.to_string()),
            type_: Some(event.kind.to_string()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            source: Some(EventSource {
                component: Some(event.component.to_string()),
                ..EventSource::default()
            }),
            reporting_component: Some(event.component.to_string()),
            ..Event::default()
        };
        let what = format!("Event {namespace}/{name}");
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = self
            .retry
            .run(|| async {
                api.create(&PostParams::default(), &body)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Create, e))
            })
            .await;
        match created {
            // A retry after a lost response finds the Event it created.
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
