//! The recorder thread: every frame from the bus's ordered queue into
//! segment files, without a pause.
//!
//! - A segment opens at the first frame after start (or after the previous
//!   one closed) as `recordings/<UTC start>.mkv.part`, and closes at the next
//!   multiple of `segment_seconds` of the wall clock, so segments after the
//!   first start on round times. Closing finishes the file (cues, duration,
//!   exact size), renames it to `.mkv` and fsyncs the directory.
//! - Data is made durable with fdatasync every `sync_interval` (0: every
//!   frame), so a power cut loses at most that much.
//! - After each close, and whenever free space falls under `min_free`, the
//!   oldest unprotected segments are deleted (see [`Store::enforce`]). A write
//!   that fails with ENOSPC frees space the same way and is retried once;
//!   recording never stops because the card is full.
//! - An event protects `[t - pre, t + post]`: every segment overlapping it is
//!   moved to `events/` when it closes (at once if it already has).
//! - Frames the queue dropped (disk too slow) are counted by the bus; capture
//!   never waits for the disk. Placeholder frames are not recorded.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use serde::Serialize;
use smol::Timer;

use crate::bus::{Bus, OrderedReceiver};
use crate::config::Budget;
use crate::config::{EventConfig, RecordConfig};
use crate::frame::{Frame, Size};
use crate::record::mkv::MkvWriter;
use crate::record::store::{self, Disk, Store};
use crate::stats::Counter;
use crate::sync::lock;

/// The recorder's settings: the `[record]` and `[event]` sections, and the
/// events' quota resolved against the recording budget.
#[derive(Clone, Debug, PartialEq)]
pub struct RecorderConfig {
    pub record: RecordConfig,
    pub event: EventConfig,
    pub event_budget: Budget,
}

/// What the HTTP side and signals ask of the recorder.
pub enum Command {
    Start,
    Stop,
    /// Protect the footage around `at`.
    Event {
        at: SystemTime,
        reason: String,
    },
    /// Move a finished segment to `events/`.
    Protect {
        name: String,
        reply: async_channel::Sender<Result<bool, String>>,
    },
    /// Delete a finished segment (refused for the one being written).
    Delete {
        name: String,
        reply: async_channel::Sender<Result<(), DeleteError>>,
    },
}

/// Why a deletion was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    InUse,
    Io(String),
}

/// One protected window.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventInfo {
    /// Unix seconds of the trigger.
    pub at: f64,
    pub reason: String,
    pub from: f64,
    pub to: f64,
}

/// What `/api/status` shows of the recorder.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecorderStatus {
    pub recording: bool,
    /// Unix seconds when recording was last switched on.
    pub recording_since: Option<f64>,
    /// The segment being written, as it will be named when finished.
    pub segment: Option<String>,
    pub segment_started: Option<f64>,
    pub segment_bytes: u64,
    pub segment_frames: u64,
    pub frames_written: u64,
    pub segments_finished: u64,
    pub segments_deleted: u64,
    /// Milliseconds since the last fdatasync.
    pub last_sync_age_ms: Option<u64>,
    pub max_sync_ms: f64,
    pub write_errors: u64,
    /// Frames lost to a full disk even after freeing space.
    pub frames_lost_disk_full: u64,
    pub last_error: Option<String>,
    pub disk: Disk,
    pub recordings_bytes: u64,
    pub events_bytes: u64,
    pub events: Vec<EventInfo>,
    #[serde(skip)]
    last_sync: Option<Instant>,
}

/// How the rest of blackbox talks to the recorder (cheap to clone).
#[derive(Clone)]
pub struct RecorderHandle {
    commands: async_channel::Sender<Command>,
    status: Arc<Mutex<RecorderStatus>>,
    dropped: Arc<Counter>,
    pub store: Store,
}

