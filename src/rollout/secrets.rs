//! Making the values of the Secrets Keelson declares, at apply time and only here. A generated key is made
//! once and kept (until Git raises the Secret's `rotation`), a derived key is recomputed from the live
//! values it is made of, an encrypted key is decrypted with the age identities of the Secret the operator
//! names (`--age-key-secret`) only when its ciphertext changed. A Secret that does not exist is created
//! with a create-only request, so values someone else made in the meantime are never overwritten.
//!
//! Values live in memory only for the write; they are never logged, and errors name keys, never values.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use rand::Rng as _;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::cluster::{ApplyOptions, ChangeKind, ClusterView, Created, Kube, ObjectRef, is_owned};
use crate::object::{ANNOTATION_HASH, ANNOTATION_ROTATION, LABEL_TOPOLOGY};
use crate::render::{KeySource, SecretRecipe, TemplatePiece};

/// Where the age identities that decrypt the repository's `*.age` files are: a Secret every key of which
/// holds identities (`AGE-SECRET-KEY-1...` lines, as `age-keygen` writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeKeySecret {
    pub namespace: String,
    pub name: String,
}

/// The identities, read once per rollout on first need and shared by every component.
#[derive(Clone, Default)]
pub struct AgeKeys {
    pub source: Option<AgeKeySecret>,
    loaded: Arc<OnceCell<Result<Arc<Vec<age::x25519::Identity>>, String>>>,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeKeys")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl AgeKeys {
    pub fn from_secret(source: Option<AgeKeySecret>) -> Self {
        AgeKeys {
            source,
            loaded: Arc::default(),
        }
    }

    async fn identities(&self, kube: &Kube) -> Result<Arc<Vec<age::x25519::Identity>>, String> {
        self.loaded
            .get_or_init(|| async { load_identities(kube, self.source.as_ref()).await.map(Arc::new) })
            .await
            .clone()
    }
}

async fn load_identities(
    kube: &Kube,
    source: Option<&AgeKeySecret>,
) -> Result<Vec<age::x25519::Identity>, String> {
    let Some(source) = source else {
        return Err("an encrypted value needs the age identities: name their Secret with --age-key-secret <namespace>/<name>".to_string());
    };
    let reference = ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(source.namespace.clone()),
        name: source.name.clone(),
    };
    let live = kube
        .get(&reference)
        .await
        .map_err(|e| format!("reading the age identities: {e}"))?
        .ok_or_else(|| {
            format!(
                "the age identities Secret {}/{} does not exist",
                source.namespace, source.name
            )
        })?;
    let data = decode_data(&live).map_err(|key| format!("{reference}: key {key} is not base64"))?;
    let mut identities = Vec::new();
    for (key, bytes) in &data {
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{reference}: key {key} is not text"))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity: age::x25519::Identity = line
                .parse()
                .map_err(|_| format!("{reference}: key {key} holds a line that is not an age identity"))?;
            identities.push(identity);
        }
    }
    if identities.is_empty() {
        return Err(format!("{reference} holds no age identity"));
    }
    tracing::info!(secret = %reference, count = identities.len(), "age identities loaded");
    Ok(identities)
}

fn decrypt(ciphertext: &[u8], identities: &[age::x25519::Identity], file: &str) -> Result<Vec<u8>, String> {
    let reader = age::armor::ArmoredReader::new(ciphertext);
    let decryptor = age::Decryptor::new(reader).map_err(|e| format!("{file}: not an age file: {e}"))?;
    let mut plain = Vec::new();
    let mut stream = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| format!("{file}: cannot decrypt with the given age identities: {e}"))?;
    stream
        .read_to_end(&mut plain)
        .map_err(|e| format!("{file}: decryption failed: {e}"))?;
    Ok(plain)
}

