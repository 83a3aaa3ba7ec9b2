//! Huge pages for the diff's large, randomly read arrays.
//!
//! The matcher's binary searches jump across a suffix array four times the size
//! of the old file and across the old file itself; with 4 KiB pages nearly
//! every step also misses the TLB. Asking the kernel for transparent huge pages
//! on those two buffers made the diff of a 60 MB library about 17% faster
//! (bench/README.md). Most distributions enable THP only where a program asks
//! (`madvise` mode), hence the request. It is advice: where the kernel or the
//! platform refuses, nothing changes but the speed.
#![allow(unsafe_code)]

/// A zero-filled vector of `len` elements backed by huge pages where the
/// system allows. (A large zeroed allocation is fresh memory the allocator
/// mapped and never touched, so the advice applies before the first fault.)
pub(crate) fn zeroed<T: Copy + Default>(len: usize) -> Vec<T> {
    let v = vec![T::default(); len];
    advise(v.as_ptr().cast(), len * std::mem::size_of::<T>());
    v
}

/// A copy of `data` in huge-page-backed memory where the system allows.
pub(crate) fn copy_of(data: &[u8]) -> Vec<u8> {
    let mut v = zeroed::<u8>(data.len());
    v.copy_from_slice(data);
    v
}

#[cfg(target_os = "linux")]
fn advise(start: *const u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    let first = (start as usize).next_multiple_of(HUGE);
    let end = (start as usize + bytes) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside one live allocation owned by the
        // caller's vector; MADV_HUGEPAGE changes how pages are backed, never
        // their contents, and its failure is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: *const u8, _bytes: usize) {}
