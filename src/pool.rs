//! Read batches cross into JavaScript as external buffers over Rust memory. When V8
//! collects one, its memory comes back here instead of to the allocator, so the next
//! batch is read into pages that are already mapped and initialised: a fresh 1 MiB
//! buffer per batch cost a page fault per 4 KiB and a zero-fill, about a quarter of the
//! CPU of a 4 KiB-record stream (perf).
//!
//! V8 collects batches in bursts (when their external memory adds up), so the pool keeps
//! up to a few dozen while readers are open, and a few when none is: short streams (a
//! seek, a reader opened per request) then start on warm memory too, while an idle
//! process holds at most `idle` buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Spare vectors, at most `keep` of them (what is not kept goes back to the allocator).
pub struct Pool<T: 'static> {
    spare: Mutex<Vec<Vec<T>>>,
    keep: usize,
    idle: usize,
    /// Vectors of a larger capacity are not kept.
    max_capacity: usize,
    users: AtomicUsize,
}

/// A user of a pool (an open reader); the pool shrinks to its idle size when the last one goes.
pub struct Claim<T: 'static>(&'static Pool<T>);

impl<T> Pool<T> {
    /// Keeps up to `keep` vectors while the pool has users, `idle` while it has none,
    /// each of at most `max_capacity` elements.
    pub const fn new(keep: usize, idle: usize, max_capacity: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            keep,
            idle,
            max_capacity,
            users: AtomicUsize::new(0),
        }
    }

    pub fn claim(&'static self) -> Claim<T> {
        self.users.fetch_add(1, Ordering::SeqCst);
        Claim(self)
    }

    /// A spare vector (keeping its contents: callers overwrite what they use), or an empty one.
    pub fn take(&self) -> Vec<T> {
        self.lock().pop().unwrap_or_default()
    }

    pub fn give(&self, v: Vec<T>) {
        let mut spare = self.lock();
        let keep = if self.users.load(Ordering::SeqCst) > 0 {
            self.keep
        } else {
            self.idle
        };
        if spare.len() < keep && v.capacity() > 0 && v.capacity() <= self.max_capacity {
            spare.push(v);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Drop for Claim<T> {
    fn drop(&mut self) {
        if self.0.users.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut spare = self.0.lock();
            let keep = self.0.idle.min(spare.len());
            let extra = spare.split_off(keep);
            drop(spare);
            drop(extra);
        }
    }
}
