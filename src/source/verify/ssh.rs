//! SSH signatures (`gpg.format=ssh`): the sshsig format in namespace `git`, checked against allowed_signers
//! lines as `ssh-keygen -Y verify` reads them (ssh-keygen(1), ALLOWED SIGNERS).

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::{GIT_NAMESPACE, SignatureFormat, SignedObject, Signer, VerifyError};

pub const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";

/// One allowed_signers line.
#[derive(Debug, Clone)]
pub struct AllowedKey {
    /// The principals as written (comma-separated patterns), shown as the signer's identity.
    pub principals: String,
    /// `namespaces="..."`: the signature namespaces this key may sign in; `None` allows all.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after` / `valid-before`, seconds since the epoch (UTC).
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
    pub key: PublicKey,
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Parses one allowed_signers line: `principals [options] keytype base64-key [comment]`. Errors name the
/// field.
pub fn parse_line(line: &str) -> Result<AllowedKey, (String, String)> {
    let fail = |field: &str, message: String| (field.to_string(), message);
    let (principals, rest) = take_token(line).ok_or_else(|| fail("principals", "missing".into()))?;
    let principals = principals.trim_matches('"').to_string();
    if principals.is_empty() {
        return Err(fail("principals", "empty".into()));
    }
    let rest = rest.trim_start();
    let (first, after_first) = take_token(rest).ok_or_else(|| fail("key", "missing".into()))?;
    let (options, key_text) = if KEY_TYPES.contains(&first) {
        (None, rest)
    } else {
        (Some(first), after_first.trim_start())
    };
    let mut key = AllowedKey {
        principals,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key: PublicKey::from_openssh(key_text.trim())
            .map_err(|e| fail("key", format!("not an OpenSSH public key: {e}")))?,
    };
    for option in options.map(split_options).transpose()?.unwrap_or_default() {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.trim_matches('"').to_string())),
            None => (option.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("namespaces", Some(v)) => {
                key.namespaces = Some(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            ("valid-after", Some(v)) => {
                key.valid_after = Some(
                    parse_time(&v)
                        .ok_or_else(|| fail("valid-after", format!("{v:?} is not YYYYMMDD[HHMM[SS]][Z]")))?,
                );
            }
            ("valid-before", Some(v)) => {
                key.valid_before =
                    Some(parse_time(&v).ok_or_else(|| {
                        fail("valid-before", format!("{v:?} is not YYYYMMDD[HHMM[SS]][Z]"))
                    })?);
            }
            ("cert-authority", None) => {
                return Err(fail(
                    "cert-authority",
                    "signatures by SSH certificates are not supported; list the signing keys themselves"
                        .into(),
                ));
            }
            (other, _) => return Err(fail(other, "unknown option".into())),
        }
    }
    Ok(key)
}

/// The next whitespace-separated token, where double quotes protect spaces.
fn take_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Some((&s[..i], &s[i..])),
            _ => {}
        }
    }
    Some((s, ""))
}

