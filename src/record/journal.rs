//! The event journal, `events/journal.jsonl`: one JSON line per event
//! window as the recorder merges them (why: `impact`, `button`, `signal`…;
//! when; the window; an impact's peak; whether the car was parked), and
//! one per clip a parked camera recorded because something moved
//! (`motion`, not protected: it is loop-recorded like the rest), appended
//! and flushed to the card as they happen, so that the recordings list can
//! say why footage was kept after a restart or a power cut. A window that
//! grows is appended again with the same `at`; the later line wins. A line
//! cut by a power cut or damaged is skipped. The journal is bounded: past
//! [`MAX_LINES`] lines it is rewritten (to a temporary file, renamed) with
//! the newest [`KEEP`] windows.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::sync::lock;

/// Lines before the journal is rewritten.
pub const MAX_LINES: usize = 4000;
/// Windows kept when it is.
pub const KEEP: usize = 1000;

/// One event window.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Unix seconds of the (first) trigger: the window's identity.
    pub at: f64,
    pub reason: String,
    /// Unix seconds of the window.
    pub from: f64,
    pub to: f64,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_g: Option<f64>,
    /// It happened while the car was parked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    max_lines: usize,
    keep: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    records: VecDeque<Record>,
    lines: usize,
}

impl Journal {
    /// Reads `dir/journal.jsonl` (missing: empty).
    pub fn open(dir: &Path) -> Self {
        Self::bounded(dir, MAX_LINES, KEEP)
    }

    fn bounded(dir: &Path, max_lines: usize, keep: usize) -> Self {
        let path = dir.join("journal.jsonl");
        let mut records: VecDeque<Record> = VecDeque::new();
        let mut lines = 0;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
                lines += 1;
                let Ok(r) = serde_json::from_slice::<Record>(&line) else {
                    continue;
                };
                match records.iter_mut().rev().find(|x| x.at == r.at) {
                    Some(x) => *x = r,
                    None => records.push_back(r),
                }
            }
        }
        while records.len() > keep {
            records.pop_front();
        }
        Self {
            path,
            max_lines,
            keep,
            inner: Mutex::new(Inner { records, lines }),
        }
    }

    /// Every window kept, oldest first.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.inner).records.iter().cloned().collect()
    }

    /// Records a window (new, or grown: the same `at`) and flushes it to
    /// the card.
    pub fn append(&self, r: &Record) -> io::Result<()> {
        let mut i = lock(&self.inner);
        match i.records.iter_mut().rev().find(|x| x.at == r.at) {
            Some(x) => *x = r.clone(),
            None => {
                i.records.push_back(r.clone());
                if i.records.len() > self.keep {
                    i.records.pop_front();
                }
            }
        }
        if i.lines >= self.max_lines {
            self.rewrite(&i.records)?;
            i.lines = i.records.len();
            return Ok(());
        }
        let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&line)?;
        f.sync_data()?;
        i.lines += 1;
        Ok(())
    }

    fn rewrite(&self, records: &VecDeque<Record>) -> io::Result<()> {
        let tmp = self.path.with_extension("jsonl.new");
        let mut f = File::create(&tmp)?;
        for r in records {
            let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: f64, to: f64) -> Record {
        Record {
            at,
            reason: "impact".into(),
            from: at - 10.0,
            to,
            count: 1,
            peak_g: Some(2.5),
            parked: false,
        }
    }

    #[test]
    fn windows_survive_a_restart_a_grown_one_once_and_a_torn_line_is_skipped() {
        let dir = crate::ota::scratch("journal");
        let j = Journal::open(&dir);
        j.append(&rec(100.0, 110.0)).unwrap();
        j.append(&rec(200.0, 210.0)).unwrap();
        j.append(&rec(100.0, 130.0)).unwrap();
        // A power cut mid-line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"at\":300.0,\"rea").unwrap();
        let again = Journal::open(&dir);
        assert_eq!(again.records(), vec![rec(100.0, 130.0), rec(200.0, 210.0)]);
        // The next window after the torn line is read back too.
        f.write_all(b"\n").unwrap();
        again.append(&rec(400.0, 410.0)).unwrap();
        assert_eq!(Journal::open(&dir).records().len(), 3);
    }

    #[test]
    fn it_stays_bounded() {
        let dir = crate::ota::scratch("journal-bound");
        let j = Journal::bounded(&dir, 40, 10);
        for k in 0..50 {
            j.append(&rec(k as f64, k as f64 + 1.0)).unwrap();
        }
        let lines = fs::read_to_string(dir.join("journal.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 40, "{lines}");
        let back = Journal::bounded(&dir, 40, 10).records();
        assert_eq!(back.len(), 10);
        assert_eq!(back.last().unwrap().at, 49.0);
    }
}
