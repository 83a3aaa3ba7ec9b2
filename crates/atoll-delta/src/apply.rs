//! Applying a patch with bounded memory.
//!
//! The old file is read at positions ([`ReadAt`]), the four streams are
//! decoded as they are consumed, and the new file is written out piece by piece
//! while its SHA-256 is computed. What is held: the patch itself, four zstd or
//! xz decoders (window capped at [`limits::WINDOW_LOG_MAX`]), one zlib deflater and
//! 64 KiB buffers. For a zip whose expanded old file is larger than
//! [`ApplyOptions::memory_scratch_limit`], the expanded old file goes to a
//! scratch file on disk, not to memory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::deflate::Deflater;
use crate::error::{Error, Result};
use crate::format::{
    read_varint, unzigzag, Codec, PatchHeader, PatchKind, Reader, Recompression, ZipPlan, STREAMS,
};
use crate::limits;
use crate::source::{RangeReader, ReadAt};

const CHUNK: usize = 64 * 1024;

/// Where and how `apply` may keep the expanded old file of a zip patch.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Folder for the scratch file; the system's temp folder when None.
    pub scratch_dir: Option<PathBuf>,
    /// An expanded old file up to this size is kept in memory instead of a
    /// scratch file.
    pub memory_scratch_limit: u64,
    /// The old file's SHA-256 if the caller already knows it (e.g. recorded
    /// and verified when the package was installed); `apply` then does not
    /// read the whole old file to hash it.
    pub old_sha256: Option<[u8; 32]>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            scratch_dir: None,
            memory_scratch_limit: 8 << 20,
            old_sha256: None,
        }
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The patch's header (sizes and hashes, all verified).
    pub header: PatchHeader,
    /// Old zip entries inflated to serve as diff base.
    pub entries_expanded: usize,
    /// New zip entries deflated again.
    pub entries_recompressed: usize,
    /// Where the expanded old file was kept: 0 if not needed, else its size.
    pub scratch_bytes: u64,
    /// Whether the scratch was a file (true) or memory (false).
    pub scratch_on_disk: bool,
}

/// Reads only the header of a patch: sizes and hashes of the old and new files.
pub fn read_header(patch: &[u8]) -> Result<PatchHeader> {
    PatchHeader::read(&mut Reader::new(patch))
}

/// Applies `patch` to `old` and writes the new file to `out`.
///
/// Refuses an old file whose size or SHA-256 differ from the patch's base
/// (`base_mismatch`), and checks the size and SHA-256 of what it wrote
/// (`result_mismatch`). The output is written before the final check can be
/// made, so write it to a temporary file and keep that only if this returns Ok.
pub fn apply<O, W>(old: &O, patch: &[u8], out: W, options: &ApplyOptions) -> Result<ApplyReport>
where
    O: ReadAt + ?Sized,
    W: Write,
{
    let mut r = Reader::new(patch);
    let header = PatchHeader::read(&mut r)?;
    let old_size = old.size()?;
    if old_size != header.old_size {
        return Err(Error::BaseMismatch(format!(
            "old file has {old_size} bytes, the patch expects {}",
            header.old_size
        )));
    }
    // Hashing the old file is a third of the apply's CPU time here (no SHA
    // extensions on this CPU); a caller that recorded the hash when it
    // installed the file may pass it instead. A wrong claim is still caught:
    // the output then fails the result check.
    let old_sha = match options.old_sha256 {
        Some(known) => known,
        None => sha256_of(old, old_size)?,
    };
    if old_sha != header.old_sha256 {
        return Err(Error::BaseMismatch(format!(
            "old file SHA-256 is {}, the patch expects {}",
            hex(&old_sha),
            hex(&header.old_sha256)
        )));
    }
    let plan = match header.kind {
        PatchKind::Raw => ZipPlan::default(),
        PatchKind::Zip => ZipPlan::read(&mut r, header.old_size, header.new_size)?,
    };
    let mut heads = Vec::with_capacity(4);
    for _ in STREAMS {
        let codec = Codec::from_byte(r.u8()?)?;
        heads.push((codec, r.varint()?));
    }
    let mut streams = Vec::with_capacity(4);
    for (name, (codec, len)) in STREAMS.into_iter().zip(heads) {
        streams.push(Stream::new(codec, r.take_u64(len)?, name)?);
    }
    let streams: [Stream<'_>; 4] = streams
        .try_into()
        .map_err(|_| Error::corrupt("stream count"))?;
    if !r.rest().is_empty() {
        return Err(Error::corrupt("trailing bytes after the streams"));
    }
    let new_expanded = plan
        .expanded_new_size(header.new_size)
        .ok_or_else(|| Error::corrupt("recompressed entries do not fit the new file"))?;
    limits::check("expanded new file", new_expanded, limits::MAX_EXPANDED)?;

    let mut report = ApplyReport {
        header: header.clone(),
        entries_expanded: plan.expansions.len(),
        entries_recompressed: plan.recompressions.len(),
        scratch_bytes: 0,
        scratch_on_disk: false,
    };
    let mut sink = Recompressor::new(&plan.recompressions, OutSink::new(out, header.new_size));
    if plan.expansions.is_empty() {
        run_delta(old, old_size, new_expanded, streams, &mut sink)?;
    } else {
        let expanded = plan.expanded_old_size(old_size);
        report.scratch_bytes = expanded;
        if expanded <= options.memory_scratch_limit {
            let mut mem = Vec::with_capacity(expanded as usize);
            expand_old(old, &plan, &mut mem)?;
            run_delta(&mem, expanded, new_expanded, streams, &mut sink)?;
        } else {
            report.scratch_on_disk = true;
            let dir = options
                .scratch_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir);
            let scratch = Scratch::create(&dir)?;
            let mut w = BufWriter::with_capacity(CHUNK, &scratch.file);
            expand_old(old, &plan, &mut w)?;
            w.flush()?;
            drop(w);
            run_delta(&scratch.file, expanded, new_expanded, streams, &mut sink)?;
        }
    }
    sink.finish()?;
    let (written, sha) = sink.inner.finish()?;
    if written != header.new_size {
        return Err(Error::ResultMismatch(format!(
            "wrote {written} bytes, the patch promises {}",
            header.new_size
        )));
    }
    if sha != header.new_sha256 {
        return Err(Error::ResultMismatch(format!(
            "rebuilt SHA-256 is {}, the patch promises {}",
            hex(&sha),
            hex(&header.new_sha256)
        )));
    }
    Ok(report)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_of<O: ReadAt + ?Sized>(src: &O, size: u64) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(CHUNK as u64) as usize;
        src.read_exact_at(pos, &mut buf[..n])?;
        h.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(h.finalize().into())
}

