//! `cargo bench -p segwal-core --bench wal_throughput [-- --quick] [-- --json]`
//!
//! The seed crate's `wal_throughput` workload (50,000 records of 1 KiB) run, in the same
//! process and interleaved (A B C A B C ...), on segwal's engine and on two crates.io peers,
//! `pwal` 0.2 (the origin of segwal's feature list) and `writeahead` 0.4. Medians of the runs.
//!
//! Rows:
//! - `write 64MiB segs`: one producer appends every record as fast as the API lets it
//!   (segwal `SyncMode::None` + one final `sync()`, pwal `append().await` + one final
//!   `io_sync()`, writeahead has no unsynced mode: its writes are pipelined, 1024 in flight,
//!   each resolved after its group-commit fdatasync); the row ends with everything durable.
//! - `write 256KiB segs`: the same with 256 KiB segments, so rotation is frequent
//!   (~200 rotations).
//! - `read-back`: every record of the 64 MiB-segment log, in order (payload bytes checked).
//! - `durable 64 writers`: 64 writers each awaiting the durability of its own record before
//!   the next (segwal `SyncMode::Always`, pwal `append` + `io_sync`, writeahead `write`);
//!   every system's writers are tasks on the same 2-thread tokio runtime.
//! - `durable 1 writer`: one writer awaiting durability of each record (fdatasync bound).
//!
//! Results also go to `target/bench-results/wal_throughput.json` (override with
//! `SEGWAL_BENCH_JSON`), which `npm run bench` reads to compare Node with the engine.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use pwal::{WalCommon, WalPartitionId, WalReader, WalWriter};
use segwal_core::{AckEvent, Options, Start, SyncMode, Wal};

const KIB: usize = 1024;
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------- configuration

struct Cfg {
    records: usize,
    size: usize,
    runs: usize,
    durable64_records: usize,
    durable1_records: usize,
    quick: bool,
    json: bool,
    only: Option<Vec<String>>,
    systems: Vec<Sys>,
}

