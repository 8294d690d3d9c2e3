//! Operations queued behind the appends (sync, truncate, purge) and close.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::errors::{engine, guard};
use crate::{partition_arg, u64_arg, WalHandle};

/// Waits for an enqueued `sync()` or `truncate_after()` to complete.
pub struct WaitTask {
    pending: Option<core::Pending>,
}

impl Task for WaitTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(pending) => guard(|| engine(pending.wait())),
            None => Ok(()),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

pub struct CloseTask {
    wal: Arc<core::Wal>,
}

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let wal = &self.wal;
        guard(|| engine(wal.close()))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// Result of `purgeBefore`.
#[napi(object)]
pub struct PurgeResult {
    pub segments_deleted: f64,
    pub bytes_freed: f64,
    pub first_lsn: f64,
}

pub struct PurgeTask {
    wal: Arc<core::Wal>,
    partition: u16,
    min_lsn: u64,
}

impl Task for PurgeTask {
    type Output = core::PurgeResult;
    type JsValue = PurgeResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let (wal, partition, min_lsn) = (&self.wal, self.partition, self.min_lsn);
        guard(|| engine(wal.purge_before(partition, min_lsn)))
    }

    fn resolve(&mut self, _env: Env, r: Self::Output) -> Result<PurgeResult> {
        Ok(PurgeResult {
            segments_deleted: r.segments_deleted as f64,
            bytes_freed: r.bytes_freed as f64,
            first_lsn: r.first_lsn as f64,
        })
    }
}

/// Makes everything appended so far durable.
#[napi(ts_return_type = "Promise<void>")]
pub fn sync(handle: &External<WalHandle>) -> Result<AsyncTask<WaitTask>> {
    guard(|| {
        Ok(AsyncTask::new(WaitTask {
            pending: Some(handle.wal.sync()),
        }))
    })
}

/// Removes every record above `lsn`; enqueued now (ordered with appends),
/// awaited on the thread pool.
#[napi(ts_return_type = "Promise<void>")]
pub fn truncate_after(handle: &External<WalHandle>, partition: u32, lsn: f64) -> Result<AsyncTask<WaitTask>> {
    guard(|| {
        let partition = partition_arg(partition)?;
        let lsn = u64_arg(lsn, "lsn")?;
        let pending = engine(handle.wal.truncate_after(partition, lsn))?;
        Ok(AsyncTask::new(WaitTask { pending: Some(pending) }))
    })
}

/// Deletes the old segments wholly below `minLsn`.
#[napi(ts_return_type = "Promise<PurgeResult>")]
pub fn purge_before(handle: &External<WalHandle>, partition: u32, min_lsn: f64) -> Result<AsyncTask<PurgeTask>> {
    guard(|| {
        Ok(AsyncTask::new(PurgeTask {
            wal: Arc::clone(&handle.wal),
            partition: partition_arg(partition)?,
            min_lsn: u64_arg(min_lsn, "minLsn")?,
        }))
    })
}

/// Completes pending appends, makes them durable and releases the lock.
#[napi(ts_return_type = "Promise<void>")]
pub fn close(handle: &External<WalHandle>) -> AsyncTask<CloseTask> {
    AsyncTask::new(CloseTask {
        wal: Arc::clone(&handle.wal),
    })
}
