//! Zips written by another program (Python's `zipfile`, i.e. classic zlib), one
//! pair written to a file and one streamed (data descriptors after each
//! entry), and the registry packages of bench/delivery when downloaded.

use atoll_delta::{apply, diff_with_report, read_header, ApplyOptions, DiffOptions, PatchKind};

fn roundtrip(old: &[u8], new: &[u8]) -> (usize, atoll_delta::DiffReport) {
    let (patch, report) = diff_with_report(old, new, &DiffOptions::default()).unwrap();
    let mut out = Vec::new();
    apply(old, &patch, &mut out, &ApplyOptions::default()).unwrap();
    assert!(out == new, "patch must rebuild the new zip byte for byte");
    assert_eq!(read_header(&patch).unwrap().kind, PatchKind::Zip);
    (patch.len(), report)
}

#[test]
fn python_zips_are_rebuilt_exactly() {
    for name in ["offline", "streamed"] {
        let old = std::fs::read(format!("tests/fixtures/{name}-v1.zip")).unwrap();
        let new = std::fs::read(format!("tests/fixtures/{name}-v2.zip")).unwrap();
        let (size, report) = roundtrip(&old, &new);
        // index.html, app.js, manifest.json changed, new.css added: all four
        // deflate streams are reproduced by zlib, none falls back.
        assert_eq!(report.entries, 5, "{name}");
        assert_eq!(report.entries_unchanged, 1, "{name}");
        assert_eq!(report.entries_recompressed, 4, "{name}");
        assert_eq!(report.entries_not_reproducible, 0, "{name}");
        assert!(
            size < new.len() / 10,
            "{name}: patch {size} bytes for {} bytes",
            new.len()
        );
    }
}

/// The registry packages of the delta benchmark (run bench/delivery/run.sh
/// once to download them): `cargo test -p atoll-delta --release -- --ignored`.
#[test]
#[ignore = "needs bench/delivery/corpus (downloaded by bench/delivery/run.sh) and a release build"]
fn registry_wheels_are_rebuilt_exactly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/delivery/corpus");
    let mut wheels: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    wheels.sort();
    assert!(wheels.len() >= 2, "two wheels expected in {dir}");
    let old = std::fs::read(&wheels[0]).unwrap();
    let new = std::fs::read(&wheels[1]).unwrap();
    let (size, report) = roundtrip(&old, &new);
    assert_eq!(report.entries_not_reproducible, 0);
    assert!(size < new.len() / 4);
}
