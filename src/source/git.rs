//! A Git remote as a stream of snapshots: cheap polls, fetches into a bare cache, trees read at a commit.
//!
//! A poll asks the remote for its ref advertisement (one round trip, no objects). Only when the tracked ref
//! points somewhere new are objects fetched, and only then is a snapshot read, straight from the object
//! database: no checkout and no working tree, so nothing outside the commit can leak into a snapshot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use git2::{ErrorClass, ErrorCode, Oid, Repository};
use rand::Rng as _;

use super::commit::commit_info;
use super::credentials::{CallbackReport, GitCredentials, callbacks, credentials_apply};
use super::tree::{TreeError, read_tree};
use super::url::{RemoteUrl, Transport};
use super::verify::{AllowedSigners, Signer, VerifyFailure, VerifyMode, verify_revision};
use super::{DEFAULT_MAX_FILE_SIZE, Revision, Snapshot, SourceError};

/// The file that must exist at the topology path of every commit Keelson reads.
pub const TOPOLOGY_FILE: &str = "keelson.yaml";

/// The one ref the cache keeps: the tracked remote ref is fetched into it.
const TRACKED_REF: &str = "refs/keelson/tracked";
/// Where a history fetch keeps the remote's HEAD.
const REMOTE_HEAD_REF: &str = "refs/keelson/remote-head";
const REMOTE_HEAD_SPEC: &str = "+HEAD:refs/keelson/remote-head";
/// Marks a cache directory as Keelson's clone of one particular remote.
const CACHE_MARKER_KEY: &str = "keelson.remote";

/// What to read and where to keep the clone.
#[derive(Clone)]
pub struct GitSourceConfig {
    /// Remote: a path, `file://`, `git://`, `http(s)://`, `ssh://` or `user@host:path`.
    pub url: String,
    /// Branch, tag, full ref name (`refs/...`), `HEAD`, or a full commit sha.
    pub reference: String,
    /// Directory inside the repository holding `keelson.yaml`; empty for the repository root.
    pub path: String,
    /// Directory holding the bare cache clones (one subdirectory per remote).
    pub cache_dir: PathBuf,
    pub credentials: GitCredentials,
    pub max_file_size: u64,
    /// Fetch only the tip commit on the first clone, where the remote allows it.
    pub shallow: bool,
}

impl std::fmt::Debug for GitSourceConfig {
    // The URL may carry credentials; print it redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSourceConfig")
            .field("url", &super::url::redact_url(&self.url))
            .field("reference", &self.reference)
            .field("path", &self.path)
            .field("cache_dir", &self.cache_dir)
            .field("credentials", &self.credentials)
            .field("max_file_size", &self.max_file_size)
            .field("shallow", &self.shallow)
            .finish()
    }
}

impl GitSourceConfig {
    pub fn new(url: impl Into<String>, reference: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            reference: reference.into(),
            path: String::new(),
            cache_dir: default_cache_dir(),
            credentials: GitCredentials::default(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            shallow: true,
        }
    }
}

/// `/var/cache/keelson/git` inside a pod (the chart mounts a volume there), otherwise the user's cache directory.
pub fn default_cache_dir() -> PathBuf {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return PathBuf::from("/var/cache/keelson/git");
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("keelson/git");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache/keelson/git");
    }
    std::env::temp_dir().join("keelson-git-cache")
}

/// The result of one poll.
// One value per poll, moved straight to the caller: boxing the snapshot would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// The tracked ref still points at the last snapshot's commit.
    Unchanged { revision: Revision },
    /// A new commit was read.
    Changed {
        snapshot: Snapshot,
        /// The commit of the previous snapshot from this source, if any.
        previous: Option<String>,
        /// The new commit does not descend from the previous one (force-push or reset).
        history_rewritten: bool,
    },
}

/// Counters since the source was created; they become metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub polls: u64,
    /// Ref advertisements asked for (ls-remote round trips).
    pub ref_lookups: u64,
    pub fetches: u64,
    pub bytes_received: u64,
    pub objects_received: u64,
    pub snapshots: u64,
    pub failures: u64,
    pub history_rewrites: u64,
    /// Times a corrupt or foreign cache was wiped and cloned again.
    pub cache_resets: u64,
}

/// What the most recent poll cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollCost {
    pub ref_lookups: u64,
    pub fetches: u64,
    pub bytes_received: u64,
    pub objects_received: u64,
    pub snapshot_read: bool,
    pub duration: Duration,
}

/// How the configured reference is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefTarget {
    /// A commit sha: immutable, so no ref lookup is ever needed once the commit is cached.
    Commit(Oid),
    /// Names tried in order against the advertisement (`refs/heads/x`, then `refs/tags/x`).
    Names(Vec<String>),
}

