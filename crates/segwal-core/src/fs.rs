//! The file-system seam. The engine does all I/O through `Fs` and `FsFile`, so tests
//! can swap in a simulated one (`segwal_sim::SimFs`), which drops unsynced writes on a simulated power loss.

use std::any::Any;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

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
        if buf.len() < len {
            buf.resize(len, 0);
        }
        self.read_full_at(&mut buf[..len], offset)
    }
}

/// The real file system.
pub struct OsFs;

pub const LOCK_FILE: &str = "segwal.lock";

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
        let f = OpenOptions::new().read(true).write(write).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        // flock on a file inside the directory: every spelling of the path (and every
        // open in this process) reaches the same inode, and the kernel drops the lock
        // when its holder dies, so a killed writer never blocks the next open.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

struct OsFile(File);

impl FsFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    /// Reads the part past `buf.len()` straight into spare capacity: zero-filling a fresh
    /// 1 MiB batch buffer before `pread` overwrites it was a visible share of a stream's CPU.
    fn read_full_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<usize> {
        let have = buf.len().min(len);
        let got = self.read_full_at(&mut buf[..have], offset)?;
        if got < have || have == len {
            return Ok(got);
        }
        buf.reserve(len - have);
        let mut done = have;
        while done < len {
            let spare = buf.spare_capacity_mut();
            let want = len - done;
            // SAFETY: `spare` has room for `want` bytes (reserved above; `done` counts the
            // bytes initialised so far, which are exactly `buf.len()`); pread writes at most
            // `want` bytes there, and `set_len` then covers only the bytes it wrote.
            let n = unsafe {
                libc::pread(
                    self.0.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    want,
                    libc::off_t::try_from(offset + done as u64)
                        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                )
            };
            match n {
                0 => break,
                n if n > 0 => {
                    done += n as usize;
                    // SAFETY: pread initialised these `n` bytes.
                    unsafe { buf.set_len(done) };
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(done)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        let r = unsafe { libc::fallocate(self.0.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn preallocate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else {
            return Ok(());
        };
        // SAFETY: sync_file_range on a descriptor we own; no memory is passed.
        let r = unsafe { libc::sync_file_range(self.0.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
