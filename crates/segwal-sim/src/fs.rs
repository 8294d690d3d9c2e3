//! An in-memory `Fs` for power-loss and fault-injection tests and the simulator.
//!
//! Every file has the content a reader sees (volatile) and the content that would survive
//! a power cut (durable); `sync_data` moves one to the other. Directory entries work the
//! same way: `create` and `remove` change what `list_dir`/`open` see at once, and only
//! `sync_dir` makes them durable; a directory made by `create_dir_all` survives a power
//! cut only once its parent was synced (its entry is in the parent, as with mkdir). `SimFs::power_loss` returns a new file system holding
//! only the durable state (optionally plus a random prefix of what was not synced, to
//! model torn writes), with every lock released.
//!
//! Faults:
//! - every mutating or syncing call (`create_dir_all`, `create`, `remove`, `rename`, `sync_dir`,
//!   `write_all_at`, `set_len`, `preallocate`, `sync_data`) is numbered from 0 (`ops`);
//! - `crash_at(n)`: call n and everything after it fail with EIO, reads included (the
//!   process is dead: nothing more reaches the disk);
//! - `fail_op(n, errno)`: call n fails once, later calls work (a failed `sync_data`
//!   loses its writes, as below);
//! - `fail_next_sync(errno)`: the next `sync_data` fails and, as Linux does after a failed
//!   writeback, the writes it should have made durable never will be (they stay visible
//!   to reads until the power goes);
//! - `fail_next_sync_dir(errno)`: the next `sync_dir` fails (the entries stay pending);
//! - `set_capacity(bytes)`: writes, growth and preallocation beyond it fail with ENOSPC
//!   (a write that crosses the limit writes what fits first, like `write(2)`).
//!   A file occupies max(size, preallocated); space comes back when a file is removed
//!   and no handle is open on it, or when `set_len` cuts it (which, like ftruncate on
//!   ext4 and XFS, also drops the preallocation past the new end);
//! - `set_latency(d)`: every mutating call takes `d` (work queues up behind it);
//! - `panic_at(n)`: call n panics;
//! - `flip_bit(path, offset, bit)`: damage on the medium (in what was written and what is durable).
//!
//! `open_handles()` counts the file handles open (descriptors, for bounds checks).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use segwal_core::fs::{Fs, FsFile};

use crate::rng::Rng;

type Ino = u64;

#[derive(Clone, Debug)]
enum FileOp {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, Ino),
    Unlink(String),
    /// One atomic step: after a power loss the file has either name, never both or none.
    Rename(String, String),
}

struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last successful `sync_data`, oldest first.
    pending: Vec<FileOp>,
    /// Bytes reserved by `preallocate` (the file occupies max(len, alloc)).
    alloc: u64,
    links: u32,
    handles: u32,
}

impl Inode {
    fn new() -> Inode {
        Inode {
            data: Vec::new(),
            durable: Vec::new(),
            pending: Vec::new(),
            alloc: 0,
            links: 0,
            handles: 0,
        }
    }

    fn footprint(&self) -> u64 {
        (self.data.len() as u64).max(self.alloc)
    }

    fn live(&self) -> bool {
        self.links > 0 || self.handles > 0
    }
}

#[derive(Default, Clone)]
struct Dir {
    live: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
    pending: Vec<DirOp>,
    /// Made by `create_dir_all` and its parent not synced since: gone after a power loss.
    entry_pending: bool,
}

#[derive(Default)]
struct State {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    dirs: BTreeMap<PathBuf, Dir>,
    locks: BTreeSet<PathBuf>,
    ops: u64,
    log: Vec<String>,
    crash_at: Option<u64>,
    dead: bool,
    fail_ops: BTreeMap<u64, i32>,
    fail_next_sync: Option<i32>,
    fail_next_sync_dir: Option<i32>,
    capacity: Option<u64>,
    panic_at: Option<u64>,
}

