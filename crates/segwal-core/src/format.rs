//! On-disk format, version 1: the segment header and record framing (docs/FORMAT.md).
//!
//! Pure byte layout: no files here, so every rule can be tested byte by byte.

pub const FORMAT_VERSION: u16 = 2;
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89SEGWAL\n";
pub const SEGMENT_HEADER_LEN: usize = 64;
pub const FRAME_HEADER_LEN: usize = 24;
pub const FRAME_TRAILER_LEN: usize = 8;
/// Header + trailer; the payload is padded to a multiple of 8 between them.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + FRAME_TRAILER_LEN;
/// The largest payload a frame can describe (its length must fit the u32 frame length).
pub const MAX_PAYLOAD_LEN: u64 = (u32::MAX as u64 - FRAME_OVERHEAD as u64) & !7;

/// A user record.
pub const KIND_RECORD: u8 = 1;
/// Frame flag (byte 21): when this frame was written, every byte before it in its
/// segment was already durable (fdatasync had returned). Recovery uses it to tell damage
/// to synced data (an error) from a hole that a power loss left in unsynced writes (a
/// torn tail): a valid sync-point frame after the damage proves the damage was synced.
pub const FLAG_SYNC_POINT: u8 = 1;

/// Bytes a frame occupies for a payload of `payload_len` bytes.
#[inline]
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_OVERHEAD + ((payload_len + 7) & !7)
}

/// The header every segment file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub partition: u16,
    pub index: u64,
    /// LSN the first record of this segment has (or will have).
    pub first_lsn: u64,
    /// Seeds every record checksum of this segment, so bytes left over from another
    /// file (or another segment of this one) never validate here.
    pub salt: u32,
    pub created_ms: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&u32::from(self.partition).to_le_bytes());
        b[16..24].copy_from_slice(&self.index.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[32..36].copy_from_slice(&self.salt.to_le_bytes());
        b[40..48].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, &'static str> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err("segment header is incomplete");
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic");
        }
        if crc32c::crc32c(&b[..60]) != le32(b, 60) {
            return Err("segment header checksum mismatch");
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != FORMAT_VERSION {
            return Err("unsupported segment format version");
        }
        if usize::from(u16::from_le_bytes([b[10], b[11]])) != SEGMENT_HEADER_LEN {
            return Err("unsupported segment header length");
        }
        let partition = u16::try_from(le32(b, 12)).map_err(|_| "partition out of range")?;
        // LSNs start at 1, and no log gets near 2^62 records: a header saying otherwise
        // was not written by segwal (and LSN arithmetic on it would overflow).
        let first_lsn = le64(b, 24);
        if first_lsn == 0 || first_lsn >= 1 << 62 {
            return Err("first LSN out of range");
        }
        Ok(SegmentHeader {
            partition,
            index: le64(b, 16),
            first_lsn,
            salt: le32(b, 32),
            created_ms: le64(b, 40),
        })
    }
}

/// What a frame header says, once its checksum has been verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub lsn: u64,
    pub payload_len: u32,
    /// Records of the same batch that follow this one (0: a single record or a batch's last).
    pub batch_left: u32,
    pub kind: u8,
    /// See [`FLAG_SYNC_POINT`].
    pub sync_point: bool,
    pub frame_len: usize,
}

