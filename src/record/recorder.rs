//! The recorder thread: every frame of every recorded camera, from each
//! camera's ordered queue on its bus, into that camera's segment files,
//! without a pause, and honest about what went wrong.
//!
//! - **Moments.** The cameras record side by side: a segment of each for the
//!   same stretch of time, all with one sequence number and start (a
//!   *moment*: `00000042-<UTC start>-front.mkv` and `…-rear.mkv`). A moment
//!   begins with the first frame of any camera after the last one ended; its
//!   time is up when the monotonic clock reaches the next multiple of
//!   `segment_seconds` of the wall clock as it stood then, so moments after
//!   the first start on round times, and a clock step can neither end one
//!   early nor let one grow without bound. Each camera's queue is read in
//!   turn, so one camera's backlog never holds another's frames back.
//! - **Segments.** A camera's segment opens at its first frame of a moment
//!   as `recordings/<name>.part` and closes when the moment's time is up, or
//!   early when its frame size changes or its frames stop for
//!   [`MAX_GAP_MS`] (its next segment then starts a moment of its own).
//!   Closing finishes the file (cues, statistics, exact sizes), renames it
//!   and fsyncs the directory.
//! - **Durability.** fdatasync every `sync_interval` (0: every frame; off:
//!   never). A failed sync, or a failed fsync of the directory, is counted
//!   and ends the segment: the kernel may have dropped the pages it could
//!   not write, so the file is read back from the card by recovery, which
//!   keeps only the frames that check out. The next frame starts a new one.
//! - **Space.** After each close, every second while recordings (the open
//!   segment counted by its data) exceed `max_usage` or free space is under
//!   `min_free`, and on ENOSPC, the oldest unprotected segments are deleted
//!   (see [`Store::enforce`]); a write that failed with ENOSPC is retried once
//!   after freeing space.
//! - **Events** protect `[t - pre, t + post]`: finished segments in the
//!   window move to `events/` at once (found in the index, no file read), and
//!   those still being written when they close. Overlapping events coalesce.
//! - **Failures** (a read-only or failing card) are logged once per run and
//!   counted; every frame that could not be written is counted as lost, and
//!   the status says recording is failing and why until a write succeeds.
//! - **Commands** arrive through a small bounded channel; start/stop and
//!   events are merged into [`Shared`] first, so a flood of requests costs
//!   no memory. Frames the queue dropped (disk too slow) are counted by the
//!   bus; capture never waits for the disk. Placeholders are not recorded.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::future;
use serde::Serialize;
use smol::Timer;

use crate::bus::{Bus, OrderedReceiver};
use crate::clock::{Timestamp, monotonic_now, unix_seconds, wall_now};
use crate::config::{Budget, EventConfig, RecordConfig};
use crate::failures::FailureRun;
use crate::frame::{Frame, Size};
use crate::gps::Gps;
use crate::impact::Impact;
use crate::parking::gate::{Clip, Gate};
use crate::parking::{Parking, Phase};
use crate::record::index::{Entry, Window};
use crate::record::mkv::{MAX_GAP_MS, MkvWriter};
use crate::record::names::{CameraTag, SegmentName};
use crate::record::store::{self, DeleteError, Disk, Limits, Outcome, Store};
use crate::stats::Counter;
use crate::supervise::Health;
use crate::sync::lock;
use crate::timesync::TimeSync;

/// The recorder's settings: the `[record]` and `[event]` sections, and the
/// events' quota resolved against the recording budget.
#[derive(Clone, Debug, PartialEq)]
pub struct RecorderConfig {
    pub record: RecordConfig,
    pub event: EventConfig,
    pub event_budget: Budget,
}

/// Requests that need an answer. Start, stop and events go through
/// [`RecorderHandle`] methods instead.
pub enum Command {
    /// Look at the start/stop and event mailbox.
    Wake,
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

/// Commands waiting for the recorder at most; senders wait beyond it.
const COMMAND_QUEUE: usize = 16;
/// Events remembered in the status.
const EVENT_HISTORY: usize = 20;
/// Events waiting in the mailbox at most; more are merged into the last
/// (its window stretched to the newest, its count kept): never dropped.
const MAX_PENDING_EVENTS: usize = 32;
/// How soon a failed segment creation is tried again.
const RETRY_OPEN: Duration = Duration::from_secs(1);
/// A GPS fix that arrived this long before a segment's first frame still
/// goes into it (at its start): the one that says where it began.
const GPS_REACH: Duration = Duration::from_secs(2);

/// A protected window, as the status shows it: overlapping events merge.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventInfo {
    /// Unix seconds of the (first) trigger.
    pub at: f64,
    pub reason: String,
    /// An impact's highest acceleration, in g (the largest of those merged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_g: Option<f64>,
    /// Unix seconds of the window.
    pub from: f64,
    pub to: f64,
    /// Triggers merged into this window.
    pub count: u64,
    /// It happened while the car was parked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
    #[serde(skip)]
    window: Window,
}

