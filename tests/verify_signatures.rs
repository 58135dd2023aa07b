//! `--verify-signatures`: commits signed with real `git commit -S` (SSH keys from `ssh-keygen`, OpenPGP keys
//! from `gpg`), verified by the built binary. Unsigned, forged and unknown-key commits are refused with the
//! key's fingerprint; a force-push to an unsigned commit changes nothing in the cluster; a signed commit after
//! it proceeds; a revert must be signed like any other commit; `tag` mode takes a signed tag.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

const TOPOLOGY: &str =
    "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: signed\nspec:\n  namespace: signed\n";

fn service(image_tag: &str) -> String {
    format!(
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: memcached:{image_tag}\n  \
         replicas: 1\n  ports:\n  - name: memcached\n    port: 11211\n"
    )
}

/// ssh-keygen and gpg make the keys and signatures; a CI machine must have both.
fn tools_present() -> bool {
    let found = |tool: &str, arg: &str| Command::new(tool).arg(arg).output().is_ok();
    let missing: Vec<&str> = [("ssh-keygen", "-?"), ("gpg", "--version")]
        .into_iter()
        .filter(|(t, a)| !found(t, a))
        .map(|(t, _)| t)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let note = format!(
        "missing {}; run scripts/install-test-tools.sh",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("signature tests: {note}");
    }
    eprintln!("skipping signature tests: {note}");
    false
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// A repository whose git signs with SSH keys (`gpg.format=ssh`) or with gpg from its own GNUPGHOME.
struct Repo {
    path: PathBuf,
    gnupg: PathBuf,
}

impl Repo {
    fn new(dir: &Path) -> Repo {
        let path = dir.join("topology");
        let gnupg = dir.join("gnupg");
        std::fs::create_dir_all(path.join("services")).expect("mkdir");
        std::fs::create_dir_all(&gnupg).expect("mkdir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let repo = Repo { path, gnupg };
        repo.git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.path.join("keelson.yaml"), TOPOLOGY).expect("write");
        repo
    }

    fn git_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "user.name=Op", "-c", "user.email=op@example.org"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GNUPGHOME", &self.gnupg);
        command
    }

    fn git(&self, args: &[&str]) -> String {
        run(&mut self.git_command(args))
    }

    /// Writes the service with this image tag and commits it, signed as `signing` says.
    fn commit(&self, tag: &str, message: &str, signing: &Signing) -> String {
        std::fs::write(self.path.join("services/cache.yaml"), service(tag)).expect("write");
        self.git(&["add", "."]);
        let mut args = signing.flags();
        args.extend(["commit", "-q", "--allow-empty", "-m", message].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.git(&args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A copy of HEAD with another message but HEAD's signature: what a forger would have to produce.
    fn forge_head(&self) -> String {
        let raw = self.git(&["cat-file", "commit", "HEAD"]);
        let forged = format!(
            "{}\n",
            raw.replace("Bump cache", "Bump cache, and something else")
        );
        assert!(forged.contains("gpgsig"), "HEAD is signed");
        let mut command = self.git_command(&["hash-object", "-t", "commit", "-w", "--stdin"]);
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = command.spawn().expect("hash-object");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(forged.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("hash-object");
        let sha = text(&out.stdout).trim().to_string();
        self.git(&["update-ref", "refs/heads/main", &sha]);
        sha
    }
}

/// How git signs a commit.
enum Signing {
    None,
    Ssh(PathBuf),
    OpenPgp(String),
}

impl Signing {
    fn flags(&self) -> Vec<String> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Signing::None => v(&["-c", "commit.gpgsign=false"]),
            Signing::Ssh(key) => v(&[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", key.display()),
                "-c",
                "commit.gpgsign=true",
                "-c",
                "tag.gpgsign=true",
            ]),
            Signing::OpenPgp(fingerprint) => v(&[
                "-c",
                "gpg.format=openpgp",
                "-c",
                &format!("user.signingkey={fingerprint}"),
                "-c",
                "commit.gpgsign=true",
                "-c",
                "tag.gpgsign=true",
            ]),
        }
    }
}

/// An ed25519 SSH key made by ssh-keygen; returns (private key path, public key line, `SHA256:` fingerprint).
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let key = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let listing = run(Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub")));
    let fingerprint = listing
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    (key, public.trim().to_string(), fingerprint)
}

/// An ed25519 OpenPGP key made by gpg in the repository's GNUPGHOME; returns (fingerprint, armored public key).
fn gpg_key(repo: &Repo, name: &str) -> (String, String) {
    let uid = format!("{name} <{name}@example.org>");
    let gpg = |args: &[&str]| {
        run(Command::new("gpg")
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .env("GNUPGHOME", &repo.gnupg))
    };
    gpg(&["--quick-generate-key", &uid, "ed25519", "sign", "never"]);
    let listing = gpg(&["--with-colons", "--list-keys", &uid]);
    let fingerprint = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
        .expect("fingerprint");
    (fingerprint, gpg(&["--armor", "--export", &uid]))
}

fn keelson(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .env_remove("KEELSON_LOG")
        .env_remove("KEELSON_NAMESPACE")
        .output()
        .expect("keelson runs")
}

/// `keelson plan --repo PATH --verify-signatures[=mode] --allowed-signers FILE --sim -o json` at `reference`.
fn plan(repo: &Repo, reference: &str, mode: &str, signers: &Path) -> Output {
    keelson(&[
        "plan",
        "--repo",
        &repo.path.to_string_lossy(),
        "--ref",
        reference,
        &format!("--verify-signatures={mode}"),
        "--allowed-signers",
        &signers.to_string_lossy(),
        "--sim",
        "-o",
        "json",
    ])
}

fn refused(out: &Output, commit: &str, detail: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}{}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "nothing is planned: {}", text(&out.stdout));
    let want = format!("commit {} is not signed by an allowed key", &commit[..12]);
    assert!(stderr.contains(&want), "{want:?} in {stderr}");
    assert!(stderr.contains(detail), "{detail:?} in {stderr}");
}

