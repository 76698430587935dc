//! The recording format: Matroska with one V_MJPEG track, written
//! append-only so that a file cut anywhere plays up to its last complete
//! frame, and checksummed so that recovery can prove which frames are
//! complete. This module owns the layout, the writer, and the finishing step
//! (cues, statistics, exact sizes) shared by a clean close and by recovery;
//! [`crate::record::scan`] reads it back.
//!
//! # Layout
//! ```text
//! 0    EBML header                     DocType "matroska" (constant bytes)
//!      Segment, size 8 bytes           unknown while writing, exact when finished
//!        Void, 128 bytes               becomes SeekHead -> Info, Tracks, Cues, Tags
//!        Info + CRC-32                 1 ms timestamps, DateUTC, Duration (patched),
//!                                      Title: whether the clock was synchronised
//!        Tracks + CRC-32               track 1: video, V_MJPEG, width x height;
//!                                      track 2: GPS, S_TEXT/UTF8, not shown by default;
//!                                      track 3: Acceleration, S_TEXT/UTF8, likewise
//!        Void                          pads the header to exactly 512 bytes
//! 512    Cluster, size 8 bytes         unknown while writing, exact when finished
//!          Timestamp, 8 bytes          ms since the segment's first frame
//!          BlockGroup                  one per frame:
//!            CRC-32                      of the Block element that follows
//!            Block                       track 1, ms relative to the cluster, JPEG
//!          BlockGroup                  one per GPS fix, the same shape:
//!            CRC-32
//!            Block                       track 2, ms relative, the fix as JSON
//!          BlockGroup                  the accelerometer's samples since the
//!            CRC-32                    last frame, the same shape:
//!            Block                       track 3, ms relative, JSON
//!        Cluster ...                   a new one at least every second
//!        Cues + CRC-32                 written when finished: one point per cluster
//!        Tags + CRC-32                 NUMBER_OF_FRAMES, so an index needs no scan
//! ```
//! The header is the same 512 bytes for every file of a size and start time,
//! so recovery can write it anew when a power cut damaged it. Fields patched
//! later are fixed-width, so patching never moves anything. Preallocated
//! space past the data reads as zeros, which is never a valid element.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::frame::Size;
use crate::record::ebml::{
    UNKNOWN_SIZE, put_float, put_id, put_int, put_master, put_master_crc, put_str, put_uint,
    put_uint_fixed, size_bytes, void,
};

pub const EBML: u32 = 0x1A45_DFA3;
pub const SEGMENT: u32 = 0x1853_8067;
pub const SEEK_HEAD: u32 = 0x114D_9B74;
pub const SEEK: u32 = 0x4DBB;
pub const SEEK_ID: u32 = 0x53AB;
pub const SEEK_POSITION: u32 = 0x53AC;
pub const INFO: u32 = 0x1549_A966;
pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
pub const DURATION: u32 = 0x4489;
pub const DATE_UTC: u32 = 0x4461;
pub const MUXING_APP: u32 = 0x4D80;
pub const WRITING_APP: u32 = 0x5741;
pub const TITLE: u32 = 0x7BA9;
pub const TRACKS: u32 = 0x1654_AE6B;
pub const TRACK_ENTRY: u32 = 0xAE;
pub const TRACK_NUMBER: u32 = 0xD7;
pub const TRACK_UID: u32 = 0x73C5;
pub const TRACK_TYPE: u32 = 0x83;
pub const FLAG_LACING: u32 = 0x9C;
pub const CODEC_ID: u32 = 0x86;
pub const TRACK_NAME: u32 = 0x536E;
pub const FLAG_DEFAULT: u32 = 0x88;
pub const VIDEO: u32 = 0xE0;
pub const PIXEL_WIDTH: u32 = 0xB0;
pub const PIXEL_HEIGHT: u32 = 0xBA;
pub const CLUSTER: u32 = 0x1F43_B675;
pub const CLUSTER_TIMESTAMP: u32 = 0xE7;
pub const BLOCK_GROUP: u32 = 0xA0;
pub const BLOCK: u32 = 0xA1;
pub const CUES: u32 = 0x1C53_BB6B;
pub const CUE_POINT: u32 = 0xBB;
pub const CUE_TIME: u32 = 0xB3;
pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
pub const CUE_TRACK: u32 = 0xF7;
pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
pub const TAGS: u32 = 0x1254_C367;
pub const TAG: u32 = 0x7373;
pub const TARGETS: u32 = 0x63C0;
pub const TAG_TRACK_UID: u32 = 0x63C5;
pub const SIMPLE_TAG: u32 = 0x67C8;
pub const TAG_NAME: u32 = 0x45A3;
pub const TAG_STRING: u32 = 0x4487;

