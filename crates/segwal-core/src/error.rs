//! Engine errors. Each maps one-to-one onto a `WalError` code of the public API.

use std::fmt;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Locked,
    Closed,
    RecordTooLarge,
    LsnPurged,
    LsnOutOfRange,
    Corruption,
    Io,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "WAL_INVALID_ARGUMENT",
            ErrorCode::Locked => "WAL_LOCKED",
            ErrorCode::Closed => "WAL_CLOSED",
            ErrorCode::RecordTooLarge => "WAL_RECORD_TOO_LARGE",
            ErrorCode::LsnPurged => "WAL_LSN_PURGED",
            ErrorCode::LsnOutOfRange => "WAL_LSN_OUT_OF_RANGE",
            ErrorCode::Corruption => "WAL_CORRUPTION",
            ErrorCode::Io => "WAL_IO_ERROR",
        }
    }
}

/// Cloneable so one failure can be handed to every append it rejects.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Set for `Corruption` (the damaged file) and, where known, for `Io`.
    pub file: Option<String>,
    /// Byte offset of the damage in `file` (`Corruption`).
    pub offset: Option<u64>,
    /// Symbolic errno (`"ENOSPC"`) for `Io`.
    pub errno: Option<String>,
    /// Raw OS error number for `Io`.
    pub os_code: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            file: None,
            offset: None,
            errno: None,
            os_code: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub fn closed() -> Error {
        Error::new(ErrorCode::Closed, "the WAL is closed")
    }

    pub fn corruption(file: impl Into<String>, offset: u64, what: impl fmt::Display) -> Error {
        let file = file.into();
        Error {
            message: format!("{what} in {file} at offset {offset}"),
            file: Some(file),
            offset: Some(offset),
            ..Error::new(ErrorCode::Corruption, "")
        }
    }

    /// An OS error, with what was being done and to which file.
    pub fn io(err: &io::Error, doing: impl fmt::Display) -> Error {
        let os_code = err.raw_os_error();
        let errno = os_code.map(errno_name);
        Error {
            message: format!("{doing}: {err}"),
            errno,
            os_code,
            ..Error::new(ErrorCode::Io, "")
        }
    }

    pub fn code_str(&self) -> &'static str {
        self.code.as_str()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// The symbolic name Node uses for an OS error (`err.code` of its fs errors): the errno
/// on Unix; on Windows, the name libuv gives the Win32 error (so `ENOSPC` means a full
/// disk everywhere). Unknown codes read `E<number>`.
pub fn errno_name(code: i32) -> String {
    match known_errno_name(code) {
        Some(name) => name.to_string(),
        None => format!("E{code}"),
    }
}

#[cfg(unix)]
fn known_errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::ENOSPC => "ENOSPC",
        libc::EIO => "EIO",
        libc::EDQUOT => "EDQUOT",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::EROFS => "EROFS",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EBADF => "EBADF",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::EFBIG => "EFBIG",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSYS => "ENOSYS",
        libc::EXDEV => "EXDEV",
        libc::EBUSY => "EBUSY",
        libc::ENOTEMPTY => "ENOTEMPTY",
        // A distinct number on macOS, the same as EOPNOTSUPP on Linux.
        #[cfg(target_vendor = "apple")]
        libc::ENOTSUP => "ENOTSUP",
        _ => return None,
    })
}

/// libuv's `uv_translate_sys_error` for the Win32 errors file I/O can give.
#[cfg(windows)]
fn known_errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        112 | 39 => "ENOSPC", // ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL
        1295 => "EDQUOT",     // ERROR_DISK_QUOTA_EXCEEDED
        23 | 1117 | 1101 | 1102 | 1103 | 1104 | 1111 | 1129 | 1165 | 1166 => "EIO", // CRC, IO_DEVICE, media errors
        5 | 1314 => "EPERM",  // ERROR_ACCESS_DENIED, ERROR_PRIVILEGE_NOT_HELD
        998 | 1920 => "EACCES", // ERROR_NOACCESS, ERROR_CANT_ACCESS_FILE
        2 | 3 | 123 | 161 | 53 => "ENOENT", // FILE/PATH_NOT_FOUND, INVALID_NAME, BAD_PATHNAME, BAD_NETPATH
        80 | 183 => "EEXIST", // ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS
        19 => "EROFS",        // ERROR_WRITE_PROTECT
        4 => "EMFILE",        // ERROR_TOO_MANY_OPEN_FILES
        267 => "ENOTDIR",     // ERROR_DIRECTORY
        1 => "EISDIR",        // ERROR_INVALID_FUNCTION
        6 | 1004 => "EBADF",  // ERROR_INVALID_HANDLE, ERROR_INVALID_FLAGS
        87 => "EINVAL",       // ERROR_INVALID_PARAMETER
        32 | 33 => "EBUSY",   // ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
        206 => "ENAMETOOLONG", // ERROR_FILENAME_EXCED_RANGE
        50 => "ENOTSUP",      // ERROR_NOT_SUPPORTED
        17 => "EXDEV",        // ERROR_NOT_SAME_DEVICE
        145 => "ENOTEMPTY",   // ERROR_DIR_NOT_EMPTY
        8 | 14 => "ENOMEM",   // ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a caller branches on (`err.errno === 'ENOSPC'`) come out the same as
    /// Node's own fs errors; unknown numbers stay recognisable.
    #[test]
    fn errno_names_match_node() {
        #[cfg(unix)]
        let cases = [
            (libc::ENOSPC, "ENOSPC"),
            (libc::ENOENT, "ENOENT"),
            (libc::EACCES, "EACCES"),
            (9999, "E9999"),
        ];
        // ERROR_DISK_FULL, ERROR_PATH_NOT_FOUND, ERROR_ACCESS_DENIED (libuv: EPERM).
        #[cfg(windows)]
        let cases = [(112, "ENOSPC"), (3, "ENOENT"), (5, "EPERM"), (9999, "E9999")];
        for (code, name) in cases {
            assert_eq!(errno_name(code), name, "code {code}");
            let err = Error::io(&io::Error::from_raw_os_error(code), "writing");
            assert_eq!(err.errno.as_deref(), Some(name));
            assert_eq!(err.os_code, Some(code));
        }
    }
}
