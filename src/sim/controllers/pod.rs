//! The kubelet of every simulated Node: runs the Pods bound to it through the lifecycle a kubelet reports
//! (mount volumes, pull images, create and start containers, become Ready; run a Job's container to its
//! exit; crash and back off; stop on deletion), with the container states, Pod conditions and Events a
//! kubelet writes. Nothing runs: the simulator's failure rules decide which image does not pull
//! (`unpullable`), which command crashes (`crash_commands`) and which Job fails (`failing_jobs`).
//!
//! Timing, from the moment the kubelet sees the Pod: containers start after `startup` (a quarter of
//! `ready_after`), are Ready `ready_after` after that moment, a Job's container exits `job_duration`
//! after it started, a crashing one half a `ready_after` after it started and restarts after a back-off
//! that doubles from half a `ready_after` up to five minutes. A deleted Pod stops within its grace period
//! (at most `startup`) and is then removed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::entrypoint::{self, Hold};
use super::podspec::{self, ConfigRef, UsedBy};
use super::{
    Action, Behaviour, CONFIGMAPS, Event, Involved, NODES, PODS, SECRETS, View, condition, is_deleting,
    keep_transitions, label, name, namespace, text, uid,
};

const COMPONENT: &str = "kubelet";
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Kubelet {
    pods: HashMap<String, PodRun>,
    /// Images present on each node.
    images: HashMap<String, HashSet<String>>,
    /// Last host number handed out per node for Pod IPs.
    ips: HashMap<String, u32>,
}

#[derive(Debug)]
struct PodRun {
    seen: Instant,
    seen_wall: String,
    ip: String,
    host_ip: String,
    containers: Vec<Run>,
    killing: Option<Instant>,
    /// Events already recorded, so each transition is announced once.
    told: HashSet<String>,
    /// The resourceVersion last looked at, and when something changes by itself next: a settled Pod is not
    /// looked at again until then (or until it changes).
    checked: Option<(String, Option<Instant>)>,
}

#[derive(Debug, Clone)]
struct Run {
    name: String,
    init: bool,
    image: String,
    command: String,
    state: State,
    restarts: u32,
    /// `lastState` as the status shows it, and when that container stopped.
    last: Value,
    last_at: Option<Instant>,
    id: String,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        since: Instant,
        wall: String,
    },
    Terminated {
        exit: i64,
        reason: &'static str,
        started: String,
        finished: String,
        at: Instant,
    },
}

/// What a container does once started, by the simulator's rules.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Serve,
    Crash,
    /// A Job's container: exits after `job_duration`, with this exit code.
    Exit(i64),
}

pub fn run(view: &View, k: &mut Kubelet, b: &Behaviour, out: &mut Vec<Action>) {
    let simulated: HashMap<&str, &Value> = view
        .list(NODES)
        .filter(|n| text(&n["spec"]["providerID"]).starts_with("sim://"))
        .map(|n| (name(n), n))
        .collect();
    let mut alive = HashSet::new();
    for pod in view.list(PODS) {
        let node_name = text(&pod["spec"]["nodeName"]);
        let Some(node) = simulated.get(node_name) else {
            continue;
        };
        alive.insert(uid(pod).to_string());
        step(view, k, b, pod, node, out);
    }
    k.pods.retain(|id, _| alive.contains(id));
}

fn host_ip(node: &Value) -> String {
    node["status"]["addresses"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["type"] == "InternalIP"))
        .map(|a| text(&a["address"]).to_string())
        .unwrap_or_default()
}

fn new_run(view: &View, k: &mut Kubelet, pod: &Value, node: &Value) -> PodRun {
    let spec = &pod["spec"];
    let host = host_ip(node);
    let ip = if spec["hostNetwork"] == true {
        host.clone()
    } else {
        let n = k.ips.entry(name(node).to_string()).or_insert(1);
        *n = if *n >= 254 { 2 } else { *n + 1 };
        let cidr = text(&node["spec"]["podCIDR"]);
        let base = cidr.rsplit_once('.').map_or("10.244.0", |(b, _)| b);
        format!("{base}.{n}")
    };
    let has_init = spec["initContainers"].as_array().is_some_and(|l| !l.is_empty());
    let containers = podspec::containers(spec)
        .map(|(init, c)| Run {
            name: text(&c["name"]).to_string(),
            init,
            image: text(&c["image"]).to_string(),
            command: podspec::command_line(c),
            state: State::Waiting {
                reason: if has_init && !init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .into(),
                message: String::new(),
            },
            restarts: 0,
            last: json!({}),
            last_at: None,
            id: String::new(),
        })
        .collect();
    PodRun {
        seen: view.now,
        seen_wall: view.wall.clone(),
        ip,
        host_ip: host,
        containers,
        killing: None,
        told: HashSet::new(),
        checked: None,
    }
}

fn fate(b: &Behaviour, pod: &Value, c: &Run) -> Fate {
    if b.crash_commands.is_match(&c.command) {
        return Fate::Crash;
    }
    let restart = text(&pod["spec"]["restartPolicy"]);
    if c.init || restart.is_empty() || restart == "Always" {
        return Fate::Serve;
    }
    let job = label(pod, "batch.kubernetes.io/job-name").or_else(|| label(pod, "job-name"));
    let fails = job.is_some_and(|j| b.failing_jobs.is_match(j)) || b.failing_jobs.is_match(&c.image);
    Fate::Exit(if fails { 1 } else { 0 })
}

