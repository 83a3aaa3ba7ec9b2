//! Tests of the offline package store with zips built here.

use super::*;
use atoll_protocol::delivery::PackageManifest;
use atoll_protocol::device::Platform;
use std::io::Write;

const DOMAIN: &str = "shop.h5.example";

/// A zip of `(name, content, deflated)` entries.
fn zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, content, deflated) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(content);
        let (method, body) = if *deflated {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(content).unwrap();
            (DEFLATED, encoder.finish().unwrap())
        } else {
            (STORED, content.to_vec())
        };
        let offset = out.len() as u32;
        let sizes = [crc.sum(), body.len() as u32, content.len() as u32];
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0]);
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        for value in sizes {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        directory.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        directory.extend_from_slice(&[20, 3, 20, 0, 0, 0]);
        directory.extend_from_slice(&method.to_le_bytes());
        directory.extend_from_slice(&[0, 0, 0, 0]);
        for value in sizes {
            directory.extend_from_slice(&value.to_le_bytes());
        }
        directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
        directory.extend_from_slice(&[0; 12]);
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let directory_offset = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    let count = (entries.len() as u16).to_le_bytes();
    out.extend_from_slice(&count);
    out.extend_from_slice(&count);
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn web_manifest(id: &str, version: &str) -> WebManifest {
    WebManifest {
        id: id.into(),
        version: version.into(),
        entry: format!("https://{DOMAIN}/index.html"),
        domain: DOMAIN.into(),
        files: vec!["index.html".into(), "js/app.js".into()],
    }
}

/// A package of `id` `version` with an entry page and a script, as files.
fn package(id: &str, version: &str) -> Vec<(String, Vec<u8>)> {
    let manifest = serde_json::to_vec(&web_manifest(id, version)).unwrap();
    vec![
        (PACKAGE_MANIFEST_FILE.into(), manifest),
        (
            "index.html".into(),
            format!("<h1>{version}</h1>").into_bytes(),
        ),
        ("js/".into(), Vec::new()),
        (
            "js/app.js".into(),
            format!("run('{version}');").repeat(50).into_bytes(),
        ),
    ]
}

fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<(&str, &[u8], bool)> = files
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_slice(), name.ends_with(".js")))
        .collect();
    zip(&entries)
}

/// A verified file (as [`crate::Updater::download`] returns) of `zip`.
fn verified(dir: &Path, zip: &[u8], id: &str, version: &str) -> VerifiedFile {
    let sha256 = hex::encode(Sha256::digest(zip));
    let path = dir.join(&sha256);
    std::fs::write(&path, zip).unwrap();
    VerifiedFile {
        path,
        sha256: sha256.clone(),
        size: zip.len() as u64,
        manifest: PackageManifest {
            app_key: "app-test".into(),
            kind: ResourceKind::H5,
            resource_id: id.into(),
            platform: Platform::Android,
            version: version.into(),
            for_app_version: None,
            sha256: Some(sha256),
            size: zip.len() as u64,
            store_url: None,
            web: None,
        },
        via_delta: false,
    }
}

fn install(store: &OfflinePackages, dir: &Path, id: &str, version: &str) -> Result<WebManifest> {
    let zip = zip_of(&package(id, version));
    store.install(&verified(dir, &zip, id, version))
}

