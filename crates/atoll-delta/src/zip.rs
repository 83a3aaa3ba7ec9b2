//! A small zip reader: just enough to find each entry's name, method, CRC,
//! sizes and the byte range of its data.
//!
//! Hand-written rather than the `zip` crate because we need the exact byte
//! ranges (local header, data, gaps such as an APK Signing Block) and nothing
//! else, and because packages are untrusted uploads: every offset, length and
//! count is checked against the file and capped, and a structure we do not
//! understand makes the file "not a zip" (it is then diffed as raw bytes),
//! never a panic. The reader is fuzzed (`fuzz/fuzz_targets/delta_zip.rs`).
//!
//! Not supported (the file is then diffed as raw bytes): zip64, multi-disk
//! archives, encrypted entries.

use crate::limits;

const EOCD_SIG: u32 = 0x0605_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CDH_LEN: usize = 46;
const LFH_LEN: usize = 30;

/// Compression method "stored".
pub const STORED: u16 = 0;
/// Compression method "deflate".
pub const DEFLATED: u16 = 8;

/// One entry of a zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name from the central directory (raw bytes; zips need not be UTF-8).
    pub name: Vec<u8>,
    /// Compression method (0 stored, 8 deflate, others are opaque here).
    pub method: u16,
    /// CRC-32 of the uncompressed content, from the central directory.
    pub crc32: u32,
    /// Size of the data in the file.
    pub compressed_size: u64,
    /// Size of the content once inflated.
    pub uncompressed_size: u64,
    /// Offset of the local header in the file.
    pub header_offset: u64,
    /// Offset of the entry's data (just after the local header).
    pub data_offset: u64,
}

