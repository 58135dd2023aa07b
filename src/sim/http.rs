//! HTTP: routing Kubernetes paths to the API, reading bodies and parameters, fault injection, the request
//! log, and the `/_sim/...` control endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

use super::auth::{self, Attributes, User};
use super::codec::{Format, content_type, decode_body, error_response, json_response};
use super::faults::Fault;
use super::request::{
    DeleteOpts, FieldValidation, ListQuery, MAX_BODY, PatchKind, RequestContext, Target, WriteOpts,
};
use super::selectors::{FieldSelector, LabelSelector, supported_fields};
use super::stats::RequestRecord;
use super::status::ApiError;
use super::{Shared, discovery, openapi, partial, table, watch};

/// Accepts TLS connections until the cluster is cancelled, then lets open requests finish.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, tls: TlsAcceptor) {
    let cancel = shared.cancel.clone();
    let app = Router::new().fallback(handle).with_state(shared);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "simulated cluster: accept failed");
                    continue;
                }
            },
        };
        let (tls, app, cancel) = (tls.clone(), app.clone(), cancel.clone());
        connections.spawn(async move {
            // A client that never finishes its handshake does not hold a task for ever.
            let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "simulated cluster: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Who asks, and what the authorizer allowed them at the door.
struct Caller<'a> {
    user: &'a User,
    attrs: &'a Attributes,
}

/// The parsed request: what the request log and the API need.
struct Parsed {
    target: Target,
    verb: &'static str,
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = q {
        if let Ok(pairs) = serde_urlencoded_pairs(q) {
            for (k, v) in pairs {
                out.insert(k, v);
            }
        }
    }
    out
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ()> {
    let uri: axum::http::Uri = format!("/?{q}").parse().map_err(|_| ())?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|_| ())
}

fn route(
    state: &super::api::State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Parsed, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, r @ ..]
            if !(r.is_empty()
                || group.is_empty() && r.len() == 1 && matches!(r[0], "status" | "finalize")) =>
        {
            (Some(*ns), r)
        }
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::path_not_found()),
    };
    let info = state
        .registry
        .get(group, version, plural)
        .cloned()
        .ok_or_else(ApiError::path_not_found)?;
    if ns.is_some() && !info.namespaced {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = sub {
        let ok = (s == "status" && info.has_status)
            || (s == "scale" && info.has_scale)
            || (s == "token" && info.has_token)
            || (s == "log" && info.builtin && info.group.is_empty() && info.plural == "pods");
        if !ok {
            return Err(ApiError::path_not_found());
        }
    }
    if name.is_some_and(str::is_empty) || ns.is_some_and(str::is_empty) {
        return Err(ApiError::path_not_found());
    }
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) if sub.is_none() => "create",
        ("POST", true) if sub == Some("token") => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) if sub.is_none() => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let sub_verbs: &[&str] = match sub {
        Some("token") => &["create"],
        Some("log") => &["get"],
        _ => &["get", "update", "patch"],
    };
    if sub.is_some() && !sub_verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    if info.create_only && verb != "create" {
        return Err(ApiError::method_not_allowed());
    }
    if info.namespaced && ns.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::path_not_found());
    }
    Ok(Parsed {
        target: Target {
            info,
            namespace: ns.map(String::from),
            name: name.map(String::from),
            sub: sub.map(String::from),
        },
        verb,
    })
}

fn write_opts(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    verb: &str,
    apply: bool,
) -> Result<WriteOpts, ApiError> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "CreateOptions",
                "meta.k8s.io",
                "",
                vec![(
                    "dryRun".into(),
                    format!("Unsupported value: \"{other}\": supported values: \"All\""),
                )],
            ));
        }
    };
    let force = match q.get("force").map(String::as_str) {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::bad_request(format!("force: invalid value {other:?}"))),
    };
    if force && !apply {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![(
                "force".into(),
                "Forbidden: may not be specified for non-apply patch".into(),
            )],
        ));
    }
    let mut manager = q.get("fieldManager").cloned().unwrap_or_default();
    if manager.len() > 128 {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![(
                "fieldManager".into(),
                "Too long: may not be more than 128 bytes".into(),
            )],
        ));
    }
    if manager.is_empty() && !apply {
        // As the real server: a writer without a field manager is named after its user agent.
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        manager = ua
            .split('/')
            .next()
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect();
        if manager.is_empty() {
            manager = "unknown".into();
        }
    }
    let _ = verb;
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Invalid value: {other:?}: fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\""
            )));
        }
    };
    Ok(WriteOpts {
        dry_run,
        manager,
        force,
        field_validation,
    })
}

