//! `keelson run`: the in-cluster reconciler. Flags fall back to `KEELSON_*` environment variables, which is
//! how the Deployment in deploy/ and charts/ configures it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::credentials::CredentialArgs;
use super::pass_args::{DecryptArgs, PassArgs};
use super::target::TargetArgs;
use super::verify_args::VerifyArgs;
use super::{EXIT_FAILURE, EXIT_USAGE, runtime};
use crate::cluster;
use crate::reconciler::leader::LeaderConfig;
use crate::reconciler::{Daemon, DaemonConfig};
use crate::source::webhook::WebhookConfig;
use crate::source::{GitSourceConfig, SourceError};
use crate::topology::sync_windows::{SyncWindow, SyncWindows};

#[derive(Clone, Args)]
pub struct RunArgs {
    /// Git remote holding the topology: a path, file://, git://, http(s)://, ssh:// or user@host:path.
    #[arg(long, value_name = "URL", env = "KEELSON_REPO")]
    pub repo: String,
    /// Branch, tag, full ref name or commit sha to follow.
    #[arg(long = "ref", value_name = "REF", env = "KEELSON_REF", default_value = "main")]
    pub reference: String,
    /// Directory inside the repository that holds `keelson.yaml`.
    #[arg(long, value_name = "P", env = "KEELSON_PATH", default_value = "")]
    pub path: String,
    /// Time between polls of the remote (humantime: 30s, 1m, 5m).
    #[arg(long, value_name = "DURATION", env = "KEELSON_INTERVAL", default_value = "1m",
          value_parser = parse_interval)]
    pub interval: Duration,
    /// Time between full re-plans of a converged revision when no new commit and no drift event came
    /// (drift is found from watch events; this is the safety net).
    #[arg(long, value_name = "DURATION", env = "KEELSON_RESYNC_INTERVAL", default_value = "10m",
          value_parser = parse_interval)]
    pub resync_interval: Duration,
    #[command(flatten)]
    pub target: TargetArgs,
    /// With --sim: write a kubeconfig for the simulated cluster here (for kubectl and `keelson status`).
    #[arg(long, value_name = "FILE", requires = "sim")]
    pub sim_kubeconfig_out: Option<PathBuf>,
    /// Keelson's own namespace: lease, status, control object, events. Created when missing.
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        env = "KEELSON_NAMESPACE",
        default_value = "keelson-system"
    )]
    pub namespace: String,
    /// Where the bare cache clone is kept.
    #[arg(long, value_name = "D", env = "KEELSON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// File holding the shared secret of push webhooks; enables POST /hooks/git.
    #[arg(long, value_name = "FILE", env = "KEELSON_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Address of the HTTP server (/healthz, /readyz, /metrics, /status, /hooks/git).
    #[arg(
        long,
        value_name = "ADDR",
        env = "KEELSON_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,
    /// Take part in leader election on a Lease in --namespace; only the leader writes.
    #[arg(long, env = "KEELSON_LEADER_ELECT")]
    pub leader_elect: bool,
    /// How long a Lease holder that stopped renewing keeps it before another replica takes over.
    #[arg(
        long,
        value_name = "DURATION",
        env = "KEELSON_LEASE_DURATION",
        default_value = "15s",
        value_parser = parse_lease_time
    )]
    pub lease_duration: Duration,
    /// How long the leader keeps writing while it cannot renew the Lease; shorter than --lease-duration.
    #[arg(
        long,
        value_name = "DURATION",
        env = "KEELSON_RENEW_DEADLINE",
        default_value = "10s",
        value_parser = parse_lease_time
    )]
    pub renew_deadline: Duration,
    /// Time between Lease renewals and acquisition attempts; shorter than --renew-deadline.
    #[arg(
        long,
        value_name = "DURATION",
        env = "KEELSON_RETRY_PERIOD",
        default_value = "2s",
        value_parser = parse_lease_time
    )]
    pub retry_period: Duration,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
    /// A sync window of the daemon's own (repeatable), which governs together with each revision's
    /// `spec.syncWindows` and which no commit can lift: a YAML mapping with the same fields, e.g.
    /// `{kind: deny, schedule: "0 22 * * 5", duration: 60h, timeZone: Europe/Berlin}`. The environment
    /// variable holds one window per line.
    #[arg(long = "sync-window", value_name = "WINDOW", env = "KEELSON_SYNC_WINDOWS", value_delimiter = '\n',
          value_parser = SyncWindow::parse_flag)]
    pub sync_windows: Vec<SyncWindow>,
}

impl std::fmt::Debug for RunArgs {
    // The URL may carry credentials; the rest holds only file names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs")
            .field("repo", &crate::source::redact_url(&self.repo))
            .field("reference", &self.reference)
            .field("path", &self.path)
            .field("interval", &self.interval)
            .field("namespace", &self.namespace)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if interval < Duration::from_secs(1) {
        return Err(format!("{text:?}: the interval must be at least 1s"));
    }
    Ok(interval)
}

fn parse_lease_time(text: &str) -> Result<Duration, String> {
    let time = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if time < Duration::from_millis(100) {
        return Err(format!("{text:?}: must be at least 100ms"));
    }
    Ok(time)
}

