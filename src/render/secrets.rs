//! Secrets Keelson makes: rendered as a Secret without values plus a [`SecretRecipe`] that tells the
//! rollout how to make each value. What the operator sees (`keelson render`, plans) is the recipe: which
//! keys, generated how, from which templates or ciphertexts; never a value.
//!
//! Every Secret has an identity: the hash of its recipe, which for a derived key includes the identities
//! of the Secrets it is made from. Pods carry the identities of the Secrets they read in
//! `keelson.dev/secrets-hash`, so a rotation (a change in Git) rolls exactly the pods that read the
//! rotated values, without a value ever entering a rendered object.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Ctx, Stage, hash_value, sha256_hex};
use crate::object::{ANNOTATION_GENERATED, ANNOTATION_RECIPE, ANNOTATION_ROTATION};
use crate::topology::secrets::{DEFAULT_RANDOM_LENGTH, TemplatePart, parse_template};
use crate::topology::{Alphabet, Component, Generator, SecretSpec, Topology};

/// How the rollout makes one key's value. Self-contained: the rollout needs nothing of the topology's
/// language to follow it.
#[derive(Clone, PartialEq)]
pub enum KeySource {
    Random {
        length: usize,
        /// The characters a value is drawn from, each equally likely.
        characters: &'static [u8],
    },
    Fernet,
    /// Literals and references to generated keys of other Secrets (or of this one).
    Template(Vec<TemplatePiece>),
    /// The plaintext of an age ciphertext from the repository.
    Encrypted {
        file: String,
        ciphertext: Arc<Vec<u8>>,
    },
}

// By hand, so that a ciphertext is never dumped into a log line.
impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Random { length, characters } => {
                write!(f, "Random({length} of {} characters)", characters.len())
            }
            KeySource::Fernet => f.write_str("Fernet"),
            KeySource::Template(parts) => write!(f, "Template({} parts)", parts.len()),
            KeySource::Encrypted { file, .. } => write!(f, "Encrypted({file})"),
        }
    }
}

impl KeySource {
    pub fn is_generated(&self) -> bool {
        matches!(self, KeySource::Random { .. } | KeySource::Fernet)
    }
}

/// One piece of a template the rollout fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePiece {
    Literal(String),
    /// The value of `key` in Secret `secret`.
    Ref {
        secret: String,
        key: String,
    },
}

impl From<TemplatePart> for TemplatePiece {
    fn from(part: TemplatePart) -> Self {
        match part {
            TemplatePart::Literal(text) => TemplatePiece::Literal(text),
            TemplatePart::Ref { secret, key } => TemplatePiece::Ref { secret, key },
        }
    }
}

/// Everything the rollout needs to make a Secret's values; carried beside the rendered object.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecipe {
    /// `rotation` from Git: generated keys are made anew when it differs from the live Secret's.
    pub rotation: u32,
    pub keys: BTreeMap<String, KeySource>,
}

impl SecretRecipe {
    /// The Secrets this one's templates read (other than itself).
    pub fn inputs<'a>(&'a self, own: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.keys
            .values()
            .filter_map(|k| match k {
                KeySource::Template(parts) => Some(parts),
                _ => None,
            })
            .flatten()
            .filter_map(move |p| match p {
                TemplatePiece::Ref { secret, .. } if secret != own => Some(secret.as_str()),
                _ => None,
            })
    }

    pub fn has_templates(&self) -> bool {
        self.keys.values().any(|k| matches!(k, KeySource::Template(_)))
    }
}

/// Every Secret declared anywhere in the topology, by name.
pub fn declared(topology: &Topology) -> BTreeMap<&str, (&Component, &SecretSpec)> {
    topology
        .components
        .values()
        .flat_map(|c| c.secrets().iter().map(move |s| (s.name.as_str(), (c, s))))
        .collect()
}

/// The recipe of one declared Secret as the operator may read it: no values, the ciphertext by hash.
fn described(component: &Component, spec: &SecretSpec) -> Value {
    let mut keys = Map::new();
    for (key, value) in &spec.data {
        let described = match (value.generate, &value.template, &value.encrypted) {
            (Some(Generator::Random), _, _) => json!({
                "generate": "random",
                "length": value.length.unwrap_or(DEFAULT_RANDOM_LENGTH),
                "alphabet": value.alphabet.unwrap_or(Alphabet::Alphanumeric),
            }),
            (Some(Generator::Fernet), _, _) => json!({"generate": "fernet"}),
            (None, Some(template), _) => json!({"template": template}),
            (None, None, Some(file)) => {
                let digest = component
                    .encrypted_files
                    .get(file)
                    .map(|bytes| sha256_hex(bytes))
                    .unwrap_or_default();
                json!({"encrypted": file, "sha256": digest})
            }
            (None, None, None) => Value::Null,
        };
        keys.insert(key.clone(), described);
    }
    Value::Object(keys)
}

