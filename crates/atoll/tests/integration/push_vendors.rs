//! Push through the vendor channels, end to end: the real binary sends to the
//! local fakes of APNs (HTTP/2 over TLS), FCM HTTP v1 and HMS Push Kit from
//! `atoll-push-fakes`, which check each vendor's protocol (auth tokens,
//! headers, payload limits) and answer as the vendor would, errors included.

use crate::support::TestServer;
use atoll_protocol::device::{Platform, PushChannel, RegisterRequest};
use atoll_protocol::push::*;
use atoll_push_fakes::{FakeApns, FakeFcm, FakeHms};
use atoll_sdk::{AdminClient, DeviceClient};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WS: &str = "demo";
const TOPIC: &str = "com.example.demo";
/// APNs device tokens are 32 bytes in hex.
const APNS_TOKEN: &str = "5d3b9a6c1e0f4a7b8c2d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

struct Vendors {
    apns: FakeApns,
    fcm: FakeFcm,
    hms: FakeHms,
    _ca_dir: tempfile::TempDir,
}

/// The fakes, and a server that trusts the APNs fake's certificate, retries
/// quickly and takes back a crashed node's claims after 2 s.
async fn start(extra_env: &[(&str, &str)]) -> (TestServer, AdminClient, Vendors) {
    let apns = FakeApns::start().await;
    let fcm = FakeFcm::start().await;
    let hms = FakeHms::start().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("fake-ca.pem");
    std::fs::write(&ca, apns.ca_pem()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let mut env = vec![
        ("ATOLL_PUSH_VENDOR_EXTRA_CA_FILES", ca.as_str()),
        ("ATOLL_PUSH_RETRY_BASE_MS", "100"),
        ("ATOLL_PUSH_LEASE_SECS", "2"),
    ];
    env.extend_from_slice(extra_env);
    let server = TestServer::start_with_env(&env).await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    for (channel, credentials) in [
        ("apns", apns.credentials(TOPIC)),
        ("fcm", fcm.credentials()),
        ("hms", hms.credentials()),
    ] {
        let info = admin
            .put_push_channel(
                WS,
                &app,
                channel,
                &ChannelCredentials {
                    credentials,
                    rate_per_sec: 0,
                    concurrency: 8,
                },
            )
            .await
            .expect("channel");
        assert!(!info.summary.contains("PRIVATE"), "no secret in {info:?}");
    }
    (
        server,
        admin,
        Vendors {
            apns,
            fcm,
            hms,
            _ca_dir: ca_dir,
        },
    )
}

/// A registered device with one vendor token (never connected to Atoll).
async fn phone(
    server: &TestServer,
    platform: Platform,
    channel: PushChannel,
    token: &str,
) -> (DeviceClient, tempfile::TempDir) {
    let (device, storage) = server.device();
    device
        .register(&RegisterRequest {
            platform: Some(platform),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");
    device
        .register_push_token(channel, token)
        .await
        .expect("token");
    (device, storage)
}

fn simple(targets: &[&str], title: &str) -> SimplePush {
    SimplePush {
        target_type: TargetType::Device,
        targets: targets
            .iter()
            .map(|t| PushTarget {
                target: (*t).into(),
                msg_key: None,
            })
            .collect(),
        title: title.into(),
        body: "body".into(),
        options: SendOptions {
            expires_in_secs: 3600,
            ..SendOptions::default()
        },
    }
}

async fn wait_task(
    admin: &AdminClient,
    app: &str,
    task: &str,
    done: impl Fn(&PushTaskDetail) -> bool,
) -> PushTaskDetail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let detail = admin.push_task(WS, app, task).await.expect("task");
        if done(&detail) || Instant::now() > deadline {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vendors_carry_pushes_to_offline_devices_and_dead_tokens_are_dropped() {
    let (server, admin, vendors) = start(&[]).await;
    let app = server.demo.app_key.clone();
    let (ios, _a) = phone(&server, Platform::Ios, PushChannel::Apns, APNS_TOKEN).await;
    let (android, _b) = phone(&server, Platform::Android, PushChannel::Fcm, "fcm-token-1").await;
    let (huawei, _c) = phone(&server, Platform::Harmony, PushChannel::Hms, "hms-token-1").await;

    let mut push = simple(
        &[ios.device_id(), android.device_id(), huawei.device_id()],
        "Your order shipped",
    );
    push.options.collapse_key = Some("order-42".into());
    push.options.extras.insert("order".into(), "42".into());
    let sent = admin.push_simple(WS, &app, &push).await.expect("push");
    let ids: HashMap<&str, &str> = sent
        .messages
        .iter()
        .map(|m| (m.target.as_str(), m.msg_id.as_str()))
        .collect();
    for (fake, device) in [
        (&*vendors.apns, &ios),
        (&*vendors.fcm, &android),
        (&*vendors.hms, &huawei),
    ] {
        if !fake.wait_for(1, Duration::from_secs(15)).await {
            let detail = admin.push_task(WS, &app, &sent.task_id).await;
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{} not reached: {detail:?}\n{}",
                device.device_id(),
                tail.join("\n")
            );
        }
        let got = &fake.received()[0];
        assert_eq!(got.title.as_deref(), Some("Your order shipped"));
        assert_eq!(got.collapse_key.as_deref(), Some("order-42"));
        assert_eq!(got.msg_id.as_deref(), Some(ids[device.device_id()]));
    }
    let apns = &vendors.apns.received()[0];
    assert_eq!(apns.http_version, "HTTP/2.0");
    assert_eq!(
        apns.headers.get("apns-topic").map(String::as_str),
        Some(TOPIC)
    );
    assert_eq!(
        apns.headers.get("apns-push-type").map(String::as_str),
        Some("alert")
    );
    assert_eq!(apns.raw_json["order"], "42");
    let detail = wait_task(&admin, &app, &sent.task_id, |d| d.task.counts.sent == 3).await;
    for channel in ["apns", "fcm", "hms"] {
        assert_eq!(detail.by_channel[channel].sent, 1, "{detail:?}");
    }

    // Revoke: APNs and HMS get a replacement under the same collapse key; FCM cannot.
    let revoked = admin
        .push_revoke(
            WS,
            &app,
            &RevokeRequest {
                task_id: Some(sent.task_id.clone()),
                ..RevokeRequest::default()
            },
        )
        .await
        .expect("revoke");
    assert_eq!(
        (revoked.withdrawn, revoked.not_revocable),
        (2, 1),
        "{revoked:?}"
    );
    for fake in [&*vendors.apns, &*vendors.hms] {
        assert!(fake.wait_for(2, Duration::from_secs(10)).await);
        let replacement = &fake.received()[1];
        assert_eq!(replacement.collapse_key.as_deref(), Some("order-42"));
        assert_eq!(replacement.body.as_deref(), Some("Message revoked"));
    }
    vendors.apns.clear();
    vendors.hms.clear();

    // The SDK reports arrival and opening of a vendor-delivered message.
    let second = admin
        .push_simple(WS, &app, &simple(&[android.device_id()], "second"))
        .await
        .expect("push");
    wait_task(&admin, &app, &second.task_id, |d| d.task.counts.sent == 1).await;
    android
        .report_push(&[second.messages[0].msg_id.clone()], PushEvent::Opened)
        .await
        .expect("report");
    let detail = wait_task(&admin, &app, &second.task_id, |d| d.task.counts.opened == 1).await;
    assert_eq!(detail.task.counts.arrived, 1, "{detail:?}");

    // A token the vendor calls dead fails the delivery and is removed from the device.
    vendors.apns.dead_token(APNS_TOKEN);
    let dead = admin
        .push_simple(WS, &app, &simple(&[ios.device_id()], "again"))
        .await
        .expect("push");
    let detail = wait_task(&admin, &app, &dead.task_id, |d| d.task.counts.failed == 1).await;
    assert_eq!(detail.failures.get("Unregistered"), Some(&1), "{detail:?}");
    let device = admin.get_device(WS, &app, ios.device_id()).await.unwrap();
    assert!(device.push_tokens.is_empty(), "{device:?}");

    // The same for FCM's UNREGISTERED.
    vendors.fcm.dead_token("fcm-token-1");
    let dead = admin
        .push_simple(WS, &app, &simple(&[android.device_id()], "again"))
        .await
        .expect("push");
    let detail = wait_task(&admin, &app, &dead.task_id, |d| d.task.counts.failed == 1).await;
    assert_eq!(detail.task.counts.failed, 1, "{detail:?}");
    let device = admin
        .get_device(WS, &app, android.device_id())
        .await
        .unwrap();
    assert!(device.push_tokens.is_empty(), "{device:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_vendor_slows_only_itself() {
    let (server, admin, vendors) = start(&[]).await;
    let app = server.demo.app_key.clone();
    let (ios, _a) = phone(&server, Platform::Ios, PushChannel::Apns, APNS_TOKEN).await;
    let (android, _b) = phone(&server, Platform::Android, PushChannel::Fcm, "fcm-t").await;
    vendors.fcm.throttle(1, 2);
    let started = Instant::now();
    admin
        .push_simple(WS, &app, &simple(&[android.device_id()], "fcm"))
        .await
        .expect("push");
    // Wait until FCM has said 429 before the APNs send.
    let deadline = Instant::now() + Duration::from_secs(10);
    while vendors.fcm.stats().rejected.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !vendors.fcm.stats().rejected.is_empty(),
        "FCM throttled once"
    );
    let apns_sent = Instant::now();
    admin
        .push_simple(WS, &app, &simple(&[ios.device_id()], "apns"))
        .await
        .expect("push");
    assert!(vendors.apns.wait_for(1, Duration::from_secs(5)).await);
    assert!(
        apns_sent.elapsed() < Duration::from_millis(1500),
        "APNs is not held back by FCM's pause: {:?}",
        apns_sent.elapsed()
    );
    assert!(vendors.fcm.wait_for(1, Duration::from_secs(15)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "FCM waited for its Retry-After: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_broadcast_loses_nothing_and_repeats_only_what_was_in_flight() {
    let (mut server, admin, vendors) = start(&[]).await;
    let app = server.demo.app_key.clone();
    const DEVICES: usize = 300;
    let mut storages = Vec::new();
    for i in 0..DEVICES {
        let (_, storage) = phone(
            &server,
            Platform::Android,
            PushChannel::Hms,
            &format!("hms-{i:04}"),
        )
        .await;
        storages.push(storage);
    }
    // Slow enough that the kill lands mid-broadcast: 8 in flight, 25 ms each.
    vendors.hms.set_latency(Duration::from_millis(25));
    let sent = admin
        .push_broadcast(
            WS,
            &app,
            &BroadcastPush {
                platform: Some(Platform::Android),
                binding: Binding::All,
                rule: None,
                title: "Flash sale".into(),
                body: "now".into(),
                template: None,
                values: Default::default(),
                msg_key: Some("flash-1".into()),
                options: SendOptions {
                    expires_in_secs: 3600,
                    collapse_key: Some("flash".into()),
                    ..SendOptions::default()
                },
            },
        )
        .await
        .expect("broadcast");
    assert!(vendors.hms.wait_for(60, Duration::from_secs(20)).await);
    server.kill9();
    let at_kill = vendors.hms.received().len();
    assert!(at_kill < DEVICES, "the kill came too late to test anything");
    server.restart().await;
    assert!(
        vendors.hms.wait_for(DEVICES, Duration::from_secs(40)).await,
        "only {} of {DEVICES} after the restart",
        vendors.hms.received().len()
    );
    // Let anything that would repeat arrive, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = vendors.hms.received();
    let mut per_token: HashMap<String, usize> = HashMap::new();
    for message in &received {
        *per_token.entry(message.token.clone()).or_default() += 1;
        // Every copy is the same message with the same collapse key: one notification.
        assert_eq!(
            message.msg_id.as_deref(),
            Some(sent.messages[0].msg_id.as_str())
        );
        assert_eq!(message.collapse_key.as_deref(), Some("flash"));
    }
    assert_eq!(per_token.len(), DEVICES, "every device got it");
    let repeats: usize = per_token.values().map(|n| n - 1).sum();
    // Repeats are bounded by what could be in flight at the kill: 8 requests
    // at the vendor, plus results not yet written (one writer batch).
    assert!(repeats <= 8 + 64, "{repeats} repeats");
    let admin = server.admin().await;
    let detail = wait_task(&admin, &app, &sent.task_id, |d| {
        d.task.counts.sent == DEVICES as u64
    })
    .await;
    assert_eq!(detail.task.counts.targeted, DEVICES as u64, "{detail:?}");
    assert_eq!(detail.task.counts.sent, DEVICES as u64, "{detail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_send_type_reaches_the_connection_and_each_vendor() {
    use atoll_sdk::sync::{PushNotice, SyncClient, SyncOptions};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let (server, admin, vendors) = start(&[]).await;
    let app = server.demo.app_key.clone();
    admin
        .create_push_template(
            WS,
            &app,
            &TemplateSpec {
                name: "greeting".into(),
                description: String::new(),
                title: "Hello #name#".into(),
                body: "Kind: #kind#".into(),
                url: None,
            },
        )
        .await
        .expect("template");
    // One device online on Atoll's connection, one per vendor.
    let (online, _o) = server.device();
    let online = Arc::new(online);
    online
        .register(&RegisterRequest {
            platform: Some(Platform::Android),
            ..RegisterRequest::default()
        })
        .await
        .unwrap();
    let sync = SyncClient::new(online.clone(), SyncOptions::default()).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    sync.on_push(move |notice| {
        if let PushNotice::Message(m) = notice {
            sink.lock().unwrap().push(m.title.clone());
        }
    });
    sync.start();
    assert!(sync.wait_connected(Duration::from_secs(10)).await);
    let (ios, _a) = phone(&server, Platform::Ios, PushChannel::Apns, APNS_TOKEN).await;
    let (android, _b) = phone(&server, Platform::Android, PushChannel::Fcm, "fcm-all").await;
    let (huawei, _c) = phone(&server, Platform::Harmony, PushChannel::Hms, "hms-all").await;
    let devices = [
        online.device_id().to_owned(),
        ios.device_id().to_owned(),
        android.device_id().to_owned(),
        huawei.device_id().to_owned(),
    ];
    let targets: Vec<PushTarget> = devices
        .iter()
        .map(|d| PushTarget {
            target: d.clone(),
            msg_key: None,
        })
        .collect();
    let options = SendOptions {
        expires_in_secs: 600,
        ..SendOptions::default()
    };
    let values = |name: &str, kind: &str| {
        BTreeMap::from([
            ("name".to_string(), name.to_string()),
            ("kind".to_string(), kind.to_string()),
        ])
    };
    admin
        .push_simple(
            WS,
            &app,
            &SimplePush {
                target_type: TargetType::Device,
                targets: targets.clone(),
                title: "simple".into(),
                body: "b".into(),
                options: options.clone(),
            },
        )
        .await
        .expect("simple");
    admin
        .push_template(
            WS,
            &app,
            &TemplatePush {
                target_type: TargetType::Device,
                targets: targets.clone(),
                template: "greeting".into(),
                values: values("all", "template"),
                options: options.clone(),
            },
        )
        .await
        .expect("template");
    admin
        .push_multiple(
            WS,
            &app,
            &MultiplePush {
                target_type: TargetType::Device,
                template: "greeting".into(),
                targets: devices
                    .iter()
                    .enumerate()
                    .map(|(i, d)| MultipleTarget {
                        target: d.clone(),
                        msg_key: Some(format!("multi-{i}")),
                        values: values(&format!("d{i}"), "multiple"),
                        extras: BTreeMap::new(),
                    })
                    .collect(),
                options: options.clone(),
            },
        )
        .await
        .expect("multiple");
    let broadcast = admin
        .push_broadcast(
            WS,
            &app,
            &BroadcastPush {
                platform: None,
                binding: Binding::All,
                rule: None,
                title: "broadcast".into(),
                body: "b".into(),
                template: None,
                values: Default::default(),
                msg_key: None,
                options,
            },
        )
        .await
        .expect("broadcast");
    assert_eq!(broadcast.state, "expanding");
    let expected = |i: usize| {
        vec![
            "simple".to_string(),
            "Hello all".to_string(),
            format!("Hello d{i}"),
            "broadcast".to_string(),
        ]
    };
    for (i, fake) in [(1, &*vendors.apns), (2, &*vendors.fcm), (3, &*vendors.hms)] {
        assert!(fake.wait_for(4, Duration::from_secs(15)).await, "{i}");
        let mut titles: Vec<String> = fake
            .received()
            .iter()
            .map(|r| r.title.clone().unwrap_or_default())
            .collect();
        titles.sort();
        let mut want = expected(i);
        want.sort();
        assert_eq!(titles, want, "vendor of device {i}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut titles = seen.lock().unwrap().clone();
    titles.sort();
    let mut want = expected(0);
    want.sort();
    assert_eq!(titles, want, "over the connection");
    // The vendor was told when the message expires.
    let expiration: i64 = vendors.apns.received()[0].headers["apns-expiration"]
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (expiration - (now + 600)).abs() < 60,
        "{expiration} vs {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vendor_outages_are_retried_then_dead_lettered_with_the_reason() {
    let (server, admin, vendors) = start(&[("ATOLL_PUSH_MAX_ATTEMPTS", "3")]).await;
    let app = server.demo.app_key.clone();
    let (huawei, _a) = phone(&server, Platform::Harmony, PushChannel::Hms, "hms-outage").await;
    // Two 503s, then the vendor is back: the third attempt delivers.
    vendors.hms.fail_unavailable(2);
    let sent = admin
        .push_simple(WS, &app, &simple(&[huawei.device_id()], "after an outage"))
        .await
        .expect("push");
    assert!(vendors.hms.wait_for(1, Duration::from_secs(20)).await);
    let detail = wait_task(&admin, &app, &sent.task_id, |d| d.task.counts.sent == 1).await;
    assert_eq!(detail.task.counts.sent, 1, "{detail:?}");
    let statuses = admin
        .push_device_messages(WS, &app, huawei.device_id())
        .await
        .unwrap();
    assert_eq!(statuses[0].attempts, 3, "{statuses:?}");
    // A longer outage: after 3 attempts the delivery fails with the vendor's reason.
    vendors.hms.fail_unavailable(10);
    let failed = admin
        .push_simple(WS, &app, &simple(&[huawei.device_id()], "lost"))
        .await
        .expect("push");
    let detail = wait_task(&admin, &app, &failed.task_id, |d| d.task.counts.failed == 1).await;
    assert_eq!(detail.task.counts.failed, 1, "{detail:?}");
    assert_eq!(detail.failures.values().sum::<u64>(), 1, "{detail:?}");
    assert_eq!(vendors.hms.received().len(), 1, "nothing more was accepted");
}