/// The name of the statistics tag holding the number of frames.
pub const FRAMES_TAG: &str = "NUMBER_OF_FRAMES";
/// Every file's header is exactly this long; the first cluster starts here.
pub const HEADER_LEN: u64 = 512;
/// Bytes reserved after the Segment header for the SeekHead.
const SEEK_AREA: usize = 128;
/// Bytes of EBML header, Segment ID and its 8-byte size: where the Segment's
/// contents start (positions in SeekHead and Cues count from here).
pub const SEGMENT_DATA: u64 = 52;
/// A new cluster starts at least this often (in ms of the capture clock).
pub const CLUSTER_MS: u64 = 1000;
/// The recorder never leaves more than this between two frames of a
/// segment (it starts a new one), so a cluster further on is damage.
pub const MAX_GAP_MS: u64 = 10_000;
/// Matroska's DateUTC counts nanoseconds from 2001-01-01T00:00:00Z.
const MKV_EPOCH_UNIX: i64 = 978_307_200;
/// The file grows by preallocation in steps of this much: a few seconds of
/// 1080p, small enough not to distort space accounting on a small card.
const PREALLOCATE: u64 = 4 << 20;
/// Bytes a BlockGroup adds in front of its JPEG: group ID and size (5),
/// CRC-32 (6), Block ID and size (5), track, timecode and flags (4).
pub const GROUP_OVERHEAD: u64 = 20;
/// Bytes of a cluster's start: ID, 8-byte size, 10-byte timestamp element.
pub const CLUSTER_HEAD: u64 = 22;
/// The largest JPEG a 4-byte element size can hold.
pub const MAX_FRAME: usize = (1 << 28) - 64;
/// The video's track number, and the GPS track's.
pub const VIDEO_TRACK: u8 = 1;
pub const GPS_TRACK: u8 = 2;
/// The accelerometer's trace.
pub const ACCEL_TRACK: u8 = 3;
/// The largest GPS sample (one fix as JSON is about 250 bytes) or block of
/// the acceleration trace (a frame interval of 100 Hz samples, about 40
/// bytes each, is well under it).
pub const MAX_SAMPLE: usize = 4096;

/// What is known of a finished file when its header is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finished {
    /// Offset of the first byte after the last frame (where Cues start).
    pub cues_at: u64,
    pub tags_at: u64,
    pub end: u64,
    pub duration_ms: u64,
}

/// The EBML header: the same bytes in every file.
pub fn ebml_header() -> Vec<u8> {
    let mut body = Vec::new();
    put_uint(&mut body, 0x4286, 1); // EBMLVersion
    put_uint(&mut body, 0x42F7, 1); // EBMLReadVersion
    put_uint(&mut body, 0x42F2, 4); // EBMLMaxIDLength
    put_uint(&mut body, 0x42F3, 8); // EBMLMaxSizeLength
    put_str(&mut body, 0x4282, "matroska"); // DocType
    put_uint(&mut body, 0x4287, 4); // DocTypeVersion
    put_uint(&mut body, 0x4285, 2); // DocTypeReadVersion
    let mut out = Vec::new();
    put_master(&mut out, EBML, &body);
    out
}

fn date_utc_ns(started: SystemTime) -> i64 {
    let unix_ns = match started.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    };
    unix_ns - MKV_EPOCH_UNIX * 1_000_000_000
}

/// The Title that says the clock was synchronised when a segment began,
/// and the one that says it was not (older files have neither).
pub const CLOCK_SYNCED: &str = "clock synchronised";
pub const CLOCK_UNSYNCED: &str = "clock not synchronised";
/// Added to the title of a time-lapse (frames seconds apart, played at
/// the camera's rate).
pub const TIMELAPSE: &str = "; time-lapse";

