//! Staging: records into a partition's queue as unsealed frames, under its lock, on the
//! caller's thread. No I/O and, in the common case, no syscall: the LSN is assigned and
//! the payload copied, and the partition goes on the writers' queue (`Engine::schedule`).
//! Apart from `wal.rs` because this is the per-record path, tuned as one piece (see
//! PERFORMANCE.md); apart from `commit.rs` because it runs on the caller's thread, not
//! a writer's.

use std::sync::atomic::Ordering::Relaxed;

use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::format::{self, FRAME_OVERHEAD, SEGMENT_HEADER_LEN};
use crate::options::Options;
use crate::partition::{PState, Rec, STAGE_CAP};

/// What `many` reserves beyond a run's cap (see `PState::frames_mut`): the facade
/// stages records up to 64 KiB, so the frame crossing the cap fits without a regrowth.
const STAGE_SLACK: usize = 64 * 1024 + FRAME_OVERHEAD;

/// The largest frame (or framed batch) a record may need: what an empty segment holds
/// and a frame's length can say.
fn max_frame(opts: &Options) -> u64 {
    (opts.segment_size - SEGMENT_HEADER_LEN as u64).min(format::MAX_PAYLOAD_LEN + FRAME_OVERHEAD as u64)
}

/// The largest payload one record may have (a larger one is `RecordTooLarge`).
pub(crate) fn max_payload(opts: &Options) -> u64 {
    let room = max_frame(opts);
    let mut n = room.saturating_sub(FRAME_OVERHEAD as u64);
    while n > 0 && format::frame_len(n as usize) as u64 > room {
        n -= 1;
    }
    n
}

fn check_record_fits(opts: &Options, frames: u64, what: &str) -> Result<()> {
    if frames > max_frame(opts) {
        let room = opts.segment_size - SEGMENT_HEADER_LEN as u64;
        return Err(Error::new(
            ErrorCode::RecordTooLarge,
            format!(
                "{what} needs {frames} bytes framed but a segment holds at most {room} (segmentSize {})",
                opts.segment_size
            ),
        ));
    }
    Ok(())
}

/// One record: `Wal::append` (`write` is `None`) or `Wal::write` (`Some(expected)`).
pub(crate) fn one(engine: &Engine, partition: u16, payload: &[u8], write: Option<Option<u64>>) -> Result<u64> {
    // A record too large for any segment is refused as such whatever the WAL's
    // state (as `append_batch` does): the caller's argument is wrong, not the disk.
    check_record_fits(&engine.opts, format::frame_len(payload.len()) as u64, "payload")?;
    let p = engine.partition(partition);
    let mut st = p.lock();
    engine.check_writable(&st)?;
    let lsn = locked(engine, &mut st, partition, payload, write)?;
    engine.schedule(&p, st);
    engine.counters.appends.fetch_add(1, Relaxed);
    Ok(lsn)
}

/// One record into the partition's staging, its lock held and writability checked.
fn locked(engine: &Engine, st: &mut PState, partition: u16, payload: &[u8], write: Option<Option<u64>>) -> Result<u64> {
    let frame_len = format::frame_len(payload.len());
    check_record_fits(&engine.opts, frame_len as u64, "payload")?;
    let lsn = st.next_lsn;
    if let Some(Some(expected)) = write {
        if expected != lsn {
            return Err(Error::new(
                ErrorCode::Io,
                format!("internal error: record expected LSN {expected} of partition {partition}, the next is {lsn}"),
            ));
        }
    }
    st.next_lsn += 1;
    st.unsettled += 1;
    st.unsettled_bytes += payload.len() as u64;
    let f = st.frames_mut();
    format::push_frame(&mut f.buf, lsn, 0, payload);
    f.recs.push(Rec {
        lsn,
        frame_len: frame_len as u32,
        batch_left: 0,
        payload_len: payload.len() as u32,
        single: write.is_none(),
    });
    Ok(lsn)
}

