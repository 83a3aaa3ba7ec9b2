//! The push pipeline under a fixed clock, on both store backends: a scheduled
//! send expands exactly once and only when due; a recurring send makes one
//! child task per occurrence; undelivered messages expire; a broadcast pages
//! through every matching device; concurrent repeats of a business id give
//! one message.

use atoll_core::clock::FixedClock;
use atoll_platform::secrets::SecretBox;
use atoll_platform::{
    AppIdentity, DeviceCaller, NonceStore, PlatformService, PlatformSettings, Principal,
};
use atoll_protocol::admin::{CreateApp, CreateWorkspace};
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::push::*;
use atoll_push::{PushConfig, PushService};
use atoll_store::conformance::TestDatabase;
use std::sync::Arc;
use std::time::Duration;

const START: i64 = 1_795_996_800_000; // 2026-11-30 00:00 UTC, a Monday
const MINUTE: i64 = 60_000;

struct World {
    db: TestDatabase,
    clock: Arc<FixedClock>,
    platform: PlatformService,
    push: Arc<PushService>,
    principal: Principal,
    app_key: String,
    app_id: String,
}

async fn world(db: TestDatabase) -> World {
    let clock = Arc::new(FixedClock::new(START));
    let platform = PlatformService::new(
        db.store.clone(),
        clock.clone(),
        PlatformSettings::default(),
        NonceStore::new(1000),
    );
    platform
        .create_user("ops@a.test", "Ops", "ops-password-1", true)
        .await
        .unwrap();
    let (login, _) = platform
        .login("ops@a.test", "ops-password-1")
        .await
        .unwrap();
    let principal = platform.authenticate_bearer(&login.token).await.unwrap();
    platform
        .create_workspace(
            &principal,
            CreateWorkspace {
                slug: "ws".into(),
                name: "W".into(),
            },
        )
        .await
        .unwrap();
    let app = platform
        .create_app(
            &principal,
            "ws",
            CreateApp {
                name: "App".into(),
                platforms: vec![Platform::Android, Platform::Ios],
            },
        )
        .await
        .unwrap();
    let AppIdentity { app_id, .. } = platform
        .verifier()
        .app_by_key(&app.app.app_key)
        .await
        .unwrap();
    let bus: Arc<dyn atoll_store::Bus> = Arc::new(atoll_store::MemoryBus::new());
    let sync = atoll_sync::SyncService::start(
        platform.clone(),
        clock.clone(),
        bus,
        atoll_sync::SyncSettings::default(),
    )
    .await
    .unwrap();
    let push = PushService::start(
        platform.clone(),
        clock.clone(),
        sync,
        SecretBox::new(&[9; 32]),
        PushConfig::default(),
    );
    World {
        db,
        clock,
        platform,
        push,
        principal,
        app_key: app.app.app_key,
        app_id,
    }
}