/// The first [`HEADER_LEN`] bytes of a file of frames of `size` starting at
/// `started`: open (sizes unknown, no SeekHead) or, with `finished`, final.
/// `clock`: whether the wall clock was synchronised at `started`, if known.
pub fn header(
    size: Size,
    started: SystemTime,
    finished: Option<&Finished>,
    clock: Option<bool>,
    timelapse: bool,
) -> Vec<u8> {
    let mut out = ebml_header();
    put_id(&mut out, SEGMENT);
    match finished {
        None => out.extend_from_slice(&UNKNOWN_SIZE),
        Some(f) => out.extend_from_slice(&size_bytes(f.end - SEGMENT_DATA, 8)),
    }
    debug_assert_eq!(out.len() as u64, SEGMENT_DATA);

    let mut info = Vec::new();
    put_uint_fixed(&mut info, TIMESTAMP_SCALE, 1_000_000, 4);
    put_str(&mut info, MUXING_APP, "blackbox");
    put_str(
        &mut info,
        WRITING_APP,
        concat!("blackbox ", env!("CARGO_PKG_VERSION")),
    );
    put_int(&mut info, DATE_UTC, date_utc_ns(started));
    put_float(
        &mut info,
        DURATION,
        finished.map_or(0.0, |f| f.duration_ms as f64),
    );
    if clock.is_some() || timelapse {
        let synced = match clock {
            Some(true) => CLOCK_SYNCED,
            Some(false) => CLOCK_UNSYNCED,
            None => "",
        };
        let lapse = if timelapse { TIMELAPSE } else { "" };
        put_str(&mut info, TITLE, &format!("{synced}{lapse}"));
    }
    let mut info_el = Vec::new();
    put_master_crc(&mut info_el, INFO, &info);

    let mut video = Vec::new();
    put_uint_fixed(&mut video, PIXEL_WIDTH, u64::from(size.width), 4);
    put_uint_fixed(&mut video, PIXEL_HEIGHT, u64::from(size.height), 4);
    let mut entry = Vec::new();
    put_uint(&mut entry, TRACK_NUMBER, 1);
    put_uint(&mut entry, TRACK_UID, 1);
    put_uint(&mut entry, TRACK_TYPE, 1);
    put_uint(&mut entry, FLAG_LACING, 0);
    put_str(&mut entry, CODEC_ID, "V_MJPEG");
    put_master(&mut entry, VIDEO, &video);
    let mut tracks = Vec::new();
    put_master(&mut tracks, TRACK_ENTRY, &entry);
    // The GPS and the acceleration trace: subtitle-like samples, which
    // ffprobe lists and players can show, but do not unless asked.
    for (number, name) in [(GPS_TRACK, "GPS"), (ACCEL_TRACK, "Acceleration")] {
        let mut text = Vec::new();
        put_uint(&mut text, TRACK_NUMBER, u64::from(number));
        put_uint(&mut text, TRACK_UID, u64::from(number));
        put_uint(&mut text, TRACK_TYPE, 0x11);
        put_uint(&mut text, FLAG_LACING, 0);
        put_uint(&mut text, FLAG_DEFAULT, 0);
        put_str(&mut text, TRACK_NAME, name);
        put_str(&mut text, CODEC_ID, "S_TEXT/UTF8");
        put_master(&mut tracks, TRACK_ENTRY, &text);
    }
    let mut tracks_el = Vec::new();
    put_master_crc(&mut tracks_el, TRACKS, &tracks);

    let info_at = SEGMENT_DATA + SEEK_AREA as u64;
    let tracks_at = info_at + info_el.len() as u64;
    let mut seek_area = Vec::with_capacity(SEEK_AREA);
    if let Some(f) = finished {
        let mut seeks = Vec::new();
        for (id, at) in [
            (INFO, info_at),
            (TRACKS, tracks_at),
            (CUES, f.cues_at),
            (TAGS, f.tags_at),
        ] {
            let mut id_bytes = Vec::new();
            put_id(&mut id_bytes, id);
            let mut seek = Vec::new();
            put_master(&mut seek, SEEK_ID, &id_bytes);
            put_uint_fixed(&mut seek, SEEK_POSITION, at - SEGMENT_DATA, 8);
            put_master(&mut seeks, SEEK, &seek);
        }
        put_master_crc(&mut seek_area, SEEK_HEAD, &seeks);
    }
    let filler = SEEK_AREA - seek_area.len();
    seek_area.extend_from_slice(&void(filler));
    out.extend_from_slice(&seek_area);
    out.extend_from_slice(&info_el);
    out.extend_from_slice(&tracks_el);
    let pad = HEADER_LEN as usize - out.len();
    out.extend_from_slice(&void(pad));
    debug_assert_eq!(out.len() as u64, HEADER_LEN);
    out
}