/// Why `image` is not a reference the kubelet can parse (docker/distribution's grammar, as
/// `ParseNormalizedNamed` applies it), worded as the kubelet's `couldn't parse image name` error.
fn invalid_reference(image: &str) -> Option<String> {
    let invalid = |detail: &str| {
        Some(format!(
            "couldn't parse image name \"{image}\": invalid reference format{detail}"
        ))
    };
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return invalid("");
        }
    }
    // A tag follows the last `:` after the last `/` (a `:` before it belongs to a registry's port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let ok =
            tag.len() <= 128 && tag.starts_with(word) && tag.chars().all(|c| word(c) || c == '.' || c == '-');
        if !ok {
            return invalid("");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts.first().copied().unwrap_or("");
    // As `splitDockerDomain`: a first component with a dot, a port, `localhost` or an upper-case letter.
    let is_domain = parts.len() > 1
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.to_lowercase() != first);
    if is_domain {
        let (host, port) = match first.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !host_ok || port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
            return invalid("");
        }
        parts.remove(0);
    }
    // [a-z0-9]+ runs separated by `.`, `_`, `__` or any number of `-`.
    let component = |part: &str| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let mut runs = part.split(alnum).filter(|sep| !sep.is_empty());
        part.starts_with(alnum)
            && part.ends_with(alnum)
            && runs.all(|sep| matches!(sep, "." | "_" | "__") || sep.chars().all(|c| c == '-'))
    };
    if parts.is_empty() || !parts.iter().all(|p| component(p)) {
        let lower = parts.join("/").to_lowercase();
        if !parts.is_empty() && lower.split('/').all(component) {
            let remote = if is_domain || parts.len() > 1 {
                parts.join("/")
            } else {
                format!("library/{}", parts.join("/"))
            };
            return invalid(&format!(": repository name ({remote}) must be lowercase"));
        }
        return invalid("");
    }
    None
}

