//! The recording format: Matroska with one V_MJPEG track, written
//! append-only so that a file cut anywhere plays up to its last complete
//! frame. This module owns the format: the writer, the tolerant scanner that
//! recovery, `verify` and playback read with, and the finishing step (cues,
//! duration, exact sizes) shared by a clean close and by recovery.
//!
//! # Layout
//! ```text
//! EBML header                      DocType "matroska"
//! Segment, size 8 bytes            unknown while writing, exact when finished
//!   Void (128 bytes)               becomes a SeekHead to Info, Tracks, Cues
//!   Info                           1 ms timestamps, DateUTC, Duration (8-byte float, patched)
//!   Tracks                         track 1: video, V_MJPEG, width x height
//!   Cluster, size 8 bytes          unknown while writing, exact when finished
//!     Timestamp                    ms since the segment's first frame
//!     SimpleBlock...               one JPEG each, keyframe, ms relative to the cluster
//!   Cluster ...                    a new one at least every second
//!   Cues                           written when finished: one point per cluster
//! ```
//! Size fields that are patched later are always 8 bytes wide, so patching
//! never moves anything. Preallocated space past the data reads as zeros,
//! which the scanner treats as the end.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::Size;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const VOID: u32 = 0xEC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const DATE_UTC: u32 = 0x4461;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const CODEC_ID: u32 = 0x86;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;

/// The 8-byte "unknown size" marker.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Bytes reserved after the Segment header for the SeekHead.
const SEEK_RESERVE: usize = 128;
/// A new cluster starts at least this often (in ms of the capture clock).
pub const CLUSTER_MS: u64 = 1000;
/// Matroska's DateUTC counts nanoseconds from 2001-01-01T00:00:00Z.
const MKV_EPOCH_UNIX: u64 = 978_307_200;
/// The file grows by preallocation in steps of this much: a few seconds of
/// 1080p, small enough not to distort space accounting on a small card.
const PREALLOCATE: u64 = 4 << 20;

// ---- EBML encoding ---------------------------------------------------------

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = match id {
        0..=0xFF => 3,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 1,
        _ => 0,
    };
    out.extend_from_slice(&bytes[skip..]);
}

/// A size as an EBML variable-length integer of `width` bytes.
fn size_bytes(size: u64, width: usize) -> Vec<u8> {
    let marked = size | (1u64 << (7 * width));
    marked.to_be_bytes()[8 - width..].to_vec()
}

fn put_size(out: &mut Vec<u8>, size: u64) {
    let width = (1..=8).find(|&w| size < (1u64 << (7 * w)) - 1).unwrap_or(8);
    out.extend_from_slice(&size_bytes(size, width));
}

fn put_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8).min(7) as usize;
    put_id(out, id);
    put_size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, id: u32, v: i64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_float(out: &mut Vec<u8>, id: u32, v: f64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, id: u32, s: &str) {
    put_id(out, id);
    put_size(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A Void element of exactly `total` bytes (at least 2).
fn void(total: usize) -> Vec<u8> {
    let mut out = vec![0xEC];
    let width = if total - 2 < 127 { 1 } else { 8 };
    out.extend_from_slice(&size_bytes((total - 1 - width) as u64, width));
    out.resize(total, 0);
    out
}

// ---- Layout ----------------------------------------------------------------

/// Where the patchable parts of a file are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the Segment's 8-byte size field.
    pub segment_size_at: u64,
    /// Offset of the first byte inside the Segment.
    pub segment_data: u64,
    /// Offset of the reserved Void that becomes the SeekHead.
    pub seek_reserve_at: u64,
    /// Offset of Info and Tracks (for the SeekHead).
    pub info_at: u64,
    pub tracks_at: u64,
    /// Offset of the Duration float's 8 bytes.
    pub duration_at: u64,
}

/// A cluster: where it starts and its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterRef {
    pub offset: u64,
    pub ts_ms: u64,
}

/// One frame in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    pub ts_ms: u64,
    pub offset: u64,
    pub len: u64,
}

