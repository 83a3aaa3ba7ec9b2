//! Untrusted patches: applying any bytes never panics and never allocates
//! without bound; whatever applies successfully has the promised SHA-256.
//!
//! The first input byte picks a mode: as is (header parsing), or the input as
//! the body behind a valid header for the fixed old file (so the fuzzer gets
//! past the base check into the zip plan and the streams).
#![no_main]

use atoll_delta::{apply, read_header, ApplyOptions};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const OLD: &[u8] = b"PK\x03\x04 the old file: some text, some more text, \x00\x01\x02\x03 and the end";

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else { return };
    let patch = if mode & 1 == 0 {
        body.to_vec()
    } else {
        let mut p = Vec::new();
        p.extend_from_slice(b"ATDP\x01");
        p.push(mode >> 7); // raw or zip
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&(OLD.len() as u64).to_le_bytes());
        // New size: small, so a hostile stream cannot make the run long.
        p.extend_from_slice(&u64::from(mode >> 1 & 0x3f).to_le_bytes());
        p.extend_from_slice(&Sha256::digest(OLD));
        p.extend_from_slice(&[0u8; 32]);
        p.extend_from_slice(body);
        p
    };
    let _ = read_header(&patch);
    let mut out = Vec::new();
    if let Ok(report) = apply(OLD, &patch, &mut out, &ApplyOptions::default()) {
        assert_eq!(out.len() as u64, report.header.new_size);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&out)), report.header.new_sha256);
    }
});
