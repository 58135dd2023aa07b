//! `--verify-signatures` and `--allowed-signers`: only commits signed by an allowed key are planned or applied.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;

use crate::cluster::Kube;
use crate::object::ObjectRef;
use crate::source::verify::{AllowedSigners, VerifyMode};

/// Where Keelson's own objects live when no flag says otherwise (the daemon's --namespace default).
const DEFAULT_NAMESPACE: &str = "keelson-system";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyArgs {
    /// Apply only commits signed by an allowed key: `head` (the commit itself, the default) or `tag` (an
    /// annotated tag at the commit, signed). SSH and OpenPGP signatures.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "head", env = "KEELSON_VERIFY_SIGNATURES")]
    pub verify_signatures: Option<VerifyMode>,
    /// The allowed signers: a file (allowed_signers lines as `ssh-keygen -Y verify` reads them, and armored
    /// OpenPGP public keys), or `configmap/NAME[/KEY]` / `secret/NAME[/KEY]` in Keelson's namespace
    /// (KEELSON_NAMESPACE, default keelson-system), every key of it unless one is named.
    #[arg(long, value_name = "SOURCE", env = "KEELSON_ALLOWED_SIGNERS")]
    pub allowed_signers: Option<String>,
}

/// Where the allowed signers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignersSource {
    File(PathBuf),
    Object {
        kind: &'static str,
        name: String,
        key: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyArgsError {
    #[error("--verify-signatures needs --allowed-signers")]
    NoSigners,
    #[error("--allowed-signers {0:?}: {1}")]
    Source(String, String),
    #[error("allowed signers {0}: cannot read: {1}")]
    Read(String, String),
    #[error(transparent)]
    Parse(#[from] crate::source::verify::SignersError),
    #[error("allowed signers {0}: no keys in it")]
    Empty(String),
}

impl SignersSource {
    pub fn parse(text: &str) -> Result<SignersSource, VerifyArgsError> {
        let bad = |m: &str| VerifyArgsError::Source(text.to_string(), m.to_string());
        for (prefix, kind) in [("configmap/", "ConfigMap"), ("secret/", "Secret")] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (name, key) = match rest.split_once('/') {
                    Some((n, k)) => (n, Some(k.to_string())),
                    None => (rest, None),
                };
                let valid = |s: &str| {
                    !s.is_empty()
                        && s.len() <= 253
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                };
                if !valid(name) || !name.bytes().all(|b| b != b'_') {
                    return Err(bad("not a valid object name"));
                }
                if key.as_deref().is_some_and(|k| !valid(k)) {
                    return Err(bad("not a valid data key"));
                }
                return Ok(SignersSource::Object {
                    kind,
                    name: name.to_string(),
                    key,
                });
            }
        }
        if text.is_empty() {
            return Err(bad("empty"));
        }
        Ok(SignersSource::File(PathBuf::from(text)))
    }

    /// Whether reading needs the cluster.
    pub fn needs_cluster(&self) -> bool {
        matches!(self, SignersSource::Object { .. })
    }
}

impl VerifyArgs {
    /// The pass settings, with guard-relaxing commit trailers honoured only on verified commits when
    /// verification is on.
    pub fn settings(&self, pass: &super::pass_args::PassArgs) -> crate::reconciler::PassSettings {
        let mut settings = pass.settings();
        settings.plan.trailers_need_signature = self.verify_signatures.is_some();
        settings
    }

    /// The verification mode and the allowed signers, or `None` when verification is off. A ConfigMap or
    /// Secret source is read through `kube`, in `namespace` (default: KEELSON_NAMESPACE, then keelson-system).
    pub async fn load(
        &self,
        kube: Option<&Kube>,
        namespace: Option<&str>,
    ) -> Result<Option<(VerifyMode, AllowedSigners)>, VerifyArgsError> {
        let Some(mode) = self.verify_signatures else {
            return Ok(None);
        };
        let source = self
            .allowed_signers
            .as_deref()
            .ok_or(VerifyArgsError::NoSigners)?;
        let source = SignersSource::parse(source)?;
        let allowed = match &source {
            SignersSource::File(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| VerifyArgsError::Read(name.clone(), e.to_string()))?;
                AllowedSigners::parse(&name, &text)?
            }
            SignersSource::Object { kind, name, key } => {
                let namespace = namespace
                    .map(str::to_string)
                    .or_else(|| std::env::var("KEELSON_NAMESPACE").ok().filter(|n| !n.is_empty()))
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
                let reference = ObjectRef {
                    api_version: "v1".into(),
                    kind: (*kind).into(),
                    namespace: Some(namespace),
                    name: name.clone(),
                };
                let Some(kube) = kube else {
                    return Err(VerifyArgsError::Source(
                        reference.to_string(),
                        "reading it needs a cluster (--kubeconfig, --context, --in-cluster); give a file instead"
                            .into(),
                    ));
                };
                let object = kube
                    .get(&reference)
                    .await
                    .map_err(|e| VerifyArgsError::Read(reference.to_string(), e.to_string()))?
                    .ok_or_else(|| VerifyArgsError::Read(reference.to_string(), "not found".into()))?;
                from_object(&reference, &object, key.as_deref())?
            }
        };
        if allowed.is_empty() {
            return Err(VerifyArgsError::Empty(
                self.allowed_signers.clone().unwrap_or_default(),
            ));
        }
        Ok(Some((mode, allowed)))
    }
}

/// The keys of a ConfigMap (`data`) or Secret (`data`, base64) as allowed-signers files.
fn from_object(
    reference: &ObjectRef,
    object: &Value,
    key: Option<&str>,
) -> Result<AllowedSigners, VerifyArgsError> {
    let secret = reference.kind == "Secret";
    let data = object
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut allowed = AllowedSigners::default();
    let mut found = false;
    for (name, value) in &data {
        if key.is_some_and(|k| k != name) {
            continue;
        }
        let raw = value.as_str().unwrap_or_default();
        let text = if secret {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| {
                    VerifyArgsError::Read(format!("{reference} key {name}"), format!("not base64: {e}"))
                })?;
            String::from_utf8(bytes).map_err(|_| {
                VerifyArgsError::Read(format!("{reference} key {name}"), "not UTF-8 text".into())
            })?
        } else {
            raw.to_string()
        };
        allowed.add(&format!("{reference} key {name}"), &text)?;
        found = true;
    }
    if !found {
        let what = key
            .map(|k| format!("has no key {k}"))
            .unwrap_or_else(|| "has no data".into());
        return Err(VerifyArgsError::Read(reference.to_string(), what));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_files_or_objects_in_keelsons_namespace() {
        assert_eq!(
            SignersSource::parse("./allowed_signers").unwrap(),
            SignersSource::File(PathBuf::from("./allowed_signers"))
        );
        assert_eq!(
            SignersSource::parse("secret/keelson-signers/allowed_signers").unwrap(),
            SignersSource::Object {
                kind: "Secret",
                name: "keelson-signers".into(),
                key: Some("allowed_signers".into())
            }
        );
        assert_eq!(
            SignersSource::parse("configmap/signers").unwrap(),
            SignersSource::Object {
                kind: "ConfigMap",
                name: "signers".into(),
                key: None
            }
        );
        assert!(SignersSource::parse("secret/").is_err());
        assert!(SignersSource::parse("secret/a/b/c").is_err());
        assert!(SignersSource::parse("").is_err());
    }
}
