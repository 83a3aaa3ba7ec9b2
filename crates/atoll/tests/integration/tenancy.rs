//! Access control matrices, generated from the route list (the OpenAPI document
//! is built from the router itself, so a new route appears here automatically and
//! fails until the matrix knows how to call it).

use crate::support::TestServer;
use atoll_protocol::admin::{AddMember, CreateApp, CreateToken, Role};
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_sdk::AdminClient;
use serde_json::{json, Value};

/// Tenant A's objects, the values of every path parameter.
struct TenantA {
    workspace: String,
    app: String,
    device: String,
    user: String,
    member: String,
    token: String,
}

impl TenantA {
    fn fill(&self, path: &str) -> String {
        let mut filled = path.to_owned();
        for (name, value) in [
            ("workspace", &self.workspace),
            ("app", &self.app),
            ("device", &self.device),
            ("user", &self.user),
            ("member", &self.member),
            ("token", &self.token),
            ("event", &"buy".to_owned()),
            ("funnel", &"fnl_missing".to_owned()),
            ("dimension", &"app_version".to_owned()),
            ("key", &"checkout".to_owned()),
            ("version", &"1".to_owned()),
            ("id", &"rel_missing".to_owned()),
            ("name", &"testers".to_owned()),
            ("operation_type", &"com.shop.order.get".to_owned()),
            ("channel", &"hms".to_owned()),
            ("task", &"pt_missing".to_owned()),
        ] {
            filled = filled.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !filled.contains('{'),
            "the matrix has no value for a parameter of {path}: add it"
        );
        filled
    }
}

