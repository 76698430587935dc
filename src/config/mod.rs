//! The one typed [`Config`]: defaults, the TOML file, and command-line flags
//! on top, validated once at start-up.
//!
//! # Implementation
//! Every setting is one row of [`FIELDS`]: its key (`camera.size`), its flag
//! (`--size`) if it has one, and a function that parses the value as text and
//! stores it. The file and the flags go through the same rows, so an error
//! reads the same either way and always names the field and its flag; an
//! unknown key in the file is refused with its line. Rules that involve more
//! than one field are checked once at the end ([`Config::validate`]).
//!
//! This module depends on nothing but the frame types: the capture, record
//! and HTTP modules read their settings from here, never the other way round.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::frame::{PixelFormat, Size};

mod cameras;

/// The kinds of source blackbox can capture from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Resolved at start-up: the Pi camera, else a V4L2 camera, else the
    /// test pattern.
    Auto,
    /// The built-in test pattern.
    Testsrc,
    /// A V4L2 capture device.
    V4l2,
    /// `rpicam-vid` as a child process.
    Rpicam,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Testsrc => "testsrc",
            Self::V4l2 => "v4l2",
            Self::Rpicam => "rpicam",
        }
    }

    /// The names [`SourceKind::from_str`] accepts, for error messages.
    pub const NAMES: &'static str = "auto, testsrc, v4l2, rpicam";
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "testsrc" => Ok(Self::Testsrc),
            "v4l2" => Ok(Self::V4l2),
            "rpicam" => Ok(Self::Rpicam),
            _ => Err(format!("expected one of {}", Self::NAMES)),
        }
    }
}

/// The smallest frame the test pattern draws (its sequence strip needs room).
pub const TESTSRC_MIN_SIZE: Size = Size::new(320, 240);
/// The largest frame the test pattern draws.
pub const TESTSRC_MAX_SIZE: Size = Size::new(1920, 1080);

/// A space budget: bytes, or a share of the file system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    Bytes(u64),
    Percent(f64),
}

impl Budget {
    /// The budget in bytes on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Self::Bytes(b) => b,
            Self::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

impl FromStr for Budget {
    type Err = String;
    /// `80%`, `512MiB`, `2GiB`, `100MB`, `4096` (bytes).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || "expected bytes (e.g. 512MiB, 2GiB) or a percentage (e.g. 80%)".to_string();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if (0.0..=100.0).contains(&p) {
                Ok(Self::Percent(p))
            } else {
                Err(bad())
            };
        }
        const UNITS: [(&str, u64); 8] = [
            ("KiB", 1 << 10),
            ("MiB", 1 << 20),
            ("GiB", 1 << 30),
            ("TiB", 1 << 40),
            ("KB", 1_000),
            ("MB", 1_000_000),
            ("GB", 1_000_000_000),
            ("B", 1),
        ];
        for (suffix, scale) in UNITS {
            if let Some(n) = s.strip_suffix(suffix) {
                let n: f64 = n.trim().parse().map_err(|_| bad())?;
                return if n.is_finite() && n >= 0.0 {
                    Ok(Self::Bytes((n * scale as f64) as u64))
                } else {
                    Err(bad())
                };
            }
        }
        s.parse::<u64>().map(Self::Bytes).map_err(|_| bad())
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "{b} bytes"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The default number of encoder threads: one per core, at most four.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// One camera: where its frames come from and what becomes of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraConfig {
    /// Its name in paths, file names and the page (`front`, `rear`).
    pub id: String,
    pub source: SourceKind,
    /// The V4L2 device node (`v4l2` source).
    pub device: String,
    /// The V4L2 input to select; `None` keeps the device's current input.
    pub input: Option<u32>,
    pub size: Size,
    pub fps: u32,
    /// `None` (`auto`): the best the source offers (MJPEG, YUYV, NV12, YU12).
    pub pixel_format: Option<PixelFormat>,
    /// V4L2 buffers to request.
    pub buffers: u32,
    /// A source that delivers nothing for this long is reopened.
    pub timeout: Duration,
    /// The `rpicam-vid` program (`rpicam` source).
    pub rpicam_path: String,
    /// Which Pi camera (`rpicam-vid --camera N`): 0 or 1 on a Pi 5.
    pub index: u32,
    /// JPEG quality for this camera; `None`: `encode.quality`.
    pub quality: Option<u8>,
    /// Whether its frames are recorded.
    pub record: bool,
    /// Turned in the conversion (a rear camera mounted upside down).
    pub rotation: Rotation,
    /// What the caption burned into its frames shows.
    pub caption: Caption,
    /// Caption an MJPEG camera's frames too (a decode and re-encode each).
    pub caption_mjpeg: bool,
}

/// The caption burned into a camera's frames before they are encoded:
/// `camera.caption` (or `record.caption` for every camera) is a list of
/// `time`, `speed` and `position`; an empty list draws none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caption {
    pub time: bool,
    pub speed: bool,
    pub position: bool,
}

impl Caption {
    pub fn any(self) -> bool {
        self.time || self.speed || self.position
    }
}

impl FromStr for Caption {
    type Err = String;
    fn from_str(v: &str) -> Result<Self, String> {
        let mut c = Caption::default();
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "time" => c.time = true,
                "speed" => c.speed = true,
                "position" => c.position = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "{other:?} is not a caption item: use a list of time, speed and position"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// How a camera's picture is turned before it is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    #[default]
    None,
    /// Upside down: 180 degrees.
    Half,
}

impl Rotation {
    pub fn degrees(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Half => 180,
        }
    }
}

impl CameraConfig {
    /// The JPEG quality this camera's frames are encoded at.
    pub fn quality_or(&self, encode: &EncodeConfig) -> u8 {
        self.quality.unwrap_or(encode.quality)
    }
}

/// How raw frames become JPEGs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeConfig {
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// Encoder threads; 0 in the file means one per core, at most 4.
    pub workers: usize,
}

/// The web server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A viewer whose socket accepts nothing for this long is dropped.
    pub write_timeout: Duration,
    /// Connections open at once; past it the longest-idle one is closed to
    /// make room, and a new one is refused only if none is idle.
    pub max_connections: usize,
    /// The file holding the password's hash; `None` (or a missing file): no
    /// password, and loopback only.
    pub password_file: Option<PathBuf>,
    /// Names the device answers to besides `localhost`, its host name, that
    /// name `.local`, and IP literals (a guard against DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// HTTPS: the certificate chain and its private key (PEM). Both or
    /// neither; with them `listen` speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A plain-HTTP listener that answers `/healthz` and sends everything
    /// else to the HTTPS address (308); `None`: none.
    pub redirect_listen: Option<SocketAddr>,
}