/// `docker.io/library/nginx:latest` for `nginx`, as the runtime resolves short names.
fn reference(image: &str) -> String {
    let (path, has_tag) = match image.rsplit_once('/') {
        Some((_, last)) => (image.to_string(), last.contains(':') || last.contains('@')),
        None => (image.to_string(), image.contains(':') || image.contains('@')),
    };
    let first = path.split('/').next().unwrap_or("");
    let qualified = if !path.contains('/') {
        format!("docker.io/library/{path}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        path
    } else {
        format!("docker.io/{path}")
    };
    if has_tag {
        qualified
    } else {
        format!("{qualified}:latest")
    }
}

fn digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Go duration as kubelet messages print them (`250ms`, `1.5s`, `2m0s`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn crash_backoff(b: &Behaviour, restarts: u32) -> Duration {
    let base = (b.ready_after / 2).max(Duration::from_millis(10));
    base.saturating_mul(1u32 << restarts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF)
}

/// Whether a terminated container starts again: always under `restartPolicy: Always` (init containers
/// only after failing), after a failure under `OnFailure`.
fn restarts(pod: &Value, init: bool, exit: i64) -> bool {
    let policy = text(&pod["spec"]["restartPolicy"]);
    let always = policy.is_empty() || policy == "Always";
    (exit != 0 && policy != "Never") || (always && !init)
}

/// The first missing Secret, ConfigMap or key among `refs`, worded as the kubelet words it.
fn missing(view: &View, ns: &str, refs: &[&ConfigRef]) -> Option<(String, String)> {
    for r in refs.iter().filter(|r| !r.optional) {
        let res = if r.kind == "Secret" { SECRETS } else { CONFIGMAPS };
        let lower = r.kind.to_lowercase();
        let volume = match &r.used_by {
            UsedBy::Volume(v) => Some(v.clone()),
            UsedBy::Env(_) => None,
        };
        let message = match view.get(res, ns, &r.name) {
            None => Some(format!("{lower} \"{}\" not found", r.name)),
            Some(obj) => r.key.as_ref().and_then(|key| {
                let has = obj["data"].get(key).is_some()
                    || obj["binaryData"].get(key).is_some()
                    || obj["stringData"].get(key).is_some();
                (!has).then(|| match (&volume, r.kind) {
                    (Some(_), "Secret") => format!("references non-existent secret key: {key}"),
                    (Some(_), _) => format!("configmap references non-existent config key: {key}"),
                    (None, kind) => format!("couldn't find key {key} in {kind} {ns}/{}", r.name),
                })
            }),
        };
        if let Some(m) = message {
            return Some((volume.unwrap_or_default(), m));
        }
    }
    None
}

fn step(view: &View, k: &mut Kubelet, b: &Behaviour, pod: &Value, node: &Value, out: &mut Vec<Action>) {
    let id = uid(pod).to_string();
    if !k.pods.contains_key(&id) {
        let run = new_run(view, k, pod, node);
        k.pods.insert(id.clone(), run);
    }
    let node_name = name(node).to_string();
    let images = k.images.entry(node_name.clone()).or_default();
    let Some(run) = k.pods.get_mut(&id) else { return };
    let rv = text(&pod["metadata"]["resourceVersion"]).to_string();
    if let Some((seen, wake)) = &run.checked {
        if *seen == rv && wake.is_none_or(|w| view.now < w) {
            return;
        }
    }
    let mut events = Vec::new();
    if is_deleting(pod) {
        stop(view, b, pod, run, &mut events, out);
        record(pod, &node_name, events, out);
        let grace = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(0);
        let done = run
            .killing
            .map(|k| k + Duration::from_secs(grace).min(b.startup()));
        run.checked = Some((rv, done));
        return;
    }
    if matches!(text(&pod["status"]["phase"]), "Succeeded" | "Failed") {
        return;
    }
    // A transition may enable the next at the same moment (a crash, then its back-off): settle them.
    for _ in 0..4 {
        let before: Vec<State> = run.containers.iter().map(|c| c.state.clone()).collect();
        advance(view, b, pod, run, images, &mut events);
        if run.containers.iter().map(|c| &c.state).eq(before.iter()) {
            break;
        }
    }
    record(pod, &node_name, events, out);
    let status = status(view, b, pod, run);
    if status != pod["status"] {
        out.push(Action::status(PODS, pod, status, COMPONENT));
    }
    let wake = next_wake(view.now, b, pod, run);
    run.checked = Some((rv, wake));
}

/// A Pod's containers wait on something outside the kubelet's clock (a Secret, a volume's source): look
/// again this often.
const RETRY: Duration = Duration::from_millis(200);

/// When the Pod's containers next move by themselves (start, become ready, exit, crash, restart); `None`
/// when they never will.
fn next_wake(now: Instant, b: &Behaviour, pod: &Value, run: &PodRun) -> Option<Instant> {
    let mut wake: Option<Instant> = None;
    let mut at = |t: Instant| {
        if t > now {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
    };
    let startup = b.startup();
    let soon = now + Duration::from_millis(1);
    for c in &run.containers {
        match &c.state {
            State::Waiting { reason, .. } => match reason.as_str() {
                "ContainerCreating" | "PodInitializing" if now < run.seen + startup => at(run.seen + startup),
                "ErrImagePull" => at(run.seen + startup * 2),
                "ImagePullBackOff" => {}
                "CrashLoopBackOff" => at(c.last_at.unwrap_or(now) + crash_backoff(b, c.restarts)),
                _ => at(now + RETRY),
            },
            State::Running { since, .. } => {
                if c.init {
                    // An entrypoint polls its dependencies; any other init container is done at once.
                    let entrypoint = podspec::containers(&pod["spec"])
                        .find(|(init, s)| *init && s["name"] == c.name.as_str())
                        .is_some_and(|(_, s)| entrypoint::is_entrypoint(s));
                    at(if entrypoint { now + RETRY } else { soon });
                    continue;
                }
                at(*since + b.ready_after.saturating_sub(startup));
                match fate(b, pod, c) {
                    Fate::Crash => at(*since + b.ready_after / 2),
                    Fate::Exit(_) => at(*since + b.job_duration),
                    Fate::Serve => {}
                }
            }
            State::Terminated { exit, .. } if restarts(pod, c.init, *exit) => at(soon),
            State::Terminated { .. } => {}
        }
    }
    wake
}

impl Kubelet {
    /// The next moment a Pod's containers move by themselves.
    pub fn wake(&self) -> Option<Instant> {
        self.pods
            .values()
            .filter_map(|r| r.checked.as_ref().and_then(|(_, w)| *w))
            .min()
    }
}

/// A kubelet Event about the Pod (or one of its containers).
struct Note {
    container: Option<(bool, usize)>,
    warning: bool,
    reason: &'static str,
    message: String,
}

fn note(c: Option<(bool, usize)>, warning: bool, reason: &'static str, message: String) -> Note {
    Note {
        container: c,
        warning,
        reason,
        message,
    }
}

fn record(pod: &Value, node: &str, notes: Vec<Note>, out: &mut Vec<Action>) {
    for n in notes {
        let mut involved = Involved::of(pod);
        if let Some((init, i)) = n.container {
            let list = if init { "initContainers" } else { "containers" };
            involved = involved.container(format!("spec.{list}{{{}}}", container_name(pod, init, i)));
        }
        let e = if n.warning {
            Event::warning(involved, COMPONENT, n.reason, n.message)
        } else {
            Event::normal(involved, COMPONENT, n.reason, n.message)
        };
        out.push(Action::Event(e.on_host(node)));
    }
}

fn container_name(pod: &Value, init: bool, i: usize) -> String {
    let list = if init { "initContainers" } else { "containers" };
    text(&pod["spec"][list][i]["name"]).to_string()
}

/// Moves every container on as far as `now` allows.
fn advance(
    view: &View,
    b: &Behaviour,
    pod: &Value,
    run: &mut PodRun,
    images: &mut HashSet<String>,
    events: &mut Vec<Note>,
) {
    let ns = namespace(pod);
    let spec = &pod["spec"];
    let refs = podspec::config_refs(spec);
    let volume_refs: Vec<&ConfigRef> = refs
        .iter()
        .filter(|r| matches!(r.used_by, UsedBy::Volume(_)))
        .collect();
    if let Some((volume, message)) = missing(view, ns, &volume_refs) {
        let text = format!("MountVolume.SetUp failed for volume \"{volume}\" : {message}");
        if run.told.insert(format!("mount/{text}")) {
            events.push(note(None, true, "FailedMount", text));
        }
        return;
    }
    let elapsed = view.now.saturating_duration_since(run.seen);
    let sandbox_up = elapsed >= b.startup();
    // Images of the containers about to start are pulled from the first moment.
    let inits_done = |cs: &[Run]| {
        cs.iter()
            .filter(|c| c.init)
            .all(|c| matches!(c.state, State::Terminated { exit: 0, .. }))
    };
    let count_init = run.containers.iter().filter(|c| c.init).count();
    for i in 0..run.containers.len() {
        let done = inits_done(&run.containers[..i]);
        let c = run.containers[i].clone();
        let (init, idx) = if c.init {
            (true, i)
        } else {
            (false, i - count_init)
        };
        let cref = Some((init, idx));
        if c.init && !done {
            break;
        }
        if !c.init && !inits_done(&run.containers) {
            break;
        }
        let key = |what: &str| format!("{}/{}/{}", c.name, c.restarts, what);
        let next = match &c.state {
            State::Waiting { reason, .. }
                if matches!(reason.as_str(), "ContainerCreating" | "PodInitializing")
                    || reason == "ErrImagePull"
                    || reason == "ImagePullBackOff"
                    || reason == "CreateContainerConfigError" =>
            {
                let cached = images.contains(&c.image);
                let never = podspec::containers(spec)
                    .nth(i)
                    .is_some_and(|(_, s)| s["imagePullPolicy"] == "Never");
                let invalid = invalid_reference(&c.image);
                if let Some(error) = invalid {
                    // The kubelet parses the reference before pulling: nothing is pulled, nothing heals.
                    if !sandbox_up {
                        continue;
                    }
                    let message = format!("Failed to apply default image tag \"{}\": {error}", c.image);
                    if run.told.insert(key("invalid")) {
                        events.push(note(cref, true, "InspectFailed", message.clone()));
                        events.push(note(cref, true, "Failed", "Error: InvalidImageName".into()));
                    }
                    run.containers[i].state = State::Waiting {
                        reason: "InvalidImageName".into(),
                        message,
                    };
                    continue;
                }
                if !cached && !never && run.told.insert(key("pulling")) {
                    events.push(note(
                        cref,
                        false,
                        "Pulling",
                        format!("Pulling image \"{}\"", c.image),
                    ));
                }
                if !sandbox_up {
                    continue;
                }
                if b.unpullable.is_match(&c.image) {
                    let r = reference(&c.image);
                    let pull = format!(
                        "rpc error: code = NotFound desc = failed to pull and unpack image \"{r}\": failed to resolve reference \"{r}\": {r}: not found"
                    );
                    let in_backoff = elapsed >= b.startup() * 2;
                    if !in_backoff {
                        if run.told.insert(key("errimagepull")) {
                            events.push(note(
                                cref,
                                true,
                                "Failed",
                                format!("Failed to pull image \"{}\": {pull}", c.image),
                            ));
                            events.push(note(cref, true, "Failed", "Error: ErrImagePull".into()));
                        }
                        Some(State::Waiting {
                            reason: "ErrImagePull".into(),
                            message: pull,
                        })
                    } else {
                        if run.told.insert(key("backoff")) {
                            events.push(note(
                                cref,
                                false,
                                "BackOff",
                                format!("Back-off pulling image \"{}\"", c.image),
                            ));
                            events.push(note(cref, true, "Failed", "Error: ImagePullBackOff".into()));
                        }
                        Some(State::Waiting {
                            reason: "ImagePullBackOff".into(),
                            message: format!("Back-off pulling image \"{}\"", c.image),
                        })
                    }
                } else {
                    if run.told.insert(key("pulled")) {
                        let message = if cached || never {
                            format!("Container image \"{}\" already present on machine", c.image)
                        } else {
                            let took = go_duration(b.startup());
                            let size = u64::from_str_radix(&digest(&c.image)[..6], 16).unwrap_or(0) * 64;
                            format!(
                                "Successfully pulled image \"{}\" in {took} ({took} including waiting). Image size: {size} bytes.",
                                c.image
                            )
                        };
                        events.push(note(cref, false, "Pulled", message));
                        images.insert(c.image.clone());
                    }
                    let env_refs: Vec<&ConfigRef> = refs
                        .iter()
                        .filter(|r| matches!(&r.used_by, UsedBy::Env(n) if *n == c.name))
                        .collect();
                    match missing(view, ns, &env_refs) {
                        Some((_, message)) => {
                            if run.told.insert(key(&format!("config/{message}"))) {
                                events.push(note(cref, true, "Failed", format!("Error: {message}")));
                            }
                            Some(State::Waiting {
                                reason: "CreateContainerConfigError".into(),
                                message,
                            })
                        }
                        None => Some(start(view, &c, cref, run, events)),
                    }
                }
            }
            State::Waiting { reason, .. } if reason == "CrashLoopBackOff" => {
                let until = c.last_at.unwrap_or(view.now) + crash_backoff(b, c.restarts);
                if view.now >= until {
                    if run.told.insert(key("pulled")) {
                        events.push(note(
                            cref,
                            false,
                            "Pulled",
                            format!("Container image \"{}\" already present on machine", c.image),
                        ));
                    }
                    Some(start(view, &c, cref, run, events))
                } else {
                    None
                }
            }
            State::Waiting { .. } => None,
            State::Running { since, wall } => {
                let f = fate(b, pod, &c);
                let held = if c.init {
                    let spec_container = podspec::containers(spec).nth(i).map(|(_, s)| s);
                    spec_container.map_or(Hold::Released, |s| entrypoint::hold(view, pod, s))
                } else {
                    Hold::Released
                };
                let ends = match f {
                    Fate::Serve if c.init => match held {
                        Hold::Released => Some((0, "Completed")),
                        Hold::Waiting(_) => None,
                        Hold::Fails(_) => Some((1, "Error")),
                    },
                    Fate::Serve => None,
                    Fate::Crash if view.now >= *since + b.ready_after / 2 => Some((1, "Error")),
                    Fate::Crash => None,
                    Fate::Exit(code) if view.now >= *since + b.job_duration => {
                        Some((code, if code == 0 { "Completed" } else { "Error" }))
                    }
                    Fate::Exit(_) => None,
                };
                ends.map(|(exit, reason)| State::Terminated {
                    exit,
                    reason,
                    started: wall.clone(),
                    finished: view.wall.clone(),
                    at: view.now,
                })
            }
            State::Terminated { exit, .. } => {
                if restarts(pod, c.init, *exit) {
                    let r = &mut run.containers[i];
                    r.last = terminated_json(&r.state, &r.id);
                    r.last_at = Some(view.now);
                    r.restarts += 1;
                    let backoff = crash_backoff(b, r.restarts);
                    let uid_text = uid(pod);
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}_{ns}({uid_text})",
                        go_duration(backoff),
                        c.name,
                        name(pod)
                    );
                    let k2 = format!("{}/{}/crashloop", c.name, r.restarts);
                    if run.told.insert(k2.clone()) {
                        events.push(note(
                            cref,
                            true,
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}_{ns}({uid_text})",
                                c.name,
                                name(pod)
                            ),
                        ));
                    }
                    Some(State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message,
                    })
                } else {
                    None
                }
            }
        };
        if let Some(s) = next {
            run.containers[i].state = s;
        }
    }
}

