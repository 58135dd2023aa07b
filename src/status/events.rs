//! Kubernetes Events (core/v1) about passes and components, attached to the status ConfigMap so that
//! `kubectl describe cm keelson-status` and `kubectl get events` show them.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};

use super::StatusError;
use super::store::STATUS_CONFIGMAP;
use crate::cluster::Kube;

/// `Normal` or `Warning`, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Creates one Event in `namespace` about the status ConfigMap.
pub async fn emit(
    kube: &Kube,
    namespace: &str,
    kind: EventType,
    reason: &str,
    message: &str,
) -> Result<(), StatusError> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let name = format!(
        "{STATUS_CONFIGMAP}.{:x}{:04x}",
        now.as_nanosecond(),
        rand::random::<u16>()
    );
    // The API limits an Event message to 1 KiB; longer texts (topology diagnostics) are cut.
    let message: String = if message.len() > 1000 {
        let mut cut = 1000;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &message[..cut])
    } else {
        message.to_string()
    };
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(STATUS_CONFIGMAP.into()),
            namespace: Some(namespace.to_string()),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(match kind {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        source: Some(EventSource {
            component: Some("keelson".into()),
            ..EventSource::default()
        }),
        reporting_component: Some("keelson".into()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(kube.client().clone(), namespace);
    api.create(&PostParams::default(), &event)
        .await
        .map(|_| ())
        .map_err(|source| StatusError::Event {
            reason: reason.to_string(),
            source,
        })
}