impl HttpConfig {
    /// Where `/healthz` answers in plain HTTP, for local supervisors (the
    /// update gate): `listen` without TLS, else `redirect_listen`; a
    /// wildcard address is asked on loopback. `None` when only HTTPS
    /// listens.
    pub fn plain_health_addr(&self) -> Option<SocketAddr> {
        let addr = if self.tls_cert.is_some() {
            self.redirect_listen?
        } else {
            self.listen
        };
        Some(if addr.ip().is_unspecified() {
            let lo = if addr.is_ipv4() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            };
            SocketAddr::new(lo, addr.port())
        } else {
            addr
        })
    }
}

/// The frame tap: every frame to local programs over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapConfig {
    /// `None`: no tap.
    pub listen: Option<SocketAddr>,
    /// Frames a slow tap client may fall behind before the oldest are dropped.
    pub queue_frames: usize,
}

/// The recorder.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordConfig {
    /// Record at all (the recorder thread runs).
    pub enabled: bool,
    /// The data directory (`recordings/`, `events/`, `damaged/` inside).
    pub dir: PathBuf,
    /// Start recording when blackbox starts.
    pub autostart: bool,
    pub segment_seconds: u64,
    /// fdatasync at least this often (zero: after every frame); `None`: never
    /// (the kernel writes back when it likes).
    pub sync_interval: Option<Duration>,
    /// Recordings may use at most this much.
    pub max_usage: Budget,
    /// Keep at least this much of the file system free.
    pub min_free: Budget,
    pub queue_frames: usize,
}

/// Protected event clips.
#[derive(Clone, Debug, PartialEq)]
pub struct EventConfig {
    pub pre_seconds: u64,
    pub post_seconds: u64,
    /// `None`: 30 % of the recording budget.
    pub max_usage: Option<Budget>,
}

/// How the dashcam uses its Wi-Fi radio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WifiMode {
    /// Leave the radio alone (a desktop, a Pi with its own network setup).
    Off,
    /// Its own access point, always.
    Ap,
    /// Join a known network, never open the access point.
    Client,
    /// A known network when one is in range, else the access point.
    Auto,
}

/// The Wi-Fi side (the appliance's network for the owner's phone).
#[derive(Clone, Debug, PartialEq)]
pub struct WifiConfig {
    pub mode: WifiMode,
    /// ISO 3166-1 alpha-2, upper case; `None`: the world regulatory domain.
    pub country: Option<String>,
    pub interface: String,
    /// The access point's name and passphrase (src/wifi.rs), on /data.
    pub ap_file: Option<PathBuf>,
    /// The owner's known networks (src/wifi/networks.rs), on /data.
    pub networks_file: Option<PathBuf>,
    /// In `auto`: how long a known network may be out of reach before the
    /// access point opens again.
    pub fallback_seconds: u64,
    /// In `auto`, while the access point has no phone on it: how often to
    /// look for a known network in range.
    pub rescan_seconds: u64,
    /// Where `blackbox wifi run` says what the radio is doing (read by the
    /// page).
    pub status_file: PathBuf,
}

/// The GPS (`[gps]`): read from gpsd, never from the serial port.
#[derive(Clone, Debug, PartialEq)]
pub struct GpsConfig {
    pub enabled: bool,
    /// gpsd's JSON socket.
    pub server: SocketAddr,
}

/// Which accelerometer `[impact]` reads.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorChoice {
    /// None: no impact detection.
    Off,
    /// The first input device with `INPUT_PROP_ACCELEROMETER`, else the
    /// first IIO accelerometer; none is fine (looked for again).
    Auto,
    /// An input device (`/dev/input/eventN`) or an IIO device's directory
    /// (`/sys/bus/iio/devices/iio:deviceN`).
    Path(PathBuf),
}

/// Impacts from an accelerometer (`[impact]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImpactConfig {
    pub sensor: SensorChoice,
    /// Samples a second read from an IIO device (an input device reports
    /// at its own rate).
    pub rate_hz: u32,
    /// An acceleration (gravity removed) over this is an impact.
    pub threshold_g: f64,
    /// After an impact, no other for this long: one crash, one event.
    pub holdoff: Duration,
    /// Units per g for an input device whose driver gives no resolution.
    pub units_per_g: Option<f64>,
}

/// What a parked car's cameras record (`parking.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkingMode {
    /// Only when something moves, with the seconds before it.
    Motion,
    /// One frame every `timelapse_interval`, played back at the normal rate.
    Timelapse,
    /// Nothing (impacts still record their event).
    Off,
}

impl ParkingMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Motion => "motion",
            Self::Timelapse => "timelapse",
            Self::Off => "off",
        }
    }
}

/// Where the ignition line is read (`parking.ignition`).
#[derive(Clone, Debug, PartialEq)]
pub enum IgnitionChoice {
    /// No line: parking only by hand (the page, `POST /api/parking`).
    None,
    /// An input device (`/dev/input/eventN`, e.g. the `gpio-key` overlay's):
    /// the state of key or switch `parking.ignition_code` is the line.
    Input(PathBuf),
}

