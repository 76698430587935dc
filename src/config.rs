//! The one typed [`Config`]: defaults, the TOML file, and command-line flags
//! on top, validated once at start-up.
//!
//! Every value, whether from the file or a flag, goes through the same
//! validation as text, so an error reads the same either way and always names
//! the field (`camera.size`) and its flag (`--size`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::capture::{SourceKind, testsrc};
use crate::frame::{PixelFormat, Size};
use crate::record::store::Budget;

/// Where frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraConfig {
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
    /// fdatasync at least this often; zero: after every frame.
    pub sync_interval: Duration,
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

impl Config {
    /// The events' quota as configured or derived from the recording budget.
    pub fn event_budget(&self) -> Budget {
        self.event.max_usage.unwrap_or(match self.record.max_usage {
            Budget::Percent(p) => Budget::Percent(p * 0.3),
            Budget::Bytes(b) => Budget::Bytes(b * 3 / 10),
        })
    }
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub camera: CameraConfig,
    pub encode: EncodeConfig,
    pub http: HttpConfig,
    pub tap: TapConfig,
    pub record: RecordConfig,
    pub event: EventConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            camera: CameraConfig {
                source: SourceKind::Testsrc,
                device: "/dev/video0".into(),
                input: None,
                size: Size::new(1280, 720),
                fps: 30,
                pixel_format: None,
                buffers: 4,
                timeout: Duration::from_secs(2),
                rpicam_path: "rpicam-vid".into(),
            },
            encode: EncodeConfig {
                quality: 80,
                workers: crate::pipeline::default_workers(),
            },
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                write_timeout: Duration::from_secs(5),
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
                sync_interval: Duration::from_secs(1),
                max_usage: Budget::Percent(80.0),
                min_free: Budget::Percent(5.0),
                queue_frames: 90,
            },
            event: EventConfig {
                pre_seconds: 10,
                post_seconds: 10,
                max_usage: None,
            },
        }
    }
}

/// Values given on the command line; each overrides the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub source: Option<String>,
    pub device: Option<String>,
    pub input: Option<String>,
    pub size: Option<String>,
    pub fps: Option<String>,
    pub pixel_format: Option<String>,
    pub quality: Option<String>,
    pub listen: Option<String>,
    pub tap: Option<String>,
    pub data: Option<String>,
    pub record: Option<String>,
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