fn terminated_json(state: &State, id: &str) -> Value {
    match state {
        State::Terminated {
            exit,
            reason,
            started,
            finished,
            ..
        } => json!({"terminated": {"exitCode": exit, "reason": reason, "startedAt": started,
            "finishedAt": finished, "containerID": id}}),
        _ => json!({}),
    }
}

fn start(
    view: &View,
    c: &Run,
    cref: Option<(bool, usize)>,
    run: &mut PodRun,
    events: &mut Vec<Note>,
) -> State {
    let key = |what: &str| format!("{}/{}/{}", c.name, c.restarts, what);
    if run.told.insert(key("created")) {
        events.push(note(
            cref,
            false,
            "Created",
            format!("Created container: {}", c.name),
        ));
        events.push(note(
            cref,
            false,
            "Started",
            format!("Started container {}", c.name),
        ));
    }
    if let Some(r) = run
        .containers
        .iter_mut()
        .find(|r| r.name == c.name && r.init == c.init)
    {
        r.id = format!(
            "containerd://{}",
            digest(&format!("{}{}{}", c.name, c.restarts, view.wall))
        );
    }
    State::Running {
        since: view.now,
        wall: view.wall.clone(),
    }
}

/// A Pod being deleted: its containers are stopped, and once its grace period (at most `startup`) has
/// passed the Pod is removed.
fn stop(
    view: &View,
    b: &Behaviour,
    pod: &Value,
    run: &mut PodRun,
    events: &mut Vec<Note>,
    out: &mut Vec<Action>,
) {
    let count_init = run.containers.iter().filter(|c| c.init).count();
    let started = run.killing.get_or_insert(view.now);
    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(0);
    let shutdown = Duration::from_secs(grace).min(b.startup());
    let elapsed = view.now.saturating_duration_since(*started);
    for (i, c) in run.containers.iter().enumerate() {
        if matches!(c.state, State::Running { .. }) && run.told.insert(format!("{}/kill", c.name)) {
            let idx = if c.init { i } else { i - count_init };
            events.push(note(
                Some((c.init, idx)),
                false,
                "Killing",
                format!("Stopping container {}", c.name),
            ));
        }
    }
    if elapsed >= shutdown && run.told.insert("removed".into()) {
        out.push(Action::Delete {
            res: PODS.key(),
            namespace: namespace(pod).into(),
            name: name(pod).into(),
            uid: uid(pod).into(),
            grace: Some(0),
            propagation: None,
            announce: None,
        });
    }
}

