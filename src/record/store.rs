//! The data directory: `recordings/` (loop recording), `events/` (protected
//! footage with its own quota, oldest first) and `damaged/` (files recovery
//! could not keep; never deleted). The store owns the [`Index`] of finished
//! segments, start-up recovery of `.part` files, space accounting, loop
//! deletion, protection and deletion, and opening a segment for a reader
//! even while it moves to `events/`.
//!
//! # Implementation
//! Only the recorder thread changes files; the HTTP side reads the index
//! (behind a mutex held for microseconds) and opens files. Segments are
//! ordered by their sequence number, never by name or time, so that a clock
//! step cannot make the loop delete newer footage first. The segment being
//! written is not in the index; its caller adds the bytes it has written
//! (not its preallocated length) when space is enforced.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Budget;
use crate::record::index::{Entry, Index, Window};
use crate::record::journal::Journal;
use crate::record::lock::{self, DataLock};
use crate::record::names::{self, SegmentName};
use crate::record::scan::{self, Depth};
use crate::sync::lock;

/// The file system holding the data directory.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

/// Space on the file system holding `dir`.
pub fn disk(dir: &Path) -> io::Result<Disk> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let frag = st.fragment_size() as u64;
    let total = st.blocks() as u64 * frag;
    // Space an unprivileged writer can use; root's reserve is not ours.
    let free = st.blocks_available() as u64 * frag;
    let used = total.saturating_sub(st.blocks_free() as u64 * frag);
    Ok(Disk { total, used, free })
}

/// fsyncs a directory so that creations, renames and deletions in it last.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if crate::faults::current().fail_dir_sync {
        return Err(crate::faults::eio());
    }
    File::open(dir)?.sync_all()
}

/// The space rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Recordings (finished and open) use at most this much.
    pub max_usage: Budget,
    /// Keep at least this much free.
    pub min_free: Budget,
    /// Events use at most this much.
    pub event_max: Budget,
}

/// What loop deletion did.
#[derive(Debug, Default)]
pub struct Enforced {
    pub deleted: Vec<String>,
    /// Deletions or directory syncs that failed.
    pub errors: Vec<String>,
}

/// Why a deletion was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    /// The segment being recorded.
    InUse,
    Io(String),
}

/// What recovery did with one file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Finished and renamed, with every frame that checks out.
    Recovered,
    /// Nothing to keep: moved to `damaged/`.
    Damaged,
    /// Could not be read or written now (a read-only or failing card): left
    /// as it is for the next start-up.
    Deferred,
}

/// One file's recovery.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recovery {
    pub file: String,
    pub outcome: Outcome,
    pub frames: u64,
    pub detail: String,
    /// The directory fsync after the rename failed: the rename may not last
    /// a power cut (the file would then be recovered again).
    pub dir_sync_error: Option<String>,
}

/// The data directory.
#[derive(Debug)]
pub struct Store {
    pub root: PathBuf,
    pub recordings: PathBuf,
    pub events: PathBuf,
    pub damaged: PathBuf,
    index: Mutex<Index>,
    next_seq: AtomicU64,
    /// Held by a store that records ([`Store::open`]).
    lock: Option<DataLock>,
    /// Why footage was protected: `events/journal.jsonl`.
    pub journal: Journal,
}