fn list_query(t: &Target, q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        supported_fields(&t.info.plural),
    )
    .map_err(ApiError::bad_request)?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}")))?,
        ),
    };
    let cont = q.get("continue").filter(|c| !c.is_empty()).cloned();
    Ok(ListQuery {
        labels,
        fields,
        limit,
        cont,
    })
}

fn delete_opts(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut o = DeleteOpts {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        propagation: q.get("propagationPolicy").cloned(),
        ..Default::default()
    };
    if let Some(g) = q.get("gracePeriodSeconds") {
        o.grace_period = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("gracePeriodSeconds: invalid value {g:?}")))?,
        );
    }
    if q.get("orphanDependents").is_some_and(|v| v == "true") {
        o.propagation = Some("Orphan".into());
    }
    if !body.is_empty() {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions: must be an object"));
        }
        if let Some(p) = v["propagationPolicy"].as_str() {
            o.propagation = Some(p.to_string());
        } else if v["orphanDependents"] == true {
            o.propagation = Some("Orphan".into());
        }
        if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
            o.grace_period = Some(g.as_i64().ok_or_else(|| {
                ApiError::bad_request("DeleteOptions: gracePeriodSeconds must be an integer")
            })?);
        }
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            o.dry_run = true;
        }
        o.precondition_uid = v["preconditions"]["uid"].as_str().map(String::from);
        o.precondition_rv = v["preconditions"]["resourceVersion"].as_str().map(String::from);
    }
    if let Some(p) = &o.propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                vec![("propagationPolicy".into(), format!("Unsupported value: \"{p}\""))],
            ));
        }
    }
    Ok(o)
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if too_large {
                Err(ApiError::too_large())
            } else {
                Err(ApiError::bad_request(format!("reading the request body: {e}")))
            }
        }
    }
}

