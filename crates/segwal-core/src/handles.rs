//! Read descriptors shared by every reader of a WAL, least recently used first out.
//!
//! A reader holding its own descriptor made descriptors grow with streams: 10,000 open
//! streams over 10,000 partitions needed 10,000 descriptors, past a default
//! `ulimit -n` of 1024. Readers borrow a handle for one batch instead; at most `cap` stay
//! open between batches (plus the few borrowed by reads in flight, at most one per
//! thread reading).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile};

/// Open read handles kept between batches, all partitions together.
pub const DEFAULT_READ_HANDLES: usize = 256;

/// One segment file as a reader knows it. The salt is fresh for every segment made, so
/// a file made again under a name (after a truncate or a failed round) is another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SegKey {
    pub partition: u16,
    pub index: u64,
    pub salt: u32,
}

pub(crate) struct ReadHandles {
    cap: usize,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    tick: u64,
    files: HashMap<SegKey, (Arc<dyn FsFile>, u64)>,
}

impl ReadHandles {
    pub fn new(cap: usize) -> ReadHandles {
        ReadHandles {
            cap: cap.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    /// The file of `key`, opened at `path` unless a handle is kept.
    pub fn get(&self, fs: &dyn Fs, path: &Path, key: SegKey) -> io::Result<Arc<dyn FsFile>> {
        {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some((f, used)) = lru.files.get_mut(&key) {
                *used = tick;
                return Ok(f.clone());
            }
        }
        // Opened outside the lock: other readers go on meanwhile.
        let f = fs.open(path, false)?;
        let mut lru = self.lock();
        if lru.files.len() >= self.cap && !lru.files.contains_key(&key) {
            // O(cap), only on a miss with a full cache: cheaper than keeping an order.
            if let Some(old) = lru.files.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) {
                lru.files.remove(&old);
            }
        }
        let tick = lru.tick;
        lru.files.insert(key, (f.clone(), tick));
        Ok(f)
    }

    /// Closes the kept handle of a segment that is gone (purged, truncated away), so that
    /// its disk space is freed now rather than when the handle would have aged out.
    pub fn forget(&self, partition: u16, index: u64) {
        self.lock()
            .files
            .retain(|k, _| k.partition != partition || k.index != index);
    }

    /// Closes every kept handle (at close).
    pub fn clear(&self) {
        let files = std::mem::take(&mut self.lock().files);
        drop(files);
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        // The map stays consistent at every unlock; a panic elsewhere does not spoil it.
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ReadHandles {
    fn default() -> ReadHandles {
        ReadHandles::new(DEFAULT_READ_HANDLES)
    }
}
