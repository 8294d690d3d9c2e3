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

/// What purge and truncate rely on, on every platform (Windows included: its files are
/// opened with FILE_SHARE_DELETE and deleted with POSIX semantics): a file another handle
/// has open can be removed, its name is free at once for a new file, and the open handle
/// keeps reading the old bytes; a file another handle reads can be cut short.
#[test]
fn open_files_can_be_removed_replaced_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part_1_0000000002.wal");
    let old = OsFs.create(&path).unwrap();
    old.write_all_at(b"old bytes", 0).unwrap();
    let reader = OsFs.open(&path, false).unwrap();

    OsFs.remove(&path).unwrap();
    assert!(!OsFs
        .list_dir(dir.path())
        .unwrap()
        .contains(&"part_1_0000000002.wal".to_string()));
    let new = OsFs.create(&path).unwrap();
    new.write_all_at(b"new", 0).unwrap();
    OsFs.sync_dir(dir.path()).unwrap();
    let mut buf = [0u8; 9];
    assert_eq!(reader.read_full_at(&mut buf, 0).unwrap(), 9);
    assert_eq!(&buf, b"old bytes");

    let reader2 = OsFs.open(&path, false).unwrap();
    new.set_len(1).unwrap();
    new.sync_data().unwrap();
    assert_eq!(reader2.len().unwrap(), 1);
    assert_eq!(reader2.read_full_at(&mut buf, 0).unwrap(), 1);
    assert_eq!(buf[0], b'n');
    drop((old, reader, reader2, new));
    // Nothing but the new file is left behind (no tombstone of the removed one).
    assert_eq!(
        OsFs.list_dir(dir.path()).unwrap(),
        vec!["part_1_0000000002.wal".to_string()]
    );
}

/// The directory lock: a second take fails while the first guard lives, from the same
/// process, through another spelling of the path; it is free again once dropped.
#[test]
fn lock_dir_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let guard = OsFs.lock_dir(dir.path()).unwrap();
    assert!(guard.is_some());
    assert!(OsFs.lock_dir(&dir.path().join(".")).unwrap().is_none());
    drop(guard);
    assert!(OsFs.lock_dir(dir.path()).unwrap().is_some());
}

/// `rename` moves a file onto a free name, and the result reads back after `sync_dir`.
#[test]
fn rename_moves_onto_a_free_name() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("next.tmp"), dir.path().join("part_1_0000000003.wal"));
    let f = OsFs.create(&from).unwrap();
    f.write_all_at(b"segment", 0).unwrap();
    f.sync_data().unwrap();
    OsFs.rename(&from, &to).unwrap();
    OsFs.sync_dir(dir.path()).unwrap();
    let mut buf = [0u8; 7];
    assert_eq!(OsFs.open(&to, false).unwrap().read_full_at(&mut buf, 0).unwrap(), 7);
    assert_eq!(&buf, b"segment");
    assert!(!from.exists());
}
