//! Appends: single records, the per-tick `appendMany` crossing, and batches.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{guard, invalid, ErrorDetail};
use crate::{partition_arg, WalHandle};

/// Appends one record (Buffer or Uint8Array); returns its LSN.
#[napi]
pub fn append(env: &Env, handle: &External<WalHandle>, partition: u32, payload: &[u8]) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        Ok(handle.wal.append(partition, payload)? as f64)
    })
}

/// Stages `count` records laid end to end in `data`, record `i` (`lengths[i]`
/// bytes) to partition `partitions[i]`, in order: the facade stages the
/// appends and writes of one tick and hands them over in one crossing.
/// `lsns[i]` is 0 for an append (its position is reported with its ack), or
/// the LSN the facade gave a `write()` (staged only if it gets exactly that
/// one). Overwrites each `lsns[i]` with the record's LSN, or `-(k + 1)` when
/// it failed with the `k`-th of the returned errors;
/// returns `null` when none failed.
#[napi]
pub fn append_many(
    env: &Env,
    handle: &External<WalHandle>,
    data: &[u8],
    lengths: &[u32],
    partitions: &[u16],
    count: u32,
    mut lsns: Float64ArraySlice,
) -> Result<Option<Vec<ErrorDetail>>> {
    // SAFETY: the facade's own array, only used during this synchronous call.
    let lsns = unsafe { lsns.as_mut() };
    guard(env, || {
        let count = count as usize;
        if count > lengths.len() || count > partitions.len() || count > lsns.len() {
            return Err(invalid("appendMany: count exceeds the arrays"));
        }
        let mut staged: Vec<u64> = lsns[..count].iter().map(|&x| x as u64).collect();
        let failed = handle
            .wal
            .stage_many(data, &lengths[..count], &partitions[..count], &mut staged);
        for (out, &lsn) in lsns.iter_mut().zip(&staged) {
            *out = lsn as f64;
        }
        if failed.is_empty() {
            return Ok(None);
        }
        let mut errors = Vec::with_capacity(failed.len());
        for (k, e) in failed {
            errors.push(ErrorDetail::from(&e));
            lsns[k] = -(errors.len() as f64);
        }
        Ok(Some(errors))
    })
}

/// `write()` of a record too large to stage in the facade: stages it at once;
/// returns its LSN (errors are thrown).
#[napi]
pub fn write(env: &Env, handle: &External<WalHandle>, partition: u32, payload: &[u8]) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        Ok(handle.wal.write(partition, payload, None)? as f64)
    })
}

/// `write()` of a large string (stored as UTF-8), as [`write`].
#[napi]
pub fn write_string(env: &Env, handle: &External<WalHandle>, partition: u32, payload: String) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        Ok(handle.wal.write(partition, payload.as_bytes(), None)? as f64)
    })
}

/// The LSN the next record of `partition` gets.
#[napi]
pub fn next_lsn(env: &Env, handle: &External<WalHandle>, partition: u32) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        Ok(handle.wal.next_lsn(partition)? as f64)
    })
}

/// The largest payload one record may have.
#[napi]
pub fn max_payload(handle: &External<WalHandle>) -> f64 {
    handle.wal.max_payload() as f64
}

/// Appends one record given as a string (stored as UTF-8); returns its LSN.
#[napi]
pub fn append_string(env: &Env, handle: &External<WalHandle>, partition: u32, payload: String) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        Ok(handle.wal.append(partition, payload.as_bytes())? as f64)
    })
}

/// Appends the Uint8Arrays of `parts` as one atomic batch; returns the first
/// LSN. The engine copies each part once, straight from JavaScript's memory
/// (joining them first cost a fresh buffer, its page faults and a copy).
#[napi(ts_args_type = "handle: ExternalObject<WalHandle>, partition: number, parts: Uint8Array[]")]
pub fn append_batch(env: &Env, handle: &External<WalHandle>, partition: u32, parts: Array) -> Result<f64> {
    guard(env, || {
        let partition = partition_arg(partition)?;
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(parts.len() as usize);
        for i in 0..parts.len() {
            let part: Option<&[u8]> = parts
                .get(i)
                .map_err(|_| invalid(format!("payloads[{i}]: not a Uint8Array")))?;
            payloads.push(part.ok_or_else(|| invalid(format!("payloads[{i}]: missing")))?);
        }
        let (first, _last) = handle.wal.append_batch(partition, &payloads)?;
        Ok(first as f64)
    })
}
