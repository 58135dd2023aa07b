//! The topology input every reading command accepts: a directory, or a Git remote at a ref.

use std::path::PathBuf;

use crate::source::{
    DEFAULT_MAX_FILE_SIZE, GitCredentials, GitSource, GitSourceConfig, PollOutcome, Secret, Snapshot,
    SourceError,
};

/// Where to read the topology from.
#[derive(Debug, Clone, clap::Args)]
pub struct TopologyInput {
    /// Directory holding `keelson.yaml` (or use --repo).
    // `requires = "repo"` on --ref/--path does not fire next to a present positional, hence the explicit list.
    #[arg(required_unless_present = "repo", conflicts_with_all = ["repo", "reference", "path"])]
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
    /// HTTP(S) user name (default with a token: x-access-token).
    #[arg(long, value_name = "USER", env = "KEELSON_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// File holding the HTTP(S) user name, as `keelson run` takes it.
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_GIT_USERNAME_FILE",
        conflicts_with = "git_username"
    )]
    pub git_username_file: Option<PathBuf>,
    /// File holding an HTTP(S) token or password (env KEELSON_GIT_TOKEN holds the value itself); also
    /// spelled --git-password-file, as `keelson run` takes it.
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_GIT_TOKEN_FILE",
        visible_alias = "git-password-file"
    )]
    pub git_token_file: Option<PathBuf>,
    /// SSH private key file.
    #[arg(long, value_name = "FILE", env = "KEELSON_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// File holding the SSH key's passphrase.
    #[arg(long, value_name = "FILE", env = "KEELSON_SSH_PASSPHRASE_FILE")]
    pub ssh_passphrase_file: Option<PathBuf>,
    /// known_hosts file used to verify SSH servers (default ~/.ssh/known_hosts); also spelled
    /// --ssh-known-hosts-file, as `keelson run` takes it.
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_SSH_KNOWN_HOSTS",
        visible_alias = "ssh-known-hosts-file"
    )]
    pub ssh_known_hosts: Option<PathBuf>,
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
            .field("git_username", &self.git_username)
            .field("git_username_file", &self.git_username_file)
            .field("git_token_file", &self.git_token_file)
            .field("ssh_key_file", &self.ssh_key_file)
            .field("ssh_passphrase_file", &self.ssh_passphrase_file)
            .field("ssh_known_hosts", &self.ssh_known_hosts)
            .field("insecure_skip_host_key_check", &self.insecure_skip_host_key_check)
            .finish()
    }
}

/// Environment variable holding an HTTP(S) token itself (rather than a file); never a flag, so that it does
/// not show up in process listings.
pub const TOKEN_ENV: &str = "KEELSON_GIT_TOKEN";

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
        let password = match (&self.git_token_file, std::env::var(TOKEN_ENV)) {
            (Some(file), _) => Some(Secret::from_file(file)?),
            (None, Ok(value)) if !value.is_empty() => Some(Secret::new(value)),
            (None, _) => None,
        };
        let ssh_passphrase = self
            .ssh_passphrase_file
            .as_deref()
            .map(Secret::from_file)
            .transpose()?;
        let username = match &self.git_username_file {
            Some(file) => Some(Secret::from_file(file)?.expose().trim().to_string()),
            None => self.git_username.clone(),
        };
        let mut config = GitSourceConfig::new(url.clone(), self.reference());
        config.path = self.path.clone().unwrap_or_default();
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = dir.clone();
        }
        config.credentials = GitCredentials {
            username,
            password,
            ssh_key: self.ssh_key_file.clone(),
            ssh_passphrase,
            known_hosts: self.ssh_known_hosts.clone(),
            insecure_skip_host_key_check: self.insecure_skip_host_key_check,
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
        let Some(mut source) = self.git.source()? else {
            return Err(SourceError::NoInput);
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
        assert!(!ok(&[]));
        assert!(!ok(&["./topology", "--repo", "./r"]));
        assert!(!ok(&["./topology", "--ref", "main"]));
        let cmd = Cmd::try_parse_from(["k", "--repo", "git@host:o/r.git"]).unwrap();
        assert_eq!(cmd.input.git.reference(), "HEAD");
        let cmd = Cmd::try_parse_from(["k", "--repo", "https://u:hunter2@host/r"]).unwrap();
        assert!(!format!("{cmd:?}").contains("hunter2"));
    }

    #[test]
    fn credential_files_take_the_daemons_spellings_too() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        let password = dir.path().join("password");
        std::fs::write(&user, "deploy-bot\n").unwrap();
        std::fs::write(&password, "s3cret").unwrap();
        let cmd = Cmd::try_parse_from([
            "k".as_ref(),
            "--repo".as_ref(),
            "https://host/r.git".as_ref(),
            "--git-username-file".as_ref(),
            user.as_os_str(),
            "--git-password-file".as_ref(),
            password.as_os_str(),
            "--ssh-known-hosts-file".as_ref(),
            std::ffi::OsStr::new("/etc/kh"),
        ])
        .unwrap();
        let config = cmd.input.git.config().unwrap().expect("a repo");
        assert_eq!(config.credentials.username.as_deref(), Some("deploy-bot"));
        assert_eq!(
            config.credentials.password.as_ref().map(|p| p.expose()),
            Some("s3cret")
        );
        assert_eq!(config.credentials.known_hosts, Some(PathBuf::from("/etc/kh")));
        assert!(!format!("{cmd:?}").contains("s3cret"));
        assert!(
            Cmd::try_parse_from([
                "k",
                "--repo",
                "./r",
                "--git-username",
                "a",
                "--git-username-file",
                "/f"
            ])
            .is_err()
        );
    }
}