/// Parking mode (`[parking]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParkingConfig {
    pub mode: ParkingMode,
    pub ignition: IgnitionChoice,
    /// The key or switch code the line reports as (the overlay's `keycode`).
    pub ignition_code: u16,
    /// Ignition off this long before the car counts as parked.
    pub delay: Duration,
    /// `timelapse`: a frame this often.
    pub timelapse_interval: Duration,
    /// `motion`: seconds kept from before the motion (also an impact's
    /// pre-roll while parked).
    pub pre_roll: Duration,
    /// `motion`: recording goes on this long after the last motion.
    pub motion_post: Duration,
    /// `motion`: levels (0-255) a cell of the reduced picture must change by.
    pub motion_threshold: f32,
    /// `motion`: the share of the picture (0-1) that must change.
    pub motion_area: f32,
    /// Parked this long, recording stops (the car's battery); None: never.
    pub cutoff: Option<Duration>,
    /// Parked with nothing being recorded and nobody watching, each camera's
    /// frames are looked at and encoded at most this often (the battery);
    /// motion or an event brings the full rate back at once.
    pub fps: u32,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The `[camera]` table and the flags: the one camera when there is no
    /// list, and what each `[[cameras]]` entry starts from.
    pub camera: CameraConfig,
    /// The `[[cameras]]` list as given (empty: just `camera`). Read the
    /// cameras through [`Config::cameras`].
    pub camera_list: Vec<CameraConfig>,
    pub encode: EncodeConfig,
    pub http: HttpConfig,
    pub tap: TapConfig,
    pub record: RecordConfig,
    pub event: EventConfig,
    pub wifi: WifiConfig,
    pub gps: GpsConfig,
    pub impact: ImpactConfig,
    pub parking: ParkingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            camera: CameraConfig {
                id: "front".into(),
                source: SourceKind::Testsrc,
                device: "/dev/video0".into(),
                input: None,
                size: Size::new(1280, 720),
                fps: 30,
                pixel_format: None,
                buffers: 4,
                timeout: Duration::from_secs(2),
                rpicam_path: "rpicam-vid".into(),
                index: 0,
                quality: None,
                record: true,
                rotation: Rotation::None,
                caption: Caption {
                    time: true,
                    speed: true,
                    position: false,
                },
                caption_mjpeg: false,
            },
            camera_list: Vec::new(),
            encode: EncodeConfig {
                quality: 80,
                workers: default_workers(),
            },
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                write_timeout: Duration::from_secs(5),
                max_connections: 256,
                password_file: None,
                allowed_hosts: Vec::new(),
                tls_cert: None,
                tls_key: None,
                redirect_listen: None,
            },
            tap: TapConfig {
                listen: None,
                queue_frames: 64,
            },
            record: RecordConfig {
                enabled: true,
                dir: PathBuf::from("blackbox-data"),
                autostart: true,
                segment_seconds: 60,
                sync_interval: Some(Duration::from_secs(1)),
                max_usage: Budget::Percent(80.0),
                min_free: Budget::Percent(5.0),
                queue_frames: 90,
            },
            event: EventConfig {
                pre_seconds: 10,
                post_seconds: 10,
                max_usage: None,
            },
            wifi: WifiConfig {
                mode: WifiMode::Off,
                country: None,
                interface: "wlan0".into(),
                ap_file: None,
                networks_file: None,
                fallback_seconds: 60,
                rescan_seconds: 300,
                status_file: "/run/blackbox-wifi/status.json".into(),
            },
            gps: GpsConfig {
                enabled: true,
                server: SocketAddr::from(([127, 0, 0, 1], 2947)),
            },
            impact: ImpactConfig {
                sensor: SensorChoice::Auto,
                rate_hz: 100,
                threshold_g: 1.5,
                holdoff: Duration::from_secs(10),
                units_per_g: None,
            },
            parking: ParkingConfig {
                mode: ParkingMode::Motion,
                ignition: IgnitionChoice::None,
                ignition_code: 148,
                delay: Duration::from_secs(60),
                timelapse_interval: Duration::from_secs(2),
                pre_roll: Duration::from_secs(5),
                motion_post: Duration::from_secs(10),
                motion_threshold: 20.0,
                motion_area: 0.005,
                cutoff: Some(Duration::from_secs(12 * 3600)),
                fps: 10,
            },
        }
    }
}

impl Config {
    /// Every camera, in order: the `[[cameras]]` list, or the one camera of
    /// `[camera]` and the flags. Never empty.
    pub fn cameras(&self) -> Vec<CameraConfig> {
        if self.camera_list.is_empty() {
            vec![self.camera.clone()]
        } else {
            self.camera_list.clone()
        }
    }

    /// The events' quota as configured or derived from the recording budget.
    pub fn event_budget(&self) -> Budget {
        self.event.max_usage.unwrap_or(match self.record.max_usage {
            Budget::Percent(p) => Budget::Percent(p * 0.3),
            Budget::Bytes(b) => Budget::Bytes(b * 3 / 10),
        })
    }
}

