//! Read descriptors shared by the readers of a WAL, at most `cap` of them.
//!
//! A reader holding its own descriptor made descriptors grow with streams: 10,000 open
//! streams over 10,000 partitions needed 10,000 descriptors, past a default
//! `ulimit -n` of 1024. Readers now pin the file of the segment they are in: readers in
//! the same segment share one descriptor, a file is closed when the last reader leaves
//! it (so a stream's end releases its descriptors), and past `cap` files the least
//! recently used is closed (its readers open it again at their next batch). A segment
//! purged under readers stays readable to those inside it until they leave it (API.md:
//! a stream inside a segment may finish it).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile};

/// Files kept open for readers, all partitions together.
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
    files: HashMap<SegKey, Entry>,
}

struct Entry {
    file: Arc<dyn FsFile>,
    used: u64,
    /// Readers in this segment.
    pins: usize,
}

impl ReadHandles {
    pub fn new(cap: usize) -> ReadHandles {
        ReadHandles {
            cap: cap.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    /// The file of `key` (opened at `path` unless open), kept open until as many
    /// [`ReadHandles::unpin`] calls, or until `cap` other files were used since.
    pub fn pin(&self, fs: &dyn Fs, path: &Path, key: SegKey) -> io::Result<Arc<dyn FsFile>> {
        if let Some(f) = self.lock().take_pin(key) {
            return Ok(f);
        }
        // Opened outside the lock: other readers go on meanwhile.
        let f = fs.open(path, false)?;
        let mut lru = self.lock();
        if let Some(theirs) = lru.take_pin(key) {
            return Ok(theirs);
        }
        if lru.files.len() >= self.cap {
            // O(cap), only when a file is opened with `cap` open: cheaper than keeping an order.
            if let Some(old) = lru.files.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) {
                lru.files.remove(&old);
            }
        }
        let used = lru.tick;
        lru.files.insert(
            key,
            Entry {
                file: f.clone(),
                used,
                pins: 1,
            },
        );
        Ok(f)
    }

    /// A reader left the segment of `key`; the last one out closes its file.
    pub fn unpin(&self, key: SegKey) {
        let mut lru = self.lock();
        if let Some(e) = lru.files.get_mut(&key) {
            e.pins = e.pins.saturating_sub(1);
            if e.pins == 0 {
                lru.files.remove(&key);
            }
        }
    }

    /// The file of `key` for one look, without keeping it open.
    pub fn get(&self, fs: &dyn Fs, path: &Path, key: SegKey) -> io::Result<Arc<dyn FsFile>> {
        if let Some(e) = self.lock().files.get(&key) {
            return Ok(e.file.clone());
        }
        fs.open(path, false)
    }

    /// Closes every file (at close).
    pub fn clear(&self) {
        let files = std::mem::take(&mut self.lock().files);
        drop(files);
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        // The map stays consistent at every unlock; a panic elsewhere does not spoil it.
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lru {
    fn take_pin(&mut self, key: SegKey) -> Option<Arc<dyn FsFile>> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.files.get_mut(&key)?;
        e.used = tick;
        e.pins += 1;
        Some(e.file.clone())
    }
}

impl Default for ReadHandles {
    fn default() -> ReadHandles {
        ReadHandles::new(DEFAULT_READ_HANDLES)
    }
}
