//! Delivery, end to end: packages uploaded and signed, releases steered through
//! whitelist, percentage and official stages, devices checking for updates,
//! forced upgrades, rollback, Range downloads and delta patches.

use crate::support::TestServer;
use atoll_protocol::delivery::*;
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::ErrorCode;
use atoll_sdk::{AdminClient, DeviceClient, RequestOptions};
use std::collections::HashSet;

const WS: &str = "demo";

async fn upload(
    admin: &AdminClient,
    app: &str,
    kind: ResourceKind,
    resource_id: Option<&str>,
    version: &str,
    content: Vec<u8>,
) -> Package {
    admin
        .upload_package(
            WS,
            app,
            &UploadPackage {
                kind,
                platform: Platform::Android,
                version: version.into(),
                resource_id: resource_id.map(str::to_owned),
                for_app_version: (kind == ResourceKind::Hotpatch).then(|| "1.0".to_owned()),
                file_name: Some(format!("{version}.bin")),
                store_url: None,
            },
            content,
        )
        .await
        .unwrap()
}

async fn release(
    admin: &AdminClient,
    app: &str,
    package: &Package,
    request: CreateRelease,
) -> Release {
    admin
        .create_release(
            WS,
            app,
            &CreateRelease {
                package_id: package.id.clone(),
                ..request
            },
        )
        .await
        .unwrap()
}

async fn promote(
    admin: &AdminClient,
    app: &str,
    release: &Release,
    stage: ReleaseStage,
    percent: Option<f64>,
) {
    admin
        .promote_release(WS, app, &release.id, &PromoteRelease { stage, percent })
        .await
        .unwrap();
}

async fn android_device(
    server: &TestServer,
    app_version: &str,
) -> (DeviceClient, tempfile::TempDir) {
    let (device, dir) = server.device();
    device
        .register(&RegisterRequest {
            platform: Some(Platform::Android),
            app_version: Some(app_version.into()),
            ..RegisterRequest::default()
        })
        .await
        .unwrap();
    (device, dir)
}

async fn check(device: &DeviceClient, request: &UpdateCheck) -> UpdateAnswer {
    device
        .post(
            "/device/v1/updates/check",
            request,
            &RequestOptions::default(),
        )
        .await
        .unwrap()
}

fn app_update(answer: &UpdateAnswer) -> Option<&Update> {
    answer.updates.iter().find(|u| u.kind == ResourceKind::App)
}

/// A pseudo-random package body (so patches and hashes are realistic).
fn package_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_five_percent_canary_is_sticky_across_restarts_and_grows_to_a_superset() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let package = upload(
        &admin,
        &app,
        ResourceKind::App,
        None,
        "2.0.0",
        package_bytes(1, 4096),
    )
    .await;
    let canary = release(&admin, &app, &package, CreateRelease::default()).await;
    assert_eq!(canary.stage, ReleaseStage::Draft);
    promote(&admin, &app, &canary, ReleaseStage::Percentage, Some(5.0)).await;

    let ids: Vec<String> = (0..100_000).map(|i| format!("device-{i:06}")).collect();
    let audience = |admin: AdminClient, id: String, ids: Vec<String>, app: String| async move {
        let answer = admin
            .release_audience(
                WS,
                &app,
                &id,
                &AudienceRequest {
                    device_ids: ids,
                    app_version: Some("1.0".into()),
                    platform: Some(Platform::Android),
                },
            )
            .await
            .unwrap();
        assert_eq!(answer.checked, 100_000);
        answer.selected.into_iter().collect::<HashSet<String>>()
    };
    let five = audience(admin.clone(), canary.id.clone(), ids.clone(), app.clone()).await;
    assert!(
        (4_500..=5_500).contains(&five.len()),
        "5% of 100 000 selected {}",
        five.len()
    );

    // Real devices agree with the preview.
    let mut offered = 0;
    for _ in 0..40 {
        let (device, _dir) = android_device(&server, "1.0").await;
        let answer = check(&device, &UpdateCheck::default()).await;
        let selected = admin
            .release_audience(
                WS,
                &app,
                &canary.id,
                &AudienceRequest {
                    device_ids: vec![device.device_id().to_owned()],
                    app_version: Some("1.0".into()),
                    platform: Some(Platform::Android),
                },
            )
            .await
            .unwrap()
            .selected;
        assert_eq!(
            app_update(&answer).is_some(),
            selected.len() == 1,
            "{answer:?}"
        );
        offered += usize::from(selected.len() == 1);
    }
    assert!(offered < 40, "5% should not select 40 of 40 devices");

    server.terminate();
    server.restart().await;
    let admin = server.admin().await;
    let again = audience(admin.clone(), canary.id.clone(), ids.clone(), app.clone()).await;
    assert_eq!(again, five, "the same devices after a restart");

    promote(&admin, &app, &canary, ReleaseStage::Percentage, Some(10.0)).await;
    let ten = audience(admin.clone(), canary.id.clone(), ids, app.clone()).await;
    assert!((9_400..=10_600).contains(&ten.len()), "10%: {}", ten.len());
    assert!(
        five.is_subset(&ten),
        "raising the percentage keeps everyone in"
    );
}