fn header(size: Size, started: SystemTime) -> (Vec<u8>, Layout) {
    let mut out = Vec::with_capacity(512);
    let mut ebml = Vec::new();
    put_uint(&mut ebml, 0x4286, 1); // EBMLVersion
    put_uint(&mut ebml, 0x42F7, 1); // EBMLReadVersion
    put_uint(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
    put_uint(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
    put_str(&mut ebml, 0x4282, "matroska"); // DocType
    put_uint(&mut ebml, 0x4287, 4); // DocTypeVersion
    put_uint(&mut ebml, 0x4285, 2); // DocTypeReadVersion
    put_master(&mut out, EBML, &ebml);

    put_id(&mut out, SEGMENT);
    let segment_size_at = out.len() as u64;
    out.extend_from_slice(&UNKNOWN_SIZE);
    let segment_data = out.len() as u64;
    let seek_reserve_at = out.len() as u64;
    out.extend_from_slice(&void(SEEK_RESERVE));

    let info_at = out.len() as u64;
    let mut info = Vec::new();
    put_uint(&mut info, TIMESTAMP_SCALE, 1_000_000);
    put_str(&mut info, MUXING_APP, "blackbox");
    put_str(
        &mut info,
        WRITING_APP,
        concat!("blackbox ", env!("CARGO_PKG_VERSION")),
    );
    let unix_ns = started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    put_int(
        &mut info,
        DATE_UTC,
        unix_ns - (MKV_EPOCH_UNIX as i64) * 1_000_000_000,
    );
    let duration_in_info = info.len() + 3; // after the 2-byte ID and 1-byte size
    put_float(&mut info, DURATION, 0.0);
    put_id(&mut out, INFO);
    put_size(&mut out, info.len() as u64);
    let duration_at = out.len() as u64 + duration_in_info as u64;
    out.extend_from_slice(&info);

    let tracks_at = out.len() as u64;
    let mut video = Vec::new();
    put_uint(&mut video, PIXEL_WIDTH, u64::from(size.width));
    put_uint(&mut video, PIXEL_HEIGHT, u64::from(size.height));
    let mut entry = Vec::new();
    put_uint(&mut entry, TRACK_NUMBER, 1);
    put_uint(&mut entry, TRACK_UID, 1);
    put_uint(&mut entry, TRACK_TYPE, 1);
    put_uint(&mut entry, FLAG_LACING, 0);
    put_str(&mut entry, CODEC_ID, "V_MJPEG");
    put_master(&mut entry, VIDEO, &video);
    let mut tracks = Vec::new();
    put_master(&mut tracks, TRACK_ENTRY, &entry);
    put_master(&mut out, TRACKS, &tracks);

    let layout = Layout {
        segment_size_at,
        segment_data,
        seek_reserve_at,
        info_at,
        tracks_at,
        duration_at,
    };
    (out, layout)
}

// ---- Writer ----------------------------------------------------------------

/// What a finished file holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub frames: u64,
    pub duration_ms: u64,
    pub bytes: u64,
}

/// Writes one segment file, append-only.
pub struct MkvWriter {
    file: File,
    layout: Layout,
    /// Bytes written (the logical end of the file).
    end: u64,
    /// Bytes reserved with fallocate.
    allocated: u64,
    clusters: Vec<ClusterRef>,
    frames: u64,
    last_ts: u64,
    block: Vec<u8>,
}

impl MkvWriter {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(path: &Path, size: Size, started: SystemTime) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(path)?;
        let (head, layout) = header(size, started);
        file.write_all_at(&head, 0)?;
        let mut w = Self {
            file,
            layout,
            end: head.len() as u64,
            allocated: 0,
            clusters: Vec::new(),
            frames: 0,
            last_ts: 0,
            block: Vec::with_capacity(64),
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
    /// non-decreasing). Returns whether it started a new cluster.
    pub fn write_frame(&mut self, ts_ms: u64, jpeg: &[u8]) -> io::Result<bool> {
        let ts_ms = ts_ms.max(self.last_ts);
        let new_cluster = match self.clusters.last() {
            None => true,
            Some(c) => ts_ms - c.ts_ms >= CLUSTER_MS,
        };
        self.block.clear();
        if new_cluster {
            put_id(&mut self.block, CLUSTER);
            self.block.extend_from_slice(&UNKNOWN_SIZE);
            put_uint(&mut self.block, CLUSTER_TIMESTAMP, ts_ms);
        }
        let cluster_ts = if new_cluster {
            ts_ms
        } else {
            self.clusters.last().map_or(0, |c| c.ts_ms)
        };
        let relative = (ts_ms - cluster_ts) as i16;
        put_id(&mut self.block, SIMPLE_BLOCK);
        self.block
            .extend_from_slice(&size_bytes(4 + jpeg.len() as u64, 4));
        self.block.push(0x81); // track 1
        self.block.extend_from_slice(&relative.to_be_bytes());
        self.block.push(0x80); // keyframe
        self.preallocate((self.block.len() + jpeg.len()) as u64);
        // One write for the block header, one for the JPEG; nothing is
        // counted as written until both are complete.
        self.file.write_all_at(&self.block, self.end)?;
        self.file
            .write_all_at(jpeg, self.end + self.block.len() as u64)?;
        if new_cluster {
            self.clusters.push(ClusterRef {
                offset: self.end,
                ts_ms,
            });
        }
        self.end += (self.block.len() + jpeg.len()) as u64;
        self.frames += 1;
        self.last_ts = ts_ms;
        Ok(new_cluster)
    }

    /// Makes everything written so far durable (fdatasync).
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fdatasync(&self.file).map_err(io::Error::from)
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn bytes(&self) -> u64 {
        self.end
    }

    /// Finishes the file: cues, duration, exact sizes, trimmed, synced.
    pub fn finish(self, frame_interval_ms: u64) -> io::Result<Summary> {
        finish_file(
            &self.file,
            &self.layout,
            &self.clusters,
            self.end,
            self.frames,
            self.last_ts + frame_interval_ms,
        )
    }
}

/// Writes cues after `data_end`, patches the Segment and cluster sizes, the
/// duration and the SeekHead, trims the file and syncs it.
pub fn finish_file(
    file: &File,
    layout: &Layout,
    clusters: &[ClusterRef],
    data_end: u64,
    frames: u64,
    duration_ms: u64,
) -> io::Result<Summary> {
    let mut cues = Vec::new();
    for c in clusters {
        let mut pos = Vec::new();
        put_uint(&mut pos, CUE_TRACK, 1);
        put_uint(
            &mut pos,
            CUE_CLUSTER_POSITION,
            c.offset - layout.segment_data,
        );
        let mut point = Vec::new();
        put_uint(&mut point, CUE_TIME, c.ts_ms);
        put_master(&mut point, CUE_TRACK_POSITIONS, &pos);
        put_master(&mut cues, CUE_POINT, &point);
    }
    let mut cues_el = Vec::new();
    put_master(&mut cues_el, CUES, &cues);
    file.set_len(data_end)?;
    file.write_all_at(&cues_el, data_end)?;
    let end = data_end + cues_el.len() as u64;

    for (i, c) in clusters.iter().enumerate() {
        let next = clusters.get(i + 1).map_or(data_end, |n| n.offset);
        let body = next - (c.offset + 4 + 8);
        file.write_all_at(&size_bytes(body, 8), c.offset + 4)?;
    }
    file.write_all_at(
        &size_bytes(end - layout.segment_data, 8),
        layout.segment_size_at,
    )?;
    file.write_all_at(&(duration_ms as f64).to_be_bytes(), layout.duration_at)?;

    let mut seeks = Vec::new();
    for (id, at) in [
        (INFO, layout.info_at),
        (TRACKS, layout.tracks_at),
        (CUES, data_end),
    ] {
        let mut seek = Vec::new();
        let mut id_bytes = Vec::new();
        put_id(&mut id_bytes, id);
        put_id(&mut seek, SEEK_ID);
        put_size(&mut seek, id_bytes.len() as u64);
        seek.extend_from_slice(&id_bytes);
        put_id(&mut seek, SEEK_POSITION);
        put_size(&mut seek, 8);
        seek.extend_from_slice(&(at - layout.segment_data).to_be_bytes());
        put_master(&mut seeks, SEEK, &seek);
    }
    let mut reserve = Vec::new();
    put_master(&mut reserve, SEEK_HEAD, &seeks);
    if reserve.len() + 2 <= SEEK_RESERVE {
        reserve.extend_from_slice(&void(SEEK_RESERVE - reserve.len()));
        file.write_all_at(&reserve, layout.seek_reserve_at)?;
    }
    file.set_len(end)?;
    nix::unistd::fsync(file).map_err(io::Error::from)?;
    Ok(Summary {
        frames,
        duration_ms,
        bytes: end,
    })
}

// ---- Reader ----------------------------------------------------------------

/// What a scan of a file found. Format problems are reported, not errors:
/// a cut file is normal after a power loss.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub size: Option<Size>,
    pub started: Option<SystemTime>,
    pub layout: Option<Layout>,
    pub duration_ms: Option<f64>,
    pub clusters: Vec<ClusterRef>,
    pub frames: Vec<FrameRef>,
    /// The end of the last complete block (or of the headers).
    pub data_end: u64,
    /// Cues were found: the file was finished.
    pub finished: bool,
    /// What stopped the scan early, if anything.
    pub problem: Option<String>,
    pub file_len: u64,
}

impl Scan {
    /// Headers intact and at least one frame: recoverable.
    pub fn usable(&self) -> bool {
        self.layout.is_some() && self.size.is_some() && !self.frames.is_empty()
    }
}

struct Cursor<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Cursor<R> {
    fn bytes(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        if self.pos + n as u64 > self.len {
            return Ok(None);
        }
        let mut buf = vec![0; n];
        self.r.read_exact(&mut buf)?;
        self.pos += n as u64;
        Ok(Some(buf))
    }

    fn skip_to(&mut self, to: u64) -> io::Result<()> {
        self.r.seek(SeekFrom::Start(to))?;
        self.pos = to;
        Ok(())
    }

    /// An element header: (id, size or None for unknown, header length).
    /// `Ok(None)` when the file ends inside it or the bytes are not a header.
    fn header(&mut self) -> io::Result<Option<(u32, Option<u64>)>> {
        let Some(first) = self.bytes(1)? else {
            return Ok(None);
        };
        let id_len = first[0].leading_zeros() as usize + 1;
        if id_len > 4 {
            return Ok(None); // zero padding or garbage
        }
        let Some(rest) = self.bytes(id_len - 1)? else {
            return Ok(None);
        };
        let id = std::iter::once(first[0])
            .chain(rest)
            .fold(0u32, |a, b| (a << 8) | u32::from(b));
        let Some(s0) = self.bytes(1)? else {
            return Ok(None);
        };
        let size_len = s0[0].leading_zeros() as usize + 1;
        if size_len > 8 {
            return Ok(None);
        }
        let Some(srest) = self.bytes(size_len - 1)? else {
            return Ok(None);
        };
        let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
        let mut value = u64::from(s0[0] & mask);
        let mut all_ones = (s0[0] & mask) == mask;
        for b in srest {
            all_ones &= b == 0xFF;
            value = (value << 8) | u64::from(b);
        }
        Ok(Some((id, if all_ones { None } else { Some(value) })))
    }

    fn uint(&mut self, size: u64) -> io::Result<Option<u64>> {
        if size > 8 {
            return Ok(None);
        }
        Ok(self
            .bytes(size as usize)?
            .map(|b| b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))))
    }
}

