//! The topology input every reading command accepts: a directory, or a Git remote at a ref.

use std::path::PathBuf;

use super::credentials::CredentialArgs;
use crate::source::{
    DEFAULT_MAX_FILE_SIZE, GitCredentials, GitSource, GitSourceConfig, PollOutcome, Snapshot, SourceError,
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
    /// Branch, tag, full ref name or commit sha to read [default: HEAD].
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
        let Some(mut source) = self.git.source()? else {
            let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            return Snapshot::from_dir(&dir, DEFAULT_MAX_FILE_SIZE);
        };
        match source.poll_blocking()? {
            PollOutcome::Changed { snapshot, .. } => Ok(snapshot),
            // A fresh source has seen nothing, so its first poll always reads a snapshot.
            PollOutcome::Unchanged { revision } => Err(SourceError::Task {
                message: format!("first poll of {} read no snapshot", revision.origin),
            }),
        }
    }
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
