//! The engine's read path alone, in CPU time of the reading thread (which the machine's
//! load moves far less than wall-clock time):
//!
//! `cargo run --release -p segwal-core --example read_scan -- [record bytes] [records] [runs] [fresh]`
//!
//! Fills a log with `records` records of `record bytes` (sync off), then reads it back
//! `runs` times with a `Reader` recycling its batch buffer (as the Node binding does; with
//! `fresh`, a new buffer per batch, as `next_batch` and the cargo bench's read-back do) and
//! prints the best wall-clock rate and the minimum and median thread CPU per record.

use std::time::Instant;

use segwal_core::{Options, Start, SyncMode, Wal};

fn main() -> segwal_core::Result<()> {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (size, count, runs) = (arg(1, 128), arg(2, 1_000_000), arg(3, 10).max(1));
    let fresh = std::env::args().nth(4).as_deref() == Some("fresh");
    let dir = std::env::temp_dir().join(format!("segwal-read-scan-{}", std::process::id()));
    let wal = Wal::open(
        &dir,
        Options {
            sync: SyncMode::None,
            ..Options::default()
        },
    )?;
    let rec = vec![7u8; size];
    let per = 256;
    let refs: Vec<&[u8]> = (0..per).map(|_| &rec[..]).collect();
    for done in (0..count).step_by(per) {
        wal.append_batch(1, &refs[..per.min(count - done)])?;
    }
    wal.sync().wait()?;
    let (mut buf, mut best, mut cpus) = (Vec::new(), f64::MAX, Vec::new());
    for _ in 0..runs {
        let (c0, t) = (thread_cpu(), Instant::now());
        let mut r = wal.reader(1, Start::Lsn(0))?;
        let (mut n, mut bytes) = (0usize, 0usize);
        while let Some(batch) = r.next_batch_in(reuse_or(&mut buf, fresh), 1 << 20)? {
            bytes += batch.records.iter().map(|r| r.payload_len as usize).sum::<usize>();
            n += batch.records.len();
            buf = batch.data;
        }
        assert_eq!((n, bytes), (count, count * size), "every record read back");
        best = best.min(t.elapsed().as_secs_f64());
        cpus.push(thread_cpu() - c0);
    }
    cpus.sort_by(f64::total_cmp);
    let per_rec = |s: f64| s * 1e9 / count as f64;
    println!(
        "{size} B x {count}: best {:.2} M records/s ({:.0} MiB/s of payload); thread CPU per record: min {:.1} ns, median {:.1} ns",
        count as f64 / best / 1e6,
        (count * size) as f64 / best / 1_048_576.0,
        per_rec(cpus[0]),
        per_rec(cpus[cpus.len() / 2]),
    );
    wal.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The recycled buffer, or a new one with `fresh`.
fn reuse_or(buf: &mut Vec<u8>, fresh: bool) -> Vec<u8> {
    if fresh {
        Vec::new()
    } else {
        std::mem::take(buf)
    }
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
