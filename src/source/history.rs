//! A repository with its history, for the one-shot commands that name revisions the way `git` does:
//! `main`, `origin/main`, `HEAD~1`, `v2025.1^{}`, a short sha, `$(git merge-base origin/main HEAD)`.
//! Revisions are resolved with libgit2's revparse and their trees read straight from the object database.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository};

use super::commit::commit_info;
use super::git::{GitSource, GitSourceConfig};
use super::tree::{TreeError, read_tree};
use super::{DEFAULT_MAX_FILE_SIZE, Revision, Snapshot, SourceError};

/// Longest revision expression accepted; anything longer is not something a person typed.
const MAX_REVISION_LEN: usize = 1024;

/// A repository opened for reading revisions: a local work tree, a plain-path repository, or a history
/// clone of a remote.
pub struct History {
    repo: Repository,
    /// How the repository is named in messages (a path, or a remote URL without credentials).
    origin: String,
    /// Directory inside the repository that holds `keelson.yaml`; empty for the root.
    path: String,
    max_file_size: u64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("origin", &self.origin)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a revision expression named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRevision {
    /// The expression as given.
    pub spec: String,
    /// The commit it names (tags peeled).
    pub commit: Oid,
    /// The annotated tag object the expression named, when it named one (`v1.2`, `refs/tags/v1.2`).
    pub tag: Option<Oid>,
}

impl History {
    /// The repository holding `dir` (the directory itself or one of its parents). The topology path is
    /// `dir` relative to the repository's work tree, so `keelson plan deploy/ --base main` reads
    /// `deploy/keelson.yaml` at `main`.
    pub fn discover(dir: &Path) -> Result<History, SourceError> {
        let not_in_repo = |source: git2::Error| SourceError::LocalRepository {
            path: dir.to_path_buf(),
            source,
        };
        let repo = Repository::discover(dir).map_err(not_in_repo)?;
        let Some(workdir) = repo.workdir() else {
            return Err(not_in_repo(git2::Error::from_str(
                "a bare repository has no work tree; use --repo with it",
            )));
        };
        let canonical = |p: &Path| {
            std::fs::canonicalize(p).map_err(|source| SourceError::ReadDir {
                path: p.to_path_buf(),
                source,
            })
        };
        let (dir_abs, root_abs) = (canonical(dir)?, canonical(workdir)?);
        let relative = dir_abs
            .strip_prefix(&root_abs)
            .map_err(|_| SourceError::InvalidPath {
                path: dir.display().to_string(),
                reason: format!("not inside the work tree {}", root_abs.display()),
            })?;
        let Some(path) = relative.to_str() else {
            return Err(SourceError::NonUtf8Path {
                path: relative.to_path_buf(),
            });
        };
        Ok(History {
            repo,
            origin: dir.display().to_string(),
            path: path.to_string(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        })
    }

    /// The remote of `config` with its whole history: a plain-path repository in place, anything else
    /// fetched (every branch and tag) into a history clone in the cache directory.
    pub fn fetch(config: &GitSourceConfig) -> Result<History, SourceError> {
        // The history fetch takes every branch and tag; the configured ref is resolved afterwards, by revparse,
        // so it may be an expression the polling source would refuse.
        let mut config = config.clone();
        config.reference = "HEAD".to_string();
        let source = GitSource::new(config.clone())?;
        let repo = source.fetch_history()?;
        Ok(History {
            repo,
            origin: source.remote().to_string(),
            path: super::git::normalize_path(&config.path)?,
            max_file_size: config.max_file_size,
        })
    }

    /// The repository, for reading signatures.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// How the repository is named in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The commit (and the annotated tag, if it names one) a revision expression names.
    pub fn resolve(&self, spec: &str) -> Result<ResolvedRevision, SourceError> {
        let invalid = |reason: &str| SourceError::InvalidRevision {
            origin: self.origin.clone(),
            revision: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec.is_empty() {
            return Err(invalid("empty"));
        }
        if spec.len() > MAX_REVISION_LEN || spec.chars().any(char::is_control) || spec.starts_with('-') {
            return Err(invalid("not a revision"));
        }
        let object = self.repo.revparse_single(spec).map_err(|e| match e.code() {
            ErrorCode::Ambiguous => invalid("ambiguous: give more characters of the sha"),
            ErrorCode::NotFound | ErrorCode::InvalidSpec => {
                invalid(&format!("unknown revision ({}); is it fetched?", e.message()))
            }
            _ => invalid(e.message()),
        })?;
        let tag = (object.kind() == Some(ObjectType::Tag)).then(|| object.id());
        let commit = object
            .peel_to_commit()
            .map_err(|_| invalid(&format!("{} is not a commit", object.id())))?;
        Ok(ResolvedRevision {
            spec: spec.to_string(),
            commit: commit.id(),
            tag,
        })
    }

    /// The topology's files at a resolved revision.
    pub fn snapshot(&self, revision: &ResolvedRevision) -> Result<Snapshot, SourceError> {
        let sha = revision.commit.to_string();
        let origin = format!("{}@{}", self.origin, revision.spec);
        let entries =
            read_tree(&self.repo, revision.commit, &self.path, self.max_file_size).map_err(|e| match e {
                TreeError::Git(source) => SourceError::LocalRepository {
                    path: PathBuf::from(&self.origin),
                    source,
                },
                TreeError::MissingPath => SourceError::MissingPath {
                    remote: self.origin.clone(),
                    reference: revision.spec.clone(),
                    commit: sha.clone(),
                    path: self.path.clone(),
                },
                TreeError::MissingTopologyFile(path) => SourceError::MissingTopologyFile {
                    remote: self.origin.clone(),
                    reference: revision.spec.clone(),
                    commit: sha.clone(),
                    path,
                },
                TreeError::NonUtf8Path(path) => SourceError::NonUtf8Path { path },
            })?;
        let commit =
            self.repo
                .find_commit(revision.commit)
                .map_err(|source| SourceError::LocalRepository {
                    path: PathBuf::from(&self.origin),
                    source,
                })?;
        Ok(Snapshot::new(
            Revision { id: sha, origin },
            Some(commit_info(&commit)),
            entries,
        ))
    }
}
