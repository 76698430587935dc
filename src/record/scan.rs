//! Reading recordings back, trusting nothing: the scanner that recovery,
//! `verify`, replay and the index read with, the cheap summary of a
//! finished file, and the repair of a file a power cut interrupted.
//!
//! A power cut leaves more than a short file: pages written after the last
//! sync may be missing (zeros, or old data) anywhere among the last writes,
//! and preallocation makes the file longer than its data. So every frame is
//! checked before it counts: its BlockGroup must be exactly the shape the
//! writer makes, its JPEG must start with SOI and end with EOI at the block's
//! end, its timestamp must follow the previous one, and (with
//! [`Depth::Checksums`]) its CRC-32 must match. The walk stops at the first
//! frame that fails; recovery keeps exactly the frames before it.
//!
//! # Implementation
//! Element headers are read with small positional reads through a 4 KiB
//! window, so walking a file's structure reads about one page per frame, not
//! the whole file; checksums read each frame once, in order.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::Size;
use crate::record::ebml::{Header, VOID, checked_body, children, read_header, read_uint};
use crate::record::mkv::{
    self, BLOCK, BLOCK_GROUP, CLUSTER, CLUSTER_MS, CODEC_ID, CUE_CLUSTER_POSITION, CUE_POINT,
    CUE_TIME, CUE_TRACK_POSITIONS, CUES, ClusterRef, DATE_UTC, DURATION, FRAMES_TAG,
    GROUP_OVERHEAD, HEADER_LEN, INFO, MAX_GAP_MS, PIXEL_HEIGHT, PIXEL_WIDTH, SEEK, SEEK_HEAD,
    SEEK_ID, SEEK_POSITION, SEGMENT, SEGMENT_DATA, SIMPLE_TAG, Summary, TAG, TAG_NAME, TAG_STRING,
    TAGS, TIMESTAMP_SCALE, TRACK_ENTRY, TRACKS, VIDEO,
};

/// How much a scan checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// The structure and each JPEG's first and last bytes: about one page
    /// read per frame.
    Structure,
    /// Also every frame's CRC-32: reads the whole file.
    Checksums,
}

/// One frame in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Milliseconds since the segment's first frame.
    pub ts_ms: u64,
    /// Where the Block element starts (what its CRC-32 covers, to the end).
    pub block_at: u64,
    /// Where the JPEG starts, and its length.
    pub jpeg_at: u64,
    pub len: u64,
    /// The CRC-32 stored for the Block.
    pub crc: u32,
}

impl FrameRef {
    /// The end of the frame's BlockGroup.
    pub fn end(&self) -> u64 {
        self.jpeg_at + self.len
    }
}

/// What a scan of a file found. Damage is reported, not an error: a cut
/// file is normal after a power loss.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The header is exactly what blackbox writes, checksums included.
    pub header_ok: bool,
    /// What is wrong with the header, if anything.
    pub header_problem: Option<String>,
    /// From the header's Tracks, when their checksum holds.
    pub size: Option<Size>,
    /// From the header's Info, when its checksum holds.
    pub started: Option<SystemTime>,
    pub duration_ms: Option<f64>,
    /// Whether the clock was synchronised when it began (`None`: the file
    /// does not say).
    pub clock_synced: Option<bool>,
    /// A time-lapse (its title says so).
    pub timelapse: bool,
    pub clusters: Vec<ClusterRef>,
    /// Every frame before the first one that failed a check.
    pub frames: Vec<FrameRef>,
    /// Every GPS sample before that point (its payload is the fix as
    /// JSON; [`read_frame`] reads it like a frame).
    pub samples: Vec<FrameRef>,
    /// Every block of the acceleration trace before that point (JSON).
    pub trace: Vec<FrameRef>,
    /// The end of the last good frame (or of the header).
    pub data_end: u64,
    /// Cues and statistics follow the frames, match them, and end the file,
    /// and the header's sizes and SeekHead agree: finished cleanly.
    pub finished: bool,
    /// Why the walk over the frames stopped before a clean end, if it did.
    pub problem: Option<String>,
    pub file_len: u64,
}

impl Scan {
    /// At least one frame to keep.
    pub fn usable(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Nothing wrong anywhere: a finished file every player reads whole.
    pub fn intact(&self) -> bool {
        self.header_ok && self.finished && self.problem.is_none() && self.usable()
    }

    /// The typical distance between frames (the median), in ms.
    pub fn interval_ms(&self) -> u64 {
        let mut deltas: Vec<u64> = self
            .frames
            .windows(2)
            .map(|w| w[1].ts_ms - w[0].ts_ms)
            .collect();
        deltas.sort_unstable();
        deltas.get(deltas.len() / 2).copied().unwrap_or(0)
    }
}

/// Positional reads through a small window.
struct Reader<'f> {
    file: &'f File,
    len: u64,
    window: Vec<u8>,
    window_at: u64,
}

const WINDOW: usize = 4096;

