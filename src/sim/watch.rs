//! Watch: a chunked stream of JSON events from a resourceVersion, with selector transitions, BOOKMARKs,
//! initial events, timeouts, and `410 Expired` for versions older than the retained history.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio::time::Instant;

use super::codec::error_response;
use super::request::{ListQuery, Target};
use super::status::ApiError;
use super::store::{Event, EventType};
use super::{Shared, partial, table};

struct Filter {
    target: Target,
    query: ListQuery,
    table: bool,
    full: bool,
    /// `as=PartialObjectMetadata`: events carry only the objects' metadata.
    metadata_only: bool,
}

impl Filter {
    fn selects(&self, obj: &Value) -> bool {
        self.query.labels.matches(obj["metadata"]["labels"].as_object()) && self.query.fields.matches(obj)
    }

    /// What a watcher with this filter sees for one store event, if anything.
    fn view(&self, ev: &Event) -> Option<Bytes> {
        if ev.key != self.target.info.key() {
            return None;
        }
        if let Some(ns) = &self.target.namespace {
            if &ev.namespace != ns {
                return None;
            }
        }
        let now = self.selects(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.selects(p));
        let kind = match ev.kind {
            EventType::Added if now => "ADDED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            EventType::Modified if before => "DELETED",
            EventType::Deleted if before || now => "DELETED",
            _ => return None,
        };
        Some(self.line(kind, &ev.object))
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.target.info.api_version());
        o["kind"] = json!(self.target.info.kind);
        let object = if self.table {
            table::to_table(&self.target.info, &o, self.full)
        } else if self.metadata_only {
            partial::object(&o)
        } else {
            o
        };
        encode(kind, &object)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = if self.metadata_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
        } else {
            json!({"kind": self.target.info.kind, "apiVersion": self.target.info.api_version(), "metadata": meta})
        };
        encode("BOOKMARK", &object)
    }
}

fn encode(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn expired(message: &str) -> Bytes {
    encode("ERROR", &ApiError::gone(message).body())
}

struct Stream {
    pending: VecDeque<Bytes>,
    rx: Option<Receiver<Arc<Event>>>,
    filter: Filter,
    deadline: Instant,
    bookmarks: Option<tokio::time::Interval>,
    last_rv: u64,
    cancel: tokio_util::sync::CancellationToken,
}

pub(crate) fn start(
    shared: Arc<Shared>,
    target: Target,
    query: ListQuery,
    q: &HashMap<String, String>,
    table: bool,
    metadata_only: bool,
) -> Response {
    let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
    let bookmarks_allowed = flag("allowWatchBookmarks");
    let send_initial = flag("sendInitialEvents");
    if send_initial && !bookmarks_allowed {
        return error_response(&ApiError::invalid("ListOptions", "meta.k8s.io", "", vec![("sendInitialEvents".into(), "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and allowWatchBookmarks is set".into())]));
    }
    let timeout = match q.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => Duration::from_secs(1800),
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Duration::from_secs(n.min(24 * 3600)),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "timeoutSeconds: invalid value {s:?}"
                )));
            }
        },
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let from_rv = match rv_param.as_str() {
        "" | "0" => None,
        s => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "resourceVersion: invalid value {s:?}"
                )));
            }
        },
    };
    let filter = Filter {
        target,
        query,
        table,
        full: q.get("includeObject").is_some_and(|v| v == "Object"),
        metadata_only,
    };
    let mut pending = VecDeque::new();
    let (rx, last_rv) = {
        let g = shared.lock();
        let rx = g.store.subscribe();
        let current = g.store.current_rv();
        match from_rv.filter(|_| !send_initial) {
            None => {
                for obj in g
                    .store
                    .list(&filter.target.info.key(), filter.target.namespace.as_deref())
                {
                    if filter.selects(obj) {
                        pending.push_back(filter.line("ADDED", obj));
                    }
                }
                if send_initial {
                    pending.push_back(filter.bookmark(current, true));
                }
                (Some(rx), current)
            }
            Some(rv) => match g.store.events_since(rv) {
                Ok(events) => {
                    pending.extend(events.iter().filter_map(|e| filter.view(e)));
                    (Some(rx), current)
                }
                Err(too_old) => {
                    pending.push_back(expired(&format!(
                        "too old resource version: {rv} ({})",
                        too_old.oldest.saturating_sub(1)
                    )));
                    (None, current)
                }
            },
        }
    };
    let bookmarks = bookmarks_allowed.then(|| {
        let mut i = tokio::time::interval_at(
            Instant::now() + shared.bookmark_interval,
            shared.bookmark_interval,
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let st = Stream {
        pending,
        rx,
        filter,
        deadline: Instant::now() + timeout,
        bookmarks,
        last_rv,
        cancel: shared.cancel.clone(),
    };
    let stream = futures::stream::unfold(st, next);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

async fn next(mut st: Stream) -> Option<(Result<Bytes, std::convert::Infallible>, Stream)> {
    if let Some(b) = st.pending.pop_front() {
        return Some((Ok(b), st));
    }
    loop {
        let rx = st.rx.as_mut()?;
        let bookmark = async {
            match st.bookmarks.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = st.cancel.cancelled() => return None,
            _ = tokio::time::sleep_until(st.deadline) => return None,
            _ = bookmark => {
                let b = st.filter.bookmark(st.last_rv, false);
                return Some((Ok(b), st));
            }
            r = rx.recv() => match r {
                Ok(ev) => {
                    st.last_rv = ev.rv;
                    if let Some(b) = st.filter.view(&ev) {
                        return Some((Ok(b), st));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    st.rx = None;
                    let b = expired("too old resource version: the watcher fell behind");
                    return Some((Ok(b), st));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