/// The start of a cluster whose first frame is at `ts_ms`.
fn cluster_head(ts_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CLUSTER_HEAD as usize);
    put_id(&mut out, CLUSTER);
    out.extend_from_slice(&UNKNOWN_SIZE);
    put_uint_fixed(&mut out, CLUSTER_TIMESTAMP, ts_ms, 8);
    out
}

/// Everything of a block's BlockGroup but its payload (a JPEG, or a GPS
/// sample), which follows: the group, its CRC-32 over the Block element,
/// the Block's header.
pub fn group_head(track: u8, relative_ms: i16, payload: &[u8]) -> [u8; GROUP_OVERHEAD as usize] {
    let block_size = 4 + payload.len() as u64;
    let group_size = 6 + 5 + block_size;
    let mut block_head = [0u8; 9];
    block_head[0] = 0xA1;
    block_head[1..5].copy_from_slice(&size_bytes(block_size, 4));
    block_head[5] = 0x80 | track; // the track number, as a 1-byte EBML number
    block_head[6..8].copy_from_slice(&relative_ms.to_be_bytes());
    block_head[8] = 0x00; // no lacing; a BlockGroup without references is a keyframe
    let mut crc = crc32fast::Hasher::new();
    crc.update(&block_head);
    crc.update(payload);
    let crc = crc.finalize().to_le_bytes();
    let mut out = [0u8; GROUP_OVERHEAD as usize];
    out[0] = 0xA0;
    out[1..5].copy_from_slice(&size_bytes(group_size, 4));
    out[5..11].copy_from_slice(&[0xBF, 0x84, crc[0], crc[1], crc[2], crc[3]]);
    out[11..].copy_from_slice(&block_head);
    out
}

/// A cluster: where it starts and its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterRef {
    pub offset: u64,
    pub ts_ms: u64,
}

/// What a file's header says: the frames' size, the start, and whether
/// the clock was synchronised then (if known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FileHead {
    pub size: Size,
    pub started: SystemTime,
    pub clock: Option<bool>,
    pub timelapse: bool,
}

/// What a finished file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub frames: u64,
    pub duration_ms: u64,
    pub bytes: u64,
}

/// Writes one segment file, append-only.
pub struct MkvWriter {
    file: File,
    size: Size,
    started: SystemTime,
    /// Bytes written (the logical end of the file).
    end: u64,
    /// The end as of the last successful sync: everything before it is on
    /// the card.
    synced: u64,
    /// Bytes reserved with fallocate.
    allocated: u64,
    clusters: Vec<ClusterRef>,
    frames: u64,
    last_ts: u64,
    clock: Option<bool>,
    timelapse: bool,
}

impl MkvWriter {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(path: &Path, size: Size, started: SystemTime) -> io::Result<Self> {
        Self::create_noting(path, size, started, None, false)
    }

    /// Like [`MkvWriter::create`], noting whether the clock was
    /// synchronised at `started`.
    pub fn create_noting(
        path: &Path,
        size: Size,
        started: SystemTime,
        clock: Option<bool>,
        timelapse: bool,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(path)?;
        file.write_all_at(&header(size, started, None, clock, timelapse), 0)?;
        let mut w = Self {
            file,
            size,
            started,
            end: HEADER_LEN,
            synced: 0,
            allocated: 0,
            clusters: Vec::new(),
            frames: 0,
            last_ts: 0,
            clock,
            timelapse,
        };
        w.preallocate(0);
        Ok(w)
    }

    /// Reserves disk space ahead of the data so the file stays contiguous.
    /// Best effort: a file system without fallocate, or one that is full,
    /// just grows as it is written.
    fn preallocate(&mut self, needed: u64) {
        if self.end + needed <= self.allocated {
            return;
        }
        let to = (self.end + needed).div_ceil(PREALLOCATE) * PREALLOCATE;
        match nix::fcntl::fallocate(
            &self.file,
            nix::fcntl::FallocateFlags::empty(),
            self.allocated as i64,
            (to - self.allocated) as i64,
        ) {
            Ok(()) => self.allocated = to,
            Err(e) => {
                log::debug!("fallocate: {e}");
                self.allocated = self.end + needed;
            }
        }
    }

