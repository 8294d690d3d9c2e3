#![allow(dead_code)]
//! Drives a WAL on a `SimFs` while keeping a model of every write, truncate and purge it
//! issued and what became of each; after a power loss, `check_recovered` compares what a
//! reopened WAL holds with what the model allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use segwal_core::{AckEvent, ErrorCode, Options, Start, SyncMode, Wal};
use segwal_sim::SimFs;

pub const DIR: &str = "/wal";

pub fn dir() -> &'static Path {
    Path::new(DIR)
}

/// Exhaustive sweeps in release builds (or with SEGWAL_THOROUGH=1); debug builds, where
/// every open costs ~8 ms, sample some of them.
pub fn thorough() -> bool {
    !cfg!(debug_assertions) || std::env::var_os("SEGWAL_THOROUGH").is_some()
}

pub fn sim_opts(segment_size: u64, preallocate: bool) -> Options {
    Options {
        segment_size,
        sync: SyncMode::Always,
        preallocate,
        repair: false,
    }
}

pub fn open(fs: &SimFs, o: Options) -> segwal_core::Result<Wal> {
    Wal::open_with(dir(), o, Arc::new(fs.clone()))
}

/// Aborts the whole test binary if a test stops making progress (a lost acknowledgement,
/// a deadlock), after printing where it was and the last calls of the file systems it
/// was given.
#[derive(Clone)]
pub struct Watchdog(Arc<WatchState>);

pub struct WatchState {
    done: AtomicBool,
    stage: Mutex<(Instant, String, Vec<SimFs>)>,
}

impl Watchdog {
    /// `secs` without a `stage` call (or in total, if never called) is a hang.
    pub fn new(secs: u64, what: &str) -> Watchdog {
        let st = Arc::new(WatchState {
            done: AtomicBool::new(false),
            stage: Mutex::new((Instant::now(), what.to_string(), Vec::new())),
        });
        let s = st.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            if s.done.load(Ordering::SeqCst) {
                return;
            }
            let g = s.stage.lock().unwrap_or_else(|p| p.into_inner());
            if g.0.elapsed() > Duration::from_secs(secs) {
                eprintln!("WATCHDOG: no progress for {secs}s at: {}", g.1);
                for fs in &g.2 {
                    eprintln!("  calls:\n    {}", tail(&fs.op_log(), 20).replace("\n  ", "\n    "));
                }
                if std::env::var_os("WATCHDOG_GDB").is_some() {
                    let _ = std::process::Command::new("gdb")
                        .args([
                            "-p",
                            &std::process::id().to_string(),
                            "-batch",
                            "-ex",
                            "thread apply all bt 25",
                        ])
                        .status();
                }
                std::process::abort();
            }
        });
        Watchdog(st)
    }

    /// Progress: now at `what`, with these file systems in play.
    pub fn stage(&self, what: String, fss: &[&SimFs]) {
        let mut g = self.0.stage.lock().unwrap_or_else(|p| p.into_inner());
        *g = (Instant::now(), what, fss.iter().map(|f| (*f).clone()).collect());
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) <= 2 {
            self.0.done.store(true, Ordering::SeqCst);
        }
    }
}

/// Small deterministic generator for sizes.
pub struct Rand(pub u64);

impl Rand {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    Pending,
    Acked,
    Failed,
}

#[derive(Debug, Clone)]
pub struct W {
    pub p: u16,
    pub lsn: u64,
    pub bytes: Vec<u8>,
    pub seq: u64,
    pub gen: u64,
    pub batch: Option<usize>,
    pub st: St,
    /// A `sync()` that returned Ok was called after it was acknowledged.
    pub synced: bool,
}

#[derive(Debug, Clone)]
pub struct Trunc {
    pub p: u16,
    pub lsn: u64,
    pub seq: u64,
    pub st: St,
}

#[derive(Debug, Clone)]
pub struct Purge {
    pub p: u16,
    pub min: u64,
    pub seq: u64,
    pub ok: bool,
}

#[derive(Default, Debug)]
pub struct Model {
    seq: u64,
    next_id: u64,
    pub writes: Vec<W>,
    /// Write indices of each batch.
    pub batches: Vec<Vec<usize>>,
    pub truncs: Vec<Trunc>,
    pub purges: Vec<Purge>,
    gens: BTreeMap<u16, u64>,
    pub partitions: BTreeSet<u16>,
    /// `sync: None`: an acknowledgement is not durability, only a later `sync()` is.
    pub ack_not_durable: bool,
    /// Errors the workload saw (appends refused, failures reported), for diagnosis.
    pub errors: Vec<String>,
}

