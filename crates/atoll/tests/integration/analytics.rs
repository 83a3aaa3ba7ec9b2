//! Analytics, end to end: devices post events through the signed device API,
//! and every report answers exact numbers for a dataset built by hand.

use crate::support::TestServer;
use atoll_protocol::analytics::*;
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::events::{
    AttributeValue, EventBatch, EventBatchResponse, TrackedEvent, BACKGROUND, FOREGROUND, LAUNCH,
    LOGIN, PAGE_VIEW,
};
use atoll_protocol::ErrorCode;
use atoll_sdk::{DeviceClient, RequestOptions};
use std::collections::{BTreeMap, HashSet};

const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn date(day: i64) -> String {
    let (y, m, d) = atoll_protocol::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn event(name: &str, time: i64, session: &str) -> TrackedEvent {
    TrackedEvent {
        uuid: uuid::Uuid::new_v4().to_string(),
        event_id: name.into(),
        time,
        session_id: Some(session.into()),
        ..TrackedEvent::default()
    }
}

fn page(name: &str, time: i64, session: &str, referrer: Option<&str>, stay: i64) -> TrackedEvent {
    TrackedEvent {
        page: Some(name.into()),
        referrer: referrer.map(Into::into),
        duration_ms: Some(stay),
        ..event(PAGE_VIEW, time, session)
    }
}

async fn post(device: &DeviceClient, events: Vec<TrackedEvent>) -> EventBatchResponse {
    device
        .post(
            "/device/v1/events",
            &EventBatch {
                events,
                network: None,
            },
            &RequestOptions::default(),
        )
        .await
        .expect("batch accepted")
}

async fn refused(device: &DeviceClient, events: Vec<TrackedEvent>) -> ErrorCode {
    let error = device
        .post::<_, EventBatchResponse>(
            "/device/v1/events",
            &EventBatch {
                events,
                network: None,
            },
            &RequestOptions::default(),
        )
        .await
        .expect_err("batch refused");
    error.code().expect("a catalogue code")
}

async fn registered(
    server: &TestServer,
    platform: Platform,
    version: &str,
) -> (DeviceClient, tempfile::TempDir) {
    let (device, dir) = server.device();
    device
        .register(&RegisterRequest {
            platform: Some(platform),
            app_version: Some(version.into()),
            channel: Some("store".into()),
            ..RegisterRequest::default()
        })
        .await
        .unwrap();
    (device, dir)
}

/// One session of a device on a day: launch, foreground, pages, custom events,
/// background with the foreground time. Times are 10:00 UTC + `minute`.
fn session(day: i64, minute: i64, pages: &[&str], custom: &[&str]) -> Vec<TrackedEvent> {
    let id = uuid::Uuid::new_v4().to_string();
    let start = day * DAY + 10 * 3_600_000 + minute * 60_000;
    let mut events = vec![event(LAUNCH, start, &id), event(FOREGROUND, start, &id)];
    let mut time = start;
    let mut previous = None;
    for name in pages {
        time += 1_000;
        events.push(page(name, time, &id, previous, 20_000));
        previous = Some(*name);
    }
    for name in custom {
        time += 1_000;
        events.push(event(name, time, &id));
    }
    let mut background = event(BACKGROUND, time + 1_000, &id);
    background.duration_ms = Some(60_000);
    events.push(background);
    events
}

#[tokio::test]
async fn every_report_answers_exact_numbers_for_a_hand_built_dataset() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let today = now_ms().div_euclid(DAY);
    // Four past days A..D, so no event is in the future whatever the hour.
    let (a, b, c, d) = (today - 4, today - 3, today - 2, today - 1);
    let (d1, _k1) = registered(&server, Platform::Ios, "2.0").await;
    let (d2, _k2) = registered(&server, Platform::Android, "2.0").await;
    let (d3, _k3) = registered(&server, Platform::Android, "1.0").await;
    let (d4, _k4) = registered(&server, Platform::Ios, "2.0").await;

    // Day A: d1 (signs in as u1, as the SDK's login does: bind, then `$login`), d2, d3 are new.
    d1.bind_user("u1").await.unwrap();
    let mut d1_a = session(
        a,
        0,
        &["home", "item", "cart"],
        &["view_item", "add_to_cart", "purchase"],
    );
    let mut login = event(LOGIN, a * DAY + 10 * 3_600_000 + 500, "");
    login.session_id = d1_a[0].session_id.clone();
    login.user_id = Some("u1".into());
    d1_a.insert(2, login);
    let first = post(&d1, d1_a.clone()).await;
    assert_eq!(first.accepted as usize, d1_a.len());
    post(
        &d2,
        session(a, 5, &["home", "item"], &["view_item", "add_to_cart"]),
    )
    .await;
    post(&d3, session(a, 9, &["home"], &["view_item"])).await;
    // Day B: d1 and d2 return; d1 buys without viewing (no funnel start).
    post(&d1, session(b, 0, &["home"], &["purchase"])).await;
    post(&d2, session(b, 3, &["home"], &[])).await;
    // Day C: d1 returns, d4 is new and views then buys with no cart.
    post(&d1, session(c, 0, &["home"], &[])).await;
    post(
        &d4,
        session(c, 1, &["home", "item"], &["view_item", "purchase"]),
    )
    .await;
    // Day D: d1 and d4.
    post(&d1, session(d, 0, &["home"], &[])).await;
    post(&d4, session(d, 2, &["home"], &[])).await;

    // A retried batch is stored once.
    let retry = post(&d1, d1_a.clone()).await;
    assert_eq!((retry.accepted, retry.duplicates as usize), (0, d1_a.len()));

    let filter = ReportFilter {
        from: Some(date(a)),
        to: Some(date(d)),
        ..ReportFilter::default()
    };
    let overview = admin
        .analytics_overview("demo", &app, &filter)
        .await
        .unwrap();
    let column = |pick: fn(&OverviewDay) -> u64| overview.days.iter().map(pick).collect::<Vec<_>>();
    assert_eq!(column(|d| d.active_devices), vec![3, 2, 2, 2], "DAU");
    assert_eq!(column(|d| d.new_devices), vec![3, 0, 1, 0], "new devices");
    assert_eq!(
        column(|d| d.active_users),
        vec![1, 1, 1, 1],
        "active accounts"
    );
    assert_eq!(column(|d| d.new_users), vec![1, 0, 0, 0], "new accounts");
    assert_eq!(column(|d| d.wau), vec![3, 3, 4, 4], "WAU");
    assert_eq!(column(|d| d.cumulative_devices), vec![3, 3, 4, 4]);
    assert_eq!(column(|d| d.launches), vec![3, 2, 2, 2], "launches");
    assert_eq!(column(|d| d.sessions), vec![3, 2, 2, 2], "sessions");
    assert_eq!(
        overview.days[0].avg_session_ms, 60_000,
        "session length from $background"
    );
    assert_eq!(overview.totals.active_devices, 4);
    assert_eq!(overview.totals.new_devices, 4);
    let platforms = &overview
        .splits
        .iter()
        .find(|s| s.dimension == "platform")
        .unwrap()
        .values;
    let by_platform: BTreeMap<&str, u64> = platforms
        .iter()
        .map(|v| (v.value.as_str(), v.active_devices))
        .collect();
    assert_eq!(by_platform, BTreeMap::from([("android", 2), ("ios", 2)]));
    // The active-users report is the overview's device and account part.
    let active = admin
        .analytics_active_users("demo", &app, &filter)
        .await
        .unwrap();
    for (active, day) in active.days.iter().zip(&overview.days) {
        assert_eq!(
            (
                &active.date,
                active.active_devices,
                active.new_devices,
                active.active_users,
                active.new_users,
                active.wau,
                active.mau,
                active.cumulative_devices
            ),
            (
                &day.date,
                day.active_devices,
                day.new_devices,
                day.active_users,
                day.new_users,
                day.wau,
                day.mau,
                day.cumulative_devices
            )
        );
    }
    assert_eq!(active.days.len(), 4);
    assert_eq!(
        (active.totals.active_devices, active.totals.new_devices),
        (4, 4)
    );

    // Filters: only app version 2.0 (d1, d2, d4).
    let v2 = ReportFilter {
        app_version: Some("2.0".into()),
        ..filter.clone()
    };
    let overview_v2 = admin.analytics_overview("demo", &app, &v2).await.unwrap();
    assert_eq!(
        overview_v2
            .days
            .iter()
            .map(|d| d.active_devices)
            .collect::<Vec<_>>(),
        vec![2, 2, 2, 2]
    );

    // Retention: cohort A (3 devices) → 2, 1, 1 on the next days; cohort C (d4) → 1.
    let retention = admin
        .analytics_retention(
            "demo",
            &app,
            &filter,
            &RetentionQuery {
                periods: Some(3),
                ..RetentionQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(retention.cohorts.len(), 4);
    assert_eq!(retention.cohorts[0].size, 3);
    assert_eq!(
        retention.cohorts[0].retained,
        vec![Some(2), Some(1), Some(1)]
    );
    assert_eq!(retention.cohorts[1].size, 0);
    assert_eq!(retention.cohorts[2].size, 1);
    assert_eq!(retention.cohorts[2].retained[0], Some(1));
    assert_eq!(
        retention.cohorts[2].retained[1],
        Some(0),
        "today has begun and d4 is not active"
    );
    assert_eq!(
        retention.cohorts[2].retained[2], None,
        "the day after today has not begun"
    );
    let by_user = admin
        .analytics_retention(
            "demo",
            &app,
            &filter,
            &RetentionQuery {
                by: CountBy::User,
                periods: Some(1),
                ..RetentionQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (by_user.cohorts[0].size, by_user.cohorts[0].retained[0]),
        (1, Some(1))
    );

    // Funnel view_item → add_to_cart → purchase within an hour, by device.
    let funnel = FunnelDefinition {
        steps: ["view_item", "add_to_cart", "purchase"]
            .iter()
            .map(|e| FunnelStep {
                event_id: (*e).into(),
                filters: Vec::new(),
            })
            .collect(),
        window_secs: 3600,
        by: CountBy::Device,
    };
    let report = admin
        .analytics_funnel("demo", &app, &funnel, &filter)
        .await
        .unwrap();
    assert_eq!(
        report.steps.iter().map(|s| s.count).collect::<Vec<_>>(),
        vec![4, 2, 1]
    );
    assert_eq!(report.steps[1].conversion_from_previous, 0.5);
    assert_eq!(report.overall_conversion, 0.25);
    let saved = admin
        .analytics_save_funnel(
            "demo",
            &app,
            &CreateFunnel {
                name: "Checkout".into(),
                funnel: funnel.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        admin.analytics_funnels("demo", &app).await.unwrap(),
        vec![saved]
    );

    // Pages: home viewed in all 9 sessions; paths from home go to item three times (A: d1, d2; C: d4).
    let pages = admin.analytics_pages("demo", &app, &filter).await.unwrap();
    let home = pages.pages.iter().find(|p| p.page == "home").unwrap();
    assert_eq!((home.views, home.visitors, home.entries), (9, 4, 9));
    assert_eq!(home.exits, 6);
    assert_eq!(home.avg_stay_ms, 20_000);
    let cart = pages.pages.iter().find(|p| p.page == "cart").unwrap();
    assert_eq!((cart.views, cart.exits, cart.exit_rate), (1, 1, 1.0));
    let paths = admin
        .analytics_paths(
            "demo",
            &app,
            &filter,
            &PathQuery {
                page: "home".into(),
                depth: Some(2),
                top: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(paths.views, 9);
    let link = |step: u32, from: &str, to: &str| {
        paths
            .links
            .iter()
            .find(|l| l.step == step && l.from == from && l.to == to)
            .map_or(0, |l| l.count)
    };
    assert_eq!(link(0, "home", "item"), 3);
    assert_eq!(link(0, "home", "(exit)"), 6);
    assert_eq!(link(1, "item", "cart"), 1);
    assert_eq!(link(1, "item", "(exit)"), 2);

    // Events, with attribute grouping and the registry flag.
    let events = admin.analytics_events("demo", &app, &filter).await.unwrap();
    let stats = |name: &str| {
        events
            .events
            .iter()
            .find(|e| e.event_id == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (stats("view_item").count, stats("view_item").devices),
        (4, 4)
    );
    assert_eq!(stats("purchase").count, 3);
    assert_eq!(stats("purchase").users, 1, "only d1 is signed in");
    assert!(stats(LAUNCH).registered && !stats("purchase").registered);
    admin
        .analytics_define_event(
            "demo",
            &app,
            &EventDefinition {
                event_id: "purchase".into(),
                display_name: "Purchase".into(),
                ..EventDefinition::default()
            },
        )
        .await
        .unwrap();
    let events = admin.analytics_events("demo", &app, &filter).await.unwrap();
    assert!(
        events
            .events
            .iter()
            .find(|e| e.event_id == "purchase")
            .unwrap()
            .registered
    );

    // Behaviour: 9 sessions of 60 s; each device launches once on its active days.
    let behaviour = admin
        .analytics_behaviour("demo", &app, &filter)
        .await
        .unwrap();
    let bucket =
        |buckets: &[Bucket], label: &str| buckets.iter().find(|b| b.label == label).unwrap().count;
    assert_eq!(bucket(&behaviour.session_length, "1-3 min"), 9);
    assert_eq!(bucket(&behaviour.launches_per_day, "1"), 9);
    assert_eq!(behaviour.active_hours[10].devices, 4);

    // Distribution by app version.
    let versions = admin
        .analytics_distribution("demo", &app, "app_version", &filter)
        .await
        .unwrap();
    let by_version: BTreeMap<&str, u64> = versions
        .values
        .iter()
        .map(|v| (v.value.as_str(), v.devices))
        .collect();
    assert_eq!(by_version, BTreeMap::from([("1.0", 1), ("2.0", 3)]));

    // A device's timeline, newest first.
    let timeline = admin
        .analytics_timeline(
            "demo",
            &app,
            &TimelineQuery {
                device: Some(d4.device_id().to_owned()),
                ..TimelineQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(timeline.events.len(), 11);
    assert_eq!(timeline.events[0].event_id, BACKGROUND);
    assert!(timeline.events.windows(2).all(|w| w[0].time >= w[1].time));
}

#[tokio::test]
async fn each_ingest_rule_has_its_code_and_a_refused_batch_stores_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let (device, _dir) = registered(&server, Platform::Android, "1.0").await;
    let now = now_ms();
    let ok = || event("ok", now - 1000, "s");
    let with = |change: &dyn Fn(&mut TrackedEvent)| {
        let mut e = ok();
        change(&mut e);
        vec![ok(), e]
    };
    assert_eq!(
        refused(&device, vec![ok(); 501]).await,
        ErrorCode::TooManyEvents
    );
    assert_eq!(
        refused(&device, with(&|e| e.uuid = "x".into())).await,
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        refused(&device, with(&|e| e.event_id = "$mine".into())).await,
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        refused(&device, with(&|e| e.event_id = "e".repeat(41))).await,
        ErrorCode::NameTooLong
    );
    assert_eq!(
        refused(
            &device,
            with(&|e| {
                e.attributes
                    .insert("k".into(), AttributeValue::Text("v".repeat(101)));
            })
        )
        .await,
        ErrorCode::ValueTooLong
    );
    assert_eq!(
        refused(
            &device,
            with(&|e| for i in 0..26 {
                e.attributes
                    .insert(format!("k{i}"), AttributeValue::Bool(true));
            })
        )
        .await,
        ErrorCode::TooManyAttributes
    );
    assert_eq!(
        refused(&device, with(&|e| e.time = now - 8 * DAY)).await,
        ErrorCode::EventTimeOutOfRange
    );
    admin
        .analytics_define_event(
            "demo",
            &app,
            &EventDefinition {
                event_id: "buy".into(),
                attributes: vec![AttributeDefinition {
                    name: "price".into(),
                    kind: AttributeType::Number,
                    description: String::new(),
                }],
                ..EventDefinition::default()
            },
        )
        .await
        .unwrap();
    let mut typed = event("buy", now - 1000, "s");
    typed
        .attributes
        .insert("price".into(), AttributeValue::Text("cheap".into()));
    assert_eq!(
        refused(&device, vec![typed]).await,
        ErrorCode::AttributeTypeMismatch
    );
    admin
        .analytics_update_settings(
            "demo",
            &app,
            &AnalyticsSettings {
                reject_unregistered: true,
                retention_days: 365,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        refused(&device, vec![ok()]).await,
        ErrorCode::UnregisteredEvent
    );
    let mut declared = event("buy", now - 1000, "s");
    declared
        .attributes
        .insert("price".into(), AttributeValue::Number(9.5));
    assert_eq!(post(&device, vec![declared]).await.accepted, 1);

    // Nothing of the refused batches was stored: only the declared purchase.
    let events = admin
        .analytics_events("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(
        events.events.iter().map(|e| e.count).sum::<u64>(),
        1,
        "{events:?}"
    );

    // An unregistered device cannot post events.
    let (stranger, _s) = server.device();
    assert_eq!(
        refused(&stranger, vec![ok()]).await,
        ErrorCode::UnknownDevice
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_and_the_server_stays_small() {
    use std::io::Write;
    let server = TestServer::start().await;
    let (device, _dir) = registered(&server, Platform::Android, "1.0").await;
    // 64 MiB of JSON-ish zeros compress to a few dozen KiB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(b"{\"events\":[").unwrap();
    encoder.write_all(&vec![b' '; 64 * 1024 * 1024]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 200 * 1024);
    let answer =
        crate::support::signed_raw(&server, &device, "/device/v1/events", &bomb, "gzip").await;
    assert_eq!(answer.status(), 413);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "payload_too_large");
    // A real batch, gzip-compressed, goes through the same path.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let batch = EventBatch {
        events: vec![event("tap", now_ms() - 1000, "s")],
        network: None,
    };
    encoder
        .write_all(&serde_json::to_vec(&batch).unwrap())
        .unwrap();
    let answer = crate::support::signed_raw(
        &server,
        &device,
        "/device/v1/events",
        &encoder.finish().unwrap(),
        "gzip",
    )
    .await;
    assert_eq!(answer.status(), 200);
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
        })
        .unwrap();
    assert!(rss_kib < 512 * 1024, "peak memory {rss_kib} KiB");
}

#[tokio::test]
async fn overload_answers_503_with_retry_after_and_keeps_what_was_acknowledged() {
    let server = TestServer::start_with_env(&[
        ("ATOLL_ANALYTICS_MAX_UNFLUSHED_ROWS", "100"),
        ("ATOLL_ANALYTICS_FLUSH_ROWS", "1000000"),
        ("ATOLL_ANALYTICS_FLUSH_INTERVAL_SECS", "3600"),
    ])
    .await;
    let (device, _dir) = registered(&server, Platform::Android, "1.0").await;
    let now = now_ms();
    let batch = || {
        (0..50)
            .map(|i| event("tap", now - 1000 - i, "s"))
            .collect::<Vec<_>>()
    };
    assert_eq!(post(&device, batch()).await.accepted, 50);
    assert_eq!(post(&device, batch()).await.accepted, 50);
    let body = serde_json::to_vec(&EventBatch {
        events: batch(),
        network: None,
    })
    .unwrap();
    let error = device
        .send_raw(
            "POST",
            "/device/v1/events",
            "",
            &body,
            &RequestOptions::default(),
        )
        .await
        .expect_err("over the buffer cap");
    assert_eq!(error.code(), Some(ErrorCode::Unavailable));
    match &error {
        atoll_sdk::Error::Api {
            retry_after_secs, ..
        } => assert!(retry_after_secs.is_some(), "{error:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let admin = server.admin().await;
    let events = admin
        .analytics_events("demo", &server.demo.app_key, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(events.events[0].count, 100);
}

#[tokio::test]
async fn kill_9_during_ingest_loses_no_acknowledged_event() {
    let mut server =
        TestServer::start_with_env(&[("ATOLL_ANALYTICS_FLUSH_INTERVAL_SECS", "1")]).await;
    let app = server.demo.app_key.clone();
    let mut devices = Vec::new();
    for _ in 0..4 {
        devices.push(registered(&server, Platform::Android, "1.0").await);
    }
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let mut senders = Vec::new();
    for (device, _) in &devices {
        let device = server.device_in(&app, &server.demo.app_secret, &device_dir(&devices, device));
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            loop {
                let now = now_ms();
                let events: Vec<TrackedEvent> =
                    (0..50).map(|i| event("tap", now - i, "s")).collect();
                let uuids: Vec<String> = events.iter().map(|e| e.uuid.clone()).collect();
                let outcome = device
                    .post::<_, EventBatchResponse>(
                        "/device/v1/events",
                        &EventBatch {
                            events,
                            network: None,
                        },
                        &RequestOptions::default(),
                    )
                    .await;
                match outcome {
                    Ok(_) => acknowledged.lock().unwrap().extend(
                        uuids
                            .into_iter()
                            .map(|u| (device.device_id().to_owned(), u)),
                    ),
                    Err(_) => return,
                }
            }
        }));
    }
    // Let a few checkpoints happen while the writers run, then pull the plug.
    while acknowledged.lock().unwrap().len() < 6_000 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill9();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    server.restart().await;
    let admin = server.admin().await;
    let mut stored = HashSet::new();
    for (device, _) in &devices {
        let export = admin
            .analytics_export(
                "demo",
                &app,
                &PrivacyRequest {
                    device_id: Some(device.device_id().to_owned()),
                    user_id: None,
                },
            )
            .await
            .unwrap();
        for event in export {
            assert!(
                stored.insert(event.uuid.clone()),
                "event {} stored twice",
                event.uuid
            );
        }
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|(_, u)| !stored.contains(u))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost",
        missing.len(),
        acknowledged.len()
    );
}

fn device_dir(
    devices: &[(DeviceClient, tempfile::TempDir)],
    device: &DeviceClient,
) -> std::path::PathBuf {
    devices
        .iter()
        .find(|(d, _)| d.device_id() == device.device_id())
        .map(|(_, dir)| dir.path().to_owned())
        .unwrap()
}

#[tokio::test]
async fn privacy_export_and_delete_remove_one_device_everywhere() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let (keep, _k) = registered(&server, Platform::Ios, "1.0").await;
    let (forget, _f) = registered(&server, Platform::Ios, "1.0").await;
    let now = now_ms();
    post(
        &keep,
        vec![event("tap", now - 2000, "s"), event("tap", now - 1000, "s")],
    )
    .await;
    post(
        &forget,
        vec![event("tap", now - 2000, "t"), event("buy", now - 1000, "t")],
    )
    .await;
    let request = PrivacyRequest {
        device_id: Some(forget.device_id().to_owned()),
        user_id: None,
    };
    let export = admin
        .analytics_export("demo", &app, &request)
        .await
        .unwrap();
    assert_eq!(
        export
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        vec!["tap", "buy"]
    );
    let deleted = admin
        .analytics_delete("demo", &app, &request)
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 2);
    assert!(admin
        .analytics_export("demo", &app, &request)
        .await
        .unwrap()
        .is_empty());
    let overview = admin
        .analytics_overview("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(
        overview.totals.active_devices, 1,
        "the bitmaps forgot the device too"
    );
    let events = admin
        .analytics_events("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(events.events.iter().map(|e| e.count).sum::<u64>(), 2);
}

#[tokio::test]
async fn the_demo_seeds_a_week_of_history_for_every_chart() {
    let server = TestServer::start_with_env(&[("ATOLL_DEMO_DEVICES", "150")]).await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let overview = admin
        .analytics_overview("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(overview.days.len(), 7);
    assert!(
        overview.days.iter().all(|d| d.active_devices > 0),
        "{:?}",
        overview.days
    );
    assert_eq!(overview.days.last().unwrap().cumulative_devices, 150);
    let retention = admin
        .analytics_retention(
            "demo",
            &app,
            &ReportFilter::default(),
            &RetentionQuery::default(),
        )
        .await
        .unwrap();
    assert!(retention.cohorts[0].size > 0 && retention.cohorts[0].retained[0].unwrap() > 0);
    let pages = admin
        .analytics_pages("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert!(pages.pages.iter().any(|p| p.page == "checkout"));
}

#[tokio::test]
async fn the_sdk_tracker_delivers_sessions_pages_and_sign_ins() {
    use atoll_sdk::{Tracker, TrackerConfig};
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let (device, dir) = registered(&server, Platform::Ios, "3.0").await;
    let device = std::sync::Arc::new(device);
    let mut config = TrackerConfig::new(dir.path());
    config.auto_flush = false;
    let tracker = Tracker::open(device.clone(), config.clone()).await.unwrap();
    tracker.start().await.unwrap();
    tracker.page_begin("home").await.unwrap();
    tracker
        .track("search", [("keyword", "shoes")])
        .await
        .unwrap();
    tracker.page_end("home").await.unwrap();
    tracker.login("tracked-user").await.unwrap();
    tracker
        .track("purchase", [("amount", 42i64)])
        .await
        .unwrap();
    tracker.on_background().await.unwrap();
    // Events tracked and not yet sent survive an app restart.
    tracker
        .track("after_restart", atoll_sdk::tracker::NO_ATTRIBUTES)
        .await
        .unwrap();
    drop(tracker);
    let reopened = Tracker::open(device.clone(), config).await.unwrap();
    reopened.flush().await.unwrap();
    assert_eq!(reopened.stats().queued, 0);

    let events = admin
        .analytics_events("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    let count = |name: &str| {
        events
            .events
            .iter()
            .find(|e| e.event_id == name)
            .map_or(0, |e| e.count)
    };
    for name in [
        LAUNCH,
        FOREGROUND,
        PAGE_VIEW,
        "search",
        LOGIN,
        "purchase",
        BACKGROUND,
        "after_restart",
    ] {
        assert_eq!(count(name), 1, "{name}: {events:?}");
    }
    let timeline = admin
        .analytics_timeline(
            "demo",
            &app,
            &TimelineQuery {
                user: Some("tracked-user".into()),
                ..TimelineQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(timeline
        .events
        .iter()
        .any(|e| e.event_id == "purchase" && e.attributes["amount"] == "42"));
    let pages = admin
        .analytics_pages("demo", &app, &ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(pages.pages[0].page, "home");
}