fn parse_reference(reference: &str) -> Result<RefTarget, SourceError> {
    let invalid = |reason: &str| SourceError::InvalidRef {
        reference: reference.to_string(),
        reason: reason.into(),
    };
    if reference.is_empty() {
        return Err(invalid("empty"));
    }
    if (reference.len() == 40 || reference.len() == 64) && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        let oid = Oid::from_str(reference).map_err(|_| invalid("not a valid object id"))?;
        return Ok(RefTarget::Commit(oid));
    }
    if reference == "HEAD" || reference.starts_with("refs/") {
        if !git2::Reference::is_valid_name(reference) {
            return Err(invalid("not a valid ref name"));
        }
        return Ok(RefTarget::Names(vec![reference.to_string()]));
    }
    // Short names are validated as the branch they would name.
    validate_short(reference).map(RefTarget::Names)
}

fn validate_short(reference: &str) -> Result<Vec<String>, SourceError> {
    let head = format!("refs/heads/{reference}");
    if !git2::Reference::is_valid_name(&head) {
        return Err(SourceError::InvalidRef {
            reference: reference.to_string(),
            reason: "not a valid ref name".into(),
        });
    }
    Ok(vec![head, format!("refs/tags/{reference}")])
}

/// Normalises the sub-path: `/`-separated, no leading `./` or `/`, no `..`.
pub(crate) fn normalize_path(path: &str) -> Result<String, SourceError> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SourceError::InvalidPath {
                    path: path.to_string(),
                    reason: "contains '..'".into(),
                });
            }
            p if p.chars().any(char::is_control) => {
                return Err(SourceError::InvalidPath {
                    path: path.to_string(),
                    reason: "control characters".into(),
                });
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// A Git remote, polled for new commits.
pub struct GitSource {
    inner: Arc<Mutex<Inner>>,
    display: String,
}

struct Inner {
    config: GitSourceConfig,
    url: RemoteUrl,
    target: RefTarget,
    path: String,
    repo_dir: PathBuf,
    last_seen: Option<Oid>,
    last_revision: Option<Revision>,
    stats: SourceStats,
    last_cost: PollCost,
    consecutive_failures: u32,
}

impl GitSource {
    /// Validates the configuration; no I/O beyond resolving a local path happens until the first poll.
    pub fn new(config: GitSourceConfig) -> Result<Self, SourceError> {
        let mut url = RemoteUrl::parse(&config.url)?;
        // Relative local paths are made absolute so that the cache key and the fetch do not depend on the
        // working directory of later calls.
        if let Some(local) = url.local_path().filter(|p| p.is_relative()) {
            let abs = std::path::absolute(&local).map_err(|e| SourceError::InvalidUrl {
                url: url.display.clone(),
                reason: e.to_string(),
            })?;
            let abs = abs.to_string_lossy().into_owned();
            url = RemoteUrl::parse(&abs)?;
        }
        let target = parse_reference(&config.reference)?;
        let path = normalize_path(&config.path)?;
        if !credentials_apply(&url, &config.credentials)
            && (config.credentials.password.is_some() || config.credentials.ssh_key.is_some())
        {
            tracing::warn!(remote = %url, "credentials are configured but not used by this transport");
        }
        let repo_dir = config.cache_dir.join(cache_name(&url));
        let display = url.display.clone();
        let inner = Inner {
            config,
            url,
            target,
            path,
            repo_dir,
            last_seen: None,
            last_revision: None,
            stats: SourceStats::default(),
            last_cost: PollCost::default(),
            consecutive_failures: 0,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            display,
        })
    }

    /// The remote as it may be printed (no credentials).
    pub fn remote(&self) -> &str {
        &self.display
    }

    /// Polls off the async runtime: libgit2 blocks.
    pub async fn poll(&mut self) -> Result<PollOutcome, SourceError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || lock(&inner).poll())
            .await
            .map_err(|e| SourceError::Task {
                message: e.to_string(),
            })?
    }

    /// Polls on the calling thread; for command-line use outside an async runtime.
    pub fn poll_blocking(&mut self) -> Result<PollOutcome, SourceError> {
        lock(&self.inner).poll()
    }

    pub fn stats(&self) -> SourceStats {
        lock(&self.inner).stats
    }

    pub fn last_poll_cost(&self) -> PollCost {
        lock(&self.inner).last_cost
    }

    /// The revision of the last snapshot this source produced.
    pub fn current_revision(&self) -> Option<Revision> {
        lock(&self.inner).last_revision.clone()
    }

    /// Fetches every branch and tag of the remote, with their whole history, into a second bare cache clone
    /// (never shallow, so `HEAD~3` and merge bases resolve), and returns it opened. A plain-path repository is
    /// opened in place instead. Blocks: for one-shot commands that name revisions the way `git` does.
    pub fn fetch_history(&self) -> Result<Repository, SourceError> {
        lock(&self.inner).fetch_history()
    }

    /// Checks the signature of a snapshot this source read (see [`super::verify::verify_revision`]): the
    /// commit itself (`head`), or an annotated tag at it (`tag`: the tags are fetched first). Blocks.
    pub fn verify_blocking(
        &self,
        snapshot: &Snapshot,
        mode: VerifyMode,
        allowed: &AllowedSigners,
    ) -> Result<Signer, VerifyFailure> {
        lock(&self.inner).verify(snapshot, mode, allowed)
    }

    /// [`GitSource::verify_blocking`] off the async runtime.
    pub async fn verify(
        &self,
        snapshot: Snapshot,
        mode: VerifyMode,
        allowed: Arc<AllowedSigners>,
    ) -> Result<Signer, VerifyFailure> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || lock(&inner).verify(&snapshot, mode, &allowed))
            .await
            .map_err(|e| {
                VerifyFailure::Source(SourceError::Task {
                    message: e.to_string(),
                })
            })?
    }

    /// The bare clone used for this remote.
    pub fn cache_path(&self) -> PathBuf {
        lock(&self.inner).repo_dir.clone()
    }

    /// How long to wait before retrying after failed polls: exponential from 1s to 5m, with jitter so that
    /// many Keelsons do not hit one Git server in step.
    pub fn retry_delay(&self) -> Duration {
        let failures = lock(&self.inner).consecutive_failures;
        if failures == 0 {
            return Duration::ZERO;
        }
        let base = Duration::from_secs(1u64 << (failures - 1).min(9)).min(Duration::from_secs(300));
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("remote", &self.display)
            .finish()
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic inside a poll leaves counters possibly stale but never unsafe to read.
    inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `<last path segment>-<hash of the remote>.git`: readable, and distinct per remote.
fn cache_name(url: &RemoteUrl) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(url.git_url.as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let last = url
        .git_url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo");
    let stem: String = last
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let stem = stem.trim_start_matches('.');
    format!("{}-{hash}.git", if stem.is_empty() { "repo" } else { stem })
}

/// The history clone beside a remote's polling clone: `topology-1a2b.git` -> `topology-1a2b.history.git`.
fn history_dir(repo_dir: &Path) -> PathBuf {
    let name = repo_dir
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
        .unwrap_or_else(|| "repo".to_string());
    repo_dir.with_file_name(format!("{name}.history.git"))
}

/// Where a failure happened, to decide whether wiping the cache can help.
enum Failure {
    Cache(SourceError),
    Other(SourceError),
}

impl Inner {
    fn reference(&self) -> &str {
        &self.config.reference
    }

    fn verify(
        &mut self,
        snapshot: &Snapshot,
        mode: VerifyMode,
        allowed: &AllowedSigners,
    ) -> Result<Signer, VerifyFailure> {
        let commit = Oid::from_str(&snapshot.revision.id).map_err(|_| {
            VerifyFailure::Source(SourceError::InvalidRef {
                reference: snapshot.revision.id.clone(),
                reason: "not a commit sha".into(),
            })
        })?;
        let repo = match self.url.direct_path() {
            Some(path) => {
                Repository::open(&path).map_err(|source| SourceError::LocalRepository { path, source })?
            }
            None => self.open_cache(&self.repo_dir)?,
        };
        let mut tag = None;
        if mode == VerifyMode::Tag {
            if self.url.direct_path().is_none() {
                let mut cost = PollCost::default();
                self.fetch_refspecs(&repo, &["+refs/tags/*:refs/tags/*"], 0, &mut cost)
                    .map_err(|e| match self.classify_fetch_error(e) {
                        Failure::Cache(e) | Failure::Other(e) => e,
                    })?;
                self.stats.fetches += cost.fetches;
            }
            // The ref itself, when it names an annotated tag; otherwise any tag at the commit will do.
            let name = self.reference().to_string();
            let candidates = [name.clone(), format!("refs/tags/{name}")];
            tag = candidates
                .iter()
                .filter_map(|n| repo.find_reference(n).ok())
                .filter_map(|r| r.target())
                .find(|oid| {
                    repo.find_object(*oid, None)
                        .is_ok_and(|o| o.kind() == Some(git2::ObjectType::Tag))
                });
        }
        verify_revision(&repo, commit, tag, mode, allowed).map_err(VerifyFailure::Refused)
    }

    fn poll(&mut self) -> Result<PollOutcome, SourceError> {
        let started = std::time::Instant::now();
        self.stats.polls += 1;
        let mut cost = PollCost::default();
        let mut result = self.poll_once(&mut cost);
        if let Err(Failure::Cache(err)) = &result {
            // One wipe and re-clone; a second failure is reported as it is.
            tracing::warn!(remote = %self.url, cache = %self.repo_dir.display(), error = %err,
                "git cache unusable, cloning again");
            self.stats.cache_resets += 1;
            result = match self.wipe_cache() {
                Ok(()) => self.poll_once(&mut cost),
                Err(e) => Err(Failure::Other(e)),
            };
        }
        cost.duration = started.elapsed();
        self.stats.ref_lookups += cost.ref_lookups;
        self.stats.fetches += cost.fetches;
        self.stats.bytes_received += cost.bytes_received;
        self.stats.objects_received += cost.objects_received;
        self.last_cost = cost;
        match result {
            Ok(outcome) => {
                self.consecutive_failures = 0;
                Ok(outcome)
            }
            Err(Failure::Cache(e) | Failure::Other(e)) => {
                self.stats.failures += 1;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                Err(e)
            }
        }
    }

    fn poll_once(&mut self, cost: &mut PollCost) -> Result<PollOutcome, Failure> {
        if let Some(path) = self.url.direct_path() {
            // A commit in a local repository's own object database is as immutable as a copy of it would be,
            // so it is read in place. A read failure there belongs to that repository: wiping the cache
            // cannot help.
            return self.poll_direct(&path, cost).map_err(|f| match f {
                Failure::Cache(e) | Failure::Other(e) => Failure::Other(e),
            });
        }
        // The ref lookup needs no cache: an unchanged remote never touches the disk.
        let (wanted, source_ref) = match &self.target {
            RefTarget::Commit(oid) => (*oid, None),
            RefTarget::Names(names) => {
                let names = names.clone();
                let (oid, name) = self.lookup_ref(&names, cost).map_err(Failure::Other)?;
                (oid, Some(name))
            }
        };
        if self.last_seen == Some(wanted) {
            if let Some(revision) = &self.last_revision {
                return Ok(PollOutcome::Unchanged {
                    revision: revision.clone(),
                });
            }
        }
        let repo = self.open_cache(&self.repo_dir).map_err(Failure::Cache)?;
        let commit_oid = match self.peel_commit(&repo, wanted)? {
            Some(oid) => oid,
            None => {
                self.fetch(&repo, source_ref.as_deref(), wanted, cost)?;
                match self.peel_commit(&repo, wanted)? {
                    Some(oid) => oid,
                    // The remote advertised it and the fetch succeeded, yet it is not there: the cache lies.
                    None if source_ref.is_some() => {
                        return Err(self.cache_error(git2::Error::from_str(&format!(
                            "object {wanted} missing after fetch"
                        ))));
                    }
                    None => {
                        return Err(Failure::Other(SourceError::RefNotFound {
                            remote: self.url.display.clone(),
                            reference: self.reference().to_string(),
                        }));
                    }
                }
            }
        };
        if self.last_seen == Some(commit_oid) {
            if let Some(revision) = &self.last_revision {
                return Ok(PollOutcome::Unchanged {
                    revision: revision.clone(),
                });
            }
        }
        repo.reference(TRACKED_REF, commit_oid, true, "keelson: tracked commit")
            .map_err(|e| self.cache_error(e))?;
        self.read_new_commit(&repo, commit_oid, cost)
    }

    fn fetch_history(&mut self) -> Result<Repository, SourceError> {
        if let Some(path) = self.url.direct_path() {
            return Repository::open(&path).map_err(|source| SourceError::LocalRepository { path, source });
        }
        let dir = history_dir(&self.repo_dir);
        let mut cost = PollCost::default();
        let result = match self.fetch_history_into(&dir, &mut cost) {
            Err(Failure::Cache(err)) => {
                tracing::warn!(remote = %self.url, cache = %dir.display(), error = %err,
                    "git history cache unusable, cloning again");
                remove_path(&dir)
                    .map_err(|source| SourceError::CacheIo {
                        dir: dir.clone(),
                        source,
                    })
                    .map_err(Failure::Other)
                    .and_then(|()| self.fetch_history_into(&dir, &mut cost))
            }
            other => other,
        };
        self.stats.fetches += cost.fetches;
        self.stats.bytes_received += cost.bytes_received;
        self.stats.objects_received += cost.objects_received;
        result.map_err(|(Failure::Cache(e) | Failure::Other(e))| e)
    }

    fn fetch_history_into(&self, dir: &Path, cost: &mut PollCost) -> Result<Repository, Failure> {
        let repo = self.open_cache(dir).map_err(Failure::Cache)?;
        // Branches under both names a CI checkout knows (`main` and `origin/main`), tags, and the remote's
        // HEAD, which becomes the cache's detached HEAD so that `HEAD~1` means what it means in a clone.
        let specs = [
            "+refs/heads/*:refs/heads/*",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
            REMOTE_HEAD_SPEC,
        ];
        self.fetch_refspecs_pruning(&repo, &specs, 0, true, cost)
            .map_err(|e| self.classify_fetch_error(e))?;
        let head = repo.find_reference(REMOTE_HEAD_REF).ok().and_then(|r| r.target());
        if let Some(head) = head {
            repo.set_head_detached(head).map_err(|e| self.cache_error(e))?;
        }
        Ok(repo)
    }

    /// A repository given as a plain path (not `file://`, which goes through Git's transport like any remote,
    /// as `git clone` does): refs are resolved and trees read straight from its object database. No copy.
    fn poll_direct(&mut self, path: &Path, cost: &mut PollCost) -> Result<PollOutcome, Failure> {
        let local_err = |source: git2::Error| {
            Failure::Other(SourceError::LocalRepository {
                path: path.to_path_buf(),
                source,
            })
        };
        let repo = Repository::open(path).map_err(local_err)?;
        cost.ref_lookups += 1;
        let not_found = || {
            Failure::Other(SourceError::RefNotFound {
                remote: self.url.display.clone(),
                reference: self.reference().to_string(),
            })
        };
        let wanted = match &self.target {
            RefTarget::Commit(oid) => *oid,
            RefTarget::Names(names) => {
                // "No refs at all" rather than libgit2's is_empty, which assumes the default branch is master.
                let no_refs = repo.references().map_err(local_err)?.next().is_none();
                if no_refs {
                    return Err(Failure::Other(SourceError::EmptyRepository {
                        remote: self.url.display.clone(),
                    }));
                }
                let found = names.iter().find_map(|name| repo.find_reference(name).ok());
                let reference = found.ok_or_else(not_found)?;
                let resolved = reference.resolve().map_err(|_| not_found())?;
                resolved.target().ok_or_else(not_found)?
            }
        };
        if self.last_seen == Some(wanted) {
            if let Some(revision) = &self.last_revision {
                return Ok(PollOutcome::Unchanged {
                    revision: revision.clone(),
                });
            }
        }
        let commit_oid = self.peel_commit(&repo, wanted)?.ok_or_else(not_found)?;
        if self.last_seen == Some(commit_oid) {
            if let Some(revision) = &self.last_revision {
                return Ok(PollOutcome::Unchanged {
                    revision: revision.clone(),
                });
            }
        }
        self.read_new_commit(&repo, commit_oid, cost)
    }

    /// Reads the snapshot of a commit that differs from the last one, and records it as seen.
    fn read_new_commit(
        &mut self,
        repo: &Repository,
        commit_oid: Oid,
        cost: &mut PollCost,
    ) -> Result<PollOutcome, Failure> {
        let snapshot = self.read_snapshot(repo, commit_oid)?;
        cost.snapshot_read = true;
        let previous = self.last_seen;
        let history_rewritten = match previous {
            Some(prev) => !self.descends(repo, commit_oid, prev),
            None => false,
        };
        if history_rewritten {
            self.stats.history_rewrites += 1;
            tracing::warn!(remote = %self.url, reference = self.reference(), previous = %previous.map(|p| p.to_string()).unwrap_or_default(),
                commit = %commit_oid, "history was rewritten: the new commit does not descend from the last one");
        }
        tracing::info!(remote = %self.url, reference = self.reference(), commit = %commit_oid, "read new commit");
        self.stats.snapshots += 1;
        self.last_seen = Some(commit_oid);
        self.last_revision = Some(snapshot.revision.clone());
        Ok(PollOutcome::Changed {
            snapshot,
            previous: previous.map(|p| p.to_string()),
            history_rewritten,
        })
    }

    /// One ref advertisement; returns the commit-ish the first matching name points at (peeled for tags).
    fn lookup_ref(&self, names: &[String], cost: &mut PollCost) -> Result<(Oid, String), SourceError> {
        // An anonymous remote needs a repository to hang off; a small bare one beside the clones serves, so a
        // lookup never opens (or has to repair) the clone itself.
        let scratch = self.scratch_repo()?;
        let mut remote = scratch
            .remote_anonymous(&self.url.git_url)
            .map_err(|e| self.remote_error(e, None))?;
        let report = Arc::new(Mutex::new(CallbackReport::default()));
        let cb = callbacks(&self.url, &self.config.credentials, report.clone());
        cost.ref_lookups += 1;
        let connection = remote
            .connect_auth(git2::Direction::Fetch, Some(cb), Some(proxy_options()))
            .map_err(|e| self.remote_error(e, Some(&report)))?;
        let heads = connection
            .list()
            .map_err(|e| self.remote_error(e, Some(&report)))?;
        let advertised: Vec<(String, Oid)> = heads.iter().map(|h| (h.name().to_string(), h.oid())).collect();
        drop(connection);
        if advertised
            .iter()
            .all(|(name, oid)| oid.is_zero() || name.ends_with("capabilities^{}"))
        {
            return Err(SourceError::EmptyRepository {
                remote: self.url.display.clone(),
            });
        }
        for name in names {
            let peeled = format!("{name}^{{}}");
            let found = advertised
                .iter()
                .find(|(n, _)| *n == peeled)
                .or_else(|| advertised.iter().find(|(n, _)| n == name));
            if let Some((_, oid)) = found {
                return Ok((*oid, name.clone()));
            }
        }
        Err(SourceError::RefNotFound {
            remote: self.url.display.clone(),
            reference: self.reference().to_string(),
        })
    }

    /// A bare repository next to the caches, used only to host anonymous remotes for ref lookups.
    fn scratch_repo(&self) -> Result<Repository, SourceError> {
        let dir = self.config.cache_dir.join(".ls-remote.git");
        if let Ok(repo) = Repository::open_bare(&dir) {
            return Ok(repo);
        }
        if dir.exists() {
            remove_path(&dir).map_err(|source| SourceError::CacheIo {
                dir: dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&self.config.cache_dir).map_err(|source| SourceError::CacheIo {
            dir: self.config.cache_dir.clone(),
            source,
        })?;
        Repository::init_bare(&dir).map_err(|source| SourceError::Cache {
            dir: dir.clone(),
            source,
        })
    }

    /// Opens the cache clone, creating it if absent and replacing it if it is not a clone of this remote.
    fn open_cache(&self, dir: &Path) -> Result<Repository, SourceError> {
        let dir = &dir.to_path_buf();
        if dir.exists() {
            let repo = Repository::open_bare(dir).map_err(|source| SourceError::Cache {
                dir: dir.clone(),
                source,
            })?;
            let marker = repo.config().and_then(|c| c.get_string(CACHE_MARKER_KEY)).ok();
            if !repo.is_bare() || marker.as_deref() != Some(self.url.git_url.as_str()) {
                return Err(SourceError::Cache {
                    dir: dir.clone(),
                    source: git2::Error::from_str("not Keelson's clone of this remote"),
                });
            }
            return Ok(repo);
        }
        std::fs::create_dir_all(&self.config.cache_dir).map_err(|source| SourceError::CacheIo {
            dir: self.config.cache_dir.clone(),
            source,
        })?;
        let repo = Repository::init_bare(dir).map_err(|source| SourceError::Cache {
            dir: dir.clone(),
            source,
        })?;
        repo.config()
            .and_then(|mut c| c.set_str(CACHE_MARKER_KEY, &self.url.git_url))
            .map_err(|source| SourceError::Cache {
                dir: dir.clone(),
                source,
            })?;
        Ok(repo)
    }

    fn wipe_cache(&self) -> Result<(), SourceError> {
        if self.repo_dir.exists() || self.repo_dir.is_symlink() {
            remove_path(&self.repo_dir).map_err(|source| SourceError::CacheIo {
                dir: self.repo_dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The commit an object id names, if the cache has it (tag objects are peeled). Unreadable objects are
    /// cache failures, not absences.
    fn peel_commit(&self, repo: &Repository, oid: Oid) -> Result<Option<Oid>, Failure> {
        let object = match repo.find_object(oid, None) {
            Ok(object) => object,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.cache_error(e)),
        };
        match object.peel_to_commit() {
            Ok(commit) => Ok(Some(commit.id())),
            Err(e)
                if is_local_failure(&e)
                    && e.code() != ErrorCode::InvalidSpec
                    && e.code() != ErrorCode::Peel =>
            {
                Err(self.cache_error(e))
            }
            Err(_) => Err(Failure::Other(SourceError::InvalidRef {
                reference: self.reference().to_string(),
                reason: format!("{oid} is not a commit"),
            })),
        }
    }

    fn fetch(
        &self,
        repo: &Repository,
        source_ref: Option<&str>,
        wanted: Oid,
        cost: &mut PollCost,
    ) -> Result<(), Failure> {
        let first_fetch = repo.find_reference(TRACKED_REF).is_err();
        // Shallow only for the first clone: later fetches are incremental anyway, and a deep enough history
        // is what lets a rewritten branch be told apart from a fast-forward.
        // The local transport cannot fetch shallow; asking would only cost a failed attempt.
        let shallow_capable = self.url.transport != Transport::Local;
        let depth = if self.config.shallow && first_fetch && shallow_capable {
            1
        } else {
            0
        };
        let refspec = match source_ref {
            Some(name) => format!("+{name}:{TRACKED_REF}"),
            None => format!("+{wanted}:{TRACKED_REF}"),
        };
        let result = self.fetch_refspecs(repo, &[refspec.as_str()], depth, cost);
        let result = match result {
            // Some transports (the local one among them) cannot deepen; fall back to a full fetch.
            Err(e) if depth > 0 && e.message().to_ascii_lowercase().contains("shallow") => {
                self.fetch_refspecs(repo, &[refspec.as_str()], 0, cost)
            }
            other => other,
        };
        match (result, source_ref) {
            (Ok(()), _) => Ok(()),
            // Servers that refuse to send an unadvertised sha: fetch all branches and tags and look it up.
            (Err(_), None) => {
                let specs = [
                    "+refs/heads/*:refs/keelson/heads/*",
                    "+refs/tags/*:refs/keelson/tags/*",
                ];
                self.fetch_refspecs(repo, &specs, 0, cost)
                    .map_err(|e| self.classify_fetch_error(e))
            }
            (Err(e), Some(_)) => Err(self.classify_fetch_error(e)),
        }
    }

    fn fetch_refspecs(
        &self,
        repo: &Repository,
        specs: &[&str],
        depth: i32,
        cost: &mut PollCost,
    ) -> Result<(), FetchError> {
        self.fetch_refspecs_pruning(repo, specs, depth, false, cost)
    }

    /// `prune`: refs the remote no longer has are removed from the cache, so a deleted branch stops resolving.
    fn fetch_refspecs_pruning(
        &self,
        repo: &Repository,
        specs: &[&str],
        depth: i32,
        prune: bool,
        cost: &mut PollCost,
    ) -> Result<(), FetchError> {
        let mut remote = repo
            .remote_anonymous(&self.url.git_url)
            .map_err(|e| FetchError(e, None))?;
        let report = Arc::new(Mutex::new(CallbackReport::default()));
        let mut callbacks = callbacks(&self.url, &self.config.credentials, report.clone());
        // Without a progress callback libgit2 does not count received bytes on smart transports.
        callbacks.transfer_progress(|_| true);
        let mut options = git2::FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(git2::AutotagOption::None)
            .update_fetchhead(false)
            .depth(depth)
            .prune(if prune {
                git2::FetchPrune::On
            } else {
                git2::FetchPrune::Unspecified
            })
            .proxy_options(proxy_options());
        cost.fetches += 1;
        let result = remote.fetch(specs, Some(&mut options), None);
        let progress = remote.stats();
        cost.bytes_received += progress.received_bytes() as u64;
        cost.objects_received += progress.received_objects() as u64;
        tracing::debug!(remote = %self.url, depth, bytes = progress.received_bytes(), objects = progress.received_objects(), "fetched");
        result.map_err(|e| FetchError(e, Some(report)))
    }

    fn classify_fetch_error(&self, FetchError(err, report): FetchError) -> Failure {
        if is_local_failure(&err) {
            Failure::Cache(SourceError::Cache {
                dir: self.repo_dir.clone(),
                source: err,
            })
        } else {
            Failure::Other(self.remote_error(err, report.as_ref()))
        }
    }

    fn cache_error(&self, source: git2::Error) -> Failure {
        Failure::Cache(SourceError::Cache {
            dir: self.repo_dir.clone(),
            source,
        })
    }

    /// Turns a libgit2 network error into the operator's words, naming remote and ref (never credentials).
    fn remote_error(&self, err: git2::Error, report: Option<&Arc<Mutex<CallbackReport>>>) -> SourceError {
        let remote = self.url.display.clone();
        let reference = self.reference().to_string();
        let report = report.and_then(|r| {
            r.lock().ok().map(|r| {
                (
                    r.host_key_refused.clone(),
                    r.credentials_requested,
                    r.credentials_exhausted,
                )
            })
        });
        if let Some((Some(reason), _, _)) = &report {
            return SourceError::HostKey {
                remote,
                reason: reason.clone(),
            };
        }
        let requested = report.as_ref().is_some_and(|r| r.1);
        let exhausted = report.as_ref().is_some_and(|r| r.2);
        // Over HTTP the credential callback runs only after a 401; over SSH it always runs, so there only a
        // failure that says so is an authentication failure.
        let http = matches!(self.url.transport, Transport::Http | Transport::Https);
        let says_auth = err.message().to_ascii_lowercase().contains("auth");
        if err.code() == ErrorCode::Auth || exhausted || (requested && (http || says_auth)) {
            return SourceError::AuthFailed {
                remote,
                reference,
                source: err,
            };
        }
        SourceError::Unreachable {
            remote,
            reference,
            source: err,
        }
    }

    fn read_snapshot(&self, repo: &Repository, commit_oid: Oid) -> Result<Snapshot, Failure> {
        let entries =
            read_tree(repo, commit_oid, &self.path, self.config.max_file_size).map_err(|e| match e {
                TreeError::Git(e) => self.cache_error(e),
                TreeError::MissingPath => Failure::Other(SourceError::MissingPath {
                    remote: self.url.display.clone(),
                    reference: self.reference().to_string(),
                    commit: commit_oid.to_string(),
                    path: self.path.clone(),
                }),
                TreeError::MissingTopologyFile(path) => Failure::Other(SourceError::MissingTopologyFile {
                    remote: self.url.display.clone(),
                    reference: self.reference().to_string(),
                    commit: commit_oid.to_string(),
                    path,
                }),
                TreeError::NonUtf8Path(path) => Failure::Other(SourceError::NonUtf8Path { path }),
            })?;
        let commit = repo.find_commit(commit_oid).map_err(|e| self.cache_error(e))?;
        let revision = Revision {
            id: commit_oid.to_string(),
            origin: format!("{}@{}", self.url.display, self.reference()),
        };
        Ok(Snapshot::new(revision, Some(commit_info(&commit)), entries))
    }

    /// Whether `commit` descends from `ancestor`. In a shallow cache the walk stops at the shallow boundary,
    /// so a commit that does not reach the ancestor within the fetched history counts as rewritten.
    fn descends(&self, repo: &Repository, commit: Oid, ancestor: Oid) -> bool {
        if commit == ancestor {
            return true;
        }
        repo.graph_descendant_of(commit, ancestor).unwrap_or(false)
    }
}

struct FetchError(git2::Error, Option<Arc<Mutex<CallbackReport>>>);

impl FetchError {
    fn message(&self) -> &str {
        self.0.message()
    }
}

/// Proxies as Git finds them: `http.proxy` and the `https_proxy`/`http_proxy` environment variables.
fn proxy_options() -> git2::ProxyOptions<'static> {
    let mut proxy = git2::ProxyOptions::new();
    proxy.auto();
    proxy
}

/// Errors from the local object database or file system, as opposed to the network or the server.
fn is_local_failure(err: &git2::Error) -> bool {
    matches!(
        err.class(),
        ErrorClass::Odb
            | ErrorClass::Object
            | ErrorClass::Zlib
            | ErrorClass::Index
            | ErrorClass::Repository
            | ErrorClass::Reference
            | ErrorClass::Filesystem
            | ErrorClass::Os
            | ErrorClass::Indexer
    )
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let rows: &[(&str, Option<RefTarget>)] = &[
            (
                "main",
                Some(RefTarget::Names(vec![
                    "refs/heads/main".into(),
                    "refs/tags/main".into(),
                ])),
            ),
            (
                "release/2025.1",
                Some(RefTarget::Names(vec![
                    "refs/heads/release/2025.1".into(),
                    "refs/tags/release/2025.1".into(),
                ])),
            ),
            (
                "refs/tags/v1",
                Some(RefTarget::Names(vec!["refs/tags/v1".into()])),
            ),
            ("HEAD", Some(RefTarget::Names(vec!["HEAD".into()]))),
            (sha, Some(RefTarget::Commit(Oid::from_str(sha).unwrap()))),
            ("", None),
            ("a..b", None),
            ("bad name", None),
            ("refs/heads/x.lock", None),
            ("-x~", None),
        ];
        for (input, want) in rows {
            assert_eq!(parse_reference(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn normalizes_paths() {
        let rows: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            (".", Some("")),
            ("./deploy/", Some("deploy")),
            ("/a//b", Some("a/b")),
            ("a/../b", None),
            ("..", None),
        ];
        for (input, want) in rows {
            assert_eq!(normalize_path(input).ok().as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn cache_names_are_safe_and_distinct() {
        let a = cache_name(&RemoteUrl::parse("https://host/org/topology.git").unwrap());
        let b = cache_name(&RemoteUrl::parse("https://other/org/topology.git").unwrap());
        let c = cache_name(&RemoteUrl::parse("git@host:../../etc").unwrap());
        assert!(a.starts_with("topology-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, b);
        assert!(!c.contains('/') && !c.starts_with('.'), "{c}");
    }
}
