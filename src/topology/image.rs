//! Container image references: parsing (the Docker distribution grammar) and resolution of short
//! Kolla names (`keystone`) against the topology's image defaults.

use super::spec::ImageDefaults;

/// A parsed image reference `[registry/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `quay.io`, `localhost:5000`; `None` when the reference names no registry.
    pub registry: Option<String>,
    /// Slash-separated repository path (`openstack.kolla/keystone`).
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Whether the reference is a bare Kolla image name (no registry, no path), to be resolved
    /// against the topology's defaults.
    pub fn is_short(&self) -> bool {
        self.registry.is_none() && !self.path.contains('/')
    }
}

/// Parses an image reference. Upper-case repository paths, empty components, bad tags and
/// malformed digests are refused, as a container runtime would refuse them at pull time.
pub fn parse_reference(reference: &str) -> Result<ImageReference, String> {
    if reference.is_empty() {
        return Err("image reference must not be empty".into());
    }
    if reference.len() > 512 {
        return Err("image reference is longer than 512 characters".into());
    }
    if let Some(c) = reference.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "image reference `{reference}` contains the character {c:?}"
        ));
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => {
            check_digest(digest).map_err(|e| format!("image reference `{reference}`: {e}"))?;
            (rest, Some(digest.to_string()))
        }
        None => (reference, None),
    };
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&rest[..colon], Some(&rest[colon + 1..]))
        }
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag).map_err(|e| format!("image reference `{reference}`: {e}"))?;
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let registry = if components.len() > 1 && is_registry(components[0]) {
        let host = components.remove(0);
        check_registry(host).map_err(|e| format!("image reference `{reference}`: {e}"))?;
        Some(host.to_string())
    } else {
        None
    };
    for component in &components {
        check_path_component(component).map_err(|e| format!("image reference `{reference}`: {e}"))?;
    }
    Ok(ImageReference {
        registry,
        path: components.join("/"),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// Resolves `image` to a full reference. A short name (`keystone`, `keystone:2024.2-ubuntu-jammy`)
/// becomes `<registry>/<namespace>/<name>:<tag>` from the defaults; a full reference must pin a tag
/// or digest, because a floating `latest` would make rendering depend on the day it runs.
pub fn resolve(image: &str, defaults: &ImageDefaults) -> Result<String, String> {
    let parsed = parse_reference(image)?;
    if parsed.is_short() {
        let mut out = format!("{}/{}/{}", defaults.registry, defaults.namespace, parsed.path);
        match (&parsed.tag, &parsed.digest) {
            (Some(tag), _) => out.push_str(&format!(":{tag}")),
            (None, None) => out.push_str(&format!(":{}", defaults.tag)),
            (None, Some(_)) => {}
        }
        if let Some(digest) = &parsed.digest {
            out.push_str(&format!("@{digest}"));
        }
        return Ok(out);
    }
    if parsed.tag.is_none() && parsed.digest.is_none() {
        return Err(format!(
            "image reference `{image}` names neither a tag nor a digest; pin one"
        ));
    }
    Ok(image.to_string())
}

/// Checks the topology's image defaults, so that every short name resolves to a valid reference.
pub fn check_defaults(defaults: &ImageDefaults) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Err(e) = check_registry(&defaults.registry) {
        problems.push(("registry", e));
    }
    if defaults.namespace.is_empty() {
        problems.push(("namespace", "must not be empty".to_string()));
    }
    for component in defaults.namespace.split('/') {
        if let Err(e) = check_path_component(component) {
            problems.push(("namespace", e));
            break;
        }
    }
    if let Err(e) = check_tag(&defaults.tag) {
        problems.push(("tag", e));
    }
    problems
}

/// Docker's rule: the first component is a registry when it looks like a host name.
fn is_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn check_registry(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(format!("registry `{host}` is not a valid host[:port]"))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(component: &str) -> Result<(), String> {
    let err = || {
        Err(format!(
            "repository component `{component}` must be lower-case letters and digits, separated by `.`, `_`, `__` or dashes"
        ))
    };
    if !component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return err();
    }
    let mut separator_run = String::new();
    for c in component.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !separator_run.is_empty() {
                let ok = separator_run == "."
                    || separator_run == "_"
                    || separator_run == "__"
                    || separator_run.chars().all(|s| s == '-');
                if !ok {
                    return err();
                }
                separator_run.clear();
            }
        } else if matches!(c, '.' | '_' | '-') {
            separator_run.push(c);
        } else {
            return err();
        }
    }
    if separator_run.is_empty() { Ok(()) } else { err() }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must be 1-128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("digest `{digest}` must be `<algorithm>:<hex>`"));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-'));
    let hex_ok = hex.len() >= 32
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    let length_ok = algorithm != "sha256" || hex.len() == 64;
    if algorithm_ok && hex_ok && length_ok {
        Ok(())
    } else {
        Err(format!("digest `{digest}` is malformed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_references() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("keystone", None, "keystone", None),
            (
                "keystone:2024.2-ubuntu-jammy",
                None,
                "keystone",
                Some("2024.2-ubuntu-jammy"),
            ),
            (
                "quay.io/openstack.kolla/keystone:2025.1",
                Some("quay.io"),
                "openstack.kolla/keystone",
                Some("2025.1"),
            ),
            (
                "localhost:5000/nova-api:dev",
                Some("localhost:5000"),
                "nova-api",
                Some("dev"),
            ),
            ("library/mariadb:11", None, "library/mariadb", Some("11")),
            (
                "registry.example/a__b/c-d--e:v1",
                Some("registry.example"),
                "a__b/c-d--e",
                Some("v1"),
            ),
        ];
        for (input, registry, path, tag) in cases {
            let parsed = parse_reference(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.registry.as_deref(), *registry, "{input}");
            assert_eq!(parsed.path, *path, "{input}");
            assert_eq!(parsed.tag.as_deref(), *tag, "{input}");
        }
        let with_digest = parse_reference(&format!("quay.io/x/y@{DIGEST}")).unwrap();
        assert_eq!(with_digest.digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            "Keystone",
            "quay.io/Openstack/keystone:1",
            "keystone:",
            "keystone:-x",
            "key stone",
            "quay.io//keystone:1",
            "keystone@sha256:abc",
            "keystone@nodigest",
            "a..b",
            "-abc",
            "abc-",
            "a/b:tag/c",
            "bad_host:99999999/x:1",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn resolves_short_names_with_defaults() {
        let defaults = ImageDefaults::default();
        let cases = [
            (
                "keystone",
                "quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble".to_string(),
            ),
            (
                "keystone:2024.2-ubuntu-jammy",
                "quay.io/openstack.kolla/keystone:2024.2-ubuntu-jammy".to_string(),
            ),
            (
                "docker.io/library/mariadb:11.4",
                "docker.io/library/mariadb:11.4".to_string(),
            ),
            (
                &format!("keystone@{DIGEST}"),
                format!("quay.io/openstack.kolla/keystone@{DIGEST}"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(resolve(input, &defaults).unwrap(), want, "{input}");
        }
        assert!(
            resolve("docker.io/library/mariadb", &defaults)
                .unwrap_err()
                .contains("neither a tag")
        );
    }

    #[test]
    fn checks_defaults() {
        assert!(check_defaults(&ImageDefaults::default()).is_empty());
        let bad = ImageDefaults {
            registry: "quay io".into(),
            namespace: "Kolla".into(),
            tag: ".x".into(),
            ..ImageDefaults::default()
        };
        let fields: Vec<_> = check_defaults(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["registry", "namespace", "tag"]);
    }
}
