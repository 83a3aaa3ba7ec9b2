//! Delta patches for app packages, H5 offline packages and raw files.
//!
//! The server makes a patch from the previous versions of a release to the new
//! one ([`diff`]); the device rebuilds the new file from the one it has
//! ([`apply`]), checks it byte for byte, and only then uses it.
//!
//! - **Raw files** get a bsdiff-style binary diff (module `matcher`:
//!   suffix array, approximate matches, streams coded with zstd or xz). It was chosen over
//!   zstd's `--patch-from` by measurement (bench/README.md, "Delta patches"):
//!   smaller patches on native libraries, and an apply that reads the old file
//!   at positions instead of holding it whole as a dictionary.
//! - **Zips** (APK, IPA, wheels, offline packages) are diffed entry-aware, as
//!   Google's archive-patcher does: entries whose deflate stream can be rebuilt
//!   exactly by classic zlib with some parameters are inflated on both sides,
//!   the binary diff runs over the "expanded" files, and the device deflates
//!   those entries again with the recorded parameters. Unchanged entries,
//!   local headers, the central directory, comments and signing blocks are
//!   plain bytes of the expanded files and come out exactly as they were.
//!   Entries no zlib setting reproduces are diffed as compressed bytes.
//! - **Apply** streams: the old file is read at positions ([`ReadAt`], e.g. a
//!   `File`), the patch's streams are decoded as they are used, the output is
//!   written as it is made and hashed. Peak memory stays at a few MiB plus the
//!   patch, whatever the package size (bench/README.md has the measurements).
//! - **Verification**: the patch header carries the size and SHA-256 of the old
//!   and the new file. `apply` refuses a wrong base (`base_mismatch`) and fails
//!   if the output differs (`result_mismatch`). The release manifest signs the
//!   new file's SHA-256; the SDK checks that signature against
//!   [`read_header`]'s `new_sha256` before applying.
//! - Every count and size read from a patch or a zip is checked and capped
//!   ([`limits`]); both readers are fuzzed (`fuzz/fuzz_targets/delta_*.rs`).
//!
//! The format is described in the `format` module's source.
//!
//! ```
//! use atoll_delta::{apply, diff, read_header, ApplyOptions, DiffOptions};
//!
//! let old = b"the old package, ".repeat(1000);
//! let mut new = old.clone();
//! new.splice(500..510, *b"new bytes!");
//! let patch = diff(&old, &new, &DiffOptions::default())?;
//! assert!(patch.len() < 200);
//! // The device: check the promised result against the signed manifest, then
//! // apply into a temporary file and keep it only on Ok.
//! assert_eq!(read_header(&patch)?.new_size, new.len() as u64);
//! let mut out = Vec::new();
//! apply(&old, &patch, &mut out, &ApplyOptions::default())?;
//! assert_eq!(out, new);
//! # Ok::<(), atoll_delta::Error>(())
//! ```

mod apply;
mod deflate;
mod error;
mod format;
mod matcher;
mod pages;
mod source;
pub mod zip;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::io::Read;

use sha2::{Digest, Sha256};

pub use apply::{apply, read_header, ApplyOptions, ApplyReport};
pub use deflate::DeflateParams;
pub use error::{Error, Result};
pub use format::{PatchHeader, PatchKind};
pub use source::ReadAt;

use format::{Codec, Expansion, Recompression, ZipPlan};

/// Caps on everything read from a patch or a zip.
pub mod limits {
    use crate::error::{Error, Result};

    /// Largest old or new file (suffix array indices are 32-bit).
    pub const MAX_FILE: u64 = (1 << 31) - 1;
    /// Largest expanded (entries inflated) file.
    pub const MAX_EXPANDED: u64 = (1 << 31) - 1;
    /// Most zip entries listed in a patch (a zip without zip64 has at most this).
    pub const MAX_ENTRIES: u64 = 65_535;
    /// log2 of the largest zstd window a patch may ask the device for (4 MiB);
    /// patches are written with this window.
    pub const WINDOW_LOG_MAX: u32 = 22;
    /// Memory an xz stream of a patch may use to decode (its dictionary is at
    /// most 2^WINDOW_LOG_MAX bytes).
    pub const XZ_MEMORY_MAX: u64 = 16 << 20;