/// A payload unique to this write: its id, its partition, then bytes derived from both.
pub fn payload(id: u64, p: u16, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&p.to_le_bytes());
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(p);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v.truncate(len);
    v
}

pub struct Driver {
    pub wal: Wal,
    signal: Arc<(Mutex<bool>, Condvar)>,
    pub m: Model,
}

impl Driver {
    pub fn new(wal: Wal) -> Driver {
        Driver::with_model(wal, Model::default())
    }

    pub fn with_model(wal: Wal, m: Model) -> Driver {
        let signal = Arc::new((Mutex::new(false), Condvar::new()));
        let s = signal.clone();
        wal.set_notifier(Arc::new(move || {
            *s.0.lock().unwrap() = true;
            s.1.notify_all();
        }));
        Driver { wal, signal, m }
    }

    fn seq(&mut self) -> u64 {
        self.m.seq += 1;
        self.m.seq
    }

    fn gen(&self, p: u16) -> u64 {
        self.m.gens.get(&p).copied().unwrap_or(0)
    }

    /// Issues one append; `None` if the WAL refused it.
    pub fn append(&mut self, p: u16, len: usize) -> Option<u64> {
        self.m.next_id += 1;
        let bytes = payload(self.m.next_id, p, len);
        match self.wal.append(p, &bytes) {
            Ok(lsn) => {
                let seq = self.seq();
                let gen = self.gen(p);
                self.m.partitions.insert(p);
                self.m.writes.push(W {
                    p,
                    lsn,
                    bytes,
                    seq,
                    gen,
                    batch: None,
                    st: St::Pending,
                    synced: false,
                });
                Some(lsn)
            }
            Err(e) => {
                self.m.errors.push(format!("append p{p}: {e}"));
                self.take();
                None
            }
        }
    }

