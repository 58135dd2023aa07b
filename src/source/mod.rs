//! Where the desired state comes from: a directory or a Git commit, read into an immutable [`Snapshot`].

mod snapshot;

use std::path::PathBuf;

pub use snapshot::{CommitInfo, DEFAULT_MAX_FILE_SIZE, Revision, Snapshot, SnapshotEntry};

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
}
