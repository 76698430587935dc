//! The data directory: where segments live (`recordings/`, `events/`,
//! `damaged/`), how names map to times, how much space they use, and the
//! deletion rules (loop recording for `recordings/`, a separate oldest-first
//! quota for `events/`). Also start-up recovery of `.part` files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::Utc;
use crate::config::Budget;
use crate::record::mkv;

/// The file system holding the data directory.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

pub fn disk(dir: &Path) -> io::Result<Disk> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let frag = st.fragment_size() as u64;
    let total = st.blocks() as u64 * frag;
    // Space an unprivileged writer can use; root's reserve is not ours.
    let free = st.blocks_available() as u64 * frag;
    let used = total.saturating_sub(st.blocks_free() as u64 * frag);
    Ok(Disk { total, used, free })
}

/// The directories under the data directory.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
    pub recordings: PathBuf,
    pub events: PathBuf,
    pub damaged: PathBuf,
}

/// Whether `name` is a segment name blackbox writes: `20261126T172600Z.mkv`,
/// possibly with `-N` before the extension. Nothing else is ever opened,
/// so no name can reach outside the data directory.
pub fn valid_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".mkv") else {
        return false;
    };
    let (time, suffix) = match stem.split_once('-') {
        Some((t, n)) => (t, Some(n)),
        None => (stem, None),
    };
    let b = time.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && suffix
            .is_none_or(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|c| c.is_ascii_digit()))
}

/// The UTC start time a segment name encodes.
pub fn name_time(name: &str) -> Option<SystemTime> {
    if !valid_name(name) {
        return None;
    }
    let n = |a: usize, b: usize| name[a..b].parse::<i64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (h, mi, s) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from civil date (the inverse of clock's conversion).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    (secs >= 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// A name for a segment starting at `t`.
pub fn name_for(t: SystemTime) -> String {
    format!("{}.mkv", Utc::from_system(t).compact())
}

/// A finished segment on disk.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SegmentFile {
    pub name: String,
    pub bytes: u64,
    pub protected: bool,
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            recordings: root.join("recordings"),
            events: root.join("events"),
            damaged: root.join("damaged"),
        }
    }

    /// Creates the directories.
    pub fn create(&self) -> io::Result<()> {
        for d in [&self.root, &self.recordings, &self.events, &self.damaged] {
            fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// Where a finished segment called `name` is, if it exists.
    pub fn find(&self, name: &str) -> Option<(PathBuf, bool)> {
        if !valid_name(name) {
            return None;
        }
        [(&self.recordings, false), (&self.events, true)]
            .into_iter()
            .map(|(d, protected)| (d.join(name), protected))
            .find(|(p, _)| p.is_file())
    }

    /// Finished segments in one directory, oldest first.
    pub fn list(&self, protected: bool) -> Vec<SegmentFile> {
        let dir = if protected {
            &self.events
        } else {
            &self.recordings
        };
        let mut out: Vec<SegmentFile> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                valid_name(&name).then_some(())?;
                let bytes = e.metadata().ok()?.len();
                Some(SegmentFile {
                    name,
                    bytes,
                    protected,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Bytes used by a directory's segment files (finished and `.part`).
    pub fn usage(&self, protected: bool) -> u64 {
        let dir = if protected {
            &self.events
        } else {
            &self.recordings
        };
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".mkv") || n.ends_with(".mkv.part")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Deletes the oldest unprotected segments until recordings use at most
    /// `max_usage` bytes and `min_free` bytes are free; then the oldest
    /// events until they use at most `event_max`. The segment being written
    /// is never in the list (it is a `.part`). Returns the names deleted.
    pub fn enforce(&self, max_usage: Budget, min_free: Budget, event_max: Budget) -> Vec<String> {
        let mut deleted = Vec::new();
        let Ok(d) = disk(&self.root) else {
            return deleted;
        };
        let (max_usage, min_free, event_max) = (
            max_usage.bytes(d.total),
            min_free.bytes(d.total),
            event_max.bytes(d.total),
        );
        let mut usage = self.usage(false);
        let mut free = d.free;
        for seg in self.list(false) {
            if usage <= max_usage && free >= min_free {
                break;
            }
            if fs::remove_file(self.recordings.join(&seg.name)).is_ok() {
                usage = usage.saturating_sub(seg.bytes);
                free += seg.bytes;
                deleted.push(seg.name);
            }
        }
        let mut events = self.usage(true);
        for seg in self.list(true) {
            if events <= event_max {
                break;
            }
            if fs::remove_file(self.events.join(&seg.name)).is_ok() {
                events = events.saturating_sub(seg.bytes);
                deleted.push(seg.name);
            }
        }
        if !deleted.is_empty() {
            sync_dir(&self.recordings);
            sync_dir(&self.events);
            log::info!("loop recording deleted {}", deleted.join(", "));
        }
        deleted
    }

    /// Moves a finished segment from `recordings/` to `events/`.
    pub fn protect(&self, name: &str) -> io::Result<bool> {
        if !valid_name(name) {
            return Ok(false);
        }
        let from = self.recordings.join(name);
        if !from.is_file() {
            return Ok(self.events.join(name).is_file());
        }
        fs::rename(&from, self.events.join(name))?;
        sync_dir(&self.recordings);
        sync_dir(&self.events);
        Ok(true)
    }

    /// Recovers every `.part` in `recordings/` and `events/`: cut at the last
    /// complete frame, finished and renamed; a file with nothing to keep is
    /// moved to `damaged/`. Returns one line per file.
    pub fn recover(&self) -> Vec<Recovery> {
        let mut out = Vec::new();
        for dir in [&self.recordings, &self.events] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut parts: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".mkv.part"))
                .collect();
            parts.sort();
            for part in parts {
                out.push(recover_one(&part, &self.damaged));
            }
        }
        out
    }
}

/// What recovery did with one file.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recovery {
    pub file: String,
    /// `recovered` or `damaged`.
    pub outcome: &'static str,
    pub frames: u64,
    pub detail: String,
}