/// Writes the old file with the plan's entries inflated in place.
fn expand_old<O: ReadAt + ?Sized>(old: &O, plan: &ZipPlan, out: &mut impl Write) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let copy = |from: u64, to: u64, out: &mut dyn Write, buf: &mut [u8]| -> Result<()> {
        let mut p = from;
        while p < to {
            let n = (to - p).min(buf.len() as u64) as usize;
            old.read_exact_at(p, &mut buf[..n])?;
            out.write_all(&buf[..n])?;
            p += n as u64;
        }
        Ok(())
    };
    let size = old.size()?;
    for e in &plan.expansions {
        copy(pos, e.offset, out, &mut buf)?;
        let compressed = RangeReader {
            src: old,
            pos: e.offset,
            end: e.offset + e.compressed_len,
        };
        // Read one byte more than announced to catch an entry that inflates
        // to more (the plan is untrusted even though the old file is verified).
        let mut inflater =
            flate2::bufread::DeflateDecoder::new(BufReader::with_capacity(CHUNK, compressed))
                .take(e.uncompressed_len + 1);
        let mut n = 0u64;
        loop {
            let k = inflater.read(&mut buf).map_err(|err| {
                Error::corrupt(format!("old entry at {} does not inflate: {err}", e.offset))
            })?;
            if k == 0 {
                break;
            }
            n += k as u64;
            if n > e.uncompressed_len {
                break;
            }
            out.write_all(&buf[..k])?;
        }
        if n != e.uncompressed_len {
            return Err(Error::corrupt(format!(
                "old entry at {} inflates to {n} bytes, not {}",
                e.offset, e.uncompressed_len
            )));
        }
        pos = e.offset + e.compressed_len;
    }
    copy(pos, size, out, &mut buf)
}

/// Scratch file, removed when dropped (on Unix right away: the open handle
/// keeps it readable and nothing is left behind after a crash).
struct Scratch {
    file: File,
    path: Option<PathBuf>,
}

