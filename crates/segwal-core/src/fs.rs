//! The file-system seam. The engine does all I/O through `Fs` and `FsFile`, so tests
//! can swap in a simulated one (`segwal_sim::SimFs`), which drops unsynced writes on a simulated power loss.

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::Arc;

// The real file system: what is the same everywhere in `os.rs`, each platform's own
// calls (durability, preallocation, deletion of open files) in its file.
mod os;
#[cfg(unix)]
mod os_unix;
#[cfg(windows)]
mod os_windows;

pub use os::{preallocation_unsupported, OsFs, LOCK_FILE};

pub trait Fs: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file, read-only or read-write.
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn FsFile>>;
    /// Creates a new file (fails if it exists), read-write.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to` (same directory), replacing nothing: the engine only
    /// renames onto names that do not exist. Atomic; durable once `sync_dir` returns.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the directory's exclusive lock; `Ok(None)` when someone else holds it.
    /// The lock lasts as long as the returned guard.
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>>;
}

#[allow(clippy::len_without_is_empty)] // a file, not a collection
pub trait FsFile: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    /// Logical size (what `stat` says), not the allocated size.
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves space up to `len` without changing the logical size.
    fn preallocate(&self, len: u64) -> io::Result<()>;

    /// Starts writeback of a written range without waiting for it (a hint: durability
    /// still comes only from `sync_data`).
    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    /// Reads until `buf` is full or the file ends; returns the bytes read.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// [`FsFile::read_full_at`] into `buf[..len]`, growing `buf` first if it is shorter.
    /// Afterwards `buf.len()` covers at least the bytes read. Implementations may leave
    /// the grown part that the read did not reach out of `buf` instead of zero-filling it.
    fn read_full_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<usize> {
        self.read_range_into(buf, 0, len, offset)
    }

    /// [`FsFile::read_full_into`] of the part `buf[from..to]` only (`buf[0]` stands for
    /// the file's byte `offset`, so this reads from `offset + from`); returns the bytes
    /// read there. Readers fill a buffer in steps with it.
    fn read_range_into(&self, buf: &mut Vec<u8>, from: usize, to: usize, offset: u64) -> io::Result<usize> {
        if buf.len() < to {
            buf.resize(to, 0);
        }
        self.read_full_at(&mut buf[from..to], offset + from as u64)
    }
}