fn parse_args() -> Cfg {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    if has("--help") || has("-h") {
        println!(
            "wal_throughput: segwal engine vs pwal 0.2 vs writeahead 0.4\n\n\
             cargo bench -p segwal-core --bench wal_throughput -- [options]\n\
             \x20 --quick          fewer runs/records (about 30 s)\n\
             \x20 --json           print the results as JSON too\n\
             \x20 --runs N         runs per system and row (default 5, quick 3)\n\
             \x20 --records N      records of the write/read rows (default 50000)\n\
             \x20 --only a,b       rows: write64m, write256k, read, durable64, durable1\n\
             \x20 --systems a,b    systems: segwal, pwal, writeahead (default all; one alone\n\
             \x20                  is how to measure its CPU with perf stat)"
        );
        std::process::exit(0);
    }
    let val = |f: &str| -> Option<String> { args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned() };
    let quick = has("--quick");
    WA_ZERO_FILL.store(!has("--wa-keep-size"), Ordering::Relaxed);
    Cfg {
        records: val("--records").and_then(|v| v.parse().ok()).unwrap_or(50_000),
        size: KIB,
        runs: val("--runs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 3 } else { 5 }),
        durable64_records: if quick { 4_000 } else { 20_000 },
        durable1_records: if quick { 300 } else { 1_500 },
        quick,
        json: has("--json"),
        only: val("--only").map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
        systems: val("--systems").map_or(SYSTEMS.to_vec(), |v| {
            SYSTEMS
                .iter()
                .copied()
                .filter(|s| v.split(',').any(|x| s.name().starts_with(x.trim())))
                .collect()
        }),
    }
}

// ---------------------------------------------------------------- segwal adapter

/// Wakes whoever waits for acknowledgements: threads (`Seg::wait`, the write rows) and
/// tasks (`Seg::durable`, the durable rows). The engine calls the notifier once until
/// `take_acks` runs; whoever runs next takes the acks (`drain`), which re-arms it. Draining
/// wakes nobody: the notifier already woke every waiter (a second wake-up per waiter per
/// round was a thundering herd of 64 threads).
struct Signal {
    pending: AtomicBool,
    gen: Mutex<u64>,
    cv: Condvar,
    wakers: Mutex<Vec<Waker>>,
}

struct Seg {
    wal: Wal,
    sig: Arc<Signal>,
}

impl Seg {
    fn open(dir: &Path, segment_size: u64, sync: SyncMode) -> Seg {
        let wal = Wal::open(
            dir,
            Options {
                segment_size,
                sync,
                preallocate: true,
                repair: false,
            },
        )
        .expect("segwal open");
        let sig = Arc::new(Signal {
            pending: AtomicBool::new(false),
            gen: Mutex::new(0),
            cv: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
        });
        let s = sig.clone();
        wal.set_notifier(Arc::new(move || {
            s.pending.store(true, Ordering::SeqCst);
            *s.gen.lock().unwrap() += 1;
            s.cv.notify_all();
            for w in std::mem::take(&mut *s.wakers.lock().unwrap()) {
                w.wake();
            }
        }));
        Seg { wal, sig }
    }

    fn drain(&self) {
        if self.sig.pending.swap(false, Ordering::SeqCst) {
            for ack in self.wal.take_acks() {
                for e in ack.events {
                    if let AckEvent::Failed { error, .. } = e {
                        panic!("segwal append failed: {error:?}");
                    }
                }
            }
        }
    }

    /// Blocks the thread until `lsn` of `partition` is acknowledged.
    fn wait(&self, partition: u16, lsn: u64) {
        loop {
            let seen = *self.sig.gen.lock().unwrap();
            self.drain();
            if self.wal.last_lsn(partition).unwrap() >= lsn {
                return;
            }
            let g = self.sig.gen.lock().unwrap();
            if *g == seen {
                let _ = self.sig.cv.wait_timeout(g, Duration::from_millis(5)).unwrap();
            }
        }
    }

    /// Completes once `lsn` of `partition` is acknowledged (the durable rows' writers are
    /// tasks on a 2-thread runtime, as the peers' are).
    fn durable(&self, partition: u16, lsn: u64) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            self.drain();
            if self.wal.last_lsn(partition).unwrap() >= lsn {
                return Poll::Ready(());
            }
            self.sig.wakers.lock().unwrap().push(cx.waker().clone());
            // An ack published between the check and the push woke the wakers before ours.
            self.drain();
            if self.wal.last_lsn(partition).unwrap() >= lsn {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

// ---------------------------------------------------------------- systems

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sys {
    Segwal,
    Pwal,
    Writeahead,
}

const SYSTEMS: [Sys; 3] = [Sys::Segwal, Sys::Pwal, Sys::Writeahead];

impl Sys {
    fn name(self) -> &'static str {
        match self {
            Sys::Segwal => "segwal-core",
            Sys::Pwal => "pwal 0.2",
            Sys::Writeahead => "writeahead 0.4",
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// writeahead zero-fills a window ahead of its end by default, so that its fdatasyncs
/// overwrite written blocks and need no journal commit for a size change; segwal's
/// contract (KEEP_SIZE, `stat().size` is what was written) rules that out. `--wa-keep-size`
/// turns the window off, to show what of a durable row's gap that is.
static WA_ZERO_FILL: AtomicBool = AtomicBool::new(true);

fn wa_open(dir: &Path, max_file_size: u64) -> writeahead::WriteAhead {
    let defaults = writeahead::WriteAheadOptions::default();
    let preallocation_chunk_size = if WA_ZERO_FILL.load(Ordering::Relaxed) {
        defaults.preallocation_chunk_size
    } else {
        None
    };
    let mut w = writeahead::WriteAhead::<writeahead::SimpleFile>::with_options(writeahead::WriteAheadOptions {
        log_dir: dir.to_path_buf(),
        max_file_size,
        preallocation_chunk_size,
        ..defaults
    });
    w.start().expect("writeahead start");
    w
}

fn payload(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A live log left by a write run, kept for the read-back row.
enum Written {
    Segwal(Seg),
    Pwal(tokio::runtime::Runtime, pwal::wal::WalLocalFile),
    Writeahead(tokio::runtime::Runtime, writeahead::WriteAhead),
}

/// Sustained write of `n` records; returns elapsed time and the open log.
fn write_run(sys: Sys, dir: &Path, n: usize, data: &[u8], seg: u64) -> (Duration, Written) {
    match sys {
        Sys::Segwal => {
            let w = Seg::open(dir, seg, SyncMode::None);
            let t = Instant::now();
            for i in 0..n {
                w.wal.append(0, data).unwrap();
                if i % 1024 == 1023 {
                    w.drain();
                }
            }
            w.wal.sync().wait().unwrap();
            let el = t.elapsed();
            w.wait(0, n as u64);
            w.drain();
            (el, Written::Segwal(w))
        }
        Sys::Pwal => {
            let rt = rt();
            let wal = rt
                .block_on(pwal::wal::WalLocalFile::new(dir.to_path_buf(), true, seg))
                .unwrap();
            let p = WalPartitionId(0);
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..n {
                    WalWriter::<Vec<u8>>::append(&wal, p, data.to_vec()).await.unwrap();
                }
                wal.io_sync().await.unwrap();
            });
            (t.elapsed(), Written::Pwal(rt, wal))
        }
        Sys::Writeahead => {
            let rt = rt();
            let wal = wa_open(dir, seg);
            let h = wal.writer().unwrap();
            let t = Instant::now();
            rt.block_on(async {
                let mut inflight = FuturesUnordered::new();
                for _ in 0..n {
                    let h = h.clone();
                    let v = data.to_vec();
                    inflight.push(async move { h.write(v).await });
                    if inflight.len() >= 1024 {
                        inflight.next().await.unwrap().unwrap();
                    }
                }
                while let Some(r) = inflight.next().await {
                    r.unwrap();
                }
            });
            let el = t.elapsed();
            drop(h);
            (el, Written::Writeahead(rt, wal))
        }
    }
}

/// Reads every record back in order; returns elapsed time.
fn read_run(w: &Written, n: usize, size: usize) -> Duration {
    let t = Instant::now();
    let (count, bytes) = match w {
        Written::Segwal(s) => {
            let mut r = s.wal.reader(0, Start::Lsn(0)).unwrap();
            let (mut c, mut b) = (0usize, 0usize);
            while let Some(batch) = r.next_batch(1 << 20).unwrap() {
                for rec in &batch.records {
                    let s = rec.payload_start as usize;
                    let p = &batch.data[s..s + rec.payload_len as usize];
                    b += p.len();
                    std::hint::black_box(p);
                }
                c += batch.records.len();
            }
            (c, b)
        }
        Written::Pwal(rt, wal) => rt.block_on(async {
            let it = WalReader::<Vec<u8>>::stream_from_lsn(wal, 0, WalPartitionId(0), false).await;
            let (mut c, mut b) = (0usize, 0usize);
            for r in it {
                let (rec, _) = r.unwrap();
                b += rec.record.len();
                c += 1;
            }
            (c, b)
        }),
        Written::Writeahead(rt, wal) => rt.block_on(async {
            let mut s = wal.create_stream().unwrap();
            let (mut c, mut b) = (0usize, 0usize);
            while let Some(r) = s.next().await {
                b += r.unwrap().1.len();
                c += 1;
            }
            (c, b)
        }),
    };
    let el = t.elapsed();
    assert_eq!((count, bytes), (n, n * size), "read-back saw every record");
    el
}

/// `writers` writers, each awaiting the durability of its record before the next.
/// Returns the elapsed time and, for segwal, the number of fdatasyncs it took.
fn durable_run(sys: Sys, dir: &Path, n: usize, writers: usize, data: &[u8]) -> (Duration, Option<u64>) {
    let per = n / writers;
    match sys {
        Sys::Segwal => {
            let rt = rt();
            let w = Arc::new(Seg::open(dir, 64 * MIB, SyncMode::Always));
            let t = Instant::now();
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..writers {
                    let w = w.clone();
                    let data = data.to_vec();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..per {
                            let lsn = w.wal.append(0, &data).unwrap();
                            w.durable(0, lsn).await;
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let el = t.elapsed();
            (el, Some(w.wal.stats().unwrap().syncs))
        }
        Sys::Pwal => {
            let rt = rt();
            let wal = Arc::new(
                rt.block_on(pwal::wal::WalLocalFile::new(dir.to_path_buf(), true, 64 * MIB))
                    .unwrap(),
            );
            let t = Instant::now();
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..writers {
                    let wal = wal.clone();
                    let data = data.to_vec();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..per {
                            WalWriter::<Vec<u8>>::append(&*wal, WalPartitionId(0), data.clone())
                                .await
                                .unwrap();
                            wal.io_sync().await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            (t.elapsed(), None)
        }
        Sys::Writeahead => {
            let rt = rt();
            let wal = wa_open(dir, 64 * MIB);
            let t = Instant::now();
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..writers {
                    let h = wal.writer().unwrap();
                    let data = data.to_vec();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..per {
                            h.write(data.clone()).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            (t.elapsed(), None)
        }
    }
}

// ---------------------------------------------------------------- reporting

struct Row {
    workload: &'static str,
    system: Sys,
    ops: usize,
    bytes: usize,
    times: Vec<Duration>,
    /// segwal only: fdatasyncs done (from stats) in the median run, when meaningful.
    note: String,
}

impl Row {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
    fn ops_s(&self) -> f64 {
        self.ops as f64 / self.median().as_secs_f64()
    }
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / MIB as f64 / self.median().as_secs_f64()
    }
}

fn tmp(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn main() {
    let cfg = parse_args();
    let want = |r: &str| cfg.only.as_ref().is_none_or(|o| o.iter().any(|x| x == r));
    let root = tempfile::Builder::new().prefix("segwal-bench-").tempdir().unwrap();
    let data = payload(cfg.size);
    let mut rows: Vec<Row> = Vec::new();
    let started = Instant::now();
    eprintln!(
        "wal_throughput: {} records x {} B, {} runs per system, interleaved{}",
        cfg.records,
        cfg.size,
        cfg.runs,
        if cfg.quick { " (quick)" } else { "" }
    );

    // write 64 MiB + read-back (reads the log the same run just wrote), write 256 KiB.
    for (wname, seg, key) in [
        ("write 64MiB segs", 64 * MIB, "write64m"),
        ("write 256KiB segs", 256 * 1024, "write256k"),
    ] {
        let do_read = seg == 64 * MIB && want("read");
        if !want(key) && !do_read {
            continue;
        }
        let mut w: Vec<Row> = cfg
            .systems
            .iter()
            .map(|&s| Row {
                workload: wname,
                system: s,
                ops: cfg.records,
                bytes: cfg.records * cfg.size,
                times: vec![],
                note: String::new(),
            })
            .collect();
        let mut r: Vec<Row> = cfg
            .systems
            .iter()
            .map(|&s| Row {
                workload: "read-back",
                system: s,
                ops: cfg.records,
                bytes: cfg.records * cfg.size,
                times: vec![],
                note: String::new(),
            })
            .collect();
        for run in 0..cfg.runs {
            for (i, &s) in cfg.systems.iter().enumerate() {
                let dir = tmp(root.path(), &format!("{key}-{i}-{run}"));
                let (el, written) = write_run(s, &dir, cfg.records, &data, seg);
                w[i].times.push(el);
                if let Written::Segwal(sg) = &written {
                    let segs = sg.wal.segments(0).unwrap().len();
                    w[i].note = format!("{segs} segments");
                }
                if do_read {
                    r[i].times.push(read_run(&written, cfg.records, cfg.size));
                }
                drop(written);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        if want(key) {
            rows.extend(w);
        }
        if do_read {
            rows.extend(r);
        }
    }

    for (wname, key, n, writers) in [
        ("durable 64 writers", "durable64", cfg.durable64_records, 64usize),
        ("durable 1 writer", "durable1", cfg.durable1_records, 1usize),
    ] {
        if !want(key) {
            continue;
        }
        let n = n / writers * writers;
        let mut w: Vec<Row> = cfg
            .systems
            .iter()
            .map(|&s| Row {
                workload: wname,
                system: s,
                ops: n,
                bytes: n * cfg.size,
                times: vec![],
                note: String::new(),
            })
            .collect();
        for run in 0..cfg.runs {
            for (i, &s) in cfg.systems.iter().enumerate() {
                let dir = tmp(root.path(), &format!("{key}-{i}-{run}"));
                let (el, syncs) = durable_run(s, &dir, n, writers, &data);
                w[i].times.push(el);
                if let Some(syncs) = syncs {
                    w[i].note = format!("{:.1} records per fdatasync", n as f64 / syncs.max(1) as f64);
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        rows.extend(w);
    }

    print_table(&rows);
    let json = to_json(&cfg, &rows, started.elapsed());
    let out = std::env::var("SEGWAL_BENCH_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-results/wal_throughput.json")
        });
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&out, &json) {
        Ok(()) => eprintln!("results written to {}", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
    if cfg.json {
        println!("{json}");
    }
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<20} {:<15} {:>12} {:>10} {:>11} {:>14}  runs (ms)",
        "workload", "system", "records/s", "MiB/s", "median ms", "segwal ratio"
    );
    println!("{}", "-".repeat(110));
    let mut last = "";
    for r in rows {
        if r.workload != last && !last.is_empty() {
            println!();
        }
        last = r.workload;
        let seg = rows
            .iter()
            .find(|x| x.workload == r.workload && x.system == Sys::Segwal);
        let ratio = match seg {
            _ if r.system == Sys::Segwal => "1.00x".to_string(),
            Some(seg) => format!("{:.2}x", seg.ops_s() / r.ops_s()),
            None => "-".to_string(),
        };
        let runs: Vec<String> = r
            .times
            .iter()
            .map(|t| format!("{:.0}", t.as_secs_f64() * 1e3))
            .collect();
        println!(
            "{:<20} {:<15} {:>12.0} {:>10.1} {:>11.1} {:>14}  {} {}",
            r.workload,
            r.system.name(),
            r.ops_s(),
            r.mb_s(),
            r.median().as_secs_f64() * 1e3,
            ratio,
            runs.join(" "),
            r.note
        );
    }
    println!("\n(segwal ratio = segwal records/s / that system's records/s; > 1 means segwal is faster)");
}

fn to_json(cfg: &Cfg, rows: &[Row], total: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut s = format!(
        "{{\"bench\":\"wal_throughput\",\"unixTime\":{now},\"quick\":{},\"records\":{},\"recordSize\":{},\"runs\":{},\"totalSeconds\":{:.1},\"rows\":[",
        cfg.quick,
        cfg.records,
        cfg.size,
        cfg.runs,
        total.as_secs_f64()
    );
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let runs: Vec<String> = r
            .times
            .iter()
            .map(|t| format!("{:.3}", t.as_secs_f64() * 1e3))
            .collect();
        s.push_str(&format!(
            "{{\"workload\":\"{}\",\"system\":\"{}\",\"records\":{},\"bytes\":{},\"medianMs\":{:.3},\"opsPerSec\":{:.0},\"mibPerSec\":{:.2},\"runsMs\":[{}]}}",
            r.workload,
            r.system.name(),
            r.ops,
            r.bytes,
            r.median().as_secs_f64() * 1e3,
            r.ops_s(),
            r.mb_s(),
            runs.join(",")
        ));
    }
    s.push_str("]}");
    s
}
