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

/// The symbolic name Node uses for an errno (`err.code` of fs errors).
pub fn errno_name(code: i32) -> String {
    let name = match code {
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
        _ => return format!("E{code}"),
    };
    name.to_string()
}
