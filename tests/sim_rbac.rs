//! RBAC on the simulated cluster through kube's client with ServiceAccount tokens: what a binding grants,
//! per verb and scope, is allowed; everything else is 403 worded as kube-apiserver words it; tokens that
//! stand for nobody are 401.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use keelson::sim::{Cluster, SimOptions};
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::Status;
use serde_json::{Value, json};

async fn send(client: &kube::Client, method: &str, path: &str, body: Option<Value>) -> Result<Value, Status> {
    let mut req = http::Request::builder().method(method).uri(path);
    let bytes = match body {
        Some(b) => {
            let ct = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            req = req.header("content-type", ct);
            serde_json::to_vec(&b).unwrap()
        }
        None => Vec::new(),
    };
    match client.request::<Value>(req.body(bytes).unwrap()).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(s)) => Err(*s),
        Err(other) => panic!("{method} {path}: expected an API answer, got {other:?}"),
    }
}

/// The cluster, two namespaces, and a ServiceAccount `app/worker` with these grants:
/// - Role `app/cm-reader` (get, list, watch configmaps) by RoleBinding;
/// - Role `app/one-secret` (get secrets named `only-this`) by RoleBinding;
/// - ClusterRole `ns-viewer` (get, list namespaces) by ClusterRoleBinding;
/// - ClusterRole `scaler` (get, patch deployments/scale) by a RoleBinding in `app` only;
/// - a RoleBinding in `app` to a Role that does not exist.
async fn fixture() -> (Cluster, kube::Client) {
    let c = Cluster::start(SimOptions::default()).await.unwrap();
    let admin = c.client();
    let objects = [
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
        ),
        (
            "/api/v1/namespaces/app/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "worker"}}),
        ),
        (
            "/api/v1/namespaces/app/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        ),
        (
            "/api/v1/namespaces/app/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "only-this"}}),
        ),
        (
            "/api/v1/namespaces/app/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "another"}}),
        ),
        (
            "/apis/apps/v1/namespaces/app/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
        (
            "/apis/apps/v1/namespaces/other/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "cm-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "one-secret"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["only-this"], "verbs": ["get"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "ns-viewer"}, "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "scaler"}, "rules": [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}]}),
        ),
    ];
    for (path, body) in objects {
        send(&admin, "POST", path, Some(body)).await.unwrap();
    }
    let subject = json!([{"kind": "ServiceAccount", "name": "worker", "namespace": "app"}]);
    let bindings = [
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/rolebindings",
            "RoleBinding",
            "cm",
            "Role",
            "cm-reader",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/rolebindings",
            "RoleBinding",
            "secret",
            "Role",
            "one-secret",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/rolebindings",
            "RoleBinding",
            "scale",
            "ClusterRole",
            "scaler",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/app/rolebindings",
            "RoleBinding",
            "dangling",
            "Role",
            "missing",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "ClusterRoleBinding",
            "ns",
            "ClusterRole",
            "ns-viewer",
        ),
    ];
    for (path, kind, name, role_kind, role) in bindings {
        let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "subjects": subject, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}});
        send(&admin, "POST", path, Some(body)).await.unwrap();
    }
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), "app")
        .create_token_request("worker", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    let worker = c.client_with_token(&token).unwrap();
    (c, worker)
}

const SA: &str = "User \"system:serviceaccount:app:worker\"";

