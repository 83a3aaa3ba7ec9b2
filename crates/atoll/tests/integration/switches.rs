//! Switches (remote config), end to end: an operator publishes typed, targeted
//! values; devices fetch them with the SDK (ETag, on-disk cache, listeners,
//! polling); history and rollback; the CLI.

use crate::support::TestServer;
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::switches::*;
use atoll_protocol::ErrorCode;
use atoll_sdk::switches::FetchOutcome;
use atoll_sdk::Switches;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn switch(key: &str, value_type: SwitchType, default: serde_json::Value) -> Switch {
    Switch {
        key: key.into(),
        value_type,
        description: String::new(),
        platforms: vec![],
        default,
        rules: vec![],
    }
}

fn targeted(when: &str, value: serde_json::Value) -> TargetedValue {
    TargetedValue {
        when: when.into(),
        value,
    }
}

fn first_set() -> Vec<Switch> {
    let mut checkout = switch("new_checkout", SwitchType::Bool, json!(false));
    checkout.rules = vec![
        targeted("app_version >= 3.0", json!(true)),
        targeted("platform = ios", json!(true)),
    ];
    let mut banner = switch("banner", SwitchType::String, json!("spring"));
    banner.platforms = vec![Platform::Android];
    vec![
        checkout,
        banner,
        switch("limits", SwitchType::Json, json!({"cart": 20})),
    ]
}

