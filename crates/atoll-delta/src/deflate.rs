//! Byte-exact re-deflation with classic zlib, and the search for the zlib
//! parameters that reproduce a given deflate stream.
//!
//! A zip entry can only be diffed on its uncompressed content if the device can
//! compress the new content back to exactly the bytes of the new package
//! (otherwise the package's SHA-256 and signature break). Almost every zip
//! writer (Python's `zipfile`, Java's `Deflater` behind APK tools, pako behind
//! JS zip libraries) is classic zlib with some level, strategy, window and memory
//! level, and classic zlib's output for given parameters has not changed in
//! years. So, like Google's archive-patcher, we try parameter sets until one
//! reproduces the stream, and record it in the patch.
//!
//! flate2 cannot be used for this: its backend (miniz_oxide or zlib-rs, chosen by
//! feature unification across the whole workspace) compresses differently from
//! zlib. This module calls zlib from `libz-sys` directly; it is the only module
//! of the crate with unsafe code.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void, CStr};
use std::ptr;

use libz_sys as z;

use crate::error::{Error, Result};

/// zlib `deflateInit2` parameters of one raw deflate stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// Compression level, 1..=9.
    pub level: u8,
    /// zlib strategy: 0 default, 1 filtered, 2 Huffman only, 3 RLE, 4 fixed.
    pub strategy: u8,
    /// log2 of the window, 9..=15 (a raw stream: no zlib header).
    pub window_bits: u8,
    /// zlib memory level, 1..=9; it sets the hash size and the block length.
    pub mem_level: u8,
}

impl DeflateParams {
    /// Whether zlib accepts these parameters (checked on every patch read).
    pub fn is_valid(&self) -> bool {
        (1..=9).contains(&self.level)
            && self.strategy <= 4
            && (9..=15).contains(&self.window_bits)
            && (1..=9).contains(&self.mem_level)
    }

    /// The candidates tried, most likely first: zlib's default level 6 (Python,
    /// Java, pako), then the other levels, then memory level 9 and the filtered
    /// strategy that a few tools use.
    pub(crate) fn candidates() -> Vec<DeflateParams> {
        let p = |level, strategy, mem_level| DeflateParams {
            level,
            strategy,
            window_bits: 15,
            mem_level,
        };
        let levels = [6u8, 9, 1, 5, 4, 3, 2, 7, 8];
        let mut out: Vec<DeflateParams> = levels.iter().map(|&l| p(l, 0, 8)).collect();
        out.extend(levels.iter().map(|&l| p(l, 0, 9)));
        out.extend([p(6, 1, 8), p(9, 1, 8)]);
        out
    }
}

unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // calloc: zeroed memory keeps the output independent of what was in the
    // heap before (zlib may read a little past the data it has filled).
    libc::calloc(items as usize, size as usize)
}

unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    libc::free(address)
}

/// A zlib raw-deflate compressor. Input goes in by pieces; output is handed to
/// a callback as it is produced, so nothing is held beyond zlib's own state
/// (about 260 KiB at memory level 8).
pub(crate) struct Deflater {
    // Boxed: zlib keeps a pointer back to the stream struct and checks it.
    strm: Box<z::z_stream>,
    buf: Vec<u8>,
}

const OUT_CHUNK: usize = 32 * 1024;

impl Deflater {
    pub(crate) fn new(params: DeflateParams) -> Result<Self> {
        if !params.is_valid() {
            return Err(Error::Compression(format!(
                "invalid deflate parameters {params:?}"
            )));
        }
        let mut strm = Box::new(z::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc,
            zfree,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: `strm` is a fully initialised z_stream that lives in a Box
        // (stable address) for as long as the Deflater; zlibVersion() returns a
        // static string and the struct size is the one libz-sys was built with.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                c_int::from(params.level),
                z::Z_DEFLATED,
                -c_int::from(params.window_bits),
                c_int::from(params.mem_level),
                c_int::from(params.strategy),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(Error::Compression(format!("deflateInit2 returned {rc}")));
        }
        Ok(Deflater {
            strm,
            buf: vec![0; OUT_CHUNK],
        })
    }

    /// Compresses `input`; with `finish`, also ends the stream. Calls `sink` with
    /// each piece of output; a sink error stops the work and is returned.
    pub(crate) fn compress(
        &mut self,
        input: &[u8],
        finish: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        // zlib counts input in c_uint; feed at most 1 GiB per call.
        for piece in input.chunks(1 << 30) {
            self.run(piece, false, sink)?;
        }
        if finish {
            self.run(&[], true, sink)?;
        }
        Ok(())
    }

