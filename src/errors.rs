//! Engine errors and caught panics as the JS errors the facade decodes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::bindgen_prelude::*;
use segwal_core as core;

/// Prefix of the message of every error this binding raises.
pub(crate) const ERROR_PREFIX: &str = "segwal:";

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON detail of an engine error (without the prefix).
pub(crate) fn error_json(err: &core::Error) -> String {
    let mut s = format!(
        "{{\"code\":{},\"message\":{}",
        json_string(err.code_str()),
        json_string(&err.message)
    );
    if let Some(file) = &err.file {
        s.push_str(&format!(",\"file\":{}", json_string(file)));
    }
    if let Some(offset) = err.offset {
        s.push_str(&format!(",\"offset\":{offset}"));
    }
    if let Some(errno) = &err.errno {
        s.push_str(&format!(",\"errno\":{}", json_string(errno)));
    }
    if let Some(os_code) = err.os_code {
        s.push_str(&format!(",\"osCode\":{os_code}"));
    }
    s.push('}');
    s
}

/// An engine error as a napi error the facade can decode.
pub(crate) fn encode_error(err: &core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("{ERROR_PREFIX}{}", error_json(err)))
}

/// An error that did not come from the engine (a panic, a bad argument that
/// the facade should have caught).
pub(crate) fn internal_error(code: &str, message: &str) -> Error {
    Error::new(
        Status::GenericFailure,
        format!(
            "{ERROR_PREFIX}{{\"code\":{},\"message\":{}}}",
            json_string(code),
            json_string(message)
        ),
    )
}

pub(crate) fn invalid(message: &str) -> Error {
    internal_error("WAL_INVALID_ARGUMENT", message)
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into an error so that it never crosses into Node.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(internal_error(
            "WAL_INTERNAL",
            &format!("segwal native panic: {}", panic_message(payload)),
        )),
    }
}

pub(crate) fn engine<T>(result: core::Result<T>) -> Result<T> {
    result.map_err(|e| encode_error(&e))
}
