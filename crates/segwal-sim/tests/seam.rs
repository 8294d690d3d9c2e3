//! The engine's driving seam (issue 9 #12 and the simulator's needs): control
//! operations never block their caller, a driven WAL does nothing until its driver
//! runs, and a writer that panics leaves nothing waiting forever.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use segwal_core::{AckEvent, ErrorCode, Options, SyncMode, Wal};
use segwal_sim::SimFs;

fn opts() -> Options {
    Options {
        segment_size: 4096,
        sync: SyncMode::Always,
        preallocate: false,
        repair: false,
    }
}

/// Runs every ready writer round until nothing is ready.
fn drain(d: &segwal_core::Driver) {
    while let Some(&p) = d.ready().first() {
        d.step(p);
    }
}

#[test]
fn control_operations_return_at_once_and_complete_when_the_writer_runs() {
    let fs = SimFs::new();
    let (wal, driver) = Wal::open_driven("/w", opts(), Arc::new(fs.clone())).unwrap();
    for i in 0..40u64 {
        wal.append(1, &[i as u8; 300]).unwrap();
    }
    // Before the fix `purge_before` waited inside the call: with no writer thread
    // (a driven WAL) that was forever.
    let mut sync = wal.sync();
    let mut purge = wal.purge_before(1, 20).unwrap();
    let mut truncate = wal.truncate_after(1, 30).unwrap();
    assert!(sync.poll().is_none() && purge.poll().is_none() && truncate.poll().is_none());
    assert_eq!(wal.last_lsn(1).unwrap(), 0, "nothing is written before the driver runs");
    drain(&driver);
    sync.poll().unwrap().unwrap();
    assert!(purge.poll().unwrap().unwrap().segments_deleted > 0);
    truncate.poll().unwrap().unwrap();
    assert_eq!(wal.last_lsn(1).unwrap(), 30);
    let mut close = wal.close_pending();
    assert!(close.poll().is_none(), "close completes once its syncs have run");
    drain(&driver);
    close.poll().unwrap().unwrap();
    assert!(driver.stopped());
    assert_eq!(fs.open_handles(), 0, "close releases every handle");
    // After close: refused at once, never queued.
    assert_eq!(wal.purge_before(1, 1).err().map(|e| e.code), Some(ErrorCode::Closed));
}

#[test]
fn a_callback_runs_on_the_thread_that_completes_the_operation() {
    let fs = SimFs::new();
    let wal = Wal::open_with("/w", opts(), Arc::new(fs.clone())).unwrap();
    // A slow disk: the sync is still queued when the callback is handed over.
    fs.set_latency(Duration::from_millis(50));
    wal.append(3, b"x").unwrap();
    let (tx, rx) = mpsc::channel();
    let here = std::thread::current().id();
    wal.sync().then(move |r| {
        let _ = tx.send((r.is_ok(), std::thread::current().id()));
    });
    let (ok, on) = rx.recv_timeout(Duration::from_secs(20)).expect("the sync completes");
    assert!(ok);
    assert_ne!(on, here, "completed by a writer, not by a thread waiting for it");
    wal.close().unwrap();
}

/// Issue 9 #12: a writer that panicked left its partition marked scheduled, so the
/// close's sync queued there never ran and `close()` waited forever.
#[test]
fn close_completes_after_a_writer_panics() {
    let fs = SimFs::new();
    let wal = Wal::open_with(Path::new("/w"), opts(), Arc::new(fs.clone())).unwrap();
    wal.append(1, b"before").unwrap();
    wal.sync().wait().unwrap();
    fs.panic_at(fs.ops());
    let (tx, rx) = mpsc::channel();
    let wal = Arc::new(wal);
    let w = wal.clone();
    std::thread::spawn(move || {
        let _ = w.append(1, b"this round panics");
        // Close once the panic has happened (queued with the append, the close's sync
        // would be abandoned with it instead).
        while !w
            .take_acks()
            .iter()
            .any(|a| a.events.iter().any(|e| matches!(e, AckEvent::Failed { .. })))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = tx.send(w.close());
    });
    let closed = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("close() returned after a writer panic");
    // A poisoned WAL closes, releasing everything, and says what poisoned it.
    assert_eq!(closed.map_err(|e| e.code), Err(ErrorCode::Io));
}