impl Entry {
    /// The range of the entry's (compressed) data in the file.
    pub fn data_range(&self) -> std::ops::Range<usize> {
        self.data_offset as usize..(self.data_offset + self.compressed_size) as usize
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The entries of `file` in the order of their data in the file, or None if it
/// is not a zip this reader understands.
///
/// Entries are checked to lie inside the file, before the central directory
/// and not to overlap one another; their count is capped by the format's own
/// limit (65 535) and by the size of the central directory.
pub fn read_entries(file: &[u8]) -> Option<Vec<Entry>> {
    if file.len() < EOCD_LEN || file.len() as u64 > limits::MAX_FILE {
        return None;
    }
    // The end record sits within the last 22 + 65 535 (comment) bytes. Search
    // backwards and take the first candidate whose comment length reaches the
    // end of the file exactly.
    let lowest = file.len().saturating_sub(EOCD_LEN + u16::MAX as usize);
    let mut at = file.len() - EOCD_LEN;
    let eocd = loop {
        if u32_at(file, at)? == EOCD_SIG
            && at + EOCD_LEN + usize::from(u16_at(file, at + 20)?) == file.len()
        {
            break at;
        }
        if at == lowest {
            return None;
        }
        at -= 1;
    };
    let disk = u16_at(file, eocd + 4)?;
    let cd_disk = u16_at(file, eocd + 6)?;
    let count_here = u16_at(file, eocd + 8)?;
    let count = u16_at(file, eocd + 10)?;
    let cd_size = u32_at(file, eocd + 12)? as usize;
    let cd_offset = u32_at(file, eocd + 16)? as usize;
    // 0xFFFF / 0xFFFFFFFF mean "see the zip64 record": not supported.
    if disk != 0
        || cd_disk != 0
        || count_here != count
        || count == u16::MAX
        || cd_offset == u32::MAX as usize
    {
        return None;
    }
    let cd_end = cd_offset.checked_add(cd_size)?;
    if cd_end > eocd || usize::from(count) > cd_size / CDH_LEN {
        return None;
    }
    let cd = &file[cd_offset..cd_end];

    let mut entries = Vec::with_capacity(usize::from(count));
    let mut p = 0usize;
    for _ in 0..count {
        if u32_at(cd, p)? != CDH_SIG {
            return None;
        }
        let flags = u16_at(cd, p + 8)?;
        let method = u16_at(cd, p + 10)?;
        let crc32 = u32_at(cd, p + 16)?;
        let compressed_size = u64::from(u32_at(cd, p + 20)?);
        let uncompressed_size = u64::from(u32_at(cd, p + 24)?);
        let name_len = usize::from(u16_at(cd, p + 28)?);
        let extra_len = usize::from(u16_at(cd, p + 30)?);
        let comment_len = usize::from(u16_at(cd, p + 32)?);
        let header_offset = u32_at(cd, p + 42)? as usize;
        let name = cd.get(p + CDH_LEN..p + CDH_LEN + name_len)?.to_vec();
        p = p + CDH_LEN + name_len + extra_len + comment_len;
        if p > cd.len()
            || flags & 1 != 0
            || compressed_size == u64::from(u32::MAX)
            || uncompressed_size == u64::from(u32::MAX)
        {
            return None; // truncated, encrypted, or zip64 sizes
        }
        // The local header gives its own name and extra lengths, which may
        // differ from the central directory's.
        if u32_at(file, header_offset)? != LFH_SIG {
            return None;
        }
        let local_name = usize::from(u16_at(file, header_offset + 26)?);
        let local_extra = usize::from(u16_at(file, header_offset + 28)?);
        let data_offset = header_offset + LFH_LEN + local_name + local_extra;
        let data_end = (data_offset as u64).checked_add(compressed_size)?;
        if data_end > cd_offset as u64 {
            return None;
        }
        entries.push(Entry {
            name,
            method,
            crc32,
            compressed_size,
            uncompressed_size,
            header_offset: header_offset as u64,
            data_offset: data_offset as u64,
        });
    }
    entries.sort_by_key(|e| e.header_offset);
    // Entries must not overlap (a hostile archive can point many names at the
    // same bytes, which would make the expanded file explode).
    let mut end = 0u64;
    for e in &entries {
        if e.header_offset < end {
            return None;
        }
        end = e.data_offset + e.compressed_size;
    }
    Some(entries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal zip writer for tests: stored or deflated (level given) entries.
    pub(crate) fn build_zip(entries: &[(&str, &[u8], Option<u8>)], prefix_gap: &[u8]) -> Vec<u8> {
        use crate::deflate::{deflate_all, DeflateParams};
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data, level) in entries {
            let crc = crc32(data);
            let (method, body) = match level {
                Some(l) => (
                    DEFLATED,
                    deflate_all(
                        data,
                        DeflateParams {
                            level: *l,
                            strategy: 0,
                            window_bits: 15,
                            mem_level: 8,
                        },
                    )
                    .unwrap(),
                ),
                None => (STORED, data.to_vec()),
            };
            let offset = out.len() as u32;
            out.extend_from_slice(&LFH_SIG.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
            cd.extend_from_slice(&CDH_SIG.to_le_bytes());
            cd.extend_from_slice(&[20, 3, 20, 0, 0, 0]);
            cd.extend_from_slice(&method.to_le_bytes());
            cd.extend_from_slice(&[0, 0, 0, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&offset.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(prefix_gap); // stands in for an APK Signing Block
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut h = flate2::Crc::new();
        h.update(data);
        h.sum()
    }

    #[test]
    fn reads_what_it_wrote() {
        let z = build_zip(
            &[
                ("a.txt", b"hello hello hello", Some(6)),
                ("b.bin", b"\x00\x01", None),
            ],
            b"SIGBLOCK",
        );
        let e = read_entries(&z).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, b"a.txt");
        assert_eq!(e[0].method, DEFLATED);
        assert_eq!(e[1].uncompressed_size, 2);
        assert_eq!(&z[e[1].data_range()], b"\x00\x01");
    }

    #[test]
    fn refuses_broken_archives_without_panicking() {
        let z = build_zip(&[("a.txt", b"hello", None)], b"");
        assert!(read_entries(b"PK\x05\x06").is_none());
        for cut in 0..z.len() {
            let _ = read_entries(&z[..cut]);
            let mut bad = z.clone();
            bad[cut] ^= 0xff;
            let _ = read_entries(&bad);
        }
    }
}
