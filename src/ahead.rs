//! Read-ahead: each reader's batches, read on the thread pool before the caller asks.
//!
//! Reading ahead is what keeps a stream at the engine's rate. With one read per request
//! the pool thread sat idle for every round trip to the JS thread and back (160-190 µs
//! per 1 MiB batch, about 30% of its time), and the JS thread waited for a hop per batch.
//! A fill reads on for as long as the caller keeps taking, up to [`Fill::depth`] batches
//! ahead; the caller takes ready batches synchronously, with no hop at all, and one that
//! found none is called back (the read notifier) as soon as the next is ready, while the
//! fill reads on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use segwal_core as core;

use crate::errors::{Failure, Outcome};
use crate::lock;
use crate::pool::{Claim, Pool};

/// Spare batch memory. V8 frees batches in bursts (when their external memory adds
/// up to a collection), so the pool must hold one burst for reads to find a buffer: on
/// the bench's 4 KiB read workload 8 missed 40% of the time, 64 misses 5%. With no
/// reader open it keeps 4. Buffers grown past 2 MiB (a `maxBytes` above the default, a
/// huge record) go back to the allocator rather than pin that much each.
pub(crate) static DATA_POOL: Pool<u8> = Pool::new(64, 4, 2 << 20);
pub(crate) static INDEX_POOL: Pool<u32> = Pool::new(64, 4, 1 << 19);

/// Batches one fill reads at most before it gives its pool thread back. libuv's pool has
/// 4 threads by default, shared with `fs`, `dns` and `zlib`; a fill whose caller keeps up
/// would otherwise hold one until its stream catches up, and four such streams would
/// starve everything else queued there. The caller starts the next fill at its next take.
const FILL_BATCHES: usize = 8;

/// A reader of one partition, behind the handle `openReader` resolves to.
pub type ReaderHandle = Arc<ReaderSlot>;

/// The read notifier: a weak (unref'd) threadsafe function calling the facade with the
/// id of a reader that has a batch ready for a caller that waits. Weak, because whoever
/// waits has a fill in flight, which keeps the loop alive by itself.
pub(crate) type ReadNotifier = ThreadsafeFunction<u32, (), u32, Status, false, true>;

/// How a reader's fill tells its waiting caller that a batch is ready.
#[derive(Clone)]
pub(crate) struct Notify {
    /// The WAL's notifier; empty once it is closed.
    pub notifier: Arc<Mutex<Option<ReadNotifier>>>,
    pub id: u32,
}

