//! `atoll demo`: a first run creates an admin, the `demo` workspace and the
//! "Demo Shop" app; every run prints how to reach them. Data is kept between runs.

use anyhow::Context;
use atoll_analytics::AnalyticsService;
use atoll_core::clock::Clock;
use atoll_platform::{PlatformService, Principal};
use atoll_protocol::admin::{App, CreateApp, CreateWorkspace, SdkConfig};
use atoll_protocol::analytics::BackfillBatch;
use atoll_protocol::device::Platform;
use atoll_protocol::switches::{PublishSwitches, Switch, SwitchType, TargetedValue};
use atoll_switches::SwitchService;
use futures::StreamExt;
use serde_json::json;
use std::path::Path;

/// The demo admin's login.
pub const DEMO_EMAIL: &str = "admin@demo.atoll";
const PASSWORD_FILE: &str = "demo-admin-password";

/// What a demo run prints.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The admin's email.
    pub email: String,
    /// The admin's password, when this data folder knows it.
    pub password: Option<String>,
    /// The demo workspace slug.
    pub workspace: String,
    /// The demo app.
    pub app: App,
    /// The app's SDK configuration.
    pub sdk_config: SdkConfig,
}

/// Creates what is missing of the demo, and returns its description.
pub async fn seed(platform: &PlatformService, data_dir: &Path) -> anyhow::Result<DemoInfo> {
    let password_path = data_dir.join(PASSWORD_FILE);
    if platform.count_users().await? == 0 {
        let password = atoll_core::ids::new_secret("demo")
            .chars()
            .take(20)
            .collect::<String>();
        write_private(&password_path, &password)?;
        platform
            .create_user(DEMO_EMAIL, "Demo Admin", &password, true)
            .await
            .context("cannot create the demo admin")?;
    }
    let password = std::fs::read_to_string(&password_path)
        .ok()
        .map(|text| text.trim().to_owned());
    let admin = platform
        .find_user(DEMO_EMAIL)
        .await?
        .context("the demo admin is missing from this data folder")?;
    let principal = Principal::User(admin);
    let workspaces = platform.list_workspaces(&principal).await?;
    if !workspaces.iter().any(|workspace| workspace.slug == "demo") {
        platform
            .create_workspace(
                &principal,
                CreateWorkspace {
                    slug: "demo".into(),
                    name: "Demo".into(),
                },
            )
            .await?;
    }
    let apps = platform.list_apps(&principal, "demo").await?;
    let app = match apps.into_iter().find(|app| app.name == "Demo Shop") {
        Some(app) => app,
        None => {
            platform
                .create_app(
                    &principal,
                    "demo",
                    CreateApp {
                        name: "Demo Shop".into(),
                        platforms: vec![Platform::Android, Platform::Ios],
                    },
                )
                .await?
                .app
        }
    };
    let sdk_config = platform
        .reveal_sdk_config(&principal, "demo", &app.app_key)
        .await?;
    Ok(DemoInfo {
        email: DEMO_EMAIL.into(),
        password,
        workspace: "demo".into(),
        app,
        sdk_config,
    })
}

/// Seeds `devices` simulated devices' last week of activity into the demo app,
/// through the admin backfill path, unless the app already has events. Returns
/// the number of events stored.
pub async fn seed_events(
    platform: &PlatformService,
    analytics: &AnalyticsService,
    info: &DemoInfo,
    devices: u64,
) -> anyhow::Result<u64> {
    let principal = demo_principal(platform).await?;
    if devices == 0
        || analytics
            .has_events(&principal, &info.workspace, &info.app.app_key)
            .await?
    {
        return Ok(0);
    }
    let today = atoll_events::day_of(atoll_core::clock::SystemClock.now_ms());
    let history = atoll_analytics::simulate::history(DEMO_SEED, devices, 7, i64::from(today));
    let mut stored = 0u64;
    let mut batches = futures::stream::iter(history.flat_map(|(persona, events)| {
        let device = persona.backfill_device();
        events
            .chunks(atoll_protocol::events::limits::MAX_EVENTS_PER_BATCH)
            .map(|chunk| BackfillBatch {
                device: device.clone(),
                events: chunk.to_vec(),
            })
            .collect::<Vec<_>>()
    }))
    .map(|batch| analytics.backfill(&principal, &info.workspace, &info.app.app_key, batch))
    .buffer_unordered(16);
    while let Some(outcome) = batches.next().await {
        stored += u64::from(outcome.context("cannot store demo events")?.accepted);
    }
    Ok(stored)
}

