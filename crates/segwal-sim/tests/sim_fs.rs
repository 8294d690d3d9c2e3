//! The simulated file system keeps its promises: what survives a power loss is exactly
//! what was synced, faults fire where asked, space is accounted like fallocate does.

use std::path::Path;

use segwal_core::fs::Fs;
use segwal_sim::SimFs;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap()
}

#[test]
fn only_synced_content_and_entries_survive() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let a = fs.create(&d.join("a")).unwrap();
    a.write_all_at(b"hello", 0).unwrap();
    a.sync_data().unwrap();
    // Content durable, entry not: the file is gone after power loss.
    assert!(fs.power_loss().names(d).is_empty());
    fs.sync_dir(d).unwrap();
    a.write_all_at(b" world", 5).unwrap();
    assert_eq!(fs.read_file(&d.join("a")).unwrap(), b"hello world");
    let after = fs.power_loss();
    assert_eq!(after.read_file(&d.join("a")).unwrap(), b"hello");
    // A removal that was not synced is undone, with the durable content.
    fs.remove(&d.join("a")).unwrap();
    assert!(fs.names(d).is_empty());
    assert_eq!(fs.power_loss().read_file(&d.join("a")).unwrap(), b"hello");
    fs.sync_dir(d).unwrap();
    assert!(fs.power_loss().names(d).is_empty());
    // The handle still works on the unlinked file.
    let mut b = [0u8; 5];
    assert_eq!(a.read_at(&mut b, 0).unwrap(), 5);
}

#[test]
fn set_len_is_durable_only_when_synced() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let a = fs.create(&d.join("a")).unwrap();
    fs.sync_dir(d).unwrap();
    a.write_all_at(&[7u8; 100], 0).unwrap();
    a.sync_data().unwrap();
    a.set_len(10).unwrap();
    assert_eq!(a.len().unwrap(), 10);
    assert_eq!(fs.power_loss().read_file(&d.join("a")).unwrap().len(), 100);
    a.sync_data().unwrap();
    assert_eq!(fs.power_loss().read_file(&d.join("a")).unwrap().len(), 10);
}

#[test]
fn torn_power_loss_keeps_a_prefix_of_unsynced_changes() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let a = fs.create(&d.join("a")).unwrap();
    fs.sync_dir(d).unwrap();
    a.write_all_at(b"0123", 0).unwrap();
    a.sync_data().unwrap();
    a.write_all_at(b"4567", 4).unwrap();
    a.write_all_at(b"89ab", 8).unwrap();
    let full = b"0123456789ab";
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let c = fs.power_loss_torn(seed).read_file(&d.join("a")).unwrap();
        assert!(c.len() >= 4 && c.len() <= 12, "{c:?}");
        assert_eq!(&c[..4], b"0123");
        // Each byte is either what was written or a zero of a torn tail, and once a
        // byte is missing nothing after it survived.
        let mut hole = false;
        for (i, &b) in c.iter().enumerate() {
            if b != full[i] {
                assert_eq!(b, 0);
                hole = true;
            } else {
                assert!(!hole || b == 0, "byte {i} survived after a hole: {c:?}");
            }
        }
        seen.insert(c.len());
    }
    assert!(seen.len() > 4, "torn lengths vary: {seen:?}");
}

#[test]
fn faults() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap(); // op 0
    fs.sync_dir(Path::new("/")).unwrap(); // op 1
    let a = fs.create(&d.join("a")).unwrap(); // op 2
    fs.fail_op(4, libc::EIO);
    a.write_all_at(b"x", 0).unwrap(); // op 3
    assert_eq!(errno(a.write_all_at(b"y", 1).unwrap_err()), libc::EIO); // op 4
    a.write_all_at(b"z", 1).unwrap(); // op 5
    assert_eq!(fs.read_file(&d.join("a")).unwrap(), b"xz");
    // A failed fsync loses its writes for good, though reads still see them.
    fs.sync_dir(d).unwrap();
    fs.fail_next_sync(libc::EIO);
    assert_eq!(errno(a.sync_data().unwrap_err()), libc::EIO);
    a.sync_data().unwrap();
    assert_eq!(fs.read_file(&d.join("a")).unwrap(), b"xz");
    assert_eq!(fs.power_loss().read_file(&d.join("a")).unwrap(), b"");
    fs.fail_next_sync_dir(libc::EIO);
    let _b = fs.create(&d.join("b")).unwrap();
    assert_eq!(errno(fs.sync_dir(d).unwrap_err()), libc::EIO);
    assert_eq!(fs.power_loss().names(d), vec!["a".to_string()]);
    // Death: this call and every later one fail, reads too.
    let n = fs.ops();
    fs.crash_at(n + 1);
    a.write_all_at(b"1", 2).unwrap();
    assert_eq!(errno(a.write_all_at(b"2", 3).unwrap_err()), libc::EIO);
    assert!(fs.crashed());
    assert!(a.sync_data().is_err());
    assert!(fs.list_dir(d).is_err());
    let mut buf = [0u8; 1];
    assert!(a.read_at(&mut buf, 0).is_err());
    assert!(fs.op_log().last().unwrap().contains("CRASH"));
}