fn is_cluster_child(id: u32) -> bool {
    matches!(
        id,
        CLUSTER_TIMESTAMP | SIMPLE_BLOCK | BLOCK_GROUP | 0xA7 | 0xAB | VOID
    )
}

/// Reads a file's structure without loading the frames.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut c = Cursor {
        r: BufReader::with_capacity(64 * 1024, file),
        pos: 0,
        len,
    };
    let mut s = Scan {
        file_len: len,
        ..Scan::default()
    };
    scan_into(&mut c, &mut s)?;
    Ok(s)
}

fn scan_into<R: Read + Seek>(c: &mut Cursor<R>, s: &mut Scan) -> io::Result<()> {
    let problem = |s: &mut Scan, m: &str| s.problem = Some(m.to_string());
    match c.header()? {
        Some((EBML, Some(size))) => c.skip_to(c.pos + size)?,
        _ => {
            problem(s, "not a Matroska file (no EBML header)");
            return Ok(());
        }
    }
    let segment_size_at = c.pos + 4;
    match c.header()? {
        Some((SEGMENT, _)) => {}
        _ => {
            problem(s, "no Segment");
            return Ok(());
        }
    }
    let segment_data = c.pos;
    let mut layout = Layout {
        segment_size_at,
        segment_data,
        seek_reserve_at: segment_data,
        info_at: 0,
        tracks_at: 0,
        duration_at: 0,
    };
    s.data_end = c.pos;
    let mut width = None;
    let mut height = None;
    loop {
        let at = c.pos;
        let Some((id, size)) = c.header()? else {
            break; // end of data (cut, or preallocated zeros)
        };
        let body = c.pos;
        if let Some(size) = size
            && body + size > c.len
            && id != CLUSTER
            && id != SEGMENT
        {
            problem(s, "the file ends inside an element");
            break;
        }
        match id {
            VOID | SEEK_HEAD => c.skip_to(body + size.unwrap_or(0))?,
            INFO => {
                layout.info_at = at;
                let end = body + size.unwrap_or(0);
                while c.pos < end {
                    let Some((cid, Some(csize))) = c.header()? else {
                        break;
                    };
                    let cbody = c.pos;
                    match cid {
                        DURATION if csize == 8 => {
                            layout.duration_at = cbody;
                            if let Some(b) = c.bytes(8)? {
                                s.duration_ms =
                                    Some(f64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                            }
                        }
                        DATE_UTC if csize == 8 => {
                            if let Some(v) = c.uint(8)? {
                                let unix_ns = (v as i64) + (MKV_EPOCH_UNIX as i64) * 1_000_000_000;
                                s.started =
                                    Some(UNIX_EPOCH + Duration::from_nanos(unix_ns.max(0) as u64));
                            }
                        }
                        _ => {}
                    }
                    c.skip_to(cbody + csize)?;
                }
                c.skip_to(end)?;
                s.data_end = c.pos;
            }
            TRACKS => {
                layout.tracks_at = at;
                let end = body + size.unwrap_or(0);
                // Walk every element inside; the video size is the only part
                // the reader needs.
                while c.pos < end {
                    let Some((cid, Some(csize))) = c.header()? else {
                        break;
                    };
                    match cid {
                        TRACK_ENTRY | VIDEO => continue, // descend
                        PIXEL_WIDTH => width = c.uint(csize)?,
                        PIXEL_HEIGHT => height = c.uint(csize)?,
                        _ => c.skip_to(c.pos + csize)?,
                    }
                }
                c.skip_to(end)?;
                s.data_end = c.pos;
                if let (Some(w), Some(h)) = (width, height) {
                    s.size = Some(Size::new(w as u32, h as u32));
                }
            }
            CLUSTER => {
                let end = size.map(|sz| body + sz);
                let mut cluster_ts = None;
                let mut blocks = 0;
                // Where the next top-level element starts, if the cluster
                // (of unknown size) ended by meeting one.
                let mut next = None;
                let mut cut = false;
                loop {
                    if end.is_some_and(|e| c.pos >= e) {
                        break;
                    }
                    let child_at = c.pos;
                    let Some((cid, csize)) = c.header()? else {
                        cut = true;
                        break;
                    };
                    if !is_cluster_child(cid) {
                        next = Some(child_at);
                        break;
                    }
                    let Some(csize) = csize else {
                        problem(s, "a block of unknown size");
                        cut = true;
                        break;
                    };
                    let cbody = c.pos;
                    if cbody + csize > c.len {
                        cut = true; // the last block is cut off
                        break;
                    }
                    match cid {
                        CLUSTER_TIMESTAMP => {
                            cluster_ts = c.uint(csize)?;
                            c.skip_to(cbody + csize)?;
                        }
                        SIMPLE_BLOCK if csize > 4 => {
                            let Some(head) = c.bytes(4)? else {
                                cut = true;
                                break;
                            };
                            let rel = i16::from_be_bytes([head[1], head[2]]);
                            let base = cluster_ts.unwrap_or(0);
                            if blocks == 0 {
                                s.clusters.push(ClusterRef {
                                    offset: at,
                                    ts_ms: base,
                                });
                            }
                            blocks += 1;
                            s.frames.push(FrameRef {
                                ts_ms: (base as i64 + i64::from(rel)).max(0) as u64,
                                offset: cbody + 4,
                                len: csize - 4,
                            });
                            c.skip_to(cbody + csize)?;
                            s.data_end = c.pos;
                        }
                        _ => c.skip_to(cbody + csize)?,
                    }
                }
                if let Some(at) = next {
                    c.skip_to(at)?;
                    continue;
                }
                if cut || end.is_none() {
                    break;
                }
            }
            CUES => {
                s.finished = true;
                c.skip_to(body + size.unwrap_or(0))?;
            }
            _ => {
                problem(s, &format!("unexpected element {id:#x} at byte {at}"));
                break;
            }
        }
    }
    if layout.info_at > 0 && layout.tracks_at > 0 && layout.duration_at > 0 {
        s.layout = Some(layout);
    }
    Ok(())
}

/// Reads one frame's JPEG.
pub fn read_frame(file: &File, frame: &FrameRef) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; frame.len as usize];
    file.read_exact_at(&mut buf, frame.offset)?;
    Ok(buf)
}

