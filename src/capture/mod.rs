//! Where frames come from. A [`Source`] is owned by the capture thread and
//! lends it one raw frame at a time; this module defines the trait, the
//! errors every source reports, and [`open`], which builds the configured one.
//!
//! Sources: [`v4l2`] (USB/UVC cameras and other V4L2 devices), [`rpicam`]
//! (the Pi 5 camera through `rpicam-vid`) and [`testsrc`] (a synthetic camera
//! for tests and demos).

pub mod rpicam;
pub mod testsrc;
pub mod v4l2;

use std::fmt;
use std::time::Duration;

use crate::config::CameraConfig;
use crate::frame::{PixelFormat, RawFrame, Size};

pub use crate::config::SourceKind;

/// What a source delivers, as negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub kind: SourceKind,
    /// Device path or other name of the source, for status pages.
    pub device: String,
    pub format: PixelFormat,
    pub size: Size,
    pub fps: u32,
}

/// Why a source could not deliver a frame. Every one of these makes the
/// capture thread close the source and open it again later.
#[derive(Debug)]
pub enum CaptureError {
    /// The source cannot do what the configuration asks.
    Unsupported(String),
    /// No frame arrived in time.
    Timeout(Duration),
    /// The device or child process failed.
    Io(std::io::Error),
    /// The device went away or the child exited.
    Gone(String),
    /// One frame was bad (flagged by the driver, empty, truncated); the
    /// source is fine and the next frame may be good. `seq` is the bad
    /// frame's sequence number when known, so it is not also counted as a gap.
    BadFrame { seq: Option<u64>, reason: String },
}

impl CaptureError {
    /// Whether the source must be closed and reopened.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::BadFrame { .. })
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
            Self::Timeout(d) => write!(f, "no frame for {} ms", d.as_millis()),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Gone(m) => write!(f, "source gone: {m}"),
            Self::BadFrame { reason, .. } => write!(f, "bad frame: {reason}"),
        }
    }
}

impl std::error::Error for CaptureError {}

impl From<std::io::Error> for CaptureError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A camera, as the capture thread sees it.
pub trait Source: Send {
    /// What the source delivers.
    fn info(&self) -> SourceInfo;

    /// Blocks until the next frame and lends it. The frame's bytes are valid
    /// until the next call; a source waits at most about a second before
    /// returning [`CaptureError::Timeout`], so the caller can check for
    /// shutdown.
    fn next_frame(&mut self) -> Result<RawFrame<'_>, CaptureError>;
}

/// V4L2 drivers whose nodes belong to libcamera or to the Pi's hardware
/// codecs: never a camera of ours, whatever formats they list.
const NOT_CAMERAS: &[&str] = &[
    "rp1-cfe",
    "unicam",
    "pispbe",
    "bcm2835-isp",
    "bcm2835-codec",
    "rpi-hevc-dec",
];

/// Every camera this machine has, for `--source auto` (once, at start-up):
/// each Pi camera `rpicam-vid --list-cameras` names, then each V4L2 device
/// that can stream a format blackbox uses; the test pattern (at a size it
/// can draw) when there is none. The first keeps `base`'s id, the second is
/// `rear`, then `camera3` and on; everything else comes from `base`.
pub fn discover(base: &CameraConfig) -> Vec<CameraConfig> {
    let mut found = Vec::new();
    for index in rpicam::list_cameras(&base.rpicam_path) {
        let mut c = base.clone();
        c.source = SourceKind::Rpicam;
        c.index = index;
        found.push(c);
    }
    for path in v4l2::video_devices() {
        let Ok(report) = v4l2::describe(&path) else {
            continue;
        };
        let usable = report.capture
            && report.streaming
            && !NOT_CAMERAS.contains(&report.driver.as_str())
            && report.formats.iter().any(|f| f.blackbox_name.is_some());
        if usable {
            let mut c = base.clone();
            c.source = SourceKind::V4l2;
            c.device = path.display().to_string();
            found.push(c);
        }
    }
    if found.is_empty() {
        let mut c = base.clone();
        c.source = SourceKind::Testsrc;
        let (min, max) = (
            crate::config::TESTSRC_MIN_SIZE,
            crate::config::TESTSRC_MAX_SIZE,
        );
        c.size = crate::frame::Size::new(
            base.size.width.clamp(min.width, max.width) / 2 * 2,
            base.size.height.clamp(min.height, max.height) / 2 * 2,
        );
        found.push(c);
    }
    for (n, c) in found.iter_mut().enumerate() {
        match n {
            0 => {}
            1 => c.id = "rear".into(),
            n => c.id = format!("camera{}", n + 1),
        }
    }
    found
}

/// What [`discover`] chose for a camera, for the log.
pub fn describe_choice(c: &CameraConfig) -> String {
    match c.source {
        SourceKind::Rpicam => format!(
            "the Pi camera {} (rpicam-vid --camera {})",
            c.index, c.index
        ),
        SourceKind::V4l2 => format!("the V4L2 camera {}", c.device),
        _ => "the test pattern (no camera found)".into(),
    }
}

/// Opens the source the configuration names.
pub fn open(cfg: &CameraConfig, quality: u8) -> Result<Box<dyn Source>, CaptureError> {
    match cfg.source {
        SourceKind::Auto => match discover(cfg).first() {
            Some(c) => open(c, quality),
            None => Err(CaptureError::Unsupported("no camera found".into())),
        },
        SourceKind::Testsrc => Ok(Box::new(testsrc::TestSource::new(
            cfg.size,
            cfg.fps,
            cfg.pixel_format.unwrap_or(PixelFormat::Yuyv),
            quality,
        )?)),
        SourceKind::V4l2 => Ok(Box::new(v4l2::V4l2Source::open(&v4l2::V4l2Request {
            device: cfg.device.clone(),
            input: cfg.input,
            size: cfg.size,
            fps: cfg.fps,
            format: cfg.pixel_format,
            raw_first: cfg.rotation == crate::config::Rotation::Half,
            buffers: cfg.buffers,
            timeout: cfg.timeout,
        })?)),
        SourceKind::Rpicam => Ok(Box::new(rpicam::RpicamSource::spawn(
            &rpicam::RpicamRequest {
                program: cfg.rpicam_path.clone(),
                camera: cfg.index,
                rotate: cfg.rotation == crate::config::Rotation::Half,
                size: cfg.size,
                fps: cfg.fps,
                mjpeg: cfg.pixel_format == Some(PixelFormat::Mjpeg),
                quality,
                timeout: cfg.timeout,
            },
        )?)),
    }
}

/// Whether the configured camera looks present right now, for waking the
/// reopen back-off early: a device node that (re)appears. `None` when the
/// source has no such sign.
pub fn present(cfg: &CameraConfig) -> Option<bool> {
    match cfg.source {
        SourceKind::V4l2 => Some(std::path::Path::new(&cfg.device).exists()),
        _ => None,
    }
}