impl Scratch {
    fn create(dir: &Path) -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            ".atoll-delta-{}-{}-{nanos}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        if cfg!(unix) {
            std::fs::remove_file(&path)?;
            Ok(Scratch { file, path: None })
        } else {
            Ok(Scratch {
                file,
                path: Some(path),
            })
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where rebuilt bytes go.
trait Sink {
    fn put(&mut self, data: &[u8]) -> Result<()>;
}

/// The final output: counts, hashes and refuses to write past the promised size.
struct OutSink<W: Write> {
    out: W,
    limit: u64,
    written: u64,
    sha: Sha256,
}

impl<W: Write> OutSink<W> {
    fn new(out: W, limit: u64) -> Self {
        OutSink {
            out,
            limit,
            written: 0,
            sha: Sha256::new(),
        }
    }

    fn finish(mut self) -> Result<(u64, [u8; 32])> {
        self.out.flush()?;
        Ok((self.written, self.sha.finalize().into()))
    }
}

impl<W: Write> Sink for OutSink<W> {
    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.written += data.len() as u64;
        if self.written > self.limit {
            return Err(Error::ResultMismatch(format!(
                "output grows past the promised {} bytes",
                self.limit
            )));
        }
        self.sha.update(data);
        self.out.write_all(data)?;
        Ok(())
    }
}

/// Turns the expanded new file back into the new file: bytes outside the
/// plan's entries pass through, bytes inside are deflated with the recorded
/// parameters and must come out at exactly the recorded compressed size.
struct Recompressor<'a, S: Sink> {
    entries: &'a [Recompression],
    inner: S,
    next: usize,
    pos: u64,
    deflater: Option<Deflater>,
    produced: u64,
}

impl<'a, S: Sink> Recompressor<'a, S> {
    fn new(entries: &'a [Recompression], inner: S) -> Self {
        Recompressor {
            entries,
            inner,
            next: 0,
            pos: 0,
            deflater: None,
            produced: 0,
        }
    }

    /// Feeds entry bytes to the deflater; `finish` ends the entry.
    fn deflate(&mut self, data: &[u8], finish: bool) -> Result<()> {
        let e = self.entries[self.next];
        if self.deflater.is_none() {
            self.deflater = Some(Deflater::new(e.params)?);
            self.produced = 0;
        }
        let (inner, produced) = (&mut self.inner, &mut self.produced);
        if let Some(d) = self.deflater.as_mut() {
            d.compress(data, finish, &mut |piece| {
                *produced += piece.len() as u64;
                if *produced > e.compressed_len {
                    return Err(Error::ResultMismatch(format!(
                        "entry at {} deflates to more than {} bytes",
                        e.offset, e.compressed_len
                    )));
                }
                inner.put(piece)
            })?;
        }
        self.pos += data.len() as u64;
        if finish {
            if self.produced != e.compressed_len {
                return Err(Error::ResultMismatch(format!(
                    "entry at {} deflates to {} bytes, not {}",
                    e.offset, self.produced, e.compressed_len
                )));
            }
            self.deflater = None;
            self.next += 1;
        }
        Ok(())
    }

    /// Entries with no content are emitted as soon as their position is reached.
    fn empty_entries(&mut self) -> Result<()> {
        while let Some(e) = self.entries.get(self.next) {
            if e.offset != self.pos || e.uncompressed_len != 0 {
                break;
            }
            self.deflate(&[], true)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.empty_entries()?;
        if self.next != self.entries.len() {
            return Err(Error::corrupt(
                "delta ends before the last recompressed entry",
            ));
        }
        Ok(())
    }
}

impl<S: Sink> Sink for Recompressor<'_, S> {
    fn put(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            self.empty_entries()?;
            let Some(e) = self.entries.get(self.next).copied() else {
                self.pos += data.len() as u64;
                return self.inner.put(data);
            };
            if self.pos < e.offset {
                let n = (e.offset - self.pos).min(data.len() as u64) as usize;
                self.inner.put(&data[..n])?;
                self.pos += n as u64;
                data = &data[n..];
            } else {
                let end = e.offset + e.uncompressed_len;
                let n = (end - self.pos).min(data.len() as u64) as usize;
                self.deflate(&data[..n], self.pos + n as u64 == end)?;
                data = &data[n..];
            }
        }
        Ok(())
    }
}

/// One compressed stream of the patch, decoded as it is read. Decoding errors
/// are corruption.
struct Stream<'a> {
    dec: Option<Box<dyn BufRead + 'a>>,
    name: &'static str,
}