struct Shared {
    st: Mutex<State>,
    /// Microseconds every mutating call sleeps first (a slow disk), outside the lock.
    latency_us: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks for a mutating call, after the simulated latency.
    fn lock_slow(&self) -> MutexGuard<'_, State> {
        let us = self.latency_us.load(Ordering::Relaxed);
        if us > 0 {
            std::thread::sleep(Duration::from_micros(us));
        }
        self.lock()
    }
}

/// The simulated file system; clones share the same state.
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(|| err(libc::EINVAL))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err(libc::EINVAL))?;
    Ok((parent.to_path_buf(), name.to_string()))
}

fn apply(content: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { off, data } => write_into(content, *off, data),
        FileOp::SetLen(len) => content.resize(*len as usize, 0),
    }
}

fn write_into(content: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    if content.len() < off + data.len() {
        content.resize(off + data.len(), 0);
    }
    content[off..off + data.len()].copy_from_slice(data);
}

fn apply_dir(entries: &mut BTreeMap<String, Ino>, op: &DirOp) {
    match op {
        DirOp::Link(name, ino) => {
            entries.insert(name.clone(), *ino);
        }
        DirOp::Unlink(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = entries.remove(from) {
                entries.insert(to.clone(), ino);
            }
        }
    }
}

/// The content after writeback persisted a random subset of the pages that differ
/// between what was synced (`durable`) and what was written (`data`).
fn reordered_pages(mut keep: impl FnMut(usize) -> bool, durable: &[u8], data: &[u8]) -> Vec<u8> {
    const PAGE: usize = 4096;
    let pages = data.len().max(durable.len()).div_ceil(PAGE);
    let kept: Vec<bool> = (0..pages).map(&mut keep).collect();
    let mut len = durable.len();
    for (p, &k) in kept.iter().enumerate() {
        if k {
            len = len.max(data.len().min((p + 1) * PAGE));
        }
    }
    (0..len)
        .map(|i| {
            let from = if kept[i / PAGE] { data } else { durable };
            from.get(i).copied().unwrap_or(0)
        })
        .collect()
}

/// How much of a write of `len` bytes at `off` a tear keeps: any byte count, or (as
/// often) one ending on an 8-byte boundary (where frames end) or on a 512-byte sector.
fn torn_len(rng: &mut Rng, off: u64, len: usize) -> usize {
    let any = rng.upto(len);
    let align = match rng.u64() % 3 {
        0 => return any,
        1 => 8,
        _ => 512,
    };
    let end = off + any as u64;
    let aligned = end - end % align;
    aligned.saturating_sub(off) as usize
}

impl State {
    fn used(&self) -> u64 {
        self.inodes.values().filter(|i| i.live()).map(Inode::footprint).sum()
    }

    fn room(&self) -> u64 {
        self.capacity.map_or(u64::MAX, |c| c.saturating_sub(self.used()))
    }

    /// Numbers a mutating call and decides whether it fails.
    fn op(&mut self, what: impl FnOnce() -> String) -> io::Result<()> {
        if self.dead {
            return Err(err(libc::EIO));
        }
        let n = self.ops;
        self.ops += 1;
        let what = what();
        if self.panic_at == Some(n) {
            self.panic_at = None;
            panic!("SimFs: a panic injected at call {n} ({what})");
        }
        if self.crash_at.is_some_and(|c| n >= c) {
            self.dead = true;
            self.log.push(format!("{n}: CRASH at {what}"));
            return Err(err(libc::EIO));
        }
        if let Some(errno) = self.fail_ops.remove(&n) {
            self.log.push(format!("{n}: FAIL({errno}) {what}"));
            return Err(err(errno));
        }
        self.log.push(format!("{n}: {what}"));
        Ok(())
    }

