//! JPEG in and out of blackbox's hands: compressing a padded [`I420`] image
//! with mozjpeg, and the structural check a camera's own JPEG must pass before
//! it is passed through.
//!
//! # Implementation
//! mozjpeg is set to its fastest profile (libjpeg-turbo's settings, no
//! trellis or progressive scans) and fed planar 4:2:0 data through its raw
//! interface, which skips colour conversion and downsampling entirely. libjpeg
//! reports errors by unwinding through the C code; every call is wrapped in
//! `catch_unwind`, and a panic becomes [`EncodeError::Panicked`] so the caller
//! can count it and drop the frame.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::convert::I420;
use crate::frame::Size;

/// The smallest JPEG a camera could plausibly send; anything shorter is a
/// truncated or empty buffer (UVC cameras do send those).
pub const MIN_JPEG_BYTES: usize = 128;

/// Why a frame could not be encoded.
#[derive(Debug)]
pub enum EncodeError {
    /// libjpeg (or the binding's own checks) panicked; the message is kept.
    Panicked(String),
    /// The encoder's writer failed (memory only, so practically never).
    Io(std::io::Error),
    /// The encoder ignored some of the image rows.
    Incomplete,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked(m) => write!(f, "mozjpeg failed: {m}"),
            Self::Io(e) => write!(f, "mozjpeg output failed: {e}"),
            Self::Incomplete => f.write_str("mozjpeg did not take every row"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes an I420 image at `quality` (1..=100) to a baseline JPEG.
pub fn encode_i420(img: &I420, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let (y, u, v) = img.planes();
    let size = img.size();
    encode_planes(
        [y, u, v],
        size.width as usize,
        size.height as usize,
        quality,
    )
}

/// Encodes raw 4:2:0 planes laid out as [`I420`] describes. Public so that
/// tests can hand it inconsistent planes and see an error, not an abort.
pub fn encode_planes(
    planes: [&[u8]; 3],
    width: usize,
    height: usize,
    quality: u8,
) -> Result<Vec<u8>, EncodeError> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_YCbCr);
        comp.set_fastest_defaults();
        comp.set_raw_data_in(true);
        comp.set_size(width, height);
        comp.set_quality(f32::from(quality));
        comp.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        // Rough size guess: about 1.5 bits per pixel at usual qualities.
        let mut started = comp.start_compress(Vec::with_capacity(width * height / 5))?;
        if !started.write_raw_data(&planes) {
            return Ok(None);
        }
        started.finish().map(Some)
    }));
    match result {
        Ok(Ok(Some(jpeg))) => Ok(jpeg),
        Ok(Ok(None)) => Err(EncodeError::Incomplete),
        Ok(Err(e)) => Err(EncodeError::Io(e)),
        Err(panic) => Err(EncodeError::Panicked(panic_message(panic.as_ref()))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Why a camera's JPEG was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegCheckError {
    TooShort(usize),
    NoStartOfImage,
    NoEndOfImage,
}

impl fmt::Display for JpegCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "JPEG frame of {n} bytes is too short"),
            Self::NoStartOfImage => f.write_str("JPEG frame does not start with SOI"),
            Self::NoEndOfImage => f.write_str("JPEG frame has no EOI (truncated)"),
        }
    }
}

impl std::error::Error for JpegCheckError {}

/// Checks that `data` looks like one whole JPEG: SOI and a marker at the
/// start, EOI at the end. Some UVC cameras pad the buffer after EOI with
/// zeros; the returned slice is the frame without that padding.
pub fn check_jpeg(data: &[u8]) -> Result<&[u8], JpegCheckError> {
    if data.len() < MIN_JPEG_BYTES {
        return Err(JpegCheckError::TooShort(data.len()));
    }
    if data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF {
        return Err(JpegCheckError::NoStartOfImage);
    }
    let end = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    if end < MIN_JPEG_BYTES {
        return Err(JpegCheckError::TooShort(end));
    }
    if data[end - 2] != 0xFF || data[end - 1] != 0xD9 {
        return Err(JpegCheckError::NoEndOfImage);
    }
    Ok(&data[..end])
}

/// The width and height a JPEG's frame header (SOFn) declares; `None` if
/// there is none before the data ends.
pub fn jpeg_size(data: &[u8]) -> Option<Size> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while *data.get(at)? == 0xFF && *data.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *data.get(at)? != 0xFF {
            return None;
        }
        let marker = *data.get(at + 1)?;
        let len = usize::from(u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]));
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let h = u16::from_be_bytes([*data.get(at + 5)?, *data.get(at + 6)?]);
            let w = u16::from_be_bytes([*data.get(at + 7)?, *data.get(at + 8)?]);
            return (w > 0 && h > 0).then(|| Size::new(u32::from(w), u32::from(h)));
        }
        if marker == 0xDA || len < 2 {
            return None; // scan data before any frame header
        }
        at += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_checkable_jpeg() {
        let img = I420::new(Size::new(640, 360)).unwrap();
        let jpeg = encode_i420(&img, 80).unwrap();
        assert_eq!(check_jpeg(&jpeg), Ok(&jpeg[..]));
    }

    #[test]
    fn a_libjpeg_failure_is_an_error_not_an_abort() {
        // Planes far too small for the declared size: the binding panics,
        // and the panic must come back as an error.
        let tiny = [0u8; 64];
        let err = encode_planes([&tiny, &tiny, &tiny], 640, 480, 80).unwrap_err();
        assert!(matches!(err, EncodeError::Panicked(_)), "{err}");
        // A zero-sized image is refused by libjpeg itself.
        let err = encode_planes([&tiny, &tiny, &tiny], 0, 0, 80).unwrap_err();
        assert!(matches!(err, EncodeError::Panicked(_)), "{err}");
    }

    #[test]
    fn broken_jpegs_are_refused() {
        let img = I420::new(Size::new(320, 240)).unwrap();
        let jpeg = encode_i420(&img, 80).unwrap();
        assert_eq!(check_jpeg(&jpeg[..10]), Err(JpegCheckError::TooShort(10)));
        assert_eq!(
            check_jpeg(&jpeg[..jpeg.len() - 40]),
            Err(JpegCheckError::NoEndOfImage)
        );
        let mut no_soi = jpeg.clone();
        no_soi[1] = 0;
        assert_eq!(check_jpeg(&no_soi), Err(JpegCheckError::NoStartOfImage));
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 300]);
        assert_eq!(check_jpeg(&padded), Ok(&jpeg[..]));
    }

    #[test]
    fn jpeg_size_reads_the_frame_header() {
        let img = I420::new(Size::new(320, 240)).unwrap();
        let jpeg = encode_i420(&img, 80).unwrap();
        assert_eq!(jpeg_size(&jpeg), Some(Size::new(320, 240)));
        assert_eq!(jpeg_size(&jpeg[..20]), None);
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&[]), None);
    }
}
