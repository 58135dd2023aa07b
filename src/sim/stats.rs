//! The request log and counters by verb and resource, for tests and benchmarks to assert on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// One API request the server answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    /// Time since the cluster started.
    pub at: Duration,
    pub method: String,
    /// get|list|watch|create|update|patch|delete|deletecollection
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub field_manager: Option<String>,
    /// The client's `User-Agent` header: tells apart the writers of a test with several clients.
    pub user_agent: Option<String>,
    pub dry_run: bool,
    /// HTTP status answered; 0 when the connection was dropped on purpose.
    pub status: u16,
    /// The authenticated user (`system:anonymous` without credentials; empty when authentication failed).
    pub user: String,
    /// The `Warning` headers of the answer (unknown fields dropped, for example).
    pub warnings: Vec<String>,
    /// Every verb the authorizer allowed for this request: its own verb first, then `create` for a
    /// server-side apply that made a new object (kube-apiserver asks for both). Empty when refused at
    /// the door (401, 403 on the request's own verb).
    pub authorized: Vec<String>,
}

impl RequestRecord {
    /// A write that changed (or tried to change) stored state: not a read, not a dry run.
    pub fn is_write(&self) -> bool {
        !self.dry_run
            && matches!(
                self.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
    }
}

/// Counters since start (they survive `clear_request_log`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// All API requests (discovery and OpenAPI included).
    pub requests: u64,
    /// Requests against resources (everything with a verb).
    pub resource_requests: u64,
    /// Writes as `RequestRecord::is_write` counts them.
    pub writes: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// resource ("deployments.apps", "pods") -> verb -> count.
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    /// Responses by HTTP status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests failed on purpose by fault injection.
    pub injected_faults: u64,
    /// Objects stored right now.
    pub objects: usize,
    /// The current global resourceVersion.
    pub resource_version: u64,
}

pub(crate) struct Recorder {
    inner: Mutex<Inner>,
    cap: usize,
}

struct Inner {
    seq: u64,
    log: VecDeque<RequestRecord>,
    stats: Stats,
}

impl Recorder {
    pub fn new(cap: usize) -> Self {
        Recorder {
            inner: Mutex::new(Inner {
                seq: 0,
                log: VecDeque::new(),
                stats: Stats::default(),
            }),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn count_plain(&self, status: u16) {
        let mut g = self.lock();
        g.stats.requests += 1;
        *g.stats.by_status.entry(status).or_default() += 1;
    }

    pub fn count_fault(&self) {
        self.lock().stats.injected_faults += 1;
    }

    pub fn record(&self, mut r: RequestRecord) {
        let mut g = self.lock();
        g.seq += 1;
        r.seq = g.seq;
        let s = &mut g.stats;
        s.requests += 1;
        s.resource_requests += 1;
        if r.is_write() {
            s.writes += 1;
        }
        *s.by_verb.entry(r.verb.clone()).or_default() += 1;
        let res = if r.group.is_empty() {
            r.resource.clone()
        } else {
            format!("{}.{}", r.resource, r.group)
        };
        *s.by_resource
            .entry(res)
            .or_default()
            .entry(r.verb.clone())
            .or_default() += 1;
        *s.by_status.entry(r.status).or_default() += 1;
        g.log.push_back(r);
        while g.log.len() > self.cap {
            g.log.pop_front();
        }
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn log(&self) -> Vec<RequestRecord> {
        self.lock().log.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: &str, dry_run: bool) -> RequestRecord {
        RequestRecord {
            user: String::new(),
            warnings: Vec::new(),
            authorized: vec![verb.into()],
            seq: 0,
            at: Duration::ZERO,
            method: "PATCH".into(),
            verb: verb.into(),
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: None,
            namespace: Some("ns".into()),
            name: Some("x".into()),
            field_manager: None,
            user_agent: None,
            dry_run,
            status: 200,
        }
    }

    #[test]
    fn writes_exclude_reads_and_dry_runs() {
        let cases = [
            ("get", false, false),
            ("list", false, false),
            ("watch", false, false),
            ("patch", false, true),
            ("patch", true, false),
            ("create", false, true),
            ("delete", false, true),
            ("deletecollection", false, true),
            ("update", true, false),
        ];
        for (verb, dry, want) in cases {
            assert_eq!(rec(verb, dry).is_write(), want, "{verb} dry={dry}");
        }
    }

    #[test]
    fn counters_and_log() {
        let r = Recorder::new(2);
        r.record(rec("get", false));
        r.record(rec("patch", false));
        r.record(rec("patch", true));
        let s = r.stats();
        assert_eq!(s.writes, 1);
        assert_eq!(s.by_resource["deployments.apps"]["patch"], 2);
        let log = r.log();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].seq, 2);
        r.clear();
        assert!(r.log().is_empty());
        assert_eq!(r.stats().requests, 3);
    }
}