    /// Appends one JPEG at `ts_ms` (ms since the segment's first frame;
    /// non-decreasing). Returns whether it started a new cluster. On an error
    /// nothing counts as written: the next frame overwrites what was
    /// partially written.
    pub fn write_frame(&mut self, ts_ms: u64, jpeg: &[u8]) -> io::Result<bool> {
        if jpeg.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a frame of {} bytes is too large to record", jpeg.len()),
            ));
        }
        // The scanner takes a frame as complete only if it starts with SOI
        // and ends with EOI, so nothing else may be written.
        if jpeg.len() < 4 || jpeg[..2] != [0xFF, 0xD8] || jpeg[jpeg.len() - 2..] != [0xFF, 0xD9] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a whole JPEG (no SOI or EOI)",
            ));
        }
        let cluster = self.write_block(VIDEO_TRACK, ts_ms, jpeg)?;
        self.frames += 1;
        Ok(cluster)
    }

    /// Appends one GPS sample (a fix as a JSON object) at `ts_ms`, which
    /// must not be after the next frame's. Like a frame, it is complete
    /// only if whole: it starts with `{` and ends with `}`.
    pub fn write_sample(&mut self, ts_ms: u64, json: &[u8]) -> io::Result<()> {
        self.write_text(GPS_TRACK, ts_ms, json)
    }

    /// Appends one block of the acceleration trace (JSON, like a GPS sample).
    pub fn write_trace(&mut self, ts_ms: u64, json: &[u8]) -> io::Result<()> {
        self.write_text(ACCEL_TRACK, ts_ms, json)
    }

    fn write_text(&mut self, track: u8, ts_ms: u64, json: &[u8]) -> io::Result<()> {
        if json.len() < 2
            || json.len() > MAX_SAMPLE
            || json[0] != b'{'
            || json[json.len() - 1] != b'}'
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a GPS sample or trace block is one JSON object of at most 4 KiB",
            ));
        }
        self.write_block(track, ts_ms, json).map(|_| ())
    }

    fn write_block(&mut self, track: u8, ts_ms: u64, payload: &[u8]) -> io::Result<bool> {
        let ts_ms = ts_ms.max(self.last_ts);
        let cluster = match self.clusters.last() {
            Some(c) if ts_ms - c.ts_ms < CLUSTER_MS => None,
            _ => Some(cluster_head(ts_ms)),
        };
        let cluster_ts = match (&cluster, self.clusters.last()) {
            (None, Some(c)) => c.ts_ms,
            _ => ts_ms,
        };
        // Under CLUSTER_MS, so it fits an i16.
        let group = group_head(track, (ts_ms - cluster_ts) as i16, payload);
        let head_len = cluster.as_ref().map_or(0, Vec::len) as u64;
        self.preallocate(head_len + GROUP_OVERHEAD + payload.len() as u64);
        let mut at = self.end;
        if let Some(c) = &cluster {
            self.file.write_all_at(c, at)?;
            at += c.len() as u64;
        }
        self.file.write_all_at(&group, at)?;
        self.file.write_all_at(payload, at + GROUP_OVERHEAD)?;
        if cluster.is_some() {
            self.clusters.push(ClusterRef {
                offset: self.end,
                ts_ms,
            });
        }
        self.end = at + GROUP_OVERHEAD + payload.len() as u64;
        self.last_ts = ts_ms;
        Ok(cluster.is_some())
    }

    /// Makes everything written so far durable (fdatasync). After a failure
    /// the kernel may have dropped the unwritten pages: the file is not to be
    /// trusted, and the caller ends it.
    pub fn sync(&mut self) -> io::Result<()> {
        if crate::faults::current().fail_sync {
            return Err(crate::faults::eio());
        }
        nix::unistd::fdatasync(&self.file).map_err(io::Error::from)?;
        self.synced = self.end;
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The end of the data: what the file holds, not what was preallocated.
    pub fn bytes(&self) -> u64 {
        self.end
    }

    /// The end of the data as of the last successful sync.
    pub fn synced_bytes(&self) -> u64 {
        self.synced
    }

    /// Finishes the file: cues, statistics, exact sizes, trimmed, synced.
    pub fn finish(self, frame_interval_ms: u64) -> io::Result<Summary> {
        finish_file(
            &self.file,
            FileHead {
                size: self.size,
                started: self.started,
                clock: self.clock,
                timelapse: self.timelapse,
            },
            &self.clusters,
            self.end,
            self.frames,
            self.last_ts + frame_interval_ms,
        )
    }
}

