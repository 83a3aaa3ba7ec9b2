//! `delta-engines OLD NEW`: patch size and diff time of the candidate engines
//! for raw binaries, on one pair of files. One line per engine, tab-separated:
//! engine, patch bytes, diff seconds, apply seconds (when the crate applies).
//!
//! - qbsdiff: bsdiff 4 format (bzip2), Rust, single-threaded here;
//! - bidiff (divvun): bsdiff-derived matcher, its patch compressed with zstd -19
//!   as its README suggests;
//! - zstd patch-from through the zstd crate (the old file as a raw-content
//!   prefix, window large enough to cover it, long-distance matching);
//! - atoll-delta with zstd-only streams and with xz allowed (the default).

use std::io::Cursor;
use std::time::Instant;

use atoll_delta::{apply, diff, ApplyOptions, DiffOptions, Format};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let old = std::fs::read(&args[1]).expect("old");
    let new = std::fs::read(&args[2]).expect("new");
    println!("engine\tpatch_bytes\tdiff_s\tapply_s");

    let t = Instant::now();
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(&old, &new)
        .compare(Cursor::new(&mut patch))
        .expect("qbsdiff");
    let d = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut out = Vec::new();
    qbsdiff::Bspatch::new(&patch)
        .expect("patch")
        .apply(&old, Cursor::new(&mut out))
        .expect("bspatch");
    assert!(out == new, "qbsdiff round trip");
    println!(
        "qbsdiff\t{}\t{d:.2}\t{:.2}",
        patch.len(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut raw = Vec::new();
    bidiff::simple_diff(&old, &new, &mut raw).expect("bidiff");
    let patch = zstd::bulk::compress(&raw, 19).expect("zstd");
    println!(
        "bidiff+zstd19\t{}\t{:.2}\t-",
        patch.len(),
        t.elapsed().as_secs_f64()
    );

    for level in [19, 22] {
        let t = Instant::now();
        let patch = zstd_patch_from(&old, &new, level);
        println!(
            "zstd-crate-patch-from-{level}\t{}\t{:.2}\t-",
            patch.len(),
            t.elapsed().as_secs_f64()
        );
    }

    for (name, lzma) in [("atoll-zstd19", false), ("atoll-xz", true)] {
        let options = DiffOptions {
            format: Format::Raw,
            level: 19,
            lzma,
        };
        let t = Instant::now();
        let patch = diff(&old, &new, &options).expect("atoll diff");
        let d = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut out = Vec::new();
        apply(&old, &patch, &mut out, &ApplyOptions::default()).expect("atoll apply");
        assert!(out == new, "atoll round trip");
        println!(
            "{name}\t{}\t{d:.2}\t{:.2}",
            patch.len(),
            t.elapsed().as_secs_f64()
        );
    }
}

fn zstd_patch_from(old: &[u8], new: &[u8], level: i32) -> Vec<u8> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let window = (usize::BITS - (old.len() + new.len()).leading_zeros()).clamp(10, 30);
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .expect("level");
    cctx.set_parameter(CParameter::WindowLog(window))
        .expect("window");
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(true))
        .expect("ldm");
    cctx.ref_prefix(old).expect("prefix");
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(new.len()));
    cctx.compress2(&mut out, new).expect("compress");
    out
}
