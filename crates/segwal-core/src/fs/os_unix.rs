//! Linux and macOS: positional I/O and each one's durability calls (`fdatasync` and
//! `fallocate` on Linux, `F_FULLFSYNC` on macOS).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::FsFile;

pub(super) fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    options.open(path)
}

/// Unix unlinks the name at once; handles still open (a stream's) keep reading the file.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    if cfg!(target_vendor = "apple") {
        full_sync(&d)
    } else {
        d.sync_all()
    }
}

pub(super) fn preallocation_unsupported(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS))
}

/// Makes the file's data (and, for a directory, its entries) durable.
#[cfg(not(target_vendor = "apple"))]
fn full_sync(f: &File) -> io::Result<()> {
    f.sync_data()
}

/// macOS: `fsync` only hands the data to the drive, whose cache may still lose it on
/// power loss; `F_FULLFSYNC` also flushes the drive's cache. File systems that do not
/// support it (some network ones) fall back to `fsync`, the best they offer.
#[cfg(target_vendor = "apple")]
fn full_sync(f: &File) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_FULLFSYNC takes no argument.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_FULLFSYNC) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOTSUP) | Some(libc::EINVAL) | Some(libc::ENOTTY) => {
            // SAFETY: as above.
            if unsafe { libc::fsync(f.as_raw_fd()) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        _ => Err(e),
    }
}

pub(super) struct OsFile(pub(super) File);

impl FsFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    /// Reads the part past `buf.len()` straight into spare capacity: zero-filling a fresh
    /// 1 MiB batch buffer before `pread` overwrites it was a visible share of a stream's CPU.
    fn read_range_into(&self, buf: &mut Vec<u8>, from: usize, to: usize, offset: u64) -> io::Result<usize> {
        if buf.len() < from {
            buf.resize(from, 0);
        }
        let have = buf.len().min(to);
        let got = self.read_full_at(&mut buf[from..have], offset + from as u64)?;
        if got < have - from || have == to {
            return Ok(got);
        }
        buf.reserve(to - have);
        let mut done = have;
        while done < to {
            let spare = buf.spare_capacity_mut();
            let want = to - done;
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
        Ok(done - from)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        full_sync(&self.0)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&self, len: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        let r = unsafe { libc::fallocate(self.0.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The API promises preallocation on Linux and a no-op elsewhere. macOS could reserve
    /// with `F_PREALLOCATE`, but without KEEP_SIZE's guarantees it buys little there.
    #[cfg(not(target_os = "linux"))]
    fn preallocate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
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
