//! One camera's pipeline: its capture thread, its share of the encoder pool
//! ([`crate::encoders`]), and its placeholder thread; from a [`Source`] to
//! encoded frames on the camera's [`Bus`], in capture order.
//!
//! # Implementation
//! - The capture thread owns the source. For each raw frame it checks that
//!   somebody will consume it ([`Bus::has_consumers`]), then converts the
//!   driver's buffer straight into a pooled [`I420`] image: that single pass
//!   is the only read of the buffer, so it can go back to the driver at once.
//!   JPEG frames from the camera are checked and copied once instead.
//! - Converted images go to the shared encoder threads through this camera's
//!   lane of the pool. If the lane is full the frame is dropped and counted:
//!   capture never waits for the encoders.
//! - Each job carries an index; the [`Sequencer`] publishes finished frames
//!   strictly in index order, so a fast worker cannot overtake a slow one.
//!   A frame that fails to encode still advances the index (as a gap).
//! - A source error closes the source and reopens it with back-off (0.5 s,
//!   doubling to 5 s), while the HTTP side keeps serving. If the camera has a
//!   sign of presence (a device node), its reappearance ends the wait at once,
//!   so a replugged camera streams again within a fraction of a second. A bad
//!   single frame is counted and skipped without reopening.
//! - While the source is not streaming, a placeholder thread publishes a
//!   "NO SIGNAL" frame once a second (only if somebody is watching).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bus::Bus;
use crate::caption::Captioner;
use crate::capture::{CaptureError, Source};
use crate::clock::Timestamp;
use crate::convert::{self, I420};
use crate::encode;
use crate::encoders::LaneSender;
use crate::frame::{Frame, PixelFormat, RawFrame};
use crate::parking::Parking;
use crate::parking::motion::MotionDetector;
use crate::stats::{CaptureState, Stats};
use crate::supervise::CameraBeats;
use crate::sync::lock;

/// Opens (or reopens) the source; called on the capture thread.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Source>, CaptureError> + Send>;

/// Whether the camera looks present (`Some(true)`), absent (`Some(false)`),
/// or cannot tell (`None`).
pub type Presence = Box<dyn Fn() -> Option<bool> + Send>;

/// How the pipeline reaches the camera.
pub struct Camera {
    pub open: Opener,
    pub present: Presence,
    /// The size placeholders are drawn at.
    pub placeholder_size: crate::frame::Size,
    /// Turn raw frames 180 degrees as they are converted.
    pub rotate: bool,
}

impl Camera {
    /// A camera with no sign of presence.
    pub fn new(open: Opener, placeholder_size: crate::frame::Size) -> Self {
        Self {
            open,
            present: Box::new(|| None),
            placeholder_size,
            rotate: false,
        }
    }
}

/// Where one camera's frames go: its bus, counters and heartbeats, its lane
/// of the encoder pool, and the JPEG quality it is encoded at.
pub struct Outputs {
    pub bus: Arc<Bus>,
    pub stats: Arc<Stats>,
    pub beats: Arc<CameraBeats>,
    pub lane: LaneSender,
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// The caption burned into each frame, if any.
    pub caption: Option<Arc<Captioner>>,
    /// Caption MJPEG frames too (decoded and encoded again).
    pub caption_mjpeg: bool,
    /// Parking mode, which says when to look for motion.
    pub parking: Option<Arc<Parking>>,
}

/// Publishes frames in index order, whatever order they finish in.
pub struct Sequencer {
    bus: Arc<Bus>,
    state: Mutex<SeqState>,
}

#[derive(Default)]
struct SeqState {
    next: u64,
    pending: BTreeMap<u64, Option<Arc<Frame>>>,
}

impl Sequencer {
    pub fn new(bus: Arc<Bus>) -> Self {
        Self {
            bus,
            state: Mutex::new(SeqState::default()),
        }
    }

    /// Reports job `index` done: `Some` to publish, `None` for a dropped frame.
    pub fn complete(&self, index: u64, frame: Option<Arc<Frame>>) {
        let mut st = lock(&self.state);
        st.pending.insert(index, frame);
        loop {
            let next = st.next;
            let Some(done) = st.pending.remove(&next) else {
                break;
            };
            st.next += 1;
            if let Some(frame) = done {
                self.bus.publish(frame);
            }
        }
    }
}

