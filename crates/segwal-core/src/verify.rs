//! Checksums of many frames at once, for readers and for the writer's sealing.
//!
//! A frame's CRC32C is one chain of dependent steps: on x86-64 each `crc32` instruction
//! takes 8 bytes and has a latency of 3 cycles but can issue every cycle, so one chain
//! uses a third of what the CPU can do (the crc32c crate splits long buffers into three
//! chains, but a 160-byte frame, a 128 B record, is one short chain of 19 steps).
//! Computing the checksums of four frames side by side keeps four chains in flight: the
//! reader's checksum cost per small record drops to about a third.

use crate::format;

/// Frames checked side by side.
const LANES: usize = 4;

/// The index of the first of `frames` (whole frames, as `format::decode_unverified`
/// delimited them) whose checksum does not match, if any.
pub fn first_mismatch<'a>(salt: u32, mut frames: impl Iterator<Item = &'a [u8]>) -> Option<usize> {
    let mut done = 0;
    loop {
        let mut group: [&[u8]; LANES] = [&[]; LANES];
        let mut n = 0;
        for (slot, frame) in group.iter_mut().zip(&mut frames) {
            *slot = frame;
            n += 1;
        }
        let crcs = if n == LANES {
            lanes(salt, &group.map(format::checksummed))
        } else {
            group.map(|f| {
                if f.is_empty() {
                    0
                } else {
                    crc32c::crc32c_append(salt, format::checksummed(f))
                }
            })
        };
        if let Some(bad) = (0..n).find(|&i| crcs[i] != format::stored_checksum(group[i])) {
            return Some(done + bad);
        }
        if n < LANES {
            return None;
        }
        done += LANES;
    }
}

/// Seals the frames laid end to end in `buf` (lengths from `lens`, as `format::push_frame`
/// built them) with `salt`, four side by side: the writer's checksum cost per small record
/// drops as the reader's does (a round's frames of 128 B records were one short chain each,
/// a third of the writer thread's CPU).
pub fn seal_frames(salt: u32, buf: &mut [u8], lens: impl Iterator<Item = usize>) {
    let mut spans = [(0usize, 0usize); LANES];
    let mut n = 0;
    let mut at = 0;
    for len in lens {
        spans[n] = (at, at + len);
        at += len;
        n += 1;
        if n == LANES {
            let crcs = lanes(salt, &spans.map(|(s, e)| format::checksummed(&buf[s..e])));
            for ((s, e), crc) in spans.into_iter().zip(crcs) {
                format::store_checksum(&mut buf[s..e], crc);
            }
            n = 0;
        }
    }
    for &(s, e) in &spans[..n] {
        format::seal(&mut buf[s..e], salt);
    }
}

fn lanes(salt: u32, b: &[&[u8]; LANES]) -> [u32; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE 4.2 (checked just above).
            return unsafe { lanes_sse42(salt, b) };
        }
    }
    b.map(|x| crc32c::crc32c_append(salt, x))
}

/// The common prefix of whole 8-byte words goes through four interleaved chains; each
/// buffer's rest through the crc32c crate, continuing its chain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn lanes_sse42(salt: u32, b: &[&[u8]; LANES]) -> [u32; LANES] {
    use std::arch::x86_64::_mm_crc32_u64;
    let words = b.iter().map(|x| x.len() / 8).min().unwrap_or(0);
    let n = words * 8;
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
    // The crate's convention: the state is the complement of the running checksum.
    let mut s = [u64::from(!salt); LANES];
    let chunks = b[0][..n]
        .chunks_exact(8)
        .zip(b[1][..n].chunks_exact(8))
        .zip(b[2][..n].chunks_exact(8))
        .zip(b[3][..n].chunks_exact(8));
    for (((w0, w1), w2), w3) in chunks {
        s[0] = _mm_crc32_u64(s[0], word(w0));
        s[1] = _mm_crc32_u64(s[1], word(w1));
        s[2] = _mm_crc32_u64(s[2], word(w2));
        s[3] = _mm_crc32_u64(s[3], word(w3));
    }
    let mut out = [0u32; LANES];
    for i in 0..LANES {
        let rest = &b[i][n..];
        // `crc32c_append(c, rest)` starts from the state `!c`: the state so far, here.
        out[i] = if rest.is_empty() {
            !(s[i] as u32)
        } else {
            crc32c::crc32c_append(!(s[i] as u32), rest)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u32) -> Vec<u8> {
        (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    /// Against the crate, one buffer at a time: lengths 0 to 90, unequal side by side, at
    /// every alignment, and buffers of several KiB.
    #[test]
    fn lanes_match_the_crate() {
        let d = data(40_000);
        for salt in [0u32, 0xdead_beef] {
            for len in 0..90usize {
                let b: [&[u8]; LANES] = std::array::from_fn(|i| {
                    let start = (i * 37 + len) % 64;
                    &d[start..start + len + (i * 13) % 29]
                });
                assert_eq!(
                    lanes(salt, &b),
                    b.map(|x| crc32c::crc32c_append(salt, x)),
                    "length {len}"
                );
            }
            let b: [&[u8]; LANES] = [&d[4..4100], &d[5000..13_192], &d[1..], &d[3..9]];
            assert_eq!(lanes(salt, &b), b.map(|x| crc32c::crc32c_append(salt, x)));
        }
    }

    /// Frames sealed side by side carry exactly the checksums `format::seal` gives them
    /// one by one: runs of 0 to 10 frames of mixed sizes, sync-point flags included.
    #[test]
    fn seal_frames_matches_seal() {
        let d = data(10_000);
        let salt = 0xa5a5_0001;
        for count in 0..11usize {
            let (mut one, mut lens) = (Vec::new(), Vec::new());
            for i in 0..count {
                let start = one.len();
                format::push_frame(&mut one, i as u64 + 1, 0, &d[i * 7..i * 7 + (i * 53) % 300]);
                if i % 3 == 0 {
                    format::mark_sync_point(&mut one[start..]);
                }
                lens.push(one.len() - start);
            }
            let mut many = one.clone();
            let mut at = 0;
            for &len in &lens {
                format::seal(&mut one[at..at + len], salt);
                at += len;
            }
            seal_frames(salt, &mut many, lens.iter().copied());
            assert_eq!(many, one, "{count} frames");
        }
    }

    /// Runs of 0 to 10 sealed frames of mixed sizes: none reported when all are good, and
    /// exactly the first damaged one when one or two are damaged.
    #[test]
    fn first_mismatch_finds_the_first_damaged_frame() {
        let d = data(10_000);
        let salt = 0x5eed;
        for count in 0..11usize {
            let frames: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    let mut f = Vec::new();
                    format::push_frame(&mut f, i as u64 + 1, 0, &d[i * 7..i * 7 + (i * 53) % 300]);
                    format::seal(&mut f, salt);
                    f
                })
                .collect();
            let view = |fs: &[Vec<u8>]| first_mismatch(salt, fs.iter().map(|f| &f[..]));
            assert_eq!(view(&frames), None, "{count} good frames");
            for bad in 0..count {
                for also in [None, Some(count - 1)] {
                    let mut damaged = frames.clone();
                    let f = &mut damaged[bad];
                    let at = 4 + (bad * 11) % (f.len() - 8);
                    f[at] ^= 0x20;
                    if let Some(j) = also.filter(|&j| j > bad) {
                        let n = damaged[j].len();
                        damaged[j][n / 2] ^= 1;
                    }
                    assert_eq!(view(&damaged), Some(bad), "{count} frames, frame {bad} damaged at {at}");
                }
            }
        }
    }
}