impl<'f> Reader<'f> {
    fn new(file: &'f File) -> io::Result<Self> {
        Ok(Self {
            len: file.metadata()?.len(),
            file,
            window: Vec::new(),
            window_at: 0,
        })
    }

    /// `n` bytes at `at`, or `None` past the end of the file.
    fn get(&mut self, at: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = at.checked_add(n as u64).filter(|&e| e <= self.len) else {
            return Ok(None);
        };
        let cached = at >= self.window_at && end <= self.window_at + self.window.len() as u64;
        if !cached {
            let want = (n.max(WINDOW) as u64).min(self.len - at) as usize;
            self.window.resize(want, 0);
            self.file.read_exact_at(&mut self.window, at)?;
            self.window_at = at;
        }
        let from = (at - self.window_at) as usize;
        Ok(Some(&self.window[from..from + n]))
    }

    /// The element header at `at`, if the bytes there make one.
    fn header(&mut self, at: u64) -> io::Result<Option<Header>> {
        let n = (self.len.saturating_sub(at)).min(12) as usize;
        Ok(self.get(at, n)?.and_then(read_header))
    }
}

/// Scans the file at `path`.
pub fn scan(path: &Path, depth: Depth) -> io::Result<Scan> {
    scan_file(&File::open(path)?, depth)
}

/// Scans an open file.
pub fn scan_file(file: &File, depth: Depth) -> io::Result<Scan> {
    let mut r = Reader::new(file)?;
    let mut s = Scan {
        file_len: r.len,
        data_end: HEADER_LEN.min(r.len),
        ..Scan::default()
    };
    let head = read_head(&mut r)?;
    s.header_ok = head.problem.is_none();
    s.header_problem.clone_from(&head.problem);
    s.size = head.size;
    s.started = head.started;
    s.duration_ms = head.duration_ms;
    s.clock_synced = head.clock_synced;
    s.timelapse = head.timelapse;
    if r.len < HEADER_LEN {
        s.problem = Some("the file is shorter than its header".into());
        return Ok(s);
    }
    walk(&mut r, &mut s, depth, &head)?;
    Ok(s)
}

/// What the header region says.
#[derive(Debug, Default)]
struct Head {
    size: Option<Size>,
    started: Option<SystemTime>,
    duration_ms: Option<f64>,
    clock_synced: Option<bool>,
    timelapse: bool,
    /// The Segment's size, when it is known (a finished file).
    segment_size: Option<u64>,
    /// Where the SeekHead says Cues and Tags are, when there is one.
    cues_at: Option<u64>,
    tags_at: Option<u64>,
    /// The first thing that is not as blackbox writes it.
    problem: Option<String>,
}

fn read_head(r: &mut Reader<'_>) -> io::Result<Head> {
    let n = r.len.min(HEADER_LEN) as usize;
    let buf = r.get(0, n)?.map(<[u8]>::to_vec).unwrap_or_default();
    Ok(parse_head(&buf))
}

/// Parses the 512-byte header region, keeping whatever parts check out.
fn parse_head(buf: &[u8]) -> Head {
    let mut h = Head::default();
    let problem = |h: &mut Head, what: &str| {
        if h.problem.is_none() {
            h.problem = Some(format!("header damaged: {what}"));
        }
    };
    if buf.len() < HEADER_LEN as usize {
        problem(&mut h, "too short");
        return h;
    }
    let ebml_head = mkv::ebml_header();
    if buf[..ebml_head.len()] != ebml_head[..] {
        problem(&mut h, "EBML header");
    }
    match read_header(&buf[ebml_head.len()..]) {
        Some(Header {
            id: SEGMENT,
            size,
            len: 12,
        }) => h.segment_size = size,
        _ => problem(&mut h, "Segment"),
    }
    let seg = SEGMENT_DATA as usize;
    let seek_area = &buf[seg..seg + 128];
    match read_header(seek_area) {
        Some(Header {
            id: VOID,
            size: Some(s),
            len,
        }) if len as u64 + s == 128 => {}
        Some(Header {
            id: SEEK_HEAD,
            size: Some(s),
            len,
        }) if len as u64 + s <= 126 => {
            let end = len + s as usize;
            let filler_ok = read_header(&seek_area[end..]).is_some_and(|f| {
                f.id == VOID && f.len as u64 + f.size.unwrap_or(0) == 128 - end as u64
            });
            match checked_body(&seek_area[len..end]) {
                Some(body) if filler_ok => {
                    for seek in children(body) {
                        let Ok((SEEK, seek)) = seek else {
                            problem(&mut h, "SeekHead");
                            break;
                        };
                        let mut id = None;
                        let mut pos = None;
                        for c in children(seek).flatten() {
                            match c {
                                (SEEK_ID, v) => id = read_uint(v),
                                (SEEK_POSITION, v) => pos = read_uint(v),
                                _ => {}
                            }
                        }
                        let pos = pos.map(|p| p.saturating_add(SEGMENT_DATA));
                        match id.map(|i| i as u32) {
                            Some(CUES) => h.cues_at = pos,
                            Some(TAGS) => h.tags_at = pos,
                            _ => {}
                        }
                    }
                }
                _ => problem(&mut h, "SeekHead checksum"),
            }
        }
        _ => problem(&mut h, "SeekHead area"),
    }
    let mut at = seg + 128;
    for expect in [INFO, TRACKS] {
        let Some(el) = read_header(&buf[at..]).filter(|e| e.id == expect) else {
            problem(&mut h, if expect == INFO { "Info" } else { "Tracks" });
            return h;
        };
        let end = at + el.len + el.size.unwrap_or(u64::MAX).min(HEADER_LEN) as usize;
        let Some(body) = buf.get(at + el.len..end).and_then(checked_body) else {
            problem(
                &mut h,
                if expect == INFO {
                    "Info checksum"
                } else {
                    "Tracks checksum"
                },
            );
            return h;
        };
        if expect == INFO {
            read_info(body, &mut h);
        } else {
            read_tracks(body, &mut h);
        }
        at = end;
    }
    let padded = read_header(&buf[at..])
        .is_some_and(|v| v.id == VOID && (at + v.len) as u64 + v.size.unwrap_or(0) == HEADER_LEN);
    if !padded {
        problem(&mut h, "padding");
    }
    h
}