/// The larger of two peaks, either of which may be absent.
fn max_peak(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The current run of failures, while recording is failing.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failure {
    /// What the last attempt reported.
    pub error: String,
    /// Unix seconds when the run began.
    pub since: f64,
    /// Frames lost since then.
    pub frames_lost: u64,
}

/// What `/api/status` shows of the recorder.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecorderStatus {
    pub recording: bool,
    /// `recording`, `failing` (recording is on but frames are being lost)
    /// or `stopped`.
    pub state: &'static str,
    /// Why recording is failing; `null` once a write succeeds again.
    pub failure: Option<Failure>,
    /// Unix seconds when recording was last switched on.
    pub recording_since: Option<f64>,
    /// The segment being written, as it will be named when finished.
    pub segment: Option<String>,
    pub segment_started: Option<f64>,
    pub segment_bytes: u64,
    pub segment_frames: u64,
    /// Bytes of the open segment made durable by the last sync.
    pub segment_synced_bytes: u64,
    pub frames_written: u64,
    /// Frames that could not be written (full, read-only or failing card).
    pub frames_lost: u64,
    pub segments_finished: u64,
    /// Segments ended early because a sync failed, then recovered.
    pub segments_recovered: u64,
    pub segments_deleted: u64,
    pub segments_stored: usize,
    /// Milliseconds since the last fdatasync.
    pub last_sync_age_ms: Option<u64>,
    pub max_sync_ms: f64,
    /// The longest time the thread spent on one command or event.
    pub max_command_ms: f64,
    pub write_errors: u64,
    /// GPS fixes written into segments (all cameras).
    pub gps_samples: u64,
    /// Blocks of the acceleration trace written into segments (all cameras).
    pub trace_blocks: u64,
    /// Failed fdatasyncs and directory fsyncs.
    pub sync_errors: u64,
    pub disk: Disk,
    /// Bytes of recordings: finished ones, plus the data of the open one.
    pub recordings_bytes: u64,
    pub events_bytes: u64,
    pub events: Vec<EventInfo>,
    /// Each recorded camera's segment and counters.
    pub cameras: Vec<TrackStatus>,
    #[serde(skip)]
    last_sync: Option<Instant>,
    /// The last fdatasync that succeeded (any segment).
    #[serde(skip)]
    pub last_good_sync: Option<Instant>,
}

/// One recorded camera, as the status shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrackStatus {
    pub id: String,
    /// Its segment being written.
    pub segment: Option<String>,
    pub segment_frames: u64,
    pub segment_bytes: u64,
    pub frames_written: u64,
    pub frames_lost: u64,
    /// Frames its queue dropped because the disk fell behind.
    pub dropped: u64,
}

/// What the recorder writes beside the frames: the GPS fixes (each
/// segment's GPS track) and whether the clock was synchronised when each
/// segment began.
pub struct Annotations {
    pub gps: Arc<Gps>,
    pub accel: Arc<Impact>,
    pub clock: Arc<TimeSync>,
    /// Parking mode: which frames are recorded while parked.
    pub parking: Arc<Parking>,
}

/// A camera as the recorder sees it: its id (in file names), its bus, and
/// whether it is recorded (`camera.record`). Every camera's bus is watched
/// for shutdown, so a recorder with nothing to record still serves events,
/// protection and deletion until then.
pub struct RecordedCamera {
    pub id: String,
    pub bus: Arc<Bus>,
    pub record: bool,
    /// Its frame rate: a time-lapse plays back at it.
    pub fps: u32,
}

/// What the HTTP side and signals leave for the recorder.
#[derive(Default)]
struct Mailbox {
    /// The latest start (`true`) or stop asked for.
    recording: Option<bool>,
    /// Events, coalesced as they arrive.
    events: Vec<Pending>,
}

/// Triggers waiting for the recorder: one, or several merged at the cap.
struct Pending {
    first: Timestamp,
    last: Timestamp,
    reason: String,
    peak_g: Option<f64>,
    count: u64,
}

/// State shared between the recorder thread and its handles.
struct Shared {
    status: Mutex<RecorderStatus>,
    mailbox: Mutex<Mailbox>,
}

/// How the rest of blackbox talks to the recorder (cheap to clone).
#[derive(Clone)]
pub struct RecorderHandle {
    commands: async_channel::Sender<Command>,
    shared: Arc<Shared>,
    /// Each camera's count of frames its queue dropped.
    dropped: Vec<Arc<Counter>>,
    pub store: Arc<Store>,
}

impl RecorderHandle {
    fn wake(&self) {
        // A full queue already holds a wake-up or will be read soon; the
        // mailbox keeps the request either way.
        let _ = self.commands.try_send(Command::Wake);
    }

    /// Starts (`true`) or stops recording.
    pub fn set_recording(&self, on: bool) {
        lock(&self.shared.mailbox).recording = Some(on);
        self.wake();
    }

    /// Protects the footage around `at`. Never blocks and never grows
    /// memory: events that arrive faster than the recorder reads them merge.
    pub fn event(&self, at: Timestamp, reason: &str) {
        self.event_with(at, reason, None);
    }

    /// An event with an impact's peak acceleration (in g).
    pub fn event_with(&self, at: Timestamp, reason: &str, peak_g: Option<f64>) {
        {
            let mut mb = lock(&self.shared.mailbox);
            let full = mb.events.len() >= MAX_PENDING_EVENTS;
            match mb.events.last_mut() {
                // At the cap the newest trigger joins the last one: its
                // window stretches to cover both, and the count is kept.
                Some(last) if full => {
                    last.last = at;
                    last.count += 1;
                    last.peak_g = max_peak(last.peak_g, peak_g);
                }
                _ => mb.events.push(Pending {
                    first: at,
                    last: at,
                    reason: reason.to_string(),
                    peak_g,
                    count: 1,
                }),
            }
        }
        self.wake();
    }

    /// Sends a command that wants a reply and waits for the reply.
    pub async fn ask<T>(&self, cmd: Command, rx: async_channel::Receiver<T>) -> Option<T> {
        self.commands.send(cmd).await.ok()?;
        rx.recv().await.ok()
    }

    pub fn status(&self) -> RecorderStatus {
        let mut st = lock(&self.shared.status).clone();
        st.last_sync_age_ms = st.last_sync.map(|t| t.elapsed().as_millis() as u64);
        st
    }

    /// Frames the recorder's queues dropped because the disk fell behind
    /// (every camera's).
    pub fn dropped(&self) -> u64 {
        self.dropped.iter().map(|d| d.get()).sum()
    }
}