/// A valid body for each mutating route, so that a refusal is about access and
/// not about input. A route missing here fails the test.
fn body_for(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("post", "/api/v1/auth/login") => json!({"email": "x@y.z", "password": "0123456789"}),
        ("post", "/api/v1/auth/logout") => return None,
        ("post", "/api/v1/workspaces") => json!({"slug": "new-space", "name": "New"}),
        ("patch", "/api/v1/workspaces/{workspace}") => json!({"name": "Renamed"}),
        ("delete", "/api/v1/workspaces/{workspace}") => return None,
        ("post", "/api/v1/workspaces/{workspace}/apps") => {
            json!({"name": "Intruder", "platforms": ["ios"]})
        }
        ("patch", "/api/v1/workspaces/{workspace}/apps/{app}") => json!({"name": "Renamed"}),
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}") => return None,
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/rotate-secret") => {
            json!({"grace_seconds": 0})
        }
        ("post", "/api/v1/workspaces/{workspace}/members") => {
            json!({"email": "mallory@evil.test", "role": "viewer", "password": "0123456789abc"})
        }
        ("patch", "/api/v1/workspaces/{workspace}/members/{member}") => json!({"role": "viewer"}),
        ("delete", "/api/v1/workspaces/{workspace}/members/{member}") => return None,
        ("post", "/api/v1/workspaces/{workspace}/tokens") => {
            json!({"name": "stolen", "scopes": ["admin"]})
        }
        ("delete", "/api/v1/workspaces/{workspace}/tokens/{token}") => return None,
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels") => json!({
            "name": "stolen", "steps": [{"event_id": "a"}, {"event_id": "b"}], "window_secs": 3600
        }),
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels/{funnel}") => {
            return None
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/registry/{event}") => {
            json!({"event_id": "buy", "attributes": []})
        }
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/registry/{event}") => {
            return None
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/settings") => {
            json!({"reject_unregistered": true, "retention_days": 1})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/privacy/export")
        | ("post", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/privacy/delete") => {
            json!({"device_id": "some-device"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/analytics/backfill") => json!({
            "device": {"device_id": "intruder"},
            "events": [{"uuid": "5f0c1f4e-7a4b-4c55-9a57-2f1f7b0e6a11", "event_id": "x", "time": 1}]
        }),
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/switches")
        | ("post", "/api/v1/workspaces/{workspace}/apps/{app}/switches/preview") => json!({
            "switches": [{"key": "checkout", "type": "bool", "default": true}]
        }),
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/switches/keys/{key}") => json!({
            "switch": {"key": "checkout", "type": "bool", "default": false}
        }),
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/switches/keys/{key}") => return None,
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/switches/rollback") => {
            json!({"version": 1})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/switches/evaluate") => {
            json!({"device_id": "some-device"})
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/lists/{name}") => {
            json!({"kind": "user", "ids": ["u1", "u2"]})
        }
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/lists/{name}") => return None,
        // The body is the package file; the query says what it is.
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/packages") => json!("not a package"),
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/releases") => {
            json!({"package_id": "pkg_missing"})
        }
        ("patch", "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}") => {
            json!({"notes": "changed"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/promote") => {
            json!({"stage": "official"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/audience") => {
            json!({"device_ids": ["d-1", "d-2"]})
        }
        ("post", path)
            if path.starts_with("/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/") =>
        {
            return None
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups")
        | ("put", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}") => {
            json!({"name": "testers", "base_url": "https://backend.example.com/api"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}/openapi") => {
            json!({"openapi": "3.0.3", "paths": {}})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis")
        | ("put", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}") => {
            json!({"operation_type": "com.shop.order.get", "group": "testers", "path": "/orders"})
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/settings") => json!({}),
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/test") => {
            json!({"operation_type": "com.shop.order.get"})
        }
        ("post", "/api/v1/workspaces/{workspace}/gateway/keys/rotate") => json!({}),
        (
            "post",
            "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}/rotate-secret",
        )
        | (
            "post",
            "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}/enable",
        )
        | (
            "post",
            "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}/disable",
        )
        | ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/groups/{name}")
        | ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/gateway/apis/{operation_type}")
        | ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types/{id}") => {
            return None
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types")
        | ("put", "/api/v1/workspaces/{workspace}/apps/{app}/sync/biz-types/{id}") => {
            json!({"id": "MATRIX", "dimension": "user"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/sync/orders") => {
            json!({"biz_type": "MATRIX", "link_token": "u1", "third_msg_id": "t1", "payload": "p"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/sync/orders/global") => {
            json!({"biz_type": "MATRIX", "third_msg_id": "t1", "payload": "p"})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/simple") => json!({
            "targets": [{"target": "d-1"}], "title": "t", "body": "b", "expires_in_secs": 600
        }),
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/template") => json!({
            "targets": [{"target": "d-1"}], "template": "matrix", "expires_in_secs": 600
        }),
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/multiple") => json!({
            "targets": [{"target": "d-1"}], "template": "matrix", "expires_in_secs": 600
        }),
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/broadcast") => {
            json!({"title": "t", "body": "b", "expires_in_secs": 600})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/templates")
        | ("put", "/api/v1/workspaces/{workspace}/apps/{app}/push/templates/{name}") => {
            json!({"name": "matrix", "title": "Hi #name#", "body": "b"})
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/push/channels/{channel}") => {
            json!({"credentials": {"app_id": "1", "client_secret": "s"}})
        }
        ("put", "/api/v1/workspaces/{workspace}/apps/{app}/push/settings") => {
            json!({"cap_per_day": 3})
        }
        ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/revoke") => {
            json!({"task_id": "pt_missing"})
        }
        ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/push/templates/{name}")
        | ("delete", "/api/v1/workspaces/{workspace}/apps/{app}/push/channels/{channel}")
        | ("post", "/api/v1/workspaces/{workspace}/apps/{app}/push/tasks/{task}/cancel") => {
            return None
        }
        (method, path) => panic!("no example body for {method} {path}: add one to the matrix"),
    };
    Some(body)
}

/// Routes that touch no workspace object, with why each is exempt.
const NOT_TENANT_SCOPED: &[(&str, &str, &str)] = &[
    ("post", "/api/v1/auth/login", "anonymous by design"),
    (
        "post",
        "/api/v1/auth/logout",
        "ends the caller's own session",
    ),
    ("get", "/api/v1/me", "describes the caller only"),
    (
        "get",
        "/api/v1/workspaces",
        "lists what the caller can see (checked below)",
    ),
    (
        "post",
        "/api/v1/workspaces",
        "creates a new workspace owned by the caller",
    ),
];

/// POST routes that only compute an answer from what a viewer may read (their
/// body is a question, not a change), with why each is exempt from the 403 check.
const READ_ONLY_POSTS: &[(&str, &str)] = &[
    (
        "/api/v1/workspaces/{workspace}/apps/{app}/switches/preview",
        "diffs a proposed set against the one in force; stores nothing",
    ),
    (
        "/api/v1/workspaces/{workspace}/apps/{app}/switches/evaluate",
        "evaluates the set in force for a sample device; stores nothing",
    ),
    (
        "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/audience",
        "previews which sample devices a release selects; stores nothing",
    ),
];

async fn routes(server: &TestServer) -> Vec<(String, String)> {
    let document: Value = reqwest::get(format!("{}/api/v1/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.push((method.to_owned(), path.clone()));
            }
        }
    }
    assert!(
        routes.len() >= 20,
        "the route list looks incomplete: {routes:?}"
    );
    routes
}