#[tokio::test]
async fn whitelists_version_ranges_forced_upgrades_and_rollback_behave() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    admin
        .put_list(
            WS,
            &app,
            "testers",
            &PutList {
                kind: ListKind::User,
                ids: vec!["tester-1".into(), "tester-2".into()],
            },
        )
        .await
        .unwrap();
    let package = upload(
        &admin,
        &app,
        ResourceKind::App,
        None,
        "2.0.0",
        package_bytes(2, 2048),
    )
    .await;
    let upgrade = release(
        &admin,
        &app,
        &package,
        CreateRelease {
            whitelist: Some("user in list:testers".into()),
            app_versions: Some(">=1.0 <2.0".into()),
            force_below: Some("1.5".into()),
            notes: "Faster checkout".into(),
            ..CreateRelease::default()
        },
    )
    .await;
    assert_eq!(upgrade.mode, UpgradeMode::PromptOnce);

    // Bad rules are refused with a clear code.
    let error = admin
        .update_release(
            WS,
            &app,
            &upgrade.id,
            &UpdateRelease {
                rule: Some("app_version >=".into()),
                ..UpdateRelease::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidRule), "{error}");

    let (tester, _d1) = android_device(&server, "1.2").await;
    tester.bind_user("tester-1").await.unwrap();
    let (other, _d2) = android_device(&server, "1.8").await;
    let (newer, _d3) = android_device(&server, "2.5").await;

    // A draft is offered to nobody.
    assert!(check(&tester, &UpdateCheck::default())
        .await
        .updates
        .is_empty());

    promote(&admin, &app, &upgrade, ReleaseStage::Whitelist, None).await;
    let answer = check(&tester, &UpdateCheck::default()).await;
    let update = app_update(&answer).expect("the whitelisted tester gets it");
    assert_eq!(update.version, "2.0.0");
    assert_eq!(update.action, UpdateAction::Install);
    assert_eq!(
        update.mode,
        UpgradeMode::Forced,
        "1.2 is below force_below 1.5"
    );
    assert_eq!(update.notes, "Faster checkout");
    assert!(check(&other, &UpdateCheck::default())
        .await
        .updates
        .is_empty());

    promote(&admin, &app, &upgrade, ReleaseStage::Official, None).await;
    let answer = check(&other, &UpdateCheck::default()).await;
    let update = app_update(&answer).expect("official reaches everyone compatible");
    assert_eq!(update.mode, UpgradeMode::PromptOnce, "1.8 is not below 1.5");
    let download = update.download.clone().unwrap();
    assert_eq!(download.sha256, package.sha256.clone().unwrap());
    assert!(
        check(&newer, &UpdateCheck::default())
            .await
            .updates
            .is_empty(),
        "2.5 is outside >=1.0 <2.0 (and not older)"
    );
    // A device reporting a newer app version than it registered with is not offered an older one.
    let answer = check(
        &other,
        &UpdateCheck {
            app_version: Some("2.0.0".into()),
            ..UpdateCheck::default()
        },
    )
    .await;
    assert!(answer.updates.is_empty(), "{answer:?}");

    // Pause stops offers; resume restores them.
    admin
        .release_action(WS, &app, &upgrade.id, ReleaseAction::Pause)
        .await
        .unwrap();
    assert!(check(&other, &UpdateCheck::default())
        .await
        .updates
        .is_empty());
    admin
        .release_action(WS, &app, &upgrade.id, ReleaseAction::Resume)
        .await
        .unwrap();
    assert!(app_update(&check(&other, &UpdateCheck::default()).await).is_some());

    // Reports count into the release's funnel.
    let report = serde_json::to_vec(&UpdateReport {
        release_id: upgrade.id.clone(),
        event: ReportEvent::Installed,
        from_version: Some("1.8".into()),
        delta: false,
        error: None,
    })
    .unwrap();
    let answer = other
        .send_raw(
            "POST",
            "/device/v1/updates/report",
            "",
            &report,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let stats = admin.release_stats(WS, &app, &upgrade.id).await.unwrap();
    assert_eq!(stats.total.installed, 1, "{stats:?}");

    // H5 offline packages: v1 and v2 official; rolling back v2 sends devices to v1.
    let h5 = |version: &str| {
        let manifest = serde_json::json!({
            "id": "20000001", "version": version,
            "entry": "https://shop.h5.example/index.html", "domain": "shop.h5.example",
            "files": ["index.html"],
        })
        .to_string();
        atoll_delivery::manifest::stored_zip(&[
            ("manifest.json", manifest.as_bytes()),
            ("index.html", format!("<h1>{version}</h1>").as_bytes()),
        ])
    };
    let v1 = upload(
        &admin,
        &app,
        ResourceKind::H5,
        Some("20000001"),
        "1.0",
        h5("1.0"),
    )
    .await;
    let v2 = upload(
        &admin,
        &app,
        ResourceKind::H5,
        Some("20000001"),
        "2.0",
        h5("2.0"),
    )
    .await;
    let web = serde_json::from_str::<PackageManifest>(&v2.signed.manifest)
        .unwrap()
        .web
        .unwrap();
    assert_eq!(web.domain, "shop.h5.example");
    // A zip whose manifest disagrees with the upload is refused.
    let error = admin
        .upload_package(
            WS,
            &app,
            &UploadPackage {
                kind: ResourceKind::H5,
                platform: Platform::Android,
                version: "3.0".into(),
                resource_id: Some("20000001".into()),
                for_app_version: None,
                file_name: None,
                store_url: None,
            },
            h5("2.5"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed), "{error}");
    for package in [&v1, &v2] {
        let r = release(
            &admin,
            &app,
            package,
            CreateRelease {
                mode: Some(UpgradeMode::Silent),
                ..CreateRelease::default()
            },
        )
        .await;
        promote(&admin, &app, &r, ReleaseStage::Official, None).await;
    }
    let installed = |version: &str| UpdateCheck {
        installed: vec![Installed {
            kind: ResourceKind::H5,
            resource_id: "20000001".into(),
            version: version.into(),
        }],
        ..UpdateCheck::default()
    };
    let h5_update = |answer: &UpdateAnswer| {
        answer
            .updates
            .iter()
            .find(|u| u.kind == ResourceKind::H5)
            .cloned()
    };
    let answer = check(&newer, &installed("1.0")).await;
    assert_eq!(h5_update(&answer).unwrap().version, "2.0");
    assert!(h5_update(&check(&newer, &installed("2.0")).await).is_none());
    let v2_release = admin
        .releases(WS, &app)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.package.id == v2.id)
        .unwrap();
    admin
        .release_action(WS, &app, &v2_release.id, ReleaseAction::Rollback)
        .await
        .unwrap();
    let back = h5_update(&check(&newer, &installed("2.0")).await).expect("sent back");
    assert_eq!(
        (back.action, back.version.as_str()),
        (UpdateAction::Rollback, "1.0")
    );
    assert!(
        h5_update(&check(&newer, &installed("1.0")).await).is_none(),
        "devices on 1.0 are not offered the rolled-back 2.0"
    );
    // Rolling back the only hotpatch tells devices to remove it.
    let patch = upload(
        &admin,
        &app,
        ResourceKind::Hotpatch,
        None,
        "1",
        package_bytes(3, 100),
    )
    .await;
    let hot = release(&admin, &app, &patch, CreateRelease::default()).await;
    promote(&admin, &app, &hot, ReleaseStage::Official, None).await;
    let (on_one, _d4) = android_device(&server, "1.0").await;
    let fresh = check(&on_one, &UpdateCheck::default()).await;
    assert!(
        fresh
            .updates
            .iter()
            .any(|u| u.kind == ResourceKind::Hotpatch),
        "{fresh:?}"
    );
    admin
        .release_action(WS, &app, &hot.id, ReleaseAction::Rollback)
        .await
        .unwrap();
    let removed = check(
        &on_one,
        &UpdateCheck {
            installed: vec![Installed {
                kind: ResourceKind::Hotpatch,
                resource_id: "hotpatch".into(),
                version: "1".into(),
            }],
            ..UpdateCheck::default()
        },
    )
    .await;
    let removal = removed
        .updates
        .iter()
        .find(|u| u.kind == ResourceKind::Hotpatch)
        .unwrap();
    assert_eq!(removal.action, UpdateAction::Remove);
}

