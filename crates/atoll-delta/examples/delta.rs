//! Command-line front end, used by bench/delivery to measure time and peak RSS.
//!
//! ```text
//! delta diff OLD NEW PATCH [--raw|--zip] [--level N]
//! delta apply OLD PATCH OUT [--old-sha256 HEX]
//! delta info PATCH
//! ```
//!
//! `apply` reads OLD with positioned reads (not into memory) and streams OUT,
//! so its peak RSS is what a device would need. A summary goes to stderr.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;
use std::time::Instant;

use atoll_delta::{apply, diff_with_report, read_header, ApplyOptions, DiffOptions, Format};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delta: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: delta diff OLD NEW PATCH [--raw|--zip] [--level N] | delta apply OLD PATCH OUT [--old-sha256 HEX] | delta info PATCH";
    match args.first().map(String::as_str) {
        Some("diff") if args.len() >= 4 => {
            let mut options = DiffOptions::default();
            let mut rest = args[4..].iter();
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--raw" => options.format = Format::Raw,
                    "--zip" => options.format = Format::Zip,
                    "--level" => options.level = rest.next().ok_or(usage)?.parse()?,
                    _ => return Err(usage.into()),
                }
            }
            let old = std::fs::read(&args[1])?;
            let new = std::fs::read(&args[2])?;
            let t = Instant::now();
            let (patch, r) = diff_with_report(&old, &new, &options)?;
            let secs = t.elapsed().as_secs_f64();
            std::fs::write(&args[3], &patch)?;
            eprintln!(
                "diff: {} bytes ({:.2}% of new) in {secs:.2}s; entries {} unchanged {} recompressed {} not reproducible {}; \
                 expanded {} -> {}; streams control/diff/extra {:?}",
                patch.len(),
                100.0 * patch.len() as f64 / new.len().max(1) as f64,
                r.entries,
                r.entries_unchanged,
                r.entries_recompressed,
                r.entries_not_reproducible,
                r.expanded_old,
                r.expanded_new,
                r.streams
            );
            Ok(())
        }
        Some("apply") if args.len() == 4 || (args.len() == 6 && args[4] == "--old-sha256") => {
            let mut options = ApplyOptions::default();
            if let Some(text) = args.get(5) {
                let mut sha = [0u8; 32];
                if text.len() != 64 {
                    return Err("--old-sha256 takes 64 hex digits".into());
                }
                for (i, byte) in sha.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
                }
                options.old_sha256 = Some(sha);
            }
            let old = File::open(&args[1])?;
            let patch = std::fs::read(&args[2])?;
            let out = BufWriter::with_capacity(64 * 1024, File::create(&args[3])?);
            let t = Instant::now();
            let r = apply(&old, &patch, out, &options)?;
            eprintln!(
                "apply: {} bytes in {:.2}s, sha256 {} verified; expanded {} entries, recompressed {}, scratch {} bytes{}",
                r.header.new_size,
                t.elapsed().as_secs_f64(),
                hex(&r.header.new_sha256),
                r.entries_expanded,
                r.entries_recompressed,
                r.scratch_bytes,
                if r.scratch_on_disk { " on disk" } else { "" }
            );
            Ok(())
        }
        Some("info") if args.len() == 2 => {
            let patch = std::fs::read(&args[1])?;
            let h = read_header(&patch)?;
            eprintln!(
                "{:?} patch: {} -> {} bytes, old sha256 {}, new sha256 {}",
                h.kind,
                h.old_size,
                h.new_size,
                hex(&h.old_sha256),
                hex(&h.new_sha256)
            );
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
