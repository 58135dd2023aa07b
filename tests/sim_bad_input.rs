//! Bad input over raw HTTP: malformed JSON and YAML, wrong content types, unknown resources, absurd sizes
//! and random bodies. Every answer must be a proper `kind: Status` error (or success), never a panic or a
//! dropped connection, and the server must keep serving.

use std::time::Duration;

use keelson::sim::{Cluster, SimOptions};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A TLS connection to the cluster, trusting its CA.
async fn connect(c: &Cluster) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(c.ca_certificate_der().to_vec()))
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(c.addr()).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// One request on its own connection, written byte by byte as given, as the cluster's admin.
async fn raw(c: &Cluster, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    let mut s = connect(c).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\nAuthorization: Bearer {}\r\n",
        body.len(),
        c.admin_token()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (e.g. 413) before reading everything; a failed write is then expected.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("server answered")
        .ok();
    let text_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no HTTP response to {method} {path}: {:?}",
            String::from_utf8_lossy(&buf)
        )
    });
    let head = String::from_utf8_lossy(&buf[..text_end]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = buf[text_end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Reply { status, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn assert_status(r: &Reply, code: u16, reason: &str) {
    let v = r.json();
    assert_eq!(r.status, code, "{v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["code"], code);
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// method, path, content type, body, expected code, expected reason.
type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

const CM: &str = "/api/v1/namespaces/default/configmaps";
const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn malformed_bodies_and_wrong_types_get_status_errors() {
    let c = Cluster::start(SimOptions::default()).await.unwrap();
    let j = Some("application/json");
    let cases: Vec<Case> = vec![
        ("POST", CM.into(), j, b"{not json".to_vec(), 400, "BadRequest"),
        ("POST", CM.into(), j, b"".to_vec(), 400, "BadRequest"),
        ("POST", CM.into(), j, b"[1,2,3]".to_vec(), 400, "BadRequest"),
        (
            "POST",
            CM.into(),
            j,
            b"\"just a string\"".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"x"}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":7}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"},"data":{"a":1}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y","labels":{"a":"b c"}}}"#
                .to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            CM.into(),
            j,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            Some("application/vnd.kubernetes.protobuf"),
            b"\x6b\x38\x73\x00".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            Some("text/plain"),
            b"hello".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            CM.into(),
            Some("application/yaml"),
            b"a: [unclosed".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            CM.into(),
            Some("application/yaml"),
            b"\xff\xfe".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/missing"),
            Some("application/merge-patch+json"),
            b"{}".to_vec(),
            404,
            "NotFound",
        ),
        (
            "PATCH",
            format!("{CM}/x"),
            Some("application/json"),
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            format!("{CM}/x"),
            Some(APPLY),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
            422,
            "Invalid",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m"),
            Some(APPLY),
            b"{{{".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m"),
            Some(APPLY),
            b"kind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m"),
            Some(APPLY),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m"),
            Some(APPLY),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, managedFields: [{}]}\n".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m&force=maybe"),
            Some(APPLY),
            b"{}".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{CM}/x?fieldManager=m&dryRun=Some"),
            Some(APPLY),
            b"{}".to_vec(),
            422,
            "Invalid",
        ),
        (
            "PATCH",
            format!("{CM}/x?force=true"),
            Some("application/merge-patch+json"),
            b"{}".to_vec(),
            422,
            "Invalid",
        ),
        (
            "GET",
            format!("{CM}?labelSelector=a%20in%20(b"),
            None,
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{CM}?fieldSelector=spec.nope%3D1"),
            None,
            vec![],
            400,
            "BadRequest",
        ),
        ("GET", format!("{CM}?limit=-3"), None, vec![], 400, "BadRequest"),
        (
            "GET",
            format!("{CM}?continue=zz"),
            None,
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{CM}?watch=true&resourceVersion=abc"),
            None,
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/widgets".into(),
            None,
            vec![],
            404,
            "NotFound",
        ),
        (
            "GET",
            "/apis/nope.example.com/v1/things".into(),
            None,
            vec![],
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps/x/bogus".into(),
            None,
            vec![],
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/namespaces".into(),
            None,
            vec![],
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/configmaps/x".into(),
            None,
            vec![],
            404,
            "NotFound",
        ),
        (
            "POST",
            format!("{CM}/x"),
            j,
            b"{}".to_vec(),
            405,
            "MethodNotAllowed",
        ),
        (
            "DELETE",
            format!("{CM}/x"),
            j,
            b"{nope".to_vec(),
            400,
            "BadRequest",
        ),
        ("DELETE", format!("{CM}/missing"), None, vec![], 404, "NotFound"),
        (
            "DELETE",
            format!("{CM}/x?propagationPolicy=Sometimes"),
            None,
            vec![],
            422,
            "Invalid",
        ),
    ];
    // One object to patch.
    let made = raw(
        &c,
        "POST",
        CM,
        j,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(made.status, 201);
    for (method, path, ct, body, code, reason) in cases {
        let r = raw(&c, method, &path, ct, &body).await;
        assert_eq!(
            r.status,
            code,
            "{method} {path} {:?}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&r.body)
        );
        assert_status(&r, code, reason);
    }
    c.shutdown().await;
}

#[tokio::test]
async fn absurd_sizes_and_nesting() {
    let c = Cluster::start(SimOptions::default()).await.unwrap();
    let made = raw(
        &c,
        "POST",
        CM,
        Some("application/json"),
        br#"{"metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(made.status, 201);
    // Over the 3 MiB request limit.
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(4 << 20)
    );
    let r = raw(&c, "POST", CM, Some("application/json"), big.as_bytes()).await;
    assert_status(&r, 413, "RequestEntityTooLarge");
    // Nesting deeper than the decoders allow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = raw(&c, "POST", CM, Some("application/json"), deep.as_bytes()).await;
    assert_status(&r, 400, "BadRequest");
    let deep_yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/x?fieldManager=m"),
        Some(APPLY),
        deep_yaml.as_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    // YAML alias expansion ("billion laughs").
    let mut laughs =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..12 {
        let prev = (b'a' + i as u8 - 1) as char;
        let cur = (b'a' + i as u8) as char;
        laughs.push_str(&format!(
            "{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/x?fieldManager=m"),
        Some(APPLY),
        laughs.as_bytes(),
    )
    .await;
    assert!(
        r.status == 400 || r.status == 404,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["kind"], "Status");
    // JSON patches that would grow without bound: copying the document into itself, nesting it deeper.
    let mut grow = vec![json!({"op": "add", "path": "/data", "value": {"a": "x".repeat(100_000)}})];
    for i in 0..40 {
        grow.push(json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}));
    }
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/x"),
        Some("application/json-patch+json"),
        json!(grow).to_string().as_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    let mut nest = vec![json!({"op": "add", "path": "/data", "value": {}})];
    let mut p = String::from("/data");
    for _ in 0..200 {
        nest.push(json!({"op": "add", "path": format!("{p}/n"), "value": {}}));
        p.push_str("/n");
    }
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/x"),
        Some("application/json-patch+json"),
        json!(nest).to_string().as_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/x"),
        Some("application/json-patch+json"),
        json!(many).to_string().as_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    // Names past the limits, and a field manager past 128 bytes.
    let long = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{}"}}}}"#,
        "a".repeat(300)
    );
    assert_status(
        &raw(&c, "POST", CM, Some("application/json"), long.as_bytes()).await,
        422,
        "Invalid",
    );
    let r = raw(
        &c,
        "POST",
        &format!("{CM}?fieldManager={}", "m".repeat(200)),
        Some("application/json"),
        br#"{"metadata":{"name":"ok"}}"#,
    )
    .await;
    assert_status(&r, 422, "Invalid");
    // Still serving.
    assert_eq!(raw(&c, "GET", "/version", None, b"").await.status, 200);
    c.shutdown().await;
}

