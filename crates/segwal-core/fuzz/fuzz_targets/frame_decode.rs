//! `format::decode` and `SegmentHeader::decode` on arbitrary bytes: total, and never a
//! frame longer than the input or a payload above the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segwal_core::format::{self, Decoded, SegmentHeader};

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let salt = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let max = u64::from_le_bytes(data[4..12].try_into().unwrap());
    let buf = &data[12..];
    match format::decode(buf, salt, max) {
        Decoded::Frame(f) => {
            assert!(f.frame_len <= buf.len());
            assert_eq!(f.frame_len, format::frame_len(f.payload_len as usize));
            assert!(u64::from(f.payload_len) <= max);
        }
        Decoded::NeedMore(n) => assert!(n > buf.len()),
        Decoded::Invalid(_) => {}
    }
    if let Ok(h) = SegmentHeader::decode(buf) {
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    }
    let _ = format::trailer_frame_len(buf);
});
