//! The daemon's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/status`, and the Git webhook.
//!
//! The port is reachable from the cluster network (and the webhook from outside), so the server must keep
//! answering kubelet's probes whatever other clients do: headers must arrive within a deadline (which also
//! closes idle keep-alive connections), a request must be handled within a deadline, and the number of
//! open connections is bounded. At the bound, the connection idle the longest is closed to make room; a
//! new connection is refused only when every open one is in the middle of a request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::{Shared, StatusError};

/// The router over `shared`, with `extra` (the webhook router) merged in.
pub fn router(shared: Arc<Shared>, extra: Option<Router>) -> Router {
    let own = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(shared);
    match extra {
        Some(extra) => own.merge(extra),
        None => own,
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no pass has succeeded yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.status()).into_response()
}

/// What one client may cost the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, counted from the connection's start or from the
    /// previous response: bounds slow-header clients and idle keep-alive connections alike.
    pub header_read_timeout: Duration,
    /// Time to handle one request, reading its body included.
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// On shutdown, time the requests in progress get to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A bound listener; `serve` runs it until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
    limits: ServerLimits,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> Result<Self, StatusError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StatusError::Listen { addr, source })?;
        Ok(Self {
            listener,
            limits: ServerLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> Result<SocketAddr, StatusError> {
        self.listener.local_addr().map_err(|source| StatusError::Listen {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }

    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StatusError> {
        let addr = self.local_addr()?;
        let limits = self.limits;
        let connections = Arc::new(Connections::default());
        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of descriptors or a connection reset before accept: the listener itself is fine.
                    Err(error) => {
                        tracing::warn!(%addr, %error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if connections.len() >= limits.max_connections && !connections.close_longest_idle() {
                tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; refusing");
                drop(stream);
                continue;
            }
            let (id, in_flight) = connections.open();
            let service = Tracked {
                router: router.clone(),
                in_flight,
                request_timeout: limits.request_timeout,
            };
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            let done = connections.clone();
            let task = tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended");
                }
                done.close(id);
            });
            connections.set_abort(id, task.abort_handle());
        }
        drop(self.listener);
        if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(%addr, "requests still running at shutdown; closing their connections");
        }
        connections.close_all();
        Ok(())
    }
}

/// The open connections, each with its number of requests in progress and the time it last finished one.
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Connection>>,
}

struct Connection {
    in_flight: Arc<InFlight>,
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct InFlight {
    requests: AtomicUsize,
    /// Milliseconds since the connection opened at which it last became idle.
    idle_since_ms: AtomicU64,
    opened: OnceInstant,
}

/// An `Instant` fixed at construction (so that `InFlight` can derive `Default`).
struct OnceInstant(Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl InFlight {
    fn idle_since(&self) -> Instant {
        self.opened.0 + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }
}

impl Connections {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.map().len()
    }

    fn open(&self) -> (u64, Arc<InFlight>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(InFlight::default());
        self.map().insert(
            id,
            Connection {
                in_flight: in_flight.clone(),
                abort: None,
            },
        );
        (id, in_flight)
    }

    /// Called right after spawning; a connection that already ended is no longer in the map.
    fn set_abort(&self, id: u64, abort: AbortHandle) {
        if let Some(connection) = self.map().get_mut(&id) {
            connection.abort = Some(abort);
        }
    }

    fn close(&self, id: u64) {
        self.map().remove(&id);
    }

    /// Closes the connection that has been without a request the longest; `false` when every connection is
    /// serving one. Dropping an idle connection's task loses nothing: no handler runs on it.
    fn close_longest_idle(&self) -> bool {
        let mut map = self.map();
        let victim = map
            .iter()
            .filter(|(_, c)| c.abort.is_some() && c.in_flight.requests.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.in_flight.idle_since())
            .map(|(id, _)| *id);
        let Some(connection) = victim.and_then(|id| map.remove(&id)) else {
            return false;
        };
        if let Some(abort) = connection.abort {
            abort.abort();
        }
        true
    }

    fn close_all(&self) {
        for (_, connection) in self.map().drain() {
            if let Some(abort) = connection.abort {
                abort.abort();
            }
        }
    }
}

/// The router as a hyper service that counts its requests in progress and bounds each one's time.
#[derive(Clone)]
struct Tracked {
    router: Router,
    in_flight: Arc<InFlight>,
    request_timeout: Duration,
}

/// Marks a request finished however its future ends (completed, timed out, or dropped with the connection).
struct RequestGuard(Arc<InFlight>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let idle_at = self.0.opened.0.elapsed().as_millis();
        self.0
            .idle_since_ms
            .store(u64::try_from(idle_at).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.0.requests.fetch_sub(1, Ordering::Release);
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.in_flight.requests.fetch_add(1, Ordering::Acquire);
        let guard = RequestGuard(self.in_flight.clone());
        let mut router = self.router.clone();
        let limit = self.request_timeout;
        Box::pin(async move {
            let _guard = guard;
            let handled = tower_service::Service::call(&mut router, request.map(Body::new));
            match tokio::time::timeout(limit, handled).await {
                Ok(response) => response,
                Err(_) => Ok((
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request not completed within {}\n",
                        humantime::format_duration(limit)
                    ),
                )
                    .into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_longest_idle_connection_is_closed_first_and_busy_ones_never() {
        let connections = Connections::default();
        {
            let mut ids = Vec::new();
            for idle_ms in [300, 100, 200] {
                let (id, in_flight) = connections.open();
                in_flight.idle_since_ms.store(idle_ms, Ordering::Relaxed);
                let task = tokio::spawn(std::future::pending::<()>());
                connections.set_abort(id, task.abort_handle());
                ids.push((id, in_flight, task));
            }
            ids[1].1.requests.store(1, Ordering::Release);
            // id 1 idles since 100 ms but is busy: id 2 (idle since 200 ms) goes first, then id 0.
            assert!(connections.close_longest_idle());
            assert!(!connections.map().contains_key(&ids[2].0));
            assert!(connections.close_longest_idle());
            assert!(!connections.map().contains_key(&ids[0].0));
            assert!(!connections.close_longest_idle(), "the busy connection stays");
            assert_eq!(connections.len(), 1);
            tokio::task::yield_now().await;
            assert!(ids[2].2.is_finished() && ids[0].2.is_finished());
            assert!(!ids[1].2.is_finished());
        }
    }
}
