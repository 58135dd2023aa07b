//! The language of Secrets Keelson makes (`spec.secrets`): templates over generated keys, and the checks
//! that every key is made exactly one way and every template reference resolves. Values never appear
//! here; only how they are made.

use std::collections::BTreeMap;

use super::spec::{Generator, SecretSpec, SecretValueSpec};

/// Longest value `random` generates; more is a typo, not a password.
pub const MAX_RANDOM_LENGTH: u32 = 4096;
/// Shortest `random` value: shorter is not a secret.
pub const MIN_RANDOM_LENGTH: u32 = 8;
/// Default length of a `random` value.
pub const DEFAULT_RANDOM_LENGTH: u32 = 32;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TemplatePart {
    Literal(String),
    /// `{{ secret.key }}`.
    Ref {
        secret: String,
        key: String,
    },
}

/// Parses `text{{ secret.key }}text`. Secret names are DNS labels (no dots), so the first `.` inside a
/// reference separates the Secret from its key.
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "`{{{{` at character {} is not closed by `}}}}`",
                template.len() - rest.len() + open + 1
            ));
        };
        let inner = after[..close].trim();
        let Some((secret, key)) = inner.split_once('.') else {
            return Err(format!(
                "`{{{{ {inner} }}}}` must name a Secret and a key: `{{{{ <secret>.<key> }}}}`"
            ));
        };
        if super::names::dns1123_label(secret).is_err() || super::names::config_key(key).is_err() {
            return Err(format!(
                "`{{{{ {inner} }}}}` is not `{{{{ <secret>.<key> }}}}` with a Secret name and a key"
            ));
        }
        parts.push(TemplatePart::Ref {
            secret: secret.to_string(),
            key: key.to_string(),
        });
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("`}}` without a matching `{{`".to_string());
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

/// How a key is made, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Generated,
    Template,
    Encrypted,
}

/// The one way a key is made, or why it is not exactly one.
pub fn value_kind(value: &SecretValueSpec) -> Result<ValueKind, String> {
    let kinds = [
        (value.generate.is_some(), ValueKind::Generated),
        (value.template.is_some(), ValueKind::Template),
        (value.encrypted.is_some(), ValueKind::Encrypted),
    ];
    let set: Vec<ValueKind> = kinds.iter().filter(|(on, _)| *on).map(|(_, k)| *k).collect();
    match set.as_slice() {
        [one] => Ok(*one),
        _ => Err("a key needs exactly one of generate, template, encrypted".to_string()),
    }
}

/// Field-relative problems of one value (`length`, `alphabet`, the template's syntax).
pub fn check_value(value: &SecretValueSpec) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let random = value.generate == Some(Generator::Random);
    if let Some(length) = value.length {
        if !random {
            out.push(("length", "only a `random` value has a length".to_string()));
        } else if !(MIN_RANDOM_LENGTH..=MAX_RANDOM_LENGTH).contains(&length) {
            out.push((
                "length",
                format!("{length} must be between {MIN_RANDOM_LENGTH} and {MAX_RANDOM_LENGTH}"),
            ));
        }
    }
    if value.alphabet.is_some() && !random {
        out.push(("alphabet", "only a `random` value has an alphabet".to_string()));
    }
    if let Some(template) = &value.template {
        match parse_template(template) {
            Ok(parts) if !parts.iter().any(|p| matches!(p, TemplatePart::Ref { .. })) => out.push((
                "template",
                "references no generated key; a constant belongs in a ConfigMap or env value".to_string(),
            )),
            Ok(_) => {}
            Err(e) => out.push(("template", e)),
        }
    }
    if let Some(path) = &value.encrypted {
        if !path.ends_with(".age") {
            out.push((
                "encrypted",
                format!("`{path}` must be an age-encrypted file ending in .age"),
            ));
        }
    }
    out
}

/// Every declared Secret by name: which component declares it (`None` for keelson.yaml) and its keys.
#[derive(Debug, Clone, Default)]
pub struct Declared<'a> {
    pub by_name: BTreeMap<&'a str, (Option<&'a str>, &'a SecretSpec)>,
}

impl<'a> Declared<'a> {
    /// Whether `key` of `secret` is a generated key.
    pub fn generated(&self, secret: &str, key: &str) -> Option<bool> {
        let (_, spec) = self.by_name.get(secret)?;
        let value = spec.data.get(key)?;
        Some(value.generate.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_literals_and_references() {
        let parts = parse_template("mysql+pymysql://keystone:{{ keystone-db.password }}@db:3306/keystone")
            .unwrap_or_default();
        assert_eq!(
            parts,
            vec![
                TemplatePart::Literal("mysql+pymysql://keystone:".into()),
                TemplatePart::Ref {
                    secret: "keystone-db".into(),
                    key: "password".into()
                },
                TemplatePart::Literal("@db:3306/keystone".into()),
            ]
        );
        assert_eq!(
            parse_template("{{rabbitmq.password}}").unwrap_or_default(),
            vec![TemplatePart::Ref {
                secret: "rabbitmq".into(),
                key: "password".into()
            }]
        );
        for bad in ["x{{ a.b", "{{ nodot }}", "{{ UPPER.key }}", "a }} b", "{{ a. }}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
    }
}
