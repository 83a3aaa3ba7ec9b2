//! The platform's queries, run against both MetaStore backends: the same
//! scenario must behave identically on SQLite and PostgreSQL.

use atoll_core::clock::{Clock, FixedClock};
use atoll_platform::{
    Error, NonceStore, PlatformService, PlatformSettings, Principal, SignatureHeaders,
};
use atoll_protocol::admin::{CreateApp, CreateToken, CreateWorkspace, Role};
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::signing::{sign, SignedParts};
use atoll_store::conformance::TestDatabase;
use std::sync::Arc;

async fn scenario(db: &TestDatabase) {
    let clock = Arc::new(FixedClock::new(1_764_300_000_000));
    let platform = PlatformService::new(
        db.store.clone(),
        clock.clone(),
        PlatformSettings {
            max_sessions_per_user: 2,
            audit_retention_days: 1,
            ..PlatformSettings::default()
        },
        NonceStore::new(1000),
    );
    let alice = platform
        .create_user("alice@a.test", "Alice", "alice-password", false)
        .await
        .unwrap();
    let duplicate = platform
        .create_user("ALICE@a.test", "Alice", "alice-password", false)
        .await
        .unwrap_err();
    assert!(matches!(duplicate, Error::Conflict(_)), "{duplicate:?}");
    let (login, session) = platform
        .login("alice@a.test", "alice-password")
        .await
        .unwrap();
    assert_eq!(session.user, alice);
    let principal = platform.authenticate_bearer(&login.token).await.unwrap();
    assert_eq!(principal, Principal::User(alice.clone()));
    assert!(matches!(
        platform
            .login("alice@a.test", "wrong-password")
            .await
            .unwrap_err(),
        Error::InvalidCredentials
    ));

    let workspace = platform
        .create_workspace(
            &principal,
            CreateWorkspace {
                slug: "shop".into(),
                name: "Shop".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(workspace.role, Some(Role::Owner));
    let again = platform
        .create_workspace(
            &principal,
            CreateWorkspace {
                slug: "shop".into(),
                name: "Shop".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Conflict(_)));
    let created = platform
        .create_app(
            &principal,
            "shop",
            CreateApp {
                name: "Shop app".into(),
                platforms: vec![Platform::Ios, Platform::Android, Platform::Ios],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        created.app.platforms,
        vec![Platform::Android, Platform::Ios]
    );
    let secret = created.sdk_config.app_secret.clone().unwrap();

    let token = platform
        .create_token(
            &principal,
            "shop",
            CreateToken {
                name: "ci".into(),
                scopes: vec!["read".into()],
                expires_in_days: Some(1),
            },
        )
        .await
        .unwrap();
    let token_principal = platform.authenticate_bearer(&token.secret).await.unwrap();
    assert_eq!(
        platform
            .list_apps(&token_principal, "shop")
            .await
            .unwrap()
            .len(),
        1
    );
    clock.advance_ms(2 * 86_400_000);
    assert!(matches!(
        platform
            .authenticate_bearer(&token.secret)
            .await
            .unwrap_err(),
        Error::Unauthenticated(_)
    ));

    // Another user sees nothing of the workspace.
    let bob = Principal::User(
        platform
            .create_user("bob@b.test", "Bob", "bob-password1", false)
            .await
            .unwrap(),
    );
    assert!(matches!(
        platform.list_apps(&bob, "shop").await.unwrap_err(),
        Error::NotFound(_)
    ));
    assert!(platform.list_workspaces(&bob).await.unwrap().is_empty());

    // A signed device request is verified, then the device registers and binds.
    let now = clock.now_secs();
    let body = br#"{"platform":"ios"}"#;
    let parts = SignedParts {
        app_key: &created.app.app_key,
        device_id: "device-1",
        method: "POST",
        path: "/device/v1/register",
        query: "",
        timestamp: now,
        nonce: "nonce-0000000000001",
        body,
    };
    let headers = SignatureHeaders {
        app_key: Some(created.app.app_key.clone()),
        device_id: Some("device-1".into()),
        timestamp: Some(now.to_string()),
        nonce: Some(parts.nonce.into()),
        signature: Some(sign(&secret, &parts)),
    };
    let caller = platform
        .verifier()
        .verify(&headers, "POST", "/device/v1/register", "", body)
        .await
        .unwrap();
    let replay = platform
        .verifier()
        .verify(&headers, "POST", "/device/v1/register", "", body)
        .await
        .unwrap_err();
    assert!(matches!(replay, Error::ReplayedNonce));
    let registered = platform
        .register_device(
            &caller,
            RegisterRequest {
                platform: Some(Platform::Ios),
                ..RegisterRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(registered.created);
    // Registering again unchanged within a minute is a read; after that it
    // refreshes last_seen_at.
    let ios = || RegisterRequest {
        platform: Some(Platform::Ios),
        ..RegisterRequest::default()
    };
    clock.advance_ms(1_000);
    assert!(
        !platform
            .register_device(&caller, ios())
            .await
            .unwrap()
            .created
    );
    let seen = |device: atoll_protocol::admin::Device| device.last_seen_at;
    let app_key = created.app.app_key.clone();
    let device = platform
        .get_device(&principal, "shop", &app_key, "device-1")
        .await
        .unwrap();
    assert_eq!(seen(device), registered.server_time);
    clock.advance_ms(60_000);
    platform.register_device(&caller, ios()).await.unwrap();
    let device = platform
        .get_device(&principal, "shop", &app_key, "device-1")
        .await
        .unwrap();
    assert_eq!(seen(device), clock.now_ms());
    let counts = platform.device_counts(&principal, "shop").await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].devices, counts[0].last_seen_at),
        (1, Some(clock.now_ms()))
    );
    platform.bind_user(&caller, "u-1").await.unwrap();
    let user = platform
        .get_app_user(&principal, "shop", &created.app.app_key, "u-1")
        .await
        .unwrap();
    assert_eq!(user.most_recent_device.as_deref(), Some("device-1"));
    platform.unbind_user(&caller).await.unwrap();
    let user = platform
        .get_app_user(&principal, "shop", &created.app.app_key, "u-1")
        .await
        .unwrap();
    assert_eq!(user.most_recent_device, None);

    let actions: Vec<String> = platform
        .audit_log(&principal, "shop", None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(
        actions,
        vec!["token.create", "app.create", "workspace.create"]
    );

    // Sessions per user are capped: the oldest ends when a third begins.
    let (second, _) = platform
        .login("alice@a.test", "alice-password")
        .await
        .unwrap();
    let (third, _) = platform
        .login("alice@a.test", "alice-password")
        .await
        .unwrap();
    assert!(platform.authenticate_bearer(&login.token).await.is_err());
    assert!(platform.authenticate_bearer(&second.token).await.is_ok());
    assert!(platform.authenticate_bearer(&third.token).await.is_ok());

    // Audit entries older than the retention (1 day here; the clock moved 2) go.
    let (_, purged) = platform.purge_expired().await.unwrap();
    assert!(purged >= 3, "purged {purged}");
    assert!(platform
        .audit_log(&principal, "shop", None, 50)
        .await
        .unwrap()
        .is_empty());

    // Deleting the workspace removes its apps and devices.
    platform.delete_workspace(&principal, "shop").await.unwrap();
    assert!(matches!(
        platform
            .verifier()
            .verify(&headers, "POST", "/device/v1/register", "", body)
            .await
            .unwrap_err(),
        Error::UnknownApp
    ));
    assert!(platform
        .list_workspaces(&principal)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_platform_scenario_passes_on_sqlite() {
    let db = TestDatabase::sqlite().await.unwrap();
    scenario(&db).await;
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_platform_scenario_passes_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    scenario(&db).await;
    db.cleanup().await.unwrap();
}