fn signed_by(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    plan["head"]["signedBy"].as_str().unwrap_or_default().to_string()
}

#[test]
fn ssh_signatures_by_allowed_keys_pass_and_unsigned_forged_or_unknown_ones_do_not() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(dir.path());
    let (alice, alice_public, alice_fingerprint) = ssh_key(dir.path(), "alice");
    let (mallory, _, mallory_fingerprint) = ssh_key(dir.path(), "mallory");
    let signers = dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("# who may change the cloud\nalice@example.org namespaces=\"git\" {alice_public}\n"),
    )
    .expect("write");

    let first = repo.commit("1.6", "Cache", &Signing::Ssh(alice.clone()));
    let by = signed_by(&plan(&repo, "main", "head", &signers));
    assert!(
        by.contains("alice@example.org") && by.contains(&alice_fingerprint),
        "{by}"
    );

    let unsigned = repo.commit("1.7", "Bump cache", &Signing::None);
    refused(
        &plan(&repo, "main", "head", &signers),
        &unsigned,
        "carries no signature",
    );

    let unknown = repo.commit("1.7", "Bump cache", &Signing::Ssh(mallory));
    refused(
        &plan(&repo, "main", "head", &signers),
        &unknown,
        &mallory_fingerprint,
    );
    refused(
        &plan(&repo, "main", "head", &signers),
        &unknown,
        "not in the allowed signers",
    );

    repo.commit("1.7", "Bump cache", &Signing::Ssh(alice.clone()));
    let forged = repo.forge_head();
    let out = plan(&repo, "main", "head", &signers);
    refused(&out, &forged, &alice_fingerprint);
    refused(&out, &forged, "does not verify");

    // A key allowed only for another namespace does not sign commits.
    std::fs::write(
        &signers,
        format!("alice@example.org namespaces=\"file\" {alice_public}\n"),
    )
    .expect("write");
    refused(
        &plan(&repo, &first, "head", &signers),
        &first,
        "does not allow namespace \"git\"",
    );
    // A malformed allowed_signers line is an error naming the file, line and field.
    std::fs::write(
        &signers,
        format!("alice@example.org\nbob cert-authority {alice_public}\n"),
    )
    .expect("write");
    let out = plan(&repo, &first, "head", &signers);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:1: key", signers.display())),
        "{stderr}"
    );
}