/// The live Secret's values, or the name of the key that is not base64.
fn decode_data(live: &Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    if let Some(data) = live.get("data").and_then(Value::as_object) {
        for (key, value) in data {
            let text = value.as_str().unwrap_or_default();
            let bytes = STANDARD.decode(text).map_err(|_| key.clone())?;
            out.insert(key.clone(), bytes);
        }
    }
    Ok(out)
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn generate(source: &KeySource) -> Vec<u8> {
    let mut rng = rand::rng();
    match source {
        KeySource::Random { length, characters } => (0..*length)
            .map(|_| characters[rng.random_range(0..characters.len())])
            .collect(),
        // cryptography's Fernet.generate_key(): 32 random bytes, URL-safe base64 with padding.
        _ => {
            let mut key = [0u8; 32];
            rng.fill(&mut key);
            URL_SAFE.encode(key).into_bytes()
        }
    }
}

/// Makes (or verifies) the values of one Secret and writes it when they or its recipe changed. Returns
/// what was done; `Unchanged` means no write was sent.
pub(super) async fn materialize(
    kube: &Kube,
    view: Option<&ClusterView>,
    reference: &ObjectRef,
    body: &Value,
    recipe: &SecretRecipe,
    keys: &AgeKeys,
    dry_run: bool,
) -> Result<ChangeKind, String> {
    // Two tries: a create that finds the Secret made meanwhile starts over from what is now live. The first
    // look is the view's (when there is one): an owned Secret it does not hold is created with a create-only
    // request, which cannot overwrite one made meanwhile; the second try reads the server.
    for attempt in 0..2 {
        let live = match (attempt, view) {
            (0, Some(view)) => view
                .object(reference)
                .await
                .map_err(|e| e.to_string())?
                .map(|live| Value::clone(&live)),
            _ => kube.get(reference).await.map_err(|e| e.to_string())?,
        };
        if let Some(live) = &live {
            let topology = body
                .pointer("/metadata/labels")
                .and_then(|l| l.get(LABEL_TOPOLOGY))
                .and_then(Value::as_str);
            if !is_owned(live, topology) {
                return Err(format!(
                    "{reference}: refusing to take over a Secret Keelson does not own"
                ));
            }
        }
        let live_data = match &live {
            Some(live) => decode_data(live).map_err(|key| format!("{reference}: key {key} is not base64"))?,
            None => BTreeMap::new(),
        };
        let desired_hash = annotation(body, ANNOTATION_HASH);
        let same_recipe = live
            .as_ref()
            .is_some_and(|l| annotation(l, ANNOTATION_HASH) == desired_hash && desired_hash.is_some());
        let same_rotation = live.as_ref().is_some_and(|l| {
            annotation(l, ANNOTATION_ROTATION) == Some(recipe.rotation.to_string().as_str())
        });
        let same = Same {
            recipe: same_recipe,
            rotation: same_rotation,
        };
        let data = values(kube, view, reference, recipe, &live_data, same, keys).await?;
        if live.is_some() && same_recipe && data == live_data {
            return Ok(ChangeKind::Unchanged);
        }
        let mut object = body.clone();
        let encoded: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v))))
            .collect();
        object["data"] = Value::Object(encoded);
        if live.is_none() {
            match kube.create(&object, dry_run).await.map_err(|e| e.to_string())? {
                Created::Created(_) => {
                    tracing::info!(secret = %reference, keys = data.len(), "secret created");
                    return Ok(ChangeKind::Created);
                }
                Created::AlreadyExists => continue,
            }
        }
        let options = ApplyOptions {
            dry_run,
            ..ApplyOptions::default()
        };
        kube.apply(&object, &options).await.map_err(|e| e.to_string())?;
        tracing::info!(secret = %reference, keys = data.len(), "secret updated");
        return Ok(ChangeKind::Configured);
    }
    Err(format!(
        "{reference}: created by someone else while Keelson was creating it; the next pass checks it"
    ))
}

/// What the live Secret shares with the desired one.
#[derive(Debug, Clone, Copy)]
struct Same {
    /// The recipe (its hash annotation): encrypted values are kept.
    recipe: bool,
    /// The rotation: generated values are kept.
    rotation: bool,
}