/// Options are comma-separated; commas inside double quotes belong to the value.
fn split_options(options: &str) -> Result<Vec<String>, (String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(("options".into(), "unterminated quote".into()));
    }
    out.push(current);
    Ok(out.into_iter().filter(|o| !o.is_empty()).collect())
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally ending in `Z`; read as UTC.
fn parse_time(text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z').unwrap_or(text);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits.get(range).and_then(|s| s.parse::<i64>().ok());
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let hour = num(8..10).unwrap_or(0);
    let minute = num(10..12).unwrap_or(0);
    let second = num(12..14).unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a namespaces pattern list (`*` and `?` wildcards) admits `namespace`.
fn pattern_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub fn verify(signed: &SignedObject, armored: &str, allowed: &[AllowedKey]) -> Result<Signer, VerifyError> {
    let object = signed.object.clone();
    let sig = SshSig::from_pem(armored.trim()).map_err(|e| VerifyError::Malformed {
        object: object.clone(),
        reason: format!("SSH signature: {e}"),
    })?;
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    if sig.namespace() != GIT_NAMESPACE {
        return Err(VerifyError::Malformed {
            object,
            reason: format!(
                "SSH signature for namespace {:?}, not {GIT_NAMESPACE:?}",
                sig.namespace()
            ),
        });
    }
    let candidates: Vec<&AllowedKey> = allowed
        .iter()
        .filter(|a| a.key.key_data() == sig.public_key())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::UnknownKey {
            object,
            format: SignatureFormat::Ssh,
            fingerprint,
        });
    }
    // The key is listed; the signature must verify before any line's restrictions matter.
    candidates[0]
        .key
        .verify(GIT_NAMESPACE, &signed.payload, &sig)
        .map_err(|_| VerifyError::BadSignature {
            object: object.clone(),
            format: SignatureFormat::Ssh,
            fingerprint: fingerprint.clone(),
        })?;
    let mut reasons = Vec::new();
    for line in candidates {
        if let Some(namespaces) = &line.namespaces
            && !namespaces.iter().any(|n| pattern_match(n, GIT_NAMESPACE))
        {
            reasons.push(format!(
                "its allowed_signers line (principals {}) does not allow namespace {GIT_NAMESPACE:?}",
                line.principals
            ));
            continue;
        }
        if line.valid_after.is_some_and(|t| signed.time < t) {
            reasons.push(format!(
                "the signature time lies before the key's valid-after (principals {})",
                line.principals
            ));
            continue;
        }
        if line.valid_before.is_some_and(|t| signed.time >= t) {
            reasons.push(format!(
                "the signature time lies after the key's valid-before (principals {})",
                line.principals
            ));
            continue;
        }
        return Ok(Signer {
            format: SignatureFormat::Ssh,
            fingerprint,
            identity: line.principals.clone(),
            object,
        });
    }
    Err(VerifyError::NotAllowed {
        object,
        fingerprint,
        reason: reasons.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO/s1A63+wFTLwTS1fOUCA+PuPetLqM2DaJEdt6Ofd70 test@example";

    #[test]
    fn allowed_signers_lines_parse_as_ssh_keygen_reads_them() {
        let key = parse_line(&format!("alice@example.org {KEY}")).expect("plain");
        assert_eq!(key.principals, "alice@example.org");
        assert!(key.namespaces.is_none());
        let key = parse_line(&format!(
            "\"alice@example.org,bob@*\" namespaces=\"git,file\",valid-after=\"20240101\",valid-before=\"20300101Z\" {KEY}"
        ))
        .expect("options");
        assert_eq!(key.principals, "alice@example.org,bob@*");
        assert_eq!(key.namespaces, Some(vec!["git".to_string(), "file".to_string()]));
        assert_eq!(key.valid_after, Some(1_704_067_200));
        assert_eq!(key.valid_before, Some(1_893_456_000));
        let bad: &[(&str, &str)] = &[
            ("alice cert-authority ssh-ed25519 AAAA", "cert-authority"),
            ("alice frobnicate ssh-ed25519 AAAA", "frobnicate"),
            ("alice valid-after=\"2024\" ssh-ed25519 AAAA", "valid-after"),
            ("alice ssh-ed25519 not-base64", "key"),
            ("alice", "key"),
        ];
        for (line, field) in bad {
            let fixed = line.replace("AAAA", &KEY[12..80]);
            let got = parse_line(&fixed).err().map(|(f, _)| f);
            assert_eq!(got.as_deref(), Some(*field), "{line}");
        }
    }

    #[test]
    fn namespace_patterns_and_times() {
        assert!(pattern_match("git", "git"));
        assert!(pattern_match("g*", "git"));
        assert!(pattern_match("?it", "git"));
        assert!(!pattern_match("file", "git"));
        assert_eq!(parse_time("19700101"), Some(0));
        assert_eq!(parse_time("202401011230Z"), Some(1_704_112_200));
        assert_eq!(parse_time("20241301"), None);
    }
}