#[tokio::test]
async fn service_account_tokens_get_exactly_what_their_bindings_grant() {
    let (c, worker) = fixture().await;
    let scale = Some(json!({"spec": {"replicas": 2}}));
    let cm = Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}));
    // (method, path, body, the refusal's message or None when allowed)
    let cases: Vec<(&str, &str, Option<Value>, Option<String>)> = vec![
        ("GET", "/api/v1/namespaces/app/configmaps", None, None),
        ("GET", "/api/v1/namespaces/app/configmaps/c", None, None),
        (
            "POST",
            "/api/v1/namespaces/app/configmaps",
            cm.clone(),
            Some(format!(
                "configmaps is forbidden: {SA} cannot create resource \"configmaps\" in API group \"\" in the namespace \"app\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
            )),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/app/configmaps/c",
            None,
            Some(format!(
                "configmaps \"c\" is forbidden: {SA} cannot delete resource \"configmaps\" in API group \"\" in the namespace \"app\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
            )),
        ),
        (
            "GET",
            "/api/v1/namespaces/other/configmaps",
            None,
            Some(format!(
                "configmaps is forbidden: {SA} cannot list resource \"configmaps\" in API group \"\" in the namespace \"other\""
            )),
        ),
        (
            "GET",
            "/api/v1/configmaps",
            None,
            Some(format!(
                "configmaps is forbidden: {SA} cannot list resource \"configmaps\" in API group \"\" at the cluster scope"
            )),
        ),
        ("GET", "/api/v1/namespaces/app/secrets/only-this", None, None),
        (
            "GET",
            "/api/v1/namespaces/app/secrets/another",
            None,
            Some(format!(
                "secrets \"another\" is forbidden: {SA} cannot get resource \"secrets\" in API group \"\" in the namespace \"app\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
            )),
        ),
        (
            "GET",
            "/api/v1/namespaces/app/secrets",
            None,
            Some(format!(
                "secrets is forbidden: {SA} cannot list resource \"secrets\" in API group \"\" in the namespace \"app\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
            )),
        ),
        ("GET", "/api/v1/namespaces", None, None),
        ("GET", "/api/v1/namespaces/other", None, None),
        (
            "DELETE",
            "/api/v1/namespaces/other",
            None,
            Some(format!(
                "namespaces \"other\" is forbidden: {SA} cannot delete resource \"namespaces\" in API group \"\" in the namespace \"other\""
            )),
        ),
        (
            "POST",
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})),
            Some(format!(
                "namespaces is forbidden: {SA} cannot create resource \"namespaces\" in API group \"\" at the cluster scope"
            )),
        ),
        (
            "GET",
            "/apis/apps/v1/namespaces/app/deployments/web/scale",
            None,
            None,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/app/deployments/web/scale",
            scale.clone(),
            None,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/app/deployments/web",
            scale.clone(),
            Some(format!(
                "deployments.apps \"web\" is forbidden: {SA} cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"app\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
            )),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/other/deployments/web/scale",
            scale,
            Some(format!(
                "deployments.apps \"web\" is forbidden: {SA} cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"other\""
            )),
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            None,
            Some(format!(
                "clusterroles.rbac.authorization.k8s.io is forbidden: {SA} cannot list resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
            )),
        ),
        // Discovery is open to every authenticated user; other paths are not.
        ("GET", "/api", None, None),
        ("GET", "/apis/apps/v1", None, None),
        ("GET", "/version", None, None),
        (
            "GET",
            "/_unknown/path",
            None,
            Some(format!("forbidden: {SA} cannot get path \"/_unknown/path\"")),
        ),
    ];
    for (method, path, body, want) in cases {
        let got = send(&worker, method, path, body).await;
        match (want, got) {
            (None, Ok(_)) => {}
            (None, Err(s)) => panic!("{method} {path}: expected allowed, got {} {}", s.code, s.message),
            (Some(msg), Err(s)) => {
                assert_eq!(
                    (s.code, s.reason.as_str()),
                    (403, "Forbidden"),
                    "{method} {path}: {}",
                    s.message
                );
                assert_eq!(s.message, msg, "{method} {path}");
            }
            (Some(_), Ok(v)) => panic!("{method} {path}: expected 403, got {v}"),
        }
    }
    // What was refused changed nothing.
    let admin = c.client();
    assert!(
        send(&admin, "GET", "/api/v1/namespaces/app/configmaps/c", None)
            .await
            .is_ok()
    );
    assert!(
        send(&admin, "GET", "/api/v1/namespaces/app/configmaps/new", None)
            .await
            .is_err()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn access_reviews_answer_as_the_authorizer_decides() {
    let (c, worker) = fixture().await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(worker.clone());
    let ask = |verb: &str, resource: &str, ns: &str, name: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    for (verb, resource, ns, name, want) in [
        ("list", "configmaps", "app", "", true),
        ("list", "configmaps", "other", "", false),
        ("get", "secrets", "app", "only-this", true),
        ("get", "secrets", "app", "another", false),
        ("list", "namespaces", "", "", true),
    ] {
        let answer = reviews
            .create(&PostParams::default(), &ask(verb, resource, ns, name))
            .await
            .unwrap();
        assert_eq!(
            answer.status.unwrap().allowed,
            want,
            "{verb} {resource} {ns}/{name}"
        );
    }
    c.shutdown().await;
}

#[tokio::test]
async fn tokens_that_stand_for_nobody_are_unauthorized() {
    let (c, _worker) = fixture().await;
    let admin = c.client();
    let sas = Api::<ServiceAccount>::namespaced(admin.clone(), "app");
    let request = |audiences: Vec<String>, seconds: Option<i64>| TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty()).then_some(audiences),
            expiration_seconds: seconds,
            ..Default::default()
        }),
        ..Default::default()
    };
    // A token for another audience is not for the API server.
    let vault = sas
        .create_token_request(
            "worker",
            &PostParams::default(),
            &request(vec!["vault".into()], None),
        )
        .await
        .unwrap();
    // A lifetime under ten minutes is refused, as on a real server.
    let short = sas
        .create_token_request("worker", &PostParams::default(), &request(vec![], Some(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(&short, kube::Error::Api(s) if s.code == 422 && s.message.contains("may not specify a duration less than 10 minutes")),
        "{short:?}"
    );
    let expiring = c
        .service_account_token("app", "worker", Duration::from_secs(1))
        .unwrap();
    let fresh = sas
        .create_token_request("worker", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    let ok = c.client_with_token(&fresh).unwrap();
    assert!(
        send(&ok, "GET", "/api/v1/namespaces/app/configmaps", None)
            .await
            .is_ok()
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut cases = vec![
        ("another audience", vault.status.unwrap().token.unwrap()),
        ("expired", expiring),
        ("garbage", "not-a-token".to_string()),
    ];
    sas.delete("worker", &DeleteParams::default()).await.unwrap();
    cases.push(("of a deleted ServiceAccount", fresh));
    for (what, token) in cases {
        let client = c.client_with_token(&token).unwrap();
        let e = send(&client, "GET", "/api/v1/namespaces/app/configmaps", None)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (401, "Unauthorized", "Unauthorized"),
            "{what}"
        );
    }
    // Without a token a client is anonymous: not even discovery.
    let mut anonymous = c.config();
    anonymous.auth_info.token = None;
    let anonymous = kube::Client::try_from(anonymous).unwrap();
    let e = send(&anonymous, "GET", "/api", None).await.unwrap_err();
    assert_eq!(
        e.message,
        "forbidden: User \"system:anonymous\" cannot get path \"/api\""
    );
    assert!(send(&anonymous, "GET", "/version", None).await.is_ok());
    c.shutdown().await;
}

#[tokio::test]
async fn roles_and_bindings_grant_only_what_their_writer_holds() {
    let (c, worker) = fixture().await;
    let admin = c.client();
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/app";
    // The worker may write Roles and RoleBindings in `app`, as Keelson's own Role lets it.
    send(&admin, "POST", &format!("{rbac}/roles"), Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "rbac-writer"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
        "verbs": ["get", "create", "patch"]}]}))).await.unwrap();
    send(&admin, "POST", &format!("{rbac}/rolebindings"), Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "rbac-writer"}, "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "app"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rbac-writer"}}))).await.unwrap();
    let role = |name: &str, rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules});
    let binding = |name: &str, kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "app"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}})
    };

    // Within what it holds: allowed.
    send(
        &worker,
        "POST",
        &format!("{rbac}/roles"),
        Some(role(
            "cm-read",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
        )),
    )
    .await
    .unwrap();
    send(
        &worker,
        "POST",
        &format!("{rbac}/rolebindings"),
        Some(binding("cm-read", "Role", "cm-read")),
    )
    .await
    .unwrap();
    // More than it holds: refused, naming what is missing.
    let wider = role(
        "secrets",
        json!([{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["list", "get"]}]),
    );
    let e = send(&worker, "POST", &format!("{rbac}/roles"), Some(wider))
        .await
        .unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "roles.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"system:serviceaccount:app:worker\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:app\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\" \"get\"]}; resolution errors: [role.rbac.authorization.k8s.io \"missing\" not found]"
    );
    let e = send(
        &worker,
        "POST",
        &format!("{rbac}/rolebindings"),
        Some(binding("admin", "ClusterRole", "cluster-admin")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, 403);
    assert!(e.message.starts_with("rolebindings.rbac.authorization.k8s.io \"admin\" is forbidden: user \"system:serviceaccount:app:worker\""), "{}", e.message);
    assert!(
        e.message
            .contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{}",
        e.message
    );
    // An update that widens a role is refused as well; nothing was stored.
    let widen = json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "delete"]}]});
    let e = send(&worker, "PATCH", &format!("{rbac}/roles/cm-read"), Some(widen))
        .await
        .unwrap_err();
    assert_eq!(e.code, 403, "{}", e.message);
    assert!(
        send(&admin, "GET", &format!("{rbac}/roles/secrets"), None)
            .await
            .is_err()
    );
    // `bind` on a role lets a user bind it without holding it.
    send(
        &admin,
        "POST",
        &format!("{rbac}/roles"),
        Some(role(
            "binder",
            json!([{"apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"], "resourceNames": ["cluster-admin"], "verbs": ["bind"]}]),
        )),
    )
    .await
    .unwrap();
    send(&admin, "POST", &format!("{rbac}/rolebindings"), Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "binder"}, "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "app"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"}}))).await.unwrap();
    send(
        &worker,
        "POST",
        &format!("{rbac}/rolebindings"),
        Some(binding("admin", "ClusterRole", "cluster-admin")),
    )
    .await
    .unwrap();
    c.shutdown().await;
}