    pub fn batch(&mut self, p: u16, lens: &[usize]) -> Option<(u64, u64)> {
        let payloads: Vec<Vec<u8>> = lens
            .iter()
            .map(|&l| {
                self.m.next_id += 1;
                payload(self.m.next_id, p, l)
            })
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|x| x.as_slice()).collect();
        match self.wal.append_batch(p, &refs) {
            Ok((first, last)) => {
                assert_eq!(last - first + 1, lens.len() as u64);
                let seq = self.seq();
                let gen = self.gen(p);
                self.m.partitions.insert(p);
                let b = self.m.batches.len();
                let mut idx = Vec::new();
                for (i, bytes) in payloads.into_iter().enumerate() {
                    idx.push(self.m.writes.len());
                    self.m.writes.push(W {
                        p,
                        lsn: first + i as u64,
                        bytes,
                        seq,
                        gen,
                        batch: Some(b),
                        st: St::Pending,
                        synced: false,
                    });
                }
                self.m.batches.push(idx);
                Some((first, last))
            }
            Err(e) => {
                self.m.errors.push(format!("batch p{p}: {e}"));
                self.take();
                None
            }
        }
    }

    /// Takes acknowledgements and applies them to the model.
    pub fn take(&mut self) {
        for ack in self.wal.take_acks() {
            for e in ack.events {
                match e {
                    // Events settle the partition's pending records in staging order.
                    AckEvent::Acked { count, .. } => self.settle(ack.partition, count, St::Acked),
                    AckEvent::Failed { count, error, .. } => {
                        self.m.errors.push(format!("failed p{}: {error}", ack.partition));
                        self.settle(ack.partition, count, St::Failed);
                    }
                }
            }
        }
    }

    /// Marks the partition's next `count` pending writes `st`.
    fn settle(&mut self, p: u16, count: u64, st: St) {
        for w in self
            .m
            .writes
            .iter_mut()
            .filter(|w| w.p == p && w.st == St::Pending)
            .take(count as usize)
        {
            w.st = st;
        }
    }

    /// Clears the "something was published" flag.
    pub fn reset_signal(&self) {
        *self.signal.0.lock().unwrap() = false;
    }

    /// Waits up to `ms` for something to be published (without taking it).
    pub fn wait_signal(&self, ms: u64) -> bool {
        let mut g = self.signal.0.lock().unwrap();
        if !*g {
            g = self.signal.1.wait_timeout(g, Duration::from_millis(ms)).unwrap().0;
        }
        *g
    }

    pub fn pending(&self) -> usize {
        self.m.writes.iter().filter(|w| w.st == St::Pending).count()
    }

    /// Waits until every issued write is acknowledged or failed.
    pub fn wait(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.take();
            if self.pending() == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "acknowledgements never came for {} writes: {:?}\nlast_lsn {:?}, errors {:?}",
                self.pending(),
                self.m
                    .writes
                    .iter()
                    .filter(|w| w.st == St::Pending)
                    .map(|w| (w.p, w.lsn, w.gen))
                    .collect::<Vec<_>>(),
                self.m
                    .partitions
                    .iter()
                    .map(|&p| (p, self.wal.last_lsn(p)))
                    .collect::<Vec<_>>(),
                self.m.errors
            );
            let mut g = self.signal.0.lock().unwrap();
            if !*g {
                g = self.signal.1.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
            }
            *g = false;
        }
    }

    /// `truncate_after`, waited for; returns whether it succeeded.
    pub fn truncate(&mut self, p: u16, lsn: u64) -> bool {
        self.wait();
        let pending = match self.wal.truncate_after(p, lsn) {
            Ok(x) => x,
            Err(e) => {
                self.m.errors.push(format!("truncate p{p} {lsn}: {e}"));
                self.take();
                return false;
            }
        };
        let seq = self.seq();
        *self.m.gens.entry(p).or_insert(0) += 1;
        let i = self.m.truncs.len();
        self.m.truncs.push(Trunc {
            p,
            lsn,
            seq,
            st: St::Pending,
        });
        let r = pending.wait();
        self.m.truncs[i].st = if r.is_ok() { St::Acked } else { St::Failed };
        if let Err(e) = &r {
            self.m.errors.push(format!("truncate p{p} {lsn}: {e}"));
        }
        self.wait();
        r.is_ok()
    }

    /// Queues a `truncate_after` without waiting (work appended next queues behind it);
    /// `truncate_finish` waits for it.
    pub fn truncate_start(&mut self, p: u16, lsn: u64) -> Option<(usize, segwal_core::Pending)> {
        let pending = match self.wal.truncate_after(p, lsn) {
            Ok(x) => x,
            Err(e) => {
                self.m.errors.push(format!("truncate p{p} {lsn}: {e}"));
                self.take();
                return None;
            }
        };
        let seq = self.seq();
        *self.m.gens.entry(p).or_insert(0) += 1;
        self.m.truncs.push(Trunc {
            p,
            lsn,
            seq,
            st: St::Pending,
        });
        Some((self.m.truncs.len() - 1, pending))
    }

    pub fn truncate_finish(&mut self, (i, pending): (usize, segwal_core::Pending)) -> segwal_core::Result<()> {
        let r = pending.wait();
        self.m.truncs[i].st = if r.is_ok() { St::Acked } else { St::Failed };
        if let Err(e) = &r {
            self.m.errors.push(format!("truncate: {e}"));
        }
        self.wait();
        r
    }

    pub fn status(&self, p: u16, lsn: u64) -> Option<St> {
        self.m
            .writes
            .iter()
            .rev()
            .find(|w| w.p == p && w.lsn == lsn)
            .map(|w| w.st)
    }

    pub fn purge(&mut self, p: u16, min: u64) -> bool {
        self.wait();
        let seq = self.seq();
        let r = self.wal.purge_before(p, min).and_then(|t| t.wait());
        if let Err(e) = &r {
            self.m.errors.push(format!("purge p{p} {min}: {e}"));
        }
        self.m.purges.push(Purge {
            p,
            min,
            seq,
            ok: r.is_ok(),
        });
        self.wait();
        r.is_ok()
    }

    pub fn sync(&mut self) -> bool {
        self.wait();
        let r = self.wal.sync().wait();
        if r.is_ok() {
            for w in self.m.writes.iter_mut().filter(|w| w.st == St::Acked) {
                w.synced = true;
            }
        }
        self.wait();
        r.is_ok()
    }

    /// What a reader of the live WAL sees must be the model's acknowledged state exactly
    /// (valid while the WAL is not poisoned).
    pub fn check_live(&mut self, ctx: &str) {
        self.wait();
        for &p in &self.m.partitions.clone() {
            let trunc_failed = self.m.truncs.iter().any(|t| t.p == p && t.st == St::Failed);
            let got = match read_all(&self.wal, p) {
                Ok(g) => g,
                Err(e) if e.code == ErrorCode::Io => continue, // a dead or poisoned process
                // A truncate that failed halfway leaves the (poisoned) WAL's table naming
                // a file that is gone, or records its cut already removed.
                Err(e) if matches!(e.code, ErrorCode::LsnPurged | ErrorCode::Corruption) && trunc_failed => continue,
                Err(e) => panic!("{ctx}: live read of p{p} failed: {e}"),
            };
            check_partition(&self.m, p, &got, &self.wal, true).unwrap_or_else(|e| panic!("{ctx}: live p{p}: {e}"));
        }
    }
}

