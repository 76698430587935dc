//! Parking mode: what blackbox does while the car is parked. The car is
//! parked when its ignition line has been off for `parking.delay` (read by
//! [`ignition`] from an input device), or at once when someone parks it by
//! hand (the page, `POST /api/parking`); it drives again the moment the
//! line comes on or someone says so. A hand-set state lasts until the line
//! next changes. While parked the cameras record what `parking.mode` says
//! ([`gate`] decides frame by frame, [`motion`] watches the picture), until
//! `parking.cutoff` has passed (the car's battery), then nothing.
//!
//! Every timer here runs on [`crate::clock::parking_now`], the monotonic
//! clock a test can move on by hours.

pub mod gate;
pub mod ignition;
pub mod motion;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{parking_now, unix_seconds, wall_now};
use crate::config::{ParkingConfig, ParkingMode};
use crate::sync::lock;

/// What the car is doing, as far as recording cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Driving,
    /// Parked, recording as the mode says.
    Parked(ParkingMode),
    /// Parked past the cut-off: nothing is recorded.
    CutOff,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Driving => "driving",
            Self::Parked(_) => "parked",
            Self::CutOff => "cut-off",
        }
    }

    pub fn is_parked(self) -> bool {
        self != Self::Driving
    }
}

/// The ignition line as last read.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LineStatus {
    /// What is read (`/dev/input/event3, key 116`), or `none`.
    pub source: String,
    /// The line's level: `Some(true)` on.
    pub on: Option<bool>,
    /// Why it cannot be read, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the status and the page show.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ParkingStatus {
    /// `driving`, `parked` or `cut-off`.
    pub phase: &'static str,
    /// `parking.mode`.
    pub mode: ParkingMode,
    /// Who decided: `ignition`, `hand`, or `none` (driving, no line).
    pub by: &'static str,
    pub ignition: LineStatus,
    /// Unix seconds parking began, while parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_since: Option<f64>,
    /// Seconds until recording stops, while parked (none: no cut-off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutoff_in_seconds: Option<f64>,
    pub delay_seconds: u64,
    pub motion_clips: u64,
    pub timelapse_frames: u64,
    pub lighting_changes: u64,
}

struct Inner {
    line: LineStatus,
    /// The parking clock when the line last went off (while it is off).
    off_since: Option<Duration>,
    /// Set by hand: `Some(true)` parked since the time given.
    manual: Option<(bool, Duration)>,
    /// The phase last reported, to log changes once.
    last: Phase,
}

/// Parking mode's state, shared by the ignition reader, the capture
/// threads, the recorder and the HTTP side.
pub struct Parking {
    cfg: ParkingConfig,
    inner: Mutex<Inner>,
    pub motion_clips: AtomicU64,
    pub timelapse_frames: AtomicU64,
    pub lighting_changes: AtomicU64,
    /// A parked camera is recording at the normal rate (motion, an event):
    /// set by the recorder, read by the capture threads.
    pub full_rate: AtomicBool,
}