    fn read_ok(&self) -> io::Result<()> {
        if self.dead {
            Err(err(libc::EIO))
        } else {
            Ok(())
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let (dir, name) = split(path)?;
        let d = self.dirs.get(&dir).ok_or_else(|| err(libc::ENOENT))?;
        d.live.get(&name).copied().ok_or_else(|| err(libc::ENOENT))
    }

    fn inode(&mut self, ino: Ino) -> &mut Inode {
        self.inodes.entry(ino).or_insert_with(Inode::new)
    }

    fn release(&mut self, ino: Ino) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.handles = i.handles.saturating_sub(1);
        }
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::from_state(State::default())
    }

    fn from_state(st: State) -> SimFs {
        SimFs {
            shared: Arc::new(Shared {
                st: Mutex::new(st),
                latency_us: AtomicU64::new(0),
            }),
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Mutating calls made so far (the number the next one gets).
    pub fn ops(&self) -> u64 {
        self.st().ops
    }

    /// What each mutating call was, for failure messages.
    pub fn op_log(&self) -> Vec<String> {
        self.st().log.clone()
    }

    /// Call `n` and every later call fail with EIO: the process died there.
    pub fn crash_at(&self, n: u64) {
        self.st().crash_at = Some(n);
    }

    /// Kills the process now (every later call fails).
    pub fn crash_now(&self) {
        self.st().dead = true;
    }

    pub fn crashed(&self) -> bool {
        self.st().dead
    }

    /// Call `n` panics (a bug in the caller's thread, as far as the engine can tell).
    pub fn panic_at(&self, n: u64) {
        self.st().panic_at = Some(n);
    }

    /// Call `n` fails once with `errno`.
    pub fn fail_op(&self, n: u64, errno: i32) {
        self.st().fail_ops.insert(n, errno);
    }

    /// The next `sync_data` fails with `errno` and loses the writes it should have synced.
    pub fn fail_next_sync(&self, errno: i32) {
        self.st().fail_next_sync = Some(errno);
    }

    /// The next `sync_dir` fails with `errno` (nothing becomes durable by it).
    pub fn fail_next_sync_dir(&self, errno: i32) {
        self.st().fail_next_sync_dir = Some(errno);
    }

    /// Makes every mutating call take this long (a slow disk: lets a test queue work
    /// behind a call in progress).
    pub fn set_latency(&self, d: Duration) {
        self.shared.latency_us.store(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Limits the bytes all files may occupy; `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.st().capacity = bytes;
    }

    /// Bytes occupied now (sizes and preallocations of live files).
    pub fn used_bytes(&self) -> u64 {
        self.st().used()
    }

    /// Files open right now (every handle counts once): descriptors, had it been real.
    pub fn open_handles(&self) -> u64 {
        self.st().inodes.values().map(|i| u64::from(i.handles)).sum()
    }

    /// The durable state only, as after a power cut. The capacity limit carries over.
    pub fn power_loss(&self) -> SimFs {
        self.power_loss_with(None, false)
    }

    /// Like `power_loss`, but a random prefix (seeded) of each file's unsynced changes
    /// and of each directory's unsynced entries made it to disk too; the last change kept
    /// may be a torn write: part of its bytes (often up to an 8-byte or 512-byte
    /// boundary), then zeros where the size grew but the data did not land.
    pub fn power_loss_torn(&self, seed: u64) -> SimFs {
        self.power_loss_with(Some(seed), false)
    }

    /// Like `power_loss_torn`, but unsynced writes reach the disk page by page (4 KiB) in
    /// any order, as writeback does: each page of a file holds either its new content or
    /// what was synced there before (zeros past the synced end), independently of the
    /// others, so a later page of a write can be there while an earlier one is not.
    /// (Files with an unsynced `set_len` keep a torn prefix instead.)
    pub fn power_loss_reordered(&self, seed: u64) -> SimFs {
        self.power_loss_with(Some(seed), true)
    }

    /// Like `power_loss_reordered`, but every unsynced write reached the disk except the
    /// 4 KiB page `page` of the file at `path` (directory changes as `power_loss_torn`): the
    /// hole writeback leaves when it persists all of a large write but one page.
    pub fn power_loss_losing_page(&self, path: &Path, page: usize) -> SimFs {
        let lost = self.st().dirs.get(path.parent().unwrap_or(path)).and_then(|d| {
            d.live
                .get(path.file_name().and_then(|n| n.to_str()).unwrap_or_default())
                .copied()
        });
        self.power_loss_as(Some(0), true, lost.map(|ino| (ino, page)))
    }

    /// The state a killed process leaves: everything written stays (in the page cache),
    /// durable or not, and its locks are released. A power loss later can still drop what
    /// nobody synced.
    pub fn after_kill(&self) -> SimFs {
        let st = self.st();
        let inodes = st
            .inodes
            .iter()
            .map(|(&ino, i)| {
                let copy = Inode {
                    data: i.data.clone(),
                    durable: i.durable.clone(),
                    pending: i.pending.clone(),
                    alloc: i.alloc,
                    links: i.links,
                    handles: 0,
                };
                (ino, copy)
            })
            .collect();
        SimFs::from_state(State {
            inodes,
            next_ino: st.next_ino,
            dirs: st.dirs.clone(),
            capacity: st.capacity,
            ..State::default()
        })
    }

    fn power_loss_with(&self, seed: Option<u64>, reorder: bool) -> SimFs {
        self.power_loss_as(seed, reorder, None)
    }

    fn power_loss_as(&self, seed: Option<u64>, reorder: bool, lost_page: Option<(Ino, usize)>) -> SimFs {
        let st = self.st();
        let mut rng = Rng::new(seed.unwrap_or(0) ^ 0x5eed);
        let mut new = State {
            capacity: st.capacity,
            next_ino: st.next_ino,
            ..State::default()
        };
        for (path, d) in &st.dirs {
            // A directory whose entry (or an ancestor's) never became durable is gone.
            if path
                .ancestors()
                .any(|a| st.dirs.get(a).is_some_and(|x| x.entry_pending))
            {
                continue;
            }
            let mut entries = d.durable.clone();
            if seed.is_some() {
                let k = rng.upto(d.pending.len());
                for op in &d.pending[..k] {
                    apply_dir(&mut entries, op);
                }
            }
            for &ino in entries.values() {
                if new.inodes.contains_key(&ino) {
                    continue;
                }
                let Some(old) = st.inodes.get(&ino) else { continue };
                let mut data = old.durable.clone();
                let writes_only = old.pending.iter().all(|op| matches!(op, FileOp::Write { .. }));
                if reorder && !old.pending.is_empty() && writes_only {
                    data = match lost_page {
                        Some(lost) => reordered_pages(|p| (ino, p) != lost, &old.durable, &old.data),
                        None => reordered_pages(|_| rng.u64().is_multiple_of(2), &old.durable, &old.data),
                    };
                } else if seed.is_some() && !old.pending.is_empty() {
                    let k = rng.upto(old.pending.len());
                    for op in &old.pending[..k] {
                        apply(&mut data, op);
                    }
                    if let Some(FileOp::Write { off, data: bytes }) = old.pending.get(k) {
                        if rng.u64().is_multiple_of(2) {
                            let kept = torn_len(&mut rng, *off, bytes.len());
                            let zeros = rng.upto(bytes.len() - kept);
                            write_into(&mut data, *off, &bytes[..kept]);
                            let end = *off as usize + kept + zeros;
                            if data.len() < end {
                                data.resize(end, 0);
                            }
                        }
                    }
                }
                new.inodes.insert(
                    ino,
                    Inode {
                        durable: data.clone(),
                        data,
                        pending: Vec::new(),
                        alloc: old.alloc,
                        links: 0,
                        handles: 0,
                    },
                );
            }
            for &ino in entries.values() {
                if let Some(i) = new.inodes.get_mut(&ino) {
                    i.links += 1;
                }
            }
            new.dirs.insert(
                path.clone(),
                Dir {
                    live: entries.clone(),
                    durable: entries,
                    pending: Vec::new(),
                    entry_pending: false,
                },
            );
        }
        SimFs::from_state(new)
    }

    /// Clears every fault armed and not yet fired (a reopen starts on a healthy disk).
    pub fn clear_faults(&self) {
        let mut st = self.st();
        st.crash_at = None;
        st.fail_ops.clear();
        st.fail_next_sync = None;
        st.fail_next_sync_dir = None;
    }

    /// Flips one bit of a file where it is written and where it is durable (damage on
    /// the medium, not a write: no call is counted, no fault applies).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) {
        let mut st = self.st();
        let Ok(ino) = st.lookup(path) else { return };
        let i = st.inode(ino);
        let at = offset as usize;
        for content in [&mut i.data, &mut i.durable] {
            if let Some(b) = content.get_mut(at) {
                *b ^= 1 << (bit & 7);
            }
        }
    }

    /// A file's content as a reader sees it (no fault applies).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.st();
        let ino = st.lookup(path).ok()?;
        st.inodes.get(&ino).map(|i| i.data.clone())
    }

    /// Creates or replaces a file's content, durably, entry included (for damage tests;
    /// no fault applies and no call is counted).
    pub fn write_file(&self, path: &Path, content: &[u8]) {
        let mut st = self.st();
        let Ok((dir, name)) = split(path) else { return };
        let ino = match st.lookup(path) {
            Ok(ino) => ino,
            Err(_) => {
                let ino = st.next_ino;
                st.next_ino += 1;
                st.inode(ino).links = 1;
                let d = st.dirs.entry(dir).or_default();
                d.live.insert(name.clone(), ino);
                d.durable.insert(name, ino);
                ino
            }
        };
        let i = st.inode(ino);
        i.data = content.to_vec();
        i.durable = content.to_vec();
        i.pending.clear();
    }

    /// Removes a file durably (for damage tests).
    pub fn remove_file(&self, path: &Path) {
        let mut st = self.st();
        let Ok((dir, name)) = split(path) else { return };
        let Some(d) = st.dirs.get_mut(&dir) else { return };
        let ino = d.live.remove(&name);
        d.durable.remove(&name);
        if let Some(ino) = ino {
            let i = st.inode(ino);
            i.links = i.links.saturating_sub(1);
        }
    }

    /// Names in `dir` as a reader sees them, sorted.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.st()
            .dirs
            .get(dir)
            .map(|d| d.live.keys().cloned().collect())
            .unwrap_or_default()
    }
}

struct LockGuard {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.shared.lock().locks.remove(&self.dir);
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("create_dir_all {}", dir.display()))?;
        for a in dir.ancestors() {
            if !a.as_os_str().is_empty() && !st.dirs.contains_key(a) {
                // Like mkdir: the new entry is in the parent, durable once it is synced.
                let pending = a.parent().is_some_and(|p| !p.as_os_str().is_empty());
                st.dirs.insert(
                    a.to_path_buf(),
                    Dir {
                        entry_pending: pending,
                        ..Dir::default()
                    },
                );
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.st();
        st.read_ok()?;
        let d = st.dirs.get(dir).ok_or_else(|| err(libc::ENOENT))?;
        Ok(d.live.keys().cloned().collect())
    }

    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn FsFile>> {
        let mut st = self.st();
        st.read_ok()?;
        let ino = st.lookup(path)?;
        st.inode(ino).handles += 1;
        Ok(Arc::new(SimFile {
            shared: self.shared.clone(),
            ino,
            write,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("create {}", path.display()))?;
        let (dir, name) = split(path)?;
        let ino = st.next_ino;
        let d = st.dirs.get_mut(&dir).ok_or_else(|| err(libc::ENOENT))?;
        if d.live.contains_key(&name) {
            return Err(err(libc::EEXIST));
        }
        d.live.insert(name.clone(), ino);
        d.pending.push(DirOp::Link(name.clone(), ino));
        st.next_ino += 1;
        let i = st.inode(ino);
        i.links = 1;
        i.handles = 1;
        Ok(Arc::new(SimFile {
            shared: self.shared.clone(),
            ino,
            write: true,
            name,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("remove {}", path.display()))?;
        let (dir, name) = split(path)?;
        let d = st.dirs.get_mut(&dir).ok_or_else(|| err(libc::ENOENT))?;
        let ino = d.live.remove(&name).ok_or_else(|| err(libc::ENOENT))?;
        d.pending.push(DirOp::Unlink(name));
        let i = st.inode(ino);
        i.links = i.links.saturating_sub(1);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("rename {} {}", from.display(), to.display()))?;
        let (dir, old) = split(from)?;
        let (to_dir, new) = split(to)?;
        if dir != to_dir {
            return Err(err(libc::EXDEV));
        }
        let d = st.dirs.get_mut(&dir).ok_or_else(|| err(libc::ENOENT))?;
        if d.live.contains_key(&new) {
            return Err(err(libc::EEXIST));
        }
        let ino = d.live.remove(&old).ok_or_else(|| err(libc::ENOENT))?;
        d.live.insert(new.clone(), ino);
        d.pending.push(DirOp::Rename(old, new));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("sync_dir {}", dir.display()))?;
        if let Some(errno) = st.fail_next_sync_dir.take() {
            return Err(err(errno));
        }
        if dir == Path::new(".") && !st.dirs.contains_key(dir) {
            return Ok(()); // the working directory of a relative path: always durable here
        }
        let d = st.dirs.get_mut(dir).ok_or_else(|| err(libc::ENOENT))?;
        for op in std::mem::take(&mut d.pending) {
            apply_dir(&mut d.durable, &op);
        }
        for (path, child) in st.dirs.iter_mut() {
            if path.parent() == Some(dir) {
                child.entry_pending = false;
            }
        }
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        let mut st = self.st();
        st.read_ok()?;
        if !st.locks.insert(dir.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(LockGuard {
            shared: self.shared.clone(),
            dir: dir.to_path_buf(),
        })))
    }
}

struct SimFile {
    shared: Arc<Shared>,
    ino: Ino,
    write: bool,
    name: String,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        self.shared.lock().release(self.ino);
    }
}

impl SimFile {
    fn writable(&self) -> io::Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(err(libc::EBADF))
        }
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.shared.lock();
        st.read_ok()?;
        let data = &st.inode(self.ino).data;
        let Ok(off) = usize::try_from(offset) else { return Ok(0) };
        if off >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("write {} @{offset} +{}", self.name, buf.len()))?;
        self.writable()?;
        let room = st.room();
        let i = st.inode(self.ino);
        let end = offset.saturating_add(buf.len() as u64);
        let limit = i.footprint().saturating_add(room);
        let (n, full) = if end <= limit {
            (buf.len(), true)
        } else {
            (limit.saturating_sub(offset).min(buf.len() as u64) as usize, false)
        };
        if n > 0 {
            let data = buf[..n].to_vec();
            write_into(&mut i.data, offset, &data);
            i.pending.push(FileOp::Write { off: offset, data });
        }
        if full {
            Ok(())
        } else {
            Err(err(libc::ENOSPC))
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        let fail = match st.op(|| format!("sync_data {}", self.name)) {
            Err(e) if st.dead => return Err(e),
            Err(e) => Some(e),
            Ok(()) => st.fail_next_sync.take().map(err),
        };
        let i = st.inode(self.ino);
        let pending = std::mem::take(&mut i.pending);
        if let Some(e) = fail {
            // The failed writeback's pages are dropped: they never reach the disk.
            return Err(e);
        }
        for op in &pending {
            apply(&mut i.durable, op);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.shared.lock();
        st.read_ok()?;
        Ok(st.inode(self.ino).data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("set_len {} {len}", self.name))?;
        self.writable()?;
        let room = st.room();
        let i = st.inode(self.ino);
        if len > i.footprint() && len - i.footprint() > room {
            return Err(err(libc::ENOSPC));
        }
        i.data.resize(len as usize, 0);
        i.alloc = i.alloc.min(len);
        i.pending.push(FileOp::SetLen(len));
        Ok(())
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        let mut st = self.shared.lock_slow();
        st.op(|| format!("preallocate {} {len}", self.name))?;
        self.writable()?;
        let room = st.room();
        let i = st.inode(self.ino);
        if len > i.footprint() && len - i.footprint() > room {
            return Err(err(libc::ENOSPC));
        }
        i.alloc = i.alloc.max(len);
        Ok(())
    }
}