/// One setting: its key in the file, its flag, and how to store its value.
struct Field {
    key: &'static str,
    flag: Option<&'static str>,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

/// Every setting. Each `apply` parses the value as text (what a flag gives,
/// and what a file value becomes) and stores it, or says why not.
const FIELDS: &[Field] = &[
    Field {
        key: "camera.source",
        flag: Some("--source"),
        apply: |c, v| {
            c.camera.source = v.parse()?;
            Ok(())
        },
    },
    Field {
        key: "camera.device",
        flag: Some("--device"),
        apply: |c, v| {
            c.camera.device = nonempty(v)?;
            Ok(())
        },
    },
    Field {
        key: "camera.input",
        flag: Some("--input"),
        apply: |c, v| {
            c.camera.input = match v.trim() {
                "" | "current" => None,
                n => Some(number(n, 0, 255)? as u32),
            };
            Ok(())
        },
    },
    Field {
        key: "camera.size",
        flag: Some("--size"),
        apply: |c, v| {
            c.camera.size = v.trim().parse()?;
            Ok(())
        },
    },
    Field {
        key: "camera.fps",
        flag: Some("--fps"),
        apply: |c, v| {
            c.camera.fps = number(v, 1, 240)? as u32;
            Ok(())
        },
    },
    Field {
        key: "camera.pixel_format",
        flag: Some("--pixel-format"),
        apply: |c, v| {
            c.camera.pixel_format = match v.trim() {
                "auto" => None,
                f => Some(f.parse().map_err(|e| format!("{e}, or auto"))?),
            };
            Ok(())
        },
    },
    Field {
        key: "camera.buffers",
        flag: None,
        apply: |c, v| {
            c.camera.buffers = number(v, 2, 32)? as u32;
            Ok(())
        },
    },
    Field {
        key: "camera.timeout",
        flag: None,
        apply: |c, v| {
            c.camera.timeout = duration_at_least(v, Duration::from_millis(100))?;
            Ok(())
        },
    },
    Field {
        key: "camera.rpicam_path",
        flag: None,
        apply: |c, v| {
            c.camera.rpicam_path = nonempty(v)?;
            Ok(())
        },
    },
    Field {
        key: "camera.id",
        flag: None,
        apply: |c, v| {
            c.camera.id = cameras::check_id(v)?;
            Ok(())
        },
    },
    Field {
        key: "camera.index",
        flag: None,
        apply: |c, v| {
            c.camera.index = number(v, 0, 15)? as u32;
            Ok(())
        },
    },
    Field {
        key: "camera.quality",
        flag: None,
        apply: |c, v| {
            c.camera.quality = Some(number(v, 1, 100)? as u8);
            Ok(())
        },
    },
    Field {
        key: "camera.record",
        flag: None,
        apply: |c, v| {
            c.camera.record = boolean(v)?;
            Ok(())
        },
    },
    Field {
        key: "camera.rotation",
        flag: None,
        apply: |c, v| {
            c.camera.rotation = match v.trim() {
                "0" => Rotation::None,
                "180" => Rotation::Half,
                _ => return Err("expected 0 or 180".into()),
            };
            Ok(())
        },
    },
    Field {
        key: "encode.quality",
        flag: Some("--quality"),
        apply: |c, v| {
            c.encode.quality = number(v, 1, 100)? as u8;
            Ok(())
        },
    },
    Field {
        key: "encode.workers",
        flag: None,
        apply: |c, v| {
            c.encode.workers = match number(v, 0, 16)? {
                0 => default_workers(),
                n => n as usize,
            };
            Ok(())
        },
    },
    Field {
        key: "http.listen",
        flag: Some("--listen"),
        apply: |c, v| {
            c.http.listen = address(v)?;
            Ok(())
        },
    },
    Field {
        key: "http.write_timeout",
        flag: None,
        apply: |c, v| {
            c.http.write_timeout = duration_at_least(v, Duration::from_millis(1))?;
            Ok(())
        },
    },
    Field {
        key: "http.max_connections",
        flag: None,
        apply: |c, v| {
            c.http.max_connections = number(v, 8, 100_000)? as usize;
            Ok(())
        },
    },
    Field {
        key: "http.password_file",
        flag: Some("--password-file"),
        apply: |c, v| {
            c.http.password_file = optional_path(v);
            Ok(())
        },
    },
    Field {
        key: "http.allowed_hosts",
        flag: None,
        apply: |c, v| {
            c.http.allowed_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(bad) = c.http.allowed_hosts.iter().find(|h| {
                !h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            }) {
                return Err(format!("{bad:?} is not a host name"));
            }
            Ok(())
        },
    },
    Field {
        key: "http.tls_cert",
        flag: None,
        apply: |c, v| {
            c.http.tls_cert = optional_path(v);
            Ok(())
        },
    },
    Field {
        key: "http.tls_key",
        flag: None,
        apply: |c, v| {
            c.http.tls_key = optional_path(v);
            Ok(())
        },
    },
    Field {
        key: "http.redirect_listen",
        flag: None,
        apply: |c, v| {
            c.http.redirect_listen = match v.trim() {
                "" | "off" | "none" => None,
                addr => Some(address(addr)?),
            };
            Ok(())
        },
    },
    Field {
        key: "tap.listen",
        flag: Some("--tap"),
        apply: |c, v| {
            c.tap.listen = match v.trim() {
                "" | "off" | "none" => None,
                addr => Some(address(addr)?),
            };
            Ok(())
        },
    },
    Field {
        key: "tap.queue_frames",
        flag: None,
        apply: |c, v| {
            c.tap.queue_frames = number(v, 1, 10_000)? as usize;
            Ok(())
        },
    },
    Field {
        key: "record.enabled",
        flag: Some("--record"),
        apply: |c, v| {
            c.record.enabled = boolean(v)?;
            Ok(())
        },
    },
    Field {
        key: "record.dir",
        flag: Some("--data"),
        apply: |c, v| {
            c.record.dir = PathBuf::from(nonempty(v)?);
            Ok(())
        },
    },
    Field {
        key: "record.autostart",
        flag: None,
        apply: |c, v| {
            c.record.autostart = boolean(v)?;
            Ok(())
        },
    },
    Field {
        key: "record.segment_seconds",
        flag: None,
        apply: |c, v| {
            c.record.segment_seconds = number(v, 1, 3600)? as u64;
            Ok(())
        },
    },
    Field {
        key: "record.sync_interval",
        flag: None,
        apply: |c, v| {
            c.record.sync_interval = match v.trim() {
                "off" | "never" => None,
                d => Some(parse_duration(d).ok_or(
                    "expected a duration such as \"1s\", \"0\" for every frame, or \"off\"",
                )?),
            };
            Ok(())
        },
    },
    Field {
        key: "record.max_usage",
        flag: None,
        apply: |c, v| {
            c.record.max_usage = v.parse()?;
            Ok(())
        },
    },
    Field {
        key: "record.min_free",
        flag: None,
        apply: |c, v| {
            c.record.min_free = v.parse()?;
            Ok(())
        },
    },
    Field {
        key: "record.queue_frames",
        flag: None,
        apply: |c, v| {
            c.record.queue_frames = number(v, 1, 10_000)? as usize;
            Ok(())
        },
    },
    Field {
        key: "event.pre_seconds",
        flag: None,
        apply: |c, v| {
            c.event.pre_seconds = number(v, 0, 3600)? as u64;
            Ok(())
        },
    },
    Field {
        key: "event.post_seconds",
        flag: None,
        apply: |c, v| {
            c.event.post_seconds = number(v, 0, 3600)? as u64;
            Ok(())
        },
    },
    Field {
        key: "event.max_usage",
        flag: None,
        apply: |c, v| {
            c.event.max_usage = Some(v.parse()?);
            Ok(())
        },
    },
    Field {
        key: "camera.caption",
        flag: None,
        apply: |c, v| {
            c.camera.caption = v.parse()?;
            Ok(())
        },
    },
    Field {
        key: "record.caption",
        flag: None,
        apply: |c, v| {
            c.camera.caption = v.parse()?;
            Ok(())
        },
    },
    Field {
        key: "camera.caption_mjpeg",
        flag: None,
        apply: |c, v| {
            c.camera.caption_mjpeg = boolean(v)?;
            Ok(())
        },
    },
    Field {
        key: "gps.enabled",
        flag: Some("--gps"),
        apply: |c, v| {
            c.gps.enabled = boolean(v)?;
            Ok(())
        },
    },
    Field {
        key: "gps.server",
        flag: Some("--gps-server"),
        apply: |c, v| {
            c.gps.server = address(v)?;
            Ok(())
        },
    },
    Field {
        key: "impact.sensor",
        flag: Some("--impact-sensor"),
        apply: |c, v| {
            c.impact.sensor = match v.trim() {
                "off" => SensorChoice::Off,
                "auto" => SensorChoice::Auto,
                p if p.starts_with('/') => SensorChoice::Path(p.into()),
                _ => {
                    return Err("expected auto, off, or the path of an input or IIO device".into());
                }
            };
            Ok(())
        },
    },
    Field {
        key: "impact.rate_hz",
        flag: None,
        apply: |c, v| {
            c.impact.rate_hz = number(v, 10, 1000)? as u32;
            Ok(())
        },
    },
    Field {
        key: "impact.threshold_g",
        flag: Some("--impact-threshold"),
        apply: |c, v| {
            c.impact.threshold_g = decimal(v, 0.1, 16.0)?;
            Ok(())
        },
    },
    Field {
        key: "impact.holdoff_seconds",
        flag: None,
        apply: |c, v| {
            c.impact.holdoff = Duration::from_secs(number(v, 1, 600)? as u64);
            Ok(())
        },
    },
    Field {
        key: "impact.units_per_g",
        flag: None,
        apply: |c, v| {
            c.impact.units_per_g = Some(decimal(v, 0.001, 1e9)?);
            Ok(())
        },
    },
    Field {
        key: "parking.mode",
        flag: Some("--parking-mode"),
        apply: |c, v| {
            c.parking.mode = match v.trim() {
                "motion" => ParkingMode::Motion,
                "timelapse" => ParkingMode::Timelapse,
                "off" => ParkingMode::Off,
                _ => return Err("expected motion, timelapse or off".into()),
            };
            Ok(())
        },
    },
    Field {
        key: "parking.ignition",
        flag: Some("--ignition"),
        apply: |c, v| {
            c.parking.ignition = match v.trim() {
                "none" | "off" => IgnitionChoice::None,
                p if p.starts_with('/') => IgnitionChoice::Input(p.into()),
                _ => return Err("expected none, or the path of an input device".into()),
            };
            Ok(())
        },
    },
    Field {
        key: "parking.ignition_code",
        flag: None,
        apply: |c, v| {
            c.parking.ignition_code = number(v, 0, 0x2ff)? as u16;
            Ok(())
        },
    },
    Field {
        key: "parking.delay_seconds",
        flag: None,
        apply: |c, v| {
            c.parking.delay = Duration::from_secs(number(v, 0, 3600)? as u64);
            Ok(())
        },
    },
    Field {
        key: "parking.timelapse_interval_seconds",
        flag: None,
        apply: |c, v| {
            c.parking.timelapse_interval = Duration::from_secs(number(v, 1, 3600)? as u64);
            Ok(())
        },
    },
    Field {
        key: "parking.pre_roll_seconds",
        flag: None,
        apply: |c, v| {
            c.parking.pre_roll = Duration::from_secs(number(v, 0, 30)? as u64);
            Ok(())
        },
    },
    Field {
        key: "parking.motion_post_seconds",
        flag: None,
        apply: |c, v| {
            c.parking.motion_post = Duration::from_secs(number(v, 1, 600)? as u64);
            Ok(())
        },
    },
    Field {
        key: "parking.motion_threshold",
        flag: None,
        apply: |c, v| {
            c.parking.motion_threshold = number(v, 1, 255)? as f32;
            Ok(())
        },
    },
    Field {
        key: "parking.motion_area_percent",
        flag: None,
        apply: |c, v| {
            c.parking.motion_area = (decimal(v, 0.01, 100.0)? / 100.0) as f32;
            Ok(())
        },
    },
    Field {
        key: "parking.fps",
        flag: None,
        apply: |c, v| {
            c.parking.fps = number(v, 1, 120)? as u32;
            Ok(())
        },
    },
    Field {
        key: "parking.cutoff_hours",
        flag: None,
        apply: |c, v| {
            let h = decimal(v, 0.0, 168.0)?;
            c.parking.cutoff = (h > 0.0).then(|| Duration::from_secs_f64(h * 3600.0));
            Ok(())
        },
    },
    Field {
        key: "wifi.mode",
        flag: None,
        apply: |c, v| {
            c.wifi.mode = match v.trim() {
                "off" => WifiMode::Off,
                "ap" => WifiMode::Ap,
                "client" => WifiMode::Client,
                "auto" => WifiMode::Auto,
                other => return Err(format!("{other:?} is not off, ap, client or auto")),
            };
            Ok(())
        },
    },
    Field {
        key: "wifi.country",
        flag: None,
        apply: |c, v| {
            c.wifi.country = match v.trim() {
                "" | "none" => None,
                code => Some(
                    country_code(code)
                        .ok_or_else(|| format!("{code:?} is not a two-letter country code"))?,
                ),
            };
            Ok(())
        },
    },
    Field {
        key: "wifi.interface",
        flag: None,
        apply: |c, v| {
            let name = v.trim();
            if name.is_empty()
                || name.len() > 15
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("{name:?} is not a network interface name"));
            }
            c.wifi.interface = name.to_string();
            Ok(())
        },
    },
    Field {
        key: "wifi.ap_file",
        flag: None,
        apply: |c, v| {
            c.wifi.ap_file = optional_path(v);
            Ok(())
        },
    },
    Field {
        key: "wifi.networks_file",
        flag: None,
        apply: |c, v| {
            c.wifi.networks_file = optional_path(v);
            Ok(())
        },
    },
    Field {
        key: "wifi.fallback_seconds",
        flag: None,
        apply: |c, v| {
            c.wifi.fallback_seconds = number(v, 5, 86_400)? as u64;
            Ok(())
        },
    },
    Field {
        key: "wifi.rescan_seconds",
        flag: None,
        apply: |c, v| {
            c.wifi.rescan_seconds = number(v, 10, 86_400)? as u64;
            Ok(())
        },
    },
    Field {
        key: "wifi.status_file",
        flag: None,
        apply: |c, v| {
            c.wifi.status_file =
                optional_path(v).ok_or_else(|| "wifi.status_file cannot be empty".to_string())?;
            Ok(())
        },
    },
];