async fn setup() -> (TestServer, TenantA, AdminClient, AdminClient, AdminClient) {
    let server = TestServer::start().await;
    let root = server.admin().await;
    // Tenant A: the demo workspace, with a device, a bound user, a member and a token.
    let (device, _dir) = server.device();
    device.register(&RegisterRequest::default()).await.unwrap();
    device.bind_user("user-of-a").await.unwrap();
    let viewer = root
        .add_member(
            "demo",
            &AddMember {
                email: "viewer@a.test".into(),
                role: Role::Viewer,
                name: None,
                password: Some("viewer-password-1".into()),
            },
        )
        .await
        .unwrap();
    let token = root
        .create_token(
            "demo",
            &CreateToken {
                name: "a-token".into(),
                scopes: vec!["admin".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    let tenant_a = TenantA {
        workspace: "demo".into(),
        app: server.demo.app_key.clone(),
        device: device.device_id().to_owned(),
        user: "user-of-a".into(),
        member: viewer.user.id.clone(),
        token: token.token.id.clone(),
    };

    // Tenant B: its own workspace and owner (not an instance admin), and an admin token.
    root.create_workspace("tenant-b", "Tenant B").await.unwrap();
    root.add_member(
        "tenant-b",
        &AddMember {
            email: "owner@b.test".into(),
            role: Role::Owner,
            name: None,
            password: Some("owner-b-password".into()),
        },
    )
    .await
    .unwrap();
    let mut owner_b = AdminClient::new(&server.url, None).unwrap();
    owner_b
        .login("owner@b.test", "owner-b-password")
        .await
        .unwrap();
    owner_b
        .create_app(
            "tenant-b",
            &CreateApp {
                name: "B app".into(),
                platforms: vec![Platform::Ios],
            },
        )
        .await
        .unwrap();
    let b_token = owner_b
        .create_token(
            "tenant-b",
            &CreateToken {
                name: "b-admin".into(),
                scopes: vec!["admin".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    let token_b = server.client_with(&b_token.secret);
    let mut viewer_a = AdminClient::new(&server.url, None).unwrap();
    viewer_a
        .login("viewer@a.test", "viewer-password-1")
        .await
        .unwrap();
    (server, tenant_a, owner_b, token_b, viewer_a)
}

#[tokio::test]
async fn another_tenant_gets_nothing_of_workspace_a_on_any_route() {
    let (server, tenant_a, owner_b, token_b, _) = setup().await;
    let secret_markers = [
        tenant_a.app.as_str(),
        tenant_a.device.as_str(),
        "viewer@a.test",
        "a-token",
    ];
    let mut checked = 0;
    for (method, path) in routes(&server).await {
        if NOT_TENANT_SCOPED
            .iter()
            .any(|(m, p, _)| *m == method && *p == path)
        {
            continue;
        }
        assert!(
            path.contains("{workspace}"),
            "{method} {path}: not workspace-scoped and not exempted"
        );
        let url = tenant_a.fill(&path);
        let body = if method == "get" {
            None
        } else {
            body_for(&method, &path)
        };
        for (who, client) in [("owner of B", &owner_b), ("admin token of B", &token_b)] {
            let (status, answer) = client
                .raw(&method.to_uppercase(), &url, body.as_ref())
                .await
                .unwrap();
            assert!(
                status == 404 || status == 403,
                "{who}: {method} {url} answered {status}: {answer}"
            );
            let text = answer.to_string();
            for marker in secret_markers {
                assert!(
                    !text.contains(marker),
                    "{who}: {method} {url} leaked {marker}: {text}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} checks ran");

    // The exempt list route shows B only its own workspace.
    let (_, listed) = token_b
        .raw("GET", "/api/v1/workspaces", None)
        .await
        .unwrap();
    assert!(!listed.to_string().contains("\"demo\""), "{listed}");
    let (_, listed) = owner_b
        .raw("GET", "/api/v1/workspaces", None)
        .await
        .unwrap();
    assert!(!listed.to_string().contains("\"demo\""), "{listed}");

    // Nothing of A changed.
    let root = server.admin().await;
    let app = root.get_app("demo", &tenant_a.app).await.unwrap();
    assert_eq!(app.name, "Demo Shop");
    assert_eq!(root.list_members("demo").await.unwrap().len(), 2);
}

#[tokio::test]
async fn viewers_get_403_on_every_mutating_route() {
    let (server, tenant_a, _, _, viewer) = setup().await;
    let mut checked = 0;
    for (method, path) in routes(&server).await {
        if method == "get"
            || NOT_TENANT_SCOPED
                .iter()
                .any(|(m, p, _)| *m == method && *p == path)
            || (method == "post" && READ_ONLY_POSTS.iter().any(|(p, _)| *p == path))
        {
            continue;
        }
        let url = tenant_a.fill(&path);
        let body = body_for(&method, &path);
        let (status, answer) = viewer
            .raw(&method.to_uppercase(), &url, body.as_ref())
            .await
            .unwrap();
        assert_eq!(
            status, 403,
            "viewer: {method} {url} answered {status}: {answer}"
        );
        assert_eq!(answer["code"], "forbidden");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} mutating routes checked");
    // Reads work for viewers.
    let (status, _) = viewer
        .raw(
            "GET",
            &tenant_a.fill("/api/v1/workspaces/{workspace}/apps"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let root = server.admin().await;
    assert_eq!(
        root.get_app("demo", &tenant_a.app).await.unwrap().name,
        "Demo Shop"
    );
}

#[tokio::test]
async fn scoped_tokens_do_only_what_their_scopes_say_and_die_when_revoked() {
    let server = TestServer::start().await;
    let root = server.admin().await;
    let read = root
        .create_token(
            "demo",
            &CreateToken {
                name: "reader".into(),
                scopes: vec!["read".into()],
                expires_in_days: Some(1),
            },
        )
        .await
        .unwrap();
    let reader = server.client_with(&read.secret);
    assert_eq!(reader.list_apps("demo").await.unwrap().len(), 1);
    let error = reader
        .create_app(
            "demo",
            &CreateApp {
                name: "x".into(),
                platforms: vec![Platform::Web],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    let error = reader
        .create_token(
            "demo",
            &CreateToken {
                name: "escalate".into(),
                scopes: vec!["admin".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    let push = root
        .create_token(
            "demo",
            &CreateToken {
                name: "pusher".into(),
                scopes: vec!["push:send".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    let error = server
        .client_with(&push.secret)
        .list_apps("demo")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403), "push:send does not read");

    root.revoke_token("demo", &read.token.id).await.unwrap();
    let error = reader.list_apps("demo").await.unwrap_err();
    assert_eq!(error.status(), Some(401));

    let unknown_scope = root
        .create_token(
            "demo",
            &CreateToken {
                name: "odd".into(),
                scopes: vec!["root".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(unknown_scope.status(), Some(422));

    // Token secrets are stored hashed: the database never holds the secret.
    let db = std::fs::read(server.data_dir.path().join("data/meta.db")).unwrap();
    let wal = std::fs::read(server.data_dir.path().join("data/meta.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(push.secret.len())
            .any(|window| window == push.secret.as_bytes()));
    }

    // Every mutation above is in the audit log.
    let actions: Vec<String> = root
        .audit_log("demo", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    for expected in [
        "token.create",
        "token.revoke",
        "app.create",
        "workspace.create",
    ] {
        assert!(
            actions.iter().any(|action| action == expected),
            "{expected} missing from {actions:?}"
        );
    }
}

#[tokio::test]
async fn members_cannot_grant_more_than_they_hold_and_the_last_owner_stays() {
    let server = TestServer::start().await;
    let root = server.admin().await;
    root.add_member(
        "demo",
        &AddMember {
            email: "admin2@a.test".into(),
            role: Role::Admin,
            name: Some("Ada".into()),
            password: Some("admin2-password".into()),
        },
    )
    .await
    .unwrap();
    let mut admin2 = AdminClient::new(&server.url, None).unwrap();
    admin2
        .login("admin2@a.test", "admin2-password")
        .await
        .unwrap();
    let error = admin2
        .add_member(
            "demo",
            &AddMember {
                email: "o@a.test".into(),
                role: Role::Owner,
                name: None,
                password: Some("owner-password".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    admin2
        .add_member(
            "demo",
            &AddMember {
                email: "dev@a.test".into(),
                role: Role::Developer,
                name: None,
                password: Some("dev-password-1".into()),
            },
        )
        .await
        .unwrap();
    let (status, body) = admin2
        .raw(
            "POST",
            "/api/v1/workspaces/demo/members",
            Some(&json!({"email": "dev@a.test", "role": "viewer"})),
        )
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));

    // The owner of a workspace they created cannot leave it ownerless.
    admin2.create_workspace("solo", "Solo").await.unwrap();
    let me = admin2.me().await.unwrap().user.unwrap();
    let (status, body) = admin2
        .raw(
            "PATCH",
            &format!("/api/v1/workspaces/solo/members/{}", me.id),
            Some(&json!({"role": "admin"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
}

#[tokio::test]
async fn bodies_cannot_smuggle_tenant_or_role_fields() {
    let server = TestServer::start().await;
    let root = server.admin().await;
    let app = server.demo.app_key.clone();
    let me = root.me().await.unwrap().user.unwrap();
    let attempts = [
        (
            "PATCH",
            format!("/api/v1/workspaces/demo/apps/{app}"),
            json!({"name": "x", "workspace": "other"}),
        ),
        (
            "PATCH",
            "/api/v1/workspaces/demo".to_owned(),
            json!({"name": "x", "id": "ws_other"}),
        ),
        (
            "POST",
            "/api/v1/workspaces/demo/apps".to_owned(),
            json!({"name": "x", "platforms": ["ios"], "app_key": "ak_chosen"}),
        ),
        (
            "PATCH",
            format!("/api/v1/workspaces/demo/members/{}", me.id),
            json!({"role": "owner", "instance_admin": true}),
        ),
        (
            "POST",
            "/api/v1/workspaces/demo/tokens".to_owned(),
            json!({"name": "t", "scopes": ["read"], "workspace_id": "ws_other"}),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = root.raw(method, &path, Some(&body)).await.unwrap();
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "invalid_request", "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("unknown field"),
            "{answer}"
        );
    }
    let (status, answer) = root
        .raw("POST", "/api/v1/workspaces", Some(&json!("not an object")))
        .await
        .unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(root.get_app("demo", &app).await.unwrap().name, "Demo Shop");
}
