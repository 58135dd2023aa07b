//! The topology input every reading command accepts.

use std::path::PathBuf;

use crate::source::{DEFAULT_MAX_FILE_SIZE, Snapshot, SourceError};

/// Where to read the topology from.
#[derive(Debug, Clone, clap::Args)]
pub struct TopologyInput {
    /// Directory holding `keelson.yaml`.
    pub dir: PathBuf,
}

impl TopologyInput {
    /// Reads the topology's files into a snapshot.
    pub fn snapshot(&self) -> Result<Snapshot, SourceError> {
        Snapshot::from_dir(&self.dir, DEFAULT_MAX_FILE_SIZE)
    }
}