/// The identity of a declared Secret: its recipe, the rotation, and the identities of its inputs.
/// `None` for a Secret Keelson does not make.
pub fn identity(topology: &Topology, name: &str) -> Option<String> {
    let all = declared(topology);
    identity_in(&all, name, 0)
}

fn identity_in(all: &BTreeMap<&str, (&Component, &SecretSpec)>, name: &str, depth: usize) -> Option<String> {
    let (component, spec) = all.get(name)?;
    let mut inputs = Map::new();
    // Templates read generated keys only (checked on load), so one level suffices; the depth bound
    // only guards against a topology that skipped validation.
    if depth < 2 {
        for value in spec.data.values() {
            let Some(template) = &value.template else { continue };
            for part in parse_template(template).unwrap_or_default() {
                if let TemplatePart::Ref { secret, .. } = part {
                    if secret != spec.name {
                        let id = identity_in(all, &secret, depth + 1).unwrap_or_default();
                        inputs.insert(secret, Value::String(id));
                    }
                }
            }
        }
    }
    Some(hash_value(&json!({
        "recipe": described(component, spec),
        "rotation": spec.rotation,
        "inputs": inputs,
    })))
}

/// The component's Secrets: bodies without data, and the recipes the rollout makes them from. A Secret
/// with templates comes one step after the others, so inputs declared beside it exist first.
pub(crate) fn render(ctx: &Ctx<'_>) -> Vec<(Stage, u32, Value, SecretRecipe)> {
    let c = ctx.component;
    c.secrets()
        .iter()
        .map(|spec| {
            let recipe = recipe(c, spec);
            let generated: Vec<&str> = recipe
                .keys
                .iter()
                .filter(|(_, k)| k.is_generated())
                .map(|(name, _)| name.as_str())
                .collect();
            let mut metadata = ctx.metadata(&spec.name);
            let mut annotations = Map::new();
            annotations.insert(
                ANNOTATION_RECIPE.into(),
                Value::String(super::to_canonical_string(&described(c, spec))),
            );
            annotations.insert(
                ANNOTATION_ROTATION.into(),
                Value::String(spec.rotation.to_string()),
            );
            if !generated.is_empty() {
                annotations.insert(ANNOTATION_GENERATED.into(), Value::String(generated.join(",")));
            }
            metadata["annotations"] = Value::Object(annotations);
            let body = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": "Opaque",
            });
            let step = u32::from(recipe.has_templates());
            (Stage::Config, step, body, recipe)
        })
        .collect()
}

fn recipe(component: &Component, spec: &SecretSpec) -> SecretRecipe {
    let keys = spec
        .data
        .iter()
        .filter_map(|(key, value)| {
            let source = match (value.generate, &value.template, &value.encrypted) {
                (Some(Generator::Random), _, _) => KeySource::Random {
                    length: value.length.unwrap_or(DEFAULT_RANDOM_LENGTH) as usize,
                    characters: value.alphabet.unwrap_or(Alphabet::Alphanumeric).chars(),
                },
                (Some(Generator::Fernet), _, _) => KeySource::Fernet,
                (None, Some(template), _) => KeySource::Template(
                    parse_template(template)
                        .ok()?
                        .into_iter()
                        .map(TemplatePiece::from)
                        .collect(),
                ),
                (None, None, Some(file)) => KeySource::Encrypted {
                    file: file.clone(),
                    ciphertext: Arc::new(component.encrypted_files.get(file)?.clone()),
                },
                (None, None, None) => return None,
            };
            Some((key.clone(), source))
        })
        .collect();
    SecretRecipe {
        rotation: spec.rotation,
        keys,
    }
}

/// The Secrets a pod reads (env references, Secret volumes) that Keelson makes, with their identities.
pub fn pod_secret_identities(
    topology: &Topology,
    names: impl IntoIterator<Item = String>,
) -> BTreeMap<String, String> {
    let all = declared(topology);
    names
        .into_iter()
        .filter_map(|name| identity_in(&all, &name, 0).map(|id| (name, id)))
        .collect()
}
