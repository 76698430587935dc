//! Where frames come from. A [`Source`] is owned by the capture thread and
//! lends it one raw frame at a time; this module defines the trait, the
//! errors every source reports, and [`open`], which builds the configured one.
//!
//! Sources: [`testsrc`] (a synthetic camera for tests and demos). V4L2 devices
//! and `rpicam-vid` plug in behind the same trait.

pub mod testsrc;

use std::fmt;
use std::time::Duration;

use crate::config::CameraConfig;
use crate::frame::{PixelFormat, RawFrame, Size};

/// The kinds of source blackbox can capture from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The built-in test pattern.
    Testsrc,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Testsrc => "testsrc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "testsrc" => Some(Self::Testsrc),
            _ => None,
        }
    }

    /// The names accepted by [`SourceKind::parse`], for error messages.
    pub const NAMES: &'static str = "testsrc";
}

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
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
            Self::Timeout(d) => write!(f, "no frame for {} ms", d.as_millis()),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Gone(m) => write!(f, "source gone: {m}"),
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

/// Opens the source the configuration names.
pub fn open(cfg: &CameraConfig, quality: u8) -> Result<Box<dyn Source>, CaptureError> {
    match cfg.source {
        SourceKind::Testsrc => Ok(Box::new(testsrc::TestSource::new(
            cfg.size,
            cfg.fps,
            cfg.pixel_format,
            quality,
        )?)),
    }
}