impl<'a> Stream<'a> {
    fn new(codec: Codec, bytes: &'a [u8], name: &'static str) -> Result<Self> {
        let failed = |e: io::Error| Error::corrupt(format!("{name} stream: {e}"));
        let dec: Option<Box<dyn BufRead + 'a>> = match codec {
            Codec::Empty if bytes.is_empty() => None,
            Codec::Empty => {
                return Err(Error::corrupt(format!(
                    "{name} stream: empty with {} bytes",
                    bytes.len()
                )))
            }
            Codec::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(bytes).map_err(failed)?;
                // A hostile frame must not make the device allocate a huge window.
                dec.window_log_max(limits::WINDOW_LOG_MAX).map_err(failed)?;
                Some(Box::new(BufReader::with_capacity(16 * 1024, dec)))
            }
            Codec::Xz => {
                // The memory limit refuses dictionaries larger than the
                // writer uses (4 MiB), whatever the stream asks for.
                let stream = xz2::stream::Stream::new_stream_decoder(limits::XZ_MEMORY_MAX, 0)
                    .map_err(|e| failed(e.into()))?;
                let dec = xz2::bufread::XzDecoder::new_stream(bytes, stream);
                Some(Box::new(BufReader::with_capacity(16 * 1024, dec)))
            }
        };
        Ok(Stream { dec, name })
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        match self.dec.as_mut() {
            None => Err(Error::corrupt(format!("{} stream is too short", self.name))),
            Some(d) => d
                .read_exact(buf)
                .map_err(|e| Error::corrupt(format!("{} stream: {e}", self.name))),
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn at_end(&mut self) -> Result<bool> {
        match self.dec.as_mut() {
            None => Ok(true),
            Some(d) => {
                let mut b = [0u8];
                let n = d
                    .read(&mut b)
                    .map_err(|e| Error::corrupt(format!("{} stream: {e}", self.name)))?;
                Ok(n == 0)
            }
        }
    }
}

/// The difference bytes, rebuilt from the runs and values streams.
struct Difference<'a> {
    runs: Stream<'a>,
    values: Stream<'a>,
    zeros: u64,
    ones: u64,
}

impl Difference<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        while at < buf.len() {
            if self.zeros == 0 && self.ones == 0 {
                self.zeros = read_varint(|| self.runs.byte())?;
                self.ones = read_varint(|| self.runs.byte())?;
                if self.zeros == 0 && self.ones == 0 {
                    return Err(Error::corrupt("empty run in the runs stream"));
                }
            }
            let want = (buf.len() - at) as u64;
            if self.zeros > 0 {
                let n = self.zeros.min(want) as usize;
                buf[at..at + n].fill(0);
                self.zeros -= n as u64;
                at += n;
            } else {
                let n = self.ones.min(want) as usize;
                self.values.read_exact(&mut buf[at..at + n])?;
                self.ones -= n as u64;
                at += n;
            }
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool> {
        Ok(self.zeros == 0 && self.ones == 0 && self.runs.at_end()? && self.values.at_end()?)
    }
}

/// Rebuilds `new_len` bytes from `old` and the four streams into `sink`.
fn run_delta<O: ReadAt + ?Sized>(
    old: &O,
    old_len: u64,
    new_len: u64,
    [mut control, runs, values, mut extra]: [Stream<'_>; 4],
    sink: &mut dyn Sink,
) -> Result<()> {
    let mut diff = Difference {
        runs,
        values,
        zeros: 0,
        ones: 0,
    };
    let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut new_pos, mut old_pos) = (0u64, 0i64);
    let mut last_empty = false;
    while new_pos < new_len {
        let copy = read_varint(|| control.byte())?;
        let insert = read_varint(|| control.byte())?;
        let seek = unzigzag(read_varint(|| control.byte())?);
        let room = new_len - new_pos;
        if copy > room || insert > room - copy {
            return Err(Error::corrupt("record goes past the end of the new file"));
        }
        if copy > 0
            && (old_pos < 0
                || (old_pos as u64)
                    .checked_add(copy)
                    .is_none_or(|end| end > old_len))
        {
            return Err(Error::corrupt("record reads outside the old file"));
        }
        let mut left = copy;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            old.read_exact_at(old_pos as u64, &mut a[..n])?;
            diff.read(&mut b[..n])?;
            for (x, d) in a[..n].iter_mut().zip(&b[..n]) {
                *x = x.wrapping_add(*d);
            }
            sink.put(&a[..n])?;
            old_pos += n as i64;
            left -= n as u64;
        }
        let mut left = insert;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            extra.read_exact(&mut a[..n])?;
            sink.put(&a[..n])?;
            left -= n as u64;
        }
        new_pos += copy + insert;
        // Keep the old position within ±2^40 so it never overflows; a record
        // that uses it out of range is caught above.
        old_pos = old_pos.saturating_add(seek);
        if old_pos.unsigned_abs() > 1 << 40 {
            return Err(Error::corrupt("seek goes far outside the old file"));
        }
        // A record may only seek, but never two in a row (the writer folds
        // them), so the work is bounded by the new file's size.
        let empty = copy == 0 && insert == 0;
        if empty && last_empty {
            return Err(Error::corrupt("two records in a row that make no progress"));
        }
        last_empty = empty;
    }
    if !(control.at_end()? && diff.at_end()? && extra.at_end()?) {
        return Err(Error::corrupt("streams longer than the new file"));
    }
    Ok(())
}
