//! Recovery and reading of arbitrary segment files, in a simulated directory.
//!
//! The input is split into files: each chunk is `[kind, index, len_lo, len_hi, bytes..]`.
//! `kind` 0 writes the bytes as they are; 1 prefixes a valid header (partition 0, that
//! index, first LSN 1 + 8 * (index - 1), salt = index) and seals every 8-aligned frame
//! it can parse with that salt, so mutations get past the checksums. Then the directory
//! is opened with and without repair and every partition is read to the end: no panic,
//! no endless reader, only WAL_CORRUPTION / WAL_IO_ERROR, and with repair everything
//! reads.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use segwal_core::format::{self, SegmentHeader};
use segwal_sim::SimFs;
use segwal_core::{ErrorCode, Options, Start, SyncMode, Wal};

const DIR: &str = "/wal";

fn files(mut data: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while data.len() >= 4 && out.len() < 4 {
        let kind = data[0] % 2;
        let index = u64::from(data[1] % 4) + 1;
        let len = (usize::from(data[2]) | usize::from(data[3]) << 8).min(data.len() - 4);
        let body = &data[4..4 + len];
        data = &data[4 + len..];
        let content = if kind == 0 {
            body.to_vec()
        } else {
            let salt = index as u32;
            let mut f = SegmentHeader {
                partition: 0,
                index,
                first_lsn: 1 + 8 * (index - 1),
                salt,
                created_ms: 0,
            }
            .encode()
            .to_vec();
            let mut frames = body.to_vec();
            frames.truncate(frames.len() & !7);
            // Seal each frame whose trailer length fits, walking by those lengths.
            let mut at = 0;
            while at + 32 <= frames.len() {
                let flen = format::frame_len(u32::from_le_bytes(frames[at + 4..at + 8].try_into().unwrap()) as usize);
                if flen > frames.len() - at {
                    break;
                }
                let t = at + flen - 8;
                frames[t..t + 4].copy_from_slice(&(flen as u32).to_le_bytes());
                format::seal(&mut frames[at..at + flen], salt);
                at += flen;
            }
            f.extend_from_slice(&frames);
            f
        };
        out.push((index, content));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let fs = SimFs::new();
    for (index, content) in files(data) {
        fs.write_file(&Path::new(DIR).join(format::segment_file_name(0, index)), &content);
    }
    for repair in [false, true] {
        let o = Options {
            segment_size: 4096,
            sync: SyncMode::Always,
            preallocate: false,
            repair,
        };
        let wal = match Wal::open_with(DIR, o, Arc::new(fs.power_loss())) {
            Ok(w) => w,
            Err(e) => {
                assert!(!repair, "repair must open anything: {e}");
                assert!(matches!(e.code, ErrorCode::Corruption | ErrorCode::Io), "{e}");
                continue;
            }
        };
        for p in wal.partitions().unwrap() {
            let last = wal.last_lsn(p).unwrap();
            let Ok(mut r) = wal.reader(p, Start::Lsn(0)) else {
                assert!(!repair);
                continue;
            };
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 100_000, "reader does not end");
                match r.next_batch(1000) {
                    Ok(Some(b)) => assert!(!b.records.is_empty(), "empty batch"),
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!repair, "reading after repair: {e}");
                        assert!(matches!(e.code, ErrorCode::Corruption | ErrorCode::Io), "{e}");
                        break;
                    }
                }
            }
            if repair {
                assert_eq!(r.next_lsn(), last + 1);
            }
        }
    }
});