fn read_info(body: &[u8], h: &mut Head) {
    let mut scale_ok = false;
    for child in children(body) {
        let Ok((id, v)) = child else {
            h.problem
                .get_or_insert_with(|| "header damaged: Info".into());
            return;
        };
        match id {
            TIMESTAMP_SCALE => scale_ok = read_uint(v) == Some(1_000_000),
            DATE_UTC if v.len() == 8 => {
                let ns = i64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
                let unix_ns = ns.saturating_add(978_307_200 * 1_000_000_000);
                h.started = u64::try_from(unix_ns)
                    .ok()
                    .map(|n| UNIX_EPOCH + Duration::from_nanos(n));
            }
            mkv::TITLE => {
                let (clock, lapse) = match v.strip_suffix(mkv::TIMELAPSE.as_bytes()) {
                    Some(rest) => (rest, true),
                    None => (v, false),
                };
                h.timelapse = lapse;
                if clock == mkv::CLOCK_SYNCED.as_bytes() {
                    h.clock_synced = Some(true);
                } else if clock == mkv::CLOCK_UNSYNCED.as_bytes() {
                    h.clock_synced = Some(false);
                }
            }
            DURATION if v.len() == 8 => {
                let d = f64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
                h.duration_ms = d.is_finite().then_some(d);
            }
            _ => {}
        }
    }
    if !scale_ok {
        h.problem
            .get_or_insert_with(|| "header damaged: timestamp scale".into());
    }
}

