//! Kubernetes Events about passes and components, attached to the status ConfigMap so that
//! `kubectl describe cm keelson-status` and `kubectl get events` show them.

use super::StatusError;
use super::store::STATUS_CONFIGMAP;
use crate::cluster::{EventRecord, Kube};
use crate::object::ObjectRef;

/// `Normal` or `Warning`, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The API limits an Event message to 1 KiB; longer texts (topology diagnostics) are cut.
const MAX_MESSAGE: usize = 1000;

/// Creates one Event in `namespace` about the status ConfigMap.
pub async fn emit(
    kube: &Kube,
    namespace: &str,
    kind: EventType,
    reason: &str,
    message: &str,
) -> Result<(), StatusError> {
    let regarding = ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(namespace.to_string()),
        name: STATUS_CONFIGMAP.into(),
    };
    let message = cut(message);
    let event = EventRecord {
        regarding: &regarding,
        kind: kind.as_str(),
        reason,
        message: &message,
        component: "keelson",
    };
    kube.record_event(&event)
        .await
        .map_err(|source| StatusError::Event {
            reason: reason.to_string(),
            source,
        })
}

fn cut(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(600);
        let cut = cut(&long);
        assert!(
            cut.ends_with("...") && cut.len() <= MAX_MESSAGE + 3,
            "{}",
            cut.len()
        );
        assert_eq!(cut.trim_end_matches("...").chars().count(), 500);
    }
}
