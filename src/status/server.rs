//! The daemon's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/status`, and the Git webhook.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

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

/// A bound listener; `serve` runs it until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> Result<Self, StatusError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StatusError::Listen { addr, source })?;
        Ok(Self { listener })
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
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| StatusError::Listen { addr, source })
    }
}
