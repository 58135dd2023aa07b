//! Push webhooks from GitHub, GitLab and Gitea: authenticate, check the ref, wake the poller.
//!
//! A valid hook only triggers a poll. Nothing in the payload (sha, files) is trusted: the poll asks the remote
//! itself, so a forged or replayed hook can at worst cost one cheap ref lookup.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq as _;
use tokio::sync::Notify;

use super::{Secret, SourceError};

/// Where [`router`] mounts the endpoint.
pub const WEBHOOK_PATH: &str = "/hooks/git";
/// Push payloads are small; GitHub caps them at 25 MB but only enormous pushes come near 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The shared secret and the ref pushes must touch to trigger a poll.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secret: Secret,
    /// The tracked ref as configured (`main`, `refs/tags/v1`, `HEAD`, or a commit sha).
    pub tracked_ref: String,
    pub max_body_bytes: usize,
}

impl WebhookConfig {
    pub fn new(secret: Secret, tracked_ref: impl Into<String>) -> Self {
        Self {
            secret,
            tracked_ref: tracked_ref.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Reads the shared secret from a file (a mounted Secret).
    pub fn from_secret_file(path: &Path, tracked_ref: impl Into<String>) -> Result<Self, SourceError> {
        Ok(Self::new(Secret::from_file(path)?, tracked_ref))
    }
}

/// `POST /hooks/git`: 202 and one wake-up for an authentic push to the tracked ref; 200 for authentic
/// events that need no poll; 401 for a missing or wrong signature; 413 for an oversize body.
pub fn router(config: WebhookConfig, wake: Arc<Notify>) -> Router {
    let state = Arc::new(HookState { config, wake });
    Router::new().route(WEBHOOK_PATH, post(handle)).with_state(state)
}

struct HookState {
    config: WebhookConfig,
    wake: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

async fn handle(State(state): State<Arc<HookState>>, headers: HeaderMap, body: Body) -> Response {
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "webhook: body too large\n").into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "webhook: body too large or unreadable\n",
        )
            .into_response();
    };
    let Some(provider) = authenticate(&headers, &body, state.config.secret.expose().as_bytes()) else {
        tracing::warn!("webhook: rejected a request with a missing or wrong signature");
        return (
            StatusCode::UNAUTHORIZED,
            "webhook: missing or invalid signature\n",
        )
            .into_response();
    };
    match event_kind(provider, &headers) {
        Event::Push => {}
        Event::Ping => return (StatusCode::OK, "webhook: pong\n").into_response(),
        Event::Other => return (StatusCode::OK, "webhook: event ignored\n").into_response(),
    }
    let pushed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("ref").and_then(|r| r.as_str()).map(str::to_string));
    let Some(pushed) = pushed else {
        return (
            StatusCode::BAD_REQUEST,
            "webhook: push payload without a \"ref\"\n",
        )
            .into_response();
    };
    if !ref_matches(&state.config.tracked_ref, &pushed) {
        tracing::debug!(?provider, pushed = %pushed, "webhook: push to another ref ignored");
        return (StatusCode::OK, "webhook: push to another ref ignored\n").into_response();
    }
    tracing::info!(?provider, pushed = %pushed, "webhook: push to the tracked ref, polling");
    state.wake.notify_one();
    (StatusCode::ACCEPTED, "webhook: poll scheduled\n").into_response()
}

/// Checks whichever signature the provider sends. Gitea also sends GitHub's header, so its own is checked first.
fn authenticate(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Option<Provider> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let hmac_ok = |hex: &str| decode_hex(hex).is_some_and(|tag| ring::hmac::verify(&key, body, &tag).is_ok());
    if let Some(signature) = header("x-gitea-signature") {
        return hmac_ok(signature).then_some(Provider::Gitea);
    }
    if let Some(signature) = header("x-hub-signature-256") {
        let hex = signature.strip_prefix("sha256=")?;
        return hmac_ok(hex).then_some(Provider::GitHub);
    }
    if let Some(token) = header("x-gitlab-token") {
        // GitLab sends the secret itself; compare without leaking how much of it matched.
        let equal: bool = token.as_bytes().ct_eq(secret).into();
        return (equal && !secret.is_empty()).then_some(Provider::GitLab);
    }
    None
}

enum Event {
    Push,
    Ping,
    Other,
}

fn event_kind(provider: Provider, headers: &HeaderMap) -> Event {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    match provider {
        Provider::GitHub => match header("x-github-event") {
            "push" => Event::Push,
            "ping" => Event::Ping,
            _ => Event::Other,
        },
        Provider::Gitea => match header("x-gitea-event") {
            "push" => Event::Push,
            _ => Event::Other,
        },
        Provider::GitLab => match header("x-gitlab-event") {
            "Push Hook" | "Tag Push Hook" => Event::Push,
            _ => Event::Other,
        },
    }
}

/// Whether a push to `pushed` (a full ref name) can move the tracked ref.
fn ref_matches(tracked: &str, pushed: &str) -> bool {
    if tracked == "HEAD" {
        // Which branch HEAD names is the server's business; any branch push may have moved it.
        return pushed.starts_with("refs/heads/");
    }
    if tracked.starts_with("refs/") {
        return tracked == pushed;
    }
    let is_sha =
        (tracked.len() == 40 || tracked.len() == 64) && tracked.bytes().all(|b| b.is_ascii_hexdigit());
    if is_sha {
        // A commit never moves.
        return false;
    }
    pushed.strip_prefix("refs/heads/") == Some(tracked) || pushed.strip_prefix("refs/tags/") == Some(tracked)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        ring::hmac::sign(&key, body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn authenticates_each_provider() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        let bad = sign(b"other", body);
        type Headers = Vec<(&'static str, String)>;
        let rows: Vec<(Headers, Option<Provider>)> = vec![
            (
                vec![("x-hub-signature-256", format!("sha256={good}"))],
                Some(Provider::GitHub),
            ),
            (vec![("x-hub-signature-256", format!("sha256={bad}"))], None),
            (vec![("x-hub-signature-256", good.clone())], None),
            (vec![("x-hub-signature-256", "sha256=zz".into())], None),
            (vec![("x-gitea-signature", good.clone())], Some(Provider::Gitea)),
            (
                vec![
                    ("x-gitea-signature", bad.clone()),
                    ("x-hub-signature-256", format!("sha256={good}")),
                ],
                None,
            ),
            (vec![("x-gitlab-token", "s3cret".into())], Some(Provider::GitLab)),
            (vec![("x-gitlab-token", "s3cre".into())], None),
            (vec![("x-gitlab-token", "".into())], None),
            (vec![], None),
        ];
        for (pairs, want) in rows {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            assert_eq!(authenticate(&headers, body, b"s3cret"), want, "{pairs:?}");
        }
    }

    #[test]
    fn matches_refs() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let rows = [
            ("main", "refs/heads/main", true),
            ("main", "refs/tags/main", true),
            ("main", "refs/heads/main2", false),
            ("main", "refs/heads/feature", false),
            ("refs/heads/main", "refs/heads/main", true),
            ("refs/tags/v1", "refs/tags/v2", false),
            ("HEAD", "refs/heads/anything", true),
            ("HEAD", "refs/tags/v1", false),
            (sha, "refs/heads/main", false),
        ];
        for (tracked, pushed, want) in rows {
            assert_eq!(ref_matches(tracked, pushed), want, "{tracked} {pushed}");
        }
    }

    #[test]
    fn decodes_hex() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é0"), None);
    }
}
