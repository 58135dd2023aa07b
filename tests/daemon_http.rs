//! The daemon's HTTP port survives its clients: idle and slow-header connections neither starve
//! `/healthz` nor hold descriptors past the header deadline. Drives the real binary (`keelson run --sim`)
//! and counts the connections that process holds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Mirrors `ServerLimits::default()`: what the test may expect of an unconfigured daemon.
const MAX_CONNECTIONS: usize = 256;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn small_topology(dir: &Path) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: demo\nspec:\n  namespace: demo\n  \
         images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("services/cache.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: memcached\n  \
         ports:\n  - name: memcached\n    port: 11211\n",
    )
    .unwrap();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "cache"]);
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Connections to `port` that process `pid` holds open: its sockets whose local end is the listening port,
/// the listener itself left out. Other descriptors of the daemon (its API client, Git cache) do not count.
fn held_connections(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the daemon's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut held = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A is LISTEN.
            if local_port == Some(port) && *state != "0A" && inodes.contains(*inode) {
                held += 1;
            }
        }
    }
    held
}

/// One `GET /healthz` on a fresh connection; the time it took and the status line.
fn healthz(addr: SocketAddr) -> std::io::Result<(Duration, String)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: keelson\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default().to_string();
    Ok((started.elapsed(), status))
}

#[test]
fn idle_and_slow_header_connections_neither_starve_healthz_nor_keep_their_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    small_topology(&repo);
    let addr = free_port();
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["run", "--sim", "--interval", "1h", "--listen", &addr.to_string()])
            .arg("--repo")
            .arg(&repo)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .env("KEELSON_LOG", "warn")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keelson run --sim"),
    );
    let pid = daemon.0.id();
    let started = Instant::now();
    while !matches!(healthz(addr), Ok((_, ref s)) if s.contains("200")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon never served /healthz"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = addr.port();

    // Four times the connection limit of clients that never send a byte, and some that send headers
    // one byte at a time and never finish.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS * 4 {
        idle.push(TcpStream::connect(addr).expect("connect an idle client"));
    }
    let mut slow = Vec::new();
    for _ in 0..32 {
        let mut stream = TcpStream::connect(addr).expect("connect a slow client");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: k").unwrap();
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));

    let (took, status) = healthz(addr).expect("/healthz while the port is crowded");
    assert!(status.contains("200"), "{status}");
    assert!(
        took < Duration::from_secs(3),
        "/healthz took {took:?} while the port was crowded"
    );
    let held = held_connections(pid, port);
    assert!(
        held <= MAX_CONNECTIONS,
        "the daemon holds {held} connections with {} clients connected (limit {MAX_CONNECTIONS})",
        idle.len() + slow.len()
    );

    // The slow clients keep trickling, the idle ones keep their sockets open: the server lets go of both
    // once the header deadline passes.
    let deadline = Instant::now() + HEADER_READ_TIMEOUT + Duration::from_secs(3);
    while Instant::now() < deadline {
        for stream in &mut slow {
            let _ = stream.write_all(b"x");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let after = held_connections(pid, port);
    assert_eq!(
        after, 0,
        "connections the daemon holds after the header deadline, while clients keep theirs"
    );
    let mut closed = 0;
    for stream in slow.iter_mut().chain(idle.iter_mut()) {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 256];
        // A closed connection reads EOF (or a reset, or a 408 before it): anything but a timeout.
        match stream.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            _ => closed += 1,
        }
    }
    assert_eq!(
        closed,
        slow.len() + idle.len(),
        "every crowding connection was closed by the server"
    );
    let (_, status) = healthz(addr).expect("/healthz afterwards");
    assert!(status.contains("200"), "{status}");
}
