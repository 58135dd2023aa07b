//! The topology input every reading command accepts: a directory, or a Git remote at a ref.

use std::path::{Path, PathBuf};

use super::credentials::CredentialArgs;
use crate::source::verify::{AllowedSigners, VerifyError, VerifyMode, verify_revision};
use crate::source::{
    DEFAULT_MAX_FILE_SIZE, GitCredentials, GitSource, GitSourceConfig, History, PollOutcome,
    ResolvedRevision, Snapshot, SourceError,
};

/// Where to read the topology from.
#[derive(Debug, Clone, clap::Args)]
pub struct TopologyInput {
    /// Directory holding `keelson.yaml` [default: the current directory] (or use --repo).
    // `requires = "repo"` on --ref/--path does not fire next to a present positional, hence the explicit list.
    #[arg(conflicts_with_all = ["repo", "reference", "path"])]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub git: GitArgs,
}

/// A Git remote, the ref to read, and how to authenticate.
#[derive(Clone, Default, clap::Args)]
pub struct GitArgs {
    /// Git remote holding the topology: a path, file://, git://, http(s)://, ssh:// or user@host:path.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Revision to read, in any form git accepts: branch, tag, `refs/...`, sha (short too), `HEAD~1`,
    /// `origin/main` [default: HEAD].
    #[arg(long = "ref", value_name = "REF", requires = "repo")]
    pub reference: Option<String>,
    /// Directory inside the repository that holds `keelson.yaml` [default: the repository root].
    #[arg(long, value_name = "P", requires = "repo")]
    pub path: Option<String>,
    /// Where bare cache clones are kept.
    #[arg(long, value_name = "D", env = "KEELSON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Accept any SSH host key. Unsafe: a man in the middle could serve any topology.
    #[arg(long)]
    pub insecure_skip_host_key_check: bool,
}

impl std::fmt::Debug for GitArgs {
    // --repo may carry credentials (`https://user:token@host/...`); print it redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitArgs")
            .field("repo", &self.repo.as_deref().map(crate::source::redact_url))
            .field("reference", &self.reference)
            .field("path", &self.path)
            .field("cache_dir", &self.cache_dir)
            .field("credentials", &self.credentials)
            .field("insecure_skip_host_key_check", &self.insecure_skip_host_key_check)
            .finish()
    }
}

impl GitArgs {
    /// The ref to read; `HEAD` unless --ref names one.
    pub fn reference(&self) -> String {
        self.reference.clone().unwrap_or_else(|| "HEAD".to_string())
    }

    /// The source configuration, with credential files read. `None` when no --repo was given.
    pub fn config(&self) -> Result<Option<GitSourceConfig>, SourceError> {
        let Some(url) = &self.repo else {
            return Ok(None);
        };
        let mut config = GitSourceConfig::new(url.clone(), self.reference());
        config.path = self.path.clone().unwrap_or_default();
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = dir.clone();
        }
        config.credentials = GitCredentials {
            insecure_skip_host_key_check: self.insecure_skip_host_key_check,
            ..self.credentials.credentials(true)?
        };
        Ok(Some(config))
    }

    /// A poller for --repo; `None` when no --repo was given.
    pub fn source(&self) -> Result<Option<GitSource>, SourceError> {
        self.config()?.map(GitSource::new).transpose()
    }
}

impl TopologyInput {
    /// Reads the topology's files into a snapshot: the directory, or the commit the ref points at now.
    /// Blocks (Git fetch); from async code call it through `tokio::task::spawn_blocking`.
    pub fn snapshot(&self) -> Result<Snapshot, SourceError> {
        if let Some(dir) = &self.dir {
            return Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE);
        }
        let Some(config) = self.git.config()? else {
            return Snapshot::from_dir(Path::new("."), DEFAULT_MAX_FILE_SIZE);
        };
        // A branch, tag or full sha is polled the cheap way; anything else git accepts (`HEAD~1`, a short sha,
        // `origin/main`) is resolved in the remote's history.
        let polled = GitSource::new(config.clone()).and_then(|mut source| source.poll_blocking());
        match polled {
            Ok(PollOutcome::Changed { snapshot, .. }) => Ok(snapshot),
            // A fresh source has seen nothing, so its first poll always reads a snapshot.
            Ok(PollOutcome::Unchanged { revision }) => Err(SourceError::Task {
                message: format!("first poll of {} read no snapshot", revision.origin),
            }),
            Err(SourceError::InvalidRef { .. } | SourceError::RefNotFound { .. }) => {
                let history = History::fetch(&config)?;
                let revision = history.resolve(&config.reference)?;
                history.snapshot(&revision)
            }
            Err(e) => Err(e),
        }
    }

    /// The snapshot of the commit the ref names, taken only if the commit passes signature verification
    /// (`mode`); the snapshot records the signer. Blocks (Git fetch).
    pub fn verified_snapshot(
        &self,
        mode: VerifyMode,
        allowed: &AllowedSigners,
    ) -> Result<Snapshot, InputError> {
        if self.dir.is_some() {
            return Err(InputError::NotACommit);
        }
        let history = self.history()?;
        let revision = history.resolve(&self.git.reference())?;
        verified(&history, &revision, mode, allowed)
    }

    /// The repository and topology path to resolve revisions in: the Git repository holding the directory,
    /// or the --repo remote with its whole history. Blocks (Git fetch).
    pub fn history(&self) -> Result<History, SourceError> {
        if let Some(dir) = &self.dir {
            return History::discover(dir);
        }
        match self.git.config()? {
            Some(config) => History::fetch(&config),
            None => History::discover(Path::new(".")),
        }
    }
}

/// Why a verified snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Unverified(#[from] VerifyError),
    #[error(
        "--verify-signatures verifies commits, and a directory's files are not one: use --repo (a path works)"
    )]
    NotACommit,
}

/// The snapshot of `revision` if it passes verification, with its signer.
pub fn verified(
    history: &History,
    revision: &ResolvedRevision,
    mode: VerifyMode,
    allowed: &AllowedSigners,
) -> Result<Snapshot, InputError> {
    let signer = verify_revision(history.repository(), revision.commit, revision.tag, mode, allowed)?;
    tracing::info!(commit = %revision.commit, signer = %signer, "signature verified");
    let mut snapshot = history.snapshot(revision)?;
    snapshot.signer = Some(signer);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        input: TopologyInput,
    }

    #[test]
    fn accepts_a_directory_or_a_repo_but_not_both() {
        let ok =
            |args: &[&str]| Cmd::try_parse_from(std::iter::once("k").chain(args.iter().copied())).is_ok();
        assert!(ok(&["./topology"]));
        assert!(ok(&[
            "--repo",
            "https://host/r.git",
            "--ref",
            "main",
            "--path",
            "deploy"
        ]));
        assert!(ok(&["--repo", "./r"]));
        // Without either: the current directory.
        assert!(ok(&[]));
        assert!(!ok(&["./topology", "--repo", "./r"]));
        assert!(!ok(&["./topology", "--ref", "main"]));
        let cmd = Cmd::try_parse_from(["k", "--repo", "git@host:o/r.git"]).unwrap();
        assert_eq!(cmd.input.git.reference(), "HEAD");
        let cmd = Cmd::try_parse_from(["k", "--repo", "https://u:hunter2@host/r"]).unwrap();
        assert!(!format!("{cmd:?}").contains("hunter2"));
    }
}
