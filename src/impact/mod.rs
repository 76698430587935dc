//! Impacts: an accelerometer read on its own thread (never the executor,
//! never the recorder's), gravity removed and bursts over
//! `impact.threshold_g` turned into events (see [`detect`]). [`Impact`] is
//! the shared record the status and metrics read: the sensor, its state and
//! why, the samples, the last impact. The sensor is an input device
//! ([`evdev`]) or an IIO device ([`iio`]), named in `impact.sensor` or found
//! (`auto`). A missing sensor, one that fails or one that goes away is logged
//! once and shown in the status; the reader looks again every
//! [`RETRY`] and carries on when it is back. Nothing else waits for it.

pub mod detect;
pub mod evdev;
pub mod iio;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Timestamp, monotonic_now, unix_seconds};
use crate::config::{ImpactConfig, SensorChoice};
use crate::failures::FailureRun;
use crate::ring::{SeqRing, Stamped};
use crate::sync::lock;
use detect::Detector;

/// Samples kept for the recorder, which takes them at every frame: five
/// seconds at 100 Hz.
const RING: usize = 512;

/// One sample of the trace the recorder writes beside the frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceSample {
    /// Counts from 1; the recorder remembers the last it wrote.
    pub seq: u64,
    pub mono: Duration,
    /// The three axes, in g.
    pub g: [f64; 3],
    /// The acceleration without gravity, in g.
    pub magnitude_g: f64,
}

impl Stamped for TraceSample {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn mono(&self) -> Duration {
        self.mono
    }
}

/// How soon a missing or failed sensor is looked for again.
pub const RETRY: Duration = Duration::from_secs(2);
/// Where `auto` looks: input devices first, then IIO devices.
pub const INPUT_DIR: &str = "/dev/input";
pub const IIO_DIR: &str = "/sys/bus/iio/devices";

/// One reading: when, and the three axes in g.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// `CLOCK_MONOTONIC`, the clock the frames use.
    pub mono: Duration,
    pub g: [f64; 3],
}

/// Why there is no reading.
#[derive(Debug)]
pub enum SensorError {
    NotFound,
    Open(PathBuf, io::Error),
    NotAccelerometer(PathBuf),
    NoResolution(PathBuf),
    Malformed(PathBuf, String),
    Ioctl(&'static str, io::Error),
    Read(io::Error),
}

impl fmt::Display for SensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "no accelerometer found (no input device with INPUT_PROP_ACCELEROMETER in {INPUT_DIR}, no IIO device with in_accel_x_raw in {IIO_DIR})"
            ),
            Self::Open(p, e) => write!(f, "{}: {e}", p.display()),
            Self::NotAccelerometer(p) => write!(
                f,
                "{} is not an accelerometer (an input device with INPUT_PROP_ACCELEROMETER and X/Y/Z, or an IIO device with in_accel_x/y/z_raw)",
                p.display()
            ),
            Self::NoResolution(p) => write!(
                f,
                "{} does not say its units per g (no resolution or scale); set impact.units_per_g",
                p.display()
            ),
            Self::Malformed(p, v) => write!(f, "{}: not a number: {v:?}", p.display()),
            Self::Ioctl(what, e) => write!(f, "{what}: {e}"),
            Self::Read(e) => write!(f, "reading the sensor: {e}"),
        }
    }
}

impl std::error::Error for SensorError {}

/// An open sensor of either kind.
enum Sensor {
    Evdev(evdev::Evdev),
    Iio(iio::Iio),
}

impl Sensor {
    fn kind(&self) -> &'static str {
        match self {
            Self::Evdev(_) => "evdev",
            Self::Iio(_) => "iio",
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Evdev(d) => &d.name,
            Self::Iio(d) => &d.name,
        }
    }
}

/// Opens `path`: a directory is an IIO device, anything else an input
/// device.
fn open_path(path: &Path, units_per_g: Option<f64>) -> Result<Sensor, SensorError> {
    if path.is_dir() {
        iio::Iio::open(path).map(Sensor::Iio)
    } else {
        evdev::Evdev::open(path, units_per_g).map(Sensor::Evdev)
    }
}