/// The demo admin, who owns what the demo seeds.
async fn demo_principal(platform: &PlatformService) -> anyhow::Result<Principal> {
    let admin = platform
        .find_user(DEMO_EMAIL)
        .await?
        .context("the demo admin is missing from this data folder")?;
    Ok(Principal::User(admin))
}

/// Publishes a starter set of switches in the demo app when it has none, so the
/// Switches page and `GET /device/v1/config` show targeted values at work.
/// Returns whether it published.
pub async fn seed_switches(
    platform: &PlatformService,
    switches: &SwitchService,
    info: &DemoInfo,
) -> anyhow::Result<bool> {
    let principal = demo_principal(platform).await?;
    let (workspace, app) = (&info.workspace, &info.app.app_key);
    if switches.current(&principal, workspace, app).await?.version > 0 {
        return Ok(false);
    }
    let switch = |key: &str, value_type, default, rules: &[(&str, serde_json::Value)]| Switch {
        key: key.into(),
        value_type,
        description: String::new(),
        platforms: Vec::new(),
        default,
        rules: rules
            .iter()
            .map(|(when, value)| TargetedValue {
                when: (*when).into(),
                value: value.clone(),
            })
            .collect(),
    };
    let starter = vec![
        Switch {
            description: "The redesigned checkout, rolled out gradually".into(),
            ..switch(
                "new_checkout",
                SwitchType::Bool,
                json!(false),
                &[("app_version >= 3.4 and percent(20)", json!(true))],
            )
        },
        switch(
            "home_banner",
            SwitchType::String,
            json!("Free shipping over $50"),
            &[(
                "platform = ios",
                json!("Free shipping over $50 · Apple Pay accepted"),
            )],
        ),
        switch(
            "cart_limits",
            SwitchType::Json,
            json!({"max_items": 50, "max_quantity": 10}),
            &[],
        ),
        Switch {
            platforms: vec![Platform::Android, Platform::Ios],
            ..switch("support_chat", SwitchType::Bool, json!(true), &[])
        },
    ];
    switches
        .publish(
            &principal,
            workspace,
            app,
            PublishSwitches {
                expected_version: Some(0),
                message: "demo: starter switches".into(),
                switches: starter,
            },
        )
        .await?;
    Ok(true)
}

