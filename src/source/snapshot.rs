//! The immutable input of one reconcile pass: the files of the topology at one revision.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SourceError;

/// Files larger than this are not read into a snapshot; they are recorded as [`SnapshotEntry::TooLarge`].
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Where a snapshot came from and which version of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Stable identifier: a Git commit sha, or `sha256:<digest>` of a directory's content.
    pub id: String,
    /// Human description of the origin: a directory path, or a remote URL without credentials plus ref.
    pub origin: String,
}

impl Revision {
    /// The first 12 characters of the identifier, for labels and messages.
    pub fn short(&self) -> &str {
        let id = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &id[..id.len().min(12)]
    }
}

/// Metadata of the commit a snapshot was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub subject: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    pub parents: Vec<String>,
    /// The sha named by a `This reverts commit <sha>` line, when the commit is a `git revert`.
    pub reverts: Option<String>,
}

/// One path in a snapshot. Anything that is not a regular file is kept as a marker so that
/// validation can name it, instead of being followed or silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEntry {
    File(Vec<u8>),
    Symlink { target: String },
    TooLarge { size: u64 },
    Submodule,
}

/// The files of a topology at one revision, keyed by `/`-separated path relative to the topology root.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: Revision,
    pub commit: Option<CommitInfo>,
    /// Who signed the commit (or its tag), when signatures were verified before the snapshot was taken.
    pub signer: Option<super::verify::Signer>,
    entries: BTreeMap<String, SnapshotEntry>,
}

impl Snapshot {
    pub fn new(
        revision: Revision,
        commit: Option<CommitInfo>,
        entries: BTreeMap<String, SnapshotEntry>,
    ) -> Self {
        Self {
            revision,
            commit,
            signer: None,
            entries,
        }
    }

    /// Reads a directory tree. Symlinks are recorded, never followed; `.git` is skipped.
    pub fn from_dir(root: &Path, max_file_size: u64) -> Result<Self, SourceError> {
        let meta = std::fs::metadata(root).map_err(|e| SourceError::ReadDir {
            path: root.to_path_buf(),
            source: e,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut entries = BTreeMap::new();
        let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let read = std::fs::read_dir(&dir).map_err(|e| SourceError::ReadDir {
                path: dir.clone(),
                source: e,
            })?;
            for item in read {
                let item = item.map_err(|e| SourceError::ReadDir {
                    path: dir.clone(),
                    source: e,
                })?;
                let name = item.file_name();
                let Some(name) = name.to_str() else {
                    return Err(SourceError::NonUtf8Path { path: item.path() });
                };
                if prefix.is_empty() && name == ".git" {
                    continue;
                }
                let rel = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                };
                let path = item.path();
                let kind = item.file_type().map_err(|e| SourceError::ReadFile {
                    path: path.clone(),
                    source: e,
                })?;
                if kind.is_symlink() {
                    let target = std::fs::read_link(&path).map_err(|e| SourceError::ReadFile {
                        path: path.clone(),
                        source: e,
                    })?;
                    entries.insert(
                        rel,
                        SnapshotEntry::Symlink {
                            target: target.to_string_lossy().into_owned(),
                        },
                    );
                } else if kind.is_dir() {
                    pending.push((path, rel));
                } else if kind.is_file() {
                    let size = item
                        .metadata()
                        .map_err(|e| SourceError::ReadFile {
                            path: path.clone(),
                            source: e,
                        })?
                        .len();
                    if size > max_file_size {
                        entries.insert(rel, SnapshotEntry::TooLarge { size });
                    } else {
                        let bytes = std::fs::read(&path).map_err(|e| SourceError::ReadFile {
                            path: path.clone(),
                            source: e,
                        })?;
                        entries.insert(rel, SnapshotEntry::File(bytes));
                    }
                }
            }
        }
        let revision = Revision {
            id: content_digest(&entries),
            origin: root.display().to_string(),
        };
        Ok(Self {
            revision,
            commit: None,
            signer: None,
            entries,
        })
    }

    pub fn get(&self, path: &str) -> Option<&SnapshotEntry> {
        self.entries.get(path)
    }

    /// All entries in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &SnapshotEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Entries directly or indirectly under `dir` (a `/`-separated relative path without trailing slash).
    pub fn entries_under<'a>(
        &'a self,
        dir: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a SnapshotEntry)> + 'a {
        let prefix = format!("{dir}/");
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// A digest over paths and contents, so that a directory snapshot has a stable revision id.
fn content_digest(entries: &BTreeMap<String, SnapshotEntry>) -> String {
    let mut hasher = Sha256::new();
    for (path, entry) in entries {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        match entry {
            SnapshotEntry::File(bytes) => {
                hasher.update(b"f");
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(bytes);
            }
            SnapshotEntry::Symlink { target } => {
                hasher.update(b"l");
                hasher.update(target.as_bytes());
            }
            SnapshotEntry::TooLarge { size } => {
                hasher.update(b"L");
                hasher.update(size.to_be_bytes());
            }
            SnapshotEntry::Submodule => hasher.update(b"m"),
        }
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_records_symlinks_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("services")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.path().join("keelson.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("services/a.yaml"), "b: 2\n").unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 11]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();

        let snap = Snapshot::from_dir(dir.path(), 10).unwrap();
        let paths: Vec<_> = snap.entries().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["big", "keelson.yaml", "link", "services/a.yaml"]);
        assert_eq!(snap.get("big"), Some(&SnapshotEntry::TooLarge { size: 11 }));
        assert_eq!(
            snap.get("link"),
            Some(&SnapshotEntry::Symlink {
                target: "/etc/passwd".into()
            })
        );
        assert_eq!(snap.entries_under("services").count(), 1);
        assert!(snap.revision.id.starts_with("sha256:"));

        let again = Snapshot::from_dir(dir.path(), 10).unwrap();
        assert_eq!(snap.revision, again.revision);
        std::fs::write(dir.path().join("services/a.yaml"), "b: 3\n").unwrap();
        let changed = Snapshot::from_dir(dir.path(), 10).unwrap();
        assert_ne!(snap.revision.id, changed.revision.id);
    }
}
