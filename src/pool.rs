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
//!
//! The few dozen stay for [`LINGER`] after the last reader closes (the way allocators
//! decay their free memory): a process that streams again soon (one stream after
//! another, a reader per request) reads into warm memory instead of page-faulting and
//! zero-filling a few dozen fresh MiB per stream and handing them back to the kernel
//! (`madvise`, on the JS thread, from the collector's finalizers) after it. `trim`,
//! called by the facade once that time is up, shrinks the pool to its idle size.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long spare memory beyond the idle size outlives the last reader.
const LINGER: Duration = Duration::from_secs(5);

/// Spare vectors, at most `keep` of them (what is not kept goes back to the allocator).
pub struct Pool<T: 'static> {
    spare: Mutex<Vec<Vec<T>>>,
    keep: usize,
    idle: usize,
    /// Vectors of a larger capacity are not kept.
    max_capacity: usize,
    users: AtomicUsize,
    /// When the last user left, in milliseconds of [`now_ms`] (0: never).
    left_at: AtomicU64,
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
            left_at: AtomicU64::new(0),
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
        let keep = if self.users.load(Ordering::SeqCst) > 0 || !self.lingering().is_zero() {
            self.keep
        } else {
            self.idle
        };
        if spare.len() < keep && v.capacity() > 0 && v.capacity() <= self.max_capacity {
            spare.push(v);
        }
    }

    /// Shrinks the pool to its idle size once [`LINGER`] has passed with no user; returns
    /// how long until that is (call again then), zero when done or while it has users.
    pub fn trim(&self) -> Duration {
        if self.users.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let left = self.lingering();
        if !left.is_zero() {
            return left;
        }
        let mut spare = self.lock();
        let keep = self.idle.min(spare.len());
        let extra = spare.split_off(keep);
        drop(spare);
        drop(extra);
        Duration::ZERO
    }

    /// With no user: how much of [`LINGER`] is left since the last one left (zero once up).
    fn lingering(&self) -> Duration {
        let left = self.left_at.load(Ordering::SeqCst);
        let since = Duration::from_millis(now_ms().saturating_sub(left));
        if left == 0 {
            Duration::ZERO
        } else {
            LINGER.saturating_sub(since)
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
            self.0.left_at.store(now_ms(), Ordering::SeqCst);
        }
    }
}

/// Milliseconds since the pools were first used, from 1 (monotonic).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}