async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return control(&shared, &parts.method, rest, body).await;
    }
    // Authentication, then authorization, before anything else looks at the request.
    let attrs = Attributes::of_request(&parts.method, &path, &query);
    let user = {
        let g = shared.lock();
        match shared.auth.authenticate(&parts.headers, &g.store) {
            Err(e) => Err((e, String::new())),
            Ok(user) => match auth::authorize(&g.store, &user, &attrs) {
                (true, _) => Ok(user),
                (false, reason) => Err((auth::forbidden(&user, &attrs, &reason), user.name)),
            },
        }
    };
    let user = match user {
        Ok(u) => u,
        Err((e, name)) => {
            refused(&shared, &parts, &attrs, &query, e.code, name);
            return error_response(&e);
        }
    };
    if let Some(resp) = non_resource(&shared, &parts.method, &path, &parts.headers) {
        shared.recorder.count_plain(resp.status().as_u16());
        return resp;
    }
    let parsed = {
        let g = shared.lock();
        route(&g, &parts.method, &path, &query)
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            shared.recorder.count_plain(e.code);
            return error_response(&e);
        }
    };
    let mut record = RequestRecord {
        user: user.name.clone(),
        warnings: Vec::new(),
        authorized: vec![attrs.verb.clone()],
        seq: 0,
        at: shared.started.elapsed(),
        method: parts.method.to_string(),
        verb: parsed.verb.to_string(),
        group: parsed.target.info.group.clone(),
        version: parsed.target.info.version.clone(),
        resource: parsed.target.info.plural.clone(),
        subresource: parsed.target.sub.clone(),
        namespace: parsed.target.namespace.clone(),
        name: parsed.target.name.clone(),
        field_manager: query.get("fieldManager").cloned(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        status: 0,
    };

    let decision = shared.faults.get().decide(parsed.verb, &mut rand::rng());
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(fault) = decision.fault {
        shared.recorder.count_fault();
        let resp = match fault {
            Fault::Error(code) => {
                let e = if code == 503 {
                    let mut e = ApiError::new(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request (injected fault)",
                    );
                    e.retry_after = Some(1);
                    e
                } else {
                    ApiError::internal(
                        "an error on the server (\"injected fault\") has prevented the request from succeeding",
                    )
                };
                error_response(&e)
            }
            Fault::Throttle(secs) => {
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "the server has received too many requests and has asked us to try again later (injected fault)",
                );
                e.retry_after = Some(secs);
                error_response(&e)
            }
            Fault::Drop => {
                // Headers go out, then the body fails: the client sees the connection cut mid-response.
                let stream = futures::stream::once(async {
                    Err::<Bytes, std::io::Error>(std::io::Error::other("injected connection drop"))
                });
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
        };
        // A dropped connection has no status: the log records 0.
        record.status = if fault == Fault::Drop {
            0
        } else {
            resp.status().as_u16()
        };
        shared.recorder.record(record);
        return resp;
    }

    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if parsed.target.sub.is_none() && partial::unacceptable(&accept, parsed.verb) {
        let e = ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (asked for {accept})"
            ),
        );
        let resp = error_response(&e);
        record.status = resp.status().as_u16();
        shared.recorder.record(record);
        return resp;
    }
    if parsed.verb == "watch" {
        let resp = match list_query(&parsed.target, &query) {
            Ok(lq) => watch::start(
                shared.clone(),
                parsed.target.clone(),
                lq,
                &query,
                table::wants_table(&accept),
                partial::wants_metadata(&accept) == Some(partial::MetadataForm::Object),
            ),
            Err(e) => error_response(&e),
        };
        record.status = resp.status().as_u16();
        shared.recorder.record(record);
        return resp;
    }
    if parsed.target.sub.as_deref() == Some("log") {
        let previous = query.get("previous").is_some_and(|v| v == "true");
        let log = shared.lock().pod_log(
            &parsed.target,
            query.get("container").map(String::as_str),
            previous,
        );
        let resp = match log {
            Ok(text) => {
                let mut r = Response::new(Body::from(text));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                r
            }
            Err(e) => error_response(&e),
        };
        record.status = resp.status().as_u16();
        shared.recorder.record(record);
        return resp;
    }
    let caller = Caller {
        user: &user,
        attrs: &attrs,
    };
    let result = dispatch(
        &shared,
        &parsed,
        &caller,
        &query,
        &parts.headers,
        body,
        &mut record,
    )
    .await;
    let mut resp = match result {
        Ok((code, value)) => {
            if parsed.verb == "create" {
                // The name of a created object is in the body, not the URL.
                record.name = value["metadata"]["name"].as_str().map(String::from);
            }
            if table::wants_table(&accept)
                && matches!(parsed.verb, "get" | "list")
                && parsed.target.sub.is_none()
            {
                let full = query.get("includeObject").is_some_and(|v| v == "Object");
                json_response(code, &table::to_table(&parsed.target.info, &value, full))
            } else if parsed.target.sub.is_none() {
                match (parsed.verb, partial::wants_metadata(&accept)) {
                    ("list", Some(partial::MetadataForm::List)) => {
                        json_response(code, &partial::list(&value))
                    }
                    ("get", Some(partial::MetadataForm::Object)) => {
                        json_response(code, &partial::object(&value))
                    }
                    _ => json_response(code, &value),
                }
            } else {
                json_response(code, &value)
            }
        }
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(path = %path, error = %e.message, "simulated cluster: internal error");
            }
            error_response(&e)
        }
    };
    for w in &record.warnings {
        // RFC 7234 warnings, as kube-apiserver sends them: `299 - "<text>"`.
        let text = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    record.status = resp.status().as_u16();
    shared.recorder.record(record);
    resp
}

