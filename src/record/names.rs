//! Segment file names: `00000042-20261126T172600Z-front.mkv`, a recording
//! sequence number, the UTC wall-clock time of the moment's first frame, and
//! the camera's id.
//!
//! The sequence number names a moment: every camera's segment of the same
//! stretch of time has the same one (and the same time), so a moment's files
//! sort together and pair by name. It grows by one for every moment ever
//! started on this data directory (it continues from the largest one found
//! at start-up), so names sort in the order they were recorded whatever the
//! clock did: two segments in one second, a Pi 5 that booted in 1970 and was
//! set by NTP an hour later, GPS stepping the clock back. The time is for
//! people; order, retention and events never rely on it.
//!
//! Cards recorded before cameras had ids hold `00000042-20261126T172600Z.mkv`:
//! such a file has no camera tag ([`CameraTag::NONE`]) and is the first
//! camera's.
//!
//! Nothing but a name this module accepts is ever opened by a request, so no
//! name can reach outside the data directory.

use std::time::SystemTime;

use crate::clock::Utc;

/// Digits the sequence number is padded to (names of up to 100 million
/// segments sort as text too).
const SEQ_DIGITS: usize = 8;
/// The most digits accepted.
const SEQ_MAX_DIGITS: usize = 12;

/// Longest camera id in a name (as `camera.id` allows).
const TAG_MAX: usize = 16;

/// The camera part of a name: a camera id (1 to 16 of `a-z 0-9 _ -`,
/// starting with a letter), or none for a file from before cameras had ids.
/// Small and `Copy`, so names stay cheap to pass around.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraTag {
    len: u8,
    bytes: [u8; TAG_MAX],
}

impl CameraTag {
    /// No camera in the name (the first camera's file, from an older card).
    pub const NONE: CameraTag = CameraTag {
        len: 0,
        bytes: [0; TAG_MAX],
    };

    /// The tag for camera `id`; `None` if `id` is no valid camera id.
    pub fn new(id: &str) -> Option<CameraTag> {
        let ok = !id.is_empty()
            && id.len() <= TAG_MAX
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return None;
        }
        let mut bytes = [0; TAG_MAX];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Some(CameraTag {
            len: id.len() as u8,
            bytes,
        })
    }

    /// The camera id, or "" for none.
    pub fn as_str(&self) -> &str {
        // Only ASCII ever goes in (checked by `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    pub fn is_none(&self) -> bool {
        self.len == 0
    }

    /// The camera this file is from: its own id, or `first` for an untagged
    /// file.
    pub fn camera_or<'a>(&'a self, first: &'a str) -> &'a str {
        if self.is_none() { first } else { self.as_str() }
    }
}

/// By id, as text (none first): a moment's files in name order.
impl Ord for CameraTag {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for CameraTag {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for CameraTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for CameraTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a segment name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentName {
    /// The moment's sequence number.
    pub seq: u64,
    /// The moment's start.
    pub start: SystemTime,
    pub camera: CameraTag,
}

impl SegmentName {
    /// The finished file's name.
    pub fn file_name(&self) -> String {
        let time = Utc::from_system(self.start).compact();
        if self.camera.is_none() {
            format!("{:0width$}-{time}.mkv", self.seq, width = SEQ_DIGITS)
        } else {
            format!(
                "{:0width$}-{time}-{}.mkv",
                self.seq,
                self.camera.as_str(),
                width = SEQ_DIGITS
            )
        }
    }

    /// The name while it is written.
    pub fn part_name(&self) -> String {
        format!("{}.part", self.file_name())
    }
}

/// Parses a finished segment's name; `None` for anything else.
pub fn parse(name: &str) -> Option<SegmentName> {
    let stem = name.strip_suffix(".mkv")?;
    let (seq, rest) = stem.split_once('-')?;
    if !(SEQ_DIGITS..=SEQ_MAX_DIGITS).contains(&seq.len())
        || !seq.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (time, camera) = match rest.split_once('-') {
        Some((time, id)) => (time, CameraTag::new(id)?),
        None => (rest, CameraTag::NONE),
    };
    Some(SegmentName {
        seq: seq.parse().ok()?,
        start: Utc::parse_compact(time)?,
        camera,
    })
}

/// Parses the name of a segment being written (`NAME.mkv.part`).
pub fn parse_part(name: &str) -> Option<SegmentName> {
    parse(name.strip_suffix(".part")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        let n = SegmentName {
            seq: 42,
            start: t,
            camera: CameraTag::NONE,
        };
        assert_eq!(n.file_name(), "00000042-20261126T172600Z.mkv");
        assert_eq!(n.part_name(), "00000042-20261126T172600Z.mkv.part");
        assert_eq!(parse(&n.file_name()), Some(n));
        assert_eq!(parse_part(&n.part_name()), Some(n));
        assert_eq!(parse_part(&n.file_name()), None);
        // A later segment after the clock stepped back a day still sorts later.
        let later = SegmentName {
            seq: 43,
            start: t - Duration::from_secs(86_400),
            camera: CameraTag::NONE,
        };
        assert!(later.file_name() > n.file_name());
        // Two in one second, and 9 -> 10.
        let at = |seq| SegmentName {
            seq,
            start: t,
            camera: CameraTag::NONE,
        };
        assert!(at(9).file_name() < at(10).file_name());
    }

    #[test]
    fn a_moment_s_cameras_pair_and_sort_together() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        let cam = |seq, id| SegmentName {
            seq,
            start: t,
            camera: CameraTag::new(id).unwrap(),
        };
        assert_eq!(
            cam(42, "front").file_name(),
            "00000042-20261126T172600Z-front.mkv"
        );
        assert_eq!(
            cam(42, "rear").file_name(),
            "00000042-20261126T172600Z-rear.mkv"
        );
        for id in ["front", "rear", "cab-2", "side_l"] {
            let n = cam(7, id);
            assert_eq!(parse(&n.file_name()), Some(n));
            assert_eq!(parse_part(&n.part_name()), Some(n));
            assert_eq!(n.camera.camera_or("front"), id);
        }
        let mut names = [
            cam(43, "front").file_name(),
            cam(42, "rear").file_name(),
            cam(42, "front").file_name(),
        ];
        names.sort();
        assert_eq!(names[0], cam(42, "front").file_name());
        assert_eq!(names[2], cam(43, "front").file_name());
        // An untagged file is the first camera's.
        assert_eq!(CameraTag::NONE.camera_or("front"), "front");
        assert_eq!(CameraTag::new("Front"), None);
        assert_eq!(CameraTag::new("a-very-long-camera-id"), None);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "00000042-20261126T172600Z.mkv/..",
            "00000042-20261126T172600Z.mkv.part",
            "20261126T172600Z.mkv",
            "0000042-20261126T172600Z.mkv",
            "000000000000042-20261126T172600Z.mkv",
            "0000004x-20261126T172600Z.mkv",
            "+0000042-20261126T172600Z.mkv",
            "00000042-20261131T172600Z.mkv",
            "00000042-20261126T172600Z.MKV",
            "00000042_20261126T172600Z.mkv",
            "00000042-20261126T172600Z-1.mkv",
            "00000042-20261126T172600Z-.mkv",
            "00000042-20261126T172600Z-Rear.mkv",
            "00000042-20261126T172600Z-rear.mkv.mkv",
            "00000042-20261126T172600Z-re/ar.mkv",
            "00000042-20261126T172600Z-rear-.mkv/..",
            "",
            "-.mkv",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
