//! Windows: positional I/O through `seek_read`/`seek_write`, `FlushFileBuffers` (std's
//! `sync_data`) for durability, `LockFileEx` (std's `try_lock`) for the directory lock,
//! and deletion that frees the name at once even while a stream holds the file open.

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::FsFile;

const FILE_SHARE_READ: u32 = 0x1;
const FILE_SHARE_WRITE: u32 = 0x2;
const FILE_SHARE_DELETE: u32 = 0x4;
const DELETE: u32 = 0x0001_0000;
const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
const FILE_DISPOSITION_INFO_EX_CLASS: i32 = 21; // FileDispositionInfoEx
const FILE_DISPOSITION_FLAG_DELETE: u32 = 0x1;
const FILE_DISPOSITION_FLAG_POSIX_SEMANTICS: u32 = 0x2;
const MOVEFILE_WRITE_THROUGH: u32 = 0x8;
const ERROR_INVALID_FUNCTION: i32 = 1;
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_NOT_SUPPORTED: i32 = 50;
const ERROR_INVALID_PARAMETER: i32 = 87;

#[link(name = "kernel32")]
extern "system" {
    fn SetFileInformationByHandle(file: *mut c_void, class: i32, info: *const c_void, size: u32) -> i32;
    fn MoveFileExW(from: *const u16, to: *const u16, flags: u32) -> i32;
}

/// Every handle lets others read, write, and delete or rename the file: a stream's open
/// segment must not stop a purge or truncate, as on Unix.
pub(super) fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    options
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .open(path)
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// Deletes like Unix `unlink`: the name goes at once (so a truncate can create a segment
/// of the same name right away) while handles still open keep reading the old file.
/// POSIX-semantics deletion does exactly that (Windows 10 1709+, NTFS); elsewhere the
/// file is first renamed to a name recovery ignores, and deleted under it.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    let f = OpenOptions::new()
        .access_mode(DELETE)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .open(path)?;
    let flags: u32 = FILE_DISPOSITION_FLAG_DELETE | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS;
    // SAFETY: a handle we own with DELETE access; `flags` is a live FILE_DISPOSITION_INFO_EX
    // (one u32) of the size passed.
    let ok = unsafe {
        SetFileInformationByHandle(
            f.as_raw_handle(),
            FILE_DISPOSITION_INFO_EX_CLASS,
            (&flags as *const u32).cast(),
            std::mem::size_of::<u32>() as u32,
        )
    };
    drop(f);
    if ok != 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(
        e.raw_os_error(),
        Some(ERROR_INVALID_PARAMETER) | Some(ERROR_NOT_SUPPORTED) | Some(ERROR_INVALID_FUNCTION)
    ) {
        return Err(e);
    }
    static TOMBSTONES: AtomicU64 = AtomicU64::new(0);
    let mut tomb = path.as_os_str().to_owned();
    tomb.push(format!(
        ".deleted-{}-{}",
        std::process::id(),
        TOMBSTONES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::rename(path, &tomb)?;
    std::fs::remove_file(&tomb)
}

/// `MOVEFILE_WRITE_THROUGH`: returns only once the rename is on disk, which is what
/// `sync_dir` gives the rename on Unix.
pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (wide(from), wide(to));
    // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
    if unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), MOVEFILE_WRITE_THROUGH) } != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Windows has no directory fsync as such; `FlushFileBuffers` on a directory handle
/// (opened for writing, with backup semantics) flushes NTFS's metadata for it. Where
/// that is refused (FAT, a read-only share, wine), directory changes are left to the
/// file system's journal: see docs/DURABILITY.md for what that costs.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(dir);
    match d.and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(ERROR_ACCESS_DENIED) | Some(ERROR_INVALID_FUNCTION) | Some(ERROR_NOT_SUPPORTED)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

pub(super) fn preallocation_unsupported(_err: &io::Error) -> bool {
    false
}

pub(super) struct OsFile(pub(super) File);

impl FsFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Moves the handle's cursor too, which nothing here uses.
        self.0.seek_read(buf, offset)
    }

    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.0.seek_write(buf, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `FlushFileBuffers`: writes the data and the metadata needed to read it back, and
    /// asks the drive to flush its cache.
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    /// `SetEndOfFile`; other handles were opened with full sharing, so a stream reading
    /// the file does not block it.
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    /// No reservation: NTFS can reserve allocation past the end of file, but frees it when
    /// the handle closes, and a failed write then reports `ENOSPC` as on any platform.
    fn preallocate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}
