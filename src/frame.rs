//! Frames as they move through blackbox: the pixel formats we accept, the
//! borrowed raw frame a source hands to the capture thread, and the encoded,
//! reference-counted [`Frame`] that every consumer shares.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::clock::Timestamp;

/// Pixel formats a source can deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (V4L2 `YUYV`).
    Yuyv,
    /// 4:2:0, a Y plane then one plane of interleaved U/V (V4L2 `NV12`).
    Nv12,
    /// 4:2:0, Y, U and V planes (V4L2 `YU12`, also called I420).
    Yu12,
    /// Complete JPEG images, passed through after a structural check.
    Mjpeg,
}

impl PixelFormat {
    /// Every format, in the order we prefer them when a camera offers several.
    pub const ALL: [PixelFormat; 4] = [Self::Mjpeg, Self::Yuyv, Self::Nv12, Self::Yu12];

    pub fn name(self) -> &'static str {
        match self {
            Self::Yuyv => "yuyv",
            Self::Nv12 => "nv12",
            Self::Yu12 => "yu12",
            Self::Mjpeg => "mjpeg",
        }
    }

    /// True for formats that must be encoded (everything but MJPEG).
    pub fn is_raw(self) -> bool {
        self != Self::Mjpeg
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "yuyv" | "yuy2" => Ok(Self::Yuyv),
            "nv12" => Ok(Self::Nv12),
            "yu12" | "i420" => Ok(Self::Yu12),
            "mjpeg" | "mjpg" | "jpeg" => Ok(Self::Mjpeg),
            _ => Err("expected one of yuyv, nv12, yu12, mjpeg".into()),
        }
    }
}

/// A frame size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn pixels(self) -> usize {
        self.width as usize * self.height as usize
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = String;
    /// Parses `WIDTHxHEIGHT`, e.g. `1280x720`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| "expected WIDTHxHEIGHT, e.g. 1280x720".to_string())?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| "expected WIDTHxHEIGHT, e.g. 1280x720".to_string())
        };
        Ok(Self::new(parse(w)?, parse(h)?))
    }
}

/// A raw frame lent by a source. The bytes belong to the source (for V4L2, a
/// driver buffer) and are valid only until the next call into the source, so
/// the capture thread consumes them (converts or copies) before asking again.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    pub data: &'a [u8],
    pub format: PixelFormat,
    pub size: Size,
    /// Bytes per line of the first plane (at least the packed width).
    pub stride: usize,
    /// The source's sequence number; a gap means the source dropped frames.
    pub seq: u64,
    pub captured: Timestamp,
}

/// An encoded frame, shared by every consumer. Cloning the `Arc<Frame>` or
/// the `Bytes` inside never copies the JPEG.
#[derive(Clone, Debug)]
pub struct Frame {
    pub jpeg: Bytes,
    pub seq: u64,
    pub captured: Timestamp,
    pub size: Size,
    /// What the source delivered before encoding (MJPEG for pass-through).
    pub source_format: PixelFormat,
    /// A "no signal" stand-in, not a picture from the camera.
    pub placeholder: bool,
    /// What the motion detector saw, when the camera watches for motion
    /// (parked): `Some(true)` something moved.
    pub motion: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_formats() {
        assert_eq!("1280x720".parse::<Size>(), Ok(Size::new(1280, 720)));
        assert!("1280".parse::<Size>().is_err());
        assert!("axb".parse::<Size>().is_err());
        assert_eq!("NV12".parse::<PixelFormat>(), Ok(PixelFormat::Nv12));
        assert!("rgb".parse::<PixelFormat>().is_err());
    }
}