#[test]
fn openpgp_signatures_by_allowed_keys_pass_and_unsigned_forged_or_unknown_ones_do_not() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(dir.path());
    let (bob, bob_public) = gpg_key(&repo, "bob");
    let (dave, _) = gpg_key(&repo, "dave");
    let signers = dir.path().join("signers.asc");
    std::fs::write(&signers, &bob_public).expect("write");

    repo.commit("1.6", "Cache", &Signing::OpenPgp(bob.clone()));
    let by = signed_by(&plan(&repo, "main", "head", &signers));
    assert!(by.contains("bob <bob@example.org>") && by.contains(&bob), "{by}");

    let unsigned = repo.commit("1.7", "Bump cache", &Signing::None);
    refused(
        &plan(&repo, "main", "head", &signers),
        &unsigned,
        "carries no signature",
    );

    let unknown = repo.commit("1.7", "Bump cache", &Signing::OpenPgp(dave.clone()));
    refused(&plan(&repo, "main", "head", &signers), &unknown, &dave);

    repo.commit("1.7", "Bump cache", &Signing::OpenPgp(bob.clone()));
    let forged = repo.forge_head();
    refused(&plan(&repo, "main", "head", &signers), &forged, "does not verify");
}

#[test]
fn tag_mode_takes_a_signed_annotated_tag_at_the_commit() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(dir.path());
    let (alice, alice_public, _) = ssh_key(dir.path(), "alice");
    let signers = dir.path().join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.org {alice_public}\n")).expect("write");
    let release = repo.commit("1.6", "Cache", &Signing::None);
    refused(
        &plan(&repo, "main", "head", &signers),
        &release,
        "carries no signature",
    );
    let mut tag = Signing::Ssh(alice).flags();
    tag.extend(["tag", "-s", "-m", "Release 1", "v1"].map(String::from));
    repo.git(&tag.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(signed_by(&plan(&repo, "v1", "tag", &signers)).contains("alice@example.org"));
    // A branch whose tip carries the signed tag passes too.
    assert!(signed_by(&plan(&repo, "main", "tag", &signers)).contains("alice@example.org"));
    // An unsigned annotated tag on the next commit does not.
    let next = repo.commit("1.7", "Bump cache", &Signing::None);
    repo.git(&["tag", "-a", "-m", "Release 2", "v2"]);
    let out = plan(&repo, "main", "tag", &signers);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tag v2 is not signed by an allowed key: it carries no signature"),
        "{}",
        text(&out.stderr)
    );
    let _ = next;
}

#[test]
fn plan_base_names_the_signer_of_head_and_refuses_an_unsigned_head() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(dir.path());
    let (alice, alice_public, fingerprint) = ssh_key(dir.path(), "alice");
    let signers = dir.path().join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.org {alice_public}\n")).expect("write");
    repo.commit("1.6", "Cache", &Signing::None);
    repo.commit("1.7", "Bump cache", &Signing::Ssh(alice));
    let signers = signers.to_string_lossy().into_owned();
    let path = repo.path.to_string_lossy().into_owned();
    let args = [
        "plan",
        path.as_str(),
        "--base",
        "HEAD~1",
        "--verify-signatures",
        "--allowed-signers",
        signers.as_str(),
        "-o",
        "markdown",
    ];
    let out = keelson(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(
        md.contains(&format!("signed by alice@example.org (SSH key {fingerprint})")),
        "{md}"
    );
    let unsigned = repo.commit("1.8", "Bump cache again", &Signing::None);
    refused(&keelson(&args), &unsigned, "carries no signature");
}

/// The simulated cluster the applies talk to, kept across them, and its kubeconfig file.
struct Cluster {
    _sim: keelson::sim::Cluster,
    kubeconfig: PathBuf,
    client: kube::Client,
}

async fn cluster(dir: &Path) -> Cluster {
    let sim = keelson::sim::Cluster::start(keelson::sim::SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: Duration::from_millis(100),
        ..keelson::sim::SimOptions::default()
    })
    .await
    .expect("simulator");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml::to_string(&sim.kubeconfig()).expect("yaml"),
    )
    .expect("write");
    let config =
        kube::Config::from_custom_kubeconfig(sim.kubeconfig(), &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    Cluster {
        _sim: sim,
        kubeconfig,
        client,
    }
}

