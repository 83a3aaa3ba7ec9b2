//! Untrusted packages: the zip reader never panics, every entry it returns lies
//! inside the file, and a patch between two hostile "zips" still rebuilds the
//! second byte for byte.
#![no_main]

use atoll_delta::{apply, diff, zip, ApplyOptions, DiffOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Some(entries) = zip::read_entries(input) {
        for e in &entries {
            assert!(e.data_range().end <= input.len());
        }
    }
    // Split the input into an old and a new file at a point it chooses.
    let Some((&cut, rest)) = input.split_first() else { return };
    let at = (usize::from(cut) * rest.len()) / 255;
    let (old, new) = rest.split_at(at.min(rest.len()));
    let options = DiffOptions { level: 1, lzma: false, ..DiffOptions::default() };
    let patch = diff(old, new, &options).expect("diff of small inputs");
    let mut out = Vec::new();
    apply(old, &patch, &mut out, &ApplyOptions::default()).expect("own patch applies");
    assert_eq!(out, new);
});