impl FrameInfo {
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        FRAME_HEADER_LEN..FRAME_HEADER_LEN + self.payload_len as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Frame(FrameInfo),
    /// The buffer ends inside the frame; this many bytes (from its start) are needed.
    NeedMore(usize),
    /// Not a valid frame of this segment.
    Invalid(&'static str),
}

/// Appends an unsealed frame (checksum left zero) for `payload` to `buf`.
/// `seal` fills the checksum once the segment (and so the salt) is known.
pub fn push_frame(buf: &mut Vec<u8>, lsn: u64, batch_left: u32, payload: &[u8]) {
    let flen = frame_len(payload.len());
    let start = buf.len();
    buf.reserve(flen);
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&lsn.to_le_bytes());
    h[16..20].copy_from_slice(&batch_left.to_le_bytes());
    h[20] = KIND_RECORD;
    buf.extend_from_slice(&h);
    buf.extend_from_slice(payload);
    buf.resize(start + flen - FRAME_TRAILER_LEN, 0);
    buf.extend_from_slice(&(flen as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
}

/// Marks an unsealed frame as a sync point (see [`FLAG_SYNC_POINT`]).
#[inline]
pub fn mark_sync_point(frame: &mut [u8]) {
    frame[21] |= FLAG_SYNC_POINT;
}

/// Fills the checksum of one frame built by `push_frame`, seeded with the segment's salt.
/// The checksum covers everything in the frame but itself, trailer length included.
#[inline]
pub fn seal(frame: &mut [u8], salt: u32) {
    let crc = crc32c::crc32c_append(salt, checksummed(frame));
    store_checksum(frame, crc);
}

/// Writes a frame's checksum where it goes (its first and last four bytes).
#[inline]
pub fn store_checksum(frame: &mut [u8], crc: u32) {
    let n = frame.len();
    let crc = crc.to_le_bytes();
    frame[0..4].copy_from_slice(&crc);
    frame[n - 4..n].copy_from_slice(&crc);
}

/// Decodes the frame at the start of `buf`. `max_payload` bounds the length field
/// before anything trusts it (nothing is allocated from an unverified length).
pub fn decode(buf: &[u8], salt: u32, max_payload: u64) -> Decoded {
    let d = decode_unverified(buf, max_payload);
    match d {
        Decoded::Frame(f) if !checksum_matches(&buf[..f.frame_len], salt) => {
            Decoded::Invalid("record checksum mismatch")
        }
        d => d,
    }
}

/// [`decode`] but for the checksum: a `Frame` here is only a claim until
/// [`checksum_matches`] (or [`crate::verify`], many frames at once) confirms it.
#[inline]
pub fn decode_unverified(buf: &[u8], max_payload: u64) -> Decoded {
    if buf.len() < FRAME_HEADER_LEN {
        return Decoded::NeedMore(FRAME_HEADER_LEN);
    }
    let len = le32(buf, 4);
    if u64::from(len) > max_payload.min(MAX_PAYLOAD_LEN) {
        return Decoded::Invalid("record length out of range");
    }
    let kind = buf[20];
    if kind != KIND_RECORD || buf[21] & !FLAG_SYNC_POINT != 0 || buf[22..24] != [0, 0] {
        return Decoded::Invalid("unknown record kind");
    }
    let flen = frame_len(len as usize);
    if buf.len() < flen {
        return Decoded::NeedMore(flen);
    }
    let crc = le32(buf, 0);
    if le32(buf, flen - 8) as usize != flen || le32(buf, flen - 4) != crc {
        return Decoded::Invalid("record trailer mismatch");
    }
    Decoded::Frame(FrameInfo {
        lsn: le64(buf, 8),
        payload_len: len,
        batch_left: le32(buf, 16),
        kind,
        sync_point: buf[21] & FLAG_SYNC_POINT != 0,
        frame_len: flen,
    })
}

/// What a frame's checksum covers: everything but the checksum itself (see [`seal`]).
#[inline]
pub fn checksummed(frame: &[u8]) -> &[u8] {
    &frame[4..frame.len() - 4]
}

/// The checksum a frame carries.
#[inline]
pub fn stored_checksum(frame: &[u8]) -> u32 {
    le32(frame, 0)
}

/// Whether `frame` (whole, as [`decode_unverified`] delimited it) carries its own checksum.
#[inline]
pub fn checksum_matches(frame: &[u8], salt: u32) -> bool {
    crc32c::crc32c_append(salt, checksummed(frame)) == stored_checksum(frame)
}

/// The frame length a trailer claims (`tail` ends where the frame ends), for reading
/// a segment backwards from its end. Unverified until `decode` checks the frame.
pub fn trailer_frame_len(tail: &[u8]) -> Option<usize> {
    let n = tail.len();
    if n < FRAME_TRAILER_LEN {
        return None;
    }
    let flen = le32(tail, n - 8) as usize;
    (flen >= FRAME_OVERHEAD && flen.is_multiple_of(8)).then_some(flen)
}

#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// File name of a segment: `part_{partition}_{index:010}.wal`.
pub fn segment_file_name(partition: u16, index: u64) -> String {
    format!("part_{partition}_{index:010}.wal")
}

/// File name of the spare made ahead of time for segment `index`: a name of its own
/// (API.md), so that anything listing `part_*_*.wal` sees exactly the real segments. It
/// becomes `segment_file_name(partition, index)` by rename when it comes into use.
pub fn spare_file_name(partition: u16, index: u64) -> String {
    format!("part_{partition}_{index:010}.tmp")
}

/// Parses a segment file name; anything else in the directory is not ours. Indexes have
/// 10 digits, zero-padded; past 9,999,999,999 they simply have more (never a leading zero).
pub fn parse_segment_file_name(name: &str) -> Option<(u16, u64)> {
    parse_indexed(name, ".wal")
}

/// Parses a spare's file name (see [`spare_file_name`]).
pub fn parse_spare_file_name(name: &str) -> Option<(u16, u64)> {
    parse_indexed(name, ".tmp")
}

fn parse_indexed(name: &str, suffix: &str) -> Option<(u16, u64)> {
    let rest = name.strip_prefix("part_")?.strip_suffix(suffix)?;
    let (p, idx) = rest.split_once('_')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let padded = idx.len() == 10 || (idx.len() > 10 && !idx.starts_with('0'));
    if !digits(p) || !padded || !digits(idx) || (p.len() > 1 && p.starts_with('0')) {
        return None;
    }
    let index: u64 = idx.parse().ok()?;
    (index >= 1).then_some((p.parse().ok()?, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(lsn: u64, batch_left: u32, payload: &[u8], salt: u32) -> Vec<u8> {
        let mut b = Vec::new();
        push_frame(&mut b, lsn, batch_left, payload);
        seal(&mut b, salt);
        b
    }

    #[test]
    fn frame_round_trip_and_alignment() {
        for n in [0usize, 1, 7, 8, 9, 128, 4096] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let b = sealed(42, 3, &payload, 7);
            assert_eq!(b.len(), frame_len(n));
            assert_eq!(b.len() % 8, 0);
            match decode(&b, 7, u64::MAX) {
                Decoded::Frame(f) => {
                    assert_eq!((f.lsn, f.batch_left, f.frame_len), (42, 3, b.len()));
                    assert_eq!(&b[f.payload_range()], &payload[..]);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(trailer_frame_len(&b), Some(b.len()));
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let b = sealed(9, 0, b"hello, segwal!", 0xdead_beef);
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode(&d, 0xdead_beef, u64::MAX), Decoded::Frame(_)),
                "bit {bit} flip accepted"
            );
        }
    }

    #[test]
    fn another_segments_salt_is_rejected() {
        let b = sealed(1, 0, b"x", 1);
        assert!(matches!(decode(&b, 2, u64::MAX), Decoded::Invalid(_)));
    }

    #[test]
    fn torn_frames_need_more() {
        let b = sealed(1, 0, &[5u8; 100], 3);
        for cut in 0..b.len() {
            assert!(matches!(
                decode(&b[..cut], 3, u64::MAX),
                Decoded::NeedMore(_) | Decoded::Invalid(_)
            ));
        }
    }

    #[test]
    fn length_is_checked_before_use() {
        let mut b = sealed(1, 0, b"abc", 3);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&b, 3, 1 << 20), Decoded::Invalid("record length out of range"));
    }

    #[test]
    fn segment_header_round_trip_and_damage() {
        let h = SegmentHeader {
            partition: 65535,
            index: 9_999_999_999,
            first_lsn: 77,
            salt: 5,
            created_ms: 1,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(SegmentHeader::decode(&d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(segment_file_name(1, 1), "part_1_0000000001.wal");
        assert_eq!(parse_segment_file_name("part_1_0000000001.wal"), Some((1, 1)));
        assert_eq!(
            parse_segment_file_name("part_65535_9999999999.wal"),
            Some((65535, 9_999_999_999))
        );
        assert_eq!(segment_file_name(2, 10_000_000_000), "part_2_10000000000.wal");
        assert_eq!(
            parse_segment_file_name("part_2_10000000000.wal"),
            Some((2, 10_000_000_000))
        );
        assert_eq!(spare_file_name(1, 2), "part_1_0000000002.tmp");
        assert_eq!(parse_spare_file_name("part_1_0000000002.tmp"), Some((1, 2)));
        assert_eq!(parse_segment_file_name("part_1_0000000002.tmp"), None);
        for bad in [
            "part_1_1.wal",
            "part_65536_0000000001.wal",
            "part_1_0000000000.wal",
            "part_01_0000000001.wal",
            "part_1_00000000001.wal",
            "x_1_0000000001.wal",
            "part_1_0000000001.wal.tmp",
            "segwal.lock",
            "part__0000000001.wal",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }
}