impl Notify {
    fn send(&self) {
        if let Some(tsfn) = lock(&self.notifier).as_ref() {
            tsfn.call(self.id, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// The engine's reader and the batches it read ahead of the caller.
pub struct ReaderSlot {
    /// `None` once released. Held by a fill for as long as it reads.
    open: Mutex<Option<OpenReader>>,
    /// Never held while reading, so that taking a batch never waits for a read.
    ahead: Mutex<Ahead>,
    notify: Notify,
}

/// An open reader, and its claim on the batch pools (which keep memory only while
/// some reader is open).
struct OpenReader {
    reader: core::Reader,
    _pools: (Claim<u8>, Claim<u32>),
}

#[derive(Default)]
struct Ahead {
    items: VecDeque<Item>,
    /// Bytes asked of the engine for the next batch (0: none read yet).
    bytes: usize,
    /// The caller found nothing ready: the next item is announced through the notifier.
    waiting: bool,
}

/// What a fill leaves for the caller, in order: batches, then possibly why it stopped.
pub(crate) enum Item {
    Batch(Records),
    /// The reader has caught up with the acknowledged log; the next LSN it will read.
    CaughtUp(u64),
    /// Reading failed here (after the batches before it, which are good).
    Failed(Failure),
}

/// A batch read on the thread pool, before it becomes a `NativeBatch` object.
pub(crate) struct Records {
    pub data: Vec<u8>,
    pub len: usize,
    /// The payload starts (`index[i]`), then the payload lengths (`index[count + i]`).
    pub index: Vec<u32>,
    pub count: usize,
    pub first_lsn: u64,
    pub segment: u64,
    /// Record `i` starts at offset `offset_base + index[i]` of `segment`.
    pub offset_base: u64,
}

/// How a fill reads.
#[derive(Clone, Copy)]
pub(crate) struct Fill {
    /// Bytes of the first batch; each next one doubles, up to `max`.
    pub first: usize,
    pub max: usize,
    /// Batches kept ready for the caller.
    pub depth: usize,
}

impl Item {
    fn is_last(&self) -> bool {
        !matches!(self, Item::Batch(_))
    }

    fn recycle(self) {
        if let Item::Batch(r) = self {
            DATA_POOL.give(r.data);
            INDEX_POOL.give(r.index);
        }
    }
}

impl ReaderSlot {
    pub(crate) fn new(reader: core::Reader, notify: Notify) -> Self {
        let open = OpenReader {
            reader,
            _pools: (DATA_POOL.claim(), INDEX_POOL.claim()),
        };
        Self {
            open: Mutex::new(Some(open)),
            ahead: Mutex::new(Ahead::default()),
            notify,
        }
    }

    /// Runs `f` on the engine's reader (waiting for a running fill); `WAL_CLOSED` once released.
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&mut core::Reader) -> Outcome<T>) -> Outcome<T> {
        let mut open = lock(&self.open);
        let open = open
            .as_mut()
            .ok_or_else(|| Failure::native("WAL_CLOSED", "the stream was released"))?;
        f(&mut open.reader)
    }

    /// Reads ahead after going back to LSN `rewind` (0: none) until `fill.depth` items
    /// are ready, the reader has caught up or failed, or it read [`FILL_BATCHES`]; every
    /// failure is an item.
    pub(crate) fn fill(&self, fill: Fill, rewind: u64) {
        let filled = self.with_reader(|reader| {
            if rewind > 0 {
                reader.rewind(rewind);
            }
            for _ in 0..FILL_BATCHES {
                let Some(bytes) = self.next_size(fill) else { break };
                let item = match read_batch(reader, bytes) {
                    Ok(Some(records)) => Item::Batch(records),
                    Ok(None) => Item::CaughtUp(reader.next_lsn()),
                    Err(failure) => Item::Failed(failure),
                };
                self.push(item);
            }
            Ok(())
        });
        if let Err(failure) = filled {
            self.push(Item::Failed(failure));
        }
    }

    /// Bytes to read next, or `None` when enough is ready or the last item ends the reads.
    fn next_size(&self, fill: Fill) -> Option<usize> {
        let mut ahead = lock(&self.ahead);
        if ahead.items.len() >= fill.depth || ahead.items.back().is_some_and(Item::is_last) {
            return None;
        }
        let bytes = if ahead.bytes == 0 { fill.first } else { ahead.bytes };
        ahead.bytes = bytes.saturating_mul(2).min(fill.max);
        Some(bytes)
    }

    /// Queues the failure that stopped a fill.
    pub(crate) fn fail(&self, failure: Failure) {
        self.push(Item::Failed(failure));
    }

    /// Queues `item`, and tells a caller that found nothing ready.
    fn push(&self, item: Item) {
        let mut ahead = lock(&self.ahead);
        ahead.items.push_back(item);
        if std::mem::take(&mut ahead.waiting) {
            drop(ahead);
            self.notify.send();
        }
    }

    /// The next item read ahead; `None` (and the next one announced) when none is ready.
    pub(crate) fn take(&self) -> Option<Item> {
        let mut ahead = lock(&self.ahead);
        let item = ahead.items.pop_front();
        ahead.waiting = item.is_none();
        item
    }

    /// Drops what was read ahead; returns the LSN the first dropped item started at (0: none).
    pub(crate) fn discard(&self) -> u64 {
        let mut ahead = lock(&self.ahead);
        let first = match ahead.items.front() {
            Some(Item::Batch(r)) => r.first_lsn,
            Some(Item::CaughtUp(next)) => *next,
            _ => 0,
        };
        ahead.items.drain(..).for_each(Item::recycle);
        first
    }

    /// Closes the engine's reader (its file handles, its claim on the pools) and drops
    /// what it read ahead. Waits for a running fill.
    pub(crate) fn release(&self) {
        let released = lock(&self.open).take();
        drop(released);
        self.discard();
    }
}

/// The next batch of about `bytes` from `reader`; `None` once it has caught up.
fn read_batch(reader: &mut core::Reader, bytes: usize) -> Outcome<Option<Records>> {
    let batch = reader.next_batch_in(DATA_POOL.take(), bytes)?;
    Ok(batch.and_then(|batch| {
        let first = *batch.records.first()?;
        let count = batch.records.len();
        let mut index = INDEX_POOL.take();
        index.clear();
        index.reserve(count * 2);
        index.extend(batch.records.iter().map(|r| r.payload_start));
        index.extend(batch.records.iter().map(|r| r.payload_len));
        // A batch is read from one segment, and the engine reports each record's
        // offset in the file and its payload's start in `data`: their difference
        // is one number per batch (checked, not assumed).
        let offset_base = first.offset - u64::from(first.payload_start);
        debug_assert!(batch
            .records
            .iter()
            .all(|r| r.segment == first.segment && r.offset - u64::from(r.payload_start) == offset_base));
        Some(Records {
            data: batch.data,
            len: batch.len,
            index,
            count,
            first_lsn: first.lsn,
            segment: first.segment,
            offset_base,
        })
    }))
}
