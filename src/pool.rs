//! Read batches cross into JavaScript as external buffers over Rust memory. When V8
//! collects one, its memory comes back here instead of to the allocator, so the next
//! batch is read into pages that are already mapped and initialised: a fresh 1 MiB
//! buffer per batch cost a page fault per 4 KiB and a zero-fill, about a quarter of the
//! CPU of a 4 KiB-record stream (perf).

use std::sync::Mutex;

/// Spare vectors, at most `keep` of them (what is not kept goes back to the allocator).
pub struct Pool<T> {
    spare: Mutex<Vec<Vec<T>>>,
    keep: usize,
}

impl<T> Pool<T> {
    pub const fn new(keep: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A spare vector (keeping its contents: callers overwrite what they use), or an empty one.
    pub fn take(&self) -> Vec<T> {
        self.lock().pop().unwrap_or_default()
    }

    pub fn give(&self, v: Vec<T>) {
        let mut spare = self.lock();
        if spare.len() < self.keep && v.capacity() > 0 {
            spare.push(v);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}