#[tokio::test]
async fn downloads_resume_with_ranges_and_only_serve_the_apps_files() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let content = package_bytes(4, 300_000);
    let package = upload(
        &admin,
        &app,
        ResourceKind::App,
        None,
        "2.0.0",
        content.clone(),
    )
    .await;
    let sha = package.sha256.clone().unwrap();
    let url = format!("{}/device/v1/downloads/{app}/{sha}", server.url);
    let http = reqwest::Client::new();
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), content.as_slice());
    // Resume after 100 000 bytes.
    let rest = http
        .get(&url)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.headers()["content-range"],
        "bytes 100000-299999/300000"
    );
    assert_eq!(rest.bytes().await.unwrap().as_ref(), &content[100_000..]);
    let outside = http
        .get(&url)
        .header("range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], "bytes */300000");
    // Another app's key, or an unknown hash, finds nothing.
    let other = http
        .get(format!(
            "{}/device/v1/downloads/not-the-app/{sha}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let unknown = http
        .get(format!(
            "{}/device/v1/downloads/{app}/{}",
            server.url,
            "0".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The manifest is signed with the workspace key; a flipped byte breaks it.
    let key = admin.signing_key(WS).await.unwrap();
    let manifest = atoll_delivery::signing::verify(&package.signed, &key.public_key).unwrap();
    assert_eq!(manifest.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(manifest.size, 300_000);
    let mut tampered = package.signed.clone();
    tampered.manifest = tampered.manifest.replacen("2.0.0", "2.0.1", 1);
    assert!(atoll_delivery::signing::verify(&tampered, &key.public_key).is_err());
    // The same version twice is a conflict.
    let again = admin
        .upload_package(
            WS,
            &app,
            &UploadPackage {
                kind: ResourceKind::App,
                platform: Platform::Android,
                version: "2.0.0".into(),
                resource_id: None,
                for_app_version: None,
                file_name: None,
                store_url: None,
            },
            vec![1, 2, 3],
        )
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::Conflict), "{again}");
}

#[tokio::test]
async fn the_sdk_rebuilds_the_new_package_from_a_delta_and_refuses_tampered_ones() {
    use atoll_sdk::{Error, Refusal, Updater, UpdaterConfig};
    use std::sync::Arc;
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let app = server.demo.app_key.clone();
    let old = package_bytes(5, 400_000);
    let mut new = old.clone();
    new[1000..1600].copy_from_slice(&package_bytes(6, 600));
    new.extend_from_slice(&package_bytes(7, 5000));
    upload(&admin, &app, ResourceKind::App, None, "1.0.0", old.clone()).await;
    let v2 = upload(&admin, &app, ResourceKind::App, None, "2.0.0", new.clone()).await;
    let upgrade = release(&admin, &app, &v2, CreateRelease::default()).await;
    promote(&admin, &app, &upgrade, ReleaseStage::Official, None).await;

    let (device, _dir) = android_device(&server, "1.0.0").await;
    let device = Arc::new(device);
    let key = admin.signing_key(WS).await.unwrap();
    let updater = Updater::new(
        device.clone(),
        UpdaterConfig::new(&device, key.public_key.clone()),
    )
    .unwrap();
    // The patch is made in the background after the upload; the check offers
    // it once it is ready (the snapshot refreshes within 2 s).
    let mut update = None;
    for _ in 0..60 {
        let answer = updater.check(&UpdateCheck::default()).await.unwrap();
        let found = app_update(&answer).cloned().expect("offered");
        if found.delta.is_some() {
            update = Some(found);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let update = update.expect("a delta patch from 1.0.0 within 30 s");
    let delta = update.delta.clone().unwrap();
    assert_eq!(delta.from_version, "1.0.0");
    assert!(
        delta.download.size < 20_000,
        "patch of {} bytes",
        delta.download.size
    );

    let installed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(installed.path(), &old).unwrap();
    let file = updater
        .download(&update, Some(installed.path()), None)
        .await
        .unwrap();
    assert!(file.via_delta, "rebuilt from the patch");
    assert_eq!(std::fs::read(&file.path).unwrap(), new, "byte for byte");
    updater
        .report(
            &update.release_id,
            ReportEvent::Installed,
            Some("1.0.0"),
            true,
            None,
        )
        .await
        .unwrap();

    // A manifest changed in transit fails the signature check.
    let mut forged = update.clone();
    forged.signed.as_mut().unwrap().manifest =
        forged
            .signed
            .as_ref()
            .unwrap()
            .manifest
            .replacen("\"size\":", "\"size\": ", 1);
    let error = updater.download(&forged, None, None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Refused {
                reason: Refusal::SignatureInvalid,
                ..
            }
        ),
        "{error:?}"
    );
    // A stored package with one flipped byte fails the hash check, and the
    // device keeps nothing of it.
    let sha = v2.sha256.clone().unwrap();
    let blob = server
        .data_dir
        .path()
        .join("data/blobs/sha256")
        .join(&sha[..2])
        .join(&sha);
    let mut stored = std::fs::read(&blob).unwrap();
    stored[200_000] ^= 0x01;
    std::fs::write(&blob, &stored).unwrap();
    let (fresh, _dir2) = android_device(&server, "1.0.0").await;
    let fresh = Arc::new(fresh);
    let fresh_updater =
        Updater::new(fresh.clone(), UpdaterConfig::new(&fresh, key.public_key)).unwrap();
    let error = fresh_updater
        .download(&update, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Refused {
                reason: Refusal::HashMismatch,
                ..
            }
        ),
        "{error:?}"
    );
    let stats = admin.release_stats(WS, &app, &upgrade.id).await.unwrap();
    assert_eq!(stats.total.installed, 1);
}