    pub(crate) fn check(what: &'static str, size: u64, limit: u64) -> Result<()> {
        if size > limit {
            return Err(Error::TooLarge { what, size, limit });
        }
        Ok(())
    }
}

/// How `diff` treats its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Zip-aware if both files are zips this crate can read, raw otherwise.
    #[default]
    Auto,
    /// Always a plain binary diff.
    Raw,
    /// Zip-aware; fails with `not_a_zip` if either file is not a readable zip.
    Zip,
}

/// Options of [`diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// Raw, zip or auto-detected.
    pub format: Format,
    /// zstd level of the patch's streams (1..=22) when `lzma` is off. Higher
    /// is smaller and slower to make; apply speed hardly changes.
    pub level: i32,
    /// Code compressible streams with xz (LZMA2, 4 MiB dictionary) rather
    /// than zstd: about 10% smaller patches for native code (bench/README.md),
    /// for a slower diff and an apply that decodes at ~100 MB/s instead of
    /// ~1 GB/s (irrelevant next to reading and writing the files).
    pub lzma: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            format: Format::Auto,
            level: 19,
            lzma: true,
        }
    }
}

/// What `diff` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Zip entries in the new file (0 for a raw patch).
    pub entries: usize,
    /// New entries whose compressed bytes equal the old entry of the same name.
    pub entries_unchanged: usize,
    /// Changed or added deflated entries that are diffed uncompressed.
    pub entries_recompressed: usize,
    /// Changed deflated entries no zlib setting reproduces (diffed compressed).
    pub entries_not_reproducible: usize,
    /// Sizes of the expanded old and new files the binary diff ran on.
    pub expanded_old: u64,
    /// See `expanded_old`.
    pub expanded_new: u64,
    /// Compressed sizes of the control, runs, values and extra streams.
    pub streams: [u64; 4],
}

/// Makes a patch that turns `old` into `new`.
pub fn diff(old: &[u8], new: &[u8], options: &DiffOptions) -> Result<Vec<u8>> {
    diff_with_report(old, new, options).map(|(patch, _)| patch)
}

/// [`diff`], also saying how the zip entries were handled.
pub fn diff_with_report(
    old: &[u8],
    new: &[u8],
    options: &DiffOptions,
) -> Result<(Vec<u8>, DiffReport)> {
    limits::check("old file", old.len() as u64, limits::MAX_FILE)?;
    limits::check("new file", new.len() as u64, limits::MAX_FILE)?;
    let zips = match options.format {
        Format::Raw => None,
        Format::Auto => zip::read_entries(old).zip(zip::read_entries(new)),
        Format::Zip => Some((
            zip::read_entries(old).ok_or_else(|| Error::NotAZip("old file".into()))?,
            zip::read_entries(new).ok_or_else(|| Error::NotAZip("new file".into()))?,
        )),
    };
    let header = PatchHeader {
        kind: if zips.is_some() {
            PatchKind::Zip
        } else {
            PatchKind::Raw
        },
        old_size: old.len() as u64,
        new_size: new.len() as u64,
        old_sha256: Sha256::digest(old).into(),
        new_sha256: Sha256::digest(new).into(),
    };
    let mut patch = Vec::new();
    header.write(&mut patch);
    let mut report = DiffReport::default();
    let streams = match zips {
        None => {
            report.expanded_old = old.len() as u64;
            report.expanded_new = new.len() as u64;
            matcher::diff(old, new)
        }
        Some((old_entries, new_entries)) => {
            let (plan, old_x, new_x) = plan_zip(old, &old_entries, new, &new_entries, &mut report)?;
            plan.write(&mut patch);
            report.expanded_old = old_x.len() as u64;
            report.expanded_new = new_x.len() as u64;
            matcher::diff(&old_x, &new_x)
        }
    };
    let (runs, values) = matcher::split_zero_runs(&streams.diff);
    let coded = [&streams.control, &runs, &values, &streams.extra]
        .into_iter()
        .map(|data| compress(data, options))
        .collect::<Result<Vec<_>>>()?;
    for (i, (codec, bytes)) in coded.iter().enumerate() {
        patch.push(*codec as u8);
        format::put_varint(&mut patch, bytes.len() as u64);
        report.streams[i] = bytes.len() as u64;
    }
    for (_, bytes) in &coded {
        patch.extend_from_slice(bytes);
    }
    Ok((patch, report))
}

