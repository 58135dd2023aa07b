//! The files of a commit's tree under the topology path, read straight from the object database: no checkout,
//! so nothing outside the commit can reach a snapshot. Shared by the polling source and the history reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use super::SnapshotEntry;
use super::git::TOPOLOGY_FILE;

/// Why a tree could not be read; the caller names the remote, ref and commit.
#[derive(Debug)]
pub(crate) enum TreeError {
    /// The object database failed (missing or corrupt object).
    Git(git2::Error),
    /// The topology path is not a directory in the commit.
    MissingPath,
    /// The commit has no `keelson.yaml` at the topology path; carries that file's path.
    MissingTopologyFile(String),
    NonUtf8Path(PathBuf),
}

impl From<git2::Error> for TreeError {
    fn from(e: git2::Error) -> Self {
        TreeError::Git(e)
    }
}

/// The entries under `path` (normalised, empty for the root) of the commit `commit_oid`. Symlinks and
/// submodules are recorded, never followed; files over `max_file_size` are recorded by size, not read.
pub(crate) fn read_tree(
    repo: &Repository,
    commit_oid: Oid,
    path: &str,
    max_file_size: u64,
) -> Result<BTreeMap<String, SnapshotEntry>, TreeError> {
    let commit = repo.find_commit(commit_oid)?;
    let tree = commit.tree()?;
    let root = if path.is_empty() {
        tree
    } else {
        let entry = tree
            .get_path(Path::new(path))
            .map_err(|_| TreeError::MissingPath)?;
        if entry.kind() != Some(git2::ObjectType::Tree) {
            return Err(TreeError::MissingPath);
        }
        repo.find_tree(entry.id())?
    };
    let odb = repo.odb()?;
    let mut entries = BTreeMap::new();
    let mut pending = vec![(root, String::new())];
    while let Some((tree, prefix)) = pending.pop() {
        for entry in tree.iter() {
            let Ok(name) = entry.name() else {
                return Err(TreeError::NonUtf8Path(PathBuf::from(format!(
                    "{prefix}/{}",
                    String::from_utf8_lossy(entry.name_bytes())
                ))));
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            match entry.filemode() {
                0o040000 => pending.push((repo.find_tree(entry.id())?, rel)),
                0o160000 => {
                    entries.insert(rel, SnapshotEntry::Submodule);
                }
                0o120000 => {
                    let blob = repo.find_blob(entry.id())?;
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    entries.insert(rel, SnapshotEntry::Symlink { target });
                }
                _ => {
                    // The header gives the size without inflating the object.
                    let (size, _) = odb.read_header(entry.id())?;
                    let size = size as u64;
                    if size > max_file_size {
                        entries.insert(rel, SnapshotEntry::TooLarge { size });
                    } else {
                        let blob = repo.find_blob(entry.id())?;
                        entries.insert(rel, SnapshotEntry::File(blob.content().to_vec()));
                    }
                }
            }
        }
    }
    if !entries.contains_key(TOPOLOGY_FILE) {
        return Err(TreeError::MissingTopologyFile(if path.is_empty() {
            TOPOLOGY_FILE.to_string()
        } else {
            format!("{path}/{TOPOLOGY_FILE}")
        }));
    }
    Ok(entries)
}
