//! The ack channel: the engine's notifier as a threadsafe function, and the
//! encoding of ack events into the facade's Float64Array.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use segwal_core as core;

use crate::errors::{guard, ErrorDetail, Failure};
use crate::{lock, WalHandle};

/// Ack event kinds (see [`take_acks`]).
const ACK_ACKED: f64 = 0.0;
const ACK_FAILED: f64 = 1.0;
/// Numbers of an event's header, and of one position (see [`take_acks`]).
const ACK_HEADER: usize = 5;
const POSITION_WIDTH: usize = 3;

/// The notifier: a weak (unref'd) threadsafe function calling the facade's
/// ack callback with no arguments.
pub(crate) type Notifier = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Acks taken from the engine but not yet handed to JavaScript.
#[derive(Default)]
pub(crate) struct AckState {
    /// Taken from the engine, waiting for an array large enough: encoded straight into
    /// the facade's array (no intermediate copy, which was 24 bytes per single append).
    pending: Vec<core::Ack>,
    /// Errors of the failed events handed out so far, in order.
    errors: Vec<ErrorDetail>,
}

/// `setRef(handle, true)`.
#[napi]
pub fn set_notifier(env: &Env, handle: &External<WalHandle>, callback: Function<(), ()>) -> Result<()> {
    guard(env, || {
        let tsfn: Notifier = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        *lock(&handle.notifier) = Some(tsfn);
        handle.referenced.store(false, Ordering::Relaxed);
        let slot = Arc::clone(&handle.notifier);
        handle.wal.set_notifier(Arc::new(move || {
            if let Some(tsfn) = lock(&slot).as_ref() {
                tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }));
        Ok(())
    })
}

/// Makes the notifier keep the event loop alive (`true`, while appends are in
/// flight) or not (`false`).
#[napi]
pub fn set_ref(env: &Env, handle: &External<WalHandle>, on: bool) -> Result<()> {
    guard(env, || {
        if on == handle.referenced.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(tsfn) = lock(&handle.notifier).as_ref() {
            let raw = tsfn.raw();
            // SAFETY: called on the JS thread with its env; `raw` is alive while
            // the slot holds the threadsafe function.
            let status = unsafe {
                if on {
                    napi::sys::napi_ref_threadsafe_function(env.raw(), raw)
                } else {
                    napi::sys::napi_unref_threadsafe_function(env.raw(), raw)
                }
            };
            if status != napi::sys::Status::napi_ok {
                return Err(Failure::native("WAL_INTERNAL", "could not (un)ref the ack notifier"));
            }
            handle.referenced.store(on, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// Releases the notifiers (after close): no more callbacks.
#[napi]
pub fn release_notifier(env: &Env, handle: &External<WalHandle>) -> Result<()> {
    guard(env, || {
        let tsfn = lock(&handle.notifier).take();
        handle.referenced.store(false, Ordering::Relaxed);
        drop(tsfn);
        drop(lock(&handle.reads).take());
        Ok(())
    })
}

/// Copies every pending ack event into `out` and returns how many numbers it
/// wrote; 0 means no news. All or nothing: when they do not fit, returns minus
/// the size `out` needs (the facade learns of every failure the engine has let
/// go of in the same call, so it never hands out an LSN the engine reused).
///
/// Encoding, per event: `partition, kind, count, bytes, n` then `n` times
/// `lsn, segment, offset`. The event settles the partition's next `count`
/// staged records (`bytes` of payload), in staging order:
/// - kind 0, acknowledged: `n` positions of the single appends among them;
/// - kind 1, failed: `n` = 0; its error is the next one of `takeAckErrors()`
///   (same order as the failed events).
#[napi]
pub fn take_acks(env: &Env, handle: &External<WalHandle>, mut out: Float64ArraySlice) -> Result<i32> {
    // SAFETY: the facade's own array, not shared with another thread, and only
    // written during this synchronous call.
    let out = unsafe { out.as_mut() };
    guard(env, || {
        let mut state = lock(&handle.acks);
        let AckState { pending, errors } = &mut *state;
        if pending.is_empty() {
            *pending = handle.wal.take_acks();
        }
        let mut len = 0usize;
        for event in pending.iter().flat_map(|a| &a.events) {
            len += ACK_HEADER;
            if let core::AckEvent::Acked { positions, .. } = event {
                len += POSITION_WIDTH * positions.len();
            }
        }
        if len > out.len() {
            return Ok(-(i32::try_from(len).unwrap_or(i32::MAX)));
        }
        let mut at = 0;
        let mut put = |values: &[f64]| {
            out[at..at + values.len()].copy_from_slice(values);
            at += values.len();
        };
        for ack in pending.drain(..) {
            let partition = f64::from(ack.partition);
            for event in ack.events {
                match event {
                    core::AckEvent::Acked {
                        count,
                        bytes,
                        positions,
                        ..
                    } => {
                        put(&[partition, ACK_ACKED, count as f64, bytes as f64, positions.len() as f64]);
                        for p in &positions {
                            put(&[p.lsn as f64, p.segment as f64, p.offset as f64]);
                        }
                    }
                    core::AckEvent::Failed {
                        count, bytes, error, ..
                    } => {
                        put(&[partition, ACK_FAILED, count as f64, bytes as f64, 0.0]);
                        errors.push(ErrorDetail::from(&error));
                    }
                }
            }
        }
        Ok(len as i32)
    })
}

/// The errors of the failed events `takeAcks` handed out, in the same order; clears them.
#[napi]
pub fn take_ack_errors(handle: &External<WalHandle>) -> Vec<ErrorDetail> {
    std::mem::take(&mut lock(&handle.acks).errors)
}

/// What recovery cut at open: `partition, segment, truncatedBytes` per entry.
#[napi]
pub fn recovery(env: &Env, handle: &External<WalHandle>) -> Result<Vec<f64>> {
    guard(env, || {
        let mut out = Vec::new();
        for t in handle.wal.recovery() {
            out.push(f64::from(t.partition));
            out.push(t.segment as f64);
            out.push(t.truncated_bytes as f64);
        }
        Ok(out)
    })
}