/// The revision stamped on the cache Deployment, if it exists.
async fn applied_revision(client: &kube::Client) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "signed");
    let deployment = api.get_opt("cache").await.expect("read deployment")?;
    deployment
        .metadata
        .annotations?
        .get("keelson.dev/revision")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_to_an_unsigned_commit_changes_nothing_and_a_later_signed_commit_proceeds() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(dir.path());
    let (alice, alice_public, _) = ssh_key(dir.path(), "alice");
    let env = cluster(dir.path()).await;
    // The allowed signers live in a Secret in Keelson's namespace.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(env.client.clone());
    let namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "keelson-system"}})).expect("ns");
    namespaces
        .create(&Default::default(), &namespace)
        .await
        .expect("namespace");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), "keelson-system");
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "keelson-signers"},
        "stringData": {"allowed_signers": format!("alice@example.org {alice_public}\n")}
    }))
    .expect("secret");
    secrets
        .create(&Default::default(), &secret)
        .await
        .expect("secret");

    let origin = dir.path().join("origin.git");
    run(Command::new("git").args(["init", "-q", "--bare"]).arg(&origin));
    repo.git(&["remote", "add", "origin", &origin.to_string_lossy()]);
    let url = format!("file://{}", origin.display());
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let kubeconfig = env.kubeconfig.to_string_lossy().into_owned();
    let apply = move || {
        let (url, cache, kubeconfig) = (url.clone(), cache.clone(), kubeconfig.clone());
        tokio::task::spawn_blocking(move || {
            keelson(&[
                "apply",
                "--repo",
                &url,
                "--ref",
                "main",
                "--cache-dir",
                &cache,
                "--kubeconfig",
                &kubeconfig,
                "--verify-signatures",
                "--allowed-signers",
                "secret/keelson-signers/allowed_signers",
            ])
        })
    };

    let signed = repo.commit("1.6", "Cache", &Signing::Ssh(alice.clone()));
    repo.git(&["push", "-q", "origin", "main"]);
    let out = apply().await.expect("apply");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("signed by alice@example.org"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        applied_revision(&env.client).await.as_deref(),
        Some(signed.as_str())
    );

    // Someone rewrites main to an unsigned commit: nothing is applied, the verified revision stays.
    repo.git(&["reset", "-q", "--hard", "HEAD"]);
    let rewritten = repo.commit("1.7", "Bump cache", &Signing::None);
    repo.git(&[
        "commit",
        "-q",
        "--amend",
        "--no-gpg-sign",
        "-m",
        "Bump cache (rewritten)",
    ]);
    let rewritten_sha = repo.git(&["rev-parse", "HEAD"]);
    assert_ne!(rewritten, rewritten_sha);
    repo.git(&["push", "-q", "--force", "origin", "main"]);
    let out = apply().await.expect("apply");
    refused(&out, &rewritten_sha, "carries no signature");
    assert_eq!(
        applied_revision(&env.client).await.as_deref(),
        Some(signed.as_str())
    );

    // An unsigned revert is refused like any other commit; a signed one proceeds.
    repo.git(&["-c", "commit.gpgsign=false", "revert", "--no-edit", "HEAD"]);
    let revert = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["push", "-q", "origin", "main"]);
    refused(&apply().await.expect("apply"), &revert, "carries no signature");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let mut args = Signing::Ssh(alice.clone()).flags();
    args.extend(["revert", "--no-edit", "HEAD"].map(String::from));
    repo.git(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let signed_revert = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["push", "-q", "--force", "origin", "main"]);
    let out = apply().await.expect("apply");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // The revert renders what the cluster runs (the verified revision): it is planned, and nothing changes.
    assert!(
        stdout.contains(&format!("revision {}", &signed_revert[..12])),
        "{stdout}"
    );
    assert!(stdout.contains("0 to create, 0 to update"), "{stdout}");
    let next = repo.commit("1.8", "Cache 1.8", &Signing::Ssh(alice));
    repo.git(&["push", "-q", "origin", "main"]);
    let out = apply().await.expect("apply");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        applied_revision(&env.client).await.as_deref(),
        Some(next.as_str())
    );
}
