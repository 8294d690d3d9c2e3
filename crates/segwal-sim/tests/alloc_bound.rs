//! A damaged length field never makes the engine allocate by it: the largest single
//! allocation while opening (with and without repair) and reading a log whose length
//! fields claim ~4 GiB stays bounded by the engine's own buffers, not the claim.
//! (Its own test binary: it installs a counting global allocator.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use segwal_core::format::{self, SegmentHeader};
use segwal_core::{Options, Start, SyncMode, Wal};
use segwal_sim::SimFs;

struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static MAX: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            MAX.fetch_max(l.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            MAX.fetch_max(l.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            MAX.fetch_max(new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One test at a time: the tracking is global.
static SERIAL: Mutex<()> = Mutex::new(());

/// Every buffer the engine sizes itself stays under this: its 1 MiB scan chunk and its
/// 65536-slot partition table (about 1 MiB); a trusted length field would ask for ~4 GiB.
const BOUND: usize = 4 << 20;

const DIR: &str = "/wal";

fn opts(repair: bool) -> Options {
    Options {
        segment_size: 1 << 20,
        sync: SyncMode::Always,
        preallocate: false,
        repair,
    }
}

/// Two segments of partition 0 (LSNs 1..=8 and 9..=16), 100-byte payloads.
fn segments() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in 0..2u64 {
        let salt = 77 + s as u32;
        let mut f = SegmentHeader {
            partition: 0,
            index: s + 1,
            first_lsn: s * 8 + 1,
            salt,
            created_ms: 1,
        }
        .encode()
        .to_vec();
        for i in 0..8 {
            let mut b = Vec::new();
            format::push_frame(&mut b, s * 8 + 1 + i, 0, &[i as u8; 100]);
            format::seal(&mut b, salt);
            f.extend_from_slice(&b);
        }
        out.push(f);
    }
    out
}

const FRAME: usize = 24 + 104 + 8;

fn run(what: &str, segs: &[Vec<u8>]) {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fs = SimFs::new();
    for (i, f) in segs.iter().enumerate() {
        fs.write_file(&Path::new(DIR).join(format::segment_file_name(0, i as u64 + 1)), f);
    }
    for repair in [false, true] {
        let copy = fs.power_loss();
        MAX.store(0, Ordering::SeqCst);
        TRACK.store(true, Ordering::SeqCst);
        if let Ok(wal) = Wal::open_with(DIR, opts(repair), Arc::new(copy)) {
            for from in [0, 3, 12] {
                if let Ok(mut r) = wal.reader(0, Start::Lsn(from)) {
                    while let Ok(Some(_)) = r.next_batch(64 << 10) {}
                }
            }
            for (segment, offset) in [(1, 64), (2, 64 + FRAME as u64), (2, 64 + 3 * FRAME as u64)] {
                let _ = wal.reader(0, Start::Position { segment, offset });
            }
            drop(wal);
        }
        TRACK.store(false, Ordering::SeqCst);
        let max = MAX.load(Ordering::SeqCst);
        assert!(max < BOUND, "{what} (repair {repair}): an allocation of {max} bytes");
    }
}

fn with_len(at_frame: usize, seg: usize, len: u32) -> Vec<Vec<u8>> {
    let mut s = segments();
    let off = 64 + at_frame * FRAME + 4;
    s[seg][off..off + 4].copy_from_slice(&len.to_le_bytes());
    s
}

#[test]
fn damaged_length_fields_allocate_nothing_by_them() {
    for len in [u32::MAX, u32::MAX - 31, 0x8000_0000, 5 << 20] {
        for seg in [0, 1] {
            for frame in [0, 3, 7] {
                run(
                    &format!("length {len:#x} in segment {} frame {frame}", seg + 1),
                    &with_len(frame, seg, len),
                );
            }
        }
    }
}

#[test]
fn damaged_trailer_lengths_allocate_nothing_by_them() {
    for len in [0xffff_fff8u32, 0x8000_0000, 5 << 20] {
        for seg in [0, 1] {
            for frame in [3, 7] {
                let mut s = segments();
                let end = 64 + (frame + 1) * FRAME;
                s[seg][end - 8..end - 4].copy_from_slice(&len.to_le_bytes());
                run(
                    &format!("trailer length {len:#x} in segment {} frame {frame}", seg + 1),
                    &s,
                );
            }
        }
    }
}

/// The same claims with the frame re-sealed (a valid checksum over a lying length can
/// only be crafted, but must not be trusted beyond the file either).
#[test]
fn resealed_lying_lengths_allocate_nothing_by_them() {
    for seg in [0, 1] {
        for frame in [0, 7] {
            let mut s = segments();
            let at = 64 + frame * FRAME;
            s[seg][at + 4..at + 8].copy_from_slice(&(u32::MAX - 31).to_le_bytes());
            let salt = 77 + seg as u32;
            // Seal over what is there (the frame as the file has it).
            let end = at + FRAME;
            format::seal(&mut s[seg][at..end], salt);
            run(&format!("resealed length in segment {} frame {frame}", seg + 1), &s);
        }
    }
}
