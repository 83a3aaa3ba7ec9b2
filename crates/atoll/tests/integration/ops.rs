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