fn container_status(c: &Run, ready: bool) -> Value {
    let state = match &c.state {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running { wall, .. } => json!({"running": {"startedAt": wall}}),
        s @ State::Terminated { .. } => terminated_json(s, &c.id),
    };
    let last = c.last.clone();
    let pulled = !c.id.is_empty();
    let mut s = json!({
        "name": c.name, "image": c.image,
        "imageID": if pulled { format!("{}@sha256:{}", reference(&c.image), digest(&c.image)) } else { String::new() },
        "ready": ready, "restartCount": c.restarts,
        "started": matches!(c.state, State::Running { .. }),
        "state": state, "lastState": last,
    });
    if pulled {
        s["containerID"] = json!(c.id);
    }
    s
}

fn status(view: &View, b: &Behaviour, pod: &Value, run: &PodRun) -> Value {
    let wall = &view.wall;
    let elapsed = view.now.saturating_duration_since(run.seen);
    let sandbox_up = elapsed >= b.startup();
    let ready_time = |since: &Instant| view.now >= *since + b.ready_after.saturating_sub(b.startup());
    let mut init_statuses = Vec::new();
    let mut statuses = Vec::new();
    let mut unready = Vec::new();
    let mut incomplete = Vec::new();
    for c in &run.containers {
        let ready = match &c.state {
            State::Running { since, .. } => !c.init && ready_time(since),
            State::Terminated { exit: 0, .. } => c.init,
            _ => false,
        };
        let s = container_status(c, ready && !c.init);
        if c.init {
            if !matches!(c.state, State::Terminated { exit: 0, .. }) {
                incomplete.push(c.name.clone());
            }
            init_statuses.push(s);
        } else {
            if !ready {
                unready.push(c.name.clone());
            }
            statuses.push(s);
        }
    }
    let mains: Vec<&Run> = run.containers.iter().filter(|c| !c.init).collect();
    let all_terminated =
        !mains.is_empty() && mains.iter().all(|c| matches!(c.state, State::Terminated { .. }));
    let restart_policy = text(&pod["spec"]["restartPolicy"]);
    let phase = if all_terminated
        && mains
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit: 0, .. }))
    {
        "Succeeded"
    } else if all_terminated && restart_policy == "Never" {
        "Failed"
    } else if incomplete.is_empty()
        && mains
            .iter()
            .any(|c| !matches!(c.state, State::Waiting { .. }) || c.restarts > 0)
    {
        "Running"
    } else {
        "Pending"
    };
    let list = |names: &[String]| format!("[{}]", names.join(" "));
    let completed = phase == "Succeeded" || phase == "Failed";
    let ready_cond = |t: &str| {
        if completed {
            condition(t, false, "PodCompleted", "", wall)
        } else if unready.is_empty() {
            condition(t, true, "", "", wall)
        } else {
            condition(
                t,
                false,
                "ContainersNotReady",
                &format!("containers with unready status: {}", list(&unready)),
                wall,
            )
        }
    };
    let mut conds = vec![
        condition(
            "PodReadyToStartContainers",
            sandbox_up && !completed,
            "",
            "",
            wall,
        ),
        if incomplete.is_empty() {
            condition("Initialized", true, "", "", wall)
        } else {
            condition(
                "Initialized",
                false,
                "ContainersNotInitialized",
                &format!("containers with incomplete status: {}", list(&incomplete)),
                wall,
            )
        },
        ready_cond("Ready"),
        ready_cond("ContainersReady"),
    ];
    if let Some(s) = pod["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == "PodScheduled"))
    {
        conds.push(s.clone());
    }
    for c in conds.iter_mut() {
        c["lastProbeTime"] = Value::Null;
    }
    keep_transitions(&pod["status"]["conditions"], &mut conds);
    let mut status = json!({
        "phase": phase, "conditions": conds,
        "hostIP": run.host_ip, "hostIPs": [{"ip": run.host_ip}],
        "startTime": run.seen_wall,
        "containerStatuses": statuses,
        "qosClass": podspec::qos_class(&pod["spec"]),
    });
    if sandbox_up {
        status["podIP"] = json!(run.ip);
        status["podIPs"] = json!([{"ip": run.ip}]);
    }
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status
}

