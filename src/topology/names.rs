//! Kubernetes name rules, as the API server applies them, so that a bad name fails validation
//! instead of a rollout.

/// Longest DNS-1123 label (namespace, Service, Job, container, volume names).
pub const MAX_LABEL: usize = 63;
/// Longest DNS-1123 subdomain (most object names).
pub const MAX_SUBDOMAIN: usize = 253;
/// Longest IANA service name (container port names).
pub const MAX_PORT_NAME: usize = 15;

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// RFC 1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric, at most 63.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_LABEL {
        return Err(format!(
            "`{name}` is {} characters long, at most {MAX_LABEL} are allowed",
            name.len()
        ));
    }
    if !name.chars().all(is_label_char) || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "`{name}` is not a valid DNS-1123 label (lower-case letters, digits and `-`, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// RFC 1035 label: a DNS-1123 label that starts with a letter (Kubernetes Service names).
pub fn dns1035_label(name: &str) -> Result<(), String> {
    dns1123_label(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "`{name}` must start with a lower-case letter (it becomes a Kubernetes Service name)"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters (Secret, ConfigMap names).
pub fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_SUBDOMAIN {
        return Err(format!(
            "`{name}` is {} characters long, at most {MAX_SUBDOMAIN} are allowed",
            name.len()
        ));
    }
    let ok = name.split('.').all(|part| {
        !part.is_empty() && part.chars().all(is_label_char) && !part.starts_with('-') && !part.ends_with('-')
    });
    if !ok {
        return Err(format!("`{name}` is not a valid DNS-1123 subdomain"));
    }
    Ok(())
}

/// IANA service name, the rule for container port names: at most 15 characters, lower-case
/// alphanumerics and `-`, at least one letter, no leading, trailing or doubled `-`.
pub fn port_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_PORT_NAME {
        return Err(format!(
            "`{name}` is {} characters long, at most {MAX_PORT_NAME} are allowed",
            name.len()
        ));
    }
    if !name.chars().all(is_label_char)
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
        || !name.chars().any(|c| c.is_ascii_lowercase())
    {
        return Err(format!(
            "`{name}` is not a valid port name (lower-case letters, digits and single `-`, with at least one letter)"
        ));
    }
    Ok(())
}

/// Environment variable names as Kubernetes accepts them.
pub fn env_var_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(format!(
            "`{name}` is not a valid environment variable name (letters, digits, `_`, `-`, `.`, not starting with a digit)"
        ));
    }
    Ok(())
}

/// Keys of a ConfigMap or Secret.
pub fn config_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_SUBDOMAIN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(format!(
            "`{key}` is not a valid key (letters, digits, `_`, `-`, `.`)"
        ));
    }
    Ok(())
}

fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS-1123 subdomain, the name at most 63
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| dns1123_subdomain(p).is_err()) || !is_label_name(name) {
        return Err(format!(
            "`{key}` is not a valid label key (`[prefix/]name`, e.g. `app.kubernetes.io/part-of`)"
        ));
    }
    Ok(())
}

/// A label value: empty, or a label name.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid label value (at most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric)"
        ))
    }
}

/// A Kubernetes resource quantity (`500m`, `1Gi`, `2`, `1e3`).
pub fn quantity(q: &str) -> Result<(), String> {
    match crate::quantity::Quantity::parse(q) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{q}` is not a valid Kubernetes quantity (e.g. `500m`, `1Gi`, `2`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        for ok in ["a", "keystone", "nova-api", "a1", "0abc", &"a".repeat(63)] {
            assert!(dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Keystone", "nova_api", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        assert!(dns1035_label("0abc").is_err());
        assert!(dns1035_label("abc").is_ok());
    }

    #[test]
    fn subdomain_rules() {
        assert!(dns1123_subdomain("keystone.credentials").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("A").is_err());
    }

    #[test]
    fn port_name_rules() {
        for ok in ["http", "api-v3", "p8080a"] {
            assert!(port_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "8080", "a--b", "-a", "averyveryverylongname", "HTTP"] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_and_key_rules() {
        assert!(env_var_name("OS_AUTH_URL").is_ok());
        assert!(env_var_name("1X").is_err());
        assert!(env_var_name("A B").is_err());
        assert!(config_key("password").is_ok());
        assert!(config_key("a/b").is_err());
    }

    #[test]
    fn label_key_and_value_rules() {
        for ok in ["app", "app.kubernetes.io/part-of", "a_b.c-d"] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/x", "a/b/c", "-a", "Bad Prefix/x", &"a".repeat(64)] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("a b").is_err());
        assert!(label_value("-a").is_err());
    }

    #[test]
    fn quantity_rules() {
        for ok in ["1", "500m", "1Gi", "0.5", "2e3", "1.5Gi", "+1", "10M"] {
            assert!(quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "1..5", "one", "1 Gi", "."] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }
}
