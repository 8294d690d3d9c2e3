//! Failures of the binding and the engine, and the one place they become JS values.
//!
//! An entry point works with [`Failure`] (plain Rust data, made on any thread) and
//! turns it into a JS value only on the JS thread, through [`guard`] or
//! [`Failure::into_js`]: an `Error` whose `code` is a `WAL_*` code, with `file`,
//! `offset`, `errno` and `osCode` as properties when known. Ack events carry the
//! same fields as plain objects ([`ErrorDetail`]). The facade reads those
//! properties to build its `WalError`; nothing is encoded in message text.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

/// The fields of a failure, as the facade receives them (ack events, and the
/// properties of every error the binding throws or rejects with).
#[napi(object)]
pub struct ErrorDetail {
    /// A `WAL_*` code, or `WAL_INTERNAL` for a caught native panic.
    pub code: String,
    pub message: String,
    pub file: Option<String>,
    pub offset: Option<f64>,
    pub errno: Option<String>,
    pub os_code: Option<i32>,
}

/// Why a call failed, before it is a JS value.
pub enum Failure {
    Engine(core::Error),
    /// Raised by the binding itself: a bad argument, a released cursor, a panic.
    Native {
        code: &'static str,
        message: String,
    },
    /// A napi call failed (creating a value, a threadsafe function...).
    Napi(Error),
}

pub type Outcome<T> = std::result::Result<T, Failure>;

impl From<core::Error> for Failure {
    fn from(e: core::Error) -> Self {
        Failure::Engine(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Napi(e)
    }
}

impl From<&core::Error> for ErrorDetail {
    fn from(e: &core::Error) -> Self {
        ErrorDetail {
            code: e.code_str().to_string(),
            message: e.message.clone(),
            file: e.file.clone(),
            offset: e.offset.map(|o| o as f64),
            errno: e.errno.clone(),
            os_code: e.os_code,
        }
    }
}

impl Failure {
    pub fn native(code: &'static str, message: impl Into<String>) -> Self {
        Failure::Native {
            code,
            message: message.into(),
        }
    }

    /// The JS error for this failure; only on the JS thread.
    pub fn into_js(self, env: &Env) -> Error {
        let detail = match self {
            Failure::Napi(e) => return e,
            Failure::Engine(e) => ErrorDetail::from(&e),
            Failure::Native { code, message } => ErrorDetail {
                code: code.to_string(),
                message,
                file: None,
                offset: None,
                errno: None,
                os_code: None,
            },
        };
        js_error(env, detail).unwrap_or_else(|e| e)
    }
}

fn js_error(env: &Env, d: ErrorDetail) -> Result<Error> {
    let mut error = env.create_error(Error::from_reason(d.message))?;
    error.set_named_property("code", d.code)?;
    if let Some(file) = d.file {
        error.set_named_property("file", file)?;
    }
    if let Some(offset) = d.offset {
        error.set_named_property("offset", offset)?;
    }
    if let Some(errno) = d.errno {
        error.set_named_property("errno", errno)?;
    }
    if let Some(os_code) = d.os_code {
        error.set_named_property("osCode", os_code)?;
    }
    Ok(Error::from(error.to_unknown()))
}

/// A `WAL_INVALID_ARGUMENT` failure; `message` names the argument.
pub fn invalid(message: impl Into<String>) -> Failure {
    Failure::native("WAL_INVALID_ARGUMENT", message)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f` on any thread, turning a panic into a `WAL_INTERNAL` failure so that it
/// never crosses into Node.
pub fn catch<T>(f: impl FnOnce() -> Outcome<T>) -> Outcome<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Failure::native(
            "WAL_INTERNAL",
            format!("segwal native panic: {}", panic_message(payload)),
        )),
    }
}

/// [`catch`] for an entry point running on the JS thread: a failure is thrown
/// (or rejects) as its JS error.
pub fn guard<T>(env: &Env, f: impl FnOnce() -> Outcome<T>) -> Result<T> {
    catch(f).map_err(|failure| failure.into_js(env))
}
