//! napi-rs binding of the segwal engine.
//!
//! Thin on purpose: it converts arguments and results between JavaScript and
//! `segwal_core`, moves blocking engine calls onto the libuv thread pool and
//! forwards the engine's "acks are ready" notification to a JavaScript
//! callback. It knows nothing about the file format; the public surface (names,
//! argument checks, promises) is the TypeScript facade in `lib/`.
//!
//! Everything is a plain function taking an opaque handle (a napi `External`)
//! rather than a `#[napi]` class method: napi-rs tracks borrows of class
//! instances on every method call, which costs more than the append itself
//! (~0.7 µs vs ~0.2 µs per call measured), and it refuses `&mut self` calls
//! while a task started from the instance is in flight.
//!
//! Conventions shared with the facade (`lib/binding.ts`):
//! - every failure is thrown/rejected as a JS `Error` whose `code` is a `WAL_*`
//!   code, with `file`, `offset`, `errno` and `osCode` when known (see
//!   [`errors`]); the facade turns it into a `WalError`;
//! - a Rust panic never unwinds into Node: every entry point runs inside
//!   [`errors::guard`] or [`errors::catch`], which turn a panic into a failure
//!   with code `WAL_INTERNAL`.

#![deny(clippy::all)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use segwal_core as core;

pub mod acks;
mod ahead;
pub mod control;
pub mod errors;
pub mod info;
pub mod inspect;
pub mod open;
mod pool;
pub mod reads;
pub mod writes;

use errors::{invalid, Outcome};

fn partition_arg(partition: u32) -> Outcome<u16> {
    u16::try_from(partition).map_err(|_| invalid("partition must be an integer from 0 to 65535"))
}

/// A non-negative integer number (LSNs, sizes) as u64.
fn u64_arg(value: f64, name: &str) -> Outcome<u64> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9_007_199_254_740_991.0 {
        Ok(value as u64)
    } else {
        Err(invalid(format!("{name} must be a non-negative safe integer")))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open WAL, behind the opaque handle [`open`] resolves to. Dropped (and
/// the engine with it) when JavaScript collects the handle.
pub struct WalHandle {
    wal: Arc<core::Wal>,
    /// Shared with the closure given to the engine; emptied by
    /// `releaseNotifier` so the threadsafe function is released on close.
    notifier: Arc<Mutex<Option<acks::Notifier>>>,
    /// Tells the facade that a reader it waits on has a batch ready (see reads.rs).
    reads: Arc<Mutex<Option<ahead::ReadNotifier>>>,
    /// Whether the notifier currently keeps the event loop alive.
    referenced: AtomicBool,
    acks: Mutex<acks::AckState>,
}