pub fn read_all(wal: &Wal, p: u16) -> segwal_core::Result<Vec<(u64, Vec<u8>)>> {
    let mut r = wal.reader(p, Start::Lsn(0))?;
    let mut out = Vec::new();
    while let Some(b) = r.next_batch(4096)? {
        for rec in b.records {
            let s = rec.payload_start as usize;
            out.push((rec.lsn, b.data[s..s + rec.payload_len as usize].to_vec()));
        }
    }
    Ok(out)
}

/// Checks one partition's records `got` (read from `wal`) against the model.
/// `live`: the WAL that did the writes, no power loss in between: then every
/// acknowledged record must be there and nothing unacknowledged.
pub fn check_partition(m: &Model, p: u16, got: &[(u64, Vec<u8>)], wal: &Wal, live: bool) -> Result<(), String> {
    let ws: Vec<(usize, &W)> = m.writes.iter().enumerate().filter(|(_, w)| w.p == p).collect();
    let truncs: Vec<&Trunc> = m.truncs.iter().filter(|t| t.p == p).collect();
    let purge_floor = m.purges.iter().filter(|x| x.p == p).map(|x| x.min).max().unwrap_or(0);
    // A purge only removes what was written before it.
    let purged = |w: &W| m.purges.iter().any(|x| x.p == p && x.seq > w.seq && w.lsn < x.min);
    let removed_by = |w: &W, acked_only: bool| {
        truncs
            .iter()
            .any(|t| t.seq > w.seq && t.lsn < w.lsn && (!acked_only || t.st == St::Acked))
    };
    let later_same_lsn = |w: &W, acked_only: bool| {
        ws.iter()
            .any(|(_, w2)| w2.lsn == w.lsn && w2.seq > w.seq && (!acked_only || w2.st == St::Acked))
    };
    // Acknowledged and durable (with sync None: synced since), live: acknowledged.
    let durable = |w: &W| w.st == St::Acked && (live || !m.ack_not_durable || w.synced);
    // Dense LSNs.
    for pair in got.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            return Err(format!("LSN gap: {} then {}", pair[0].0, pair[1].0));
        }
    }
    if purge_floor == 0 && !got.is_empty() && got[0].0 != 1 {
        return Err(format!("log starts at {} with nothing ever purged", got[0].0));
    }
    // Every record present was written, is still allowed, and is the one write of it.
    let mut present: BTreeSet<usize> = BTreeSet::new();
    for (lsn, bytes) in got {
        let Some(&(i, w)) = ws.iter().rev().find(|(_, w)| w.lsn == *lsn && &w.bytes == bytes) else {
            return Err(format!(
                "record {lsn} ({} bytes) was never written at that LSN{}",
                bytes.len(),
                if ws.iter().any(|(_, w)| &w.bytes == bytes) {
                    " (its payload belongs to another LSN)"
                } else {
                    ""
                }
            ));
        };
        if removed_by(w, true) {
            return Err(format!("record {lsn} came back after an acknowledged truncate"));
        }
        if ws
            .iter()
            .any(|(_, w2)| w2.lsn == w.lsn && w2.seq > w.seq && durable(w2))
        {
            return Err(format!("record {lsn} is an old write replaced by an acknowledged one"));
        }
        if w.st == St::Failed && later_same_lsn(w, false) {
            return Err(format!("record {lsn} is a failed write whose LSN was reused"));
        }
        if live && w.st != St::Acked {
            return Err(format!(
                "record {lsn} is readable but was never acknowledged ({:?})",
                w.st
            ));
        }
        present.insert(i);
    }
    // Every durable record that nothing may have removed is there.
    for (i, w) in &ws {
        // A truncate that failed may still have removed what it was asked to.
        if !durable(w) || removed_by(w, false) || later_same_lsn(w, true) {
            continue;
        }
        if purged(w) {
            continue;
        }
        if !present.contains(i) {
            return Err(format!(
                "acknowledged record {} is missing (have {:?})",
                w.lsn,
                got.first().map(|f| f.0)..=got.last().map(|l| l.0)
            ));
        }
    }
    // Batches are whole, unless a later truncate cut inside one.
    for idx in &m.batches {
        let b: Vec<(usize, &W)> = idx.iter().map(|&i| (i, &m.writes[i])).collect();
        if b[0].1.p != p {
            continue;
        }
        let n = b.iter().filter(|(i, _)| present.contains(i)).count();
        if n == 0 || n == b.len() {
            continue;
        }
        let seq = b[0].1.seq;
        let ok = truncs
            .iter()
            .any(|t| t.seq > seq && b.iter().all(|(i, w)| present.contains(i) == (w.lsn <= t.lsn)));
        if !ok {
            let lsns: Vec<(u64, bool)> = b.iter().map(|(i, w)| (w.lsn, present.contains(i))).collect();
            return Err(format!("batch partly present: {lsns:?}"));
        }
    }
    // The WAL's own view agrees, and never restarts LSNs.
    let last = wal.last_lsn(p).map_err(|e| e.to_string())?;
    let first = wal.first_lsn(p).map_err(|e| e.to_string())?;
    if let (Some(f), Some(l)) = (got.first(), got.last()) {
        if (first, last) != (f.0, l.0) {
            return Err(format!("first/last LSN {first}/{last}, records {}..={}", f.0, l.0));
        }
    } else if first != 0 {
        return Err(format!("first_lsn {first} for an empty partition"));
    }
    let floor = ws
        .iter()
        .filter(|(_, w)| durable(w) && !removed_by(w, false))
        .map(|(_, w)| w.lsn)
        .max()
        .unwrap_or(0);
    if last < floor {
        return Err(format!(
            "last LSN {last} is below acknowledged LSN {floor}: LSNs would repeat"
        ));
    }
    let max_issued = ws.iter().map(|(_, w)| w.lsn).max().unwrap_or(0);
    if last > max_issued {
        return Err(format!("last LSN {last} was never issued (max {max_issued})"));
    }
    Ok(())
}

