//! `cargo bench -p segwal-core --bench fsync_kinds [-- DIR [ITERATIONS]]`
//!
//! What one durable round costs the disk, by the kind of write it syncs: a `pwrite` of one
//! framed 128 B record (160 B, a one-appender round) or of 64 (10,240 B, a 64-appender round)
//! then `fdatasync`, on four files per size, interleaved per iteration so that a noisy disk
//! treats them alike:
//! - `append`: a plain file growing (the bench's raw baseline);
//! - `keep-size`: a file preallocated with `FALLOC_FL_KEEP_SIZE` (segwal's segments);
//! - `overwrite`: bytes already written (a zero-filled or recycled file, as writeahead's);
//! - `fallocated`: preallocated without KEEP_SIZE (unwritten extents inside the size).
//!
//! Then whether fdatasyncs of one file overlap: 1 and 2 threads each writing 64 records at
//! the next offset and syncing, for 1.5 s; fdatasyncs completed per second.
//!
//! DIR defaults to the system's temporary directory (the bench's scratch disk).

#[cfg(target_os = "linux")]
fn main() {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let dir = tempfile::Builder::new()
        .prefix("segwal-fsync-")
        .tempdir_in(args.first().map_or_else(std::env::temp_dir, std::path::PathBuf::from))
        .expect("scratch directory");
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(500);
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join(name))
            .expect("create")
    };
    let fallocate = |f: &std::fs::File, mode: i32, len: i64| {
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, 0, len) };
        assert_eq!(r, 0, "fallocate: {}", std::io::Error::last_os_error());
    };
    let kinds = ["append", "keep-size", "overwrite", "fallocated"];
    let sizes = [160usize, 64 * 160];
    let mut files = Vec::new();
    for size in sizes {
        for kind in kinds {
            let f = open(&format!("{kind}-{size}"));
            match kind {
                "keep-size" => fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 64 << 20),
                "overwrite" => f.write_all_at(&vec![0u8; n * size], 0).expect("zero-fill"),
                "fallocated" => fallocate(&f, 0, 64 << 20),
                _ => {}
            }
            f.sync_all().expect("sync");
            files.push((kind, size, f));
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); files.len()];
    let record = [7u8; 64 * 160];
    for i in 0..n {
        for (k, (_, size, f)) in files.iter().enumerate() {
            let t = Instant::now();
            f.write_all_at(&record[..*size], (i * size) as u64).expect("write");
            f.sync_data().expect("fdatasync");
            times[k].push(t.elapsed());
        }
    }
    println!("pwrite + fdatasync, {n} each, interleaved ({})", dir.path().display());
    for ((kind, size, _), t) in files.iter().zip(times.iter_mut()) {
        t.sort();
        let us = |q: usize| t[q.min(n - 1)].as_secs_f64() * 1e6;
        println!(
            "  {size:>6} B {kind:<11} p10 {:>7.0} µs  p50 {:>7.0} µs  p90 {:>7.0} µs",
            us(n / 10),
            us(n / 2),
            us(n * 9 / 10)
        );
    }

    println!("overlapping fdatasyncs of one file (64 x 160 B per write, 1.5 s each)");
    for round in 0..2 {
        for threads in [1usize, 2] {
            let f = open(&format!("overlap-{round}-{threads}"));
            let (next, syncs) = (AtomicU64::new(0), AtomicU64::new(0));
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        let buf = [7u8; 64 * 160];
                        while start.elapsed() < Duration::from_millis(1500) {
                            let at = next.fetch_add(buf.len() as u64, Ordering::Relaxed);
                            f.write_all_at(&buf, at).expect("write");
                            f.sync_data().expect("fdatasync");
                            syncs.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            let per_s = syncs.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
            println!("  {threads} thread(s): {per_s:>6.0} fdatasyncs/s");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("fsync_kinds: Linux only (fallocate modes)");
}
