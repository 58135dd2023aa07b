//! Credentials for a Git remote and the libgit2 callbacks that hand them over and check host identities.
//!
//! Secrets are read from files (a mounted Kubernetes Secret) or the environment, held in [`Secret`] whose
//! Debug never shows the value, and handed only to libgit2's credential callback.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::SourceError;
use super::known_hosts::{HostKeyCheck, KnownHosts};
use super::url::{RemoteUrl, Transport};

/// A credential value. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file; one trailing newline (as `kubectl create secret --from-file` leaves) is dropped.
    pub fn from_file(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SourceError::CredentialFile {
            path: path.to_path_buf(),
            source,
        })?;
        let value = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if value.is_empty() {
            return Err(SourceError::EmptyCredential {
                what: path.display().to_string(),
            });
        }
        Ok(Self(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How Keelson authenticates to a remote.
#[derive(Debug, Clone, Default)]
pub struct GitCredentials {
    /// HTTP(S) user. With a token and no user, `x-access-token` is sent (accepted by GitHub, GitLab and Gitea).
    pub username: Option<String>,
    /// HTTP(S) password or access token.
    pub password: Option<Secret>,
    /// SSH private key file.
    pub ssh_key: Option<PathBuf>,
    pub ssh_passphrase: Option<Secret>,
    /// known_hosts file checked for SSH remotes; `None` means `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Accept any SSH host key. Off unless the user asks for it explicitly.
    pub insecure_skip_host_key_check: bool,
}

const TOKEN_USER: &str = "x-access-token";

/// What the callbacks learnt during one connection, for error messages.
#[derive(Debug, Default)]
pub(crate) struct CallbackReport {
    pub host_key_refused: Option<String>,
    pub credentials_requested: bool,
    /// The callback had nothing (more) to offer: no credentials configured, or the offered ones were rejected.
    pub credentials_exhausted: bool,
}

/// Builds the callbacks for one connection. `report` records why a connection was refused, since libgit2
/// replaces a callback's message with its own generic one.
pub(crate) fn callbacks<'a>(
    url: &'a RemoteUrl,
    creds: &'a GitCredentials,
    report: Arc<Mutex<CallbackReport>>,
) -> git2::RemoteCallbacks<'a> {
    let mut cb = git2::RemoteCallbacks::new();
    let mut attempts = 0u32;
    let cred_report = report.clone();
    cb.credentials(move |_url, username_from_url, allowed| {
        let url_user = url.username.as_deref().or(username_from_url);
        // SSH first asks for the user name alone, then for the key: only the second step can be rejected.
        if allowed == git2::CredentialType::USERNAME {
            return git2::Cred::username(url_user.unwrap_or("git"));
        }
        // libgit2 calls again after a rejected credential; offering the same one forever would loop.
        attempts += 1;
        let exhausted = |message: &str| {
            if let Ok(mut r) = cred_report.lock() {
                r.credentials_exhausted = true;
            }
            Err(git2::Error::from_str(message))
        };
        if attempts > 1 {
            return exhausted("credentials rejected");
        }
        if let Ok(mut r) = cred_report.lock() {
            r.credentials_requested = true;
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            if let Some(key) = &creds.ssh_key {
                let user = url_user.unwrap_or("git");
                let passphrase = creds.ssh_passphrase.as_ref().map(Secret::expose);
                return git2::Cred::ssh_key(user, None, key, passphrase);
            }
        }
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(url_user.unwrap_or("git"));
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            let password = creds
                .password
                .as_ref()
                .map(Secret::expose)
                .or(url.password.as_deref());
            let user = creds.username.as_deref().or(url.username.as_deref());
            match (user, password) {
                (Some(u), Some(p)) => return git2::Cred::userpass_plaintext(u, p),
                (None, Some(p)) => return git2::Cred::userpass_plaintext(TOKEN_USER, p),
                // A token passed as the URL's user (https://TOKEN@host/...).
                (Some(u), None) => return git2::Cred::userpass_plaintext(u, ""),
                (None, None) => {}
            }
        }
        exhausted("no credentials configured for this remote")
    });
    let insecure = creds.insecure_skip_host_key_check;
    let known_hosts_path = creds.known_hosts.clone().or_else(default_known_hosts);
    cb.certificate_check(move |cert, _host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: let libgit2/OpenSSL verify the chain against the system roots.
            return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
        };
        if insecure {
            return Ok(git2::CertificateCheckStatus::CertificateOk);
        }
        let refuse = |reason: String| {
            if let Ok(mut r) = report.lock() {
                r.host_key_refused = Some(reason.clone());
            }
            Err(git2::Error::from_str(&reason))
        };
        let (Some(key), Some(kind)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
            return refuse("the server's host key was not available for verification".into());
        };
        let host = url.host.as_deref().unwrap_or("");
        let Some(path) = &known_hosts_path else {
            return refuse("no known_hosts file (set --ssh-known-hosts)".into());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return refuse(format!("cannot read known_hosts {}: {e}", path.display())),
        };
        match KnownHosts::parse(&text).check(host, url.port, kind.name(), key) {
            HostKeyCheck::Trusted => Ok(git2::CertificateCheckStatus::CertificateOk),
            HostKeyCheck::Unknown => refuse(format!(
                "host key of {host} ({}) is not in {}; add it (ssh-keyscan) or disable the check explicitly",
                kind.name(),
                path.display()
            )),
            HostKeyCheck::Changed => refuse(format!(
                "host key of {host} ({}) does not match {}: it changed, refusing to connect",
                kind.name(),
                path.display()
            )),
            HostKeyCheck::Revoked => refuse(format!("host key of {host} is revoked in {}", path.display())),
        }
    });
    cb
}

fn default_known_hosts() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
}

/// Whether credentials make sense for a transport; used to warn about ignored settings.
pub(crate) fn credentials_apply(url: &RemoteUrl, creds: &GitCredentials) -> bool {
    match url.transport {
        Transport::Http | Transport::Https => creds.password.is_some() || creds.username.is_some(),
        Transport::Ssh => creds.ssh_key.is_some(),
        Transport::Local | Transport::Git => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let creds = GitCredentials {
            password: Some(s),
            ..Default::default()
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn reads_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let rows: &[(&str, Option<&str>)] = &[
            ("tok\n", Some("tok")),
            ("tok\r\n", Some("tok")),
            ("tok", Some("tok")),
            ("\n", None),
            ("", None),
        ];
        for (content, want) in rows {
            let path = dir.path().join("s");
            std::fs::write(&path, content).unwrap();
            let got = Secret::from_file(&path).ok();
            assert_eq!(got.as_ref().map(Secret::expose), *want, "{content:?}");
        }
        assert!(Secret::from_file(&dir.path().join("missing")).is_err());
    }
}