/// Stages a batch (at least one record) that will be in one segment and survive a crash
/// whole or not at all; returns its first and last LSN.
pub(crate) fn batch(engine: &Engine, partition: u16, payloads: &[&[u8]]) -> Result<(u64, u64)> {
    let total: u64 = payloads.iter().map(|x| format::frame_len(x.len()) as u64).sum();
    check_record_fits(&engine.opts, total, "payloads")?;
    let n = payloads.len() as u64;
    let p = engine.partition(partition);
    let mut st = p.lock();
    engine.check_writable(&st)?;
    let first = st.next_lsn;
    st.next_lsn += n;
    st.unsettled += n;
    st.unsettled_bytes += payloads.iter().map(|x| x.len() as u64).sum::<u64>();
    let f = st.frames_mut();
    f.buf.reserve(total as usize);
    for (i, payload) in payloads.iter().enumerate() {
        let lsn = first + i as u64;
        let left = (payloads.len() - 1 - i) as u32;
        format::push_frame(&mut f.buf, lsn, left, payload);
        f.recs.push(Rec {
            lsn,
            frame_len: format::frame_len(payload.len()) as u32,
            batch_left: left,
            payload_len: payload.len() as u32,
            single: false,
        });
    }
    engine.schedule(&p, st);
    engine.counters.appends.fetch_add(n, Relaxed);
    engine.counters.batches.fetch_add(1, Relaxed);
    Ok((first, first + n - 1))
}

/// `Wal::stage_many`: the common record inline, the rest through `locked`.
pub(crate) fn many(engine: &Engine, data: &[u8], lens: &[u32], parts: &[u16], lsns: &mut [u64]) -> Vec<(usize, Error)> {
    let n = lens.len().min(parts.len()).min(lsns.len());
    let mut errors = Vec::new();
    let room = max_frame(&engine.opts);
    let mut at = 0usize;
    let mut i = 0;
    while i < n {
        let id = parts[i];
        let run = i + parts[i..n].iter().take_while(|&&q| q == id).count();
        let p = engine.partition(id);
        let mut st = p.lock();
        let writable = engine.check_writable(&st);
        // Frame bytes of the run not staged yet: reserved in one go, so that staging
        // a tick's records neither regrows nor copies the run's buffer.
        let mut left: usize = lens[i..run].iter().map(|&l| format::frame_len(l as usize)).sum();
        let mut staged = 0;
        for k in i..run {
            let len = lens[k] as usize;
            let end = at + len;
            let flen = format::frame_len(len);
            let expected = lsns[k];
            // The common case inline: a record that fits, at the LSN it must get.
            let fast = writable.is_ok()
                && end <= data.len()
                && flen as u64 <= room
                && (expected == 0 || expected == st.next_lsn);
            let r = if fast {
                let lsn = st.next_lsn;
                st.next_lsn += 1;
                st.unsettled += 1;
                st.unsettled_bytes += len as u64;
                let f = st.frames_mut();
                if f.buf.capacity() - f.buf.len() < flen {
                    // Up to where `frames_mut` starts a new run, and the frame that crosses it.
                    let to_cap = STAGE_CAP.saturating_sub(f.buf.len()) + STAGE_SLACK;
                    f.buf.reserve(left.min(to_cap).max(flen));
                }
                if f.recs.capacity() == f.recs.len() {
                    let to_cap = STAGE_CAP.saturating_sub(f.buf.len()) / FRAME_OVERHEAD + 1;
                    f.recs.reserve((run - k).min(to_cap));
                }
                format::push_frame(&mut f.buf, lsn, 0, &data[at..end]);
                f.recs.push(Rec {
                    lsn,
                    frame_len: flen as u32,
                    batch_left: 0,
                    payload_len: len as u32,
                    single: expected == 0,
                });
                Ok(lsn)
            } else {
                match (&writable, data.get(at..end)) {
                    (Err(e), _) => Err(e.clone()),
                    (Ok(()), None) => Err(Error::invalid("record lengths exceed the staged data")),
                    (Ok(()), Some(payload)) => {
                        let write = (expected != 0).then_some(Some(expected));
                        locked(engine, &mut st, id, payload, write)
                    }
                }
            };
            left -= flen;
            at = end;
            match r {
                Ok(lsn) => {
                    lsns[k] = lsn;
                    staged += 1;
                }
                Err(e) => {
                    lsns[k] = 0;
                    errors.push((k, e));
                }
            }
        }
        if staged > 0 {
            engine.counters.appends.fetch_add(staged, Relaxed);
            engine.schedule(&p, st);
        }
        i = run;
    }
    errors
}