/// The first accelerometer in `input_dir` (event devices in number order),
/// else in `iio_dir`.
pub fn discover(input_dir: &Path, iio_dir: &Path) -> Option<PathBuf> {
    let sorted = |dir: &Path, prefix: &str| -> Vec<PathBuf> {
        let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix(prefix)?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    };
    sorted(input_dir, "event")
        .into_iter()
        .find(|p| evdev::is_accelerometer(p))
        .or_else(|| {
            sorted(iio_dir, "iio:device")
                .into_iter()
                .find(|p| iio::is_accelerometer(p))
        })
}

/// The last impact, as the status shows it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct LastImpact {
    /// Unix seconds.
    pub at: f64,
    pub peak_g: f64,
}

#[derive(Default)]
struct Inner {
    state: &'static str,
    why: Option<String>,
    sensor: Option<(String, &'static str, String)>,
    up_since: Option<Duration>,
    samples: u64,
    samples_since_up: u64,
    magnitude_g: Option<f64>,
    max_g: f64,
    gravity: Option<[f64; 3]>,
    impacts: u64,
    last: Option<LastImpact>,
    failures: u64,
}

/// What `/api/status` says of the accelerometer.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ImpactStatus {
    pub enabled: bool,
    /// `off`, `searching`, `no-sensor`, `reading` or `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The device's path, `evdev` or `iio`, and the driver's name for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub threshold_g: f64,
    pub samples: u64,
    /// Samples a second since the sensor was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_hz: Option<f64>,
    /// The last sample's acceleration without gravity, in g.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub magnitude_g: Option<f64>,
    /// The highest seen since start-up.
    pub max_g: f64,
    /// The gravity estimate on the sensor's axes (its mounting angle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gravity: Option<[f64; 3]>,
    pub impacts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_impact: Option<LastImpact>,
    /// Times the sensor could not be opened or read.
    pub failures: u64,
}

/// The accelerometer as blackbox knows it.
pub struct Impact {
    enabled: bool,
    threshold_g: f64,
    inner: Mutex<Inner>,
    /// The recent samples, for the recorder.
    ring: SeqRing<TraceSample>,
}

impl Impact {
    pub fn new(cfg: &ImpactConfig) -> Self {
        let enabled = !matches!(cfg.sensor, SensorChoice::Off);
        Self {
            enabled,
            threshold_g: cfg.threshold_g,
            inner: Mutex::new(Inner {
                state: if enabled { "searching" } else { "off" },
                ..Inner::default()
            }),
            ring: SeqRing::new(RING),
        }
    }

    /// The newest trace sample's sequence number (0: none yet).
    pub fn newest(&self) -> u64 {
        self.ring.newest()
    }

    /// Trace samples after `seq` taken at or before `upto`, oldest first.
    pub fn samples_after(&self, seq: u64, upto: Duration) -> Vec<TraceSample> {
        self.ring.after(seq, upto)
    }

    pub fn status(&self) -> ImpactStatus {
        let i = lock(&self.inner);
        let rate_hz = i.up_since.and_then(|t| {
            let secs = monotonic_now().saturating_sub(t).as_secs_f64();
            (secs >= 1.0).then(|| i.samples_since_up as f64 / secs)
        });
        ImpactStatus {
            enabled: self.enabled,
            state: i.state,
            why: i.why.clone(),
            sensor: i.sensor.as_ref().map(|s| s.0.clone()),
            kind: i.sensor.as_ref().map(|s| s.1),
            name: i.sensor.as_ref().map(|s| s.2.clone()),
            threshold_g: self.threshold_g,
            samples: i.samples,
            rate_hz,
            magnitude_g: i.magnitude_g,
            max_g: i.max_g,
            gravity: i.gravity,
            impacts: i.impacts,
            last_impact: i.last,
            failures: i.failures,
        }
    }

    fn up(&self, path: &Path, sensor: &Sensor) {
        let mut i = lock(&self.inner);
        i.state = "reading";
        i.why = None;
        i.sensor = Some((
            path.display().to_string(),
            sensor.kind(),
            sensor.name().to_string(),
        ));
        i.up_since = Some(monotonic_now());
        i.samples_since_up = 0;
    }

    fn down(&self, e: &SensorError) {
        let mut i = lock(&self.inner);
        i.state = if matches!(e, SensorError::NotFound) {
            "no-sensor"
        } else {
            i.failures += 1;
            "failed"
        };
        i.why = Some(e.to_string());
        i.up_since = None;
        i.magnitude_g = None;
    }

