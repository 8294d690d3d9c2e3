//! The real file system's reads into partly initialised buffers (`read_full_into`),
//! against the trait's zero-filling default as the reference.

use segwal_core::fs::{Fs, OsFs};
use segwal_sim::SimFs;
use std::path::Path;

fn content() -> Vec<u8> {
    (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn read_full_into_matches_the_zero_filling_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, content()).unwrap();
    let os = OsFs.open(&path, false).unwrap();
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/d")).unwrap();
    let sf = sim.create(Path::new("/d/f")).unwrap();
    sf.write_all_at(&content(), 0).unwrap();
    // (buffer length before, bytes asked, offset): shorter, longer and empty buffers;
    // reads that stop at the end of the file inside or past the initialised part.
    for (before, len, offset) in [
        (0, 4096, 0),
        (100, 4096, 50),
        (5000, 4096, 1),
        (0, 20_000, 0),
        (300, 20_000, 9_000),
        (9_990, 50, 9_980),
        (0, 10, 10_000),
        (7, 0, 3),
    ] {
        let mut a = vec![0xAB; before];
        let mut b = vec![0xAB; before];
        let got_a = os.read_full_into(&mut a, len, offset).unwrap();
        let got_b = sf.read_full_into(&mut b, len, offset).unwrap();
        assert_eq!(got_a, got_b, "{before} {len} {offset}");
        assert!(a.len() >= got_a, "{before} {len} {offset}");
        assert_eq!(a[..got_a], b[..got_b], "{before} {len} {offset}");
        let expect = &content()[(offset as usize).min(10_000)..];
        assert_eq!(&a[..got_a], &expect[..got_a]);
    }
}