/// Recovers one `.part` file (see [`Store::recover`]).
pub fn recover_one(part: &Path, damaged: &Path) -> Recovery {
    let file = part.display().to_string();
    let finished = PathBuf::from(file.trim_end_matches(".part"));
    let result = mkv::scan(part).and_then(|scan| {
        if !scan.usable() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                scan.problem.unwrap_or_else(|| "no complete frame".into()),
            ));
        }
        let summary = mkv::repair(part, &scan)?;
        fs::rename(part, &finished)?;
        if let Some(dir) = finished.parent() {
            sync_dir(dir);
        }
        Ok(summary)
    });
    match result {
        Ok(summary) => {
            log::info!(
                "recovered {file}: {} frames, {} ms",
                summary.frames,
                summary.duration_ms
            );
            Recovery {
                file,
                outcome: "recovered",
                frames: summary.frames,
                detail: format!("{} ms kept", summary.duration_ms),
            }
        }
        Err(e) => {
            let _ = fs::create_dir_all(damaged);
            let target = damaged.join(part.file_name().unwrap_or_default());
            let moved = fs::rename(part, &target).is_ok();
            log::warn!("{file} is damaged ({e}); moved to {}", target.display());
            Recovery {
                file,
                outcome: "damaged",
                frames: 0,
                detail: if moved {
                    format!("{e}; moved to {}", target.display())
                } else {
                    format!("{e}; could not move it")
                },
            }
        }
    }
}

/// fsync a directory so that creations, renames and deletions in it last.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert_eq!("80%".parse::<Budget>(), Ok(Budget::Percent(80.0)));
        assert_eq!("512MiB".parse::<Budget>(), Ok(Budget::Bytes(512 << 20)));
        assert_eq!("2 GiB".parse::<Budget>(), Ok(Budget::Bytes(2 << 30)));
        assert_eq!("4096".parse::<Budget>(), Ok(Budget::Bytes(4096)));
        assert!("lots".parse::<Budget>().is_err());
        assert!("120%".parse::<Budget>().is_err());
        assert_eq!(Budget::Percent(50.0).bytes(1000), 500);
    }

    #[test]
    fn names() {
        assert!(valid_name("20261126T172600Z.mkv"));
        assert!(valid_name("20261126T172600Z-2.mkv"));
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "20261126T172600Z.mkv.part",
            "x.mkv",
            "20261126T172600Z-.mkv",
            "2026112XT172600Z.mkv",
            "20261126T172600Z.mkv/..",
            "",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        assert_eq!(name_for(t), "20261126T172600Z.mkv");
        assert_eq!(name_time("20261126T172600Z.mkv"), Some(t));
        assert_eq!(
            name_time("20000229T120000Z-3.mkv"),
            Some(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
    }
}
