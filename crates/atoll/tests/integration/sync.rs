//! Real-time sync, end to end: biz types and orders through the admin API,
//! devices on `/device/v1/connect` through the SDK's `SyncClient` (or a raw
//! WebSocket where a test needs a misbehaving client).

use crate::support::TestServer;
use atoll_protocol::sync::*;
use atoll_protocol::ErrorCode;
use atoll_sdk::sync::{SyncClient, SyncEvent, SyncOptions};
use atoll_sdk::{AdminClient, DeviceClient};
use atoll_ws::client::WsClient;
use atoll_ws::decode::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WS: &str = "demo";

fn biz(id: &str, dimension: Dimension) -> BizTypeSpec {
    BizTypeSpec {
        id: id.into(),
        description: String::new(),
        dimension,
        persistent: true,
        backlog_threshold: None,
        multi_device: false,
        global_allowed: false,
        retention_days: 30,
        user_consistency: false,
        enabled: true,
    }
}

fn order(biz_type: &str, link_token: &str, third: &str, payload: &str) -> SyncOrder {
    SyncOrder {
        biz_type: biz_type.into(),
        link_token: link_token.into(),
        third_msg_id: third.into(),
        payload: payload.into(),
        valid_seconds: None,
        filter: DeliveryFilter::default(),
    }
}

/// What a device's callbacks saw.
type Seen = Arc<Mutex<Vec<SyncEvent>>>;

/// A registered device with a sync client handling `biz_types`.
struct Phone {
    device: Arc<DeviceClient>,
    sync: SyncClient,
    seen: Seen,
    _storage: Option<tempfile::TempDir>,
}

impl Phone {
    async fn start(server: &TestServer, biz_types: &[&str], options: SyncOptions) -> Phone {
        let (device, storage) = server.device();
        let mut phone = Phone::on(Arc::new(device), biz_types, options).await;
        phone._storage = Some(storage);
        phone
    }

    async fn on(device: Arc<DeviceClient>, biz_types: &[&str], options: SyncOptions) -> Phone {
        device
            .register(&atoll_protocol::device::RegisterRequest {
                platform: Some(atoll_protocol::device::Platform::Android),
                app_version: Some("2.1.0".into()),
                ..Default::default()
            })
            .await
            .expect("register");
        let sync = SyncClient::new(device.clone(), options).expect("sync client");
        let seen: Seen = Arc::default();
        for biz in biz_types {
            let seen = seen.clone();
            sync.register(biz, move |event| seen.lock().unwrap().push(event.clone()));
        }
        Phone {
            device,
            sync,
            seen,
            _storage: None,
        }
    }

    async fn connect(&self) {
        self.sync.start();
        assert!(
            self.sync.wait_connected(Duration::from_secs(10)).await,
            "not connected: {:?}",
            self.sync.status()
        );
    }