/// Seeds starter delivery data once: a testers list, an H5 offline package in
/// two versions (1.0 official, 1.1 at 20 %) and an Android upgrade published
/// through a store link to testers. Returns whether it seeded.
pub async fn seed_delivery(
    platform: &PlatformService,
    lists: &atoll_lists::ListService,
    delivery: &atoll_delivery::DeliveryService,
    info: &DemoInfo,
) -> anyhow::Result<bool> {
    use atoll_protocol::delivery::*;
    let principal = demo_principal(platform).await?;
    let (workspace, app) = (&info.workspace, &info.app.app_key);
    if !delivery
        .packages(&principal, workspace, app, None, Some(1))
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    lists
        .put(
            &principal,
            workspace,
            app,
            "testers",
            PutList {
                kind: ListKind::User,
                ids: vec![
                    "user-00001".into(),
                    "user-00002".into(),
                    "user-00003".into(),
                ],
            },
        )
        .await?;
    for (version, stage, percent) in [
        ("1.0.0", ReleaseStage::Official, None),
        ("1.1.0", ReleaseStage::Percentage, Some(20.0)),
    ] {
        let manifest = json!({
            "id": "20000001", "version": version,
            "entry": "https://shop.h5.example/index.html", "domain": "shop.h5.example",
            "files": ["index.html", "app.js"],
        })
        .to_string();
        let page =
            format!("<!doctype html><title>Shop {version}</title><script src=\"app.js\"></script>");
        let zip = atoll_delivery::manifest::stored_zip(&[
            ("manifest.json", manifest.as_bytes()),
            ("index.html", page.as_bytes()),
            (
                "app.js",
                format!("console.log('shop {version}');").as_bytes(),
            ),
        ]);
        let body =
            futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(zip))]);
        let spooled = delivery.spool(body).await?;
        let package = delivery
            .upload_package(
                &principal,
                workspace,
                app,
                UploadPackage {
                    kind: ResourceKind::H5,
                    platform: Platform::Android,
                    version: version.into(),
                    resource_id: Some("20000001".into()),
                    for_app_version: None,
                    file_name: Some(format!("shop-{version}.zip")),
                    store_url: None,
                },
                spooled.as_ref().map(|s| s.file()),
            )
            .await?;
        let release = delivery
            .create_release(
                &principal,
                workspace,
                app,
                CreateRelease {
                    package_id: package.id,
                    mode: Some(UpgradeMode::Silent),
                    notes: format!("Shop pages {version}"),
                    ..CreateRelease::default()
                },
            )
            .await?;
        delivery
            .promote(
                &principal,
                workspace,
                app,
                &release.id,
                PromoteRelease { stage, percent },
            )
            .await?;
    }
    let upgrade = delivery
        .upload_package(
            &principal,
            workspace,
            app,
            UploadPackage {
                kind: ResourceKind::App,
                platform: Platform::Android,
                version: "3.5.0".into(),
                resource_id: None,
                for_app_version: None,
                file_name: None,
                store_url: Some(
                    "https://play.google.com/store/apps/details?id=example.shop".into(),
                ),
            },
            None,
        )
        .await?;
    let release = delivery
        .create_release(
            &principal,
            workspace,
            app,
            CreateRelease {
                package_id: upgrade.id,
                whitelist: Some("user in list:testers".into()),
                app_versions: Some(">=3.0 <3.5".into()),
                force_below: Some("3.1".into()),
                notes: "Faster checkout, new home screen".into(),
                ..CreateRelease::default()
            },
        )
        .await?;
    delivery
        .promote(
            &principal,
            workspace,
            app,
            &release.id,
            PromoteRelease {
                stage: ReleaseStage::Whitelist,
                percent: None,
            },
        )
        .await?;
    Ok(true)
}

/// The seed of the demo's simulated users (the same week shape on every machine).
const DEMO_SEED: u64 = 20_261_128;

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Gateway demo data: a group for the shop's backend and two APIs answered by
/// mocks (one fixed, one generated from its response schema), so the console's
/// test console works before any backend exists. Skipped when the app has groups.
pub async fn seed_gateway(
    platform: &PlatformService,
    gateway: &atoll_gateway::Gateway,
    info: &DemoInfo,
) -> anyhow::Result<bool> {
    use atoll_protocol::gateway::*;
    let principal = demo_principal(platform).await?;
    let (workspace, app) = (&info.workspace, &info.app.app_key);
    if !gateway
        .list_groups(&principal, workspace, app)
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    gateway
        .create_group(
            &principal,
            workspace,
            app,
            ApiGroupSpec {
                name: "shop".into(),
                base_url: "https://backend.example.com/api".into(),
                timeout_ms: Some(2000),
                headers_add: Default::default(),
                headers_remove: Vec::new(),
                tls_verify: true,
                max_pending: None,
                breaker: BreakerSpec::default(),
            },
        )
        .await?;
    let apis = [
        json!({
            "operation_type": "com.demo.greeting.get",
            "group": "shop",
            "method": "GET",
            "path": "/greeting",
            "enabled": true,
            "description": "A fixed mock answer",
            "mock": {"body": {"message": "Hello from the Atoll gateway"}},
        }),
        json!({
            "operation_type": "com.demo.order.get",
            "group": "shop",
            "method": "GET",
            "path": "/orders/${id}",
            "enabled": true,
            "description": "Generated from the response schema until the backend exists",
            "rate_limit": {"per_device_qps": 10},
            "response_schema": {"type": "object", "required": ["id", "status", "total"], "properties": {
                "id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["paid", "shipped", "delivered"]},
                "total": {"type": "number", "minimum": 1, "maximum": 500}
            }},
            "mock": {"delay_ms": 20},
        }),
    ];
    for spec in apis {
        gateway
            .create_api(&principal, workspace, app, serde_json::from_value(spec)?)
            .await?;
    }
    Ok(true)
}