/// Finishes a cut file in place: keeps every complete frame, drops the rest,
/// and writes cues, sizes and duration. The scan must be [`Scan::usable`].
pub fn repair(path: &Path, scan: &Scan) -> io::Result<Summary> {
    let layout = scan
        .layout
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "headers damaged"))?;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let last = scan.frames.last().map_or(0, |f| f.ts_ms);
    let interval = match scan.frames.len() {
        0 | 1 => 0,
        n => (last - scan.frames[0].ts_ms) / (n as u64 - 1),
    };
    finish_file(
        &file,
        &layout,
        &scan.clusters,
        scan.data_end,
        scan.frames.len() as u64,
        last + interval,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("blackbox-mkv-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("a.mkv")
    }

    fn fake_jpeg(i: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend((0..len).map(|k| (k as u32 * 7 + i) as u8));
        v.extend([0xFF, 0xD9]);
        v
    }

    #[test]
    fn vints() {
        assert_eq!(size_bytes(5, 1), vec![0x85]);
        assert_eq!(size_bytes(5, 8), vec![0x01, 0, 0, 0, 0, 0, 0, 5]);
        let mut v = Vec::new();
        put_size(&mut v, 200);
        assert_eq!(v, vec![0x40, 200]);
        assert_eq!(void(10).len(), 10);
        assert_eq!(void(200).len(), 200);
    }

    #[test]
    fn written_files_scan_back_exactly() {
        let path = tmp("roundtrip");
        let mut w = MkvWriter::create(&path, Size::new(640, 480), SystemTime::now()).unwrap();
        let mut expected = Vec::new();
        for i in 0..95u32 {
            let ts = u64::from(i) * 33;
            let jpeg = fake_jpeg(i, 500 + i as usize);
            w.write_frame(ts, &jpeg).unwrap();
            expected.push((ts, jpeg));
        }
        // Mid-file, before finishing: what a power cut would leave.
        let partial = scan(&path).unwrap();
        assert!(!partial.finished);
        assert_eq!(partial.frames.len(), 95);
        let summary = w.finish(33).unwrap();
        assert_eq!(summary.frames, 95);
        assert_eq!(summary.duration_ms, 94 * 33 + 33);
        let s = scan(&path).unwrap();
        assert!(s.finished, "{:?}", s.problem);
        assert_eq!(s.problem, None);
        assert_eq!(s.size, Some(Size::new(640, 480)));
        assert_eq!(s.duration_ms, Some((94 * 33 + 33) as f64));
        assert_eq!(s.clusters.len(), 4, "a cluster per second");
        let file = File::open(&path).unwrap();
        for (f, (ts, jpeg)) in s.frames.iter().zip(&expected) {
            assert_eq!(f.ts_ms, *ts);
            assert_eq!(&read_frame(&file, f).unwrap(), jpeg);
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            summary.bytes,
            "trimmed"
        );
    }

    #[test]
    fn a_cut_file_keeps_every_complete_frame() {
        let path = tmp("cut");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), SystemTime::now()).unwrap();
        let mut ends = Vec::new();
        for i in 0..40u32 {
            w.write_frame(u64::from(i) * 40, &fake_jpeg(i, 300))
                .unwrap();
            ends.push(w.bytes());
        }
        let full = std::fs::read(&path).unwrap();
        for cut in [
            ends[0] - 1,
            ends[0],
            ends[0] + 5,
            ends[10],
            ends[10] + 100,
            ends[39] - 1,
        ] {
            let p = path.with_file_name(format!("cut-{cut}.mkv"));
            std::fs::write(&p, &full[..cut as usize]).unwrap();
            let s = scan(&p).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.frames.len(), complete, "cut at {cut}");
            if complete > 0 {
                let summary = repair(&p, &s).unwrap();
                assert_eq!(summary.frames, complete as u64);
                let again = scan(&p).unwrap();
                assert!(again.finished);
                assert_eq!(again.frames.len(), complete);
            }
        }
    }

    #[test]
    fn zeros_after_the_data_end_the_scan() {
        let path = tmp("zeros");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), SystemTime::now()).unwrap();
        for i in 0..5u32 {
            w.write_frame(u64::from(i) * 40, &fake_jpeg(i, 100))
                .unwrap();
        }
        // The writer preallocated: the file is longer than the data.
        assert!(std::fs::metadata(&path).unwrap().len() > w.bytes());
        let s = scan(&path).unwrap();
        assert_eq!(s.frames.len(), 5);
        assert_eq!(s.data_end, w.bytes());
    }

    #[test]
    fn garbage_is_a_problem_not_a_panic() {
        let path = tmp("garbage");
        std::fs::write(&path, b"this is not a video file at all").unwrap();
        let s = scan(&path).unwrap();
        assert!(!s.usable());
        assert!(s.problem.is_some());
        std::fs::write(&path, b"").unwrap();
        assert!(!scan(&path).unwrap().usable());
    }
}