    fn data(&self, biz: &str) -> Vec<(u64, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                SyncEvent::Data(datum) if datum.biz == biz => {
                    Some((datum.seq, datum.payload.clone()))
                }
                _ => None,
            })
            .collect()
    }

    async fn wait_for(&self, biz: &str, count: usize) -> Vec<(u64, String)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let data = self.data(biz);
            if data.len() >= count || Instant::now() > deadline {
                return data;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn setup(server: &TestServer, specs: &[BizTypeSpec]) -> AdminClient {
    let admin = server.admin().await;
    for spec in specs {
        admin
            .create_biz_type(WS, &server.demo.app_key, spec)
            .await
            .expect("create biz type");
    }
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_arrive_in_order_once_and_repeats_are_idempotent() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = setup(
        &server,
        &[
            biz("ORDER-STATUS", Dimension::User),
            biz("DEVICE-LOCK", Dimension::Device),
            BizTypeSpec {
                global_allowed: true,
                ..biz("NEWS", Dimension::Device)
            },
        ],
    )
    .await;
    // Bad biz type ids and orders get their own codes.
    let error = admin
        .create_biz_type(WS, &app, &biz("order_status", Dimension::User))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));
    let error = admin
        .send_sync(
            WS,
            &app,
            &order("ORDER-STATUS", "alice", "x", &"y".repeat(4097)),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::PayloadTooLarge));
    let error = admin
        .send_sync(WS, &app, &order("NOPE", "alice", "x", "y"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotFound));

    // An app backend's token with `sync:write` sends orders and nothing else.
    let token = admin
        .create_token(
            WS,
            &atoll_protocol::admin::CreateToken {
                name: "backend".into(),
                scopes: vec!["sync:write".into()],
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    let backend = server.client_with(&token.secret);
    let error = backend
        .create_biz_type(WS, &app, &biz("OTHER", Dimension::User))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));

    let alice = Phone::start(&server, &["ORDER-STATUS", "NEWS"], SyncOptions::default()).await;
    alice.device.bind_user("alice").await.unwrap();
    alice.connect().await;

    // Four concurrent senders: one order of sequence numbers, each sender's
    // orders in its own order.
    let mut senders = Vec::new();
    for sender in 0..4 {
        let admin = backend.clone();
        let app = app.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..25 {
                let answer = admin
                    .send_sync(
                        WS,
                        &app,
                        &order(
                            "ORDER-STATUS",
                            "alice",
                            &format!("s{sender}-{i}"),
                            &format!("{sender}:{i}"),
                        ),
                    )
                    .await
                    .unwrap();
                assert_eq!(answer.result_code, RESULT_OK);
                assert_eq!(answer.stream, "u:alice");
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let data = alice.wait_for("ORDER-STATUS", 100).await;
    assert_eq!(data.len(), 100, "all delivered exactly once");
    let seqs: Vec<u64> = data.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "in sequence order");
    for sender in 0..4 {
        let mine: Vec<u64> = data
            .iter()
            .filter(|(_, payload)| payload.starts_with(&format!("{sender}:")))
            .map(|(_, payload)| payload.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..25).collect::<Vec<u64>>(),
            "sender {sender} in its order"
        );
    }

    // 100 concurrent repeats: one datum, one id for every caller.
    let mut repeats = Vec::new();
    for _ in 0..100 {
        let admin = admin.clone();
        let app = app.clone();
        repeats.push(tokio::spawn(async move {
            admin
                .send_sync(WS, &app, &order("ORDER-STATUS", "alice", "same", "once"))
                .await
                .unwrap()
        }));
    }
    let mut answers = Vec::new();
    for repeat in repeats {
        answers.push(repeat.await.unwrap());
    }
    let ids: std::collections::HashSet<&str> = answers.iter().map(|a| a.msg_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "every caller gets the same id");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.result_code == RESULT_OK)
            .count(),
        1
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.result_code == DUPLICATED_BIZ_ID)
            .count(),
        99
    );
    let data = alice.wait_for("ORDER-STATUS", 101).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        alice.data("ORDER-STATUS").len(),
        101,
        "stored once: {data:?}"
    );

    // An offline device gets everything on connect, in order.
    let phone = Phone::start(&server, &["DEVICE-LOCK", "NEWS"], SyncOptions::default()).await;
    let device_id = phone.device.device_id().to_owned();
    for i in 0..50 {
        admin
            .send_sync(
                WS,
                &app,
                &order("DEVICE-LOCK", &device_id, &format!("l{i}"), &i.to_string()),
            )
            .await
            .unwrap();
    }
    phone.connect().await;
    let data = phone.wait_for("DEVICE-LOCK", 50).await;
    assert_eq!(
        data,
        (0..50).map(|i| (i + 1, i.to_string())).collect::<Vec<_>>()
    );

    // A global order is stored once and reaches both devices.
    let answer = admin
        .send_global_sync(
            WS,
            &app,
            &GlobalSyncOrder {
                biz_type: "NEWS".into(),
                third_msg_id: "n1".into(),
                payload: "hello all".into(),
                valid_seconds: Some(3600),
                filter: DeliveryFilter::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.stream, GLOBAL_STREAM);
    assert_eq!(
        alice.wait_for("NEWS", 1).await,
        vec![(1, "hello all".to_owned())]
    );
    assert_eq!(
        phone.wait_for("NEWS", 1).await,
        vec![(1, "hello all".to_owned())]
    );
    // A global order needs a biz type that allows it.
    let error = admin
        .send_global_sync(
            WS,
            &app,
            &GlobalSyncOrder {
                biz_type: "DEVICE-LOCK".into(),
                third_msg_id: "n2".into(),
                payload: "no".into(),
                valid_seconds: None,
                filter: DeliveryFilter::default(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));

    // Delivery filters: only iOS devices, so the Android phone gets nothing.
    let mut ios_only = order("DEVICE-LOCK", &device_id, "ios-only", "x");
    ios_only.filter.platforms = vec![atoll_protocol::device::Platform::Ios];
    admin.send_sync(WS, &app, &ios_only).await.unwrap();
    admin
        .send_sync(
            WS,
            &app,
            &order("DEVICE-LOCK", &device_id, "after", "after"),
        )
        .await
        .unwrap();
    let data = phone.wait_for("DEVICE-LOCK", 51).await;
    assert_eq!(
        data.last(),
        Some(&(52, "after".to_owned())),
        "the filtered datum is skipped"
    );

    // The console's view: counters, who is online, a device's cursors.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats = admin.sync_stats(WS, &app, 1).await.unwrap();
    let order_status = stats.iter().find(|s| s.biz_type == "ORDER-STATUS").unwrap();
    assert_eq!(order_status.sent, 101);
    assert!(order_status.delivered >= 101);
    assert_eq!(order_status.acknowledged, 101);
    assert_eq!(order_status.backlog, 0);
    assert_eq!(order_status.online_devices, 1);
    let online = admin.sync_online(WS, &app, 10).await.unwrap();
    assert_eq!(online.total, 2);
    let state = admin.sync_device(WS, &app, &device_id).await.unwrap();
    assert!(state.online);
    let lock = state
        .cursors
        .iter()
        .find(|c| c.biz_type == "DEVICE-LOCK")
        .unwrap();
    assert_eq!((lock.acked, lock.head), (52, 52));
    assert!(lock.pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_history_multi_device_and_live_only_biz_types() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = setup(
        &server,
        &[
            BizTypeSpec {
                backlog_threshold: Some(3),
                ..biz("PRICE", Dimension::Device)
            },
            BizTypeSpec {
                multi_device: true,
                ..biz("INBOX", Dimension::User)
            },
            biz("SETTINGS", Dimension::User),
            BizTypeSpec {
                persistent: false,
                ..biz("TYPING", Dimension::Device)
            },
        ],
    )
    .await;
    let phone = Phone::start(
        &server,
        &["PRICE", "INBOX", "SETTINGS", "TYPING"],
        SyncOptions::default(),
    )
    .await;
    let device_id = phone.device.device_id().to_owned();
    for i in 1..=10 {
        admin
            .send_sync(
                WS,
                &app,
                &order("PRICE", &device_id, &format!("p{i}"), &i.to_string()),
            )
            .await
            .unwrap();
    }
    for i in 1..=5 {
        admin
            .send_sync(
                WS,
                &app,
                &order("INBOX", "bob", &format!("i{i}"), &i.to_string()),
            )
            .await
            .unwrap();
        admin
            .send_sync(
                WS,
                &app,
                &order("SETTINGS", "bob", &format!("s{i}"), &i.to_string()),
            )
            .await
            .unwrap();
    }
    // Sent while the device is offline: never stored, never delivered.
    let answer = admin
        .send_sync(WS, &app, &order("TYPING", &device_id, "t0", "lost"))
        .await
        .unwrap();
    assert_eq!(answer.seq, 0);
    phone.device.bind_user("bob").await.unwrap();
    phone.connect().await;
    // Threshold: only the newest 3, after an explicit resync for the rest.
    assert_eq!(
        phone.wait_for("PRICE", 3).await,
        vec![(8, "8".into()), (9, "9".into()), (10, "10".into())]
    );
    let resyncs: Vec<SyncEvent> = phone
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|event| matches!(event, SyncEvent::Resync { .. }))
        .cloned()
        .collect();
    assert_eq!(
        resyncs,
        vec![SyncEvent::Resync {
            biz: "PRICE".into(),
            stream: format!("d:{device_id}"),
            from: 1,
            to: 7,
            reason: "trimmed".into()
        }]
    );
    // Multi-device: a device new to bob gets his history; without it, only what comes next.
    assert_eq!(phone.wait_for("INBOX", 5).await.len(), 5);
    admin
        .send_sync(WS, &app, &order("SETTINGS", "bob", "s6", "6"))
        .await
        .unwrap();
    assert_eq!(phone.wait_for("SETTINGS", 1).await, vec![(6, "6".into())]);
    // Live-only data reaches the device while it is online, with no sequence.
    admin
        .send_sync(WS, &app, &order("TYPING", &device_id, "t1", "live"))
        .await
        .unwrap();
    assert_eq!(phone.wait_for("TYPING", 1).await, vec![(0, "live".into())]);
    let state = admin.sync_device(WS, &app, &device_id).await.unwrap();
    assert!(
        state.cursors.iter().all(|c| c.biz_type != "TYPING"),
        "live-only data leaves no trace: {state:?}"
    );
    // An offline biz type takes no orders.
    let mut offline = biz("SETTINGS", Dimension::User);
    offline.enabled = false;
    admin.update_biz_type(WS, &app, &offline).await.unwrap();
    let error = admin
        .send_sync(WS, &app, &order("SETTINGS", "bob", "s7", "7"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::BizTypeOffline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_after_the_answer_loses_nothing_and_repeats_survive_restart() {
    let mut server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = setup(&server, &[biz("ORDER-STATUS", Dimension::Device)]).await;
    let (device, storage) = server.device();
    let phone = Phone::on(Arc::new(device), &["ORDER-STATUS"], SyncOptions::default()).await;
    let device_id = phone.device.device_id().to_owned();
    let mut first_ids = Vec::new();
    for i in 0..200 {
        let answer = admin
            .send_sync(
                WS,
                &app,
                &order("ORDER-STATUS", &device_id, &format!("o{i}"), &i.to_string()),
            )
            .await
            .unwrap();
        first_ids.push(answer.msg_id);
    }
    // Killed right after the last answer: no flush, no goodbye.
    server.kill9();
    server.restart().await;
    let admin = server.admin().await;
    let repeat = admin
        .send_sync(WS, &app, &order("ORDER-STATUS", &device_id, "o7", "again"))
        .await
        .unwrap();
    assert_eq!(repeat.result_code, DUPLICATED_BIZ_ID);
    assert_eq!(repeat.msg_id, first_ids[7]);
    let mut repeats = Vec::new();
    for _ in 0..100 {
        let admin = admin.clone();
        let (app, device_id) = (app.clone(), device_id.clone());
        repeats.push(tokio::spawn(async move {
            admin
                .send_sync(
                    WS,
                    &app,
                    &order("ORDER-STATUS", &device_id, "o199", "again"),
                )
                .await
                .unwrap()
                .msg_id
        }));
    }
    for repeat in repeats {
        assert_eq!(repeat.await.unwrap(), first_ids[199]);
    }
    // The same install reconnects and receives all 200, in order, once.
    let device = Arc::new(server.device_in(&app, &server.demo.app_secret, storage.path()));
    let phone = Phone::on(device, &["ORDER-STATUS"], SyncOptions::default()).await;
    phone.connect().await;
    let data = phone.wait_for("ORDER-STATUS", 200).await;
    assert_eq!(
        data,
        (0..200).map(|i| (i + 1, i.to_string())).collect::<Vec<_>>()
    );
    // Processed data is not processed again after an app restart.
    phone.sync.stop().await;
    let device = Arc::new(server.device_in(&app, &server.demo.app_secret, storage.path()));
    let again = Phone::on(device, &["ORDER-STATUS"], SyncOptions::default()).await;
    assert_eq!(
        again.sync.cursor("ORDER-STATUS", &format!("d:{device_id}")),
        Some(200)
    );
    again.connect().await;
    admin
        .send_sync(WS, &app, &order("ORDER-STATUS", &device_id, "o200", "200"))
        .await
        .unwrap();
    assert_eq!(
        again.wait_for("ORDER-STATUS", 1).await,
        vec![(201, "200".into())]
    );
    assert_eq!(again.data("ORDER-STATUS").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_acknowledgements_are_redelivered_and_processed_once() {
    let server = TestServer::start_with_env(&[("ATOLL_SYNC_ACK_TIMEOUT_SECS", "1")]).await;
    let app = server.demo.app_key.clone();
    let admin = setup(&server, &[biz("ORDER-STATUS", Dimension::Device)]).await;
    // The SDK acknowledges only after 4 s: the server delivers again meanwhile.
    let phone = Phone::start(
        &server,
        &["ORDER-STATUS"],
        SyncOptions {
            ack_delay: Duration::from_secs(4),
            ..SyncOptions::default()
        },
    )
    .await;
    let device_id = phone.device.device_id().to_owned();
    phone.connect().await;
    for i in 0..5 {
        admin
            .send_sync(
                WS,
                &app,
                &order("ORDER-STATUS", &device_id, &format!("o{i}"), &i.to_string()),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while phone.sync.counts().1 == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (processed, duplicates) = phone.sync.counts();
    assert!(duplicates > 0, "the server delivered again");
    assert_eq!(processed, 5, "but each datum was processed once");
    assert_eq!(phone.data("ORDER-STATUS").len(), 5);
}

/// A hand-made device connection: signed upgrade, raw frames.
async fn raw_connection(
    server: &TestServer,
    device: &DeviceClient,
) -> WsClient<tokio::net::TcpStream> {
    let host = server.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let headers = device.signature_headers("GET", CONNECT_PATH, "", b"");
    let (ws, _) = WsClient::connect(stream, &host, CONNECT_PATH, &headers)
        .await
        .expect("upgrade");
    ws
}

async fn next_frame(ws: &mut WsClient<tokio::net::TcpStream>) -> ServerFrame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.recv())
            .await
            .expect("a frame in time")
            .expect("readable")
            .expect("open");
        if let Message::Text(text) = message {
            return serde_json::from_slice(&text).expect("a server frame");
        }
    }
}

async fn subscribe_raw(ws: &mut WsClient<tokio::net::TcpStream>, biz: &str) {
    let frame = ClientFrame::Subscribe {
        subs: vec![BizSubscription {
            biz: biz.into(),
            cursors: vec![],
        }],
        user_id: None,
    };
    ws.send_text(&serde_json::to_string(&frame).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_acknowledged_data_is_dropped_after_six_redeliveries_with_a_resync() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = setup(&server, &[biz("ORDER-STATUS", Dimension::Device)]).await;
    let (device, _storage) = server.device();
    device
        .register(&atoll_protocol::device::RegisterRequest::default())
        .await
        .unwrap();
    let device_id = device.device_id().to_owned();
    for i in 1..=2 {
        admin
            .send_sync(
                WS,
                &app,
                &order("ORDER-STATUS", &device_id, &format!("o{i}"), &i.to_string()),
            )
            .await
            .unwrap();
    }
    // Seven deliveries of datum 1, none acknowledged.
    for attempt in 1..=7 {
        let mut ws = raw_connection(&server, &device).await;
        assert!(matches!(
            next_frame(&mut ws).await,
            ServerFrame::Welcome { .. }
        ));
        subscribe_raw(&mut ws, "ORDER-STATUS").await;
        assert!(matches!(
            next_frame(&mut ws).await,
            ServerFrame::Subscribed { .. }
        ));
        match next_frame(&mut ws).await {
            ServerFrame::Data { seq, .. } => assert_eq!(seq, 1, "attempt {attempt}"),
            other => panic!("attempt {attempt}: {other:?}"),
        }
        drop(ws);
        // The server saves the attempt when it sees the connection end.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut ws = raw_connection(&server, &device).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Welcome { .. }
    ));
    subscribe_raw(&mut ws, "ORDER-STATUS").await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Subscribed { .. }
    ));
    match next_frame(&mut ws).await {
        ServerFrame::Resync {
            from, to, reason, ..
        } => {
            assert_eq!((from, to, reason.as_str()), (1, 1, "dropped"));
        }
        other => panic!("expected a resync, got {other:?}"),
    }
    match next_frame(&mut ws).await {
        ServerFrame::Data { seq, .. } => assert_eq!(seq, 2),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let stats = admin.sync_stats(WS, &app, 1).await.unwrap();
    assert_eq!(stats[0].dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_reader_is_cut_off_without_hurting_others() {
    let server = TestServer::start_with_env(&[
        ("ATOLL_SYNC_OUTBOX_MAX_BYTES", "65536"),
        ("ATOLL_SYNC_WINDOW", "100000"),
        ("ATOLL_SYNC_WRITE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let app = server.demo.app_key.clone();
    let admin = setup(
        &server,
        &[BizTypeSpec {
            global_allowed: true,
            ..biz("FEED", Dimension::Device)
        }],
    )
    .await;
    let healthy = Phone::start(&server, &["FEED"], SyncOptions::default()).await;
    healthy.connect().await;
    let (stalled, _storage) = server.device();
    stalled
        .register(&atoll_protocol::device::RegisterRequest::default())
        .await
        .unwrap();
    let mut ws = raw_connection(&server, &stalled).await;
    subscribe_raw(&mut ws, "FEED").await;
    // From here on the stalled client reads nothing.
    let payload = "x".repeat(4000);
    let mut sent = 0;
    let cut_off = loop {
        let online = admin.sync_online(WS, &app, 10).await.unwrap();
        if online.total < 2 {
            break true;
        }
        if sent >= 3000 {
            break false;
        }
        let started = Instant::now();
        admin
            .send_global_sync(
                WS,
                &app,
                &GlobalSyncOrder {
                    biz_type: "FEED".into(),
                    third_msg_id: format!("f{sent}"),
                    payload: payload.clone(),
                    valid_seconds: None,
                    filter: DeliveryFilter::default(),
                },
            )
            .await
            .unwrap();
        sent += 1;
        // Meanwhile the healthy device keeps up.
        let got = healthy.wait_for("FEED", sent).await.len();
        assert_eq!(got, sent, "the healthy device has everything");
        assert!(started.elapsed() < Duration::from_secs(5));
    };
    assert!(
        cut_off,
        "the stalled reader was never cut off after {sent} orders"
    );
    let state = admin
        .sync_device(WS, &app, stalled.device_id())
        .await
        .unwrap();
    assert!(!state.online);
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_connected_devices_to_reconnect_elsewhere() {
    let mut server = TestServer::start().await;
    let (device, _storage) = server.device();
    device
        .register(&atoll_protocol::device::RegisterRequest::default())
        .await
        .unwrap();
    let mut ws = raw_connection(&server, &device).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Welcome { .. }
    ));
    // An unsigned or badly signed upgrade is refused before any WebSocket exists.
    let host = server.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let mut headers = device.signature_headers("GET", CONNECT_PATH, "", b"");
    headers.retain(|(name, _)| name != atoll_protocol::signing::HEADER_SIGNATURE);
    match WsClient::connect(stream, &host, CONNECT_PATH, &headers).await {
        Err(atoll_ws::client::ClientError::Rejected { status, body, .. }) => {
            assert_eq!(status, 401);
            assert!(String::from_utf8_lossy(&body).contains("missing_signature"));
        }
        other => panic!(
            "an unsigned upgrade was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let child = server.take_child();
    let pid = child.id();
    crate::support::signal(pid, "TERM");
    match next_frame(&mut ws).await {
        ServerFrame::Reconnect { after_ms, .. } => assert!(after_ms > 0),
        other => panic!("expected a reconnect notice, got {other:?}"),
    }
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || {
        crate::support::wait_with_timeout(&mut child, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_lingers_in_the_background_then_reconnects_in_the_foreground() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = setup(&server, &[biz("DEVICE-LOCK", Dimension::Device)]).await;
    let phone = Phone::start(
        &server,
        &["DEVICE-LOCK"],
        SyncOptions {
            background_linger: Duration::from_millis(800),
            ..SyncOptions::default()
        },
    )
    .await;
    let device_id = phone.device.device_id().to_owned();
    phone.connect().await;
    phone.sync.app_to_background();
    // Still connected during the linger, closed after it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(phone.sync.status().connected);
    let deadline = Instant::now() + Duration::from_secs(10);
    while phone.sync.status().connected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!phone.sync.status().connected, "closed after the linger");
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.sync_online(WS, &app, 10).await.unwrap().total > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin.sync_online(WS, &app, 10).await.unwrap().total, 0);
    // Sent while in the background; received on return to the foreground.
    admin
        .send_sync(
            WS,
            &app,
            &order("DEVICE-LOCK", &device_id, "lock-1", "locked"),
        )
        .await
        .unwrap();
    phone.sync.app_to_foreground();
    assert!(phone.sync.wait_connected(Duration::from_secs(10)).await);
    assert_eq!(
        phone.wait_for("DEVICE-LOCK", 1).await,
        vec![(1, "locked".into())]
    );
    assert_eq!(phone.sync.status().connects, 2);
}
