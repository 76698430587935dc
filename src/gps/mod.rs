//! Where and how fast: the GPS as gpsd reports it. [`Gps`] is the one
//! shared record of it: the connection to gpsd, the latest fix and its age,
//! the satellites, and a short ring of recent fixes (*samples*, each stamped
//! with the monotonic clock the frames use) that the recorder copies into
//! every camera's segment. [`client`] feeds it from gpsd; nothing waits for
//! it: no gpsd, no receiver or no sky only change what the status says.

pub mod client;
pub mod gpx;
pub mod proto;

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::clock::monotonic_now;
use crate::ring::{SeqRing, Stamped};
use crate::sync::lock;
pub use proto::Fix;

/// A fix older than this is no longer current: the status says "no fix"
/// and the caption drops speed and position.
pub const STALE: Duration = Duration::from_secs(5);

/// Samples kept for the recorder, which reads them at every frame: a
/// minute of a 1 Hz receiver, six seconds of a 10 Hz one.
const RING: usize = 64;

impl Stamped for Sample {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn mono(&self) -> Duration {
        self.mono
    }
}

/// One fix as it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Counts from 1; the recorder remembers the last it wrote.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` when the report arrived.
    pub mono: Duration,
    pub fix: Fix,
}

/// The link to gpsd.
#[derive(Clone, Debug, PartialEq)]
enum Link {
    Off,
    Connecting,
    Up,
    Down(String),
}

struct Inner {
    link: Link,
    last: Option<Sample>,
    sky: Option<(u32, u32)>,
    reports: u64,
    malformed: u64,
    connects: u64,
}

/// The GPS as blackbox knows it; shared by the client, the recorder, the
/// pipelines (caption) and the web side.
pub struct Gps {
    server: String,
    inner: Mutex<Inner>,
    /// The recent fixes, for the recorder.
    ring: SeqRing<Sample>,
}

/// What `/api/status` says of the GPS.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GpsStatus {
    pub enabled: bool,
    pub server: String,
    /// `off`, `connecting`, `no-gpsd`, `no-fix` or `fix`.
    pub state: &'static str,
    /// Why there is no fix, in words, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// `none`, `2d` or `3d`.
    pub fix: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
    /// m/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Degrees from true north.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sats_used: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sats_seen: Option<u32>,
    /// Seconds since the last fix arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    pub reports: u64,
    pub malformed: u64,
    pub connects: u64,
}

impl Gps {
    /// `enabled` false: never connects, says `off`.
    pub fn new(enabled: bool, server: &str) -> Self {
        Self {
            server: server.to_string(),
            inner: Mutex::new(Inner {
                link: if enabled { Link::Connecting } else { Link::Off },
                last: None,
                sky: None,
                reports: 0,
                malformed: 0,
                connects: 0,
            }),
            ring: SeqRing::new(RING),
        }
    }