/// Recycled I420 images, so steady-state capture allocates nothing.
#[derive(Default)]
struct Pool(Mutex<Vec<I420>>);

impl Pool {
    fn take(&self) -> Option<I420> {
        lock(&self.0).pop()
    }
    fn put(&self, img: I420) {
        lock(&self.0).push(img);
    }
}

/// The running capture and placeholder threads of one camera.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    capture: Option<JoinHandle<()>>,
    placeholder: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts capturing from what `camera.open` returns into `out`; `name`
    /// names the threads (`capture-front`).
    pub fn start(camera: Camera, out: Outputs, name: &str) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let Outputs {
            bus,
            stats,
            beats,
            lane,
            quality,
            caption,
            caption_mjpeg,
            parking,
        } = out;
        let sequencer = Arc::new(Sequencer::new(bus.clone()));
        let pool = Arc::new(Pool::default());

        let placeholder = {
            let (stop, bus, stats) = (stop.clone(), bus.clone(), stats.clone());
            let size = camera.placeholder_size;
            std::thread::Builder::new()
                .name(format!("placeholder-{name}"))
                .spawn(move || placeholder_loop(size, &bus, &stats, &stop))?
        };
        let capture = {
            let stop = stop.clone();
            let name_owned = name.to_string();
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || {
                    let mut cap = Capture {
                        name: name_owned,
                        rotate: camera.rotate,
                        warned_unturned: false,
                        lane,
                        quality,
                        caption,
                        caption_mjpeg,
                        sequencer,
                        pool,
                        stats,
                        beats,
                        bus,
                        next_index: 0,
                        last_seq: None,
                        watch: parking.map(|p| Watch {
                            parking: p,
                            detector: None,
                            last_look: None,
                            last: None,
                            scratch: None,
                            last_kept: None,
                        }),
                    };
                    cap.run(camera, &stop);
                })?
        };
        Ok(Self {
            stop,
            capture: Some(capture),
            placeholder: Some(placeholder),
        })
    }

    /// Stops capture and joins the threads; jobs already in the encoder
    /// pool finish there (the pool's shutdown waits for them).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self.capture.take() {
            let _ = c.join();
        }
        if let Some(p) = self.placeholder.take() {
            let _ = p.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The capture thread's state.
struct Capture {
    /// The camera's id, for the log.
    name: String,
    rotate: bool,
    /// Said once that this camera's JPEGs pass through unturned.
    warned_unturned: bool,
    lane: LaneSender,
    quality: u8,
    caption: Option<Arc<Captioner>>,
    caption_mjpeg: bool,
    sequencer: Arc<Sequencer>,
    pool: Arc<Pool>,
    stats: Arc<Stats>,
    beats: Arc<CameraBeats>,
    bus: Arc<Bus>,
    next_index: u64,
    last_seq: Option<u64>,
    watch: Option<Watch>,
}

/// Looking for motion while parked (see [`crate::parking::motion`]), on
/// the capture thread, before the caption is drawn: a raw frame costs a
/// fraction of a millisecond; an MJPEG camera's frame must be decoded, so
/// at most one every [`MJPEG_LOOK_EVERY`] is looked at and the frames
/// between carry its verdict.
struct Watch {
    parking: Arc<Parking>,
    detector: Option<MotionDetector>,
    /// Capture time of the last frame looked at.
    last_look: Option<std::time::Duration>,
    /// Its verdict.
    last: Option<bool>,
    /// An MJPEG frame decoded to look at.
    scratch: Option<I420>,
    /// Capture time of the last frame processed at the parked rate.
    last_kept: Option<std::time::Duration>,
}

/// How often an MJPEG camera's frames are decoded to look for motion.
const MJPEG_LOOK_EVERY: Duration = Duration::from_millis(200);

impl Watch {
    /// Whether this frame falls between two a parked camera processes.
    fn between_looks(&mut self, at: std::time::Duration) -> bool {
        let Some(interval) = self.parking.frame_interval() else {
            self.last_kept = None;
            return false;
        };
        // A little slack, so that a camera at exactly parking.fps keeps
        // every frame despite jitter.
        let skip = self
            .last_kept
            .is_some_and(|t| at.saturating_sub(t) + interval / 8 < interval);
        if !skip {
            self.last_kept = Some(at);
        }
        skip
    }

    /// The detector when the car is parked in motion mode (a fresh one
    /// each time parking begins), else `None`.
    fn detector(&mut self) -> Option<&mut MotionDetector> {
        if !self.parking.watching_motion() {
            self.detector = None;
            self.last_look = None;
            self.last = None;
            return None;
        }
        let cfg = self.parking.config();
        let (threshold, area) = (cfg.motion_threshold, cfg.motion_area);
        Some(
            self.detector
                .get_or_insert_with(|| MotionDetector::new(threshold, area)),
        )
    }

    fn look(&mut self, img: &I420, at: std::time::Duration) -> Option<bool> {
        let detector = self.detector()?;
        let size = img.size();
        let (y, _, _) = img.planes();
        let v = detector.push(y, size.width as usize, size.height as usize, img.y_stride());
        if v.lighting {
            self.parking
                .lighting_changes
                .fetch_add(1, Ordering::Relaxed);
        }
        self.last_look = Some(at);
        self.last = Some(v.motion);
        self.last
    }

    fn look_jpeg(
        &mut self,
        jpeg: &[u8],
        size: crate::frame::Size,
        at: std::time::Duration,
    ) -> Option<bool> {
        self.detector()?;
        if self
            .last_look
            .is_some_and(|t| at.saturating_sub(t) < MJPEG_LOOK_EVERY)
        {
            return self.last;
        }
        let mut img = match self.scratch.take() {
            Some(i) if i.size() == size => i,
            _ => I420::new(size).ok()?,
        };
        let verdict = match convert::jpeg_to_i420(jpeg, &mut img) {
            Ok(()) => self.look(&img, at),
            Err(_) => self.last,
        };
        self.scratch = Some(img);
        verdict
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Capture {
    fn run(&mut self, mut camera: Camera, stop: &AtomicBool) {
        let mut backoff = BACKOFF_FIRST;
        while !stop.load(Ordering::SeqCst) {
            let mut source = match (camera.open)() {
                Ok(s) => s,
                Err(e) => {
                    log::warn!(
                        "camera {}: cannot open it: {e}; retrying in {backoff:?}",
                        self.name
                    );
                    self.stats.capture_errors.inc();
                    self.stats.set_no_signal(e.to_string(), true);
                    wait_to_reopen(backoff, &camera.present, stop, &self.beats);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let info = source.info();
            log::info!(
                "camera {}: capturing from {} ({}): {} {} at {} fps",
                self.name,
                info.kind.name(),
                info.device,
                info.format,
                info.size,
                info.fps
            );
            // "Streaming" only once a frame has actually arrived.
            let mut announced = Some(info);
            self.last_seq = None;
            let mut streaming_since = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                // Test-only: a capture thread stuck in the driver.
                crate::faults::hold_while(|f| f.wedge_capture);
                // Every turn is progress, a timeout or an error included:
                // those are handled (placeholder, reopen), not a hang.
                self.beats.capture.beat();
                match source.next_frame() {
                    Ok(frame) => {
                        if let Some(info) = announced.take() {
                            self.stats.set_streaming(info);
                        }
                        self.handle(frame);
                        if streaming_since.elapsed() > BACKOFF_MAX {
                            backoff = BACKOFF_FIRST;
                            streaming_since = Instant::now();
                        }
                    }
                    Err(e) if !e.is_fatal() => {
                        log::debug!("{e}");
                        self.stats.dropped_bad.inc();
                        if let CaptureError::BadFrame { seq: Some(seq), .. } = e {
                            self.note_sequence(seq);
                        }
                    }
                    Err(e) => {
                        log::warn!("camera {}: {e}; reopening in {backoff:?}", self.name);
                        self.stats.capture_errors.inc();
                        self.stats.set_no_signal(e.to_string(), true);
                        break;
                    }
                }
            }
            drop(source);
            if !stop.load(Ordering::SeqCst) {
                wait_to_reopen(backoff, &camera.present, stop, &self.beats);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Counts frames the source skipped before `seq`.
    fn note_sequence(&mut self, seq: u64) {
        if let Some(last) = self.last_seq
            && seq > last + 1
        {
            self.stats.dropped_source.add(seq - last - 1);
        }
        self.last_seq = Some(seq);
        self.stats.last_sequence.store(seq, Ordering::Relaxed);
    }

    fn handle(&mut self, raw: RawFrame<'_>) {
        self.stats.captured.inc();
        self.note_sequence(raw.seq);

        if !self.bus.has_consumers() {
            self.stats.idle.inc();
            return;
        }
        // Parked, nothing recorded and nobody watching: at parking.fps.
        if let Some(w) = self.watch.as_mut()
            && self.bus.viewer_count() == 0
            && w.between_looks(raw.captured.mono)
        {
            self.stats.idle.inc();
            return;
        }
        let recode =
            raw.format == PixelFormat::Mjpeg && self.caption_mjpeg && self.caption.is_some();
        if raw.format == PixelFormat::Mjpeg && !recode {
            if self.rotate && !self.warned_unturned {
                self.warned_unturned = true;
                log::warn!(
                    "camera {}: it sends only MJPEG, which passes through as it came: rotation = 180 cannot turn it",
                    self.name
                );
            }
            match encode::check_jpeg(raw.data) {
                Ok(jpeg) => {
                    self.stats.passed_through.inc();
                    let motion = self
                        .watch
                        .as_mut()
                        .and_then(|w| w.look_jpeg(jpeg, raw.size, raw.captured.mono));
                    let frame = Frame {
                        jpeg: Bytes::copy_from_slice(jpeg),
                        seq: raw.seq,
                        captured: raw.captured,
                        size: raw.size,
                        source_format: raw.format,
                        placeholder: false,
                        motion,
                    };
                    let index = self.claim_index();
                    self.sequencer.complete(index, Some(Arc::new(frame)));
                }
                Err(e) => {
                    log::debug!("frame {} dropped: {e}", raw.seq);
                    self.stats.dropped_corrupt.inc();
                }
            }
            return;
        }
        if self.lane.is_full() {
            self.stats.dropped_busy.inc();
            return;
        }
        let mut img = match self.pool.take() {
            Some(img) => img,
            None => match I420::new(raw.size) {
                Ok(img) => img,
                Err(e) => {
                    log::warn!("frame {} dropped: {e}", raw.seq);
                    self.stats.dropped_convert.inc();
                    return;
                }
            },
        };
        // An MJPEG frame to caption is decoded on the encoder thread.
        let jpeg_in = recode.then(|| Bytes::copy_from_slice(raw.data));
        let converted = if recode {
            Ok(())
        } else {
            convert::to_i420_turned(
                raw.format,
                raw.data,
                raw.size,
                raw.stride,
                self.rotate,
                &mut img,
            )
        };
        if let Err(e) = converted {
            log::warn!("frame {} dropped: {e}", raw.seq);
            self.stats.dropped_convert.inc();
            self.pool.put(img);
            return;
        }
        let motion = match (self.watch.as_mut(), &jpeg_in) {
            (None, _) => None,
            (Some(w), Some(jpeg)) => w.look_jpeg(jpeg, raw.size, raw.captured.mono),
            (Some(w), None) => w.look(&img, raw.captured.mono),
        };
        let index = self.claim_index();
        let job = EncodeJob {
            index,
            motion,
            img,
            jpeg_in,
            caption: self.caption.clone(),
            seq: raw.seq,
            captured: raw.captured,
            source_format: raw.format,
            quality: self.quality,
            sequencer: self.sequencer.clone(),
            pool: self.pool.clone(),
            stats: self.stats.clone(),
            beats: self.beats.clone(),
        };
        // Only this thread fills this lane, and it had room above.
        self.beats.encoders.submitted();
        if self.lane.try_send(Box::new(move || job.run())).is_err() {
            // Never given after all (the pool is closing).
            self.beats.encoders.completed();
            self.stats.dropped_busy.inc();
            self.sequencer.complete(index, None);
        }
    }

    fn claim_index(&mut self) -> u64 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }
}

/// A converted frame and everything its encoding reports to; runs on an
/// encoder thread of the shared pool.
struct EncodeJob {
    index: u64,
    /// The motion detector's verdict, when it looked.
    motion: Option<bool>,
    img: I420,
    /// An MJPEG camera's frame to decode into `img` first (to caption it).
    jpeg_in: Option<Bytes>,
    caption: Option<Arc<Captioner>>,
    seq: u64,
    captured: Timestamp,
    source_format: PixelFormat,
    quality: u8,
    sequencer: Arc<Sequencer>,
    pool: Arc<Pool>,
    stats: Arc<Stats>,
    beats: Arc<CameraBeats>,
}

impl EncodeJob {
    fn run(mut self) {
        let t0 = Instant::now();
        if let Some(jpeg) = self.jpeg_in.take()
            && let Err(e) = convert::jpeg_to_i420(&jpeg, &mut self.img)
        {
            log::debug!("frame {} dropped: {e}", self.seq);
            self.stats.dropped_corrupt.inc();
            self.sequencer.complete(self.index, None);
            self.pool.put(self.img);
            self.beats.encoders.completed();
            return;
        }
        if let Some(c) = &self.caption {
            c.draw(&mut self.img, self.captured.wall);
        }
        let result = encode::encode_i420(&self.img, self.quality);
        self.stats.encode_ns.add(t0.elapsed().as_nanos() as u64);
        let frame = match result {
            Ok(jpeg) => {
                self.stats.encoded.inc();
                Some(Arc::new(Frame {
                    jpeg: Bytes::from(jpeg),
                    seq: self.seq,
                    captured: self.captured,
                    size: self.img.size(),
                    source_format: self.source_format,
                    placeholder: false,
                    motion: self.motion,
                }))
            }
            Err(e) => {
                log::warn!("frame {} dropped: {e}", self.seq);
                self.stats.encode_errors.inc();
                None
            }
        };
        self.sequencer.complete(self.index, frame);
        self.pool.put(self.img);
        self.beats.encoders.completed();
    }
}

/// Sleeps for `total`, or until stopped, or until the camera reappears
/// (absent at some point during the wait, then present).
fn wait_to_reopen(total: Duration, present: &Presence, stop: &AtomicBool, beats: &CameraBeats) {
    let deadline = Instant::now() + total;
    let mut was_absent = present() == Some(false);
    while !stop.load(Ordering::SeqCst) {
        beats.capture.beat();
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        match present() {
            Some(false) => was_absent = true,
            Some(true) if was_absent => {
                log::info!("a camera is back");
                // Give udev and the driver a moment to finish setting it up.
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
            _ => {}
        }
    }
}

/// Publishes a placeholder once a second while the source is not streaming
/// and somebody is watching.
fn placeholder_loop(size: crate::frame::Size, bus: &Bus, stats: &Stats, stop: &AtomicBool) {
    let mut last: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let status = stats.capture_status();
        if status.state == CaptureState::Streaming {
            last = None;
            continue;
        }
        if !bus.has_consumers() || last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            continue;
        }
        let (title, detail) = match status.state {
            CaptureState::Starting => ("STARTING", "opening the camera".to_string()),
            _ => ("NO SIGNAL", status.last_error.unwrap_or_default()),
        };
        let now = Timestamp::now();
        match crate::placeholder::render(size, title, &detail, now.wall) {
            Ok(jpeg) => {
                stats.placeholders.inc();
                bus.publish(Arc::new(Frame {
                    jpeg: Bytes::from(jpeg),
                    seq: 0,
                    captured: now,
                    size,
                    source_format: PixelFormat::Mjpeg,
                    placeholder: true,
                    motion: None,
                }));
            }
            Err(e) => log::warn!("{e}"),
        }
        last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Size;

    fn frame(seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            jpeg: Bytes::from_static(b"x"),
            seq,
            captured: Timestamp::now(),
            size: Size::new(2, 2),
            source_format: PixelFormat::Yuyv,
            placeholder: false,
            motion: None,
        })
    }

    /// A camera that plays a script: frames (JPEG bytes with a sequence
    /// number) and failures.
    struct Scripted {
        script: std::vec::IntoIter<Result<(u64, Vec<u8>), ()>>,
        current: Vec<u8>,
    }

    impl Source for Scripted {
        fn info(&self) -> crate::capture::SourceInfo {
            crate::capture::SourceInfo {
                kind: crate::capture::SourceKind::Testsrc,
                device: "script".into(),
                format: PixelFormat::Mjpeg,
                size: Size::new(320, 240),
                fps: 100,
            }
        }
        fn next_frame(&mut self) -> Result<RawFrame<'_>, CaptureError> {
            std::thread::sleep(Duration::from_millis(5));
            match self.script.next() {
                Some(Ok((seq, bytes))) => {
                    self.current = bytes;
                    Ok(RawFrame {
                        data: &self.current,
                        format: PixelFormat::Mjpeg,
                        size: Size::new(320, 240),
                        stride: 0,
                        seq,
                        captured: Timestamp::now(),
                    })
                }
                Some(Err(())) => Err(CaptureError::Gone("unplugged".into())),
                None => Err(CaptureError::Timeout(Duration::from_millis(5))),
            }
        }
    }

    #[test]
    fn corrupt_frames_gaps_and_errors_are_counted_not_fatal() {
        let good = encode::encode_i420(&I420::new(Size::new(320, 240)).unwrap(), 80).unwrap();
        let truncated = good[..good.len() / 2].to_vec();
        let script = vec![
            Ok((0, good.clone())),
            Ok((1, truncated)),
            Ok((2, vec![0xFF, 0xD8])),
            Ok((5, good.clone())), // the camera skipped 3 and 4
            Err(()),
        ];
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let opens = opened.clone();
        let open: Opener = Box::new(move || {
            // The first open plays the script; reopens play one good frame.
            let n = opens.fetch_add(1, Ordering::SeqCst);
            let script = if n == 0 {
                script.clone()
            } else {
                vec![Ok((0, good.clone()))]
            };
            Ok(Box::new(Scripted {
                script: script.into_iter(),
                current: Vec::new(),
            }) as Box<dyn Source>)
        });
        let bus = Bus::new();
        let rx = bus.subscribe_ordered(16);
        let stats = Arc::new(Stats::default());
        let encoders = crate::encoders::EncoderPool::start(1, 1).unwrap();
        let camera = Camera::new(open, Size::new(320, 240));
        let out = Outputs {
            bus: bus.clone(),
            stats: stats.clone(),
            beats: Arc::new(CameraBeats::default()),
            lane: encoders.lane(0),
            quality: 80,
            caption: None,
            caption_mjpeg: false,
            parking: None,
        };
        let pipeline = Pipeline::start(camera, out, "test").unwrap();
        let seqs: Vec<u64> = std::iter::from_fn(|| rx.recv_blocking())
            .filter(|f| !f.placeholder)
            .take(3)
            .map(|f| f.seq)
            .collect();
        pipeline.shutdown();
        encoders.shutdown();
        assert_eq!(
            seqs,
            vec![0, 5, 0],
            "good frames, then the reopened camera's"
        );
        assert_eq!(stats.dropped_corrupt.get(), 2);
        assert_eq!(stats.dropped_source.get(), 2);
        assert_eq!(stats.passed_through.get(), 3);
        assert!(stats.capture_errors.get() >= 1);
        assert!(stats.capture_status().reconnects >= 1);
        assert!(
            opened.load(Ordering::SeqCst) >= 2,
            "the source was reopened"
        );
    }

    #[test]
    fn sequencer_publishes_in_order_and_skips_gaps() {
        let bus = Bus::new();
        let rx = bus.subscribe_ordered(16);
        let s = Sequencer::new(bus.clone());
        s.complete(2, Some(frame(2)));
        s.complete(1, None);
        assert_eq!(bus.published.get(), 0, "waits for index 0");
        s.complete(0, Some(frame(0)));
        s.complete(3, Some(frame(3)));
        let got: Vec<u64> = (0..3).map(|_| rx.recv_blocking().unwrap().seq).collect();
        assert_eq!(got, vec![0, 2, 3]);
    }
}
