//! Round trips and refusals of whole patches.

use proptest::prelude::*;

use crate::zip::tests::build_zip;
use crate::*;

fn roundtrip(old: &[u8], new: &[u8], format: Format) -> (Vec<u8>, DiffReport) {
    let options = DiffOptions {
        format,
        level: 3,
        lzma: true,
    };
    let (patch, report) = diff_with_report(old, new, &options).unwrap();
    let mut out = Vec::new();
    let applied = apply(old, &patch, &mut out, &ApplyOptions::default()).unwrap();
    assert_eq!(out, new, "patch must rebuild the new file byte for byte");
    assert_eq!(applied.header.new_size, new.len() as u64);
    (patch, report)
}

fn text(seed: u32, lines: u32) -> Vec<u8> {
    (0..lines)
        .flat_map(|i| {
            format!(
                "fn item_{}() -> u32 {{ {} }}\n",
                (i * 31 + seed) % 1000,
                i ^ seed
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn raw_roundtrips() {
    let old = text(1, 5000);
    let mut new = old.clone();
    new.splice(100..200, text(9, 3));
    new.extend_from_slice(b"tail");
    let (patch, report) = roundtrip(&old, &new, Format::Auto);
    assert_eq!(read_header(&patch).unwrap().kind, PatchKind::Raw);
    assert!(patch.len() < 1000, "patch {} bytes", patch.len());
    assert_eq!(report.entries, 0);
    roundtrip(b"", b"", Format::Raw);
    roundtrip(b"", b"x", Format::Raw);
    roundtrip(b"x", b"", Format::Raw);
}

#[test]
fn zip_entries_are_diffed_uncompressed_and_rebuilt_exactly() {
    let lib_old = text(1, 20_000);
    let mut lib_new = lib_old.clone();
    lib_new.splice(5000..5100, text(2, 10));
    let old = build_zip(
        &[
            ("lib.so", &lib_old, Some(6)),
            ("same.txt", b"same content", Some(9)),
            ("gone.txt", b"bye", None),
        ],
        b"APK Sig Block 42",
    );
    let new = build_zip(
        &[
            ("same.txt", b"same content", Some(9)),
            ("lib.so", &lib_new, Some(6)),
            ("added.txt", &text(3, 100), Some(1)),
            ("empty", b"", Some(6)),
        ],
        b"APK Sig Block 43",
    );
    let (patch, report) = roundtrip(&old, &new, Format::Auto);
    assert_eq!(read_header(&patch).unwrap().kind, PatchKind::Zip);
    assert_eq!(report.entries, 4);
    assert_eq!(report.entries_unchanged, 1);
    assert_eq!(report.entries_recompressed, 3);
    // The raw diff of the compressed bytes cannot see the small change.
    let (raw, _) = roundtrip(&old, &new, Format::Raw);
    assert!(
        patch.len() * 3 < raw.len(),
        "zip-aware {} vs raw {}",
        patch.len(),
        raw.len()
    );
}

#[test]
fn entries_zlib_cannot_reproduce_fall_back_to_compressed_bytes() {
    // miniz_oxide's deflate stream differs from zlib's for the same content.
    use std::io::Write;
    let content = text(5, 3000);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&content).unwrap();
    let foreign = enc.finish().unwrap();
    let old = build_zip(&[("a", &text(4, 3000), Some(6))], b"");
    let mut new = build_zip(&[("a", &content, Some(6))], b"");
    let e = zip::read_entries(&new).unwrap().remove(0);
    if foreign.len() == e.compressed_size as usize && foreign != new[e.data_range()] {
        new[e.data_range()].copy_from_slice(&foreign);
        let (_, report) = roundtrip(&old, &new, Format::Zip);
        assert_eq!(report.entries_not_reproducible, 1);
    }
}

#[test]
fn large_zip_entry_uses_a_scratch_file() {
    let old = build_zip(&[("big", &text(1, 40_000), Some(6))], b"");
    let new = build_zip(&[("big", &text(2, 40_000), Some(6))], b"");
    let patch = diff(
        &old,
        &new,
        &DiffOptions {
            level: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let dir = std::env::temp_dir();
    let options = ApplyOptions {
        scratch_dir: Some(dir),
        memory_scratch_limit: 1024,
        old_sha256: None,
    };
    let mut out = Vec::new();
    let report = apply(&old, &patch, &mut out, &options).unwrap();
    assert!(report.scratch_on_disk);
    assert_eq!(out, new);
}

#[test]
fn explicit_zip_refuses_non_zips() {
    let err = diff(
        b"plain",
        b"bytes",
        &DiffOptions {
            format: Format::Zip,
            level: 3,
            lzma: false,
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "not_a_zip");
}

#[test]
fn wrong_base_is_refused() {
    let old = text(1, 100);
    let new = text(2, 100);
    let patch = diff(&old, &new, &DiffOptions::default()).unwrap();
    let mut other = old.clone();
    other[10] ^= 1;
    let err = apply(&other, &patch, Vec::new(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(err.code(), "base_mismatch");
    let err = apply(&old[1..], &patch, Vec::new(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(err.code(), "base_mismatch");
}

#[test]
fn header_errors_have_their_codes() {
    let patch = diff(b"abc", b"abd", &DiffOptions::default()).unwrap();
    let mut v2 = patch.clone();
    v2[4] = 2;
    assert_eq!(read_header(&v2).unwrap_err().code(), "unsupported_version");
    assert_eq!(read_header(b"nope").unwrap_err().code(), "patch_corrupt");
    let mut huge = patch.clone();
    huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(read_header(&huge).unwrap_err().code(), "too_large");
    // A patch whose promised hash is wrong: the result check catches it.
    let mut lying = patch.clone();
    lying[60] ^= 1;
    let err = apply(&b"abc"[..], &lying, Vec::new(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(err.code(), "result_mismatch");
}

#[test]
fn damaged_patches_never_panic() {
    let old = build_zip(&[("x", &text(1, 300), Some(6)), ("y", b"yy", None)], b"");
    let new = build_zip(&[("x", &text(2, 300), Some(6)), ("y", b"yz", None)], b"");
    let patch = diff(
        &old,
        &new,
        &DiffOptions {
            level: 3,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..patch.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = patch.clone();
            bad[i] ^= flip;
            let mut out = Vec::new();
            if apply(&old, &bad, &mut out, &ApplyOptions::default()).is_ok() {
                assert_eq!(out, new, "a patch that applies must give the new file");
            }
        }
        let _ = apply(&old, &patch[..i], Vec::new(), &ApplyOptions::default());
    }
}

/// A random edit script: (position fraction, delete length, inserted bytes).
fn edits() -> impl Strategy<Value = Vec<(f64, usize, Vec<u8>)>> {
    prop::collection::vec(
        (
            0.0..1.0f64,
            0usize..300,
            prop::collection::vec(any::<u8>(), 0..200),
        ),
        0..12,
    )
}

fn edit(base: &[u8], script: &[(f64, usize, Vec<u8>)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for (at, del, ins) in script {
        let p = ((v.len() as f64) * at) as usize;
        let end = (p + del).min(v.len());
        v.splice(p..end, ins.iter().copied());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_edits_roundtrip(base in prop::collection::vec(any::<u8>(), 0..4000), script in edits(), seed in 0u32..50) {
        let mut old = text(seed, 200);
        old.extend_from_slice(&base);
        let new = edit(&old, &script);
        roundtrip(&old, &new, Format::Raw);
    }

    #[test]
    fn random_edits_in_zip_entries_roundtrip(script in edits(), level in 1u8..=9, seed in 0u32..50) {
        let a = text(seed, 600);
        let b = edit(&a, &script);
        let old = build_zip(&[("a", &a, Some(6)), ("s", b"stored", None)], b"");
        let new = build_zip(&[("s", &b[..b.len().min(50)], None), ("a", &b, Some(level))], b"sig");
        roundtrip(&old, &new, Format::Auto);
    }
}

#[test]
fn renamed_entry_is_diffed_against_the_removed_one() {
    let lib_old = text(1, 20_000);
    let mut lib_new = lib_old.clone();
    lib_new.splice(7000..7010, text(2, 3));
    let old = build_zip(
        &[("lib-1.2.so", &lib_old, Some(6)), ("x.txt", b"x", Some(6))],
        b"",
    );
    let new = build_zip(
        &[("lib-1.3.so", &lib_new, Some(6)), ("x.txt", b"y", Some(6))],
        b"",
    );
    let (patch, report) = roundtrip(&old, &new, Format::Zip);
    assert_eq!(report.entries_recompressed, 2);
    assert!(patch.len() < 2_000, "patch {} bytes", patch.len());
}

#[test]
fn duplicate_names_expand_an_old_entry_once() {
    let a = text(1, 2000);
    let b = text(2, 2000);
    let old = build_zip(&[("dup", &a, Some(6))], b"");
    let new = build_zip(&[("dup", &b, Some(6)), ("dup", &a, Some(9))], b"");
    roundtrip(&old, &new, Format::Zip);
}

#[test]
fn applies_from_a_file() {
    let old = build_zip(&[("big", &text(1, 40_000), Some(6))], b"");
    let new = build_zip(&[("big", &text(2, 40_000), Some(6))], b"");
    let patch = diff(&old, &new, &DiffOptions::default()).unwrap();
    let path = std::env::temp_dir().join(format!("atoll-delta-test-{}", std::process::id()));
    std::fs::write(&path, &old).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mut out = Vec::new();
    let result = apply(&file, &patch, &mut out, &ApplyOptions::default());
    std::fs::remove_file(&path).unwrap();
    result.unwrap();
    assert_eq!(out, new);
}

#[test]
fn a_known_old_hash_replaces_hashing_but_a_false_one_is_caught() {
    let old = text(1, 1000);
    let new = text(2, 1000);
    let patch = diff(&old, &new, &DiffOptions::default()).unwrap();
    let header = read_header(&patch).unwrap();
    let known = ApplyOptions {
        old_sha256: Some(header.old_sha256),
        ..ApplyOptions::default()
    };
    let mut out = Vec::new();
    apply(&old, &patch, &mut out, &known).unwrap();
    assert_eq!(out, new);
    // The caller claims the right hash for a damaged file: the result check fails.
    let mut damaged = old.clone();
    damaged[500] ^= 0x55;
    let err = apply(&damaged, &patch, Vec::new(), &known).unwrap_err();
    assert_eq!(err.code(), "result_mismatch");
}
