//! One operation's result on its way from the engine thread that completes it to the
//! caller: the caller's end (`Pending`), the shared slot (`Done`), the writer's end
//! (`Reply`). A file of its own because the public API, the scheduler and the partition
//! queues all pass these around and none of them owns the handshake.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, ErrorCode, Result};

/// An operation queued behind earlier appends. The writer completes it; the caller
/// waits for it (`wait`), polls it (`poll`, as the simulator does) or hands it a
/// callback (`then`, as the Node binding does: no thread is parked on it).
#[must_use = "the operation runs anyway; its result is only seen through the Pending"]
pub struct Pending<T = ()>(PendingInner<T>);

enum PendingInner<T> {
    Ready(Option<Result<T>>),
    Queued(Arc<Done<T>>),
}

impl<T: Send + 'static> Pending<T> {
    pub(crate) fn ready(r: Result<T>) -> Pending<T> {
        Pending(PendingInner::Ready(Some(r)))
    }

    pub(crate) fn queued(done: Arc<Done<T>>) -> Pending<T> {
        Pending(PendingInner::Queued(done))
    }

    /// Blocks until the operation is complete.
    pub fn wait(self) -> Result<T> {
        match self.0 {
            PendingInner::Ready(r) => r.unwrap_or_else(|| Err(taken())),
            PendingInner::Queued(d) => d.wait(),
        }
    }

    /// The result once the operation is complete; `None` before (and after it was taken).
    pub fn poll(&mut self) -> Option<Result<T>> {
        match &mut self.0 {
            PendingInner::Ready(r) => r.take(),
            PendingInner::Queued(d) => d.poll(),
        }
    }

    /// Runs `f` with the result: at once if it is there, else on the engine thread that
    /// completes the operation (so `f` must be quick and must not block).
    pub fn then(self, f: impl FnOnce(Result<T>) + Send + 'static) {
        match self.0 {
            PendingInner::Ready(r) => f(r.unwrap_or_else(|| Err(taken()))),
            PendingInner::Queued(d) => d.then(Box::new(f)),
        }
    }
}

fn taken() -> Error {
    Error::new(ErrorCode::Io, "internal error: the result was already taken")
}

/// The writer's end of a `Done`: answered once; if it is dropped unanswered (a bug, a
/// panic, the writers gone), the caller gets an error instead of waiting forever.
pub struct Reply<T>(Arc<Done<T>>, std::sync::atomic::AtomicBool);

impl<T> Reply<T> {
    pub fn new(done: Arc<Done<T>>) -> Reply<T> {
        Reply(done, std::sync::atomic::AtomicBool::new(false))
    }

    pub fn set(&self, r: Result<T>) {
        if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.0.set(r);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.set(Err(Error::new(
            ErrorCode::Io,
            "internal error: the operation was abandoned",
        )));
    }
}

/// What runs when a `Done` completes (on the thread that completes it).
pub type OnDone<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// A one-shot result slot, answered by the writer (or by `parts` writers: the first
/// error wins, else the last answer). Its caller waits on it, polls it, or leaves a
/// callback that the answering thread runs: a control operation never needs a
/// thread parked on it.
pub struct Done<T> {
    slot: Mutex<Slot<T>>,
    cv: Condvar,
}

struct Slot<T> {
    result: Option<Result<T>>,
    then: Option<OnDone<T>>,
    /// Answers still expected.
    parts: usize,
    /// The answer so far, while `parts > 0`.
    partial: Option<Result<T>>,
}

impl<T> Done<T> {
    pub fn new() -> Arc<Done<T>> {
        Done::with_parts(1)
    }

    /// Completes after `parts` answers (0: already complete with `Ok` of the default).
    pub fn with_parts(parts: usize) -> Arc<Done<T>> {
        Arc::new(Done {
            slot: Mutex::new(Slot {
                result: None,
                then: None,
                parts,
                partial: None,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, r: Result<T>) {
        let mut s = self.lock();
        if s.parts == 0 {
            return;
        }
        s.parts -= 1;
        if !matches!(s.partial, Some(Err(_))) {
            s.partial = Some(r);
        }
        if s.parts > 0 {
            return;
        }
        let Some(r) = s.partial.take() else { return };
        match s.then.take() {
            Some(f) => {
                drop(s);
                f(r);
            }
            None => {
                s.result = Some(r);
                self.cv.notify_all();
            }
        }
    }

    /// Runs `f` with the result: now if it is there, else on the thread that completes it.
    pub fn then(&self, f: OnDone<T>) {
        let mut s = self.lock();
        match s.result.take() {
            Some(r) => {
                drop(s);
                f(r);
            }
            None => s.then = Some(f),
        }
    }

    /// The result, if the operation is complete (taken: a second call says `None`).
    pub fn poll(&self) -> Option<Result<T>> {
        self.lock().result.take()
    }

    pub fn wait(&self) -> Result<T> {
        let mut s = self.lock();
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}