/// A request refused before routing (401, 403) still counts, and resource requests are logged.
fn refused(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    attrs: &Attributes,
    query: &HashMap<String, String>,
    status: u16,
    user: String,
) {
    let Some(r) = &attrs.resource else {
        shared.recorder.count_plain(status);
        return;
    };
    let segs: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
    let version = match segs.as_slice() {
        ["api", v, ..] => *v,
        ["apis", _, v, ..] => *v,
        _ => "",
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    shared.recorder.record(RequestRecord {
        user,
        warnings: Vec::new(),
        authorized: Vec::new(),
        seq: 0,
        at: shared.started.elapsed(),
        method: parts.method.to_string(),
        verb: attrs.verb.clone(),
        group: r.group.clone(),
        version: version.to_string(),
        resource: r.resource.clone(),
        subresource: opt(&r.subresource),
        namespace: opt(&r.namespace).filter(|_| r.resource != "namespaces"),
        name: opt(&r.name),
        field_manager: query.get("fieldManager").cloned(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        status,
    });
}

async fn dispatch(
    shared: &Arc<Shared>,
    p: &Parsed,
    caller: &Caller<'_>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
    record: &mut RequestRecord,
) -> Result<(u16, Value), ApiError> {
    let t = &p.target;
    let user = caller.user;
    match p.verb {
        "get" => Ok((200, shared.lock().get(t)?)),
        "list" => {
            let lq = list_query(t, q)?;
            Ok((200, shared.lock().list(t, &lq)?))
        }
        "create" | "update" => {
            let format = Format::of_object(&content_type(headers), t.info.builtin)?;
            let opts = write_opts(q, headers, p.verb, false)?;
            let bytes = read_body(body).await?;
            let obj = decode_body(&bytes, format)?;
            let mut g = shared.lock();
            g.request = RequestContext {
                user: Some(user.clone()),
                field_validation: opts.field_validation,
                warnings: Vec::new(),
                create_attributes: None,
                authorized: Vec::new(),
            };
            let result = if t.sub.as_deref() == Some("token") {
                g.create_token(t, &obj, &shared.auth, opts.dry_run)
                    .map(|v| (201, v))
            } else if t.info.create_only {
                g.review(t, &obj, user, &shared.auth).map(|v| (201, v))
            } else if p.verb == "create" {
                g.create(t, obj, &opts).map(|v| (201, v))
            } else {
                g.update(t, obj, &opts).map(|v| (200, v))
            };
            record.warnings.extend(std::mem::take(&mut g.request).warnings);
            result
        }
        "patch" => {
            let ct = content_type(headers);
            let kind = match ct.as_str() {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/json-patch+json" => PatchKind::Json,
                "application/apply-patch+yaml" => PatchKind::Apply,
                _ => return Err(ApiError::unsupported_patch_type(t.info.builtin)),
            };
            let opts = write_opts(q, headers, p.verb, kind == PatchKind::Apply)?;
            let bytes = read_body(body).await?;
            let format = if kind == PatchKind::Apply {
                Format::Yaml
            } else {
                Format::Json
            };
            let patch = decode_body(&bytes, format)?;
            let existed = kind == PatchKind::Apply
                && shared
                    .lock()
                    .get(&Target {
                        sub: None,
                        ..t.clone()
                    })
                    .is_ok();
            let out = {
                let mut g = shared.lock();
                g.request = RequestContext {
                    user: Some(user.clone()),
                    field_validation: opts.field_validation,
                    warnings: Vec::new(),
                    create_attributes: (kind == PatchKind::Apply).then(|| Attributes {
                        verb: "create".into(),
                        ..caller.attrs.clone()
                    }),
                    authorized: Vec::new(),
                };
                let out = g.patch(t, kind, &patch, &opts);
                let request = std::mem::take(&mut g.request);
                record.warnings.extend(request.warnings);
                record.authorized.extend(request.authorized);
                out?
            };
            Ok((
                if kind == PatchKind::Apply && !existed {
                    201
                } else {
                    200
                },
                out,
            ))
        }
        "delete" => {
            let bytes = read_body(body).await?;
            let o = delete_opts(q, &bytes)?;
            let out = shared.lock().delete(t, &o)?;
            Ok((200, out))
        }
        "deletecollection" => {
            let bytes = read_body(body).await?;
            let o = delete_opts(q, &bytes)?;
            let lq = list_query(t, q)?;
            Ok((200, shared.lock().delete_collection(t, &lq, &o)?))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn non_resource(shared: &Shared, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    let ok_text = |s: &'static str| {
        let mut r = Response::new(Body::from(s));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match segs.as_slice() {
        ["version"] if get => Some(json_response(200, &discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] if get => Some(ok_text("ok")),
        ["api"] if get => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_string();
            Some(json_response(200, &discovery::core_versions(&host)))
        }
        ["api", v] if get => {
            let g = shared.lock();
            Some(match g.registry.resource_list("", v) {
                Some(l) => json_response(200, &l),
                None => error_response(&ApiError::path_not_found()),
            })
        }
        ["apis"] if get => Some(json_response(
            200,
            &discovery::group_list(&shared.lock().registry),
        )),
        ["apis", g] if get => {
            let st = shared.lock();
            Some(match discovery::group(&st.registry, g) {
                Some(v) => json_response(200, &v),
                None => error_response(&ApiError::path_not_found()),
            })
        }
        ["apis", g, v] if get => {
            let st = shared.lock();
            Some(match st.registry.resource_list(g, v) {
                Some(l) => json_response(200, &l),
                None => error_response(&ApiError::path_not_found()),
            })
        }
        ["openapi", "v3"] if get => Some(json_response(200, &openapi::root(&shared.lock().registry))),
        ["openapi", "v3", "api", v] if get => {
            Some(match openapi::group_version(&shared.lock().registry, "", v) {
                Some(d) => json_response(200, &d),
                None => error_response(&ApiError::path_not_found()),
            })
        }
        ["openapi", "v3", "apis", g, v] if get => {
            Some(match openapi::group_version(&shared.lock().registry, g, v) {
                Some(d) => json_response(200, &d),
                None => error_response(&ApiError::path_not_found()),
            })
        }
        ["openapi", ..] => Some(error_response(&ApiError::path_not_found())),
        [""] if get => Some(json_response(
            200,
            &serde_json::json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
        )),
        _ => None,
    }
}

/// `/_sim/stats`, `/_sim/requests`, `/_sim/faults`: outside the Kubernetes paths, never faulted or logged.
async fn control(shared: &Arc<Shared>, method: &Method, rest: &str, body: Body) -> Response {
    match (method.as_str(), rest.trim_end_matches('/')) {
        ("GET", "stats") => {
            let mut s = shared.recorder.stats();
            {
                let g = shared.lock();
                s.objects = g.store.count();
                s.resource_version = g.store.current_rv();
            }
            json_response(200, &serde_json::to_value(s).unwrap_or_default())
        }
        ("GET", "requests") => json_response(
            200,
            &serde_json::to_value(shared.recorder.log()).unwrap_or_default(),
        ),
        ("DELETE", "requests") => {
            shared.recorder.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", "faults") => json_response(
            200,
            &serde_json::to_value(shared.faults.get()).unwrap_or_default(),
        ),
        ("PUT", "faults") => {
            let bytes = match read_body(body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            let cfg: super::FaultConfig = match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => return error_response(&ApiError::bad_request(format!("fault configuration: {e}"))),
            };
            match shared.faults.set(cfg) {
                Ok(()) => json_response(
                    200,
                    &serde_json::to_value(shared.faults.get()).unwrap_or_default(),
                ),
                Err(e) => error_response(&ApiError::bad_request(format!("fault configuration: {e}"))),
            }
        }
        ("DELETE", "faults") => {
            shared.faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error_response(&ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want<'a> = Option<(&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>)>;

    #[test]
    fn route_table() {
        let st = super::super::api::State::new(
            super::super::controllers::Behaviour {
                ready_after: std::time::Duration::ZERO,
                job_duration: std::time::Duration::ZERO,
                unpullable: globset::GlobSet::empty(),
                failing_jobs: globset::GlobSet::empty(),
                crash_commands: globset::GlobSet::empty(),
            },
            10,
            Vec::new(),
        );
        let q = HashMap::new();
        let mut w = HashMap::new();
        w.insert("watch".to_string(), "true".to_string());
        let cases: Vec<(&str, &str, &HashMap<String, String>, Want)> = vec![
            (
                "GET",
                "/api/v1/namespaces/ns/pods/p",
                &q,
                Some(("get", Some("ns"), Some("p"), None)),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/pods",
                &q,
                Some(("list", Some("ns"), None, None)),
            ),
            ("GET", "/api/v1/pods", &w, Some(("watch", None, None, None))),
            (
                "GET",
                "/api/v1/namespaces/ns",
                &q,
                Some(("get", None, Some("ns"), None)),
            ),
            (
                "PUT",
                "/api/v1/namespaces/ns/status",
                &q,
                Some(("update", None, Some("ns"), Some("status"))),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                &q,
                Some(("patch", Some("a"), Some("d"), Some("scale"))),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments",
                &q,
                Some(("deletecollection", Some("a"), None, None)),
            ),
            (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                &q,
                Some(("create", None, None, None)),
            ),
            ("GET", "/apis/apps/v1/deployments/d", &q, None),
            ("GET", "/apis/apps/v1/namespaces/a/configmaps", &q, None),
            ("GET", "/api/v1/namespaces/a/configmaps/c/status", &q, None),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments/d/status",
                &q,
                None,
            ),
            ("GET", "/api/v2/pods", &q, None),
        ];
        for (method, path, query, want) in cases {
            let got = route(&st, &method.parse().unwrap(), path, query).ok().map(|p| {
                (
                    p.verb,
                    p.target.namespace.clone(),
                    p.target.name.clone(),
                    p.target.sub.clone(),
                )
            });
            let want =
                want.map(|(v, n, nm, s)| (v, n.map(String::from), nm.map(String::from), s.map(String::from)));
            assert_eq!(got, want, "{method} {path}");
        }
    }
}
