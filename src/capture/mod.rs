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

/// Resolves [`SourceKind::Auto`] once, at start-up: `rpicam-vid` if it
/// lists a camera, else the first V4L2 device that can stream a format
/// blackbox uses, else the test pattern (at a size it can draw). Other kinds
/// are returned unchanged.
pub fn detect(cfg: &CameraConfig) -> CameraConfig {
    let mut out = cfg.clone();
    if cfg.source != SourceKind::Auto {
        return out;
    }
    if rpicam::lists_a_camera(&cfg.rpicam_path) {
        out.source = SourceKind::Rpicam;
        return out;
    }
    for path in v4l2::video_devices() {
        let Ok(report) = v4l2::describe(&path) else {
            continue;
        };
        let usable = report.capture
            && report.streaming
            && report.formats.iter().any(|f| f.blackbox_name.is_some());
        if usable {
            out.source = SourceKind::V4l2;
            out.device = path.display().to_string();
            return out;
        }
    }
    out.source = SourceKind::Testsrc;
    let (min, max) = (
        crate::config::TESTSRC_MIN_SIZE,
        crate::config::TESTSRC_MAX_SIZE,
    );
    out.size = crate::frame::Size::new(
        cfg.size.width.clamp(min.width, max.width) / 2 * 2,
        cfg.size.height.clamp(min.height, max.height) / 2 * 2,
    );
    out
}

/// Opens the source the configuration names.
pub fn open(cfg: &CameraConfig, quality: u8) -> Result<Box<dyn Source>, CaptureError> {
    match cfg.source {
        SourceKind::Auto => open(&detect(cfg), quality),
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
            buffers: cfg.buffers,
            timeout: cfg.timeout,
        })?)),
        SourceKind::Rpicam => Ok(Box::new(rpicam::RpicamSource::spawn(
            &rpicam::RpicamRequest {
                program: cfg.rpicam_path.clone(),
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