impl RecorderHandle {
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.try_send(cmd);
    }

    /// Sends a command and waits for its reply on `rx`.
    pub async fn ask<T>(&self, cmd: Command, rx: async_channel::Receiver<T>) -> Option<T> {
        self.commands.send(cmd).await.ok()?;
        rx.recv().await.ok()
    }

    pub fn status(&self) -> RecorderStatus {
        let mut st = lock(&self.status).clone();
        st.last_sync_age_ms = st.last_sync.map(|t| t.elapsed().as_millis() as u64);
        st
    }

    /// Frames the recorder's queue dropped because the disk fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// The running recorder thread.
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Recovers any `.part` files, then starts the thread, which subscribes
    /// to `bus` while recording.
    pub fn start(cfg: RecorderConfig, bus: Arc<Bus>) -> io::Result<Self> {
        let store = Store::new(&cfg.record.dir);
        store.create()?;
        for r in store.recover() {
            log::info!("recovery: {} {} ({})", r.outcome, r.file, r.detail);
        }
        let (tx, rx) = async_channel::unbounded();
        let status = Arc::new(Mutex::new(RecorderStatus {
            recording: cfg.record.autostart,
            ..RecorderStatus::default()
        }));
        let dropped = Arc::new(Counter::default());
        let thread = {
            let (status, store, dropped) = (status.clone(), store.clone(), dropped.clone());
            std::thread::Builder::new()
                .name("recorder".into())
                .spawn(move || {
                    let mut w = Worker::new(cfg, store, status, bus, dropped);
                    smol::block_on(w.run(rx));
                })?
        };
        Ok(Self {
            handle: RecorderHandle {
                commands: tx,
                status,
                dropped,
                store,
            },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Waits for the thread, which finishes its segment once the bus closes.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Open {
    writer: MkvWriter,
    name: String,
    part: PathBuf,
    size: Size,
    started_wall: SystemTime,
    first_mono: Duration,
    last_mono: Duration,
    closes_at: SystemTime,
}

struct Worker {
    cfg: RecorderConfig,
    bus: Arc<Bus>,
    dropped: Arc<Counter>,
    /// The bus subscription, held only while recording.
    frames: Option<OrderedReceiver>,
    store: Store,
    status: Arc<Mutex<RecorderStatus>>,
    open: Option<Open>,
    recording: bool,
    events: Vec<EventInfo>,
    last_sync: Instant,
    dirty: bool,
    last_space_check: Instant,
    /// Test hook: sleep this long before every write (a slow card).
    slow_write: Option<Duration>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn is_enospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(28)
}

impl Worker {
    fn new(
        cfg: RecorderConfig,
        store: Store,
        status: Arc<Mutex<RecorderStatus>>,
        bus: Arc<Bus>,
        dropped: Arc<Counter>,
    ) -> Self {
        let slow_write = std::env::var("BLACKBOX_TEST_SLOW_WRITE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        Self {
            recording: cfg.record.autostart,
            frames: None,
            bus,
            dropped,
            cfg,
            store,
            status,
            open: None,
            events: Vec::new(),
            last_sync: Instant::now(),
            dirty: false,
            last_space_check: Instant::now() - Duration::from_secs(60),
            slow_write,
        }
    }

    /// Holds a bus subscription exactly while recording.
    fn subscribe(&mut self) {
        if self.recording && self.frames.is_none() {
            self.frames = Some(
                self.bus
                    .subscribe_ordered_counted(self.cfg.record.queue_frames, self.dropped.clone()),
            );
        } else if !self.recording {
            self.frames = None;
        }
    }

    async fn run(&mut self, commands: async_channel::Receiver<Command>) {
        enum Next {
            Frame(Option<Arc<Frame>>),
            Command(Command),
            Tick,
        }
        self.subscribe();
        self.refresh_status();
        // Housekeeping runs on a fixed schedule, checked after every event,
        // so a steady stream of frames cannot starve it.
        const TICK: Duration = Duration::from_millis(250);
        let mut next_tick = Instant::now() + TICK;
        loop {
            if self.bus.is_closed() && self.frames.is_none() {
                break;
            }
            let frames = self.frames.as_ref();
            let next = future::or(
                async {
                    match frames {
                        Some(f) => Next::Frame(f.recv().await),
                        None => future::pending().await,
                    }
                },
                future::or(
                    async {
                        match commands.recv().await {
                            Ok(c) => Next::Command(c),
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        Timer::at(next_tick).await;
                        Next::Tick
                    },
                ),
            )
            .await;
            match next {
                Next::Frame(None) => break, // the bus closed: shutting down
                Next::Frame(Some(frame)) => self.frame(&frame),
                Next::Command(c) => self.command(c),
                Next::Tick => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        self.close();
        self.refresh_status();
        log::info!("recorder stopped");
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Start => {
                if !self.recording {
                    log::info!("recording started");
                }
                self.recording = true;
                self.subscribe();
            }
            Command::Stop => {
                if self.recording {
                    log::info!("recording stopped");
                }
                self.recording = false;
                self.subscribe();
                self.close();
            }
            Command::Event { at, reason } => self.event(at, reason),
            Command::Protect { name, reply } => {
                let r = self.store.protect(&name).map_err(|e| e.to_string());
                let _ = reply.try_send(r);
            }
            Command::Delete { name, reply } => {
                let r = if self.open.as_ref().is_some_and(|o| o.name == name) {
                    Err(DeleteError::InUse)
                } else {
                    match self.store.find(&name) {
                        None => Err(DeleteError::NotFound),
                        Some((path, _)) => fs::remove_file(&path)
                            .map(|()| store::sync_dir(path.parent().unwrap_or(&self.store.root)))
                            .map_err(|e| DeleteError::Io(e.to_string())),
                    }
                };
                let _ = reply.try_send(r);
            }
        }
        self.refresh_status();
    }

    fn event(&mut self, at: SystemTime, reason: String) {
        let from = at
            .checked_sub(Duration::from_secs(self.cfg.event.pre_seconds))
            .unwrap_or(UNIX_EPOCH);
        let to = at + Duration::from_secs(self.cfg.event.post_seconds);
        log::info!(
            "event ({reason}): protecting {:.0} s before to {:.0} s after",
            Duration::from_secs(self.cfg.event.pre_seconds).as_secs_f64(),
            Duration::from_secs(self.cfg.event.post_seconds).as_secs_f64()
        );
        let ev = EventInfo {
            at: unix(at),
            reason,
            from: unix(from),
            to: unix(to),
        };
        // Segments already finished that overlap the window move now.
        for seg in self.store.list(false) {
            if let Some(start) = store::name_time(&seg.name)
                && let Ok(scan) = crate::record::mkv::scan(&self.store.recordings.join(&seg.name))
            {
                let end = start
                    + Duration::from_millis(scan.duration_ms.unwrap_or(0.0) as u64)
                    + Duration::from_secs(1);
                if start <= to && end >= from {
                    let _ = self.store.protect(&seg.name);
                }
            }
        }
        self.events.push(ev);
        self.enforce();
    }

    fn tick(&mut self) {
        let now = SystemTime::now();
        if self
            .open
            .as_ref()
            .is_some_and(|o| now >= o.closes_at + Duration::from_secs(2))
        {
            // No frames for a while and the segment's time is up.
            self.close();
        }
        if self.dirty
            && self
                .cfg
                .record
                .sync_interval
                .is_some_and(|i| self.last_sync.elapsed() >= i)
        {
            self.sync();
        }
        if self.last_space_check.elapsed() >= Duration::from_secs(1) {
            self.last_space_check = Instant::now();
            if let Ok(d) = store::disk(&self.store.root)
                && d.free < self.cfg.record.min_free.bytes(d.total)
            {
                self.enforce();
            }
        }
        // Forget events whose window ended long ago.
        let cutoff = unix(now) - 3600.0;
        self.events.retain(|e| e.to > cutoff);
        self.refresh_status();
    }

    fn frame(&mut self, frame: &Frame) {
        if !self.recording || frame.placeholder {
            return;
        }
        if self.open.as_ref().is_some_and(|o| {
            frame.captured.wall >= o.closes_at
                || frame.size != o.size
                || frame.captured.mono < o.last_mono
        }) {
            self.close();
        }
        if self.open.is_none()
            && let Err(e) = self.open_segment(frame)
        {
            self.fail(format!("cannot create a segment: {e}"));
            if is_enospc(&e) {
                self.enforce();
            }
            return;
        }
        if let Some(delay) = self.slow_write {
            std::thread::sleep(delay);
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let ts = (frame.captured.mono.saturating_sub(open.first_mono)).as_millis() as u64;
        let mut result = open.writer.write_frame(ts, &frame.jpeg);
        if let Err(e) = &result
            && is_enospc(e)
        {
            log::warn!("disk full while recording; deleting the oldest recordings");
            self.enforce_hard();
            if let Some(open) = self.open.as_mut() {
                result = open.writer.write_frame(ts, &frame.jpeg);
            }
        }
        match result {
            Ok(_) => {
                if let Some(open) = self.open.as_mut() {
                    open.last_mono = frame.captured.mono;
                }
                self.dirty = true;
                lock(&self.status).frames_written += 1;
                if self
                    .cfg
                    .record
                    .sync_interval
                    .is_some_and(|i| self.last_sync.elapsed() >= i)
                {
                    self.sync();
                }
            }
            Err(e) if is_enospc(&e) => {
                lock(&self.status).frames_lost_disk_full += 1;
                self.fail(format!("disk full: {e}"));
            }
            Err(e) => {
                self.fail(format!("write failed: {e}"));
                // Keep what was written; the next frame starts a new file.
                self.close();
            }
        }
    }

    fn open_segment(&mut self, frame: &Frame) -> io::Result<()> {
        let wall = frame.captured.wall;
        let mut name = store::name_for(wall);
        let mut n = 1;
        while self.store.recordings.join(&name).exists()
            || self.store.events.join(&name).exists()
            || self.store.recordings.join(format!("{name}.part")).exists()
        {
            name = format!(
                "{}-{n}.mkv",
                name.trim_end_matches(".mkv")
                    .split('-')
                    .next()
                    .unwrap_or("x")
            );
            n += 1;
        }
        let part = self.store.recordings.join(format!("{name}.part"));
        let writer = MkvWriter::create(&part, frame.size, wall)?;
        store::sync_dir(&self.store.recordings);
        let secs = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let seg = self.cfg.record.segment_seconds.max(1);
        let closes_at = UNIX_EPOCH + Duration::from_secs((secs / seg + 1) * seg);
        log::info!("recording to {}", part.display());
        self.open = Some(Open {
            writer,
            name,
            part,
            size: frame.size,
            started_wall: wall,
            first_mono: frame.captured.mono,
            last_mono: frame.captured.mono,
            closes_at,
        });
        Ok(())
    }

    fn sync(&mut self) {
        let Some(open) = &self.open else {
            self.dirty = false;
            return;
        };
        let t0 = Instant::now();
        if let Err(e) = open.writer.sync() {
            self.fail(format!("fdatasync failed: {e}"));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        self.last_sync = Instant::now();
        self.dirty = false;
        let mut st = lock(&self.status);
        st.last_sync = Some(self.last_sync);
        st.max_sync_ms = st.max_sync_ms.max(ms);
    }

    /// Finishes the open segment, if any: `.part` to `.mkv`, protected if an
    /// event covers it, then loop deletion.
    fn close(&mut self) {
        let Some(open) = self.open.take() else { return };
        let frames = open.writer.frames();
        let interval = if frames > 1 {
            (open.last_mono - open.first_mono).as_millis() as u64 / (frames - 1)
        } else {
            0
        };
        let finished = self.store.recordings.join(&open.name);
        let result = open.writer.finish(interval).and_then(|summary| {
            fs::rename(&open.part, &finished)?;
            store::sync_dir(&self.store.recordings);
            Ok(summary)
        });
        self.dirty = false;
        match result {
            Ok(summary) => {
                log::info!(
                    "finished {} ({} frames, {} ms, {} bytes)",
                    open.name,
                    summary.frames,
                    summary.duration_ms,
                    summary.bytes
                );
                lock(&self.status).segments_finished += 1;
                let start = unix(open.started_wall);
                let end = start + summary.duration_ms as f64 / 1000.0;
                if self.events.iter().any(|e| e.from <= end && e.to >= start) {
                    if let Err(e) = self.store.protect(&open.name) {
                        self.fail(format!("cannot protect {}: {e}", open.name));
                    } else {
                        log::info!("{} is protected by an event", open.name);
                    }
                }
            }
            Err(e) => {
                // Leave the .part: start-up recovery will finish it.
                self.fail(format!("cannot finish {}: {e}", open.name));
            }
        }
        self.enforce();
    }

    fn enforce(&mut self) {
        let deleted = self.store.enforce(
            self.cfg.record.max_usage,
            self.cfg.record.min_free,
            self.cfg.event_budget,
        );
        lock(&self.status).segments_deleted += deleted.len() as u64;
    }

    /// On ENOSPC: delete the oldest unprotected segment even within budget.
    fn enforce_hard(&mut self) {
        self.enforce();
        if let Some(oldest) = self.store.list(false).first()
            && fs::remove_file(self.store.recordings.join(&oldest.name)).is_ok()
        {
            log::warn!("disk full: deleted {}", oldest.name);
            store::sync_dir(&self.store.recordings);
            lock(&self.status).segments_deleted += 1;
        }
    }

    fn fail(&mut self, message: String) {
        log::warn!("recorder: {message}");
        let mut st = lock(&self.status);
        st.write_errors += 1;
        st.last_error = Some(message);
    }

    fn refresh_status(&mut self) {
        let disk = store::disk(&self.store.root).unwrap_or_default();
        let recordings =
            self.store.usage(false) + self.open.as_ref().map_or(0, |o| o.writer.bytes());
        let events = self.store.usage(true);
        let mut st = lock(&self.status);
        if !self.recording {
            st.recording_since = None;
        } else if !st.recording || st.recording_since.is_none() {
            st.recording_since = Some(unix(SystemTime::now()));
        }
        st.recording = self.recording;
        st.segment = self.open.as_ref().map(|o| o.name.clone());
        st.segment_started = self.open.as_ref().map(|o| unix(o.started_wall));
        st.segment_bytes = self.open.as_ref().map_or(0, |o| o.writer.bytes());
        st.segment_frames = self.open.as_ref().map_or(0, |o| o.writer.frames());
        st.disk = disk;
        st.recordings_bytes = recordings;
        st.events_bytes = events;
        st.events = self.events.clone();
    }
}