impl RunArgs {
    /// Leader election settings, when enabled; the identity comes from the pod's name.
    pub fn leader_config(&self) -> Result<Option<LeaderConfig>, String> {
        if !self.leader_elect {
            return Ok(None);
        }
        // The Lease records whole seconds: a holder must be able to renew well within one.
        if self.lease_duration < Duration::from_secs(1) {
            return Err("--lease-duration: must be at least 1s (the Lease records whole seconds)".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({}) must be shorter than --lease-duration ({}): the old leader must stop \
                 writing before another may start",
                humantime::format_duration(self.renew_deadline),
                humantime::format_duration(self.lease_duration)
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period ({}) must be shorter than --renew-deadline ({})",
                humantime::format_duration(self.retry_period),
                humantime::format_duration(self.renew_deadline)
            ));
        }
        Ok(Some(LeaderConfig {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            ..LeaderConfig::from_env()
        }))
    }

    /// The Git source configuration, with credential files read.
    pub fn source_config(&self) -> Result<GitSourceConfig, SourceError> {
        let mut config = GitSourceConfig::new(self.repo.clone(), self.reference.clone());
        config.path = self.path.clone();
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = dir.clone();
        }
        // The daemon reads secrets from files only (mounted Secrets).
        config.credentials = self.credentials.credentials(false)?;
        Ok(config)
    }

    pub fn daemon_config(&self) -> Result<DaemonConfig, SourceError> {
        let mut config = DaemonConfig::new(self.namespace.clone());
        config.interval = self.interval;
        config.resync_interval = self.resync_interval;
        config.pass = self.verify.settings(&self.pass);
        self.decrypt.apply_to(&mut config.pass);
        config.listen = Some(self.listen);
        config.webhook = self
            .webhook_secret_file
            .as_deref()
            .map(|file| WebhookConfig::from_secret_file(file, self.reference.clone()))
            .transpose()?;
        config.sync_windows = SyncWindows(self.sync_windows.clone());
        Ok(config)
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    // Flags that contradict each other are a usage error, found before anything starts.
    let leader = match args.leader_config() {
        Ok(leader) => leader,
        Err(message) => {
            eprintln!("keelson run: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        match serve(args, leader).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    })
}

async fn serve(args: RunArgs, leader: Option<LeaderConfig>) -> Result<(), String> {
    let source = args.source_config().map_err(|e| e.to_string())?;
    let config = args.daemon_config().map_err(|e| e.to_string())?;
    // With leader election, the replica's identity in the User-Agent tells the replicas apart in audit logs.
    let user_agent = match &leader {
        Some(leader) => format!("{} ({})", cluster::default_user_agent(), leader.identity),
        None => cluster::default_user_agent(),
    };
    let connection = args
        .target
        .connect_as(user_agent)
        .await
        .map_err(|e| e.to_string())?;
    if let (Some(sim), Some(path)) = (&connection.sim, &args.sim_kubeconfig_out) {
        sim.write_kubeconfig(path)
            .map_err(|e| format!("embedded simulated cluster: {e}"))?;
    }
    let mut config = config;
    config.verify = args
        .verify
        .load(Some(&connection.kube), Some(&args.namespace))
        .await
        .map_err(|e| format!("keelson run: {e}"))?
        .map(|(mode, allowed)| (mode, std::sync::Arc::new(allowed)));
    let mut daemon = Daemon::new(connection.kube.clone(), source, config).map_err(|e| e.to_string())?;
    if let Some(leader) = leader {
        daemon = daemon.with_leader_election(leader);
    }
    let addr = daemon.bind().await.map_err(|e| e.to_string())?;
    if let Some(addr) = addr {
        tracing::info!(%addr, repo = %crate::source::redact_url(&args.repo), reference = %args.reference, "keelson run started");
    }
    daemon.run(shutdown_signal()).await.map_err(|e| e.to_string())
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cmd = Cmd::try_parse_from(["k", "--repo", "./r", "--interval", "30s", "--leader-elect"]).unwrap();
        assert_eq!(cmd.run.reference, "main");
        assert_eq!(cmd.run.interval, Duration::from_secs(30));
        assert_eq!(cmd.run.namespace, "keelson-system");
        assert_eq!(cmd.run.listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        assert!(cmd.run.leader_elect);
        assert_eq!(cmd.run.pass.concurrency, 8);
        for bad in [
            ["--interval", "0s"],
            ["--interval", "soon"],
            ["--listen", "nowhere"],
        ] {
            let mut args = vec!["k", "--repo", "./r"];
            args.extend(bad);
            assert!(Cmd::try_parse_from(args).is_err(), "{bad:?}");
        }
        let leader = cmd.run.leader_config().unwrap().expect("leader election on");
        assert_eq!(
            (leader.lease_duration, leader.renew_deadline, leader.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        let timings = |extra: &[&'static str]| {
            let mut args = vec!["k", "--repo", "./r", "--leader-elect"];
            args.extend(extra);
            Cmd::try_parse_from(args).unwrap().run.leader_config()
        };
        let fast = timings(&[
            "--lease-duration",
            "2s",
            "--renew-deadline",
            "1500ms",
            "--retry-period",
            "200ms",
        ]);
        assert_eq!(fast.unwrap().unwrap().renew_deadline, Duration::from_millis(1500));
        for bad in [
            &["--lease-duration", "5s"][..],
            &["--renew-deadline", "1s", "--retry-period", "1s"],
            &[
                "--lease-duration",
                "900ms",
                "--renew-deadline",
                "500ms",
                "--retry-period",
                "100ms",
            ],
        ] {
            assert!(timings(bad).is_err(), "{bad:?}");
        }
        assert!(Cmd::try_parse_from(["k", "--repo", "./r", "--retry-period", "10ms"]).is_err());
        let cmd = Cmd::try_parse_from(["k", "--repo", "./r", "--ssh-known-hosts", "/kh"]).unwrap();
        assert_eq!(
            cmd.run.credentials.ssh_known_hosts_file,
            Some(PathBuf::from("/kh"))
        );
        assert!(Cmd::try_parse_from(["k", "--repo", "./r", "--sim-kubeconfig-out", "/k"]).is_err());
    }
}
