//! `cargo bench -p segwal-core --bench read_buffers [-- DIR [RECORD_BYTES]]`
//!
//! What reading into recycled batch memory costs, by how much memory the batches cycle
//! through. The engine's `Reader` drains 256 MiB of records (4 KiB by default) in 1 MiB
//! batches into `k` buffers used in turn, as `streamBatches()` reads into pooled buffers that
//! come back only when V8 collects their batches (every 16-48 MiB streamed: lib/ballast.ts).
//! `k = 1` is the bench's "engine Reader alone" row (one buffer, always in cache); a stream's
//! reader works like `k = 40`. CPU and wall time per MiB, three rounds.
//!
//! DIR defaults to the system's temporary directory (the bench's scratch disk).

use std::time::Instant;

use segwal_core::{Options, Start, SyncMode, Wal};

fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let dir = tempfile::Builder::new()
        .prefix("segwal-read-buffers-")
        .tempdir_in(args.first().map_or_else(std::env::temp_dir, std::path::PathBuf::from))
        .expect("scratch directory");
    let size: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(4096);
    const MIB: usize = 256;
    let wal = Wal::open(
        dir.path(),
        Options {
            sync: SyncMode::None,
            ..Options::default()
        },
    )
    .expect("open");
    let rec = vec![7u8; size];
    let batch: Vec<&[u8]> = vec![&rec[..]; 256];
    let records = MIB * (1 << 20) / size;
    for _ in 0..records.div_ceil(batch.len()) {
        wal.append_batch(1, &batch).expect("append");
    }
    wal.sync().wait().expect("sync");
    println!("{MIB} MiB of {size} B records, read in 1 MiB batches into k buffers used in turn");
    for round in 1..=3 {
        for k in [1usize, 8, 40, 64] {
            let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); k];
            let mut reader = wal.reader(1, Start::Lsn(0)).expect("reader");
            let (cpu0, t0) = (thread_cpu_ms(), Instant::now());
            let (mut seen, mut i) = (0usize, 0usize);
            while let Some(b) = reader
                .next_batch_in(std::mem::take(&mut bufs[i % k]), 1 << 20)
                .expect("read")
            {
                seen += b.records.len();
                bufs[i % k] = b.data;
                i += 1;
            }
            assert_eq!(seen, records);
            let (cpu, wall) = (thread_cpu_ms() - cpu0, t0.elapsed().as_secs_f64() * 1e3);
            println!(
                "round {round}, k = {k:2}: {:4.0} µs CPU, {:4.0} µs wall per MiB",
                cpu * 1e3 / MIB as f64,
                wall * 1e3 / MIB as f64
            );
        }
    }
    wal.close().expect("close");
}
