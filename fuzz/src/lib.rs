//! What every fuzz target shares: an allocator that makes one oversized
//! allocation a crash.
//!
//! The parsers read untrusted bucket content, and a length field or a zstd
//! bomb must never make them allocate without bound. libFuzzer's own
//! `-malloc_limit_mb` needs a sanitizer runtime, which stable Rust does not
//! give, so the targets install this allocator instead: any single
//! allocation (or reallocation) over [`ALLOCATION_LIMIT`] prints its size and
//! aborts, and libFuzzer saves the input as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a parser may make on fuzz input.
pub const ALLOCATION_LIMIT: usize = 256 << 20;

/// The system allocator with [`ALLOCATION_LIMIT`] enforced.
pub struct CappedAllocator;

fn check(size: usize) {
    if size > ALLOCATION_LIMIT {
        // No heap use here: we are inside the allocator.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = size;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"offsite-fuzz: allocation of ");
        let _ = err.write_all(&digits[at..]);
        let _ =
            err.write_all(b" bytes exceeds the fuzz limit (unbounded allocation from input?)\n");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the check only
// aborts before an oversized request.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CappedAllocator = CappedAllocator;

/// Touch every location a parsed object carries, as readers do (a location
/// whose end overflows must not panic).
pub fn touch_ranges<'a>(refs: impl IntoIterator<Item = &'a offsite::repo::pack::BlobRef>) {
    for r in refs {
        let range = r.range();
        std::hint::black_box(range);
    }
}
