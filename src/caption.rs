//! The caption burned into a camera's raw frames before they are encoded,
//! as dashcams do: the date and time (UTC, from the frame's own capture
//! time, the clock the file names use), the speed in km/h and, if asked,
//! the position, white on a black band at the bottom left. Its size
//! follows the frame: 3 font pixels a pixel-row of glyph at 720p, 4 at
//! 1080p. Without a current fix the speed reads `-- KM/H` and the position
//! `NO GPS`. [`read_lines`] reads a caption back from decoded pixels with
//! the same font (the tests' proof that what is drawn is what was meant).

use std::sync::Arc;
use std::time::SystemTime;

use crate::capture::testsrc::fill_rect;
use crate::clock::Utc;
use crate::config::Caption;
use crate::convert::I420;
use crate::font;
use crate::frame::Size;
use crate::gps::{Fix, Gps};

/// Black band behind the text (Y, U, V).
const BAND: (u8, u8, u8) = (16, 128, 128);
const TEXT: u8 = 235;

/// Draws one camera's caption.
pub struct Captioner {
    items: Caption,
    gps: Arc<Gps>,
}

/// Where the caption goes in a frame of some size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub scale: usize,
    /// Left edge of the text, and the top of its first line.
    pub x: usize,
    pub y: usize,
    /// From one line's top to the next's.
    pub line_step: usize,
}

/// The caption's place for `lines` lines in a frame of `size`: the bottom
/// left, clear of the bottom rows (where a turned test pattern has its
/// strip).
pub fn layout(size: Size, lines: usize) -> Layout {
    let h = size.height as usize;
    let scale = (h / 240).max(1);
    let pad = 2 * scale;
    let line_step = font::text_height(scale) + 2 * pad;
    let margin = (h / 40).max(24);
    let y = h.saturating_sub(margin + lines * line_step) + pad;
    Layout {
        scale,
        x: 8 + 2 * scale,
        y: y / 2 * 2,
        line_step,
    }
}

impl Captioner {
    /// `None` when `items` draws nothing.
    pub fn new(items: Caption, gps: Arc<Gps>) -> Option<Self> {
        items.any().then_some(Self { items, gps })
    }

    /// The caption's lines for a frame captured at `wall`, with `fix`:
    /// one line if it fits `width`, else one per item.
    pub fn lines(
        &self,
        wall: SystemTime,
        fix: Option<&Fix>,
        width: usize,
        scale: usize,
    ) -> Vec<String> {
        let mut items = Vec::new();
        if self.items.time {
            items.push(format!("{} UTC", Utc::from_system(wall).display_seconds()));
        }
        if self.items.speed {
            items.push(match fix.and_then(|f| f.speed) {
                Some(s) => format!("{:.0} KM/H", s * 3.6),
                None => "-- KM/H".to_string(),
            });
        }
        if self.items.position {
            items.push(match fix {
                Some(f) => format!(
                    "{}{:.5} {}{:.5}",
                    if f.lat >= 0.0 { 'N' } else { 'S' },
                    f.lat.abs(),
                    if f.lon >= 0.0 { 'E' } else { 'W' },
                    f.lon.abs()
                ),
                None => "NO GPS".to_string(),
            });
        }
        let one = items.join("  ");
        if font::text_width(&one, scale) + 24 * scale <= width {
            vec![one]
        } else {
            items
        }
    }

    /// Draws the caption for a frame captured at `wall` into `img`.
    pub fn draw(&self, img: &mut I420, wall: SystemTime) {
        let size = img.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let scale = layout(size, 1).scale;
        let fix = self.gps.current();
        let lines = self.lines(wall, fix.as_ref(), w, scale);
        let l = layout(size, lines.len());
        let pad = 2 * l.scale;
        let widest = lines
            .iter()
            .map(|t| font::text_width(t, l.scale))
            .max()
            .unwrap_or(0);
        fill_rect(
            img,
            (l.x - pad) / 2 * 2,
            (l.y - pad) / 2 * 2,
            (widest + 2 * pad + 2).div_ceil(2) * 2,
            (lines.len() * l.line_step + 2).div_ceil(2) * 2,
            BAND,
        );
        let ys = img.y_stride();
        let (luma, _, _) = img.planes_mut();
        for (i, text) in lines.iter().enumerate() {
            font::draw_text(
                luma,
                ys,
                w,
                h,
                l.x,
                l.y + i * l.line_step,
                l.scale,
                text,
                TEXT,
            );
        }
        img.pad();
    }
}

/// Reads `lines` caption lines back from a decoded frame's luma plane.
pub fn read_lines(luma: &[u8], stride: usize, size: Size, lines: usize) -> Vec<String> {
    let l = layout(size, lines);
    (0..lines)
        .map(|i| {
            font::read_text(
                luma,
                stride,
                size.width as usize,
                size.height as usize,
                l.x,
                l.y + i * l.line_step,
                l.scale,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn fix(speed: f64) -> Fix {
        Fix {
            time: None,
            mode: 3,
            lat: 52.123456,
            lon: -0.5,
            alt: None,
            speed: Some(speed),
            track: None,
            eph: None,
            epv: None,
            sats: None,
        }
    }

    #[test]
    fn the_text_says_time_speed_and_position() {
        let all = Caption {
            time: true,
            speed: true,
            position: true,
        };
        let c = Captioner::new(all, Arc::new(Gps::off())).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        assert_eq!(
            c.lines(t, Some(&fix(15.0)), 1920, 4),
            vec!["2026-11-26 17:26:00 UTC  54 KM/H  N52.12346 W0.50000"]
        );
        assert_eq!(
            c.lines(t, None, 200, 1),
            vec!["2026-11-26 17:26:00 UTC", "-- KM/H", "NO GPS"]
        );
        assert!(Captioner::new(Caption::default(), Arc::new(Gps::off())).is_none());
    }

    #[test]
    fn a_drawn_caption_reads_back_at_every_size() {
        let items = Caption {
            time: true,
            speed: true,
            position: false,
        };
        let c = Captioner::new(items, Arc::new(Gps::off())).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        for size in [
            Size::new(320, 240),
            Size::new(1280, 720),
            Size::new(1920, 1080),
        ] {
            let mut img = I420::new(size).unwrap();
            c.draw(&mut img, t);
            let lines = c.lines(t, None, size.width as usize, layout(size, 1).scale);
            let (luma, _, _) = img.planes();
            assert_eq!(
                read_lines(luma, img.y_stride(), size, lines.len()),
                lines,
                "{size}"
            );
        }
        assert_eq!(layout(Size::new(1280, 720), 1).scale, 3);
        assert_eq!(layout(Size::new(1920, 1080), 1).scale, 4);
    }
}