    fn sample(&self, s: &Sample, magnitude_g: f64, gravity: Option<[f64; 3]>) {
        self.ring.push(TraceSample {
            seq: self.ring.next_seq(),
            mono: s.mono,
            g: s.g,
            magnitude_g,
        });
        let mut i = lock(&self.inner);
        i.samples += 1;
        i.samples_since_up += 1;
        i.magnitude_g = Some(magnitude_g);
        i.max_g = i.max_g.max(magnitude_g);
        i.gravity = gravity;
    }

    fn impacted(&self, at: Timestamp, peak_g: f64) {
        let mut i = lock(&self.inner);
        i.impacts += 1;
        i.last = Some(LastImpact {
            at: unix_seconds(at.wall),
            peak_g,
        });
    }
}

/// Starts the reader thread; `on_impact` is called on it for each impact
/// (it must not block: the recorder's event mailbox does not).
pub fn start(
    impact: std::sync::Arc<Impact>,
    cfg: ImpactConfig,
    on_impact: impl Fn(Timestamp, f64) + Send + 'static,
) -> io::Result<()> {
    if !impact.enabled {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("accelerometer".into())
        .spawn(move || run(&impact, &cfg, &on_impact))
        .map(|_| ())
}

fn run(impact: &Impact, cfg: &ImpactConfig, on_impact: &dyn Fn(Timestamp, f64)) {
    let mut failures = FailureRun::new("accelerometer");
    let mut said_none = false;
    loop {
        let path = match &cfg.sensor {
            SensorChoice::Off => return,
            SensorChoice::Path(p) => Some(p.clone()),
            SensorChoice::Auto => discover(Path::new(INPUT_DIR), Path::new(IIO_DIR)),
        };
        let opened = path
            .ok_or(SensorError::NotFound)
            .and_then(|p| open_path(&p, cfg.units_per_g).map(|s| (p, s)));
        let (path, mut sensor) = match opened {
            Ok(x) => x,
            Err(e) => {
                impact.down(&e);
                if matches!(e, SensorError::NotFound) {
                    // Most cars have none: said once, at info.
                    if !said_none {
                        log::info!("impact: {e}; looking again every {} s", RETRY.as_secs());
                        said_none = true;
                    }
                } else {
                    failures.failed(&e);
                }
                std::thread::sleep(RETRY);
                continue;
            }
        };
        log::info!(
            "impact: reading {} ({}, {:?}) at {} g",
            path.display(),
            sensor.kind(),
            sensor.name(),
            cfg.threshold_g
        );
        impact.up(&path, &sensor);
        let mut detector = Detector::new(cfg.threshold_g, cfg.holdoff);
        let mut due = monotonic_now();
        let mut first = true;
        let error = loop {
            if let Sensor::Iio(_) = sensor {
                let now = monotonic_now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                due = iio::next_due(due, monotonic_now(), cfg.rate_hz);
            }
            let read = match &mut sensor {
                Sensor::Evdev(d) => d.read(),
                Sensor::Iio(d) => d.read(),
            };
            let s = match read {
                Ok(s) => s,
                Err(e) => break e,
            };
            if first {
                failures.succeeded();
                first = false;
            }
            let step = detector.push(s.mono, s.g);
            impact.sample(&s, step.magnitude_g, detector.gravity());
            if let Some(hit) = step.impact {
                let at = Timestamp::from_mono(hit.at);
                log::info!("impact: {:.2} g", hit.peak_g);
                impact.impacted(at, hit.peak_g);
                on_impact(at, hit.peak_g);
            }
        };
        impact.down(&error);
        failures.failed(&error);
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_an_iio_accelerometer_and_skips_other_devices() {
        let root = crate::ota::scratch("impact-discover");
        let (input, iio) = (root.join("input"), root.join("iio"));
        std::fs::create_dir_all(&input).unwrap();
        // A light sensor, then an accelerometer.
        std::fs::create_dir_all(iio.join("iio:device0")).unwrap();
        std::fs::write(iio.join("iio:device0/in_illuminance_raw"), "5").unwrap();
        assert_eq!(discover(&input, &iio), None);
        let acc = iio.join("iio:device10");
        std::fs::create_dir_all(&acc).unwrap();
        for a in ["x", "y", "z"] {
            std::fs::write(acc.join(format!("in_accel_{a}_raw")), "0").unwrap();
        }
        assert_eq!(discover(&input, &iio), Some(acc));
    }
}
