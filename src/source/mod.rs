//! Where the desired state comes from: a directory or a Git commit, read into an immutable [`Snapshot`].
//!
//! [`GitSource`] polls a remote cheaply and reads new commits from a bare cache clone; [`watch::LocalWatcher`]
//! and [`webhook::router`] tell the daemon when a poll is worth doing.

mod commit;
mod credentials;
mod git;
mod history;
mod known_hosts;
mod snapshot;
mod tree;
mod url;
pub mod verify;
pub mod watch;
pub mod webhook;

use std::path::PathBuf;

pub use commit::{parse_revert, parse_trailers};
pub use credentials::{GitCredentials, Secret};
pub use git::{
    GitSource, GitSourceConfig, PollCost, PollOutcome, SourceStats, TOPOLOGY_FILE, default_cache_dir,
};
pub use history::{History, ResolvedRevision};
pub use known_hosts::{HostKeyCheck, KnownHosts};
pub use snapshot::{CommitInfo, DEFAULT_MAX_FILE_SIZE, Revision, Snapshot, SnapshotEntry};
pub use url::{RemoteUrl, Transport, redact_url};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{}: cannot read directory: {source}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: path is not valid UTF-8", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("git remote {url}: invalid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("git ref {reference:?}: invalid: {reason}")]
    InvalidRef { reference: String, reason: String },
    #[error("topology path {path:?}: invalid: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("credential file {}: cannot read: {source}", path.display())]
    CredentialFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential {what}: empty")]
    EmptyCredential { what: String },
    #[error("git remote {remote} ({reference}): unreachable: {source}")]
    Unreachable {
        remote: String,
        reference: String,
        #[source]
        source: git2::Error,
    },
    #[error("git remote {remote} ({reference}): authentication failed: {source}")]
    AuthFailed {
        remote: String,
        reference: String,
        #[source]
        source: git2::Error,
    },
    #[error("git remote {remote}: SSH host key refused: {reason}")]
    HostKey { remote: String, reason: String },
    #[error("{origin}: revision {revision:?}: {reason}")]
    InvalidRevision {
        origin: String,
        revision: String,
        reason: String,
    },
    #[error("git remote {remote}: ref {reference:?} not found")]
    RefNotFound { remote: String, reference: String },
    #[error("git remote {remote}: repository is empty (no commits)")]
    EmptyRepository { remote: String },
    #[error("git remote {remote} ({reference}) at {commit}: path {path:?} is not a directory in the commit")]
    MissingPath {
        remote: String,
        reference: String,
        commit: String,
        path: String,
    },
    #[error("git remote {remote} ({reference}) at {commit}: {path} not found")]
    MissingTopologyFile {
        remote: String,
        reference: String,
        commit: String,
        path: String,
    },
    #[error("git cache {}: {source}", dir.display())]
    Cache {
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("git cache {}: {source}", dir.display())]
    CacheIo {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("local repository {}: {source}", path.display())]
    LocalRepository {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("topology input: give a directory or --repo")]
    NoInput,
    #[error("git poll task: {message}")]
    Task { message: String },
}

impl SourceError {
    /// The commit that was read but cannot be used as a topology (no keelson.yaml, no topology path in it).
    pub fn unusable_commit(&self) -> Option<&str> {
        match self {
            Self::MissingTopologyFile { commit, .. } | Self::MissingPath { commit, .. } => Some(commit),
            _ => None,
        }
    }

    /// Whether retrying without any change of configuration may succeed (network, server or cache trouble),
    /// as opposed to a configuration or content problem that needs a person or a new commit.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Cache { .. }
                | Self::CacheIo { .. }
                | Self::Task { .. }
                | Self::ReadDir { .. }
                | Self::ReadFile { .. }
        )
    }
}