fn read_tracks(body: &[u8], h: &mut Head) {
    let mut codec_ok = false;
    let (mut w, mut ht) = (None, None);
    for entry in children(body).flatten() {
        if entry.0 != TRACK_ENTRY {
            continue;
        }
        for (id, v) in children(entry.1).flatten() {
            match id {
                CODEC_ID if v == b"V_MJPEG" => codec_ok = true,
                VIDEO => {
                    for (vid, vv) in children(v).flatten() {
                        match vid {
                            PIXEL_WIDTH => w = read_uint(vv),
                            PIXEL_HEIGHT => ht = read_uint(vv),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    match (w, ht) {
        (Some(w), Some(ht))
            if codec_ok && (1..=65535).contains(&w) && (1..=65535).contains(&ht) =>
        {
            h.size = Some(Size::new(w as u32, ht as u32));
        }
        _ => {
            h.problem
                .get_or_insert_with(|| "header damaged: track".into());
        }
    }
}

/// Why a frame was not taken.
enum Stop {
    /// The file ends inside it: cut off (normal after a crash).
    Cut,
    /// Not what the writer makes: damage.
    Bad(String),
}

/// Walks the clusters from the end of the header.
fn walk(r: &mut Reader<'_>, s: &mut Scan, depth: Depth, head: &Head) -> io::Result<()> {
    let mut pos = HEADER_LEN;
    let mut last_ts: Option<u64> = None;
    let mut buf = Vec::new();
    'top: loop {
        if pos >= r.len {
            break;
        }
        let Some(h) = r.header(pos)? else {
            // Zeros (preallocated space, or pages that never reached the
            // card) or a cut: the data ends here.
            break;
        };
        match h.id {
            CLUSTER if h.len == 12 => {
                let body = pos + 12;
                let cluster_end = h.size.map(|sz| body.saturating_add(sz));
                let Some(ts) = r.get(body, 10)?.map(<[u8]>::to_vec) else {
                    break;
                };
                if ts[..2] != [mkv::CLUSTER_TIMESTAMP as u8, 0x88] {
                    s.problem = Some(format!("a cluster at byte {pos} has no timestamp"));
                    break;
                }
                let cluster_ts = read_uint(&ts[2..]).unwrap_or(u64::MAX);
                let earliest = last_ts.unwrap_or(0);
                if cluster_ts < earliest || cluster_ts > earliest + MAX_GAP_MS + CLUSTER_MS {
                    s.problem = Some(format!(
                        "the cluster at byte {pos} is out of order ({cluster_ts} ms after {earliest} ms)"
                    ));
                    break;
                }
                let mut at = body + 10;
                let mut first = true;
                loop {
                    if let Some(end) = cluster_end {
                        if at == end {
                            pos = at;
                            continue 'top;
                        }
                        if at > end {
                            s.problem = Some(format!("frames overrun the cluster at byte {pos}"));
                            break 'top;
                        }
                    }
                    let Some(bh) = r.header(at)? else {
                        break 'top;
                    };
                    match bh.id {
                        BLOCK_GROUP => match frame_at(r, at, &bh, cluster_ts, depth, &mut buf)? {
                            Ok((track @ (mkv::GPS_TRACK | mkv::ACCEL_TRACK), f)) => {
                                if first {
                                    s.clusters.push(ClusterRef {
                                        offset: pos,
                                        ts_ms: cluster_ts,
                                    });
                                    first = false;
                                }
                                at = f.end();
                                s.data_end = at;
                                if track == mkv::GPS_TRACK {
                                    s.samples.push(f);
                                } else {
                                    s.trace.push(f);
                                }
                            }
                            Ok((_, f)) => {
                                if first {
                                    s.clusters.push(ClusterRef {
                                        offset: pos,
                                        ts_ms: cluster_ts,
                                    });
                                    first = false;
                                }
                                last_ts = Some(f.ts_ms);
                                at = f.end();
                                s.data_end = at;
                                s.frames.push(f);
                            }
                            Err(Stop::Cut) => break 'top,
                            Err(Stop::Bad(why)) => {
                                s.problem = Some(format!("frame {}: {why}", s.frames.len() + 1));
                                break 'top;
                            }
                        },
                        CLUSTER | CUES if cluster_end.is_none() => {
                            pos = at;
                            continue 'top;
                        }
                        other => {
                            s.problem = Some(format!("unexpected element {other:#x} at byte {at}"));
                            break 'top;
                        }
                    }
                }
            }
            CUES => {
                check_finish(r, s, pos, &h, head)?;
                break;
            }
            other => {
                s.problem = Some(format!("unexpected element {other:#x} at byte {pos}"));
                break;
            }
        }
    }
    Ok(())
}

/// Checks the block (a frame, or a GPS sample) whose BlockGroup header `g`
/// is at `at`; gives its track and where it is.
fn frame_at(
    r: &mut Reader<'_>,
    at: u64,
    g: &Header,
    cluster_ts: u64,
    depth: Depth,
    buf: &mut Vec<u8>,
) -> io::Result<Result<(u8, FrameRef), Stop>> {
    let Some(size) = g.size else {
        return Ok(Err(Stop::Bad("a frame of unknown size".into())));
    };
    if g.len != 5 || size < GROUP_OVERHEAD - 5 + 4 {
        return Ok(Err(Stop::Bad("a malformed frame header".into())));
    }
    let Some(end) = at.checked_add(5 + size).filter(|&e| e <= r.len) else {
        return Ok(Err(Stop::Cut));
    };
    let Some(head) = r.get(at, GROUP_OVERHEAD as usize)?.map(<[u8]>::to_vec) else {
        return Ok(Err(Stop::Cut));
    };
    let block = read_header(&head[11..]);
    let track = head[16] & 0x7F;
    let well_formed = head[5..7] == [0xBF, 0x84]
        && block.is_some_and(|b| b.id == BLOCK && b.len == 5 && b.size == Some(size - 11))
        && [mkv::VIDEO_TRACK, mkv::GPS_TRACK, mkv::ACCEL_TRACK].contains(&(head[16] ^ 0x80))
        && head[19] == 0x00;
    let relative = i16::from_be_bytes([head[17], head[18]]);
    if !well_formed || !(0..=CLUSTER_MS as i16 * 2).contains(&relative) {
        return Ok(Err(Stop::Bad("a malformed frame header".into())));
    }
    let crc = u32::from_le_bytes([head[7], head[8], head[9], head[10]]);
    let jpeg_at = at + GROUP_OVERHEAD;
    let len = end - jpeg_at;
    if track != mkv::VIDEO_TRACK {
        let first = r.get(jpeg_at, 1)?.is_some_and(|b| b == b"{");
        let last = r.get(end - 1, 1)?.is_some_and(|b| b == b"}");
        if len as usize > mkv::MAX_SAMPLE || !first || !last {
            return Ok(Err(Stop::Bad(
                "a GPS sample or trace block is incomplete".into(),
            )));
        }
    } else {
        let soi = r.get(jpeg_at, 2)?.is_some_and(|b| b == [0xFF, 0xD8]);
        let eoi = r.get(end - 2, 2)?.is_some_and(|b| b == [0xFF, 0xD9]);
        if !soi || !eoi {
            return Ok(Err(Stop::Bad("the JPEG is incomplete".into())));
        }
    }
    if depth == Depth::Checksums {
        buf.resize((end - (at + 11)) as usize, 0);
        // A sector the card cannot read is damage like any other: the walk
        // stops before this frame.
        if let Err(e) = r.file.read_exact_at(buf, at + 11) {
            return Ok(Err(Stop::Bad(format!("it cannot be read ({e})"))));
        }
        if crc32fast::hash(buf) != crc {
            return Ok(Err(Stop::Bad("it fails its checksum".into())));
        }
    }
    Ok(Ok((
        track,
        FrameRef {
            ts_ms: cluster_ts + relative as u64,
            block_at: at + 11,
            jpeg_at,
            len,
            crc,
        },
    )))
}

/// Checks what follows the last frame of a finished file: Cues that point
/// at the clusters, statistics that count the frames, the end of the file,
/// and a header whose sizes and SeekHead agree.
fn check_finish(
    r: &mut Reader<'_>,
    s: &mut Scan,
    cues_at: u64,
    cues: &Header,
    head: &Head,
) -> io::Result<()> {
    let element = |r: &mut Reader<'_>, at: u64, h: &Header| -> io::Result<Option<Vec<u8>>> {
        let Some(size) = h.size.filter(|&sz| sz <= 64 << 20) else {
            return Ok(None);
        };
        Ok(r.get(at + h.len as u64, size as usize)?
            .and_then(checked_body)
            .map(<[u8]>::to_vec))
    };
    let fail = |s: &mut Scan, why: &str| s.problem = Some(why.to_string());
    let Some(cue_body) = element(r, cues_at, cues)? else {
        fail(s, "the cues are damaged");
        return Ok(());
    };
    let mut points = Vec::new();
    for point in children(&cue_body) {
        let Ok((CUE_POINT, point)) = point else {
            fail(s, "the cues are damaged");
            return Ok(());
        };
        let mut time = None;
        let mut position = None;
        for (id, v) in children(point).flatten() {
            match id {
                CUE_TIME => time = read_uint(v),
                CUE_TRACK_POSITIONS => {
                    for (pid, pv) in children(v).flatten() {
                        if pid == CUE_CLUSTER_POSITION {
                            position = read_uint(pv).map(|p| p.saturating_add(SEGMENT_DATA));
                        }
                    }
                }
                _ => {}
            }
        }
        points.push((position, time));
    }
    let expected: Vec<_> = s
        .clusters
        .iter()
        .map(|c| (Some(c.offset), Some(c.ts_ms)))
        .collect();
    if points != expected || s.data_end != cues_at {
        fail(s, "the cues do not match the clusters");
        return Ok(());
    }
    let tags_at = cues_at + cues.len as u64 + cues.size.unwrap_or(0);
    let tags = r.header(tags_at)?.filter(|t| t.id == TAGS);
    let frames = match tags {
        Some(t) => element(r, tags_at, &t)?
            .and_then(|b| frames_tag(&b))
            .map(|n| (n, tags_at + t.len as u64 + t.size.unwrap_or(0))),
        None => None,
    };
    let Some((frames, end)) = frames else {
        fail(s, "the statistics are damaged");
        return Ok(());
    };
    if frames != s.frames.len() as u64 {
        fail(s, "the statistics do not match the frames");
        return Ok(());
    }
    if end != r.len {
        fail(s, "bytes follow the end of the recording");
        return Ok(());
    }
    let header_agrees = head.segment_size == Some(r.len - SEGMENT_DATA)
        && head.cues_at == Some(cues_at)
        && head.tags_at == Some(tags_at);
    if !header_agrees {
        fail(s, "the header does not match the file");
        return Ok(());
    }
    s.finished = true;
    Ok(())
}

/// The NUMBER_OF_FRAMES statistics tag in a Tags body.
fn frames_tag(body: &[u8]) -> Option<u64> {
    for (id, tag) in children(body).flatten() {
        if id != TAG {
            continue;
        }
        for (sid, simple) in children(tag).flatten() {
            if sid != SIMPLE_TAG {
                continue;
            }
            let mut name = None;
            let mut value = None;
            for (k, v) in children(simple).flatten() {
                match k {
                    TAG_NAME => name = Some(v),
                    TAG_STRING => value = std::str::from_utf8(v).ok(),
                    _ => {}
                }
            }
            if name == Some(FRAMES_TAG.as_bytes()) {
                return value.and_then(|v| v.parse().ok());
            }
        }
    }
    None
}

/// What an index needs of a finished file, read from its header and its
/// statistics (two small reads); `None` if they are not intact, and the
/// caller scans the file instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Brief {
    pub frames: u64,
    pub duration_ms: u64,
    pub size: Size,
    pub started: SystemTime,
    pub clock_synced: Option<bool>,
    pub timelapse: bool,
}

/// Reads a finished file's [`Brief`].
pub fn brief(path: &Path) -> io::Result<Option<Brief>> {
    let file = File::open(path)?;
    let mut r = Reader::new(&file)?;
    let head = read_head(&mut r)?;
    let (Some(size), Some(started), Some(duration), Some(tags_at)) =
        (head.size, head.started, head.duration_ms, head.tags_at)
    else {
        return Ok(None);
    };
    if head.problem.is_some() || head.segment_size != Some(r.len - SEGMENT_DATA) {
        return Ok(None);
    }
    let Some(t) = r.header(tags_at)?.filter(|t| t.id == TAGS) else {
        return Ok(None);
    };
    let body = t
        .size
        .filter(|&sz| sz <= 4096)
        .and_then(|sz| r.get(tags_at + t.len as u64, sz as usize).ok().flatten())
        .and_then(checked_body)
        .and_then(frames_tag);
    Ok(body.map(|frames| Brief {
        frames,
        duration_ms: duration.max(0.0) as u64,
        size,
        started,
        clock_synced: head.clock_synced,
        timelapse: head.timelapse,
    }))
}

/// Reads one frame's JPEG, checking its CRC-32 when `check` is set.
pub fn read_frame(file: &File, frame: &FrameRef, check: bool) -> io::Result<Vec<u8>> {
    let head = (frame.jpeg_at - frame.block_at) as usize;
    let mut buf = vec![0u8; head + frame.len as usize];
    file.read_exact_at(&mut buf, frame.block_at)?;
    if check && crc32fast::hash(&buf) != frame.crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the frame fails its checksum",
        ));
    }
    buf.drain(..head);
    Ok(buf)
}

