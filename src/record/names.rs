//! Segment file names: `00000042-20261126T172600Z.mkv`, a recording sequence
//! number then the UTC wall-clock time of the segment's first frame.
//!
//! The sequence number grows by one for every segment ever started on this
//! data directory (it continues from the largest one found at start-up), so
//! names sort in the order they were recorded whatever the clock did: two
//! segments in one second, a Pi 5 that booted in 1970 and was set by NTP an
//! hour later, GPS stepping the clock back. The time is for people; order,
//! retention and events never rely on it.
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

/// What a segment name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentName {
    pub seq: u64,
    pub start: SystemTime,
}

impl SegmentName {
    /// The finished file's name.
    pub fn file_name(&self) -> String {
        format!(
            "{:0width$}-{}.mkv",
            self.seq,
            Utc::from_system(self.start).compact(),
            width = SEQ_DIGITS
        )
    }

    /// The name while it is written.
    pub fn part_name(&self) -> String {
        format!("{}.part", self.file_name())
    }
}

/// Parses a finished segment's name; `None` for anything else.
pub fn parse(name: &str) -> Option<SegmentName> {
    let stem = name.strip_suffix(".mkv")?;
    let (seq, time) = stem.split_once('-')?;
    if !(SEQ_DIGITS..=SEQ_MAX_DIGITS).contains(&seq.len())
        || !seq.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(SegmentName {
        seq: seq.parse().ok()?,
        start: Utc::parse_compact(time)?,
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
        let n = SegmentName { seq: 42, start: t };
        assert_eq!(n.file_name(), "00000042-20261126T172600Z.mkv");
        assert_eq!(n.part_name(), "00000042-20261126T172600Z.mkv.part");
        assert_eq!(parse(&n.file_name()), Some(n));
        assert_eq!(parse_part(&n.part_name()), Some(n));
        assert_eq!(parse_part(&n.file_name()), None);
        // A later segment after the clock stepped back a day still sorts later.
        let later = SegmentName {
            seq: 43,
            start: t - Duration::from_secs(86_400),
        };
        assert!(later.file_name() > n.file_name());
        // Two in one second, and 9 -> 10.
        let a = SegmentName { seq: 9, start: t }.file_name();
        let b = SegmentName { seq: 10, start: t }.file_name();
        assert!(a < b);
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
            "",
            "-.mkv",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
