#![allow(dead_code)]
//! Helpers shared by the engine's integration tests.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use segwal_core::{AckEvent, Options, Start, SyncMode, Wal};

/// Opens a WAL whose acknowledgements can be awaited synchronously.
pub struct TestWal {
    pub wal: Wal,
    signal: Arc<(Mutex<bool>, Condvar)>,
}

pub fn opts(segment_size: u64) -> Options {
    Options {
        segment_size,
        sync: SyncMode::Always,
        preallocate: true,
        repair: false,
    }
}

impl TestWal {
    pub fn open(dir: &Path, o: Options) -> segwal_core::Result<TestWal> {
        let wal = Wal::open(dir, o)?;
        Ok(TestWal::wrap(wal))
    }

    pub fn wrap(wal: Wal) -> TestWal {
        let signal = Arc::new((Mutex::new(false), Condvar::new()));
        let s = signal.clone();
        wal.set_notifier(Arc::new(move || {
            *s.0.lock().unwrap() = true;
            s.1.notify_all();
        }));
        TestWal { wal, signal }
    }

    /// Waits until `lsn` of `partition` is acknowledged; returns the failure if it failed.
    pub fn wait_acked(&self, partition: u16, lsn: u64) -> Result<(), segwal_core::Error> {
        loop {
            for ack in self.wal.take_acks() {
                for e in ack.events {
                    if let AckEvent::Failed { first_lsn, error, .. } = e {
                        if ack.partition == partition && first_lsn <= lsn {
                            return Err(error);
                        }
                    }
                }
            }
            if self.wal.last_lsn(partition).unwrap() >= lsn {
                return Ok(());
            }
            let mut g = self.signal.0.lock().unwrap();
            if !*g {
                g = self
                    .signal
                    .1
                    .wait_timeout(g, std::time::Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
            *g = false;
        }
    }

    pub fn append(&self, partition: u16, payload: &[u8]) -> u64 {
        let lsn = self.wal.append(partition, payload).unwrap();
        self.wait_acked(partition, lsn).unwrap();
        lsn
    }

    pub fn read_all(&self, partition: u16, from: u64) -> segwal_core::Result<Vec<(u64, Vec<u8>)>> {
        read_all(&self.wal, partition, Start::Lsn(from))
    }
}

pub fn read_all(wal: &Wal, partition: u16, start: Start) -> segwal_core::Result<Vec<(u64, Vec<u8>)>> {
    let mut r = wal.reader(partition, start)?;
    let mut out = Vec::new();
    while let Some(b) = r.next_batch(64 * 1024)? {
        for rec in b.records {
            let s = rec.payload_start as usize;
            out.push((rec.lsn, b.data[s..s + rec.payload_len as usize].to_vec()));
        }
    }
    Ok(out)
}

pub fn payload(partition: u16, lsn: u64, len: usize) -> Vec<u8> {
    let mut v = format!("p{partition}-l{lsn}-").into_bytes();
    while v.len() < len {
        v.push((lsn as u8).wrapping_mul(31).wrapping_add(v.len() as u8));
    }
    v.truncate(len.max(1));
    v
}

/// Removes the clean-shutdown mark a `close()` leaves, so that the next open judges the
/// directory as a crash left it (tests that cut or damage files after closing).
pub fn as_if_killed(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("segwal.clean"));
}
