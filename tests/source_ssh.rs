//! SSH remotes against a real OpenSSH server on loopback: key authentication and known_hosts verification.

mod source_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keelson::source::{GitCredentials, GitSource, GitSourceConfig, PollOutcome, SourceError};
use source_support::{Repo, git};

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
    host_key_pub: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// Starts sshd on a free loopback port, accepting `client_pub` for the current user.
fn start_sshd(dir: &Path, client_pub: &str) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} missing: run scripts/install-test-tools.sh (openssh-server)"
    );
    // sshd refuses to start without its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let host_key_pub = keygen(&dir.join("host_key"));
    std::fs::write(dir.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
         AllowUsers {user}\nLogLevel ERROR\n",
        dir = dir.display(),
        user = whoami(),
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Sshd {
        child,
        port,
        host_key_pub,
    }
}

fn known_hosts(dir: &Path, name: &str, line: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{line}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_key_auth_with_known_hosts_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let client_pub = keygen(&dir.join("client_key"));
    let sshd = start_sshd(dir, &client_pub);

    let work = Repo::init(dir.join("work"));
    let sha = work.commit(&[("keelson.yaml", "kind: Topology\n")], "A");
    let bare = dir.join("topo.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            work.path.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let url = format!("ssh://{}@127.0.0.1:{}{}", whoami(), sshd.port, bare.display());
    let host_key = sshd
        .host_key_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let good = known_hosts(
        dir,
        "known_good",
        &format!("[127.0.0.1]:{} {host_key}", sshd.port),
    );
    // Another key under the server's name: what a man in the middle would present.
    let other_key = client_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let changed = known_hosts(
        dir,
        "known_changed",
        &format!("[127.0.0.1]:{} {other_key}", sshd.port),
    );
    let unknown = known_hosts(dir, "known_unknown", &format!("elsewhere.example {host_key}"));

    let cfg = |known: &Path, key: bool, insecure: bool| {
        let mut config = GitSourceConfig::new(url.clone(), "main");
        config.cache_dir = dir.join("cache");
        config.credentials = GitCredentials {
            ssh_key: key.then(|| dir.join("client_key")),
            known_hosts: Some(known.to_path_buf()),
            insecure_skip_host_key_check: insecure,
            ..Default::default()
        };
        config
    };

    let err = GitSource::new(cfg(&unknown, true, false))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::HostKey { reason, .. } if reason.contains("is not in")),
        "{err}"
    );
    let err = GitSource::new(cfg(&changed, true, false))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::HostKey { reason, .. } if reason.contains("changed")),
        "{err}"
    );
    let err = GitSource::new(cfg(&good, false, false))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err}");

    let mut source = GitSource::new(cfg(&good, true, false)).unwrap();
    match source.poll().await.unwrap() {
        PollOutcome::Changed { snapshot, .. } => assert_eq!(snapshot.revision.id, sha),
        PollOutcome::Unchanged { .. } => panic!("first poll must read"),
    }
    assert!(matches!(
        source.poll().await.unwrap(),
        PollOutcome::Unchanged { .. }
    ));
    assert_eq!(source.last_poll_cost().fetches, 0);

    // Only an explicit opt-out skips the check.
    let mut insecure = GitSource::new(cfg(&unknown, true, true)).unwrap();
    assert!(matches!(
        insecure.poll().await.unwrap(),
        PollOutcome::Changed { .. }
    ));
}
