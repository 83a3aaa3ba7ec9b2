//! The binary diff: bsdiff's matching (Colin Percival, "Naïve differences of
//! executable code") on a suffix array built with divsufsort.
//!
//! The new file is described as a sequence of records `(copy, insert, seek)`:
//! `copy` bytes are old bytes plus a byte-wise difference (mostly zeros, because
//! compiled code that moved keeps most of its bytes and only changes the
//! addresses inside it), then `insert` literal bytes, then the old position
//! moves by `seek`. The three parts go to separate streams that compress well
//! on their own (the control stream is small, the difference stream is mostly
//! zero runs and is split further by `split_zero_runs`, the literals are new
//! content).
//!
//! Why this rather than zstd's `--patch-from` on the whole file: applying a zstd
//! patch needs the whole old file in memory as its dictionary, while these
//! records read the old file at known positions, so the device applies with a
//! few MiB whatever the file size. The measured sizes are in bench/README.md.

/// The three uncompressed streams of a diff.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    pub control: Vec<u8>,
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Whether the first 32 bytes at `i` agree (a fixed-size compare, which the
/// compiler turns into vector instructions instead of a call to memcmp).
#[inline(always)]
fn same32(a: &[u8], b: &[u8], i: usize) -> bool {
    match (
        <&[u8; 32]>::try_from(&a[i..i + 32]),
        <&[u8; 32]>::try_from(&b[i..i + 32]),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[inline(always)]
fn word(a: &[u8], i: usize) -> u64 {
    u64::from_be_bytes(a[i..i + 8].try_into().unwrap_or_default())
}

/// Length of the common prefix of `a` and `b`.
fn match_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    // 32 bytes at a time, then 8, then 1: long matches are the common case.
    while i + 32 <= n && same32(a, b, i) {
        i += 32;
    }
    while i + 8 <= n {
        let d = word(a, i) ^ word(b, i);
        if d != 0 {
            return i + (d.leading_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// `a < b` compared over their common length (equal there: false), as
/// bsdiff's search compares. Inlined: a libc memcmp call per step of the
/// binary search was a third of the diff's time.
#[inline(always)]
fn less_over_common(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 32 <= n && same32(a, b, i) {
        i += 32;
    }
    while i + 8 <= n {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            // Big-endian words order like their bytes.
            return x < y;
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    false
}

/// The suffix array of the old file, with the start of each two-byte prefix's
/// range in it, so a search starts from a range of about n / 65 536 suffixes
/// instead of all of them. (The search is bound by memory latency: every step
/// of the binary search is a cache miss in the array and one in the text.
/// Three-byte ranges were measured too: no faster, and a 64 MiB table.)
struct Index<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
    starts: Vec<u32>,
}

fn key(b: &[u8]) -> usize {
    // A one-byte suffix "a" sorts just before "a\0...", so it shares that range.
    (usize::from(b[0]) << 8) | usize::from(b.get(1).copied().unwrap_or(0))
}

impl<'a> Index<'a> {
    fn new(old: &'a [u8]) -> Self {
        // libsais builds the array in about a third of divsufsort's time
        // (measured on a 60 MB library); divsufsort stays as the fallback if
        // libsais refuses the input. Single-threaded: the server runs diffs in
        // a bounded pool.
        let mut sa: Vec<i32> = crate::pages::zeroed(old.len());
        let built = libsais::SuffixArrayConstruction::for_text(old)
            .in_borrowed_buffer(&mut sa)
            .single_threaded()
            .run()
            .is_ok();
        if !built {
            divsufsort::sort_in_place(old, &mut sa);
        }
        let mut starts = vec![0u32; 65_537];
        for p in 0..old.len() {
            starts[key(&old[p..]) + 1] += 1;
        }
        for k in 1..starts.len() {
            starts[k] += starts[k - 1];
        }
        Index { old, sa, starts }
    }

    /// The longest match of `target` among the suffixes of the old file:
    /// (length, position).
    fn search(&self, target: &[u8]) -> (usize, usize) {
        let (mut lo, mut hi) = (0usize, self.sa.len() - 1);
        if target.len() >= 2 {
            let k = key(target);
            let (s, e) = (self.starts[k] as usize, self.starts[k + 1] as usize);
            if s < e {
                (lo, hi) = (s, e - 1);
            }
        }
        let old = self.old;
        while hi - lo >= 2 {
            let mid = lo + (hi - lo) / 2;
            let p = self.sa[mid] as usize;
            if less_over_common(&old[p..], target) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (a, b) = (self.sa[lo] as usize, self.sa[hi] as usize);
        let (x, y) = (match_len(&old[a..], target), match_len(&old[b..], target));
        if x >= y {
            (x, a)
        } else {
            (y, b)
        }
    }
}

/// Diffs `new` against `old`. Both must be shorter than 2 GiB (suffix array
/// indices are i32); the caller checks.
pub(crate) fn diff(old: &[u8], new: &[u8]) -> Streams {
    let mut s = Streams::default();
    // Records are kept until the end so that a record that only seeks can be
    // folded into the one before it: the reader then refuses two empty records
    // in a row, which bounds the work a hostile control stream can ask for.
    let mut records: Vec<(u64, u64, i64)> = Vec::new();
    let mut emit = |s: &mut Streams,
                    copy_new: usize,
                    copy_old: usize,
                    copy: usize,
                    insert: usize,
                    seek: i64| {
        match records.last_mut() {
            Some(last) if copy == 0 && insert == 0 => last.2 += seek,
            _ => records.push((copy as u64, insert as u64, seek)),
        }
        s.diff.reserve(copy);
        s.diff.extend(
            new[copy_new..copy_new + copy]
                .iter()
                .zip(&old[copy_old..copy_old + copy])
                .map(|(n, o)| n.wrapping_sub(*o)),
        );
        s.extra
            .extend_from_slice(&new[copy_new + copy..copy_new + copy + insert]);
    };
    if old.is_empty() || new.is_empty() {
        if !new.is_empty() {
            emit(&mut s, 0, 0, 0, new.len(), 0);
        }
        return finish(s, records);
    }
    // The old file is read at random by the search: a huge-page copy of it.
    let old_copy = crate::pages::copy_of(old);
    let index = Index::new(&old_copy);

    let (newsize, oldsize) = (new.len(), old.len());
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut lastscan, mut lastpos, mut lastoffset) = (0usize, 0usize, 0i64);
    while scan < newsize {
        let mut oldscore = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < newsize {
            (len, pos) = index.search(&new[scan..]);
            while scsc < scan + len {
                let o = scsc as i64 + lastoffset;
                if o >= 0 && (o as usize) < oldsize && old[o as usize] == new[scsc] {
                    oldscore += 1;
                }
                scsc += 1;
            }
            if (len == oldscore && len != 0) || len > oldscore + 8 {
                break;
            }
            let o = scan as i64 + lastoffset;
            if o >= 0 && (o as usize) < oldsize && old[o as usize] == new[scan] {
                oldscore = oldscore.saturating_sub(1);
            }
            scan += 1;
        }
        if len == oldscore && scan != newsize {
            continue;
        }
        // Extend the previous match forwards as long as at least half the
        // bytes agree ...
        let (mut sc, mut best, mut lenf) = (0i64, 0i64, 0usize);
        let mut i = 0usize;
        while lastscan + i < scan && lastpos + i < oldsize {
            if old[lastpos + i] == new[lastscan + i] {
                sc += 1;
            }
            i += 1;
            if sc * 2 - i as i64 > best * 2 - lenf as i64 {
                best = sc;
                lenf = i;
            }
        }
        // ... and the new match backwards.
        let mut lenb = 0usize;
        if scan < newsize {
            let (mut sc, mut best) = (0i64, 0i64);
            let mut i = 1usize;
            while scan >= lastscan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    sc += 1;
                }
                if sc * 2 - i as i64 > best * 2 - lenb as i64 {
                    best = sc;
                    lenb = i;
                }
                i += 1;
            }
        }
        // Where the two extensions overlap, split at the best point.
        if lastscan + lenf > scan - lenb {
            let overlap = (lastscan + lenf) - (scan - lenb);
            let (mut sc, mut best, mut lens) = (0i64, 0i64, 0usize);
            for i in 0..overlap {
                if new[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i] {
                    sc += 1;
                }
                if new[scan - lenb + i] == old[pos - lenb + i] {
                    sc -= 1;
                }
                if sc > best {
                    best = sc;
                    lens = i + 1;
                }
            }
            lenf = lenf + lens - overlap;
            lenb -= lens;
        }
        let insert = (scan - lenb) - (lastscan + lenf);
        let seek = (pos - lenb) as i64 - (lastpos + lenf) as i64;
        emit(&mut s, lastscan, lastpos, lenf, insert, seek);
        lastscan = scan - lenb;
        lastpos = pos - lenb;
        lastoffset = pos as i64 - scan as i64;
    }
    finish(s, records)
}

/// Splits the difference bytes into (zero run, non-zero run) length pairs and
/// the non-zero bytes (see the `format` module). Every pair has a non-zero
/// run except possibly the last; no pair is (0, 0).
pub(crate) fn split_zero_runs(diff: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut runs, mut values) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < diff.len() {
        let zeros = diff[i..].iter().take_while(|&&b| b == 0).count();
        let start = i + zeros;
        let ones = diff[start..].iter().take_while(|&&b| b != 0).count();
        put_varint(&mut runs, zeros as u64);
        put_varint(&mut runs, ones as u64);
        values.extend_from_slice(&diff[start..start + ones]);
        i = start + ones;
    }
    (runs, values)
}

fn finish(mut s: Streams, records: Vec<(u64, u64, i64)>) -> Streams {
    for (copy, insert, seek) in records {
        put_varint(&mut s.control, copy);
        put_varint(&mut s.control, insert);
        put_varint(&mut s.control, zigzag(seek));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rebuilds the new file from the streams, the simplest way (the real,
    /// bounded-memory reader is in `apply`).
    pub(crate) fn rebuild(old: &[u8], s: &Streams) -> Vec<u8> {
        fn varint(b: &[u8], i: &mut usize) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let x = b[*i];
                *i += 1;
                v |= u64::from(x & 0x7f) << shift;
                if x < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let (mut out, mut c, mut d, mut e, mut op) = (Vec::new(), 0, 0, 0, 0i64);
        while c < s.control.len() {
            let copy = varint(&s.control, &mut c) as usize;
            let insert = varint(&s.control, &mut c) as usize;
            let z = varint(&s.control, &mut c);
            let seek = ((z >> 1) as i64) ^ -((z & 1) as i64);
            for k in 0..copy {
                out.push(old[op as usize + k].wrapping_add(s.diff[d + k]));
            }
            d += copy;
            out.extend_from_slice(&s.extra[e..e + insert]);
            e += insert;
            op += copy as i64 + seek;
        }
        out
    }

    #[test]
    fn rebuilds_edited_text() {
        let old: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i * 7 % 251).to_le_bytes())
            .collect();
        let mut new = old.clone();
        new.splice(1000..1000, b"hello world".iter().copied());
        new.drain(90_000..91_000);
        for b in &mut new[150_000..150_100] {
            *b ^= 0x10;
        }
        let s = diff(&old, &new);
        assert_eq!(rebuild(&old, &s), new);
        assert!(s.extra.len() < 200, "extra {}", s.extra.len());
    }

    #[test]
    fn edge_cases() {
        for (old, new) in [
            (&b""[..], &b"abc"[..]),
            (b"abc", b""),
            (b"", b""),
            (b"a", b"a"),
            (b"abcabc", b"cba"),
        ] {
            assert_eq!(rebuild(old, &diff(old, new)), new);
        }
    }
}
