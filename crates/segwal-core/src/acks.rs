//! Acknowledgements on their way out: which partitions have events to take, and the
//! handshake that calls the notifier once until the caller takes them. Apart from the
//! scheduler because the round, the scheduler and `Wal::take_acks` all use it and it
//! touches neither the queue nor the files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::partition::{AckEvent, Partition};

#[derive(Debug, Clone)]
pub struct Ack {
    pub partition: u16,
    pub events: Vec<AckEvent>,
}

pub(crate) type Notifier = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Acks {
    dirty: Mutex<Vec<u16>>,
    /// Acks recorded that the notifier has not been told of (see `announce`).
    unannounced: AtomicBool,
    signalled: AtomicBool,
    notifier: Mutex<Option<Notifier>>,
}

impl Acks {
    pub fn new() -> Acks {
        Acks {
            dirty: Mutex::new(Vec::new()),
            unannounced: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            notifier: Mutex::new(None),
        }
    }

    pub fn set_notifier(&self, f: Notifier) {
        *self.notifier.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Records acknowledgement events and wakes the JS side (once until it takes them).
    pub fn publish(&self, id: u16) {
        self.record(id);
        self.announce();
    }

    /// Records acknowledgement events for the next `announce`. A writer announces once it
    /// holds no lock: the caller it wakes takes the partition's and the scheduler's locks
    /// at once, and (woken onto the writer's core) would otherwise preempt the writer
    /// while it holds them and then sleep on them (`perf trace`: 66-136 µs per round).
    pub fn record(&self, id: u16) {
        self.dirty.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        self.unannounced.store(true, Ordering::SeqCst);
    }

    /// Calls the notifier if acks were recorded since the last announcement and the JS
    /// side has taken all it was told of (once until it takes them).
    pub fn announce(&self) {
        if self.unannounced.swap(false, Ordering::SeqCst) && !self.signalled.swap(true, Ordering::SeqCst) {
            let f = self.notifier.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(f) = f {
                f();
            }
        }
    }

    /// Everything acknowledged or failed since the last call, per partition, in order.
    pub fn take(&self, parts: &[OnceLock<Arc<Partition>>]) -> Vec<Ack> {
        self.signalled.store(false, Ordering::SeqCst);
        let ids = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = parts[id as usize].get() {
                let mut st = p.lock();
                let events = std::mem::take(&mut st.events);
                if events.iter().any(|e| matches!(e, AckEvent::Failed { .. })) {
                    st.failure_unreported = false;
                }
                if !events.is_empty() {
                    out.push(Ack { partition: id, events });
                }
            }
        }
        out
    }
}
