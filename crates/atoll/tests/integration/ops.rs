//! Health, readiness, metrics, request ids, the OpenAPI document.

use crate::support::TestServer;

#[tokio::test]
async fn ops_endpoints_answer_and_requests_carry_ids() {
    let server = TestServer::start().await;
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-request-id").is_some());
    assert_eq!(
        reqwest::get(format!("{}/readyz", server.url))
            .await
            .unwrap()
            .status(),
        200
    );

    let client = reqwest::Client::new();
    let echoed = client
        .get(format!("{}/api/v1/me", server.url))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
    assert_eq!(echoed.headers()["content-type"], "application/problem+json");
    let problem: atoll_protocol::Problem = echoed.json().await.unwrap();
    assert_eq!(problem.request_id.as_deref(), Some("trace-me-123"));
    assert!(
        server.log().contains("trace-me-123"),
        "request ids reach the log lines"
    );

    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("atoll_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/me\""), "{metrics}");
    assert!(
        metrics.contains("atoll_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("atoll_store_write_tx_seconds"),
        "{metrics}"
    );

    let openapi: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    assert!(openapi["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn the_api_accepts_the_console_cookie_only_with_its_csrf_token_for_changes() {
    let server = TestServer::start().await;
    let session = server.admin().await.token().unwrap().to_owned();
    let client = reqwest::Client::new();
    let cookie = format!("atoll_session={session}");
    let read = client
        .get(format!("{}/api/v1/workspaces", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "reads need no CSRF token");

    let change = |csrf: Option<String>| {
        let mut request = client
            .patch(format!("{}/api/v1/workspaces/demo", server.url))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"name": "Renamed"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    for csrf in [None, Some("csrf_wrong".to_owned())] {
        let refused = change(csrf).await.unwrap();
        assert_eq!(refused.status(), 403);
        let problem: atoll_protocol::Problem = refused.json().await.unwrap();
        assert_eq!(problem.code, "csrf_failed");
    }

    // The console embeds the session's token in its forms.
    let page = client
        .get(format!("{}/w/demo", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    let token = page[start..].split('"').next().unwrap().to_owned();
    assert_eq!(change(Some(token)).await.unwrap().status(), 200);
}