/// Mutates a valid object at random: drops, retypes and garbles fields, then maybe truncates the text.
fn mutate(rng: &mut impl Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                match rng.random_range(0..10) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        m.insert(k, json!(rng.random::<i64>()));
                    }
                    2 => {
                        m.insert(k, json!([null, "x", {"y": []}]));
                    }
                    3 => {
                        m.insert(k, Value::Null);
                    }
                    _ => {
                        if let Some(child) = m.get_mut(&k) {
                            if depth < 8 {
                                mutate(rng, child, depth + 1);
                            }
                        }
                    }
                }
            }
            if rng.random_bool(0.2) {
                m.insert(
                    format!("k{}", rng.random::<u16>()),
                    json!({"$patch": "delete", "$retainKeys": 5}),
                );
            }
        }
        Value::Array(a) => {
            for item in a.iter_mut() {
                if depth < 8 {
                    mutate(rng, item, depth + 1);
                }
            }
            if rng.random_bool(0.3) {
                a.push(json!("stray"));
            }
        }
        Value::String(s) if rng.random_bool(0.3) => {
            *s = (0..rng.random_range(0..80))
                .map(|_| rng.random_range(32u8..127) as char)
                .collect();
        }
        _ => {}
    }
}

#[tokio::test]
async fn random_bodies_never_break_the_server() {
    let c = Cluster::start(SimOptions::default()).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let base = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fuzz", "labels": {"app": "fuzz"}, "finalizers": ["a/b"], "ownerReferences": [{"uid": "u", "name": "n", "kind": "K", "apiVersion": "v1"}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fuzz"}},
            "template": {"metadata": {"labels": {"app": "fuzz"}}, "spec": {"containers": [
                {"name": "c", "image": "i:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}]}}}
    });
    let dep = "/apis/apps/v1/namespaces/default/deployments";
    let seed = raw(
        &c,
        "POST",
        dep,
        Some("application/json"),
        base.to_string().as_bytes(),
    )
    .await;
    assert_eq!(seed.status, 201);
    let types = [
        "application/json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        APPLY,
        "application/yaml",
    ];
    for i in 0..400 {
        let mut body = base.clone();
        mutate(&mut rng, &mut body, 0);
        let mut text = if rng.random_bool(0.5) {
            body.to_string()
        } else {
            serde_yaml::to_string(&body).unwrap()
        };
        if rng.random_bool(0.15) {
            let cut = rng.random_range(0..text.len().max(1));
            text.truncate(text.floor_char_boundary(cut));
        }
        if rng.random_bool(0.05) {
            text = (0..rng.random_range(0..200))
                .map(|_| rng.random::<u8>() as char)
                .collect();
        }
        if rng.random_bool(0.1) {
            let op = ["add", "remove", "replace", "move", "copy", "test", "x"][rng.random_range(0..7)];
            let path = [
                "/spec/replicas",
                "/metadata/labels/x",
                "",
                "/a/b/c",
                "/spec/template/spec/containers/9",
            ][rng.random_range(0..5)];
            text = json!([{"op": op, "path": path, "from": "/metadata/name", "value": body}]).to_string();
        }
        let ct = types[rng.random_range(0..types.len())];
        let (method, path) = match rng.random_range(0..4) {
            0 => ("POST", dep.to_string()),
            1 => ("PUT", format!("{dep}/fuzz")),
            2 => (
                "PATCH",
                format!(
                    "{dep}/fuzz?fieldManager=f{}&force={}",
                    i % 3,
                    rng.random_bool(0.5)
                ),
            ),
            _ => ("PATCH", format!("{dep}/fuzz/status?fieldManager=f")),
        };
        let r = raw(&c, method, &path, Some(ct), text.as_bytes()).await;
        assert!(
            matches!(r.status, 200 | 201 | 400 | 404 | 409 | 415 | 422),
            "#{i} {method} {path} {ct}: unexpected {} for {text:?}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        if r.status >= 400 {
            assert_eq!(v["kind"], "Status", "#{i}: {v}");
            assert_eq!(v["code"], r.status);
        } else {
            assert_eq!(v["kind"], "Deployment", "#{i}: {v}");
        }
    }
    // The stored object is still a readable Deployment.
    let r = raw(&c, "GET", &format!("{dep}/fuzz"), None, b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["name"], "fuzz");
    c.shutdown().await;
}
