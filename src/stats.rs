//! The counters every stage bumps and `/api/status` and `/metrics` read:
//! frames captured, encoded and dropped per stage, encode time, the capture
//! state, and the measured frame rates.
//!
//! Counters are relaxed atomics: each is exact on its own, and a status read
//! may see one stage a frame ahead of another, which is fine for monitoring.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::capture::SourceInfo;
use crate::sync::lock;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether frames are flowing from the camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureState {
    /// Opening the source for the first time.
    Starting,
    /// Frames are arriving.
    Streaming,
    /// The source failed; it is being reopened.
    NoSignal,
}

impl CaptureState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Streaming => "streaming",
            Self::NoSignal => "no_signal",
        }
    }
}

/// What the capture thread last reported.
#[derive(Clone, Debug)]
pub struct CaptureStatus {
    pub state: CaptureState,
    pub info: Option<SourceInfo>,
    pub last_error: Option<String>,
    pub reconnects: u64,
}

/// Counters for the capture and encode stages (the bus keeps its own).
#[derive(Debug)]
pub struct Stats {
    /// Frames the source delivered.
    pub captured: Counter,
    /// Frames the source skipped (sequence-number gaps).
    pub dropped_source: Counter,
    /// Frames captured while nobody consumed them, so not encoded.
    pub idle: Counter,
    /// Frames dropped because every encoder was busy.
    pub dropped_busy: Counter,
    /// Camera JPEGs that failed the structural check.
    pub dropped_corrupt: Counter,
    /// Raw frames that could not be converted (short buffer, bad stride).
    pub dropped_convert: Counter,
    /// Frames the source reported bad (driver error flag, empty, truncated).
    pub dropped_bad: Counter,
    /// "No signal" frames published while the source was down.
    pub placeholders: Counter,
    /// Frames mozjpeg failed on (panics caught).
    pub encode_errors: Counter,
    /// Frames encoded by the workers.
    pub encoded: Counter,
    /// Camera JPEGs passed through.
    pub passed_through: Counter,
    /// Total time spent encoding, in nanoseconds.
    pub encode_ns: Counter,
    /// Errors from the source (each one closes and reopens it).
    pub capture_errors: Counter,
    /// The last sequence number the source reported (resets when it reopens).
    pub last_sequence: AtomicU64,
    capture: Mutex<CaptureStatus>,
    rates: Mutex<RateWindow>,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            captured: Counter::default(),
            dropped_source: Counter::default(),
            idle: Counter::default(),
            dropped_busy: Counter::default(),
            dropped_corrupt: Counter::default(),
            dropped_convert: Counter::default(),
            dropped_bad: Counter::default(),
            placeholders: Counter::default(),
            encode_errors: Counter::default(),
            encoded: Counter::default(),
            passed_through: Counter::default(),
            encode_ns: Counter::default(),
            capture_errors: Counter::default(),
            last_sequence: AtomicU64::new(0),
            capture: Mutex::new(CaptureStatus {
                state: CaptureState::Starting,
                info: None,
                last_error: None,
                reconnects: 0,
            }),
            rates: Mutex::new(RateWindow::default()),
            started: Instant::now(),
        }
    }
}

impl Stats {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Mean encode time per encoded frame, in milliseconds.
    pub fn mean_encode_ms(&self) -> f64 {
        let n = self.encoded.get();
        if n == 0 {
            0.0
        } else {
            self.encode_ns.get() as f64 / n as f64 / 1e6
        }
    }

    pub fn capture_status(&self) -> CaptureStatus {
        lock(&self.capture).clone()
    }

    /// The source is open and delivering.
    pub fn set_streaming(&self, info: SourceInfo) {
        let mut c = lock(&self.capture);
        c.state = CaptureState::Streaming;
        c.info = Some(info);
    }

    /// The source failed with `error`; it will be reopened.
    pub fn set_no_signal(&self, error: String, reopening: bool) {
        let mut c = lock(&self.capture);
        c.state = CaptureState::NoSignal;
        c.last_error = Some(error);
        if reopening {
            c.reconnects += 1;
        }
    }

    /// Records the counters now; call about once a second.
    pub fn sample_rates(&self, published: u64) {
        lock(&self.rates).push(Instant::now(), self.captured.get(), published);
    }

    /// Measured (captured, published) frames per second over the last few
    /// seconds.
    pub fn rates(&self) -> (f64, f64) {
        lock(&self.rates).rates()
    }
}

/// The last few samples of the frame counters.
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl RateWindow {
    const SPAN: Duration = Duration::from_secs(3);

    fn push(&mut self, at: Instant, captured: u64, published: u64) {
        self.samples.push_back((at, captured, published));
        while self
            .samples
            .front()
            .is_some_and(|(t, _, _)| at.duration_since(*t) > Self::SPAN)
        {
            self.samples.pop_front();
        }
    }

    fn rates(&self) -> (f64, f64) {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let secs = b.0.duration_since(a.0).as_secs_f64();
                ((b.1 - a.1) as f64 / secs, (b.2 - a.2) as f64 / secs)
            }
            _ => (0.0, 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_the_window() {
        let mut w = RateWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.rates(), (0.0, 0.0));
        w.push(t0, 0, 0);
        w.push(t0 + Duration::from_secs(1), 30, 25);
        w.push(t0 + Duration::from_secs(2), 60, 50);
        assert_eq!(w.rates(), (30.0, 25.0));
        // Old samples fall out of the window.
        w.push(t0 + Duration::from_secs(10), 60, 50);
        assert_eq!(w.samples.len(), 1);
    }
}
