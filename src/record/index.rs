//! The index of finished segments: for each, its name, sequence number,
//! start, duration, frames, bytes and whether an event protects it; in
//! recording order. The store keeps it current as segments close, move to
//! `events/` and are deleted, and rebuilds it at start-up, so that events,
//! loop deletion and the recordings list never read a segment file.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One finished segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub seq: u64,
    /// Wall-clock time of the first frame (what the name says).
    #[serde(skip)]
    pub start: SystemTime,
    pub duration_ms: u64,
    pub frames: u64,
    pub bytes: u64,
    pub protected: bool,
    /// The monotonic span of the frames, for segments recorded since
    /// start-up (the clock events are matched on; a step of the wall clock
    /// cannot move it).
    #[serde(skip)]
    pub mono: Option<(Duration, Duration)>,
}

impl Entry {
    /// The wall-clock time of the last frame.
    pub fn end(&self) -> SystemTime {
        self.start + Duration::from_millis(self.duration_ms)
    }
}

/// A span of time, in both clocks where known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub from_wall: SystemTime,
    pub to_wall: SystemTime,
    pub from_mono: Duration,
    pub to_mono: Duration,
}

impl Window {
    /// Whether the segment `e` holds footage inside the window: by the
    /// monotonic clock when `e` was recorded since start-up, else by its
    /// wall-clock times.
    pub fn covers(&self, e: &Entry) -> bool {
        match e.mono {
            Some((first, last)) => first <= self.to_mono && last >= self.from_mono,
            None => e.start <= self.to_wall && e.end() >= self.from_wall,
        }
    }
}

/// The finished segments, keyed by sequence number.
#[derive(Debug, Default)]
pub struct Index {
    entries: BTreeMap<u64, Entry>,
    /// Bytes of unprotected and of protected segments.
    bytes: [u64; 2],
}

impl Index {
    /// Adds or replaces a segment.
    pub fn insert(&mut self, e: Entry) {
        self.remove(e.seq);
        self.bytes[usize::from(e.protected)] += e.bytes;
        self.entries.insert(e.seq, e);
    }

    /// Removes a segment.
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.bytes[usize::from(e.protected)] -= e.bytes;
        Some(e)
    }

    /// Marks a segment protected (moved to `events/`).
    pub fn protect(&mut self, seq: u64) {
        if let Some(mut e) = self.remove(seq) {
            e.protected = true;
            self.insert(e);
        }
    }

    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries.get(&seq)
    }

    /// Bytes used by unprotected (`false`) or protected (`true`) segments.
    pub fn bytes(&self, protected: bool) -> u64 {
        self.bytes[usize::from(protected)]
    }

    /// The oldest segment recorded of one kind.
    pub fn oldest(&self, protected: bool) -> Option<&Entry> {
        self.entries.values().find(|e| e.protected == protected)
    }

    /// Every segment, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest sequence number present.
    pub fn max_seq(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    /// Unprotected segments holding footage inside `w`, newest first. A
    /// walk over the index in memory: microseconds for thousands of
    /// segments, and no file is read.
    pub fn unprotected_in(&self, w: &Window) -> Vec<u64> {
        self.entries
            .values()
            .rev()
            .filter(|e| !e.protected && w.covers(e))
            .map(|e| e.seq)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(seq: u64, start_s: u64, protected: bool) -> Entry {
        Entry {
            name: format!("{seq}"),
            seq,
            start: UNIX_EPOCH + Duration::from_secs(start_s),
            duration_ms: 60_000,
            frames: 1500,
            bytes: 1000 + seq,
            protected,
            mono: Some((
                Duration::from_secs(seq * 60),
                Duration::from_secs(seq * 60 + 59),
            )),
        }
    }

    #[test]
    fn bytes_follow_every_change() {
        let mut ix = Index::default();
        ix.insert(entry(1, 100, false));
        ix.insert(entry(2, 160, false));
        ix.insert(entry(3, 220, true));
        assert_eq!(ix.bytes(false), 1001 + 1002);
        assert_eq!(ix.bytes(true), 1003);
        ix.protect(2);
        assert_eq!(ix.bytes(false), 1001);
        assert_eq!(ix.bytes(true), 1002 + 1003);
        ix.insert(entry(1, 100, false)); // replacing counts once
        assert_eq!(ix.bytes(false), 1001);
        assert_eq!(ix.remove(1).map(|e| e.seq), Some(1));
        assert_eq!(ix.bytes(false), 0);
        assert_eq!(ix.oldest(true).map(|e| e.seq), Some(2));
        assert_eq!(ix.max_seq(), Some(3));
    }

    #[test]
    fn windows_match_by_the_monotonic_clock_first() {
        let mut ix = Index::default();
        for seq in 0..1000 {
            // Wall-clock starts in reverse: the clock went backwards, yet
            // the monotonic spans follow the recording.
            ix.insert(entry(seq, 1_000_000 - seq * 60, false));
        }
        let w = Window {
            from_wall: UNIX_EPOCH,
            to_wall: UNIX_EPOCH,
            from_mono: Duration::from_secs(998 * 60 + 50),
            to_mono: Duration::from_secs(999 * 60 + 10),
        };
        assert_eq!(ix.unprotected_in(&w), vec![999, 998]);
    }
}
