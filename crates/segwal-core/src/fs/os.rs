//! `OsFs`: the real file system. What is the same on every platform lives here; the
//! calls that differ (durability, preallocation, deleting a file that is still open)
//! live in `os_unix.rs` and `os_windows.rs` (docs/DURABILITY.md has the table).

use std::any::Any;
use std::fs::{OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::sync::Arc;

#[cfg(unix)]
use super::os_unix as sys;
#[cfg(windows)]
use super::os_windows as sys;
use super::{Fs, FsFile};

/// The real file system.
pub struct OsFs;

pub const LOCK_FILE: &str = "segwal.lock";

/// True for the error a file system without preallocation gives: the segment then just
/// does not get its reservation.
pub fn preallocation_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported || sys::preallocation_unsupported(err)
}

impl Fs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn FsFile>> {
        let f = sys::open(path, OpenOptions::new().read(true).write(write))?;
        Ok(Arc::new(sys::OsFile(f)))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = sys::open(path, OpenOptions::new().read(true).write(true).create_new(true))?;
        Ok(Arc::new(sys::OsFile(f)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        sys::remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        sys::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sys::sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        // A lock on a file inside the directory (flock on Unix, LockFileEx on Windows):
        // every spelling of the path (and every open in this process) reaches the same
        // file, and the OS drops the lock when its holder dies, so a killed writer never
        // blocks the next open.
        let f = sys::open(
            &dir.join(LOCK_FILE),
            OpenOptions::new().read(true).write(true).create(true).truncate(false),
        )?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
