//! Reading and checking the `manifest.json` inside an H5 offline package or a
//! mini program zip. The zip is an untrusted upload: the reader is the delta
//! crate's checked zip reader, the manifest is inflated with a size cap, and
//! every field is validated. Fuzzed by `fuzz/fuzz_targets/package_manifest.rs`.

use atoll_delta::zip::{read_entries, DEFLATED, STORED};
use atoll_protocol::delivery::{limits, WebManifest, PACKAGE_MANIFEST_FILE};
use std::io::Read;

/// Why a package's manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError(message.into())
}

/// Reads `manifest.json` from a package zip and validates it.
pub fn read_web_manifest(zip: &[u8]) -> Result<WebManifest, ManifestError> {
    let entries = read_entries(zip).ok_or_else(|| {
        invalid("the package is not a zip this server can read (zip64 and encrypted zips are not supported)")
    })?;
    let names: std::collections::HashSet<&[u8]> =
        entries.iter().map(|entry| entry.name.as_slice()).collect();
    let entry = entries
        .iter()
        .find(|entry| entry.name == PACKAGE_MANIFEST_FILE.as_bytes())
        .ok_or_else(|| {
            invalid(format!(
                "the package has no {PACKAGE_MANIFEST_FILE} at its root"
            ))
        })?;
    if entry.uncompressed_size > limits::MAX_MANIFEST_BYTES as u64 {
        return Err(invalid(format!(
            "{PACKAGE_MANIFEST_FILE} is over {} bytes",
            limits::MAX_MANIFEST_BYTES
        )));
    }
    let data = zip
        .get(entry.data_range())
        .ok_or_else(|| invalid("the manifest entry lies outside the file"))?;
    let text = match entry.method {
        STORED => data.to_vec(),
        DEFLATED => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(data)
                .take(limits::MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|error| {
                    invalid(format!("{PACKAGE_MANIFEST_FILE} does not inflate: {error}"))
                })?;
            out
        }
        other => {
            return Err(invalid(format!(
                "{PACKAGE_MANIFEST_FILE} uses compression method {other}; use stored or deflate"
            )))
        }
    };
    if text.len() as u64 != entry.uncompressed_size {
        return Err(invalid(format!(
            "{PACKAGE_MANIFEST_FILE} inflates to {} bytes, not the {} its header says",
            text.len(),
            entry.uncompressed_size
        )));
    }
    let manifest: WebManifest = serde_json::from_slice(&text)
        .map_err(|error| invalid(format!("{PACKAGE_MANIFEST_FILE}: {error}")))?;
    validate(&manifest)?;
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|file| !names.contains(file.as_bytes()))
    {
        return Err(invalid(format!(
            "{PACKAGE_MANIFEST_FILE} lists '{missing}', which is not in the zip"
        )));
    }
    Ok(manifest)
}

/// Checks a manifest's fields (not against the zip).
pub fn validate(manifest: &WebManifest) -> Result<(), ManifestError> {
    if manifest.files.len() > limits::MAX_MANIFEST_FILES {
        return Err(invalid(format!(
            "the manifest lists more than {} files",
            limits::MAX_MANIFEST_FILES
        )));
    }
    let domain = manifest.domain.as_str();
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !domain_ok {
        return Err(invalid(format!(
            "domain '{domain}' is not a host name (letters, digits, '-' and '.')"
        )));
    }
    let prefix = format!("https://{domain}/");
    if !manifest.entry.starts_with(&prefix) && manifest.entry != prefix.trim_end_matches('/') {
        return Err(invalid(format!(
            "entry '{}' must be a URL under https://{domain}/",
            manifest.entry
        )));
    }
    for file in &manifest.files {
        let safe = !file.is_empty()
            && file.len() <= 1024
            && !file.starts_with('/')
            && !file.contains('\\')
            && !file.chars().any(char::is_control)
            && file
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !safe {
            return Err(invalid(format!(
                "file '{file}' must be a relative path without '.', '..', '\\' or empty parts"
            )));
        }
    }
    Ok(())
}

/// Writes a zip of `files`, stored (not compressed): for the demo data, tools
/// and tests that need a small offline package.
pub fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let mut header = Vec::new();
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&(data.len() as u32).to_le_bytes());
        header.extend_from_slice(&(data.len() as u32).to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn h5_zip(id: &str, version: &str) -> Vec<u8> {
        let manifest = serde_json::json!({
            "id": id, "version": version,
            "entry": "https://shop.h5.example/index.html",
            "domain": "shop.h5.example",
            "files": ["index.html", "js/app.js"],
        })
        .to_string();
        stored_zip(&[
            ("manifest.json", manifest.as_bytes()),
            ("index.html", format!("<h1>{version}</h1>").as_bytes()),
            ("js/app.js", b"console.log(1)"),
        ])
    }

    #[test]
    fn reads_a_valid_manifest() {
        let manifest = read_web_manifest(&h5_zip("20000001", "1.0.0")).unwrap();
        assert_eq!(manifest.id, "20000001");
        assert_eq!(manifest.files.len(), 2);
    }

    #[test]
    fn refuses_bad_packages() {
        assert!(read_web_manifest(b"not a zip").is_err());
        assert!(read_web_manifest(&stored_zip(&[("index.html", b"x")])).is_err());
        let listing_missing = serde_json::json!({
            "id": "1", "version": "1", "entry": "https://a.example/", "domain": "a.example",
            "files": ["gone.js"],
        })
        .to_string();
        let error = read_web_manifest(&stored_zip(&[(
            "manifest.json",
            listing_missing.as_bytes(),
        )]))
        .unwrap_err();
        assert!(error.0.contains("gone.js"), "{error}");
        for bad_file in ["../etc/passwd", "/abs", "a//b", "a\\b"] {
            let manifest = WebManifest {
                id: "1".into(),
                version: "1".into(),
                entry: "https://a.example/".into(),
                domain: "a.example".into(),
                files: vec![bad_file.into()],
            };
            assert!(validate(&manifest).is_err(), "{bad_file}");
        }
        let elsewhere = WebManifest {
            id: "1".into(),
            version: "1".into(),
            entry: "https://evil.example/".into(),
            domain: "a.example".into(),
            files: vec![],
        };
        assert!(validate(&elsewhere).is_err());
    }

    proptest::proptest! {
        /// Hostile uploads: any bytes, and a valid package with bytes changed
        /// anywhere, are read or refused, never a panic; what is accepted validates.
        #[test]
        fn hostile_packages_are_refused_not_crashed(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flips in proptest::collection::vec((0usize..2000, proptest::prelude::any::<u8>()), 1..6),
        ) {
            if let Ok(manifest) = read_web_manifest(&noise) {
                proptest::prop_assert!(validate(&manifest).is_ok());
            }
            let mut zip = h5_zip("20000001", "1.0.0");
            for (at, byte) in flips {
                let len = zip.len();
                zip[at % len] = byte;
            }
            if let Ok(manifest) = read_web_manifest(&zip) {
                proptest::prop_assert!(validate(&manifest).is_ok());
            }
        }
    }
}