/// After a power loss: opens the durable state, checks every partition against the model,
/// appends to each and reads it back, closes, and checks a clean reopen reports nothing.
pub fn check_recovered(fs: &SimFs, o: &Options, m: &Model, ctx: &dyn Fn() -> String) {
    let (wal, tails) = check_open(fs, o, m, ctx);
    continue_after(fs, o, wal, tails, ctx);
}

/// Opens the durable state and checks every partition against the model; returns the
/// WAL and each partition's last LSN.
pub fn check_open(fs: &SimFs, o: &Options, m: &Model, ctx: &dyn Fn() -> String) -> (Wal, BTreeMap<u16, u64>) {
    let wal = open(fs, o.clone()).unwrap_or_else(|e| panic!("{}\nreopen failed: {e}", ctx()));
    let mut parts: BTreeSet<u16> = m.partitions.clone();
    for p in wal.partitions().unwrap() {
        assert!(
            parts.contains(&p),
            "{}\npartition {p} appeared that was never written",
            ctx()
        );
        parts.insert(p);
    }
    let mut tails = BTreeMap::new();
    for &p in &parts {
        let got = read_all(&wal, p).unwrap_or_else(|e| panic!("{}\nreading p{p} after reopen: {e}", ctx()));
        if let Err(e) = check_partition(m, p, &got, &wal, false) {
            panic!(
                "{}\np{p}: {e}\nrecovered {:?}\nrecords {:?}",
                ctx(),
                wal.recovery(),
                got.iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
        tails.insert(p, wal.last_lsn(p).unwrap());
    }
    (wal, tails)
}

/// Appends to each partition (next LSN right after), reads back, closes, and checks a
/// clean reopen needs no recovery.
pub fn continue_after(fs: &SimFs, o: &Options, wal: Wal, tails: BTreeMap<u16, u64>, ctx: &dyn Fn() -> String) {
    // Appends continue right after.
    let mut d = Driver::new(wal);
    for (&p, &last) in &tails {
        let lsn = d
            .append(p, 33)
            .unwrap_or_else(|| panic!("{}\nappend after reopen refused", ctx()));
        assert_eq!(lsn, last + 1, "{}\np{p}: next LSN after reopen", ctx());
    }
    d.wait();
    for w in &d.m.writes {
        assert_eq!(
            w.st,
            St::Acked,
            "{}\nappend after reopen failed: {:?}",
            ctx(),
            d.m.errors
        );
    }
    for &p in tails.keys() {
        let got = read_all(&d.wal, p).unwrap();
        assert_eq!(
            got.last().map(|r| &r.1),
            d.m.writes.iter().find(|w| w.p == p).map(|w| &w.bytes),
            "{}",
            ctx()
        );
    }
    d.wal
        .close()
        .unwrap_or_else(|e| panic!("{}\nclose after reopen: {e}", ctx()));
    drop(d);
    let wal = open(fs, o.clone()).unwrap_or_else(|e| panic!("{}\nsecond reopen failed: {e}", ctx()));
    assert!(
        wal.recovery().is_empty(),
        "{}\na clean shutdown after recovery still needed recovery: {:?}",
        ctx(),
        wal.recovery()
    );
    for (&p, &last) in &tails {
        assert_eq!(wal.last_lsn(p).unwrap(), last + 1, "{}", ctx());
    }
}

pub fn tail(log: &[String], n: usize) -> String {
    log[log.len().saturating_sub(n)..].join("\n  ")
}

pub type Workload = fn(&mut Driver, u64);

/// The main workload; every step tolerates failure (after a crash, everything fails).
/// The caller closes the WAL.
pub fn workload(d: &mut Driver, seed: u64) {
    let mut r = Rand(seed | 1);
    for round in 0..5 {
        d.append(0, r.range(160, 260));
        d.append(0, r.range(160, 260));
        let lens: Vec<usize> = (0..4).map(|_| r.range(60, 120)).collect();
        d.batch(1, &lens);
        d.append(2, r.range(150, 300));
        if round == 2 {
            d.batch(2, &[0, 20]);
        }
        d.wait();
        if round == 3 {
            d.sync();
        }
    }
    // Purge below the third segment of partition 0.
    if let Ok(segs) = d.wal.segments(0) {
        if segs.len() >= 3 {
            d.purge(0, segs[2].first_lsn);
        }
    }
    // Truncate partition 1 inside the first batch of its second segment: later segments
    // go, and the kept part of the batch is rewritten as complete (the redo file path).
    if let Ok(segs) = d.wal.segments(1) {
        if segs.len() >= 2 {
            d.truncate(1, segs[1].first_lsn + 1);
        }
    }
    for _ in 0..3 {
        let lens: Vec<usize> = (0..3).map(|_| r.range(60, 200)).collect();
        d.batch(1, &lens);
        d.append(1, r.range(10, 50));
        d.wait();
    }
    d.sync();
    // Truncate partition 0 at a record boundary.
    if let Ok(last) = d.wal.last_lsn(0) {
        if last > 2 {
            d.truncate(0, last - 2);
        }
    }
    d.append(0, 64);
    d.wait();
    // Empty partition 2 and start it again.
    d.truncate(2, 0);
    d.append(2, 80);
    d.batch(2, &[30, 40, 50]);
    d.wait();
    d.sync();
}

/// A second workload: truncate_after(0) on a partition whose start was purged, and
/// truncates racing appends queued behind them.
pub fn workload_purged_then_emptied(d: &mut Driver, seed: u64) {
    let mut r = Rand(seed | 1);
    for _ in 0..12 {
        d.append(5, r.range(150, 250));
        d.wait();
    }
    if let Ok(segs) = d.wal.segments(5) {
        if segs.len() >= 2 {
            d.purge(5, segs[segs.len() - 1].first_lsn);
        }
    }
    d.truncate(5, 0);
    d.append(5, 40);
    d.append(5, 41);
    d.wait();
}

/// Rounds of several pages each (batches and appends of ~500 bytes), for writeback
/// reordering: a round's pages may reach the disk in any order.
pub fn workload_pages(d: &mut Driver, seed: u64) {
    let mut r = Rand(seed | 1);
    for round in 0..12 {
        let lens: Vec<usize> = (0..8).map(|_| r.range(300, 700)).collect();
        d.batch(0, &lens);
        for _ in 0..6 {
            d.append(0, r.range(200, 900));
        }
        if round % 4 == 3 {
            d.append(1, 5000);
        }
        d.wait();
    }
}
