//! The index of finished segments: for each, its name, moment (sequence
//! number), camera, start, duration, frames, bytes and whether an event
//! protects it; in recording order (by moment, then camera). The store keeps it current as segments close, move to
//! `events/` and are deleted, and rebuilds it at start-up, so that events,
//! loop deletion and the recordings list never read a segment file.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::names::CameraTag;

/// A segment's place in the index: its moment, then its camera.
pub type Key = (u64, CameraTag);

/// One finished segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub seq: u64,
    /// The camera's id, as the name says ("" on a card from before ids: the
    /// first camera's).
    pub camera: CameraTag,
    /// Wall-clock time of the first frame (what the name says).
    #[serde(skip)]
    pub start: SystemTime,
    pub duration_ms: u64,
    pub frames: u64,
    pub bytes: u64,
    pub protected: bool,
    /// Whether the wall clock was synchronised when it began (`None`: the
    /// file does not say).
    pub clock_synced: Option<bool>,
    /// Frames seconds apart, played back at the camera's rate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timelapse: bool,
    /// The monotonic span of the frames, for segments recorded since
    /// start-up (the clock events are matched on; a step of the wall clock
    /// cannot move it).
    #[serde(skip)]
    pub mono: Option<(Duration, Duration)>,
}

impl Entry {
    pub fn key(&self) -> Key {
        (self.seq, self.camera)
    }

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

/// The finished segments, keyed by moment and camera.
#[derive(Debug, Default)]
pub struct Index {
    entries: BTreeMap<Key, Entry>,
    /// Bytes of unprotected and of protected segments.
    bytes: [u64; 2],
}

impl Index {
    /// Adds or replaces a segment.
    pub fn insert(&mut self, e: Entry) {
        self.remove(e.key());
        self.bytes[usize::from(e.protected)] += e.bytes;
        self.entries.insert(e.key(), e);
    }

    /// Removes a segment.
    pub fn remove(&mut self, key: Key) -> Option<Entry> {
        let e = self.entries.remove(&key)?;
        self.bytes[usize::from(e.protected)] -= e.bytes;
        Some(e)
    }

    /// Marks a segment protected (moved to `events/`).
    pub fn protect(&mut self, key: Key) {
        if let Some(mut e) = self.remove(key) {
            e.protected = true;
            self.insert(e);
        }
    }

    pub fn get(&self, key: Key) -> Option<&Entry> {
        self.entries.get(&key)
    }

    /// The oldest moment with a segment of one kind: every such segment of
    /// it (each camera's), so loop deletion takes moments whole.
    pub fn oldest_moment(&self, protected: bool) -> Vec<Entry> {
        let Some(seq) = self.oldest(protected).map(|e| e.seq) else {
            return Vec::new();
        };
        self.entries
            .range((seq, CameraTag::NONE)..)
            .take_while(|(k, _)| k.0 == seq)
            .map(|(_, e)| e)
            .filter(|e| e.protected == protected)
            .cloned()
            .collect()
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
        self.entries.keys().next_back().map(|k| k.0)
    }

    /// Unprotected segments holding footage inside `w`, newest first. A
    /// walk over the index in memory: microseconds for thousands of
    /// segments, and no file is read.
    pub fn unprotected_in(&self, w: &Window) -> Vec<Key> {
        self.entries
            .values()
            .rev()
            .filter(|e| !e.protected && w.covers(e))
            .map(Entry::key)
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
            camera: CameraTag::NONE,
            start: UNIX_EPOCH + Duration::from_secs(start_s),
            duration_ms: 60_000,
            frames: 1500,
            bytes: 1000 + seq,
            protected,
            clock_synced: None,
            timelapse: false,
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
        ix.protect((2, CameraTag::NONE));
        assert_eq!(ix.bytes(false), 1001);
        assert_eq!(ix.bytes(true), 1002 + 1003);
        ix.insert(entry(1, 100, false)); // replacing counts once
        assert_eq!(ix.bytes(false), 1001);
        assert_eq!(ix.remove((1, CameraTag::NONE)).map(|e| e.seq), Some(1));
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
        let seqs: Vec<u64> = ix.unprotected_in(&w).iter().map(|k| k.0).collect();
        assert_eq!(seqs, vec![999, 998]);
    }

    #[test]
    fn the_oldest_moment_is_every_camera_s_segment_of_it() {
        let mut ix = Index::default();
        for seq in [4, 5] {
            for id in ["front", "rear"] {
                let mut e = entry(seq, seq * 60, false);
                e.camera = CameraTag::new(id).unwrap();
                e.name = format!("{seq}-{id}");
                ix.insert(e);
            }
        }
        // An older card's untagged file of moment 3, and a protected rear.
        ix.insert(entry(3, 0, false));
        ix.protect((4, CameraTag::new("rear").unwrap()));
        let names = |v: Vec<Entry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(names(ix.oldest_moment(false)), vec!["3"]);
        ix.remove((3, CameraTag::NONE));
        assert_eq!(names(ix.oldest_moment(false)), vec!["4-front"]);
        assert_eq!(names(ix.oldest_moment(true)), vec!["4-rear"]);
        ix.remove((4, CameraTag::new("front").unwrap()));
        assert_eq!(names(ix.oldest_moment(false)), vec!["5-front", "5-rear"]);
    }
}
