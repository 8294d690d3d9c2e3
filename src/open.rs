//! Opening a WAL: options, the open task and the handle every other call takes.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::acks::AckState;
use crate::errors::{catch, guard, invalid, Outcome};
use crate::{u64_arg, WalHandle};

/// The longest sync interval in milliseconds (setTimeout's limit, about 24.8 days); a
/// larger one used to panic converting to a `Duration`.
const MAX_INTERVAL_MS: f64 = 2_147_483_647.0;

/// `sync` option: 0 = always, 1 = none, 2 = every `interval_ms`.
fn sync_mode(mode: u32, interval_ms: f64) -> Outcome<core::SyncMode> {
    match mode {
        0 => Ok(core::SyncMode::Always),
        1 => Ok(core::SyncMode::None),
        2 if interval_ms > 0.0 && interval_ms <= MAX_INTERVAL_MS => Duration::try_from_secs_f64(interval_ms / 1000.0)
            .map(core::SyncMode::Interval)
            .map_err(|_| invalid("sync.intervalMs must be a positive number of milliseconds up to 2147483647")),
        2 => Err(invalid(
            "sync.intervalMs must be a positive number of milliseconds up to 2147483647",
        )),
        _ => Err(invalid("sync must be 'always', 'none' or { intervalMs }")),
    }
}

pub struct OpenTask {
    dir: String,
    options: Option<core::Options>,
}

impl Task for OpenTask {
    type Output = Outcome<core::Wal>;
    type JsValue = ExternalRef<WalHandle>;

    fn compute(&mut self) -> Result<Self::Output> {
        let options = self.options.take().unwrap_or_default();
        let dir = self.dir.clone();
        Ok(catch(|| Ok(core::Wal::open(&dir, options)?)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        let output = output.map_err(|f| f.into_js(&env))?;
        ExternalRef::new(
            &env,
            WalHandle {
                wal: Arc::new(output),
                notifier: Arc::new(Mutex::new(None)),
                reads: Arc::new(Mutex::new(None)),
                referenced: AtomicBool::new(false),
                acks: Mutex::new(AckState::default()),
            },
        )
    }
}

/// Opens (creating if needed) the WAL in `dir` on the thread pool; resolves
/// to the handle every other function takes.
#[napi(ts_return_type = "Promise<ExternalObject<WalHandle>>")]
pub fn open(
    env: &Env,
    dir: String,
    segment_size: f64,
    sync: u32,
    interval_ms: f64,
    preallocate: bool,
    repair: bool,
) -> Result<AsyncTask<OpenTask>> {
    guard(env, || {
        let options = core::Options {
            segment_size: u64_arg(segment_size, "segmentSize")?,
            sync: sync_mode(sync, interval_ms)?,
            preallocate,
            repair,
        };
        Ok(AsyncTask::new(OpenTask {
            dir,
            options: Some(options),
        }))
    })
}
