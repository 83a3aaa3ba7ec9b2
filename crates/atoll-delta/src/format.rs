//! The patch format (version 1). All integers are little-endian; `varint` is
//! LEB128 (at most 10 bytes), `svarint` a zigzag varint.
//!
//! ```text
//! header (88 bytes)
//!   magic        4   "ATDP"
//!   version      1   1
//!   kind         1   0 raw, 1 zip
//!   flags        2   0 (reserved; a reader refuses other values)
//!   old_size     8
//!   new_size     8
//!   old_sha256  32
//!   new_sha256  32
//! zip plan (kind 1 only)
//!   expansions   varint count, then per entry, in old-file order:
//!                  gap varint (bytes since the previous entry's end),
//!                  compressed_len varint, uncompressed_len varint
//!   recompressions varint count, then per entry, in new-file order:
//!                  gap varint (bytes of the expanded new file since the
//!                  previous entry), uncompressed_len varint, compressed_len
//!                  varint, level u8, strategy u8, window_bits u8, mem_level u8
//! delta: four streams, each described by codec u8 (0 empty, 1 zstd, 2 xz)
//!   and compressed length varint, then the four streams' bytes in order:
//!   control   records (copy varint, insert varint, seek svarint)
//!   runs      the bytes to add to the copied old bytes, as pairs (zeros varint,
//!             non-zeros varint): that many zero bytes, then that many bytes
//!             taken from `values`
//!   values    the non-zero bytes of the difference
//!   extra     inserted bytes
//! ```
//!
//! The difference of two builds of a native library is mostly zero bytes with
//! short non-zero runs (moved addresses); coding the runs apart from the values
//! makes the patch about 5% smaller than compressing the raw difference.
//!
//! For a zip, the delta turns the *expanded* old file (the old zip with the
//! listed entries inflated in place) into the expanded new file; the listed new
//! entries are then deflated again with the recorded zlib parameters. Empty
//! streams have length 0 and no frame. Nothing may follow the extra stream.

use crate::deflate::DeflateParams;
use crate::error::{Error, Result};
use crate::limits;

pub(crate) const MAGIC: [u8; 4] = *b"ATDP";
pub(crate) const VERSION: u8 = 1;

/// What a patch rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// A plain binary diff of the whole file.
    Raw,
    /// An entry-aware diff of a zip archive (APK, IPA, wheel, offline package).
    Zip,
}

/// The fixed header of a patch: what it applies to and what it produces.
///
/// Read it with [`crate::read_header`] before applying, to check that the
/// patch's `new_sha256` is the one the (signed) release manifest announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchHeader {
    /// Raw or zip.
    pub kind: PatchKind,
    /// Size of the file the patch applies to.
    pub old_size: u64,
    /// Size of the file the patch produces.
    pub new_size: u64,
    /// SHA-256 of the file the patch applies to.
    pub old_sha256: [u8; 32],
    /// SHA-256 of the file the patch produces.
    pub new_sha256: [u8; 32],
}

impl PatchHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self.kind {
            PatchKind::Raw => 0,
            PatchKind::Zip => 1,
        });
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.old_size.to_le_bytes());
        out.extend_from_slice(&self.new_size.to_le_bytes());
        out.extend_from_slice(&self.old_sha256);
        out.extend_from_slice(&self.new_sha256);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        if r.rest().len() < 5 || r.rest()[..4] != MAGIC {
            return Err(Error::corrupt("not an Atoll delta patch (bad magic)"));
        }
        r.take(4)?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let kind = match r.u8()? {
            0 => PatchKind::Raw,
            1 => PatchKind::Zip,
            k => return Err(Error::corrupt(format!("unknown patch kind {k}"))),
        };
        let flags = u16::from_le_bytes(r.array()?);
        if flags != 0 {
            return Err(Error::corrupt(format!("unknown flags {flags:#x}")));
        }
        let old_size = u64::from_le_bytes(r.array()?);
        let new_size = u64::from_le_bytes(r.array()?);
        limits::check("old file", old_size, limits::MAX_FILE)?;
        limits::check("new file", new_size, limits::MAX_FILE)?;
        Ok(PatchHeader {
            kind,
            old_size,
            new_size,
            old_sha256: r.array()?,
            new_sha256: r.array()?,
        })
    }
}

/// One inflated old entry: where its deflate data sits in the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expansion {
    pub offset: u64,
    pub compressed_len: u64,
    pub uncompressed_len: u64,
}

/// One new entry to deflate again: where its content sits in the expanded new
/// file, and the parameters that reproduce its original bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recompression {
    pub offset: u64,
    pub uncompressed_len: u64,
    pub compressed_len: u64,
    pub params: DeflateParams,
}

/// The zip part of a patch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ZipPlan {
    pub expansions: Vec<Expansion>,
    pub recompressions: Vec<Recompression>,
}