/// Server-side apply through `client` (field manager `t`), optionally as a dry run.
async fn apply(client: &kube::Client, path: &str, body: &Value, dry_run: bool) -> Result<Value, Status> {
    let dry = if dry_run { "&dryRun=All" } else { "" };
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("{path}?fieldManager=t{dry}"))
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(s)) => Err(*s),
        Err(other) => panic!("apply {path}: expected an API answer, got {other:?}"),
    }
}

/// (account, path, body, dry run, status, refusal message, verbs the request log says were authorized)
type ApplyCase = (
    &'static str,
    String,
    Value,
    bool,
    u16,
    Option<String>,
    Vec<&'static str>,
);

#[tokio::test]
async fn server_side_apply_that_creates_is_authorized_as_create_as_well_as_patch() {
    let c = Cluster::start(SimOptions::default()).await.unwrap();
    let admin = c.client();
    send(
        &admin,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}})),
    )
    .await
    .unwrap();
    send(
        &admin,
        "POST",
        "/api/v1/namespaces/app/configmaps",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "live"}})),
    )
    .await
    .unwrap();
    // Accounts, each with one ClusterRole on configmaps and namespaces; `dangling` also has a binding to a
    // Role that does not exist, which the authorizer names as its reason.
    let accounts = [
        ("patcher", vec!["patch"]),
        ("creator", vec!["create"]),
        ("both", vec!["patch", "create"]),
        ("dangling", vec!["patch"]),
    ];
    let mut clients = std::collections::HashMap::new();
    for (name, verbs) in &accounts {
        send(
            &admin,
            "POST",
            "/api/v1/namespaces/app/serviceaccounts",
            Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})),
        )
        .await
        .unwrap();
        send(&admin, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": [{"apiGroups": [""], "resources": ["configmaps", "namespaces"], "verbs": verbs}]}))).await.unwrap();
        send(&admin, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name}, "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "app"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}}))).await.unwrap();
        let token = c
            .service_account_token("app", name, Duration::from_secs(600))
            .unwrap();
        clients.insert(*name, c.client_with_token(&token).unwrap());
    }
    send(&admin, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/app/rolebindings", Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dangling"}, "subjects": [{"kind": "ServiceAccount", "name": "dangling", "namespace": "app"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "missing"}}))).await.unwrap();

    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let cms = "/api/v1/namespaces/app/configmaps";
    let cannot_patch = |who: &str, name: &str| {
        format!(
            "configmaps \"{name}\" is forbidden: User \"system:serviceaccount:app:{who}\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"app\""
        )
    };
    let cases: Vec<ApplyCase> = vec![
        // kube-apiserver's patch handler words the create refusal with the authorizer's reason alone.
        ("patcher", format!("{cms}/fresh"), cm("fresh"), false, 403, Some("configmaps \"fresh\" is forbidden: ".into()), vec!["patch"]),
        ("patcher", format!("{cms}/fresh"), cm("fresh"), true, 403, Some("configmaps \"fresh\" is forbidden: ".into()), vec!["patch"]),
        ("dangling", format!("{cms}/fresh"), cm("fresh"), false, 403,
            Some("configmaps \"fresh\" is forbidden: RBAC: role.rbac.authorization.k8s.io \"missing\" not found".into()), vec!["patch"]),
        ("patcher", "/api/v1/namespaces/fresh-ns".into(), json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh-ns"}}), false, 403,
            Some("namespaces \"fresh-ns\" is forbidden: ".into()), vec!["patch"]),
        // Validation answers first, as on a real server.
        ("patcher", format!("{cms}/Bad_Name"), cm("Bad_Name"), false, 422, None, vec!["patch"]),
        // An apply to an object that exists is a patch only.
        ("patcher", format!("{cms}/live"), cm("live"), false, 200, None, vec!["patch"]),
        // Without patch the request never gets past the door.
        ("creator", format!("{cms}/fresh"), cm("fresh"), false, 403, Some(cannot_patch("creator", "fresh")), vec![]),
        ("both", format!("{cms}/fresh"), cm("fresh"), true, 201, None, vec!["patch", "create"]),
        ("both", format!("{cms}/fresh"), cm("fresh"), false, 201, None, vec!["patch", "create"]),
        ("both", format!("{cms}/fresh"), cm("fresh"), false, 200, None, vec!["patch"]),
    ];
    for (who, path, body, dry_run, status, message, authorized) in cases {
        c.clear_request_log();
        let got = apply(&clients[who], &path, &body, dry_run).await;
        let code = match &got {
            Ok(_) => c.request_log().last().map(|r| r.status).unwrap_or_default(),
            Err(s) => s.code,
        };
        assert_eq!(code, status, "{who} applies {path} (dry run {dry_run}): {got:?}");
        if let Some(m) = &message {
            assert_eq!(&got.as_ref().unwrap_err().message, m, "{who} applies {path}");
        }
        let log = c.request_log();
        assert_eq!(log.len(), 1, "{who} applies {path}: one request, {log:?}");
        assert_eq!(log[0].verb, "patch");
        assert_eq!(
            log[0].authorized, authorized,
            "{who} applies {path} (dry run {dry_run})"
        );
    }
    // Nothing refused was stored: `fresh` exists once, made by the account that may create.
    let fresh = send(&admin, "GET", &format!("{cms}/fresh"), None).await.unwrap();
    assert_eq!(fresh["metadata"]["managedFields"][0]["manager"], "t");
    assert!(
        send(&admin, "GET", "/api/v1/namespaces/fresh-ns", None)
            .await
            .is_err()
    );
    c.shutdown().await;
}
