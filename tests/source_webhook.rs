//! The push webhook over real HTTP, wired to a real poller on a real repository.

mod source_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keelson::source::webhook::{WEBHOOK_PATH, WebhookConfig, router};
use keelson::source::{GitSource, GitSourceConfig};
use source_support::Repo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const SECRET: &str = "webhook-shared-secret";

struct Harness {
    addr: std::net::SocketAddr,
    polls: Arc<AtomicU64>,
    _tmp: tempfile::TempDir,
}

/// A webhook endpoint whose wake-ups drive polls of a real source, as the daemon will wire it.
async fn harness(max_body: usize) -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let remote = Repo::init(tmp.path().join("remote"));
    remote.commit(&[("keelson.yaml", "kind: Topology\n")], "A");
    let mut config = GitSourceConfig::new(remote.file_url(), "main");
    config.cache_dir = tmp.path().join("cache");
    let mut source = GitSource::new(config).unwrap();

    let secret_file = tmp.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let mut hook = WebhookConfig::from_secret_file(&secret_file, "main").unwrap();
    hook.max_body_bytes = max_body;
    let wake = Arc::new(Notify::new());
    let polls = Arc::new(AtomicU64::new(0));
    let (w, p) = (wake.clone(), polls.clone());
    tokio::spawn(async move {
        loop {
            w.notified().await;
            source.poll().await.unwrap();
            p.fetch_add(1, Ordering::SeqCst);
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(hook, wake)).await.unwrap() });
    Harness {
        addr,
        polls,
        _tmp: tmp,
    }
}

fn hmac_hex(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plain HTTP/1.1 POST; returns the status code.
async fn post(addr: std::net::SocketAddr, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (413) before reading an oversize body; a failed write is then expected.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn wait_for_polls(h: &Harness, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.polls.load(Ordering::SeqCst) < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give a wrongly doubled wake-up the time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.polls.load(Ordering::SeqCst), want);
}

const PUSH_MAIN: &[u8] = br#"{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_signatures_trigger_exactly_one_poll_each() {
    let h = harness(64 * 1024).await;
    let github = [
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(PUSH_MAIN))),
    ];
    assert_eq!(post(h.addr, &github, PUSH_MAIN).await, 202);
    wait_for_polls(&h, 1).await;

    let gitlab = [
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", SECRET.to_string()),
    ];
    assert_eq!(post(h.addr, &gitlab, PUSH_MAIN).await, 202);
    wait_for_polls(&h, 2).await;

    let gitea = [
        ("X-Gitea-Event", "push".to_string()),
        ("X-Gitea-Signature", hmac_hex(PUSH_MAIN)),
    ];
    assert_eq!(post(h.addr, &gitea, PUSH_MAIN).await, 202);
    wait_for_polls(&h, 3).await;

    // Authentic, but nothing to poll for: a ping, and a push to another branch.
    let ping = [
        ("X-GitHub-Event", "ping".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(b"{}"))),
    ];
    assert_eq!(post(h.addr, &ping, b"{}").await, 200);
    let other = br#"{"ref":"refs/heads/feature"}"#;
    let push_other = [
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(other))),
    ];
    assert_eq!(post(h.addr, &push_other, other).await, 200);
    wait_for_polls(&h, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_signatures_get_401_and_oversize_bodies_413_without_a_poll() {
    let h = harness(1024).await;
    let event = ("X-GitHub-Event", "push".to_string());
    type Headers = Vec<(&'static str, String)>;
    let rows: Vec<(Headers, Vec<u8>, u16)> = vec![
        (vec![event.clone()], PUSH_MAIN.to_vec(), 401),
        (
            vec![event.clone(), ("X-Hub-Signature-256", "sha256=00".into())],
            PUSH_MAIN.to_vec(),
            401,
        ),
        // Signed for another body: a tampered payload.
        (
            vec![
                event.clone(),
                ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(b"{}"))),
            ],
            PUSH_MAIN.to_vec(),
            401,
        ),
        (
            vec![
                ("X-Gitlab-Event", "Push Hook".into()),
                ("X-Gitlab-Token", "guess".into()),
            ],
            PUSH_MAIN.to_vec(),
            401,
        ),
        (
            vec![
                ("X-Gitea-Event", "push".into()),
                ("X-Gitea-Signature", "zz".into()),
            ],
            PUSH_MAIN.to_vec(),
            401,
        ),
    ];
    for (headers, body, want) in rows {
        assert_eq!(post(h.addr, &headers, &body).await, want, "{headers:?}");
    }
    let mut big = br#"{"ref":"refs/heads/main","padding":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 4096));
    big.extend(br#""}"#);
    let signed = [
        event.clone(),
        ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(&big))),
    ];
    assert_eq!(post(h.addr, &signed, &big).await, 413);
    wait_for_polls(&h, 0).await;
}