/// The values the Secret must hold: generated keys kept unless rotated, encrypted keys kept unless their
/// ciphertext changed, derived keys computed from what their inputs hold now.
async fn values(
    kube: &Kube,
    view: Option<&ClusterView>,
    reference: &ObjectRef,
    recipe: &SecretRecipe,
    live: &BTreeMap<String, Vec<u8>>,
    same: Same,
    keys: &AgeKeys,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut data = BTreeMap::new();
    for (key, source) in &recipe.keys {
        match source {
            KeySource::Random { .. } | KeySource::Fernet => {
                let value = match live.get(key) {
                    Some(value) if same.rotation => value.clone(),
                    _ => generate(source),
                };
                data.insert(key.clone(), value);
            }
            KeySource::Encrypted { file, ciphertext } => {
                let value = match live.get(key) {
                    Some(value) if same.recipe => value.clone(),
                    _ => {
                        let identities = keys
                            .identities(kube)
                            .await
                            .map_err(|e| format!("{reference}: {e}"))?;
                        decrypt(ciphertext, &identities, file).map_err(|e| format!("{reference}: {e}"))?
                    }
                };
                data.insert(key.clone(), value);
            }
            KeySource::Template(_) => {}
        }
    }
    let mut inputs: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for (key, source) in &recipe.keys {
        let KeySource::Template(parts) = source else {
            continue;
        };
        let mut value = Vec::new();
        for part in parts {
            match part {
                TemplatePiece::Literal(text) => value.extend_from_slice(text.as_bytes()),
                TemplatePiece::Ref {
                    secret,
                    key: input_key,
                } => {
                    let input = if *secret == reference.name {
                        &data
                    } else {
                        if !inputs.contains_key(secret) {
                            let found = read_input(kube, view, reference, secret).await?;
                            inputs.insert(secret.clone(), found);
                        }
                        &inputs[secret]
                    };
                    let Some(bytes) = input.get(input_key) else {
                        return Err(format!(
                            "{reference}: key {key}: input {secret}.{input_key} does not exist yet"
                        ));
                    };
                    value.extend_from_slice(bytes);
                }
            }
        }
        data.insert(key.clone(), value);
    }
    Ok(data)
}

/// An input Secret's values: from the view when it holds it (an owned Secret), else read.
async fn read_input(
    kube: &Kube,
    view: Option<&ClusterView>,
    reference: &ObjectRef,
    secret: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let input = ObjectRef {
        name: secret.to_string(),
        ..reference.clone()
    };
    let reading = |e: crate::cluster::ClusterError| format!("{reference}: reading input {input}: {e}");
    let held = match view {
        Some(view) => view
            .object(&input)
            .await
            .map_err(reading)?
            .map(|v| Value::clone(&v)),
        None => None,
    };
    let live = match held {
        Some(live) => live,
        None => kube
            .get(&input)
            .await
            .map_err(reading)?
            .ok_or_else(|| format!("{reference}: input Secret {secret} does not exist yet"))?,
    };
    decode_data(&live).map_err(|key| format!("{reference}: input {input}: key {key} is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_the_length_and_alphabet_asked_for() {
        let source = KeySource::Random {
            length: 40,
            characters: b"0123456789abcdef",
        };
        let a = generate(&source);
        let b = generate(&source);
        assert_eq!(a.len(), 40);
        assert!(a.iter().all(|c| b"0123456789abcdef".contains(c)));
        assert_ne!(a, b, "two draws of 160 bits must differ");
    }

    #[test]
    fn fernet_keys_are_32_bytes_in_url_safe_base64() {
        let key = generate(&KeySource::Fernet);
        assert_eq!(key.len(), 44);
        let decoded = URL_SAFE.decode(&key).unwrap_or_default();
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn age_key_secrets_are_namespace_slash_name() {
        let ok: Result<AgeKeySecret, _> = "keelson/age-key".parse();
        assert_eq!(
            ok,
            Ok(AgeKeySecret {
                namespace: "keelson".into(),
                name: "age-key".into()
            })
        );
        assert!("age-key".parse::<AgeKeySecret>().is_err());
        assert!("Bad/x".parse::<AgeKeySecret>().is_err());
    }
}