/// Values given on the command line, by key; each overrides the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides(Vec<(&'static str, String)>);

impl Overrides {
    /// Sets `key` (e.g. `camera.fps`) if `value` is given.
    pub fn set(&mut self, key: &'static str, value: Option<String>) {
        if let Some(v) = value {
            self.0.push((key, v));
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key.
    Parse {
        path: PathBuf,
        line: usize,
        text: String,
        message: String,
    },
    /// One camera of the `[[cameras]]` list is wrong, or clashes with
    /// another: named by its id (or its place in the list).
    Camera {
        camera: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A value is out of range or malformed.
    Invalid {
        field: &'static str,
        flag: Option<&'static str>,
        value: String,
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            Self::Parse {
                path,
                line,
                text,
                message,
            } => write!(
                f,
                "config file {} line {line} (`{text}`): {message}",
                path.display()
            ),
            Self::Camera {
                camera,
                field,
                value,
                reason,
            } => write!(f, "invalid camera {camera}: {field} = {value:?}: {reason}"),
            Self::Invalid {
                field,
                flag,
                value,
                reason,
            } => {
                write!(f, "invalid {field}")?;
                if let Some(flag) = flag {
                    write!(f, " ({flag})")?;
                }
                write!(f, " = {value:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Defaults, then `file` if given, then `overrides`; validated.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        match file {
            Some(path) => {
                let body = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.to_path_buf(),
                    error,
                })?;
                Self::from_text(path, &body, overrides)
            }
            None => Self::from_text(Path::new(""), "", overrides),
        }
    }

    /// Defaults, then the TOML `body` (of the file at `path`, for
    /// messages), then `overrides`; validated.
    pub fn from_text(path: &Path, body: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let from_file = file_values(path, body)?;
        let mut cfg = Config::default();
        for (key, value) in from_file
            .values
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(overrides.0.iter().map(|(k, v)| (*k, v.as_str())))
        {
            let field = FIELDS
                .iter()
                .find(|f| f.key == key)
                .ok_or_else(|| invalid(key, None, value, "unknown setting".into()))?;
            (field.apply)(&mut cfg, value).map_err(|e| invalid(field.key, field.flag, value, e))?;
        }
        // Each `[[cameras]]` entry starts from `[camera]` and the flags.
        for (n, entry) in from_file.cameras.iter().enumerate() {
            let mut scratch = cfg.clone();
            scratch.camera.id = String::new();
            for (key, value) in entry {
                let field = FIELDS.iter().find(|f| f.key == *key).ok_or_else(|| {
                    cameras::invalid(n, &scratch.camera.id, key, value, "unknown setting")
                })?;
                (field.apply)(&mut scratch, value)
                    .map_err(|e| cameras::invalid(n, &scratch.camera.id, key, value, &e))?;
            }
            cfg.camera_list.push(scratch.camera);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the rules that involve more than one field.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.camera_list.is_empty() {
            cameras::check_size(&self.camera).map_err(|reason| {
                invalid(
                    "camera.size",
                    Some("--size"),
                    &self.camera.size.to_string(),
                    reason,
                )
            })?;
            cameras::check_rotation(&self.camera)
                .map_err(|reason| invalid("camera.rotation", None, "180", reason))?;
        } else {
            cameras::check_list(&self.camera_list)?;
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            let (key, value) = match &self.http.tls_cert {
                Some(c) => ("http.tls_key", c.display().to_string()),
                None => ("http.tls_cert", String::new()),
            };
            return Err(invalid(
                key,
                None,
                &value,
                "HTTPS needs both http.tls_cert and http.tls_key".into(),
            ));
        }
        if self.http.redirect_listen.is_some() && self.http.tls_cert.is_none() {
            return Err(invalid(
                "http.redirect_listen",
                None,
                &self
                    .http
                    .redirect_listen
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                "a redirect to HTTPS needs http.tls_cert and http.tls_key".into(),
            ));
        }
        if matches!(self.wifi.mode, WifiMode::Ap | WifiMode::Auto) && self.wifi.ap_file.is_none() {
            return Err(invalid(
                "wifi.ap_file",
                None,
                "",
                "an access point needs wifi.ap_file (its name and passphrase, made by `blackbox firstboot --wifi-ap`)".into(),
            ));
        }
        if self.tap.listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(invalid(
                "tap.listen",
                Some("--tap"),
                &self.tap.listen.map(|a| a.to_string()).unwrap_or_default(),
                "the tap has no login: it listens on loopback only (127.0.0.1 or ::1)".into(),
            ));
        }
        Ok(())
    }
}

/// A path setting: empty or `none` means none.
fn optional_path(v: &str) -> Option<PathBuf> {
    match v.trim() {
        "" | "none" => None,
        p => Some(PathBuf::from(p)),
    }
}

/// What a config file says: its settings as (key, text) pairs in file
/// order, and each `[[cameras]]` entry's settings (keys as `camera.*`).
struct FileValues {
    values: Vec<(&'static str, String)>,
    cameras: Vec<Vec<(&'static str, String)>>,
}

/// The file's settings, each checked to be a known key; syntax errors and
/// unknown keys name their line.
fn file_values(path: &Path, body: &str) -> Result<FileValues, ConfigError> {
    use toml::de::{DeTable, DeValue};
    let at = |offset: usize, message: String| {
        let offset = offset.min(body.len());
        let line = body[..offset].matches('\n').count() + 1;
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            text: body.lines().nth(line - 1).unwrap_or("").trim().to_string(),
            message,
        }
    };
    let doc = DeTable::parse(body).map_err(|e| {
        at(
            e.span().map_or(0, |s| s.start),
            e.message().trim().to_string(),
        )
    })?;
    let mut out = FileValues {
        values: Vec::new(),
        cameras: Vec::new(),
    };
    for (section, table) in doc.get_ref() {
        if section.get_ref() == "cameras" {
            let DeValue::Array(entries) = table.get_ref() else {
                return Err(at(
                    section.span().start,
                    "cameras is a list: write each camera as a [[cameras]] table".into(),
                ));
            };
            for entry in entries {
                let DeValue::Table(t) = entry.get_ref() else {
                    return Err(at(
                        entry.span().start,
                        "each camera is a [[cameras]] table".into(),
                    ));
                };
                let mut pairs = Vec::new();
                for (key, value) in t {
                    let full = format!("camera.{}", key.get_ref());
                    let Some(field) = FIELDS.iter().find(|f| f.key == full) else {
                        let known: Vec<&str> = FIELDS
                            .iter()
                            .filter_map(|f| f.key.strip_prefix("camera."))
                            .collect();
                        return Err(at(
                            key.span().start,
                            format!(
                                "unknown key `{}` in [[cameras]]; expected one of {}",
                                key.get_ref(),
                                known.join(", ")
                            ),
                        ));
                    };
                    let text = value_text(&full, value.get_ref())
                        .map_err(|m| at(value.span().start, m))?;
                    pairs.push((field.key, text));
                }
                out.cameras.push(pairs);
            }
            continue;
        }
        let DeValue::Table(table) = table.get_ref() else {
            return Err(at(
                section.span().start,
                format!(
                    "`{}` must be inside a section such as [camera]",
                    section.get_ref()
                ),
            ));
        };
        for (key, value) in table {
            let full = format!("{}.{}", section.get_ref(), key.get_ref());
            let Some(field) = FIELDS.iter().find(|f| f.key == full) else {
                let known: Vec<&str> = FIELDS
                    .iter()
                    .filter_map(|f| f.key.strip_prefix(&format!("{}.", section.get_ref())))
                    .collect();
                let message = if known.is_empty() {
                    format!(
                        "unknown section [{}]; expected camera, [[cameras]], encode, http, tap, record, event, wifi, gps, impact or parking",
                        section.get_ref()
                    )
                } else {
                    format!(
                        "unknown key `{}` in [{}]; expected one of {}",
                        key.get_ref(),
                        section.get_ref(),
                        known.join(", ")
                    )
                };
                return Err(at(key.span().start, message));
            };
            let text = value_text(&full, value.get_ref()).map_err(|m| at(value.span().start, m))?;
            out.values.push((field.key, text));
        }
    }
    Ok(out)
}

/// A file value as the text a flag would give.
fn value_text(full: &str, value: &toml::de::DeValue<'_>) -> Result<String, String> {
    use toml::de::DeValue;
    let text = match value {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix()).map_or(digits, |n| n.to_string())
        }
        DeValue::Float(f) => f.as_str().replace('_', ""),
        DeValue::Boolean(b) => b.to_string(),
        // A list of strings is one value, comma-separated.
        DeValue::Array(items)
            if items
                .iter()
                .all(|i| matches!(i.get_ref(), DeValue::String(_))) =>
        {
            items
                .iter()
                .filter_map(|i| match i.get_ref() {
                    DeValue::String(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        _ => {
            return Err(format!(
                "`{full}` takes a string, a number, true/false or a list of strings"
            ));
        }
    };
    Ok(text)
}

fn invalid(
    field: &'static str,
    flag: Option<&'static str>,
    value: &str,
    reason: String,
) -> ConfigError {
    ConfigError::Invalid {
        field,
        flag,
        value: value.to_string(),
        reason,
    }
}

fn number(v: &str, min: i64, max: i64) -> Result<i64, String> {
    match v.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn decimal(v: &str, min: f64, max: f64) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from {min} to {max}")),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err("expected true or false (on/off)".into()),
    }
}

fn nonempty(v: &str) -> Result<String, String> {
    match v.trim() {
        "" => Err("must not be empty".into()),
        s => Ok(s.to_string()),
    }
}

fn address(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse::<SocketAddr>()
        .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080".to_string())
}

fn duration_at_least(v: &str, min: Duration) -> Result<Duration, String> {
    parse_duration(v).filter(|d| *d >= min).ok_or_else(|| {
        format!(
            "expected a duration of at least {} ms, such as \"2s\" or \"500ms\"",
            min.as_millis()
        )
    })
}

/// Parses `"1.5s"`, `"500ms"`, `"2m"` or a bare number of seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    let secs = num.trim().parse::<f64>().ok()? * scale;
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// An ISO 3166-1 alpha-2 code in upper case (what hostapd's `country_code`
/// and the kernel's regulatory domain take), or `None` for anything else;
/// "00", the world domain, is what no setting means and is not a country.
pub fn country_code(c: &str) -> Option<String> {
    let up = c.trim().to_ascii_uppercase();
    (up.len() == 2 && up.bytes().all(|b| b.is_ascii_uppercase())).then_some(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let mut o = Overrides::default();
        for (k, v) in pairs {
            o.set(k, Some(v.to_string()));
        }
        Config::load(None, &o)
    }

    fn field_of(r: Result<Config, ConfigError>) -> &'static str {
        match r {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn the_appliance_config_gives_the_gate_a_plain_healthz() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlay/etc/blackbox/blackbox.toml");
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.http.listen.port(), 443);
        assert_eq!(
            c.http.plain_health_addr(),
            Some("127.0.0.1:80".parse().unwrap())
        );
        // Without TLS, the listener itself; HTTPS alone leaves none.
        let plain = Config::default();
        assert_eq!(plain.http.plain_health_addr(), Some(plain.http.listen));
        let mut tls_only = c.clone();
        tls_only.http.redirect_listen = None;
        assert_eq!(tls_only.http.plain_health_addr(), None);
    }

    #[test]
    fn the_wifi_settings_are_checked() {
        let c = with(&[
            ("wifi.mode", "auto"),
            ("wifi.country", "de"),
            ("wifi.ap_file", "/data/blackbox/wifi-ap"),
        ])
        .unwrap();
        assert_eq!(c.wifi.mode, WifiMode::Auto);
        assert_eq!(c.wifi.country.as_deref(), Some("DE"));
        for (key, value) in [
            ("wifi.mode", "mesh"),
            ("wifi.country", "Germany"),
            ("wifi.interface", "wlan0\nx"),
        ] {
            assert_eq!(field_of(with(&[(key, value)])), key, "{value:?}");
        }
        assert_eq!(field_of(with(&[("wifi.mode", "ap")])), "wifi.ap_file");
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            Config::load(None, &Overrides::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn each_bad_value_names_its_field() {
        for (key, value) in [
            ("camera.size", "641x480"),
            ("camera.size", "0x480"),
            ("camera.size", "big"),
            ("camera.size", "4000x3000"),
            ("camera.fps", "0"),
            ("encode.quality", "101"),
            ("encode.quality", "0"),
            ("camera.source", "webcam9"),
            ("camera.pixel_format", "rgb"),
            ("http.listen", "nowhere"),
            ("tap.listen", "1.2.3"),
            ("record.sync_interval", "soon"),
            ("record.max_usage", "120%"),
        ] {
            assert_eq!(field_of(with(&[(key, value)])), key, "{key} = {value}");
        }
    }

    #[test]
    fn every_field_accepts_its_default_shape() {
        let cfg = with(&[
            ("record.sync_interval", "off"),
            ("camera.input", "current"),
            ("tap.listen", "off"),
            ("encode.workers", "0"),
            ("event.max_usage", "1GiB"),
        ])
        .unwrap();
        assert_eq!(cfg.record.sync_interval, None);
        assert_eq!(cfg.camera.input, None);
        assert_eq!(cfg.tap.listen, None);
        assert_eq!(cfg.encode.workers, default_workers());
        assert_eq!(cfg.event_budget(), Budget::Bytes(1 << 30));
        let cfg = with(&[("record.sync_interval", "0")]).unwrap();
        assert_eq!(cfg.record.sync_interval, Some(Duration::ZERO));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("blackbox-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[camera]\nsize = \"640x480\"\nfps = 15\n[encode]\nquality = 60\nworkers = 2\n[http]\nwrite_timeout = \"750ms\"\n[record]\nsegment_seconds = 0x10\n",
        )
        .unwrap();
        let mut o = Overrides::default();
        o.set("camera.fps", Some("25".into()));
        let cfg = Config::load(Some(&path), &o).unwrap();
        assert_eq!(cfg.camera.size, Size::new(640, 480));
        assert_eq!(cfg.camera.fps, 25);
        assert_eq!(cfg.encode.quality, 60);
        assert_eq!(cfg.encode.workers, 2);
        assert_eq!(cfg.http.write_timeout, Duration::from_millis(750));
        assert_eq!(cfg.record.segment_seconds, 16);

        std::fs::write(&path, "[camera]\nfsp = 15\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("fsp"), "{err}");
        assert!(
            err.to_string().contains("fps"),
            "lists the known keys: {err}"
        );

        std::fs::write(&path, "fps = 15\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 1, .. }), "{err}");

        std::fs::write(&path, "[camera]\nfps = [1, 2]\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err}");

        std::fs::write(&path, "[camera]\nfps = -3\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert_eq!(field_of(Err(err)), "camera.fps");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1e300s"), None);
    }

    #[test]
    fn budgets() {
        assert_eq!("80%".parse::<Budget>(), Ok(Budget::Percent(80.0)));
        assert_eq!("512MiB".parse::<Budget>(), Ok(Budget::Bytes(512 << 20)));
        assert_eq!("2 GiB".parse::<Budget>(), Ok(Budget::Bytes(2 << 30)));
        assert_eq!("4096".parse::<Budget>(), Ok(Budget::Bytes(4096)));
        assert!("lots".parse::<Budget>().is_err());
        assert!("120%".parse::<Budget>().is_err());
        assert!("NaNGiB".parse::<Budget>().is_err());
        assert_eq!(Budget::Percent(50.0).bytes(1000), 500);
    }

    fn parse(body: &str) -> Result<Config, ConfigError> {
        Config::from_text(Path::new("t.toml"), body, &Overrides::default())
    }

    fn camera_error(r: Result<Config, ConfigError>) -> String {
        match r {
            Err(e @ ConfigError::Camera { .. }) => e.to_string(),
            other => panic!("expected a camera error, got {other:?}"),
        }
    }

    #[test]
    fn one_camera_table_is_the_front_camera() {
        let c = parse("[camera]\nsize = \"640x480\"\n").unwrap();
        let cams = c.cameras();
        assert_eq!(cams.len(), 1);
        assert_eq!(cams[0].id, "front");
        assert_eq!(cams[0].size, Size::new(640, 480));
        assert!(cams[0].record);
        assert_eq!(cams[0].rotation, Rotation::None);
    }

    #[test]
    fn a_camera_list_starts_each_entry_from_the_camera_table() {
        let c = parse(
            "[camera]\nfps = 15\nsize = \"640x480\"\n\
             [[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"1280x720\"\n\
             [[cameras]]\nid = \"rear\"\nsource = \"v4l2\"\ndevice = \"/dev/video2\"\n\
             rotation = 180\nquality = 70\nrecord = false\npixel_format = \"yuyv\"\n",
        )
        .unwrap();
        let cams = c.cameras();
        assert_eq!(cams.len(), 2);
        assert_eq!(
            (cams[0].id.as_str(), cams[0].size, cams[0].fps),
            ("front", Size::new(1280, 720), 15)
        );
        assert_eq!(cams[1].id, "rear");
        assert_eq!(cams[1].size, Size::new(640, 480));
        assert_eq!(cams[1].device, "/dev/video2");
        assert_eq!(cams[1].rotation, Rotation::Half);
        assert_eq!(cams[1].quality_or(&c.encode), 70);
        assert_eq!(cams[0].quality_or(&c.encode), c.encode.quality);
        assert!(!cams[1].record);
    }

    #[test]
    fn each_broken_camera_list_names_the_camera_and_field() {
        let two = |a: &str, b: &str| parse(&format!("[[cameras]]\n{a}\n[[cameras]]\n{b}\n"));
        let e = camera_error(two(
            "id = \"front\"\nsource = \"testsrc\"",
            "id = \"front\"\nsource = \"testsrc\"",
        ));
        assert!(e.contains("\"front\"") && e.contains("camera.id"), "{e}");
        let e = camera_error(two(
            "id = \"front\"\nsource = \"v4l2\"\ndevice = \"/dev/video0\"",
            "id = \"rear\"\nsource = \"v4l2\"\ndevice = \"/dev/video0\"",
        ));
        assert!(
            e.contains("\"rear\"") && e.contains("camera.device") && e.contains("front"),
            "{e}"
        );
        let e = camera_error(two(
            "id = \"front\"\nsource = \"rpicam\"",
            "id = \"rear\"\nsource = \"rpicam\"",
        ));
        assert!(e.contains("\"rear\"") && e.contains("camera.index"), "{e}");
        // Two Pi cameras on their own connectors are fine.
        two(
            "id = \"front\"\nsource = \"rpicam\"",
            "id = \"rear\"\nsource = \"rpicam\"\nindex = 1",
        )
        .unwrap();
        let e = camera_error(two(
            "id = \"front\"\nsource = \"testsrc\"",
            "source = \"testsrc\"",
        ));
        assert!(
            e.contains("#2 of [[cameras]]") && e.contains("camera.id"),
            "{e}"
        );
        let e = camera_error(two("id = \"Front/1\"", "id = \"rear\""));
        assert!(e.contains("camera.id"), "{e}");
        let e = camera_error(two(
            "id = \"front\"\nsource = \"testsrc\"",
            "id = \"rear\"\nsource = \"auto\"",
        ));
        assert!(e.contains("camera.source"), "{e}");
        let e = camera_error(two(
            "id = \"front\"\nsource = \"testsrc\"",
            "id = \"rear\"\nsource = \"v4l2\"\npixel_format = \"mjpeg\"\nrotation = 180",
        ));
        assert!(e.contains("camera.rotation"), "{e}");
        let e = camera_error(two(
            "id = \"front\"\nsource = \"testsrc\"\nsize = \"641x480\"",
            "id = \"rear\"\nsource = \"testsrc\"",
        ));
        assert!(e.contains("\"front\"") && e.contains("camera.size"), "{e}");
        // An unknown key names its line, like any other.
        match two("id = \"front\"\nlens = 3", "id = \"rear\"") {
            Err(ConfigError::Parse { line, message, .. }) => {
                assert_eq!(line, 3);
                assert!(message.contains("[[cameras]]"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Every one of them is one line.
        let e = camera_error(two(
            "id = \"a\"\nsource = \"testsrc\"",
            "id = \"a\"\nsource = \"testsrc\"",
        ));
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