#[test]
fn capacity_counts_sizes_and_preallocation() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs.set_capacity(Some(1000));
    let a = fs.create(&d.join("a")).unwrap();
    a.preallocate(600).unwrap();
    assert_eq!(fs.used_bytes(), 600);
    assert_eq!(a.len().unwrap(), 0, "preallocation keeps the size");
    // Writes inside the reservation need no space.
    a.write_all_at(&[1u8; 600], 0).unwrap();
    assert_eq!(fs.used_bytes(), 600);
    let b = fs.create(&d.join("b")).unwrap();
    assert_eq!(errno(b.preallocate(500).unwrap_err()), libc::ENOSPC);
    assert_eq!(fs.used_bytes(), 600);
    // A write crossing the limit writes what fits, then fails.
    assert_eq!(errno(b.write_all_at(&[2u8; 500], 0).unwrap_err()), libc::ENOSPC);
    assert_eq!(b.len().unwrap(), 400);
    assert_eq!(fs.used_bytes(), 1000);
    // Cutting frees space (and the preallocation past the cut).
    a.set_len(100).unwrap();
    assert_eq!(fs.used_bytes(), 500);
    // A removed file's space comes back once no handle is open on it.
    fs.remove(&d.join("b")).unwrap();
    assert_eq!(fs.used_bytes(), 500);
    drop(b);
    assert_eq!(fs.used_bytes(), 100);
    fs.set_capacity(None);
    fs.create(&d.join("c")).unwrap().preallocate(1 << 30).unwrap();
}

#[test]
fn locks_and_errors() {
    let fs = SimFs::new();
    let d = Path::new("/w");
    fs.create_dir_all(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let g = fs.lock_dir(d).unwrap().expect("first lock");
    assert!(fs.lock_dir(d).unwrap().is_none());
    // Power loss releases every lock.
    assert!(fs.power_loss().lock_dir(d).unwrap().is_some());
    drop(g);
    assert!(fs.lock_dir(d).unwrap().is_some());
    assert_eq!(
        fs.open(&d.join("nope"), false).err().unwrap().kind(),
        std::io::ErrorKind::NotFound
    );
    fs.create(&d.join("a")).unwrap();
    assert_eq!(errno(fs.create(&d.join("a")).err().unwrap()), libc::EEXIST);
    let ro = fs.open(&d.join("a"), false).unwrap();
    assert_eq!(errno(ro.write_all_at(b"x", 0).unwrap_err()), libc::EBADF);
}

#[test]
fn a_new_directory_is_durable_once_its_parent_is_synced() {
    let fs = SimFs::new();
    let d = Path::new("/top/w");
    fs.create_dir_all(d).unwrap();
    let a = fs.create(&d.join("a")).unwrap();
    a.write_all_at(b"x", 0).unwrap();
    a.sync_data().unwrap();
    fs.sync_dir(d).unwrap();
    // The file is durable in its directory, but the directory itself is not.
    assert!(fs.power_loss().read_file(&d.join("a")).is_none());
    fs.sync_dir(Path::new("/top")).unwrap();
    assert!(
        fs.power_loss().read_file(&d.join("a")).is_none(),
        "/top's own entry is not durable"
    );
    fs.sync_dir(Path::new("/")).unwrap();
    assert_eq!(fs.power_loss().read_file(&d.join("a")).unwrap(), b"x");
}