/// Why `kubectl logs` gets no log for a container, worded as the kubelet's API answers.
#[derive(Debug, PartialEq)]
pub enum LogRefusal {
    /// 400: the container has not started.
    Waiting(String),
    /// 400: `--previous` asked for a container that never terminated.
    NoPrevious(String),
    /// 404: the container does not exist in the Pod.
    NoContainer(String),
}

impl Kubelet {
    /// The log of a container: the simulator runs no process, so the log says what happened to it.
    pub fn log(&self, pod: &Value, container: &str, previous: bool) -> Result<String, LogRefusal> {
        let pod_name = name(pod);
        let Some(run) = self.pods.get(uid(pod)) else {
            return Err(LogRefusal::Waiting(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            )));
        };
        let Some(c) = run.containers.iter().find(|c| c.name == container) else {
            return Err(LogRefusal::NoContainer(format!(
                "container {container} is not valid for pod {pod_name}"
            )));
        };
        let command = if c.command.is_empty() {
            "the image's entrypoint".to_string()
        } else {
            format!("{:?}", c.command)
        };
        let header = format!(
            "[simulated cluster] container \"{container}\" of pod \"{}/{pod_name}\" (image {}, running {command})",
            namespace(pod),
            c.image,
        );
        if previous {
            let t = &c.last["terminated"];
            if !t.is_object() {
                return Err(LogRefusal::NoPrevious(format!(
                    "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                )));
            }
            return Ok(format!(
                "{header}\n[simulated cluster] started {}, exited with code {} at {}; the simulated cluster runs no processes, so there is no output\n",
                text(&t["startedAt"]),
                t["exitCode"],
                text(&t["finishedAt"])
            ));
        }
        match &c.state {
            State::Waiting { reason, .. } if c.restarts == 0 => Err(LogRefusal::Waiting(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {}",
                if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                    "trying and failing to pull image"
                } else if reason == "ContainerCreating" || reason == "PodInitializing" {
                    reason.as_str()
                } else {
                    "CreateContainerConfigError"
                }
            ))),
            State::Waiting { reason, .. } => Ok(format!(
                "{header}\n[simulated cluster] restarted {} times, now in {reason}; the simulated cluster runs no processes, so there is no output\n",
                c.restarts
            )),
            State::Running { wall, .. } => Ok(format!(
                "{header}\n[simulated cluster] running since {wall}; the simulated cluster runs no processes, so there is no output\n"
            )),
            State::Terminated {
                exit,
                started,
                finished,
                ..
            } => Ok(format!(
                "{header}\n[simulated cluster] started {started}, exited with code {exit} at {finished}; the simulated cluster runs no processes, so there is no output\n"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{behaviour, node, pod, store, view};
    use super::super::{CONFIGMAPS, NODES, PODS, Res, SECRETS};
    use super::*;

    struct Sim {
        objects: Vec<(Res, Value)>,
        kubelet: Kubelet,
        start: Instant,
    }

    impl Sim {
        fn new(spec: Value, more: Vec<(Res, Value)>) -> Sim {
            let mut spec = spec;
            spec["nodeName"] = json!("node-1");
            let mut objects = vec![
                (NODES, node("node-1", json!({}))),
                (PODS, pod("openstack", "p", spec)),
            ];
            objects.extend(more);
            Sim {
                objects,
                kubelet: Kubelet::default(),
                start: Instant::now(),
            }
        }

        /// Runs the kubelet at `at` after the start; keeps the status it writes; returns the Events.
        fn at(&mut self, at: Duration) -> Vec<(&'static str, String)> {
            let s = store(&self.objects);
            let mut v = view(&s);
            v.now = self.start + at;
            let mut out = Vec::new();
            run(&v, &mut self.kubelet, &behaviour(), &mut out);
            let mut events = Vec::new();
            for a in out {
                match a {
                    Action::Status { status, .. } => self.objects[1].1["status"] = status,
                    Action::Event(e) => events.push((e.reason, e.message)),
                    _ => {}
                }
            }
            events
        }

        fn status(&self) -> &Value {
            &self.objects[1].1["status"]
        }

        fn waiting(&self) -> String {
            text(&self.status()["containerStatuses"][0]["state"]["waiting"]["reason"]).to_string()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn spec(image: &str) -> Value {
        json!({"containers": [{"name": "api", "image": image, "command": ["serve"]}]})
    }

    #[test]
    fn a_healthy_pod_pulls_starts_and_becomes_ready() {
        let mut s = Sim::new(spec("quay.io/x/api:1"), vec![]);
        let first = s.at(ms(0));
        assert_eq!(
            first,
            vec![("Pulling", "Pulling image \"quay.io/x/api:1\"".to_string())]
        );
        assert_eq!(s.status()["phase"], "Pending");
        assert_eq!(s.waiting(), "ContainerCreating");
        let started: Vec<&str> = s.at(ms(100)).iter().map(|(r, _)| *r).collect();
        assert_eq!(started, vec!["Pulled", "Created", "Started"]);
        assert_eq!(s.status()["phase"], "Running");
        assert!(!pod_ready_status(s.status()));
        s.at(ms(400));
        assert!(pod_ready_status(s.status()), "{}", s.status());
        assert_eq!(s.status()["containerStatuses"][0]["ready"], true);
        assert!(s.status()["podIP"].as_str().unwrap().starts_with("10.244.1."));
    }

    fn pod_ready_status(status: &Value) -> bool {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }

    #[test]
    fn a_missing_secret_or_key_stops_the_container_until_it_appears() {
        let with_env = json!({"containers": [{"name": "api", "image": "i:1", "env": [
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "database-connection"}}}]}]});
        let mut s = Sim::new(with_env.clone(), vec![]);
        s.at(ms(0));
        let events = s.at(ms(100));
        assert_eq!(s.waiting(), "CreateContainerConfigError");
        assert_eq!(
            s.status()["containerStatuses"][0]["state"]["waiting"]["message"],
            "secret \"keystone\" not found"
        );
        assert!(events.contains(&("Failed", "Error: secret \"keystone\" not found".into())));
        let wrong_key = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keystone", "namespace": "openstack"}, "data": {"other": "eA=="}});
        let mut s = Sim::new(with_env.clone(), vec![(SECRETS, wrong_key)]);
        s.at(ms(0));
        s.at(ms(100));
        assert_eq!(
            s.status()["containerStatuses"][0]["state"]["waiting"]["message"],
            "couldn't find key database-connection in Secret openstack/keystone"
        );
        let good = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keystone", "namespace": "openstack"}, "data": {"database-connection": "eA=="}});
        let mut s = Sim::new(with_env, vec![(SECRETS, good)]);
        s.at(ms(0));
        s.at(ms(100));
        assert_eq!(s.status()["phase"], "Running");
    }

    #[test]
    fn a_missing_config_map_volume_fails_the_mount() {
        let spec = json!({"containers": [{"name": "api", "image": "i:1"}],
            "volumes": [{"name": "config", "configMap": {"name": "keystone-config"}}]});
        let mut s = Sim::new(spec.clone(), vec![]);
        let events = s.at(ms(100));
        assert_eq!(
            events,
            vec![(
                "FailedMount",
                "MountVolume.SetUp failed for volume \"config\" : configmap \"keystone-config\" not found"
                    .to_string()
            )]
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keystone-config", "namespace": "openstack"}});
        let mut s = Sim::new(spec, vec![(CONFIGMAPS, cm)]);
        s.at(ms(0));
        s.at(ms(100));
        assert_eq!(s.status()["phase"], "Running");
    }

    #[test]
    fn an_image_reference_that_does_not_parse_is_invalid_image_name_as_the_kubelet_says() {
        for good in [
            "quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble",
            "nginx",
            "localhost:5000/a/b_c__d---e.f:v1",
            "registry.example.com:443/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(invalid_reference(good), None, "{good}");
        }
        for (bad, detail) in [
            (
                "quay.io/Openstack/keystone:1",
                ": repository name (Openstack/keystone) must be lowercase",
            ),
            (
                "Keystone",
                ": repository name (library/Keystone) must be lowercase",
            ),
            ("quay.io/x/keystone:bad tag", ""),
            ("quay.io/x/keystone::1", ""),
            ("quay.io/x//keystone", ""),
            ("quay.io/x/keystone@sha256:xyz", ""),
            ("quay.io/x/-keystone", ""),
        ] {
            assert_eq!(
                invalid_reference(bad),
                Some(format!(
                    "couldn't parse image name \"{bad}\": invalid reference format{detail}"
                )),
                "{bad}"
            );
        }
        let mut s = Sim::new(spec("quay.io/x/API:1"), vec![]);
        s.at(ms(0));
        let events = s.at(ms(100));
        assert_eq!(s.waiting(), "InvalidImageName");
        assert_eq!(
            s.status()["containerStatuses"][0]["state"]["waiting"]["message"],
            "Failed to apply default image tag \"quay.io/x/API:1\": couldn't parse image name \"quay.io/x/API:1\": invalid reference format: repository name (x/API) must be lowercase"
        );
        assert_eq!(events[0].0, "InspectFailed");
        assert_eq!(events[1], ("Failed", "Error: InvalidImageName".to_string()));
        // It stays so: nothing is pulled, nothing heals.
        let later = s.at(ms(2000));
        assert_eq!(s.waiting(), "InvalidImageName");
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn an_unpullable_image_goes_err_image_pull_then_image_pull_back_off() {
        let mut s = Sim::new(spec("quay.io/x/api:broken"), vec![]);
        s.at(ms(0));
        let events = s.at(ms(100));
        assert_eq!(s.waiting(), "ErrImagePull");
        assert!(
            events[0]
                .1
                .starts_with("Failed to pull image \"quay.io/x/api:broken\": rpc error: code = NotFound")
        );
        s.at(ms(250));
        assert_eq!(s.waiting(), "ImagePullBackOff");
        assert_eq!(s.status()["phase"], "Pending");
    }

    #[test]
    fn a_crashing_command_loops_with_growing_restart_counts() {
        let crash =
            json!({"containers": [{"name": "api", "image": "i:1", "command": ["sh", "-c", "crash now"]}]});
        let mut s = Sim::new(crash, vec![]);
        s.at(ms(0));
        s.at(ms(100));
        assert_eq!(s.status()["phase"], "Running");
        let events = s.at(ms(310));
        assert_eq!(s.waiting(), "CrashLoopBackOff");
        assert_eq!(s.status()["containerStatuses"][0]["restartCount"], 1);
        assert_eq!(
            s.status()["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );
        assert!(events.iter().any(|(r, m)| *r == "BackOff"
            && m.starts_with("Back-off restarting failed container api in pod p_openstack(")));
        s.at(ms(520));
        assert!(s.status()["containerStatuses"][0]["state"]["running"].is_object());
        s.at(ms(730));
        assert_eq!(s.status()["containerStatuses"][0]["restartCount"], 2);
        assert!(!pod_ready_status(s.status()));
    }

    #[test]
    fn job_pods_run_to_their_exit() {
        let job = |name: &str| {
            let mut spec = spec("i:1");
            spec["restartPolicy"] = json!("Never");
            let mut s = Sim::new(spec, vec![]);
            s.objects[1].1["metadata"]["labels"] = json!({"batch.kubernetes.io/job-name": name});
            s
        };
        let mut ok = job("db-sync");
        ok.at(ms(0));
        ok.at(ms(100));
        ok.at(ms(310));
        assert_eq!(ok.status()["phase"], "Succeeded");
        assert_eq!(
            ok.status()["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let mut bad = job("bootstrap-fails");
        bad.at(ms(0));
        bad.at(ms(100));
        bad.at(ms(310));
        assert_eq!(bad.status()["phase"], "Failed");
        assert_eq!(
            bad.status()["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }

    #[test]
    fn logs_tell_the_truth_about_a_simulated_container() {
        let mut s = Sim::new(spec("i:1"), vec![]);
        let p = s.objects[1].1.clone();
        assert!(matches!(
            s.kubelet.log(&p, "api", false),
            Err(LogRefusal::Waiting(_))
        ));
        s.at(ms(0));
        s.at(ms(100));
        let log = s.kubelet.log(&p, "api", false).unwrap();
        assert!(log.contains("runs no processes"), "{log}");
        assert!(matches!(
            s.kubelet.log(&p, "api", true),
            Err(LogRefusal::NoPrevious(_))
        ));
        assert!(matches!(
            s.kubelet.log(&p, "other", false),
            Err(LogRefusal::NoContainer(_))
        ));
    }

    #[test]
    fn image_references_are_normalised() {
        assert_eq!(reference("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(reference("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            reference("quay.io/openstack.kolla/keystone:2025.1"),
            "quay.io/openstack.kolla/keystone:2025.1"
        );
        assert_eq!(reference("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(go_duration(ms(250)), "250ms");
        assert_eq!(go_duration(ms(1500)), "1.5s");
    }
}