impl ZipPlan {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.expansions.len() as u64);
        let mut end = 0;
        for e in &self.expansions {
            put_varint(out, e.offset - end);
            put_varint(out, e.compressed_len);
            put_varint(out, e.uncompressed_len);
            end = e.offset + e.compressed_len;
        }
        put_varint(out, self.recompressions.len() as u64);
        let mut end = 0;
        for e in &self.recompressions {
            put_varint(out, e.offset - end);
            put_varint(out, e.uncompressed_len);
            put_varint(out, e.compressed_len);
            let p = e.params;
            out.extend_from_slice(&[p.level, p.strategy, p.window_bits, p.mem_level]);
            end = e.offset + e.uncompressed_len;
        }
    }

    /// Reads and checks a plan: entries in order, inside the files they refer
    /// to, counts capped, expanded sizes capped (`old_size` and `new_size` are
    /// the zip files' sizes from the header).
    pub(crate) fn read(r: &mut Reader<'_>, old_size: u64, new_size: u64) -> Result<Self> {
        let count = r.varint()?;
        limits::check("expansion count", count, limits::MAX_ENTRIES)?;
        let mut plan = ZipPlan::default();
        let (mut end, mut grown) = (0u64, 0u64);
        for _ in 0..count {
            let offset = end
                .checked_add(r.varint()?)
                .ok_or_else(|| Error::corrupt("expansion offset overflows"))?;
            let compressed_len = r.varint()?;
            let uncompressed_len = r.varint()?;
            let entry_end = offset
                .checked_add(compressed_len)
                .filter(|&e| e <= old_size)
                .ok_or_else(|| Error::corrupt("expansion outside the old file"))?;
            limits::check("expanded entry", uncompressed_len, limits::MAX_EXPANDED)?;
            grown = grown.saturating_add(uncompressed_len.saturating_sub(compressed_len));
            limits::check(
                "expanded old file",
                old_size.saturating_add(grown),
                limits::MAX_EXPANDED,
            )?;
            plan.expansions.push(Expansion {
                offset,
                compressed_len,
                uncompressed_len,
            });
            end = entry_end;
        }
        let count = r.varint()?;
        limits::check("recompression count", count, limits::MAX_ENTRIES)?;
        let (mut end, mut compressed_total) = (0u64, 0u64);
        for _ in 0..count {
            let offset = end
                .checked_add(r.varint()?)
                .ok_or_else(|| Error::corrupt("recompression offset overflows"))?;
            let uncompressed_len = r.varint()?;
            let compressed_len = r.varint()?;
            let [level, strategy, window_bits, mem_level] = r.array()?;
            let params = DeflateParams {
                level,
                strategy,
                window_bits,
                mem_level,
            };
            if !params.is_valid() {
                return Err(Error::corrupt(format!(
                    "invalid deflate parameters {params:?}"
                )));
            }
            end = offset
                .checked_add(uncompressed_len)
                .filter(|&e| e <= limits::MAX_EXPANDED)
                .ok_or_else(|| Error::corrupt("recompressed entry too large"))?;
            compressed_total = compressed_total.saturating_add(compressed_len);
            if compressed_total > new_size {
                return Err(Error::corrupt(
                    "recompressed entries larger than the new file",
                ));
            }
            plan.recompressions.push(Recompression {
                offset,
                uncompressed_len,
                compressed_len,
                params,
            });
        }
        Ok(plan)
    }

    /// Size of the old file with the expansions inflated.
    pub(crate) fn expanded_old_size(&self, old_size: u64) -> u64 {
        self.expansions
            .iter()
            .fold(old_size, |n, e| n - e.compressed_len + e.uncompressed_len)
    }

    /// Size of the expanded new file that rebuilds a new file of `new_size`,
    /// or None if the plan cannot produce that size.
    pub(crate) fn expanded_new_size(&self, new_size: u64) -> Option<u64> {
        let mut n = new_size;
        for e in &self.recompressions {
            n = n
                .checked_sub(e.compressed_len)?
                .checked_add(e.uncompressed_len)?;
        }
        // The last entry must end inside the expanded file.
        match self.recompressions.last() {
            Some(e) if e.offset + e.uncompressed_len > n => None,
            _ => Some(n),
        }
    }
}

/// How one stream of the patch is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Empty = 0,
    Zstd = 1,
    Xz = 2,
}

impl Codec {
    pub(crate) fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(Codec::Empty),
            1 => Ok(Codec::Zstd),
            2 => Ok(Codec::Xz),
            _ => Err(Error::corrupt(format!("unknown stream codec {b}"))),
        }
    }
}

/// Names of the four streams, in patch order.
pub(crate) const STREAMS: [&str; 4] = ["control", "runs", "values", "extra"];

pub(crate) use crate::matcher::put_varint;

/// A cursor over untrusted bytes: every read is bounds-checked and a short
/// input is `patch_corrupt`, never a panic.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::corrupt("truncated"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn take_u64(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Error::corrupt("length overflows"))?;
        self.take(n)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        read_varint(|| self.u8())
    }
}

/// Reads one LEB128 varint from a byte source; more than 64 bits is corrupt.
pub(crate) fn read_varint(mut next: impl FnMut() -> Result<u8>) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = next()?;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(Error::corrupt("varint overflows 64 bits"));
        }
        v |= bits << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::corrupt("varint longer than 10 bytes"))
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