fn refusal(error: Error) -> Refusal {
    match error {
        Error::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn read(path: Option<PathBuf>) -> String {
    std::fs::read_to_string(path.expect("resolved")).unwrap()
}

#[test]
fn install_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::open(dir.path()).unwrap();
    assert!(store.installed().is_empty());
    let manifest = install(&store, dir.path(), "shop", "1.0.0").unwrap();
    assert_eq!(manifest, web_manifest("shop", "1.0.0"));
    assert_eq!(
        store.installed(),
        vec![Installed {
            kind: ResourceKind::H5,
            resource_id: "shop".into(),
            version: "1.0.0".into(),
        }]
    );
    assert_eq!(store.current("shop"), Some(manifest));

    let root = format!("https://{DOMAIN}");
    assert_eq!(read(store.resolve(&format!("{root}/"))), "<h1>1.0.0</h1>");
    assert_eq!(read(store.resolve(&root)), "<h1>1.0.0</h1>");
    assert_eq!(
        read(store.resolve("https://SHOP.h5.example:443/js/app.js?v=3#top")),
        "run('1.0.0');".repeat(50)
    );
    assert_eq!(
        read(store.resolve(&format!("{root}/js/%61pp.js"))),
        "run('1.0.0');".repeat(50)
    );
    // Not listed in `files`, missing, elsewhere, or escaping: the network.
    assert_eq!(store.resolve(&format!("{root}/manifest.json")), None);
    assert_eq!(store.resolve(&format!("{root}/js/missing.js")), None);
    assert_eq!(
        store.resolve(&format!("{root}/../shop/1.0.0/index.html")),
        None
    );
    assert_eq!(store.resolve(&format!("{root}/js/..%2Findex.html")), None);
    assert_eq!(store.resolve("https://other.example/index.html"), None);
    assert_eq!(store.resolve(&format!("http://{DOMAIN}/index.html")), None);
}

#[test]
fn upgrades_keep_the_previous_version_for_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::open(dir.path()).unwrap();
    for version in ["1.0.0", "2.0.0", "3.0.0"] {
        install(&store, dir.path(), "shop", version).unwrap();
    }
    let folder = dir.path().join("offline/shop");
    let mut versions: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    assert_eq!(versions, ["2.0.0", "3.0.0"]);
    let index = format!("https://{DOMAIN}/index.html");
    assert_eq!(read(store.resolve(&index)), "<h1>3.0.0</h1>");

    store.rollback_to("shop", "2.0.0").unwrap();
    assert_eq!(read(store.resolve(&index)), "<h1>2.0.0</h1>");
    assert_eq!(store.installed()[0].version, "2.0.0");
    // Gone from disk: it has to be downloaded again.
    assert_eq!(
        refusal(store.rollback_to("shop", "1.0.0").unwrap_err()),
        Refusal::NotInstalled
    );
    assert_eq!(
        refusal(store.rollback_to("shop", "../shop/3.0.0").unwrap_err()),
        Refusal::NotInstalled
    );
    assert_eq!(
        refusal(store.rollback_to("nothing", "1.0.0").unwrap_err()),
        Refusal::NotInstalled
    );
    // Reinstalling a version on disk replaces it.
    install(&store, dir.path(), "shop", "3.0.0").unwrap();
    assert_eq!(read(store.resolve(&index)), "<h1>3.0.0</h1>");

    // The index survives a restart.
    drop(store);
    let store = OfflinePackages::open(dir.path()).unwrap();
    assert_eq!(store.installed()[0].version, "3.0.0");
    assert_eq!(read(store.resolve(&index)), "<h1>3.0.0</h1>");
    store.rollback_to("shop", "2.0.0").unwrap();
    assert_eq!(read(store.resolve(&index)), "<h1>2.0.0</h1>");
}

#[test]
fn remove_deletes_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::open(dir.path()).unwrap();
    install(&store, dir.path(), "shop", "1.0.0").unwrap();
    install(&store, dir.path(), "shop", "1.1.0").unwrap();
    store.remove("shop").unwrap();
    assert!(store.installed().is_empty());
    assert_eq!(store.resolve(&format!("https://{DOMAIN}/")), None);
    assert!(!dir.path().join("offline/shop").exists());
    // Removing twice, or something never installed, is fine.
    store.remove("shop").unwrap();
    store.remove("../..").unwrap();
    assert!(dir.path().exists());
    let store = OfflinePackages::open(dir.path()).unwrap();
    assert!(store.installed().is_empty());
}