/// The file's shape. Values are kept loose (string or number) so that the
/// shared validation, not the TOML decoder, explains what is wrong.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    camera: FileCamera,
    #[serde(default)]
    encode: FileEncode,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    tap: FileTap,
    #[serde(default)]
    record: FileRecord,
    #[serde(default)]
    event: FileEvent,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecord {
    enabled: Option<toml::Value>,
    dir: Option<toml::Value>,
    autostart: Option<toml::Value>,
    segment_seconds: Option<toml::Value>,
    sync_interval: Option<toml::Value>,
    max_usage: Option<toml::Value>,
    min_free: Option<toml::Value>,
    queue_frames: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    pre_seconds: Option<toml::Value>,
    post_seconds: Option<toml::Value>,
    max_usage: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCamera {
    source: Option<toml::Value>,
    device: Option<toml::Value>,
    input: Option<toml::Value>,
    size: Option<toml::Value>,
    fps: Option<toml::Value>,
    pixel_format: Option<toml::Value>,
    buffers: Option<toml::Value>,
    timeout: Option<toml::Value>,
    rpicam_path: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEncode {
    quality: Option<toml::Value>,
    workers: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    listen: Option<toml::Value>,
    write_timeout: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTap {
    listen: Option<toml::Value>,
    queue_frames: Option<toml::Value>,
}

fn text(v: Option<toml::Value>) -> Option<String> {
    v.map(|v| match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    })
}

impl Config {
    /// Defaults, then `file` if given, then `overrides`; validated.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        let mut cfg = Config::default();
        let pick = |flag: &Option<String>, file: Option<toml::Value>| flag.clone().or(text(file));

        if let Some(v) = pick(&overrides.source, parsed.camera.source) {
            cfg.camera.source = SourceKind::parse(v.trim()).ok_or_else(|| {
                invalid(
                    "camera.source",
                    Some("--source"),
                    &v,
                    format!("expected one of {}", SourceKind::NAMES),
                )
            })?;
        }
        if let Some(v) = pick(&overrides.device, parsed.camera.device) {
            if v.trim().is_empty() {
                return Err(invalid(
                    "camera.device",
                    Some("--device"),
                    &v,
                    "must not be empty".into(),
                ));
            }
            cfg.camera.device = v.trim().to_string();
        }
        if let Some(v) = pick(&overrides.input, parsed.camera.input) {
            cfg.camera.input = match v.trim() {
                "" | "current" => None,
                n => Some(
                    number(n, 0, 255)
                        .map_err(|e| invalid("camera.input", Some("--input"), &v, e))?
                        as u32,
                ),
            };
        }
        if let Some(v) = text(parsed.camera.buffers) {
            cfg.camera.buffers =
                number(&v, 2, 32).map_err(|e| invalid("camera.buffers", None, &v, e))? as u32;
        }
        if let Some(v) = text(parsed.camera.timeout) {
            cfg.camera.timeout = parse_duration(&v)
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| {
                    invalid(
                        "camera.timeout",
                        None,
                        &v,
                        "expected a duration of at least 100ms, such as \"2s\"".into(),
                    )
                })?;
        }
        if let Some(v) = text(parsed.camera.rpicam_path) {
            if v.trim().is_empty() {
                return Err(invalid(
                    "camera.rpicam_path",
                    None,
                    &v,
                    "must not be empty".into(),
                ));
            }
            cfg.camera.rpicam_path = v.trim().to_string();
        }
        if let Some(v) = pick(&overrides.size, parsed.camera.size) {
            cfg.camera.size = v
                .parse::<Size>()
                .map_err(|e| invalid("camera.size", Some("--size"), &v, e))?;
        }
        if let Some(v) = pick(&overrides.fps, parsed.camera.fps) {
            cfg.camera.fps =
                number(&v, 1, 240).map_err(|e| invalid("camera.fps", Some("--fps"), &v, e))? as u32;
        }
        if let Some(v) = pick(&overrides.pixel_format, parsed.camera.pixel_format) {
            cfg.camera.pixel_format = match v.trim() {
                "auto" => None,
                f => Some(f.parse::<PixelFormat>().map_err(|e| {
                    invalid(
                        "camera.pixel_format",
                        Some("--pixel-format"),
                        &v,
                        format!("{e}, or auto"),
                    )
                })?),
            };
        }
        if let Some(v) = pick(&overrides.quality, parsed.encode.quality) {
            cfg.encode.quality = number(&v, 1, 100)
                .map_err(|e| invalid("encode.quality", Some("--quality"), &v, e))?
                as u8;
        }
        if let Some(v) = text(parsed.encode.workers) {
            let n = number(&v, 0, 16).map_err(|e| invalid("encode.workers", None, &v, e))? as usize;
            cfg.encode.workers = if n == 0 {
                crate::pipeline::default_workers()
            } else {
                n
            };
        }
        if let Some(v) = pick(&overrides.listen, parsed.http.listen) {
            cfg.http.listen =
                address(&v).map_err(|e| invalid("http.listen", Some("--listen"), &v, e))?;
        }
        if let Some(v) = text(parsed.http.write_timeout) {
            cfg.http.write_timeout =
                parse_duration(&v).filter(|d| !d.is_zero()).ok_or_else(|| {
                    invalid(
                        "http.write_timeout",
                        None,
                        &v,
                        "expected a duration such as \"5s\" or \"500ms\"".into(),
                    )
                })?;
        }
        if let Some(v) = pick(&overrides.tap, parsed.tap.listen) {
            cfg.tap.listen = match v.trim() {
                "" | "off" | "none" => None,
                addr => {
                    Some(address(addr).map_err(|e| invalid("tap.listen", Some("--tap"), &v, e))?)
                }
            };
        }
        if let Some(v) = text(parsed.tap.queue_frames) {
            cfg.tap.queue_frames = number(&v, 1, 10_000)
                .map_err(|e| invalid("tap.queue_frames", None, &v, e))?
                as usize;
        }
        let r = parsed.record;
        if let Some(v) = pick(&overrides.record, r.enabled) {
            cfg.record.enabled =
                boolean(&v).map_err(|e| invalid("record.enabled", Some("--record"), &v, e))?;
        }
        if let Some(v) = pick(&overrides.data, r.dir) {
            if v.trim().is_empty() {
                return Err(invalid(
                    "record.dir",
                    Some("--data"),
                    &v,
                    "must not be empty".into(),
                ));
            }
            cfg.record.dir = PathBuf::from(v.trim());
        }
        if let Some(v) = text(r.autostart) {
            cfg.record.autostart =
                boolean(&v).map_err(|e| invalid("record.autostart", None, &v, e))?;
        }
        if let Some(v) = text(r.segment_seconds) {
            cfg.record.segment_seconds = number(&v, 1, 3600)
                .map_err(|e| invalid("record.segment_seconds", None, &v, e))?
                as u64;
        }
        if let Some(v) = text(r.sync_interval) {
            cfg.record.sync_interval = match v.trim() {
                // No explicit syncs: the kernel writes back when it likes.
                "off" | "never" => Some(Duration::from_secs(100 * 365 * 86_400)),
                other => parse_duration(other),
            }
            .ok_or_else(|| {
                invalid(
                    "record.sync_interval",
                    None,
                    &v,
                    "expected a duration such as \"1s\", or \"0\" for every frame".into(),
                )
            })?;
        }
        if let Some(v) = text(r.max_usage) {
            cfg.record.max_usage = v
                .parse()
                .map_err(|e| invalid("record.max_usage", None, &v, e))?;
        }
        if let Some(v) = text(r.min_free) {
            cfg.record.min_free = v
                .parse()
                .map_err(|e| invalid("record.min_free", None, &v, e))?;
        }
        if let Some(v) = text(r.queue_frames) {
            cfg.record.queue_frames = number(&v, 1, 10_000)
                .map_err(|e| invalid("record.queue_frames", None, &v, e))?
                as usize;
        }
        let e = parsed.event;
        if let Some(v) = text(e.pre_seconds) {
            cfg.event.pre_seconds = number(&v, 0, 3600)
                .map_err(|er| invalid("event.pre_seconds", None, &v, er))?
                as u64;
        }
        if let Some(v) = text(e.post_seconds) {
            cfg.event.post_seconds = number(&v, 0, 3600)
                .map_err(|er| invalid("event.post_seconds", None, &v, er))?
                as u64;
        }
        if let Some(v) = text(e.max_usage) {
            cfg.event.max_usage = Some(
                v.parse()
                    .map_err(|er| invalid("event.max_usage", None, &v, er))?,
            );
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the rules that involve more than one field.
    fn validate(&self) -> Result<(), ConfigError> {
        let s = self.camera.size;
        let shown = s.to_string();
        if s.width == 0 || s.height == 0 {
            return Err(invalid(
                "camera.size",
                Some("--size"),
                &shown,
                "width and height must not be zero".into(),
            ));
        }
        if s.width % 2 == 1 || s.height % 2 == 1 {
            return Err(invalid(
                "camera.size",
                Some("--size"),
                &shown,
                "width and height must be even".into(),
            ));
        }
        if self.camera.source == SourceKind::Testsrc {
            let (min, max) = (testsrc::MIN_SIZE, testsrc::MAX_SIZE);
            if s.width < min.width
                || s.height < min.height
                || s.width > max.width
                || s.height > max.height
            {
                return Err(invalid(
                    "camera.size",
                    Some("--size"),
                    &shown,
                    format!("the test pattern renders sizes from {min} to {max}"),
                ));
            }
        }
        Ok(())
    }
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

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err("expected true or false (on/off)".into()),
    }
}

fn address(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse::<SocketAddr>()
        .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080".to_string())
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

fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let body = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    toml::from_str::<FileConfig>(&body).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0).min(body.len());
        let line = body[..offset].matches('\n').count() + 1;
        let text = body.lines().nth(line - 1).unwrap_or("").trim().to_string();
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            text,
            message: e.message().trim().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Overrides)) -> Result<Config, ConfigError> {
        let mut o = Overrides::default();
        f(&mut o);
        Config::load(None, &o)
    }

    fn field_of(r: Result<Config, ConfigError>) -> &'static str {
        match r {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
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
        assert_eq!(
            field_of(with(|o| o.size = Some("641x480".into()))),
            "camera.size"
        );
        assert_eq!(
            field_of(with(|o| o.size = Some("0x480".into()))),
            "camera.size"
        );
        assert_eq!(
            field_of(with(|o| o.size = Some("big".into()))),
            "camera.size"
        );
        assert_eq!(field_of(with(|o| o.fps = Some("0".into()))), "camera.fps");
        assert_eq!(
            field_of(with(|o| o.quality = Some("101".into()))),
            "encode.quality"
        );
        assert_eq!(
            field_of(with(|o| o.quality = Some("0".into()))),
            "encode.quality"
        );
        assert_eq!(
            field_of(with(|o| o.source = Some("webcam9".into()))),
            "camera.source"
        );
        assert_eq!(
            field_of(with(|o| o.pixel_format = Some("rgb".into()))),
            "camera.pixel_format"
        );
        assert_eq!(
            field_of(with(|o| o.listen = Some("nowhere".into()))),
            "http.listen"
        );
        assert_eq!(
            field_of(with(|o| o.tap = Some("1.2.3".into()))),
            "tap.listen"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("blackbox-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[camera]\nsize = \"640x480\"\nfps = 15\n[encode]\nquality = 60\nworkers = 2\n[http]\nwrite_timeout = \"750ms\"\n",
        )
        .unwrap();
        let o = Overrides {
            fps: Some("25".into()),
            ..Overrides::default()
        };
        let cfg = Config::load(Some(&path), &o).unwrap();
        assert_eq!(cfg.camera.size, Size::new(640, 480));
        assert_eq!(cfg.camera.fps, 25);
        assert_eq!(cfg.encode.quality, 60);
        assert_eq!(cfg.encode.workers, 2);
        assert_eq!(cfg.http.write_timeout, Duration::from_millis(750));

        std::fs::write(&path, "[camera]\nfsp = 15\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("fsp"), "{err}");

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
    }
}
