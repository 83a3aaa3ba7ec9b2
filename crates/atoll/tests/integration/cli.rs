//! The CLI against a running server.

use crate::support::TestServer;
use std::process::Command;

fn atoll(server: &TestServer, config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .args(args)
        .env("ATOLL_CLI_CONFIG", config)
        .env_remove("ATOLL_TOKEN")
        .env("ATOLL_SERVER", &server.url)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_logs_in_and_manages_apps_tokens_and_devices() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credentials.toml");
    let (ok, _, stderr) = atoll(
        &server,
        &config,
        &[
            "login",
            "--email",
            "admin@demo.atoll",
            "--password",
            &server.demo.password,
        ],
    );
    assert!(ok, "{stderr}");

    let (ok, stdout, stderr) = atoll(&server, &config, &["app", "list"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("APP KEY"), "{stdout}");
    assert!(stdout.contains("Demo Shop"));

    let (ok, stdout, stderr) = atoll(
        &server,
        &config,
        &["app", "create", "CLI App", "--platform", "ios", "--json"],
    );
    assert!(ok, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(created["sdk_config"]["app_secret"]
        .as_str()
        .unwrap()
        .starts_with("as_"));

    let (ok, stdout, _) = atoll(
        &server,
        &config,
        &[
            "token",
            "create",
            "deploy",
            "--scope",
            "push:send",
            "--json",
        ],
    );
    assert!(ok);
    let token: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let token_id = token["token"]["id"].as_str().unwrap();
    let (ok, stdout, _) = atoll(&server, &config, &["token", "list"]);
    assert!(ok && stdout.contains("deploy"), "{stdout}");
    let (ok, _, _) = atoll(&server, &config, &["token", "revoke", token_id]);
    assert!(ok);

    let (ok, _, stderr) = atoll(
        &server,
        &config,
        &["device", "show", "nope", "--app", &server.demo.app_key],
    );
    assert!(!ok);
    assert!(
        stderr.contains("not_found (404)"),
        "errors print their code: {stderr}"
    );

    let (ok, stdout, _) = atoll(
        &server,
        &config,
        &["workspace", "create", "cli-made", "--name", "CLI made"],
    );
    assert!(ok, "{stdout}");
    let (ok, stdout, _) = atoll(&server, &config, &["workspace", "list", "--json"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let (ok, _, stderr) = atoll(&server, &config, &["app", "list"]);
    assert!(!ok, "two workspaces need --workspace");
    assert!(stderr.contains("--workspace"), "{stderr}");
}

#[tokio::test]
async fn the_cli_sets_reads_and_rolls_back_switches() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credentials.toml");
    let password = server.demo.password.clone();
    let login = [
        "login",
        "--email",
        "admin@demo.atoll",
        "--password",
        &password,
    ];
    assert!(atoll(&server, &config, &login).0);
    let app = server.demo.app_key.clone();
    let run = |args: &[&str]| {
        let mut all = vec!["switch"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--app", &app]);
        atoll(&server, &config, &all)
    };

    let (ok, stdout, stderr) = run(&[
        "set",
        "new_checkout",
        "false",
        "--rule",
        "platform = ios and percent(10) => true",
        "-m",
        "try on iOS",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("version 1"), "{stdout}");
    let (ok, _, stderr) = run(&["set", "welcome", "Hello => there"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = run(&["get", "new_checkout"]);
    assert!(ok);
    assert!(
        stdout.contains("platform = ios and percent(10) => true"),
        "{stdout}"
    );
    assert!(stdout.contains("bool"), "the type was guessed: {stdout}");
    let (ok, stdout, _) = run(&["get", "--json"]);
    assert!(ok);
    let set: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(set["version"], 2);
    assert_eq!(
        set["switches"][1]["default"], "Hello => there",
        "strings stay text"
    );

    let (ok, _, stderr) = run(&["set", "new_checkout", "maybe"]);
    assert!(!ok, "a bool switch refuses 'maybe'");
    assert!(stderr.contains("not a bool"), "{stderr}");
    let (ok, _, stderr) = run(&["set", "broken", "true", "--rule", "percent(200) => false"]);
    assert!(!ok);
    assert!(stderr.contains("invalid_rule"), "{stderr}");

    let (ok, stdout, _) = run(&["history"]);
    assert!(ok);
    assert!(
        stdout.contains("try on iOS") && stdout.contains("+ welcome"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(&["rollback", "1"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("version 3"), "{stdout}");
    let (ok, stdout, _) = run(&["get"]);
    assert!(ok && !stdout.contains("welcome"), "{stdout}");
    let (ok, _, _) = run(&["delete", "new_checkout"]);
    assert!(ok);
}

#[tokio::test]
async fn the_cli_sets_up_and_tries_a_gateway_api() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credentials.toml");
    let password = server.demo.password.clone();
    let login = [
        "login",
        "--email",
        "admin@demo.atoll",
        "--password",
        &password,
    ];
    assert!(atoll(&server, &config, &login).0);
    let app = server.demo.app_key.clone();
    let run = |args: &[&str]| {
        let mut all = vec!["gateway"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--app", &app]);
        atoll(&server, &config, &all)
    };

    let (ok, stdout, stderr) = run(&[
        "group",
        "create",
        "orders",
        "--base-url",
        "https://orders.example.com/api",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("orders"), "{stdout}");
    let (ok, _, stderr) = run(&[
        "api",
        "create",
        "com.shop.order.get",
        "--group",
        "orders",
        "--method",
        "GET",
        "--path",
        "/orders/${id}",
        "--per-device-qps",
        "5",
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = run(&["apis"]);
    assert!(ok);
    assert!(
        stdout.contains("com.shop.order.get") && stdout.contains("no"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(&["api", "enable", "com.shop.order.get"]);
    assert!(ok && stdout.contains("true"), "{stdout}{stderr}");

    // A mock makes the API answer without its backend; the test call shows it.
    let (ok, spec, _) = run(&["api", "show", "com.shop.order.get"]);
    assert!(ok);
    let mut spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    spec["mock"] = serde_json::json!({"body": {"status": "shipped"}});
    let file = dir.path().join("api.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let (ok, _, stderr) = run(&["api", "put", "com.shop.order.get", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&["test", "com.shop.order.get", "--body", r#"{"id":"7"}"#]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("< 200") && stdout.contains("shipped"),
        "{stdout}"
    );

    let (ok, document, _) = run(&["export", "orders"]);
    assert!(ok);
    assert!(document.contains("/orders/{id}"), "{document}");
    let (ok, _, stderr) = run(&[
        "api", "create", "bad-name", "--group", "orders", "--path", "/x",
    ]);
    assert!(!ok);
    assert!(stderr.contains("validation_failed"), "{stderr}");
    let (ok, stdout, _) = atoll(&server, &config, &["gateway", "keys"]);
    assert!(ok && stdout.contains("x25519-aes256gcm"), "{stdout}");
}

#[tokio::test]
async fn the_cli_creates_biz_types_and_sends_sync_orders() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credentials.toml");
    let password = server.demo.password.clone();
    let login = [
        "login",
        "--email",
        "admin@demo.atoll",
        "--password",
        &password,
    ];
    assert!(atoll(&server, &config, &login).0);
    let app = server.demo.app_key.clone();
    let run = |args: &[&str]| {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--app", &app]);
        atoll(&server, &config, &all)
    };
    let (ok, stdout, stderr) = run(&["create", "ORDER-STATUS", "--for", "user", "--multi-device"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ORDER-STATUS"), "{stdout}");
    let (ok, _, stderr) = run(&[
        "create",
        "NEWS",
        "--for",
        "device",
        "--global",
        "--keep-newest",
        "10",
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&[
        "send",
        "ORDER-STATUS",
        r#"{"order":42}"#,
        "--to",
        "alice",
        "--id",
        "o-42",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("OK") && stdout.contains("u:alice"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&[
        "send",
        "ORDER-STATUS",
        r#"{"order":42}"#,
        "--to",
        "alice",
        "--id",
        "o-42",
    ]);
    assert!(ok && stdout.contains("DUPLICATED_BIZ_ID"), "{stdout}");
    let (ok, stdout, stderr) = run(&["send", "NEWS", "hello", "--global"]);
    assert!(ok && stdout.contains(" g "), "{stdout}{stderr}");
    let (ok, stdout, _) = run(&["list"]);
    assert!(ok);
    let order_status = stdout
        .lines()
        .find(|line| line.starts_with("ORDER-STATUS"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        order_status.contains("user") && order_status.contains("online"),
        "{order_status}"
    );
    let (ok, _, stderr) = run(&["state", "NEWS", "offline"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["send", "NEWS", "again", "--global"]);
    assert!(!ok);
    assert!(stderr.contains("biz_type_offline"), "{stderr}");
    let (ok, _, stderr) = run(&["create", "bad_id"]);
    assert!(!ok && stderr.contains("validation_failed"), "{stderr}");
}