/// Compresses one stream. A fast zstd pass first tells whether the stream is
/// compressible at all (the literals of a changed deflate stream are not, and
/// the slow coders would spend seconds on them for nothing); if it is, xz
/// (usually the smaller for native code and text) or zstd at `level`.
fn compress(data: &[u8], options: &DiffOptions) -> Result<(Codec, Vec<u8>)> {
    if data.is_empty() {
        return Ok((Codec::Empty, Vec::new()));
    }
    let failed = |e: std::io::Error| Error::Compression(e.to_string());
    let probe = zstd_compress(data, 3).map_err(failed)?;
    if probe.len() as f64 > 0.95 * data.len() as f64 {
        return Ok((Codec::Zstd, probe));
    }
    let best = if options.lzma {
        (Codec::Xz, xz_compress(data).map_err(failed)?)
    } else {
        (
            Codec::Zstd,
            zstd_compress(data, options.level).map_err(failed)?,
        )
    };
    Ok(if best.1.len() < probe.len() {
        best
    } else {
        (Codec::Zstd, probe)
    })
}

fn zstd_compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    use zstd::zstd_safe::CParameter;
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(CParameter::WindowLog(limits::WINDOW_LOG_MAX))?;
    c.compress(data)
}

fn xz_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use xz2::stream::{Check, Filters, LzmaOptions, Stream};
    let mut opts = LzmaOptions::new_preset(9)?;
    // The dictionary is what the device must allocate to decode.
    opts.dict_size(1 << limits::WINDOW_LOG_MAX);
    let stream = Stream::new_stream_encoder(Filters::new().lzma2(&opts), Check::None)?;
    let mut w = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    w.write_all(data)?;
    w.finish()
}

/// Inflates a deflate stream that must give exactly `size` bytes.
fn inflate_exact(compressed: &[u8], size: u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(size).ok()?);
    flate2::read::DeflateDecoder::new(compressed)
        .take(size + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 == size).then_some(out)
}

/// The removed old entry most like an added new one: same extension, the
/// closest uncompressed size, at most twice as large or small.
fn similar<'a>(new: &zip::Entry, removed: &[&'a zip::Entry]) -> Option<&'a zip::Entry> {
    fn extension(name: &[u8]) -> &[u8] {
        let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
        base.iter()
            .rposition(|&b| b == b'.')
            .map_or(&[][..], |i| &base[i..])
    }
    let ext = extension(&new.name);
    let size = new.uncompressed_size.max(1);
    removed
        .iter()
        .copied()
        .filter(|o| extension(&o.name) == ext)
        .filter(|o| o.uncompressed_size <= 2 * size && size <= 2 * o.uncompressed_size.max(1))
        .min_by_key(|o| o.uncompressed_size.abs_diff(size))
}