    fn run(
        &mut self,
        input: &[u8],
        finish: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let flush = if finish { z::Z_FINISH } else { z::Z_NO_FLUSH };
        // zlib never writes through next_in; the cast only satisfies the C type.
        self.strm.next_in = input.as_ptr() as *mut u8;
        self.strm.avail_in = input.len() as c_uint;
        loop {
            self.strm.next_out = self.buf.as_mut_ptr();
            self.strm.avail_out = self.buf.len() as c_uint;
            // SAFETY: next_in/avail_in describe `input`, which outlives this
            // call; next_out/avail_out describe `self.buf`; the stream was
            // initialised by deflateInit2_ and not ended.
            let rc = unsafe { z::deflate(&mut *self.strm, flush) };
            let produced = self.buf.len() - self.strm.avail_out as usize;
            if rc != z::Z_OK && rc != z::Z_STREAM_END && rc != z::Z_BUF_ERROR {
                return Err(Error::Compression(format!(
                    "deflate returned {rc}{}",
                    self.message()
                )));
            }
            if produced > 0 {
                sink(&self.buf[..produced])?;
            }
            if finish {
                if rc == z::Z_STREAM_END {
                    break;
                }
            } else if self.strm.avail_in == 0 && self.strm.avail_out != 0 {
                break;
            }
            if rc == z::Z_BUF_ERROR && produced == 0 {
                // No progress possible (nothing in, nothing out): done.
                break;
            }
        }
        self.strm.next_in = ptr::null_mut();
        self.strm.avail_in = 0;
        Ok(())
    }

    fn message(&self) -> String {
        if self.strm.msg.is_null() {
            return String::new();
        }
        // SAFETY: zlib sets msg to a static NUL-terminated string or null.
        let text = unsafe { CStr::from_ptr(self.strm.msg) };
        format!(": {}", text.to_string_lossy())
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_ and is ended once.
        unsafe {
            z::deflateEnd(&mut *self.strm);
        }
    }
}

/// Compresses all of `data` in one go.
#[cfg(test)]
pub(crate) fn deflate_all(data: &[u8], params: DeflateParams) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = Deflater::new(params)?;
    d.compress(data, true, &mut |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })?;
    Ok(out)
}

/// Whether compressing `data` with `params` gives exactly `compressed`. Stops at
/// the first differing byte, so a wrong candidate usually costs only the first
/// deflate block.
pub(crate) fn reproduces(data: &[u8], compressed: &[u8], params: DeflateParams) -> Result<bool> {
    let mut d = Deflater::new(params)?;
    let mut pos = 0usize;
    let mut same = true;
    let mut check = |piece: &[u8]| -> Result<()> {
        let end = pos + piece.len();
        if end > compressed.len() || compressed[pos..end] != *piece {
            same = false;
            // Any error stops zlib; the flag tells it apart from a real one.
            return Err(Error::Compression(String::new()));
        }
        pos = end;
        Ok(())
    };
    let mut result = Ok(());
    for chunk in data.chunks(64 * 1024) {
        result = d.compress(chunk, false, &mut check);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = d.compress(&[], true, &mut check);
    }
    match result {
        Ok(()) => Ok(same && pos == compressed.len()),
        Err(_) if !same => Ok(false),
        Err(e) => Err(e),
    }
}

/// The first candidate parameter set that reproduces `compressed` from `data`.
pub(crate) fn find_params(data: &[u8], compressed: &[u8]) -> Result<Option<DeflateParams>> {
    for params in DeflateParams::candidates() {
        if reproduces(data, compressed, params)? {
            return Ok(Some(params));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..20_000u32 {
            v.extend_from_slice(format!("line {} of {}\n", i % 777, i / 3).as_bytes());
        }
        v
    }

    #[test]
    fn output_inflates_back() {
        let data = sample();
        let params = DeflateParams {
            level: 6,
            strategy: 0,
            window_bits: 15,
            mem_level: 8,
        };
        let c = deflate_all(&data, params).unwrap();
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&c[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn finds_the_level_that_made_a_stream() {
        let data = sample();
        for level in [1u8, 4, 9] {
            let params = DeflateParams {
                level,
                strategy: 0,
                window_bits: 15,
                mem_level: 8,
            };
            let c = deflate_all(&data, params).unwrap();
            let found = find_params(&data, &c).unwrap().unwrap();
            // Several levels can give the same bytes; any of them will do.
            assert_eq!(deflate_all(&data, found).unwrap(), c);
        }
    }

    #[test]
    fn foreign_stream_is_not_reproduced() {
        let data = sample();
        let mut c = deflate_all(
            &data,
            DeflateParams {
                level: 6,
                strategy: 0,
                window_bits: 15,
                mem_level: 8,
            },
        )
        .unwrap();
        let last = c.len() - 1;
        c[last] ^= 1;
        assert_eq!(find_params(&data, &c).unwrap(), None);
        assert_eq!(find_params(&data, &[]).unwrap(), None);
    }

    #[test]
    fn empty_input() {
        let params = DeflateParams {
            level: 6,
            strategy: 0,
            window_bits: 15,
            mem_level: 8,
        };
        let c = deflate_all(&[], params).unwrap();
        assert!(reproduces(&[], &c, params).unwrap());
    }
}