impl Parking {
    pub fn new(cfg: ParkingConfig) -> Self {
        let source = match &cfg.ignition {
            crate::config::IgnitionChoice::None => "none".to_string(),
            crate::config::IgnitionChoice::Input(p) => {
                format!("{}, code {}", p.display(), cfg.ignition_code)
            }
        };
        Self {
            cfg,
            inner: Mutex::new(Inner {
                line: LineStatus {
                    source,
                    on: None,
                    error: None,
                },
                off_since: None,
                manual: None,
                last: Phase::Driving,
            }),
            motion_clips: AtomicU64::new(0),
            timelapse_frames: AtomicU64::new(0),
            lighting_changes: AtomicU64::new(0),
            full_rate: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &ParkingConfig {
        &self.cfg
    }

    /// The line read `on` (`None`: it cannot be read; the car counts as
    /// driving, so nothing is lost). A change ends a hand-set state.
    pub fn set_line(&self, on: Option<bool>, error: Option<String>) {
        let now = parking_now();
        let mut inner = lock(&self.inner);
        if inner.line.on != on {
            if on.is_some() && inner.line.on.is_some() {
                inner.manual = None;
            }
            inner.off_since = (on == Some(false)).then_some(now);
            if let Some(on) = on {
                log::info!("parking: ignition {}", if on { "on" } else { "off" });
            }
        }
        inner.line.on = on;
        inner.line.error = error;
        drop(inner);
        self.phase();
    }

    /// Parks (`true`) or drives (`false`) by hand, at once.
    pub fn set_manual(&self, park: bool) {
        let now = parking_now();
        lock(&self.inner).manual = Some((park, now));
        log::info!(
            "parking: {} by hand",
            if park { "parked" } else { "driving" }
        );
        self.phase();
    }

    /// When parking began (parking clock), if the car is parked.
    fn parked_from(&self, inner: &Inner) -> Option<Duration> {
        match inner.manual {
            Some((true, at)) => Some(at),
            Some((false, _)) => None,
            None => inner.off_since.map(|t| t + self.cfg.delay),
        }
    }

    fn phase_at(&self, inner: &Inner, now: Duration) -> Phase {
        match self.parked_from(inner) {
            Some(from) if now >= from => match self.cfg.cutoff {
                Some(c) if now >= from + c => Phase::CutOff,
                _ => Phase::Parked(self.cfg.mode),
            },
            _ => Phase::Driving,
        }
    }

    /// The phase now; a change is logged once.
    pub fn phase(&self) -> Phase {
        let now = parking_now();
        let mut inner = lock(&self.inner);
        let phase = self.phase_at(&inner, now);
        if phase != inner.last {
            inner.last = phase;
            match phase {
                Phase::Driving => log::info!("parking: driving, recording everything"),
                Phase::Parked(m) => log::info!("parking: parked, recording in {} mode", m.name()),
                Phase::CutOff => log::warn!(
                    "parking: parked for {:.1} h, the cut-off: recording stops until the car drives",
                    self.cfg.cutoff.map_or(0.0, |c| c.as_secs_f64() / 3600.0)
                ),
            }
        }
        phase
    }

    pub fn status(&self) -> ParkingStatus {
        let phase = self.phase();
        let now = parking_now();
        let inner = lock(&self.inner);
        let from = self.parked_from(&inner).filter(|f| now >= *f);
        let since = from.map(|f| unix_seconds(wall_now()) - (now - f).as_secs_f64());
        let cutoff_in = match (from, self.cfg.cutoff) {
            (Some(f), Some(c)) => Some((f + c).saturating_sub(now).as_secs_f64()),
            _ => None,
        };
        ParkingStatus {
            phase: phase.name(),
            mode: self.cfg.mode,
            by: match (inner.manual, inner.line.on) {
                (Some(_), _) => "hand",
                (None, Some(_)) => "ignition",
                (None, None) => "none",
            },
            ignition: inner.line.clone(),
            parked_since: since,
            cutoff_in_seconds: cutoff_in,
            delay_seconds: self.cfg.delay.as_secs(),
            motion_clips: self.motion_clips.load(Ordering::Relaxed),
            timelapse_frames: self.timelapse_frames.load(Ordering::Relaxed),
            lighting_changes: self.lighting_changes.load(Ordering::Relaxed),
        }
    }

    /// Whether the cameras should look for motion now.
    pub fn watching_motion(&self) -> bool {
        self.phase() == Phase::Parked(ParkingMode::Motion)
    }

    /// The least time between frames a camera processes now: `parking.fps`
    /// while parked with nothing recorded at the normal rate, else none.
    pub fn frame_interval(&self) -> Option<Duration> {
        let slow = self.phase().is_parked() && !self.full_rate.load(Ordering::Relaxed);
        slow.then(|| Duration::from_nanos(1_000_000_000 / u64::from(self.cfg.fps.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ParkingConfig {
        let mut c = crate::config::Config::default().parking;
        c.delay = Duration::from_secs(60);
        c.cutoff = Some(Duration::from_secs(3600));
        c
    }

    fn at(p: &Parking, t: u64) -> Phase {
        p.phase_at(&lock(&p.inner), Duration::from_secs(t))
    }

    #[test]
    fn ignition_off_parks_after_the_delay_and_on_drives_at_once() {
        let p = Parking::new(cfg());
        {
            let mut i = lock(&p.inner);
            i.line.on = Some(false);
            i.off_since = Some(Duration::from_secs(100));
        }
        assert_eq!(at(&p, 159), Phase::Driving);
        assert_eq!(at(&p, 160), Phase::Parked(ParkingMode::Motion));
        assert_eq!(at(&p, 160 + 3599), Phase::Parked(ParkingMode::Motion));
        assert_eq!(at(&p, 160 + 3600), Phase::CutOff);
        {
            let mut i = lock(&p.inner);
            i.line.on = Some(true);
            i.off_since = None;
        }
        assert_eq!(at(&p, 160 + 3600), Phase::Driving);
    }

    #[test]
    fn by_hand_parks_at_once_until_the_line_changes() {
        let p = Parking::new(cfg());
        p.set_line(Some(true), None);
        p.set_manual(true);
        assert!(p.phase().is_parked());
        assert_eq!(p.status().by, "hand");
        // The line going off then on again: the line rules from then on.
        p.set_line(Some(false), None);
        assert_eq!(p.phase(), Phase::Driving, "still within the delay");
        p.set_line(Some(true), None);
        assert_eq!(p.phase(), Phase::Driving);
        p.set_manual(true);
        p.set_manual(false);
        assert_eq!(p.phase(), Phase::Driving);
    }

    #[test]
    fn parked_with_nothing_recorded_the_cameras_slow_to_parking_fps() {
        let p = Parking::new(cfg());
        assert_eq!(p.frame_interval(), None, "driving: every frame");
        p.set_manual(true);
        assert_eq!(p.frame_interval(), Some(Duration::from_millis(100)));
        p.full_rate.store(true, Ordering::Relaxed);
        assert_eq!(p.frame_interval(), None, "recording a clip: every frame");
    }

    #[test]
    fn a_line_that_cannot_be_read_counts_as_driving() {
        let mut c = cfg();
        c.delay = Duration::ZERO;
        let p = Parking::new(c);
        p.set_line(Some(false), None);
        assert!(p.phase().is_parked());
        p.set_line(None, Some("gone".into()));
        assert_eq!(p.phase(), Phase::Driving);
        assert_eq!(p.status().ignition.error.as_deref(), Some("gone"));
    }
}
