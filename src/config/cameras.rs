//! The rules for cameras: what an id may be, the sizes a camera may ask
//! for, and the `[[cameras]]` list as a whole (no two cameras with one id,
//! one V4L2 device or one Pi camera), each broken rule a one-line error that
//! names the camera and the field.

use super::{CameraConfig, ConfigError, Rotation, SourceKind, TESTSRC_MAX_SIZE, TESTSRC_MIN_SIZE};
use crate::frame::PixelFormat;

/// Longest camera id: it is part of every file name.
pub const MAX_ID: usize = 16;

/// A camera id: 1 to 16 of `a-z`, `0-9`, `_`, `-`, starting with a letter
/// (it goes into paths, file names and URLs as it is).
pub fn check_id(v: &str) -> Result<String, String> {
    let id = v.trim();
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(id.to_string())
    } else {
        Err(format!(
            "an id is 1 to {MAX_ID} of a-z, 0-9, _ and -, starting with a letter (front, rear)"
        ))
    }
}

/// A camera by its id, or by its place in the list while it has none.
fn name(n: usize, id: &str) -> String {
    if id.is_empty() {
        format!("#{} of [[cameras]]", n + 1)
    } else {
        format!("{id:?}")
    }
}

/// The error for setting `key` of the `n`th camera to `value`.
pub fn invalid(n: usize, id: &str, key: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Camera {
        camera: name(n, id),
        field: key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Even, non-zero, and within what the test pattern draws if it is one.
pub fn check_size(c: &CameraConfig) -> Result<(), String> {
    let s = c.size;
    if s.width == 0 || s.height == 0 {
        return Err("width and height must not be zero".into());
    }
    if s.width % 2 == 1 || s.height % 2 == 1 {
        return Err("width and height must be even".into());
    }
    let (min, max) = (TESTSRC_MIN_SIZE, TESTSRC_MAX_SIZE);
    if c.source == SourceKind::Testsrc
        && (s.width < min.width
            || s.height < min.height
            || s.width > max.width
            || s.height > max.height)
    {
        return Err(format!(
            "the test pattern renders sizes from {min} to {max}"
        ));
    }
    Ok(())
}

/// A camera's JPEGs pass through untouched: turning them would cost a
/// decode and an encode per frame, so MJPEG and a rotation do not mix.
pub fn check_rotation(c: &CameraConfig) -> Result<(), String> {
    if c.rotation == Rotation::Half && c.pixel_format == Some(PixelFormat::Mjpeg) {
        return Err(
            "MJPEG frames pass through as the camera sent them: choose a raw pixel_format (yuyv, nv12) to turn them"
                .into(),
        );
    }
    Ok(())
}

/// Every camera of the list on its own, then the clashes between them.
pub fn check_list(list: &[CameraConfig]) -> Result<(), ConfigError> {
    for (n, c) in list.iter().enumerate() {
        if c.id.is_empty() {
            return Err(invalid(n, "", "camera.id", "", "every camera needs an id"));
        }
        check_size(c).map_err(|r| invalid(n, &c.id, "camera.size", &c.size.to_string(), &r))?;
        check_rotation(c).map_err(|r| invalid(n, &c.id, "camera.rotation", "180", &r))?;
        if c.source == SourceKind::Auto {
            return Err(invalid(
                n,
                &c.id,
                "camera.source",
                "auto",
                "each camera of a list names its source (testsrc, v4l2, rpicam); `auto` finds every camera when there is no list",
            ));
        }
        for other in &list[..n] {
            if other.id == c.id {
                return Err(invalid(
                    n,
                    &c.id,
                    "camera.id",
                    &c.id,
                    "two cameras have this id",
                ));
            }
            if c.source == SourceKind::V4l2
                && other.source == SourceKind::V4l2
                && other.device == c.device
            {
                return Err(invalid(
                    n,
                    &c.id,
                    "camera.device",
                    &c.device,
                    &format!("camera {:?} uses this device too", other.id),
                ));
            }
            if c.source == SourceKind::Rpicam
                && other.source == SourceKind::Rpicam
                && other.index == c.index
            {
                return Err(invalid(
                    n,
                    &c.id,
                    "camera.index",
                    &c.index.to_string(),
                    &format!("camera {:?} is this Pi camera too", other.id),
                ));
            }
        }
    }
    Ok(())
}
