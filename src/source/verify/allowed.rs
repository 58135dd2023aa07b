//! The allowed signers: SSH keys in the `allowed_signers` format of `ssh-keygen -Y verify`, and OpenPGP public
//! keys (armored blocks), in one file or in several (the keys of a ConfigMap or Secret).

use super::openpgp::{self, AllowedCert};
use super::ssh::{self, AllowedKey};

/// A problem with the allowed signers, naming where: `signers/allowed_signers:3: namespaces: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {field}: {message}")]
pub struct SignersError {
    /// The file, or `ConfigMap ns/name key`.
    pub source_name: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// Every key a signed object may be signed with.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    ssh: Vec<AllowedKey>,
    openpgp: Vec<AllowedCert>,
}

impl AllowedSigners {
    /// Reads one file: armored OpenPGP public key blocks anywhere in it, and every other non-empty line that
    /// is not a `#` comment as an allowed_signers line.
    pub fn parse(source_name: &str, text: &str) -> Result<AllowedSigners, SignersError> {
        let mut out = AllowedSigners::default();
        out.add(source_name, text)?;
        Ok(out)
    }

    /// Adds the keys of another file.
    pub fn add(&mut self, source_name: &str, text: &str) -> Result<(), SignersError> {
        let error = |line: usize, field: &str, message: String| SignersError {
            source_name: source_name.to_string(),
            line,
            field: field.to_string(),
            message,
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim();
            if line == openpgp::KEY_BLOCK_BEGIN {
                let start = i;
                let end = (i..lines.len())
                    .find(|&j| lines[j].trim() == openpgp::KEY_BLOCK_END)
                    .ok_or_else(|| error(start + 1, "openpgp", "key block has no END line".into()))?;
                let block = lines[start..=end].join("\n");
                let certs = openpgp::parse_certs(&block).map_err(|m| error(start + 1, "openpgp", m))?;
                self.openpgp.extend(certs);
                i = end + 1;
                continue;
            }
            if !line.is_empty() && !line.starts_with('#') {
                let key = ssh::parse_line(line).map_err(|(field, m)| error(i + 1, &field, m))?;
                self.ssh.push(key);
            }
            i += 1;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ssh.is_empty() && self.openpgp.is_empty()
    }

    /// How many keys there are, SSH and OpenPGP.
    pub fn counts(&self) -> (usize, usize) {
        (self.ssh.len(), self.openpgp.len())
    }

    pub(super) fn ssh(&self) -> &[AllowedKey] {
        &self.ssh
    }

    pub(super) fn openpgp(&self) -> &[AllowedCert] {
        &self.openpgp
    }
}