#[test]
fn names_leaving_the_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::open(dir.path()).unwrap();
    install(&store, dir.path(), "shop", "1.0.0").unwrap();
    for evil in [
        "../evil.txt",
        "js/../../evil.txt",
        "/tmp/evil.txt",
        "js\\..\\..\\evil.txt",
        "C:/evil.txt",
        "./index2.html",
        "js//evil.txt",
    ] {
        let mut files = package("shop", "2.0.0");
        files.push((evil.into(), b"pwned".to_vec()));
        let zip = zip_of(&files);
        let error = store
            .install(&verified(dir.path(), &zip, "shop", "2.0.0"))
            .unwrap_err();
        assert_eq!(refusal(error), Refusal::UnsafePath, "{evil}");
        assert!(!dir.path().join("evil.txt").exists());
        assert!(!dir.path().join("offline/evil.txt").exists());
        assert!(!dir.path().join("offline/shop/2.0.0").exists());
    }
    // An id or version that is not one folder name.
    for (id, version) in [("../shop", "2.0.0"), ("shop", "../2.0.0"), (".hidden", "1")] {
        let zip = zip_of(&package(id, version));
        let error = store
            .install(&verified(dir.path(), &zip, id, version))
            .unwrap_err();
        assert_eq!(refusal(error), Refusal::UnsafePath, "{id} {version}");
    }
    assert_eq!(store.installed()[0].version, "1.0.0");
}

#[test]
fn bad_packages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::with_limits(
        dir.path(),
        OfflineLimits {
            max_entries: 6,
            ..OfflineLimits::default()
        },
    )
    .unwrap();
    let check = |files: &[(String, Vec<u8>)], id: &str, version: &str| {
        let zip = zip_of(files);
        refusal(
            store
                .install(&verified(dir.path(), &zip, id, version))
                .unwrap_err(),
        )
    };
    // The signed manifest says another package or version.
    assert_eq!(
        check(&package("shop", "1.0.0"), "shop", "1.0.1"),
        Refusal::ManifestMismatch
    );
    assert_eq!(
        check(&package("shop", "1.0.0"), "cart", "1.0.0"),
        Refusal::ManifestMismatch
    );
    // No manifest; a listed file missing; a duplicate name.
    let mut files = package("shop", "1.0.0");
    files.remove(0);
    assert_eq!(check(&files, "shop", "1.0.0"), Refusal::PackageInvalid);
    let mut files = package("shop", "1.0.0");
    files.pop();
    assert_eq!(check(&files, "shop", "1.0.0"), Refusal::PackageInvalid);
    let mut files = package("shop", "1.0.0");
    files.push(("INDEX.html".into(), b"twice".to_vec()));
    assert_eq!(check(&files, "shop", "1.0.0"), Refusal::PackageInvalid);
    // Too many entries.
    let mut files = package("shop", "1.0.0");
    for n in 0..3 {
        files.push((format!("extra{n}.txt"), Vec::new()));
    }
    assert_eq!(check(&files, "shop", "1.0.0"), Refusal::TooLarge);
    // Not a zip at all.
    let file = verified(dir.path(), b"not a zip", "shop", "1.0.0");
    assert_eq!(
        refusal(store.install(&file).unwrap_err()),
        Refusal::PackageInvalid
    );
    // Changed on disk since it was verified.
    let zip = zip_of(&package("shop", "1.0.0"));
    let file = verified(dir.path(), &zip, "shop", "1.0.0");
    let mut changed = zip.clone();
    changed[40] ^= 1;
    std::fs::write(&file.path, changed).unwrap();
    assert_eq!(
        refusal(store.install(&file).unwrap_err()),
        Refusal::HashMismatch
    );
    // Another package already serves the domain.
    install(&store, dir.path(), "shop", "1.0.0").unwrap();
    assert_eq!(
        refusal(install(&store, dir.path(), "cart", "1.0.0").unwrap_err()),
        Refusal::PackageInvalid
    );
    assert!(store.installed().len() == 1);
}

#[test]
fn a_lying_entry_size_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let store = OfflinePackages::open(dir.path()).unwrap();
    let mut zip = zip_of(&package("shop", "1.0.0"));
    // Damage the CRC of the first local entry's content (index.html is
    // stored): flip a content byte of `<h1>1.0.0</h1>`.
    let at = zip.windows(4).position(|w| w == b"<h1>").unwrap();
    zip[at + 1] ^= 1;
    let error = store
        .install(&verified(dir.path(), &zip, "shop", "1.0.0"))
        .unwrap_err();
    assert_eq!(refusal(error), Refusal::PackageInvalid);
    assert!(store.installed().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("offline/shop"))
            .unwrap()
            .count(),
        0
    );
}