    /// A GPS that is off (tests, tools).
    pub fn off() -> Self {
        Self::new(false, "")
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn connected(&self) {
        let mut i = lock(&self.inner);
        i.link = Link::Up;
        i.connects += 1;
    }

    pub(crate) fn disconnected(&self, why: String) {
        lock(&self.inner).link = Link::Down(why);
    }

    pub(crate) fn malformed(&self) {
        lock(&self.inner).malformed += 1;
    }

    /// Takes one report that arrived at `mono`.
    pub(crate) fn report(&self, report: proto::Report, mono: Duration) {
        let mut i = lock(&self.inner);
        i.reports += 1;
        match report {
            proto::Report::Fix(mut fix) => {
                fix.sats = i.sky.map(|(_, used)| used);
                // One sample per fix time: a receiver's cycle can make gpsd
                // report the same fix twice.
                let same_time = self
                    .ring
                    .last()
                    .is_some_and(|s| fix.time.is_some() && s.fix.time == fix.time);
                if same_time {
                    self.ring.update_last(|back| back.fix = fix.clone());
                    if let Some(last) = i.last.as_mut() {
                        last.fix = fix;
                        last.mono = mono;
                    }
                    return;
                }
                let sample = Sample {
                    seq: self.ring.next_seq(),
                    mono,
                    fix,
                };
                self.ring.push(sample.clone());
                i.last = Some(sample);
            }
            proto::Report::NoFix => {
                // The last fix ages out; nothing to record.
            }
            proto::Report::Sky { seen, used } => i.sky = Some((seen, used)),
            proto::Report::Other => {}
        }
    }

    /// The newest sample's sequence number (0: none yet).
    pub fn newest(&self) -> u64 {
        self.ring.newest()
    }

    /// Samples after `seq` that arrived at or before `upto`, oldest first.
    pub fn samples_after(&self, seq: u64, upto: Duration) -> Vec<Sample> {
        self.ring.after(seq, upto)
    }

    /// The fix if it is current (younger than [`STALE`]).
    pub fn current(&self) -> Option<Fix> {
        let i = lock(&self.inner);
        let last = i.last.as_ref()?;
        (monotonic_now().saturating_sub(last.mono) < STALE).then(|| last.fix.clone())
    }

    pub fn status(&self) -> GpsStatus {
        let i = lock(&self.inner);
        let now = monotonic_now();
        let age = i.last.as_ref().map(|s| now.saturating_sub(s.mono));
        let current = i
            .last
            .as_ref()
            .filter(|_| age.is_some_and(|a| a < STALE) && i.link == Link::Up);
        let (state, why) = match (&i.link, current) {
            (Link::Off, _) => ("off", Some("gps.enabled is false".to_string())),
            (Link::Connecting, _) => (
                "connecting",
                Some(format!("connecting to gpsd at {}", self.server)),
            ),
            (Link::Down(e), _) => (
                "no-gpsd",
                Some(format!("gpsd does not answer at {}: {e}", self.server)),
            ),
            (Link::Up, Some(_)) => ("fix", None),
            (Link::Up, None) => (
                "no-fix",
                Some(match age {
                    Some(a) => format!(
                        "no fix for {} s (a tunnel, or the receiver lost the sky)",
                        a.as_secs()
                    ),
                    None => "gpsd has no fix yet (no receiver, or a cold start)".to_string(),
                }),
            ),
        };
        let fix = current.map(|s| &s.fix);
        GpsStatus {
            enabled: i.link != Link::Off,
            server: self.server.clone(),
            state,
            why,
            fix: match fix.map(|f| f.mode) {
                Some(3) => "3d",
                Some(2) => "2d",
                _ => "none",
            },
            time: fix.and_then(|f| f.time.clone()),
            lat: fix.map(|f| f.lat),
            lon: fix.map(|f| f.lon),
            alt: fix.and_then(|f| f.alt),
            speed: fix.and_then(|f| f.speed),
            track: fix.and_then(|f| f.track),
            sats_used: i.sky.map(|s| s.1),
            sats_seen: i.sky.map(|s| s.0),
            age_seconds: age.map(|a| (a.as_secs_f64() * 10.0).round() / 10.0),
            reports: i.reports,
            malformed: i.malformed,
            connects: i.connects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Report;

    fn fix(t: u32) -> Fix {
        Fix {
            time: Some(format!("2026-12-05T20:00:{t:02}.000Z")),
            mode: 3,
            lat: 52.0 + f64::from(t) * 1e-4,
            lon: 13.0,
            alt: Some(34.0),
            speed: Some(10.0),
            track: Some(90.0),
            eph: None,
            epv: None,
            sats: None,
        }
    }

    #[test]
    fn samples_are_numbered_once_per_fix_time() {
        let g = Gps::new(true, "127.0.0.1:2947");
        g.connected();
        g.report(Report::Sky { seen: 10, used: 7 }, Duration::from_secs(1));
        g.report(Report::Fix(fix(1)), Duration::from_secs(1));
        g.report(Report::Fix(fix(1)), Duration::from_millis(1100));
        g.report(Report::NoFix, Duration::from_millis(1500));
        g.report(Report::Fix(fix(2)), Duration::from_secs(2));
        assert_eq!(g.newest(), 2);
        let all = g.samples_after(0, Duration::from_secs(9));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].fix.sats, Some(7));
        assert_eq!(g.samples_after(1, Duration::from_secs(9)).len(), 1);
        // Not yet arrived as of the frame's time.
        assert_eq!(g.samples_after(1, Duration::from_millis(1999)).len(), 0);
    }

    #[test]
    fn the_ring_is_bounded() {
        let g = Gps::new(true, "x");
        for t in 0..1000 {
            let mut f = fix(0);
            f.time = Some(format!("2026-12-05T20:{:02}:{:02}.000Z", t / 60, t % 60));
            g.report(Report::Fix(f), Duration::from_secs(t));
        }
        assert_eq!(g.samples_after(0, Duration::MAX).len(), RING);
        assert_eq!(g.newest(), 1000);
    }

    #[test]
    fn the_status_says_why_there_is_no_fix() {
        let g = Gps::new(true, "127.0.0.1:1");
        assert_eq!(g.status().state, "connecting");
        g.disconnected("connection refused".into());
        let s = g.status();
        assert_eq!((s.state, s.fix), ("no-gpsd", "none"));
        assert!(s.why.unwrap().contains("connection refused"));
        g.connected();
        assert_eq!(g.status().state, "no-fix");
        g.report(Report::Fix(fix(3)), monotonic_now());
        let s = g.status();
        assert_eq!((s.state, s.fix, s.speed), ("fix", "3d", Some(10.0)));
        assert!(g.current().is_some());
        assert_eq!(Gps::off().status().state, "off");
    }
}
