//! Operations queued behind the appends (sync, truncate, purge) and close.
//!
//! Each returns a promise that the engine thread completing the operation settles (a
//! `JsDeferred`, queued to the JS thread): no libuv pool thread waits for a writer, so
//! any number of them in flight leave Node's fs, dns and crypto work alone.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::errors::{guard, Failure, Outcome};
use crate::{partition_arg, u64_arg, WalHandle};

type Resolver<V> = Box<dyn FnOnce(Env) -> Result<V> + Send>;

/// A promise settled (with `convert` of the result) once the engine completes `pending`.
fn settle<'e, T, V>(env: &'e Env, pending: core::Pending<T>, convert: fn(T) -> V) -> Outcome<Object<'e>>
where
    T: Send + 'static,
    V: ToNapiValue + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<V, Resolver<V>>()?;
    pending.then(move |r| match r {
        Ok(v) => {
            let v = convert(v);
            deferred.resolve(Box::new(move |_| Ok(v)));
        }
        Err(e) => deferred.resolve(Box::new(move |env| Err(Failure::from(e).into_js(&env)))),
    });
    Ok(promise)
}

/// Result of `purgeBefore`.
#[napi(object)]
pub struct PurgeResult {
    pub segments_deleted: f64,
    pub bytes_freed: f64,
    pub first_lsn: f64,
}

/// Makes everything appended so far durable.
#[napi(ts_return_type = "Promise<void>")]
pub fn sync<'e>(env: &'e Env, handle: &External<WalHandle>) -> Result<Object<'e>> {
    guard(env, || settle(env, handle.wal.sync(), |()| ()))
}

/// Removes every record above `lsn`; enqueued now (ordered with appends).
#[napi(ts_return_type = "Promise<void>")]
pub fn truncate_after<'e>(env: &'e Env, handle: &External<WalHandle>, partition: u32, lsn: f64) -> Result<Object<'e>> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        let lsn = u64_arg(lsn, "lsn")?;
        let pending = handle.wal.truncate_after(partition, lsn)?;
        settle(env, pending, |()| ())
    })
}

/// Deletes the old segments wholly below `minLsn`; enqueued now (ordered with appends).
#[napi(ts_return_type = "Promise<PurgeResult>")]
pub fn purge_before<'e>(
    env: &'e Env,
    handle: &External<WalHandle>,
    partition: u32,
    min_lsn: f64,
) -> Result<Object<'e>> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        let min_lsn = u64_arg(min_lsn, "minLsn")?;
        let pending = handle.wal.purge_before(partition, min_lsn)?;
        settle(env, pending, |r: core::PurgeResult| PurgeResult {
            segments_deleted: r.segments_deleted as f64,
            bytes_freed: r.bytes_freed as f64,
            first_lsn: r.first_lsn as f64,
        })
    })
}

/// Completes pending appends, makes them durable and releases the lock.
#[napi(ts_return_type = "Promise<void>")]
pub fn close<'e>(env: &'e Env, handle: &External<WalHandle>) -> Result<Object<'e>> {
    guard(env, || settle(env, handle.wal.close_pending(), |()| ()))
}