/// Decides which entries to expand and builds the expanded old and new files.
fn plan_zip(
    old: &[u8],
    old_entries: &[zip::Entry],
    new: &[u8],
    new_entries: &[zip::Entry],
    report: &mut DiffReport,
) -> Result<(ZipPlan, Vec<u8>, Vec<u8>)> {
    let by_name: HashMap<&[u8], &zip::Entry> =
        old_entries.iter().map(|e| (e.name.as_slice(), e)).collect();
    let new_names: HashSet<&[u8]> = new_entries.iter().map(|e| e.name.as_slice()).collect();
    // Old entries gone from the new zip: the base for an added entry that is a
    // renamed one (`lib-1.2.so` -> `lib-1.3.so`).
    let removed: Vec<&zip::Entry> = old_entries
        .iter()
        .filter(|e| e.method == zip::DEFLATED && !new_names.contains(e.name.as_slice()))
        .collect();
    // Each old entry is expanded at most once (duplicate names, renames).
    let mut claimed: HashSet<u64> = HashSet::new();
    report.entries = new_entries.len();
    // (new entry, its content, params); (old entry, its content)
    let mut new_x: Vec<(&zip::Entry, Vec<u8>, DeflateParams)> = Vec::new();
    let mut old_x: Vec<(&zip::Entry, Vec<u8>)> = Vec::new();
    let (mut grow_old, mut grow_new) = (0u64, 0u64);
    for ne in new_entries {
        let old_match = by_name.get(ne.name.as_slice()).copied();
        if let Some(oe) = old_match {
            if oe.crc32 == ne.crc32 && old[oe.data_range()] == new[ne.data_range()] {
                report.entries_unchanged += 1;
                continue;
            }
        }
        if ne.method != zip::DEFLATED {
            continue;
        }
        // Keep the expanded files within the caps; past them, entries stay
        // compressed (the patch is only larger).
        let grow = ne.uncompressed_size.saturating_sub(ne.compressed_size);
        if new.len() as u64 + grow_new + grow > limits::MAX_EXPANDED {
            report.entries_not_reproducible += 1;
            continue;
        }
        let compressed = &new[ne.data_range()];
        let Some(content) = inflate_exact(compressed, ne.uncompressed_size) else {
            report.entries_not_reproducible += 1;
            continue;
        };
        let Some(params) = deflate::find_params(&content, compressed)? else {
            report.entries_not_reproducible += 1;
            continue;
        };
        report.entries_recompressed += 1;
        grow_new += grow;
        new_x.push((ne, content, params));
        // The old entry of the same name is the natural base: inflate it too.
        let base = match old_match {
            Some(oe) => Some(oe).filter(|oe| oe.method == zip::DEFLATED),
            None => similar(ne, &removed),
        };
        if let Some(oe) = base.filter(|oe| !claimed.contains(&oe.data_offset)) {
            let grow = oe.uncompressed_size.saturating_sub(oe.compressed_size);
            if old.len() as u64 + grow_old + grow <= limits::MAX_EXPANDED {
                if let Some(content) = inflate_exact(&old[oe.data_range()], oe.uncompressed_size) {
                    claimed.insert(oe.data_offset);
                    grow_old += grow;
                    old_x.push((oe, content));
                }
            }
        }
    }
    old_x.sort_by_key(|(e, _)| e.data_offset);
    new_x.sort_by_key(|(e, _, _)| e.data_offset);

    let mut plan = ZipPlan::default();
    let mut old_expanded = Vec::with_capacity((old.len() as u64 + grow_old) as usize);
    let mut pos = 0usize;
    for (e, content) in &old_x {
        old_expanded.extend_from_slice(&old[pos..e.data_offset as usize]);
        old_expanded.extend_from_slice(content);
        pos = e.data_range().end;
        plan.expansions.push(Expansion {
            offset: e.data_offset,
            compressed_len: e.compressed_size,
            uncompressed_len: e.uncompressed_size,
        });
    }
    old_expanded.extend_from_slice(&old[pos..]);

    let mut new_expanded = Vec::with_capacity((new.len() as u64 + grow_new) as usize);
    let mut pos = 0usize;
    for (e, content, params) in &new_x {
        new_expanded.extend_from_slice(&new[pos..e.data_offset as usize]);
        plan.recompressions.push(Recompression {
            offset: new_expanded.len() as u64,
            uncompressed_len: content.len() as u64,
            compressed_len: e.compressed_size,
            params: *params,
        });
        new_expanded.extend_from_slice(content);
        pos = e.data_range().end;
    }
    new_expanded.extend_from_slice(&new[pos..]);
    Ok((plan, old_expanded, new_expanded))
}