impl Store {
    /// The directories of `root`, with an empty index (see [`Store::open`]).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            recordings: root.join("recordings"),
            events: root.join("events"),
            damaged: root.join("damaged"),
            index: Mutex::new(Index::default()),
            next_seq: AtomicU64::new(1),
            lock: None,
            journal: Journal::open(&root.join("events")),
        }
    }

    /// Creates the directories, recovers every `.part` left by a crash or a
    /// power cut, and indexes the finished segments.
    /// The data directory is locked first ([`crate::record::lock`]): a
    /// directory another blackbox holds is refused.
    pub fn open(root: &Path) -> io::Result<(Self, Vec<Recovery>)> {
        let mut store = Self::at(root);
        fs::create_dir_all(&store.root)?;
        store.lock = Some(lock::take(&store.root)?);
        for d in [&store.recordings, &store.events, &store.damaged] {
            fs::create_dir_all(d)?;
        }
        // Read again now that the directory exists and is ours.
        store.journal = Journal::open(&store.events);
        let recovered = store.recover();
        store.rebuild_index();
        Ok((store, recovered))
    }

    /// Indexes every finished segment in `recordings/` and `events/` from its
    /// header and statistics (a structure scan for a file without them), and
    /// sets the next sequence number past every one in use.
    pub fn rebuild_index(&self) {
        let mut ix = Index::default();
        let mut max_seq = 0;
        let strangers: Vec<String> = [&self.recordings, &self.events, &self.damaged]
            .into_iter()
            .flat_map(|d| not_regular(d))
            .collect();
        if !strangers.is_empty() {
            log::warn!(
                "{} entries in the data directory are not regular files and are ignored: {}",
                strangers.len(),
                strangers.join(", ")
            );
        }
        for (dir, protected) in [(&self.recordings, false), (&self.events, true)] {
            for (name, path) in dir_names(dir) {
                let Some(n) = names::parse(&name) else {
                    continue;
                };
                max_seq = max_seq.max(n.seq);
                ix.insert(describe(&path, name, n, protected));
            }
        }
        for (name, _) in dir_names(&self.damaged)
            .into_iter()
            .chain(dir_names(&self.recordings))
            .chain(dir_names(&self.events))
        {
            if let Some(n) = names::parse(&name).or_else(|| names::parse_part(&name)) {
                max_seq = max_seq.max(n.seq);
            }
        }
        log::info!(
            "{} recordings, {} protected, indexed",
            ix.iter().filter(|e| !e.protected).count(),
            ix.iter().filter(|e| e.protected).count()
        );
        *lock(&self.index) = ix;
        self.next_seq.store(max_seq + 1, Ordering::SeqCst);
    }

    /// A new moment's sequence number (every camera's segment of it
    /// shares it).
    pub fn new_moment(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Where a segment is written.
    pub fn part_path(&self, name: &SegmentName) -> PathBuf {
        self.recordings.join(name.part_name())
    }

    /// Adds a segment that has just been finished and renamed.
    pub fn add(&self, entry: Entry) {
        lock(&self.index).insert(entry);
    }

    /// Every finished segment, oldest first.
    pub fn list(&self) -> Vec<Entry> {
        lock(&self.index).iter().cloned().collect()
    }

    /// Finished segments, in all.
    pub fn count(&self) -> usize {
        lock(&self.index).len()
    }

    /// Bytes of finished (recordings, events).
    pub fn usage(&self) -> (u64, u64) {
        let ix = lock(&self.index);
        (ix.bytes(false), ix.bytes(true))
    }

    /// The segment called `name`, if it exists.
    pub fn entry(&self, name: &str) -> Option<Entry> {
        let n = names::parse(name)?;
        lock(&self.index)
            .get((n.seq, n.camera))
            .filter(|e| e.name == name)
            .cloned()
    }

    fn dir_of(&self, protected: bool) -> &Path {
        if protected {
            &self.events
        } else {
            &self.recordings
        }
    }

    /// Moves a finished segment to `events/`. `Ok(false)` if there is no such
    /// segment; `Ok(true)` if it is protected now (or already was).
    pub fn protect(&self, name: &str) -> io::Result<bool> {
        let Some(e) = self.entry(name) else {
            return Ok(false);
        };
        if e.protected {
            return Ok(true);
        }
        fs::rename(self.recordings.join(name), self.events.join(name))?;
        lock(&self.index).protect(e.key());
        sync_dir(&self.recordings).and_then(|()| sync_dir(&self.events))?;
        Ok(true)
    }

    /// Protects every unprotected segment with footage inside `w`; returns
    /// the names moved and any that failed.
    pub fn protect_window(&self, w: &Window) -> (Vec<String>, Vec<String>) {
        let keys = lock(&self.index).unprotected_in(w);
        let (mut moved, mut failed) = (Vec::new(), Vec::new());
        for key in keys {
            let Some(name) = lock(&self.index).get(key).map(|e| e.name.clone()) else {
                continue;
            };
            match self.protect(&name) {
                Ok(_) => moved.push(name),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        (moved, failed)
    }

    /// Deletes a finished segment.
    pub fn delete(&self, name: &str) -> Result<(), DeleteError> {
        let e = self.entry(name).ok_or(DeleteError::NotFound)?;
        let dir = self.dir_of(e.protected);
        fs::remove_file(dir.join(name)).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => DeleteError::NotFound,
            _ => DeleteError::Io(err.to_string()),
        })?;
        lock(&self.index).remove(e.key());
        sync_dir(dir).map_err(|err| DeleteError::Io(format!("deleted, but {err}")))
    }

    /// Loop deletion: deletes the oldest unprotected segments until
    /// recordings (finished, plus `open_bytes` of the one being written) use
    /// at most `max_usage` and `min_free` is free; then the oldest events
    /// until they are within their quota.
    pub fn enforce(&self, limits: &Limits, open_bytes: u64) -> Enforced {
        let mut out = Enforced::default();
        let d = match disk(&self.root) {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(format!("cannot read free space: {e}"));
                return out;
            }
        };
        let max_usage = limits.max_usage.bytes(d.total);
        let min_free = limits.min_free.bytes(d.total);
        let event_max = limits.event_max.bytes(d.total);
        let mut free = d.free;
        let mut synced = [false, false];
        // damaged/ counts with the recordings and goes first, oldest first:
        // nothing in it plays.
        let mut damaged: std::collections::VecDeque<(String, PathBuf, u64)> =
            dir_names(&self.damaged)
                .into_iter()
                .map(|(name, path)| {
                    let bytes = fs::symlink_metadata(&path).map_or(0, |m| m.len());
                    (name, path, bytes)
                })
                .collect();
        let mut damaged_bytes: u64 = damaged.iter().map(|d| d.2).sum();
        let mut damaged_synced = false;
        for protected in [false, true] {
            loop {
                let (used, oldest) = {
                    let ix = lock(&self.index);
                    let used = ix.bytes(protected)
                        + if protected {
                            0
                        } else {
                            open_bytes + damaged_bytes
                        };
                    (used, ix.oldest_moment(protected))
                };
                let over = if protected {
                    used > event_max
                } else {
                    used > max_usage || free < min_free
                };
                if over
                    && !protected
                    && let Some((name, path, bytes)) = damaged.pop_front()
                {
                    damaged_bytes -= bytes;
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            free += bytes;
                            out.deleted.push(format!("damaged/{name}"));
                            damaged_synced = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => out
                            .errors
                            .push(format!("cannot delete damaged/{name}: {e}")),
                    }
                    continue;
                }
                if !over || oldest.is_empty() {
                    break;
                }
                // The oldest moment goes whole: every camera's segment of it.
                let mut stuck = false;
                for e in oldest {
                    match fs::remove_file(self.dir_of(protected).join(&e.name)) {
                        Ok(()) => {
                            free += e.bytes;
                            out.deleted.push(e.name.clone());
                            synced[usize::from(protected)] = true;
                        }
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => {
                            out.errors.push(format!("cannot delete {}: {err}", e.name));
                            stuck = true;
                            break;
                        }
                    }
                    lock(&self.index).remove(e.key());
                }
                if stuck {
                    break;
                }
            }
        }
        for (protected, changed) in [false, true].into_iter().zip(synced) {
            if changed && let Err(e) = sync_dir(self.dir_of(protected)) {
                out.errors.push(format!("directory sync failed: {e}"));
            }
        }
        if damaged_synced && let Err(e) = sync_dir(&self.damaged) {
            out.errors.push(format!("directory sync failed: {e}"));
        }
        if !out.deleted.is_empty() {
            log::info!("loop recording deleted {}", out.deleted.join(", "));
        }
        out
    }

    /// On a full card: deletes the oldest unprotected segment, whatever the
    /// budget says.
    /// Only a deletion that happened counts: a file that cannot be removed
    /// is passed over for the next oldest (at most a few), and `None` says
    /// nothing was freed.
    pub fn delete_oldest(&self) -> Option<String> {
        let candidates: Vec<String> = lock(&self.index)
            .iter()
            .filter(|e| !e.protected)
            .take(4)
            .map(|e| e.name.clone())
            .collect();
        for name in candidates {
            match self.delete(&name) {
                // Removed; only the directory sync failed.
                Ok(()) => {
                    log::warn!("disk full: deleted {name}");
                    return Some(name);
                }
                Err(DeleteError::Io(e)) if e.starts_with("deleted, but") => {
                    log::warn!("disk full: deleted {name} ({e})");
                    return Some(name);
                }
                Err(DeleteError::Io(e)) => log::debug!("disk full: cannot delete {name}: {e}"),
                Err(_) => {}
            }
        }
        None
    }

    /// Opens a finished segment for reading, wherever it is: a segment that
    /// moves to `events/` between two looks is found in its new place, and
    /// once open it can move or be deleted without disturbing the reader.
    pub fn open_segment(&self, name: &str) -> io::Result<Option<(File, Entry)>> {
        let Some(mut entry) = self.entry(name) else {
            return Ok(None);
        };
        // recordings/ first: a move only ever goes from there to events/.
        for protected in [false, true] {
            match open_regular(&self.dir_of(protected).join(name)) {
                Ok(f) => {
                    entry.protected = protected;
                    return Ok(Some((f, entry)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // A link or a FIFO planted under a segment's name.
                Err(e)
                    if e.kind() == io::ErrorKind::InvalidInput
                        || e.raw_os_error() == Some(nix::libc::ELOOP) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Recovers every `.part` in `recordings/` and `events/`.
    pub fn recover(&self) -> Vec<Recovery> {
        let mut out = Vec::new();
        for dir in [&self.recordings, &self.events] {
            for (name, path) in dir_names(dir) {
                if name.ends_with(".mkv.part") {
                    out.push(recover_one(&path, &self.damaged));
                }
            }
        }
        out
    }

    /// Recovers one segment whose writing went wrong (a failed sync, a write
    /// error) and indexes what was kept.
    pub fn recover_segment(
        &self,
        part: &Path,
        mono: Option<(std::time::Duration, std::time::Duration)>,
    ) -> Recovery {
        let r = recover_one(part, &self.damaged);
        if r.outcome == Outcome::Recovered
            && let Some(name) = part
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
            && let Some(n) = names::parse(name)
        {
            let mut e = describe(&self.recordings.join(name), name.to_string(), n, false);
            e.mono = mono;
            self.add(e);
        }
        r
    }
}

/// The regular files of a directory as (name, path), sorted by name (the
/// type as the directory says it, never following a link).
fn dir_names(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    out.sort();
    out
}

/// What in a directory is not a regular file (links, FIFOs, devices,
/// directories), as paths for the log.
fn not_regular(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path().display().to_string())
        .collect()
}

/// Opens `path` for reading if it is a regular file: a link is not
/// followed (ELOOP) and a FIFO does not block the opener.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(f)
}

/// An index entry for a finished file: from its statistics, else by
/// scanning its structure; a file that cannot be read is still listed (and
/// counted, and deletable) with what its name and size say.
fn describe(path: &Path, name: String, n: SegmentName, protected: bool) -> Entry {
    let bytes = fs::metadata(path).map_or(0, |m| m.len());
    let (frames, duration_ms, clock_synced, timelapse) = match scan::brief(path) {
        Ok(Some(b)) => (b.frames, b.duration_ms, b.clock_synced, b.timelapse),
        _ => match scan::scan(path, Depth::Structure) {
            Ok(s) => (
                s.frames.len() as u64,
                s.frames.last().map_or(0, |f| f.ts_ms + s.interval_ms()),
                s.clock_synced,
                s.timelapse,
            ),
            Err(e) => {
                log::warn!("cannot read {}: {e}", path.display());
                (0, 0, None, false)
            }
        },
    };
    Entry {
        name,
        seq: n.seq,
        camera: n.camera,
        start: n.start,
        duration_ms,
        frames,
        bytes,
        protected,
        clock_synced,
        timelapse,
        mono: None,
    }
}

/// Recovers one `.part` file: every frame up to the first that fails a
/// check is kept, the file is finished and renamed; a file with nothing to
/// keep is moved to `damaged/`, never deleted. Logs nothing: the caller
/// reports (at start-up each file; in the recorder, once per failure run).
pub fn recover_one(part: &Path, damaged: &Path) -> Recovery {
    let file = part.display().to_string();
    let file_name = part
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let finished = PathBuf::from(file.trim_end_matches(".part"));
    let named = names::parse_part(&file_name);
    // If the header lost the start time, the name still has it; a file
    // whose name says nothing gets its modification time.
    let fallback = named.map(|n| n.start).unwrap_or_else(|| {
        fs::metadata(part)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    let mut dir_sync_error = None;
    let result = scan::repair(part, fallback).and_then(|r| {
        fs::rename(part, &finished)?;
        if let Some(dir) = finished.parent()
            && let Err(e) = sync_dir(dir)
        {
            dir_sync_error = Some(e.to_string());
        }
        Ok(r)
    });
    match result {
        Ok(r) => {
            let mut detail = format!("{} ms kept", r.summary.duration_ms);
            if let Some(cut) = &r.cut {
                detail.push_str(&format!("; cut before {cut}"));
            }
            if r.header_rewritten {
                detail.push_str("; header rewritten");
            }
            Recovery {
                file,
                outcome: Outcome::Recovered,
                frames: r.summary.frames,
                detail,
                dir_sync_error,
            }
        }
        Err(scan::RepairError::Io(e)) => Recovery {
            file,
            outcome: Outcome::Deferred,
            frames: 0,
            detail: format!("{e}; left in place for the next start"),
            dir_sync_error,
        },
        Err(e) => {
            let _ = fs::create_dir_all(damaged);
            let target = damaged.join(&file_name);
            let moved = fs::rename(part, &target).is_ok();
            Recovery {
                file,
                outcome: Outcome::Damaged,
                frames: 0,
                detail: if moved {
                    format!("{e}; moved to {}", target.display())
                } else {
                    format!("{e}; could not move it")
                },
                dir_sync_error,
            }
        }
    }
}