#[tokio::test]
async fn devices_get_targeted_values_with_etags_caches_listeners_and_rollback() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ws, app) = ("demo", server.demo.app_key.as_str());

    let empty = admin.switches(ws, app).await.unwrap();
    assert_eq!((empty.version, empty.switches.len()), (0, 0));
    let first = admin
        .publish_switches(
            ws,
            app,
            &PublishSwitches {
                expected_version: Some(0),
                message: "first".into(),
                switches: first_set(),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.author, "user:admin@demo.atoll");

    // An iOS device on 2.0: the second rule matches; the Android-only key is absent.
    let (device, storage) = server.device();
    device
        .register(&RegisterRequest {
            platform: Some(Platform::Ios),
            app_version: Some("2.0".into()),
            ..RegisterRequest::default()
        })
        .await
        .unwrap();
    let device = Arc::new(device);
    let defaults = BTreeMap::from([
        ("new_checkout".to_owned(), json!(false)),
        ("only_local".to_owned(), json!(7)),
    ]);
    let switches = Switches::new(device.clone(), defaults.clone());
    assert!(
        !switches.bool("new_checkout", true),
        "local default before any fetch"
    );
    let mut listener = switches.subscribe();
    let FetchOutcome::Updated(changed) = switches.fetch().await.unwrap() else {
        panic!("the first fetch brings values");
    };
    assert_eq!(changed, ["limits", "new_checkout"]);
    assert!(listener.has_changed().unwrap());
    assert_eq!(listener.borrow_and_update().version, 1);
    assert!(switches.bool("new_checkout", false));
    assert_eq!(switches.value("limits"), Some(json!({"cart": 20})));
    assert_eq!(switches.value("banner"), None, "android only");
    assert_eq!(switches.number("only_local", 0.0), 7.0);
    assert_eq!(
        switches.fetch().await.unwrap(),
        FetchOutcome::Unchanged,
        "304"
    );

    // After an app restart, offline: the cached values are there before any fetch.
    let restarted = Switches::new(device.clone(), defaults.clone());
    assert!(restarted.bool("new_checkout", false));
    assert_eq!(restarted.version(), 1);

    // One key changes: the listener hears exactly that key.
    let mut changed_checkout = switch("new_checkout", SwitchType::Bool, json!(false));
    changed_checkout.rules = vec![targeted("app_version >= 3.0", json!(true))];
    let second = admin
        .put_switch(
            ws,
            app,
            &PutSwitch {
                expected_version: Some(1),
                message: "iOS back to default".into(),
                switch: changed_checkout,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(
        switches.fetch().await.unwrap(),
        FetchOutcome::Updated(vec!["new_checkout".into()])
    );
    assert!(listener.has_changed().unwrap());
    assert!(!switches.bool("new_checkout", true));

    // A stale editor is refused instead of overwriting version 2.
    let stale = admin
        .publish_switches(
            ws,
            app,
            &PublishSwitches {
                expected_version: Some(1),
                message: "stale".into(),
                switches: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some(ErrorCode::Conflict));

    // History with diffs, newest first; rollback publishes version 1 again.
    let history = admin.switch_history(ws, app, None, None).await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(history[0].diff.changed.len(), 1);
    assert_eq!(history[0].diff.changed[0].fields, ["rules"]);
    assert_eq!(history[1].diff.added.len(), 3);
    let rolled = admin
        .rollback_switches(
            ws,
            app,
            &RollbackSwitches {
                version: 1,
                expected_version: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(rolled.version, 3);
    assert_eq!(
        rolled.switches,
        admin.switch_version(ws, app, 1).await.unwrap().switches
    );
    assert_eq!(rolled.message, "rollback to version 1");

    // Polling picks the rollback up without the app asking.
    let poller = Arc::new(Switches::new(device.clone(), defaults));
    let mut heard = poller.subscribe();
    let task = poller.poll(Duration::from_millis(200));
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            heard.changed().await.unwrap();
            if heard.borrow().version == 3 {
                break;
            }
        }
    })
    .await
    .expect("the poller hears version 3");
    task.abort();
    assert!(
        poller.bool("new_checkout", false),
        "rolled back to the iOS rule"
    );
    drop(storage);
}

#[tokio::test]
async fn bad_switches_get_clear_codes_and_percentages_are_sticky() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ws, app) = ("demo", server.demo.app_key.as_str());
    let publish = |switches: Vec<Switch>| PublishSwitches {
        expected_version: None,
        message: String::new(),
        switches,
    };

    let mut bad_rule = switch("a", SwitchType::Bool, json!(true));
    bad_rule.rules = vec![targeted("app_version >=", json!(false))];
    let error = admin
        .publish_switches(ws, app, &publish(vec![bad_rule]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidRule), "{error}");
    assert!(error.to_string().contains("targeted value 1"), "{error}");

    let wrong_type = switch("a", SwitchType::Number, json!("ten"));
    let error = admin
        .publish_switches(ws, app, &publish(vec![wrong_type]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed), "{error}");

    let twice = vec![
        switch("a", SwitchType::Bool, json!(true)),
        switch("a", SwitchType::Bool, json!(false)),
    ];
    let error = admin
        .publish_switches(ws, app, &publish(twice))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    let error = admin
        .delete_switch(ws, app, "missing", None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotFound));

    // An unregistered device is told so.
    let (stranger, _dir) = server.device();
    let error = Switches::new(Arc::new(stranger), BTreeMap::new())
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownDevice));

    // 10 % then 30 %: the same devices at 10 % after a restart, a superset at 30 %.
    let rollout = |percent: &str| {
        let mut rollout = switch("rollout", SwitchType::Bool, json!(false));
        rollout.rules = vec![targeted(&format!("percent({percent})"), json!(true))];
        publish(vec![rollout])
    };
    let ids: Vec<String> = (0..1000).map(|i| format!("device-{i}")).collect();
    let app = app.to_owned();
    admin
        .publish_switches(ws, &app, &rollout("10"))
        .await
        .unwrap();
    let at_10 = selected(&admin, &app, &ids).await;
    assert!(
        (70..=130).contains(&at_10.len()),
        "{} of 1000 at 10 %",
        at_10.len()
    );
    let mut server = server;
    assert!(server.terminate().success());
    server.restart().await;
    let admin = server.admin().await;
    assert_eq!(
        selected(&admin, &app, &ids).await,
        at_10,
        "sticky across restarts"
    );
    admin
        .publish_switches(ws, &app, &rollout("30"))
        .await
        .unwrap();
    let at_30 = selected(&admin, &app, &ids).await;
    assert!(
        (255..=345).contains(&at_30.len()),
        "{} of 1000 at 30 %",
        at_30.len()
    );
    assert!(
        at_10.iter().all(|id| at_30.contains(id)),
        "raising keeps everyone in"
    );
}

/// The ids whose evaluation turns the `rollout` switch on.
async fn selected(admin: &atoll_sdk::AdminClient, app: &str, ids: &[String]) -> Vec<String> {
    let mut selected = Vec::new();
    for id in ids {
        let sample = SampleDevice {
            device_id: id.clone(),
            ..SampleDevice::default()
        };
        let values = admin.evaluate_switches("demo", app, &sample).await.unwrap();
        if values.values["rollout"] == json!(true) {
            selected.push(id.clone());
        }
    }
    selected
}