impl World {
    async fn device(&self, id: &str, platform: Platform, user: Option<&str>) {
        let caller = DeviceCaller {
            app_id: self.app_id.clone(),
            app_key: self.app_key.clone(),
            workspace_id: String::new(),
            device_id: id.into(),
        };
        self.platform
            .register_device(
                &caller,
                RegisterRequest {
                    platform: Some(platform),
                    ..RegisterRequest::default()
                },
            )
            .await
            .unwrap();
        if let Some(user) = user {
            self.platform.bind_user(&caller, user).await.unwrap();
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(self.db.store.pool())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }

    fn simple(&self, target: &str, options: SendOptions) -> SimplePush {
        SimplePush {
            target_type: TargetType::Device,
            targets: vec![PushTarget {
                target: target.into(),
                msg_key: None,
            }],
            title: "t".into(),
            body: "b".into(),
            options,
        }
    }
}

fn options(expires_in_secs: u64) -> SendOptions {
    SendOptions {
        expires_in_secs,
        ..SendOptions::default()
    }
}

async fn scenario(db: TestDatabase) {
    let w = world(db).await;
    w.device("phone-1", Platform::Android, None).await;

    // Scheduled: nothing before the time, one expansion at it, none after.
    let mut scheduled = options(600);
    scheduled.send_at_ms = Some(START + 10 * MINUTE);
    let sent = w
        .push
        .send_simple(
            &w.principal,
            "ws",
            &w.app_key,
            w.simple("phone-1", scheduled),
        )
        .await
        .unwrap();
    assert_eq!(sent.state, "scheduled");
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count("SELECT COUNT(*) FROM push_deliveries").await, 0);
    w.clock.advance_ms(10 * MINUTE);
    w.push.run_due_tasks().await.unwrap();
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count("SELECT COUNT(*) FROM push_deliveries").await, 1);
    // The device is offline without a vendor token: it waits.
    w.push.quiesce(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.push.quiesce(Duration::from_secs(5)).await;

    // Recurring daily at 09:00 UTC+8 (01:00 UTC) for three days: one child per day.
    let mut daily = options(600);
    daily.recurrence = Some(Recurrence {
        every: RecurrenceUnit::Daily,
        weekdays: vec![],
        time: "09:00".into(),
        utc_offset_minutes: 480,
        start_ms: START,
        end_ms: START + 3 * 86_400_000,
    });
    let parent = w
        .push
        .send_simple(&w.principal, "ws", &w.app_key, w.simple("phone-1", daily))
        .await
        .unwrap();
    assert_eq!(parent.state, "recurring");
    let children_sql = format!(
        "SELECT COUNT(*) FROM push_tasks WHERE parent_id = '{}'",
        parent.task_id
    );
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count(&children_sql).await, 0, "not yet 01:00 UTC");
    w.clock.advance_ms(50 * MINUTE); // 01:00
    w.push.run_due_tasks().await.unwrap();
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count(&children_sql).await, 1, "fires once");
    w.clock.advance_ms(86_400_000);
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count(&children_sql).await, 2);
    // Down for two days: the missed occurrence is skipped, not sent late.
    w.clock.advance_ms(2 * 86_400_000);
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count(&children_sql).await, 3);
    w.push.run_due_tasks().await.unwrap();
    assert_eq!(w.count(&children_sql).await, 3, "the window has ended");

    // Expiry: everything waiting past its expiry is expired by the sweeper.
    w.push.quiesce(Duration::from_secs(5)).await;
    w.clock.advance_ms(60 * MINUTE);
    w.push.sweep().await.unwrap();
    // A delivery the dispatcher claimed just now is expired when it is routed.
    let mut waiting = -1;
    for _ in 0..100 {
        waiting = w
            .count(
                "SELECT COUNT(*) FROM push_deliveries WHERE state IN ('pending', 'waiting', 'sending')",
            )
            .await;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 0);
    assert!(
        w.count("SELECT COUNT(*) FROM push_deliveries WHERE state = 'expired'")
            .await
            >= 3
    );

    // A broadcast pages through every matching device (more than one page).
    for i in 0..1_200 {
        let platform = if i % 3 == 0 {
            Platform::Ios
        } else {
            Platform::Android
        };
        let user = (i % 2 == 0).then(|| format!("user-{i}"));
        w.device(&format!("b-{i:05}"), platform, user.as_deref())
            .await;
    }
    let broadcast = w
        .push
        .send_broadcast(
            &w.principal,
            "ws",
            &w.app_key,
            BroadcastPush {
                platform: Some(Platform::Android),
                binding: Binding::All,
                rule: None,
                title: "news".into(),
                body: "b".into(),
                template: None,
                values: Default::default(),
                msg_key: Some("news-1".into()),
                options: options(600),
            },
        )
        .await
        .unwrap();
    w.push.run_due_tasks().await.unwrap();
    let task = broadcast.task_id.clone();
    let expected = 800 + 1; // 2 of every 3 test devices, and phone-1
    assert_eq!(
        w.count(&format!(
            "SELECT COUNT(*) FROM push_deliveries WHERE task_id = '{task}'"
        ))
        .await,
        expected
    );
    // A bound-only broadcast with a rule.
    let bound = w
        .push
        .send_broadcast(
            &w.principal,
            "ws",
            &w.app_key,
            BroadcastPush {
                platform: None,
                binding: Binding::Bound,
                rule: Some("platform = ios".into()),
                title: "ios users".into(),
                body: "b".into(),
                template: None,
                values: Default::default(),
                msg_key: None,
                options: options(600),
            },
        )
        .await
        .unwrap();
    w.push.run_due_tasks().await.unwrap();
    let task = bound.task_id.clone();
    assert_eq!(
        w.count(&format!(
            "SELECT COUNT(*) FROM push_deliveries WHERE task_id = '{task}'"
        ))
        .await,
        200, // i % 6 == 0 among 1 200
    );

    // Concurrent repeats of one business id: one message, one id for all.
    let mut handles = Vec::new();
    for _ in 0..20 {
        let push = w.push.clone();
        let principal = w.principal.clone();
        let app_key = w.app_key.clone();
        let body = SimplePush {
            targets: vec![PushTarget {
                target: "phone-1".into(),
                msg_key: Some("order-77".into()),
            }],
            ..w.simple("phone-1", options(600))
        };
        handles.push(tokio::spawn(async move {
            push.send_simple(&principal, "ws", &app_key, body)
                .await
                .unwrap()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for handle in handles {
        ids.insert(handle.await.unwrap().messages[0].msg_id.clone());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM push_messages WHERE msg_key = 'order-77'")
            .await,
        1
    );
    // Users: every bound device, or only the most recent one.
    w.device("alice-tablet", Platform::Android, Some("alice"))
        .await;
    w.clock.advance_ms(1_000);
    w.device("alice-phone", Platform::Ios, Some("alice")).await;
    for (target_type, expected) in [(TargetType::User, 2), (TargetType::UserRecent, 1)] {
        let sent = w
            .push
            .send_simple(
                &w.principal,
                "ws",
                &w.app_key,
                SimplePush {
                    target_type,
                    ..w.simple("alice", options(600))
                },
            )
            .await
            .unwrap();
        assert_eq!(sent.messages[0].devices, expected, "{target_type:?}");
    }
    let recent = w
        .count(
            "SELECT COUNT(*) FROM push_deliveries d JOIN push_messages m ON m.id = d.msg_id \
             WHERE m.target_type = 'user_recent' AND d.device_id = 'alice-phone'",
        )
        .await;
    assert_eq!(recent, 1, "the most recent device");

    // Revoke only within 7 days.
    let old = w
        .push
        .send_simple(
            &w.principal,
            "ws",
            &w.app_key,
            w.simple("phone-1", options(600)),
        )
        .await
        .unwrap();
    w.clock.advance_ms(8 * 86_400_000);
    let error = w
        .push
        .revoke(
            &w.principal,
            "ws",
            &w.app_key,
            RevokeRequest {
                msg_id: Some(old.messages[0].msg_id.clone()),
                ..RevokeRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), atoll_protocol::ErrorCode::RevokeWindowPassed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_expiry_and_broadcasts_on_sqlite() {
    scenario(TestDatabase::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_expiry_and_broadcasts_on_postgres() {
    scenario(TestDatabase::postgres().await.unwrap()).await;
}
