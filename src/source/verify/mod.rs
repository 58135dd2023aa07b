//! Verified commits: only a commit (or a tag) signed by an allowed key is applied.
//!
//! Git puts a commit's signature in its `gpgsig` header and a tag's after its message; both formats git
//! writes are checked here, in process: SSH signatures (`gpg.format=ssh`, the sshsig format, namespace `git`)
//! against an `allowed_signers` list as `ssh-keygen -Y verify` reads it, and OpenPGP signatures against
//! armored public keys. Everything but [`git`] is pure: bytes in, a verdict out.

mod allowed;
pub mod git;
mod openpgp;
mod ssh;

use serde::Serialize;

pub use allowed::{AllowedSigners, SignersError};
pub use git::{VerifyMode, verify_revision};

/// The namespace git signs and verifies SSH signatures in.
pub const GIT_NAMESPACE: &str = "git";

/// The signature format of a signed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignatureFormat {
    Ssh,
    OpenPgp,
}

impl SignatureFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::Ssh => "SSH",
            SignatureFormat::OpenPgp => "OpenPGP",
        }
    }
}

/// Who signed a verified object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signer {
    pub format: SignatureFormat,
    /// `SHA256:...` for SSH keys (as `ssh-keygen -l` prints it), the hex fingerprint for OpenPGP keys.
    pub fingerprint: String,
    /// The principals of the allowed_signers line, or the OpenPGP key's first user id.
    pub identity: String,
    /// What was signed: `commit <sha>` or `tag <name>`.
    pub object: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} key {})",
            self.identity,
            self.format.as_str(),
            self.fingerprint
        )
    }
}

/// An object and its signature as git stores them: the signed bytes, and the armored signature if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedObject {
    /// `commit 1a2b3c4d5e6f` or `tag v2025.1`, for messages.
    pub object: String,
    pub payload: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    /// When the object was made (committer or tagger time, seconds since the epoch): the time `valid-after` /
    /// `valid-before` of an allowed_signers line are checked at, as git does.
    pub time: i64,
}

/// Why an object is not accepted. Every message starts with `<object> is not signed by an allowed key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{object} is not signed by an allowed key: it carries no signature")]
    Unsigned { object: String },
    #[error(
        "{object} is not signed by an allowed key: signed by {} key {fingerprint}, which is not in the allowed signers",
        format.as_str()
    )]
    UnknownKey {
        object: String,
        format: SignatureFormat,
        fingerprint: String,
    },
    #[error(
        "{object} is not signed by an allowed key: the {} signature claiming key {fingerprint} does not verify \
         (the object was altered after signing, or the signature is forged)",
        format.as_str()
    )]
    BadSignature {
        object: String,
        format: SignatureFormat,
        fingerprint: String,
    },
    #[error("{object} is not signed by an allowed key: key {fingerprint} is allowed, but {reason}")]
    NotAllowed {
        object: String,
        fingerprint: String,
        reason: String,
    },
    #[error("{object} is not signed by an allowed key: unreadable signature: {reason}")]
    Malformed { object: String, reason: String },
    #[error("{object} is not signed by an allowed key: {reason}")]
    NoSignedTag { object: String, reason: String },
}

impl VerifyError {
    /// The key fingerprint the signature names, when it names one.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            VerifyError::UnknownKey { fingerprint, .. }
            | VerifyError::BadSignature { fingerprint, .. }
            | VerifyError::NotAllowed { fingerprint, .. } => Some(fingerprint),
            _ => None,
        }
    }
}

/// Why a polled commit was not verified: the repository could not be read, or the commit is refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error(transparent)]
    Source(#[from] super::SourceError),
    #[error(transparent)]
    Refused(VerifyError),
}

/// Verifies one signed object against the allowed signers. Pure.
pub fn verify(signed: &SignedObject, allowed: &AllowedSigners) -> Result<Signer, VerifyError> {
    let Some(signature) = &signed.signature else {
        return Err(VerifyError::Unsigned {
            object: signed.object.clone(),
        });
    };
    let text = String::from_utf8_lossy(signature);
    let trimmed = text.trim_start();
    if trimmed.starts_with(ssh::ARMOR_BEGIN) {
        ssh::verify(signed, trimmed, allowed.ssh())
    } else if trimmed.starts_with(openpgp::ARMOR_BEGIN) {
        openpgp::verify(signed, trimmed, allowed.openpgp())
    } else {
        Err(VerifyError::Malformed {
            object: signed.object.clone(),
            reason: "neither an SSH nor an OpenPGP signature (x509 signatures are not supported)".into(),
        })
    }
}

/// Where a signature block starts inside a tag object (after the message), if it has one.
pub(crate) fn signature_start(raw: &[u8]) -> Option<usize> {
    [ssh::ARMOR_BEGIN, openpgp::ARMOR_BEGIN]
        .iter()
        .filter_map(|marker| {
            let marker = format!("\n{marker}");
            find_last(raw, marker.as_bytes()).map(|i| i + 1)
        })
        .max()
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=haystack.len().checked_sub(needle.len())?)
        .rev()
        .find(|&i| &haystack[i..i + needle.len()] == needle)
}