/// The running recorder thread.
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Opens the data directory (recovering any `.part` files and indexing
    /// the segments), then starts the thread, which subscribes to every
    /// camera's bus while recording.
    pub fn start(
        cfg: RecorderConfig,
        cameras: Vec<RecordedCamera>,
        notes: Annotations,
        health: Arc<Health>,
    ) -> io::Result<Self> {
        let (store, recovered) = Store::open(&cfg.record.dir)?;
        for r in recovered {
            let what = match r.outcome {
                Outcome::Recovered => "recovered",
                Outcome::Damaged => "damaged",
                Outcome::Deferred => "not recovered now",
            };
            log::warn!(
                "recovery: {} {what}: {} frames, {}",
                r.file,
                r.frames,
                r.detail
            );
        }
        let store = Arc::new(store);
        let (tx, rx) = async_channel::bounded(COMMAND_QUEUE);
        let shared = Arc::new(Shared {
            status: Mutex::new(RecorderStatus::default()),
            mailbox: Mutex::new(Mailbox::default()),
        });
        let buses: Vec<Arc<Bus>> = cameras.iter().map(|c| c.bus.clone()).collect();
        let cameras: Vec<(RecordedCamera, Arc<Counter>)> = cameras
            .into_iter()
            .filter(|c| c.record)
            .map(|c| (c, Arc::new(Counter::default())))
            .collect();
        let dropped: Vec<Arc<Counter>> = cameras.iter().map(|(_, d)| d.clone()).collect();
        health.recorder.beat();
        health.recorder_limit_ms.store(
            cfg.record
                .sync_interval
                .map_or(0, |i| (i * 2).as_millis() as u64 + 1000),
            std::sync::atomic::Ordering::Relaxed,
        );
        health
            .recorder_present
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = {
            let (shared, store) = (shared.clone(), store.clone());
            std::thread::Builder::new()
                .name("recorder".into())
                .spawn(move || {
                    let mut w = Worker::new(cfg, store, shared, cameras, buses, notes, health);
                    smol::block_on(w.run(rx));
                })?
        };
        Ok(Self {
            handle: RecorderHandle {
                commands: tx,
                shared,
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

/// The segment being written.
struct Open {
    writer: MkvWriter,
    name: SegmentName,
    part: PathBuf,
    size: Size,
    first_mono: Duration,
    last_mono: Duration,
    /// The monotonic time at which the segment's time is up (its moment's).
    closes_at: Duration,
    /// The wall clock was synchronised when it began (noted in the file).
    clock_synced: bool,
    /// A time-lapse (noted in the file): its frames are retimed, so its
    /// span says nothing of when it was recorded.
    timelapse: bool,
    /// Why the file cannot be trusted (a failed sync): it ends at once and
    /// recovery reads it back from the card.
    untrusted: Option<String>,
    /// The directory entry is known durable (its fsync succeeded). If the
    /// fsync after creating the file failed, it is tried again at the next
    /// sync, and the segment ends if it fails again.
    dir_synced: bool,
}

/// The moment being recorded: the sequence number and start every camera's
/// segment of it shares, and when its time is up.
struct Moment {
    seq: u64,
    start: SystemTime,
    closes_at: Duration,
    /// Tracks that have had a segment of it (a track that must start a new
    /// segment within the same moment starts a new moment instead).
    used: Vec<usize>,
}

/// One recorded camera.
struct Track {
    id: String,
    tag: CameraTag,
    bus: Arc<Bus>,
    /// Frames its queue dropped because the disk fell behind.
    dropped: Arc<Counter>,
    /// The bus subscription, held only while recording.
    frames: Option<OrderedReceiver>,
    open: Option<Open>,
    /// No segment creation before this (after one failed).
    retry_open_at: Option<Instant>,
    frames_written: u64,
    frames_lost: u64,
    /// The last GPS sample considered for its segments.
    gps_seq: u64,
    /// The last acceleration sample considered for its segments.
    accel_seq: u64,
    /// Which frames are recorded while parked.
    gate: Gate,
    /// Parked as of its last frame.
    parked: bool,
}

/// Counters the status shows.
#[derive(Default)]
struct Counts {
    frames_written: u64,
    frames_lost: u64,
    segments_finished: u64,
    segments_recovered: u64,
    segments_deleted: u64,
    write_errors: u64,
    sync_errors: u64,
    gps_samples: u64,
    trace_blocks: u64,
    max_sync_ms: f64,
    max_command_ms: f64,
    /// Frames lost in the current run of failures.
    lost_in_run: u64,
    failing_since: Option<SystemTime>,
}

struct Worker {
    cfg: RecorderConfig,
    /// Fixes to copy into every segment's GPS track.
    gps: Arc<Gps>,
    /// The accelerometer's samples, for every segment's trace.
    accel: Arc<Impact>,
    parking: Arc<Parking>,
    /// The journal's record of the last motion clip, stretched by clips
    /// (of any camera) that overlap it.
    motion_record: Option<crate::record::journal::Record>,
    /// Whether the clock is synchronised, noted in each segment.
    clock: Arc<TimeSync>,
    health: Arc<Health>,
    tracks: Vec<Track>,
    /// Every camera's bus, recorded or not: all closed is shutdown.
    buses: Vec<Arc<Bus>>,
    moment: Option<Moment>,
    store: Arc<Store>,
    shared: Arc<Shared>,
    recording: bool,
    recording_since: Option<SystemTime>,
    /// Windows that may still cover a segment not yet finished.
    windows: Vec<EventInfo>,
    /// The last events, merged, for the status.
    history: VecDeque<EventInfo>,
    last_sync: Option<Instant>,
    last_good_sync: Option<Instant>,
    next_sync_due: bool,
    last_space_check: Instant,
    writes: FailureRun,
    syncs: FailureRun,
    dir_syncs: FailureRun,
    counts: Counts,
}

fn is_enospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32)
}

impl Worker {
    fn new(
        cfg: RecorderConfig,
        store: Arc<Store>,
        shared: Arc<Shared>,
        cameras: Vec<(RecordedCamera, Arc<Counter>)>,
        buses: Vec<Arc<Bus>>,
        notes: Annotations,
        health: Arc<Health>,
    ) -> Self {
        let recording = cfg.record.autostart;
        let p = notes.parking.config().clone();
        let ring = p.pre_roll.max(Duration::from_secs(cfg.event.pre_seconds));
        let tracks = cameras
            .into_iter()
            .map(|(c, dropped)| Track {
                tag: CameraTag::new(&c.id).unwrap_or(CameraTag::NONE),
                id: c.id,
                bus: c.bus,
                dropped,
                frames: None,
                open: None,
                retry_open_at: None,
                frames_written: 0,
                frames_lost: 0,
                gps_seq: 0,
                accel_seq: 0,
                gate: Gate::new(ring, p.motion_post, p.timelapse_interval, c.fps),
                parked: false,
            })
            .collect();
        Self {
            gps: notes.gps,
            accel: notes.accel,
            parking: notes.parking,
            motion_record: None,
            clock: notes.clock,
            health,
            recording,
            recording_since: recording.then(wall_now),
            tracks,
            buses,
            moment: None,
            cfg,
            store,
            shared,
            windows: Vec::new(),
            history: VecDeque::new(),
            last_sync: None,
            last_good_sync: None,
            next_sync_due: false,
            last_space_check: Instant::now(),
            writes: FailureRun::new("recorder: writing frames"),
            syncs: FailureRun::new("recorder: syncing segments"),
            dir_syncs: FailureRun::new("recorder: syncing the recordings directory"),
            counts: Counts::default(),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_usage: self.cfg.record.max_usage,
            min_free: self.cfg.record.min_free,
            event_max: self.cfg.event_budget,
        }
    }

    /// Holds a subscription to every camera's bus exactly while recording.
    /// Subscribing to a closed bus gives a queue that is already closed, so
    /// a start that races shutdown ends the loop instead of waiting forever.
    /// Parked past the cut-off it lets go too, so that the cameras (with
    /// nobody watching) convert and encode nothing: the car's battery.
    fn subscribe(&mut self) {
        let queue = self.cfg.record.queue_frames;
        let want = self.recording && self.parking.phase() != Phase::CutOff;
        for t in 0..self.tracks.len() {
            let track = &mut self.tracks[t];
            if want && track.frames.is_none() && !track.bus.is_closed() {
                track.frames = Some(
                    track
                        .bus
                        .subscribe_ordered_counted(queue, track.dropped.clone()),
                );
            } else if !want && track.frames.is_some() {
                track.frames = None;
                track.gate.stop();
                let (id, clips) = (track.id.clone(), track.gate.take_clips());
                self.close(t);
                for clip in clips {
                    self.motion_clip(&id, clip);
                }
            }
        }
    }

    /// The bytes of every open segment.
    fn open_bytes(&self) -> u64 {
        self.tracks
            .iter()
            .filter_map(|t| t.open.as_ref())
            .map(|o| o.writer.bytes())
            .sum()
    }

    async fn run(&mut self, commands: async_channel::Receiver<Command>) {
        enum Next {
            Frame(usize, Option<Arc<Frame>>),
            Command(Command),
            Tick,
        }
        self.subscribe();
        self.refresh_status();
        // Housekeeping runs on a fixed schedule, checked after every event,
        // so a steady stream of frames cannot starve it.
        const TICK: Duration = Duration::from_millis(250);
        let mut next_tick = Instant::now() + TICK;
        // The camera looked at first; it moves on after each frame, so one
        // camera's backlog cannot keep another's waiting.
        let mut first = 0;
        loop {
            if self.buses.iter().all(|b| b.is_closed())
                && self.tracks.iter().all(|t| t.frames.is_none())
            {
                break;
            }
            let tracks = &mut self.tracks;
            let next = future::or(
                future::poll_fn(|cx| {
                    let n = tracks.len();
                    for k in 0..n {
                        let i = (first + k) % n;
                        if let Some(rx) = tracks[i].frames.as_mut()
                            && let std::task::Poll::Ready(f) = rx.poll_recv(cx)
                        {
                            return std::task::Poll::Ready(Next::Frame(i, f));
                        }
                    }
                    std::task::Poll::Pending
                }),
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
                // That camera's bus closed: shutting down.
                Next::Frame(t, None) => self.tracks[t].frames = None,
                Next::Frame(t, Some(frame)) => {
                    first = (t + 1) % self.tracks.len();
                    self.offer(t, &frame);
                }
                Next::Command(c) => {
                    let t0 = Instant::now();
                    self.command(c);
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    self.counts.max_command_ms = self.counts.max_command_ms.max(ms);
                    self.refresh_status();
                }
                Next::Tick => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        self.close_all();
        self.refresh_status();
        log::info!("recorder stopped");
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Wake => {
                let (recording, events) = {
                    let mut mb = lock(&self.shared.mailbox);
                    (mb.recording.take(), std::mem::take(&mut mb.events))
                };
                if let Some(on) = recording {
                    self.set_recording(on);
                }
                for p in events {
                    self.event(p);
                }
            }
            Command::Protect { name, reply } => {
                let r = self.store.protect(&name).map_err(|e| e.to_string());
                let _ = reply.try_send(r);
            }
            Command::Delete { name, reply } => {
                let in_use = self
                    .tracks
                    .iter()
                    .filter_map(|t| t.open.as_ref())
                    .any(|o| o.name.file_name() == name);
                let r = if in_use {
                    Err(DeleteError::InUse)
                } else {
                    self.store.delete(&name)
                };
                let _ = reply.try_send(r);
            }
        }
    }

    fn set_recording(&mut self, on: bool) {
        if on == self.recording {
            return;
        }
        log::info!("recording {}", if on { "started" } else { "stopped" });
        self.recording = on;
        self.recording_since = on.then(wall_now);
        self.subscribe();
        if !on {
            self.close_all();
            self.writes.succeeded();
            self.counts.lost_in_run = 0;
            self.counts.failing_since = None;
            for t in &mut self.tracks {
                t.retry_open_at = None;
            }
        }
    }

    fn event(&mut self, p: Pending) {
        let Pending {
            first: at,
            last,
            reason,
            peak_g,
            count,
        } = p;
        let pre = Duration::from_secs(self.cfg.event.pre_seconds);
        let post = Duration::from_secs(self.cfg.event.post_seconds);
        let phase = self.parking.phase();
        let window = Window {
            from_wall: at.wall.checked_sub(pre).unwrap_or(SystemTime::UNIX_EPOCH),
            to_wall: last.wall.max(at.wall) + post,
            from_mono: at.mono.saturating_sub(pre),
            to_mono: last.mono.max(at.mono) + post,
        };
        // Merge with an overlapping window: one longer clip, one entry.
        let info =
            match self.windows.iter_mut().find(|w| {
                w.window.from_mono <= window.to_mono && window.from_mono <= w.window.to_mono
            }) {
                Some(w) => {
                    w.window.from_mono = w.window.from_mono.min(window.from_mono);
                    w.window.to_mono = w.window.to_mono.max(window.to_mono);
                    w.window.from_wall = w.window.from_wall.min(window.from_wall);
                    w.window.to_wall = w.window.to_wall.max(window.to_wall);
                    w.from = unix_seconds(w.window.from_wall);
                    w.to = unix_seconds(w.window.to_wall);
                    w.count += count;
                    w.peak_g = max_peak(w.peak_g, peak_g);
                    w.clone()
                }
                None => {
                    let info = EventInfo {
                        at: unix_seconds(at.wall),
                        reason,
                        peak_g,
                        from: unix_seconds(window.from_wall),
                        to: unix_seconds(window.to_wall),
                        count,
                        parked: phase.is_parked(),
                        window,
                    };
                    log::info!(
                        "event ({}): protecting {} s before to {} s after",
                        info.reason,
                        pre.as_secs(),
                        post.as_secs()
                    );
                    self.windows.push(info.clone());
                    info
                }
            };
        match self.history.iter_mut().find(|h| h.at == info.at) {
            Some(h) => *h = info.clone(),
            None => {
                self.history.push_back(info.clone());
                if self.history.len() > EVENT_HISTORY {
                    self.history.pop_front();
                }
            }
        }
        // Why, kept on the card for the recordings list.
        let record = crate::record::journal::Record {
            at: info.at,
            reason: info.reason.clone(),
            from: info.from,
            to: info.to,
            count: info.count,
            peak_g: info.peak_g,
            parked: info.parked,
        };
        // Parked, the cameras record this window at the normal rate (from
        // their pre-roll rings): footage the event protects.
        if matches!(phase, Phase::Parked(_)) {
            for t in &mut self.tracks {
                t.gate.record_until(info.window.to_mono);
            }
        }
        if let Err(e) = self.store.journal.append(&record) {
            log::warn!("the event journal: {e}");
        }
        // Every camera's finished footage in the window.
        let (moved, failed) = self.store.protect_window(&info.window);
        for name in moved {
            log::info!("{name} is protected by an event");
        }
        for f in failed {
            self.write_failed(&format!("cannot protect {f}"));
        }
    }

    fn tick(&mut self) {
        // Test-only: a recorder thread that hangs (in a write to a dying
        // card, say).
        crate::faults::hold_while(|f| f.wedge_recorder);
        // Healthy while data does not wait for a sync longer than twice the
        // interval (a sync is normally done on time right here).
        let overdue = self.next_sync_due
            && self.cfg.record.sync_interval.is_some_and(|i| {
                self.last_sync
                    .is_some_and(|t| t.elapsed() > i * 2 + Duration::from_millis(500))
            });
        if !overdue {
            self.health.recorder.beat();
        }
        let now = monotonic_now();
        for t in 0..self.tracks.len() {
            if self.tracks[t].open.as_ref().is_some_and(|o| {
                (!o.timelapse && now >= o.closes_at + Duration::from_secs(2))
                    || o.untrusted.is_some()
            }) {
                // The segment's time is up and no frame came to close it, or
                // it can no longer be trusted. (A time-lapse's time is on
                // its own timeline: its frames close it.)
                self.close(t);
            }
        }
        if self.sync_due() {
            self.sync();
        }
        if self.last_space_check.elapsed() >= Duration::from_secs(1) {
            // Between closes the open segments grow: hold the budget with
            // them counted, and keep the card's reserve free.
            self.last_space_check = Instant::now();
            if let Ok(d) = store::disk(&self.store.root) {
                let over = self.store.usage().0 + self.open_bytes()
                    > self.cfg.record.max_usage.bytes(d.total);
                if over || d.free < self.cfg.record.min_free.bytes(d.total) {
                    self.enforce();
                }
            }
        }
        // A window matters until every segment it could touch has closed.
        let keep = Duration::from_secs(self.cfg.record.segment_seconds + 5);
        self.windows.retain(|w| w.window.to_mono + keep > now);
        self.subscribe();
        self.refresh_status();
    }

    fn sync_due(&self) -> bool {
        self.next_sync_due
            && self
                .cfg
                .record
                .sync_interval
                .is_some_and(|i| self.last_sync.is_none_or(|t| t.elapsed() >= i))
    }

    /// Records what the parking gate lets through of `frame`.
    fn offer(&mut self, t: usize, frame: &Arc<Frame>) {
        if !self.recording || frame.placeholder {
            return;
        }
        let phase = self.parking.phase();
        // Parking and driving again each start new segments.
        if phase.is_parked() != self.tracks[t].parked {
            self.tracks[t].parked = phase.is_parked();
            self.close(t);
        }
        let writes = self.tracks[t]
            .gate
            .offer(frame, phase, crate::clock::parking_now());
        for w in writes {
            if w.timelapse {
                self.parking
                    .timelapse_frames
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if w.fresh {
                self.close(t);
            }
            self.frame(t, &w.frame, w.timelapse);
        }
        for clip in self.tracks[t].gate.take_clips() {
            self.motion_clip(&self.tracks[t].id.clone(), clip);
        }
        let full = self.tracks.iter().any(|t| t.gate.recording());
        self.parking
            .full_rate
            .store(full, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notes a motion clip in the journal, so the recordings list shows
    /// why it was recorded (merged with an overlapping one).
    fn motion_clip(&mut self, camera: &str, clip: Clip) {
        self.parking
            .motion_clips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (from, to) = (unix_seconds(clip.from.wall), unix_seconds(clip.to.wall));
        log::info!(
            "parking: camera {camera} recorded {:.1} s because something moved",
            to - from
        );
        let record = match self.motion_record.take() {
            Some(mut r) if r.from <= to && from <= r.to => {
                r.from = r.from.min(from);
                r.to = r.to.max(to);
                r.count += 1;
                r
            }
            _ => crate::record::journal::Record {
                at: unix_seconds(clip.trigger.wall),
                reason: "motion".into(),
                from,
                to,
                count: 1,
                peak_g: None,
                parked: true,
            },
        };
        if let Err(e) = self.store.journal.append(&record) {
            log::warn!("the event journal: {e}");
        }
        self.motion_record = Some(record);
    }

    fn frame(&mut self, t: usize, frame: &Frame, timelapse: bool) {
        let mono = frame.captured.mono;
        if self.tracks[t].open.as_ref().is_some_and(|o| {
            o.timelapse != timelapse
                || mono >= o.closes_at
                || frame.size != o.size
                || mono < o.last_mono
                || mono - o.last_mono > Duration::from_millis(MAX_GAP_MS)
        }) {
            self.close(t);
        }
        if self.tracks[t].open.is_none() {
            if self.tracks[t]
                .retry_open_at
                .is_some_and(|at| Instant::now() < at)
            {
                self.lost(t, 1);
                return;
            }
            if let Err(e) = self.open_segment(t, frame, timelapse) {
                self.write_failed(&format!("cannot create a segment: {e}"));
                if is_enospc(&e) {
                    self.free_space();
                }
                self.tracks[t].retry_open_at = Some(Instant::now() + RETRY_OPEN);
                self.lost(t, 1);
                return;
            }
            self.tracks[t].retry_open_at = None;
        }
        let slow = crate::faults::current().slow_write_ms;
        if slow > 0 {
            std::thread::sleep(Duration::from_millis(slow));
        }
        let result = self.write(t, frame).or_else(|e| {
            if is_enospc(&e) {
                self.free_space();
                self.write(t, frame)
            } else {
                Err(e)
            }
        });
        match result {
            Ok(()) => {
                let track = &mut self.tracks[t];
                if let Some(open) = track.open.as_mut() {
                    open.last_mono = mono;
                }
                track.frames_written += 1;
                self.counts.frames_written += 1;
                self.next_sync_due = true;
                if self.writes.succeeded().is_some() {
                    self.counts.lost_in_run = 0;
                    self.counts.failing_since = None;
                }
                if self.sync_due() {
                    self.sync();
                }
            }
            Err(e) => {
                self.lost(t, 1);
                self.write_failed(&format!("write failed: {e}"));
                // A full card keeps the segment (the next frame tries the
                // same place again); any other error ends it.
                if !is_enospc(&e)
                    && let Some(open) = self.tracks[t].open.as_mut()
                {
                    open.untrusted = Some(e.to_string());
                    self.close(t);
                }
            }
        }
    }

    fn write(&mut self, t: usize, frame: &Frame) -> io::Result<()> {
        // A time-lapse's frames are retimed: no samples belong between them.
        if self.tracks[t].open.as_ref().is_some_and(|o| !o.timelapse) {
            self.write_samples(t, frame.captured.mono);
            self.write_trace(t, frame.captured.mono);
        }
        let Some(open) = self.tracks[t].open.as_mut() else {
            return Err(io::Error::other("no segment is open"));
        };
        let ts = frame
            .captured
            .mono
            .saturating_sub(open.first_mono)
            .as_millis() as u64;
        open.writer.write_frame(ts, &frame.jpeg).map(|_| ())
    }

    /// Puts the GPS fixes that arrived up to `mono` (the frame about to be
    /// written) into track `t`'s segment, each at the time it arrived, so
    /// they sit in order before that frame. A fix from before the segment
    /// began (by more than [`GPS_REACH`]) belongs to no segment of it.
    /// A sample that cannot be written is skipped: the frame after it
    /// meets the same error and deals with it.
    fn write_samples(&mut self, t: usize, mono: Duration) {
        let track = &mut self.tracks[t];
        if self.gps.newest() <= track.gps_seq {
            return;
        }
        let Some(open) = track.open.as_mut() else {
            return;
        };
        for s in self.gps.samples_after(track.gps_seq, mono) {
            track.gps_seq = s.seq;
            if s.mono + GPS_REACH < open.first_mono {
                continue;
            }
            let ts = s.mono.saturating_sub(open.first_mono).as_millis() as u64;
            let Ok(json) = serde_json::to_vec(&s.fix) else {
                continue;
            };
            match open.writer.write_sample(ts, &json) {
                Ok(()) => self.counts.gps_samples += 1,
                Err(e) => log::debug!("a GPS sample was not written: {e}"),
            }
        }
    }

    /// Puts the acceleration samples taken up to `mono` into track `t`'s
    /// segment as one block at the first one's time: `{"g":[[ms, x, y, z,
    /// m], ...]}`, ms after the block's time, the axes and the magnitude
    /// without gravity in g. Samples from before the segment's first frame
    /// belong to no segment of it. Best effort, like a GPS sample.
    fn write_trace(&mut self, t: usize, mono: Duration) {
        let track = &mut self.tracks[t];
        if self.accel.newest() <= track.accel_seq {
            return;
        }
        let Some(open) = track.open.as_mut() else {
            return;
        };
        let mut samples = self.accel.samples_after(track.accel_seq, mono);
        let Some(last) = samples.last().map(|s| s.seq) else {
            return;
        };
        track.accel_seq = last;
        samples.retain(|s| s.mono >= open.first_mono);
        let Some(first) = samples.first() else {
            return;
        };
        let base = first.mono;
        let mut json = String::from("{\"g\":[");
        for (i, s) in samples.iter().enumerate() {
            let entry = format!(
                "{}[{},{:.3},{:.3},{:.3},{:.3}]",
                if i == 0 { "" } else { "," },
                (s.mono - base).as_millis(),
                s.g[0],
                s.g[1],
                s.g[2],
                s.magnitude_g
            );
            // A block stays under the format's limit; the rest waits.
            if json.len() + entry.len() + 2 > crate::record::mkv::MAX_SAMPLE {
                track.accel_seq = s.seq - 1;
                break;
            }
            json.push_str(&entry);
        }
        json.push_str("]}");
        let ts = base.saturating_sub(open.first_mono).as_millis() as u64;
        match open.writer.write_trace(ts, json.as_bytes()) {
            Ok(()) => self.counts.trace_blocks += 1,
            Err(e) => log::debug!("an acceleration block was not written: {e}"),
        }
    }

    fn lost(&mut self, t: usize, n: u64) {
        self.tracks[t].frames_lost += n;
        self.counts.frames_lost += n;
        self.counts.lost_in_run += n;
    }

    /// Counts a failure, logs it if it starts a run, and marks recording as
    /// failing until the next successful write.
    fn write_failed(&mut self, message: &str) {
        self.counts.write_errors += 1;
        self.writes.failed(&message);
        self.counts.failing_since.get_or_insert_with(wall_now);
    }

    /// Fsyncs the recordings directory, counting and reporting a failure.
    fn sync_dir(&mut self, after: &str) -> bool {
        match store::sync_dir(&self.store.recordings) {
            Ok(()) => {
                self.dir_syncs.succeeded();
                true
            }
            Err(e) => {
                self.counts.sync_errors += 1;
                self.dir_syncs
                    .failed(&format!("directory fsync after {after} failed: {e}"));
                false
            }
        }
    }

    /// The moment a segment of track `t` starting at `frame` belongs to: the
    /// current one while its time is not up and `t` has no segment of it
    /// yet, else a new one.
    fn moment_for(
        &mut self,
        t: usize,
        frame: &Frame,
        timelapse: bool,
    ) -> (u64, SystemTime, Duration) {
        let mono = frame.captured.mono;
        let current = self
            .moment
            .as_mut()
            .filter(|m| mono < m.closes_at && !m.used.contains(&t));
        if let Some(m) = current {
            m.used.push(t);
            return (m.seq, m.start, m.closes_at);
        }
        // The moment's time is up at the next multiple of segment_seconds
        // of the wall clock; counted on the monotonic clock from here.
        let wall = frame.captured.wall;
        let seg_ms = self.cfg.record.segment_seconds.max(1) * 1000;
        let wall_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // A time-lapse's timeline is its own: a whole segment of playback.
        let remaining = if timelapse {
            Duration::from_millis(seg_ms)
        } else {
            Duration::from_millis((seg_ms - wall_ms % seg_ms).max(1))
        };
        let m = Moment {
            seq: self.store.new_moment(),
            start: wall,
            closes_at: mono + remaining,
            used: vec![t],
        };
        let out = (m.seq, m.start, m.closes_at);
        self.moment = Some(m);
        out
    }

    fn open_segment(&mut self, t: usize, frame: &Frame, timelapse: bool) -> io::Result<()> {
        let (seq, start, closes_at) = self.moment_for(t, frame, timelapse);
        let name = SegmentName {
            seq,
            start,
            camera: self.tracks[t].tag,
        };
        let part = self.store.part_path(&name);
        let clock_synced = self.clock.synchronized();
        let writer = MkvWriter::create_noting(
            &part,
            frame.size,
            frame.captured.wall,
            Some(clock_synced),
            timelapse,
        )?;
        let dir_synced = self.sync_dir("creating a segment");
        log::debug!("recording to {}", part.display());
        self.tracks[t].open = Some(Open {
            writer,
            name,
            part,
            size: frame.size,
            first_mono: frame.captured.mono,
            last_mono: frame.captured.mono,
            closes_at,
            clock_synced,
            timelapse,
            untrusted: None,
            dir_synced,
        });
        Ok(())
    }

    /// Makes every open segment durable.
    fn sync(&mut self) {
        for t in 0..self.tracks.len() {
            if self.tracks[t].open.as_ref().is_some_and(|o| !o.dir_synced) {
                let ok = self.sync_dir("creating a segment, again,");
                if let Some(open) = self.tracks[t].open.as_mut() {
                    open.dir_synced = ok;
                    if !ok {
                        open.untrusted = Some("its directory entry could not be synced".into());
                        self.close(t);
                    }
                }
            }
        }
        self.next_sync_due = false;
        if self.tracks.iter().all(|t| t.open.is_none()) {
            return;
        }
        let t0 = Instant::now();
        let mut failed = Vec::new();
        for (t, track) in self.tracks.iter_mut().enumerate() {
            let Some(open) = track.open.as_mut() else {
                continue;
            };
            if let Err(e) = open.writer.sync() {
                let message = format!("fdatasync of {} failed: {e}", open.name.file_name());
                open.untrusted = Some(message.clone());
                failed.push((t, message));
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        self.last_sync = Some(Instant::now());
        self.counts.max_sync_ms = self.counts.max_sync_ms.max(ms);
        if failed.is_empty() {
            self.syncs.succeeded();
            self.last_good_sync = Some(Instant::now());
        }
        for (t, message) in failed {
            self.counts.sync_errors += 1;
            self.syncs.failed(&message);
            self.close(t);
        }
    }

    fn close_all(&mut self) {
        for t in 0..self.tracks.len() {
            self.close(t);
        }
    }

    /// Ends track `t`'s open segment, if any: finished and renamed,
    /// protected if an event covers it, then loop deletion. A segment that
    /// cannot be trusted goes through recovery instead, which keeps what
    /// checks out on the card.
    fn close(&mut self, t: usize) {
        let Some(open) = self.tracks[t].open.take() else {
            return;
        };
        if self.tracks.iter().all(|t| t.open.is_none()) {
            self.next_sync_due = false;
        }
        let span = (!open.timelapse).then_some((open.first_mono, open.last_mono));
        if let Some(why) = &open.untrusted {
            let frames = open.writer.frames();
            drop(open.writer);
            // The failure itself was logged (once per run); this is detail.
            log::debug!(
                "ending {} early ({why}); checking its {frames} frames on the card",
                open.name.file_name()
            );
            let r = self.store.recover_segment(&open.part, span);
            log::debug!(
                "{}: {:?}, {} frames, {}",
                r.file,
                r.outcome,
                r.frames,
                r.detail
            );
            if let Some(e) = &r.dir_sync_error {
                self.counts.sync_errors += 1;
                self.dir_syncs.failed(&format!(
                    "directory fsync after recovering a segment failed: {e}"
                ));
            }
            match r.outcome {
                Outcome::Recovered => {
                    self.counts.segments_recovered += 1;
                    if r.frames < frames {
                        self.lost(t, frames - r.frames);
                    }
                    self.protect_if_covered(&open.name, span);
                }
                Outcome::Damaged => self.lost(t, frames),
                // Still on the card; the next start-up recovers it.
                Outcome::Deferred => {}
            }
            self.enforce();
            return;
        }
        let frames = open.writer.frames();
        let interval = if frames > 1 {
            (open.last_mono - open.first_mono).as_millis() as u64 / (frames - 1)
        } else {
            0
        };
        let file_name = open.name.file_name();
        let finished = self.store.recordings.join(&file_name);
        let result = open.writer.finish(interval).and_then(|summary| {
            std::fs::rename(&open.part, &finished)?;
            Ok(summary)
        });
        match result {
            Ok(summary) => {
                self.sync_dir("closing a segment");
                log::info!(
                    "finished {file_name} ({} frames, {} ms, {} bytes)",
                    summary.frames,
                    summary.duration_ms,
                    summary.bytes
                );
                self.counts.segments_finished += 1;
                self.store.add(Entry {
                    name: file_name,
                    seq: open.name.seq,
                    camera: open.name.camera,
                    start: open.name.start,
                    duration_ms: summary.duration_ms,
                    frames: summary.frames,
                    bytes: summary.bytes,
                    protected: false,
                    clock_synced: Some(open.clock_synced),
                    timelapse: open.timelapse,
                    mono: span,
                });
                self.protect_if_covered(&open.name, span);
            }
            Err(e) => {
                // Leave the .part: start-up recovery will finish it.
                self.write_failed(&format!("cannot finish {file_name}: {e}"));
            }
        }
        self.enforce();
    }

    fn protect_if_covered(&mut self, name: &SegmentName, span: Option<(Duration, Duration)>) {
        let Some((first, last)) = span else { return };
        if self
            .windows
            .iter()
            .any(|w| first <= w.window.to_mono && last >= w.window.from_mono)
        {
            let file_name = name.file_name();
            match self.store.protect(&file_name) {
                Ok(_) => log::info!("{file_name} is protected by an event"),
                Err(e) => self.write_failed(&format!("cannot protect {file_name}: {e}")),
            }
        }
    }

    fn enforce(&mut self) {
        let done = self.store.enforce(&self.limits(), self.open_bytes());
        self.counts.segments_deleted += done.deleted.len() as u64;
        for e in done.errors {
            self.write_failed(&e);
        }
    }

    /// On ENOSPC: the budget rules, then the oldest segment whatever they say.
    fn free_space(&mut self) {
        self.enforce();
        if self.store.delete_oldest().is_some() {
            self.counts.segments_deleted += 1;
        }
    }

    fn refresh_status(&mut self) {
        let disk = store::disk(&self.store.root).unwrap_or_default();
        let (recordings, events) = self.store.usage();
        let open_bytes = self.open_bytes();
        let c = &self.counts;
        let failing = self.recording && self.writes.failing();
        let failure = failing.then(|| Failure {
            error: self.writes.error().unwrap_or_default().to_string(),
            since: c.failing_since.map_or(0.0, unix_seconds),
            frames_lost: c.lost_in_run,
        });
        let cameras: Vec<TrackStatus> = self
            .tracks
            .iter()
            .map(|t| TrackStatus {
                id: t.id.clone(),
                segment: t.open.as_ref().map(|o| o.name.file_name()),
                segment_frames: t.open.as_ref().map_or(0, |o| o.writer.frames()),
                segment_bytes: t.open.as_ref().map_or(0, |o| o.writer.bytes()),
                frames_written: t.frames_written,
                frames_lost: t.frames_lost,
                dropped: t.dropped.get(),
            })
            .collect();
        // The first camera's segment at the top, where one-camera clients
        // look.
        let first = self.tracks.first().and_then(|t| t.open.as_ref());
        let mut st = lock(&self.shared.status);
        *st = RecorderStatus {
            recording: self.recording,
            state: match (self.recording, failing) {
                (false, _) => "stopped",
                (true, true) => "failing",
                (true, false) => "recording",
            },
            failure,
            recording_since: self.recording_since.map(unix_seconds),
            segment: first.map(|o| o.name.file_name()),
            segment_started: first.map(|o| unix_seconds(o.name.start)),
            segment_bytes: first.map_or(0, |o| o.writer.bytes()),
            segment_frames: first.map_or(0, |o| o.writer.frames()),
            segment_synced_bytes: first.map_or(0, |o| o.writer.synced_bytes()),
            frames_written: c.frames_written,
            frames_lost: c.frames_lost,
            segments_finished: c.segments_finished,
            segments_recovered: c.segments_recovered,
            segments_deleted: c.segments_deleted,
            segments_stored: self.store.count(),
            last_sync_age_ms: None,
            max_sync_ms: c.max_sync_ms,
            max_command_ms: c.max_command_ms,
            write_errors: c.write_errors,
            gps_samples: c.gps_samples,
            trace_blocks: c.trace_blocks,
            sync_errors: c.sync_errors,
            disk,
            recordings_bytes: recordings + open_bytes,
            events_bytes: events,
            events: self.history.iter().cloned().collect(),
            cameras,
            last_sync: self.last_sync,
            last_good_sync: self.last_good_sync,
        };
    }
}