/// Why a file could not be repaired.
#[derive(Debug)]
pub enum RepairError {
    Io(io::Error),
    /// Not one frame passed its checks.
    NothingToKeep(String),
}

impl std::fmt::Display for RepairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::NothingToKeep(why) => write!(f, "no complete frame ({why})"),
        }
    }
}

impl From<io::Error> for RepairError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// What repair kept of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Repaired {
    pub summary: Summary,
    /// The first frame that failed a check, if the walk stopped at one.
    pub cut: Option<String>,
    /// The header was damaged and has been written anew.
    pub header_rewritten: bool,
}

/// Finishes an interrupted file in place: reads what is on the card (not
/// what the page cache remembers), keeps every frame up to the first that
/// fails a check, and writes cues, statistics, exact sizes and a new header.
/// `fallback_start` names the start time if the header lost it.
pub fn repair(path: &Path, fallback_start: SystemTime) -> Result<Repaired, RepairError> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    // Pages the kernel still holds may differ from the card after a failed
    // sync; drop them so the checks read the card. Dirty pages stay (they
    // will be written), so this loses nothing.
    let _ = nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    let s = scan_file(&file, Depth::Checksums)?;
    let Some(first) = s.frames.first() else {
        return Err(RepairError::NothingToKeep(
            s.problem
                .unwrap_or_else(|| "the file holds no frame".into()),
        ));
    };
    let size = match s.size {
        Some(size) => size,
        None => crate::encode::jpeg_size(&read_frame(&file, first, true)?).ok_or_else(|| {
            RepairError::NothingToKeep("neither the header nor the first JPEG gives a size".into())
        })?,
    };
    let started = s.started.unwrap_or(fallback_start);
    let last = s.frames.last().map_or(0, |f| f.ts_ms);
    // The file ends with its last frame: GPS samples after it (written for
    // a frame the cut lost) go with that frame, so the track never runs on
    // past the video.
    let data_end = s.frames.last().map_or(s.data_end, FrameRef::end);
    let clusters: Vec<ClusterRef> = s
        .clusters
        .iter()
        .copied()
        .filter(|c| c.offset < data_end)
        .collect();
    let summary = mkv::finish_file(
        &file,
        mkv::FileHead {
            size,
            started,
            clock: s.clock_synced,
            timelapse: s.timelapse,
        },
        &clusters,
        data_end,
        s.frames.len() as u64,
        last + s.interval_ms(),
    )?;
    Ok(Repaired {
        summary,
        cut: s.problem,
        header_rewritten: !s.header_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::mkv::MkvWriter;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("blackbox-scan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("a.mkv")
    }

    fn fake_jpeg(i: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
        v.extend((0..len).map(|k| (k as u32 * 7 + i) as u8));
        v.extend([0xFF, 0xD9]);
        v
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_713_960)
    }

    #[test]
    fn written_files_scan_back_exactly() {
        let path = tmp("roundtrip");
        let mut w = MkvWriter::create(&path, Size::new(640, 480), t0()).unwrap();
        let mut expected = Vec::new();
        for i in 0..95u32 {
            let ts = u64::from(i) * 33;
            let jpeg = fake_jpeg(i, 500 + i as usize);
            w.write_frame(ts, &jpeg).unwrap();
            expected.push((ts, jpeg));
        }
        // Mid-file, before finishing: what a power cut would leave.
        let partial = scan(&path, Depth::Checksums).unwrap();
        assert!(!partial.finished);
        assert_eq!(partial.problem, None, "zeros after the data are not damage");
        assert!(partial.header_ok);
        assert_eq!(partial.frames.len(), 95);
        let summary = w.finish(33).unwrap();
        assert_eq!(summary.frames, 95);
        assert_eq!(summary.duration_ms, 94 * 33 + 33);
        let s = scan(&path, Depth::Checksums).unwrap();
        assert!(s.intact(), "{:?}", s.problem);
        assert_eq!(s.size, Some(Size::new(640, 480)));
        assert_eq!(s.started, Some(t0()));
        assert_eq!(s.duration_ms, Some((94 * 33 + 33) as f64));
        assert_eq!(s.clusters.len(), 4, "a cluster per second");
        let file = File::open(&path).unwrap();
        for (f, (ts, jpeg)) in s.frames.iter().zip(&expected) {
            assert_eq!(f.ts_ms, *ts);
            assert_eq!(&read_frame(&file, f, true).unwrap(), jpeg);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), summary.bytes);
        let b = brief(&path).unwrap().unwrap();
        assert_eq!(b.frames, 95);
        assert_eq!(b.duration_ms, 94 * 33 + 33);
        assert_eq!(b.size, Size::new(640, 480));
        assert_eq!(b.started, t0());
        assert_eq!(
            scan(&path, Depth::Structure).unwrap().frames,
            s.frames,
            "structure alone finds the same frames"
        );
    }

    #[test]
    fn a_cut_file_keeps_every_complete_frame() {
        let path = tmp("cut");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), t0()).unwrap();
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
            let s = scan(&p, Depth::Checksums).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.frames.len(), complete, "cut at {cut}");
            if complete > 0 {
                let r = repair(&p, t0()).unwrap();
                assert_eq!(r.summary.frames, complete as u64);
                let again = scan(&p, Depth::Checksums).unwrap();
                assert!(again.intact(), "{:?}", again.problem);
                assert_eq!(again.frames.len(), complete);
            } else {
                assert!(matches!(
                    repair(&p, t0()),
                    Err(RepairError::NothingToKeep(_))
                ));
            }
        }
    }

    #[test]
    fn gps_samples_ride_with_the_frames_and_a_cut_keeps_them_whole() {
        let path = tmp("gps");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), t0()).unwrap();
        let sample = |i: u32| format!("{{\"mode\":3,\"lat\":52.{i:06},\"lon\":13.5}}");
        // A sample before every tenth frame, at the time it arrived.
        let mut frame_ends = Vec::new();
        let mut sample_ends = Vec::new();
        for i in 0..50u32 {
            if i % 10 == 5 {
                w.write_sample(u64::from(i) * 40 - 7, sample(i).as_bytes())
                    .unwrap();
                sample_ends.push(w.bytes());
            }
            w.write_frame(u64::from(i) * 40, &fake_jpeg(i, 300))
                .unwrap();
            frame_ends.push(w.bytes());
        }
        assert!(w.write_sample(0, b"{\"unterminated\"").is_err());
        let full = std::fs::read(&path).unwrap();
        let s = scan(&path, Depth::Checksums).unwrap();
        assert_eq!((s.frames.len(), s.samples.len()), (50, 5));
        let file = File::open(&path).unwrap();
        for (n, f) in s.samples.iter().enumerate() {
            let i = n as u32 * 10 + 5;
            assert_eq!(f.ts_ms, u64::from(i) * 40 - 7);
            assert_eq!(read_frame(&file, f, true).unwrap(), sample(i).as_bytes());
        }
        // Cut just after the third sample: it belongs to a frame that was
        // lost, so the repaired file ends with frame 25 and two samples.
        let cut = sample_ends[2];
        let p = path.with_file_name("gps-cut.mkv");
        std::fs::write(&p, &full[..cut as usize]).unwrap();
        let r = repair(&p, t0()).unwrap();
        assert_eq!(r.summary.frames, 25);
        let again = scan(&p, Depth::Checksums).unwrap();
        assert!(again.intact(), "{:?}", again.problem);
        assert_eq!((again.frames.len(), again.samples.len()), (25, 2));
        // A sample torn in half ends the walk there, like a torn frame.
        let p = path.with_file_name("gps-torn.mkv");
        let mut torn = full[..cut as usize].to_vec();
        let last = torn.len() - 1;
        torn[last] = b'x';
        std::fs::write(&p, &torn).unwrap();
        let s = scan(&p, Depth::Structure).unwrap();
        assert_eq!((s.frames.len(), s.samples.len()), (25, 2));
        assert!(s.problem.unwrap().contains("GPS sample"));
        w.finish(40).unwrap();
        let s = scan(&path, Depth::Checksums).unwrap();
        assert!(s.intact(), "{:?}", s.problem);
        assert_eq!((s.frames.len(), s.samples.len()), (50, 5));
        assert_eq!(brief(&path).unwrap().unwrap().frames, 50);
    }

    #[test]
    fn the_acceleration_trace_rides_with_the_frames_and_a_cut_keeps_it_whole() {
        let path = tmp("trace");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), t0()).unwrap();
        let block =
            |i: u32| format!("{{\"g\":[[0,0.5,0.0,0.866,0.0{i:02}],[10,0.5,0.0,0.866,0.1]]}}");
        let mut trace_ends = Vec::new();
        for i in 0..30u32 {
            w.write_trace(u64::from(i) * 40, block(i).as_bytes())
                .unwrap();
            trace_ends.push(w.bytes());
            w.write_frame(u64::from(i) * 40 + 5, &fake_jpeg(i, 300))
                .unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        let s = scan(&path, Depth::Checksums).unwrap();
        assert_eq!(
            (s.frames.len(), s.trace.len(), s.samples.len()),
            (30, 30, 0)
        );
        let file = File::open(&path).unwrap();
        assert_eq!(
            read_frame(&file, &s.trace[7], true).unwrap(),
            block(7).as_bytes()
        );
        // Cut after the 11th block, before its frame: ten of each are kept.
        let p = path.with_file_name("trace-cut.mkv");
        std::fs::write(&p, &full[..trace_ends[10] as usize]).unwrap();
        assert_eq!(repair(&p, t0()).unwrap().summary.frames, 10);
        let again = scan(&p, Depth::Checksums).unwrap();
        assert!(again.intact(), "{:?}", again.problem);
        assert_eq!((again.frames.len(), again.trace.len()), (10, 10));
        // A block torn in half ends the walk there.
        let p = path.with_file_name("trace-torn.mkv");
        let mut torn = full[..trace_ends[10] as usize].to_vec();
        let last = torn.len() - 1;
        torn[last] = b'x';
        std::fs::write(&p, &torn).unwrap();
        let s = scan(&p, Depth::Structure).unwrap();
        assert_eq!((s.frames.len(), s.trace.len()), (10, 10));
        assert!(s.problem.unwrap().contains("trace block"));
    }

    #[test]
    fn a_zeroed_page_inside_a_frame_ends_the_file_there() {
        let path = tmp("zero-page");
        let mut w = MkvWriter::create(&path, Size::new(320, 240), t0()).unwrap();
        let mut ends = Vec::new();
        for i in 0..30u32 {
            w.write_frame(u64::from(i) * 40, &fake_jpeg(i, 20_000))
                .unwrap();
            ends.push(w.bytes());
        }
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        // A 4 KiB page inside frame 20, not touching its first or last bytes.
        let page = (ends[19] + 4096).div_ceil(4096) * 4096;
        assert!(page + 4096 < ends[20] - 2);
        bytes[page as usize..page as usize + 4096].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let quick = scan(&path, Depth::Structure).unwrap();
        assert_eq!(quick.frames.len(), 30, "the structure alone cannot see it");
        let s = scan(&path, Depth::Checksums).unwrap();
        assert_eq!(s.frames.len(), 20);
        assert!(
            s.problem.as_deref().unwrap().contains("checksum"),
            "{:?}",
            s.problem
        );
        let r = repair(&path, t0()).unwrap();
        assert_eq!(r.summary.frames, 20);
        assert!(r.cut.is_some());
        assert!(scan(&path, Depth::Checksums).unwrap().intact());
    }

    #[test]
    fn a_damaged_header_is_written_anew() {
        let path = tmp("header");
        let size = Size::new(320, 240);
        let jpeg =
            crate::encode::encode_i420(&crate::convert::I420::new(size).unwrap(), 80).unwrap();
        let mut w = MkvWriter::create(&path, size, t0()).unwrap();
        for i in 0..10u32 {
            w.write_frame(u64::from(i) * 40, &jpeg).unwrap();
        }
        drop(w);
        // The EBML header, the Segment ID, Info, Tracks.
        for (at, flip) in [
            (0usize, 0x01u8),
            (7, 0x80),
            (41, 0xFF),
            (200, 0x04),
            (300, 0x10),
        ] {
            let p = path.with_file_name(format!("flip-{at}.mkv"));
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at] ^= flip;
            std::fs::write(&p, &bytes).unwrap();
            let s = scan(&p, Depth::Checksums).unwrap();
            assert!(!s.header_ok, "byte {at}");
            assert_eq!(s.frames.len(), 10, "byte {at}: the frames are fine");
            let r = repair(&p, t0()).unwrap();
            assert!(r.header_rewritten);
            let again = scan(&p, Depth::Checksums).unwrap();
            assert!(again.intact(), "byte {at}: {:?}", again.problem);
            assert_eq!(again.size, Some(size), "byte {at}");
        }
    }

    #[test]
    fn garbage_is_a_problem_not_a_panic() {
        let path = tmp("garbage");
        std::fs::write(&path, b"this is not a video file at all").unwrap();
        let s = scan(&path, Depth::Checksums).unwrap();
        assert!(!s.usable());
        assert!(s.problem.is_some());
        std::fs::write(&path, b"").unwrap();
        assert!(!scan(&path, Depth::Checksums).unwrap().usable());
        assert!(brief(&path).unwrap().is_none());
        std::fs::write(&path, vec![0xFFu8; 5000]).unwrap();
        assert!(!scan(&path, Depth::Checksums).unwrap().usable());
    }
}
