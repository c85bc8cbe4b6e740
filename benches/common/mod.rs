//! Shared by the benches: a global allocator that counts live bytes, so memory per contact is
//! measured by what was allocated, not by the process's resident size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Bytes allocated and not yet freed.
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A wamid shaped as Meta's are (as in Meta's sample payloads): `wamid.` and the base64 of the
/// customer's number and a 20-character message id, 62 characters in all; distinct per `n`.
pub fn meta_wamid(n: u64) -> String {
    use base64::Engine;
    let mut bytes = b"\x1c\x18\x0b16505551234\x15\x02\x00\x12\x18\x14".to_vec();
    bytes.extend_from_slice(format!("{n:020}").as_bytes());
    bytes.push(0);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