/// Sync demo data: three biz types (a user's order status with multi-device
/// history, a device lock, global announcements) and an announcement, so the
/// console's sync page and a first device have something to show. Skipped
/// when the app has biz types.
pub async fn seed_sync(
    platform: &PlatformService,
    sync: &std::sync::Arc<atoll_sync::SyncService>,
    info: &DemoInfo,
) -> anyhow::Result<bool> {
    use atoll_protocol::sync::*;
    let principal = demo_principal(platform).await?;
    let (workspace, app) = (&info.workspace, &info.app.app_key);
    if !sync
        .list_biz_types(&principal, workspace, app)
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    let specs = [
        json!({"id": "ORDER-STATUS", "dimension": "user", "multi_device": true,
               "description": "Order updates on every device of the buyer"}),
        json!({"id": "DEVICE-LOCK", "dimension": "device", "backlog_threshold": 1,
               "description": "Lock or unlock one device; only the newest state matters"}),
        json!({"id": "ANNOUNCEMENTS", "dimension": "device", "global_allowed": true, "retention_days": 7,
               "description": "Shop-wide notices, stored once for every device"}),
    ];
    for spec in specs {
        sync.create_biz_type(&principal, workspace, app, serde_json::from_value(spec)?)
            .await?;
    }
    sync.send_global(
        &principal,
        workspace,
        app,
        &GlobalSyncOrder {
            biz_type: "ANNOUNCEMENTS".into(),
            third_msg_id: "welcome".into(),
            payload: r#"{"title":"Welcome to the demo shop"}"#.into(),
            valid_seconds: None,
            filter: DeliveryFilter::default(),
        },
    )
    .await?;
    Ok(true)
}

/// Push for the demo: a shipping template and a broadcast to the demo's
/// devices (they are offline without vendor tokens, so it waits for them),
/// once.
pub async fn seed_push(
    platform: &PlatformService,
    push: &std::sync::Arc<atoll_push::PushService>,
    info: &DemoInfo,
) -> anyhow::Result<bool> {
    use atoll_protocol::push::*;
    let principal = demo_principal(platform).await?;
    let (workspace, app) = (&info.workspace, &info.app.app_key);
    if !push
        .list_templates(&principal, workspace, app)
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    push.create_template(
        &principal,
        workspace,
        app,
        TemplateSpec {
            name: "order_shipped".into(),
            description: "Sent when the warehouse hands an order to the carrier".into(),
            title: "Order #order# is on its way".into(),
            body: "Hi #name#, #carrier# will deliver it #day#.".into(),
            url: Some("demoshop://orders/#order#".into()),
        },
    )
    .await?;
    // Three phones of a demo customer (offline, with vendor tokens but no vendor
    // channel configured yet), so the broadcast has an audience waiting for them.
    let identity = platform.verifier().app_by_key(app).await?;
    for (index, (kind, channel)) in [
        (Platform::Ios, atoll_protocol::device::PushChannel::Apns),
        (Platform::Android, atoll_protocol::device::PushChannel::Fcm),
        (Platform::Harmony, atoll_protocol::device::PushChannel::Hms),
    ]
    .into_iter()
    .enumerate()
    {
        let caller = atoll_platform::DeviceCaller {
            app_id: identity.app_id.clone(),
            app_key: identity.app_key.clone(),
            workspace_id: identity.workspace_id.clone(),
            device_id: format!("demo-phone-{}", index + 1),
        };
        platform
            .register_device(
                &caller,
                atoll_protocol::device::RegisterRequest {
                    platform: Some(kind),
                    app_version: Some("2.4.0".into()),
                    ..Default::default()
                },
            )
            .await?;
        platform.bind_user(&caller, "demo-customer").await?;
        platform
            .set_push_token(
                &caller,
                atoll_protocol::device::PushTokenRequest {
                    channel,
                    token: format!("demo-token-{}", index + 1),
                },
            )
            .await?;
    }
    push.send_broadcast(
        &principal,
        workspace,
        app,
        BroadcastPush {
            platform: None,
            binding: Binding::All,
            rule: None,
            title: "Winter sale".into(),
            body: "20% off everything this weekend".into(),
            template: None,
            values: Default::default(),
            msg_key: Some("winter-sale".into()),
            options: SendOptions {
                task_name: Some("Winter sale".into()),
                expires_in_secs: 86_400,
                collapse_key: Some("promo".into()),
                ..SendOptions::default()
            },
        },
    )
    .await?;
    Ok(true)
}
