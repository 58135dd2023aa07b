//! SSH host key verification against an OpenSSH `known_hosts` file.
//!
//! libgit2 hands the server's raw host key to a callback and accepts whatever the callback says, so this is
//! where unknown and changed host keys are refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The result of looking a presented host key up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// An entry for the host carries exactly this key.
    Trusted,
    /// The host has no entry (or none of this key type).
    Unknown,
    /// The host has an entry of this key type with a different key: possibly an attack.
    Changed,
    /// The key is explicitly marked `@revoked`.
    Revoked,
}

#[derive(Debug, Clone)]
struct Entry {
    revoked: bool,
    patterns: Vec<String>,
    key_type: String,
    key: Vec<u8>,
}

/// The parsed entries of a known_hosts file. Lines that cannot be parsed are skipped, as OpenSSH does.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Self {
        let entries = text.lines().filter_map(parse_line).collect();
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the key a server presented. `port` other than 22 is looked up as `[host]:port`, as OpenSSH writes it.
    pub fn check(&self, host: &str, port: Option<u16>, key_type: &str, key: &[u8]) -> HostKeyCheck {
        let name = match port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host.to_string(),
        };
        let mut changed = false;
        let mut trusted = false;
        for entry in self.entries.iter().filter(|e| host_matches(&e.patterns, &name)) {
            if entry.revoked {
                if entry.key == key {
                    return HostKeyCheck::Revoked;
                }
                continue;
            }
            if entry.key_type == key_type {
                if entry.key == key {
                    trusted = true;
                } else {
                    changed = true;
                }
            }
        }
        // A changed key under one entry is not excused by a matching key under another: refuse either way.
        if changed {
            HostKeyCheck::Changed
        } else if trusted {
            HostKeyCheck::Trusted
        } else {
            HostKeyCheck::Unknown
        }
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            // Certificate authorities need certificate parsing; libgit2 hands over plain keys only.
            _ => return None,
        }
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key = BASE64.decode(fields.next()?).ok()?;
    let patterns = first
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Some(Entry {
        revoked,
        patterns,
        key_type,
        key,
    })
}

/// OpenSSH semantics: any positive match and no negated (`!pattern`) match.
fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if pattern_matches(negated, name) {
                return false;
            }
        } else if pattern_matches(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    wildcard(
        pattern.to_ascii_lowercase().as_bytes(),
        name.to_ascii_lowercase().as_bytes(),
    )
}

/// `HashKnownHosts` entries: `|1|base64(salt)|base64(HMAC-SHA1(salt, hostname))`.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, digest)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(digest)) = (BASE64.decode(salt), BASE64.decode(digest)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &digest).is_ok()
}

/// `*` and `?` globbing as in ssh_config host patterns.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &[u8] = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const KEY_B: &[u8] = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn hashed(salt: &[u8], host: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key, host.as_bytes());
        format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(tag.as_ref()))
    }

    #[test]
    fn checks_keys_like_openssh() {
        let a = BASE64.encode(KEY_A);
        let b = BASE64.encode(KEY_B);
        let text = format!(
            "# comment\n\
             git.example,10.0.0.1 ssh-ed25519 {a}\n\
             [git.example]:2222 ssh-ed25519 {b}\n\
             *.wild.example,!bad.wild.example ssh-ed25519 {a}\n\
             {hashed} ssh-ed25519 {a}\n\
             @revoked old.example ssh-ed25519 {b}\n\
             old.example ssh-ed25519 {b}\n\
             @cert-authority *.example ssh-ed25519 {b}\n\
             garbage line\n\
             broken ssh-ed25519 !!!notbase64\n",
            hashed = hashed(b"0123456789abcdefghij", "secret.example"),
        );
        let hosts = KnownHosts::parse(&text);
        assert_eq!(hosts.len(), 6);
        let t = "ssh-ed25519";
        type Row<'a> = (&'a str, Option<u16>, &'a str, &'a [u8], HostKeyCheck);
        let rows: &[Row] = &[
            ("git.example", None, t, KEY_A, HostKeyCheck::Trusted),
            ("GIT.example", Some(22), t, KEY_A, HostKeyCheck::Trusted),
            ("10.0.0.1", None, t, KEY_A, HostKeyCheck::Trusted),
            ("git.example", None, t, KEY_B, HostKeyCheck::Changed),
            ("git.example", Some(2222), t, KEY_B, HostKeyCheck::Trusted),
            ("git.example", Some(2222), t, KEY_A, HostKeyCheck::Changed),
            ("git.example", None, "ssh-rsa", KEY_A, HostKeyCheck::Unknown),
            ("other.example", None, t, KEY_A, HostKeyCheck::Unknown),
            ("a.wild.example", None, t, KEY_A, HostKeyCheck::Trusted),
            ("bad.wild.example", None, t, KEY_A, HostKeyCheck::Unknown),
            ("secret.example", None, t, KEY_A, HostKeyCheck::Trusted),
            ("secret.example", None, t, KEY_B, HostKeyCheck::Changed),
            ("old.example", None, t, KEY_B, HostKeyCheck::Revoked),
            ("broken", None, t, KEY_A, HostKeyCheck::Unknown),
        ];
        for (host, port, kind, key, want) in rows {
            assert_eq!(
                &hosts.check(host, *port, kind, key),
                want,
                "{host}:{port:?} {kind}"
            );
        }
    }

    #[test]
    fn wildcards() {
        let rows = [
            ("*", "anything", true),
            ("git.*", "git.example", true),
            ("g?t", "git", true),
            ("g?t", "gt", false),
            ("*.example", "example", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ];
        for (pattern, name, want) in rows {
            assert_eq!(
                wildcard(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern} {name}"
            );
        }
    }
}
