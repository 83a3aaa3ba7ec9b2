//! Untrusted H5 / mini program uploads: reading `manifest.json` from a hostile
//! zip never panics, and whatever it accepts passes validation (every listed
//! file is a safe relative path, the entry is under the virtual domain).
#![no_main]

use atoll_delivery::manifest::{read_web_manifest, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(manifest) = read_web_manifest(input) {
        validate(&manifest).expect("an accepted manifest validates");
        assert!(manifest.entry.starts_with(&format!("https://{}", manifest.domain)));
        for file in &manifest.files {
            assert!(!file.split('/').any(|part| part == ".." || part.is_empty()));
        }
    }
});
