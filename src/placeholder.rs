//! The frame viewers see while the camera is unusable: "NO SIGNAL" (or
//! "STARTING"), the current UTC time and the reason, on a dark background at
//! the configured size. Rendered and encoded once a second by the pipeline's
//! placeholder thread, and marked as a placeholder so that recorders skip it.

use crate::capture::testsrc::fill_rect;
use crate::clock::Utc;
use crate::convert::{ConvertError, I420};
use crate::encode::{self, EncodeError};
use crate::font;
use crate::frame::Size;

/// Why a placeholder could not be made.
#[derive(Debug)]
pub enum PlaceholderError {
    Size(ConvertError),
    Encode(EncodeError),
}

impl std::fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Size(e) => write!(f, "placeholder: {e}"),
            Self::Encode(e) => write!(f, "placeholder: {e}"),
        }
    }
}

impl std::error::Error for PlaceholderError {}

fn centred(img: &mut I420, y: usize, scale: usize, text: &str, value: u8) {
    let size = img.size();
    let (w, h) = (size.width as usize, size.height as usize);
    let scale = scale.max(1);
    let tw = font::text_width(text, scale);
    let x = w.saturating_sub(tw) / 2;
    let ys = img.y_stride();
    let (luma, _, _) = img.planes_mut();
    font::draw_text(luma, ys, w, h, x, y, scale, text, value);
}

/// Renders the placeholder as a JPEG.
pub fn render(
    size: Size,
    title: &str,
    detail: &str,
    now: std::time::SystemTime,
) -> Result<Vec<u8>, PlaceholderError> {
    let mut img = I420::new(size).map_err(PlaceholderError::Size)?;
    let (w, h) = (size.width as usize, size.height as usize);
    fill_rect(&mut img, 0, 0, w, h, (24, 128, 128));
    // A red bar across the middle makes the state obvious at a glance.
    let big = (w / (font::text_width(title, 1) * 2)).clamp(1, h / 40 + 1);
    let bar_h = (font::text_height(big) + big * 6) / 2 * 2;
    let bar_y = (h / 2).saturating_sub(bar_h) / 2 * 2;
    fill_rect(&mut img, 0, bar_y, w, bar_h, (60, 110, 190));
    centred(&mut img, bar_y + big * 3, big, title, 235);
    let small = (big / 2).max(1);
    let time = Utc::from_system(now).display_millis();
    let time = &time[..time.len() - 4]; // whole seconds
    let y = bar_y + bar_h + font::text_height(small) * 2;
    centred(&mut img, y, small, &format!("{time} UTC"), 200);
    let tiny = (small / 2).max(1);
    let max_chars = w / (font::ADVANCE * tiny);
    let detail: String = detail.chars().take(max_chars.saturating_sub(2)).collect();
    centred(
        &mut img,
        y + font::text_height(small) * 2,
        tiny,
        &detail,
        150,
    );
    img.pad();
    encode::encode_i420(&img, 70).map_err(PlaceholderError::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_jpegs_at_any_even_size() {
        for (w, h) in [(1920, 1080), (1280, 720), (640, 480), (160, 120), (2, 2)] {
            let jpeg = render(
                Size::new(w, h),
                "NO SIGNAL",
                "device gone",
                std::time::SystemTime::now(),
            )
            .unwrap();
            assert!(encode::check_jpeg(&jpeg).is_ok() || jpeg.len() < encode::MIN_JPEG_BYTES);
        }
    }
}