/// Writes cues and statistics after `data_end`, patches every cluster's
/// size, writes the final header, trims the file and syncs it. Order
/// matters for a power cut in the middle: the file stays a `.part` until
/// its caller renames it, and recovery derives everything again from the
/// frames, so any mix of old and new bytes here is repaired.
pub fn finish_file(
    file: &File,
    head: FileHead,
    clusters: &[ClusterRef],
    data_end: u64,
    frames: u64,
    duration_ms: u64,
) -> io::Result<Summary> {
    let FileHead {
        size,
        started,
        clock,
        timelapse,
    } = head;
    let mut points = Vec::new();
    for c in clusters {
        let mut pos = Vec::new();
        put_uint(&mut pos, CUE_TRACK, 1);
        put_uint(&mut pos, CUE_CLUSTER_POSITION, c.offset - SEGMENT_DATA);
        let mut point = Vec::new();
        put_uint(&mut point, CUE_TIME, c.ts_ms);
        put_master(&mut point, CUE_TRACK_POSITIONS, &pos);
        put_master(&mut points, CUE_POINT, &point);
    }
    let mut tail = Vec::new();
    put_master_crc(&mut tail, CUES, &points);
    let tags_at = data_end + tail.len() as u64;
    tail.extend_from_slice(&tags(frames));
    let end = data_end + tail.len() as u64;
    file.write_all_at(&tail, data_end)?;

    for (i, c) in clusters.iter().enumerate() {
        let next = clusters.get(i + 1).map_or(data_end, |n| n.offset);
        let body = next - (c.offset + 4 + 8);
        file.write_all_at(&size_bytes(body, 8), c.offset + 4)?;
    }
    let fin = Finished {
        cues_at: data_end,
        tags_at,
        end,
        duration_ms,
    };
    file.write_all_at(&header(size, started, Some(&fin), clock, timelapse), 0)?;
    file.set_len(end)?;
    nix::unistd::fsync(file).map_err(io::Error::from)?;
    Ok(Summary {
        frames,
        duration_ms,
        bytes: end,
    })
}

/// The Tags element: the number of frames, as a statistics tag.
fn tags(frames: u64) -> Vec<u8> {
    let mut targets = Vec::new();
    put_uint(&mut targets, TAG_TRACK_UID, 1);
    let mut simple = Vec::new();
    put_str(&mut simple, TAG_NAME, FRAMES_TAG);
    put_str(&mut simple, TAG_STRING, &frames.to_string());
    let mut tag = Vec::new();
    put_master(&mut tag, TARGETS, &targets);
    put_master(&mut tag, SIMPLE_TAG, &simple);
    let mut body = Vec::new();
    put_master(&mut body, TAG, &tag);
    let mut out = Vec::new();
    put_master_crc(&mut out, TAGS, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ebml;
    use std::time::Duration;

    #[test]
    fn headers_are_always_512_bytes() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        for size in [
            Size::new(320, 240),
            Size::new(1920, 1080),
            Size::new(65534, 2),
        ] {
            assert_eq!(
                header(size, t, None, Some(false), false).len() as u64,
                HEADER_LEN
            );
            let fin = Finished {
                cues_at: 1 << 40,
                tags_at: (1 << 40) + 100,
                end: (1 << 40) + 200,
                duration_ms: 3_600_000,
            };
            assert_eq!(
                header(size, t, Some(&fin), Some(false), true).len() as u64,
                HEADER_LEN
            );
        }
        assert_eq!(ebml_header().len() as u64 + 12, SEGMENT_DATA);
    }

    #[test]
    fn a_group_checksums_its_block() {
        let jpeg = [0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        let g = group_head(VIDEO_TRACK, 33, &jpeg);
        let h = ebml::read_header(&g).unwrap();
        assert_eq!((h.id, h.len), (BLOCK_GROUP, 5));
        assert_eq!(h.size, Some(6 + 5 + 4 + jpeg.len() as u64));
        let mut body = g[5..].to_vec();
        body.extend_from_slice(&jpeg);
        let block = ebml::checked_body(&body).unwrap();
        let b = ebml::read_header(block).unwrap();
        assert_eq!((b.id, b.size), (BLOCK, Some(4 + jpeg.len() as u64)));
        assert_eq!(&block[b.len..b.len + 4], &[0x81, 0, 33, 0]);
    }
}
