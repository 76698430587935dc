//! The test pattern: a synthetic camera paced by the monotonic clock, for
//! tests, demos and benchmarks. It delivers what a real camera would (packed
//! YUYV, NV12, YU12, or ready JPEGs for the MJPEG pass-through path), and every
//! frame shows which frame it is:
//!
//! - a machine-readable strip along the top (see [`read_sequence`]) holding
//!   the sequence number in 32 black/white cells, readable after JPEG at
//!   quality 50 and above;
//! - the sequence number and capture time as text;
//! - a square that moves a fixed step per frame over colour bars.
//!
//! # Implementation
//! The bars are drawn once; each frame copies them, draws the strip, text and
//! square, then packs the image to the configured format (or encodes it). If
//! the caller falls behind by more than a frame, frames are skipped as a
//! camera would drop them: the sequence number jumps and the gap is counted
//! downstream as dropped at the source.

use std::time::Duration;

use crate::capture::{CaptureError, Source, SourceInfo, SourceKind};
use crate::clock::{Timestamp, Utc, monotonic_now};
use crate::convert::{self, I420};
use crate::encode;
use crate::font;
use crate::frame::{PixelFormat, RawFrame, Size};

/// The smallest size the strip fits in with cells of at least 8 pixels.
pub const MIN_SIZE: Size = crate::config::TESTSRC_MIN_SIZE;
/// The largest size the test pattern renders.
pub const MAX_SIZE: Size = crate::config::TESTSRC_MAX_SIZE;

/// Cells in the strip: one white and one black reference, then 32 bits.
const STRIP_CELLS: usize = 34;
/// Strip height: exactly one 4:2:0 MCU row, so no JPEG block straddles it
/// and the picture below.
const STRIP_ROWS: usize = 16;

const WHITE: (u8, u8, u8) = (235, 128, 128);
const BLACK: (u8, u8, u8) = (16, 128, 128);

/// 75 % colour bars in BT.601 limited range: white, yellow, cyan, green,
/// magenta, red, blue.
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];

fn cell_width(width: usize) -> usize {
    (width / STRIP_CELLS) / 8 * 8
}

/// Reads the sequence number back from a decoded frame's luma plane
/// (`stride` bytes per row). Returns `None` when the strip is not there
/// (the reference cells lack contrast).
pub fn read_sequence(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<u32> {
    let cw = cell_width(width);
    if cw == 0 || height < STRIP_ROWS || luma.len() < stride * STRIP_ROWS {
        return None;
    }
    let mean = |cell: usize| -> u32 {
        let x0 = cell * cw + cw / 4;
        let mut sum = 0u32;
        for row in 4..12 {
            sum += luma[row * stride + x0..][..cw / 2]
                .iter()
                .map(|&v| u32::from(v))
                .sum::<u32>();
        }
        sum / (8 * (cw / 2) as u32)
    };
    let (white, black) = (mean(0), mean(1));
    if white < black + 80 {
        return None;
    }
    let threshold = (white + black) / 2;
    Some((0..32).fold(0u32, |acc, bit| {
        (acc << 1) | u32::from(mean(2 + bit) > threshold)
    }))
}

/// The synthetic camera.
pub struct TestSource {
    size: Size,
    fps: u32,
    format: PixelFormat,
    quality: u8,
    /// Monotonic time of frame 0; set on the first call.
    start: Option<Duration>,
    /// The index of the next frame to deliver.
    next_index: u64,
    background: I420,
    canvas: I420,
    /// The picture as it froze (a test's `scene = still`).
    frozen: Option<I420>,
    out: Vec<u8>,
}

impl TestSource {
    /// A test pattern of `size` at `fps` delivering `format`; `quality` is
    /// used when the format is MJPEG.
    pub fn new(
        size: Size,
        fps: u32,
        format: PixelFormat,
        quality: u8,
    ) -> Result<Self, CaptureError> {
        if size.width < MIN_SIZE.width
            || size.height < MIN_SIZE.height
            || size.width > MAX_SIZE.width
            || size.height > MAX_SIZE.height
        {
            return Err(CaptureError::Unsupported(format!(
                "the test pattern renders sizes from {MIN_SIZE} to {MAX_SIZE}, not {size}"
            )));
        }
        if fps == 0 {
            return Err(CaptureError::Unsupported("frame rate 0".into()));
        }
        let background = I420::new(size).map_err(|e| CaptureError::Unsupported(e.to_string()))?;
        let mut src = Self {
            size,
            fps,
            format,
            quality,
            start: None,
            next_index: 0,
            canvas: background.clone(),
            frozen: None,
            background,
            out: Vec::new(),
        };
        src.draw_background();
        Ok(src)
    }

    fn interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps))
    }

    fn draw_background(&mut self) {
        let w = self.size.width as usize;
        let h = self.size.height as usize;
        let ramp_top = (h - h / 6) / 2 * 2;
        for (i, &colour) in BARS.iter().enumerate() {
            let x0 = i * w / BARS.len() / 2 * 2;
            let x1 = (i + 1) * w / BARS.len() / 2 * 2;
            fill_rect(&mut self.background, x0, 0, x1 - x0, ramp_top, colour);
        }
        // A grey luma ramp along the bottom.
        fill_rect(&mut self.background, 0, ramp_top, w, h - ramp_top, BLACK);
        let ys = self.background.y_stride();
        let (y, _, _) = self.background.planes_mut();
        for row in ramp_top..h {
            for (col, px) in y[row * ys..][..w].iter_mut().enumerate() {
                *px = (16 + col * 219 / w) as u8;
            }
        }
        self.background.pad();
    }

    /// Draws frame `seq` captured at `ts` into the canvas and returns it.
    /// Renders frame `seq`, or the frozen picture when a test holds the
    /// view still (brighter by 60 levels for `bright`).
    fn show(&mut self, seq: u64, ts: Timestamp) {
        use crate::faults::Scene;
        let scene = crate::faults::current().scene;
        if scene == Scene::Moving {
            self.frozen = None;
            self.render(seq, ts);
            return;
        }
        if self.frozen.is_none() {
            self.render(seq, ts);
            self.frozen = Some(self.canvas.clone());
        }
        if let Some(frozen) = &self.frozen {
            self.canvas.copy_from(frozen);
        }
        if scene == Scene::Bright {
            let (y, _, _) = self.canvas.planes_mut();
            for p in y.iter_mut() {
                *p = p.saturating_add(60).min(235);
            }
        }
    }

    pub fn render(&mut self, seq: u64, ts: Timestamp) -> &I420 {
        let w = self.size.width as usize;
        let h = self.size.height as usize;
        self.canvas.copy_from(&self.background);

        // The strip: reference cells, then the sequence number MSB first.
        let cw = cell_width(w);
        fill_rect(&mut self.canvas, 0, 0, w, STRIP_ROWS, (128, 128, 128));
        fill_rect(&mut self.canvas, 0, 0, cw, STRIP_ROWS, WHITE);
        fill_rect(&mut self.canvas, cw, 0, cw, STRIP_ROWS, BLACK);
        let bits = seq as u32;
        for bit in 0..32 {
            let on = bits & (1 << (31 - bit)) != 0;
            let x = (2 + bit) * cw;
            fill_rect(
                &mut self.canvas,
                x,
                0,
                cw,
                STRIP_ROWS,
                if on { WHITE } else { BLACK },
            );
        }

        // The moving square.
        let side = (h / 8).max(16) / 2 * 2;
        let travel = w - side;
        let x = (seq as usize * 8) % travel / 2 * 2;
        let y = (h * 5 / 8) / 2 * 2;
        fill_rect(&mut self.canvas, x, y, side, side, WHITE);

        // The text: sequence number and capture time.
        let scale = (h / 240).max(1);
        let text = format!("#{:08} {}", seq, Utc::from_system(ts.wall).display_millis());
        let tx = 8;
        let ty = STRIP_ROWS + 8;
        let pad = 2 * scale;
        fill_rect(
            &mut self.canvas,
            tx - 4,
            ty - pad,
            (font::text_width(&text, scale) + 8).min(w - tx) / 2 * 2,
            (font::text_height(scale) + 2 * pad) / 2 * 2 + 2,
            BLACK,
        );
        let ys = self.canvas.y_stride();
        let (luma, _, _) = self.canvas.planes_mut();
        font::draw_text(luma, ys, w, h, tx, ty, scale, &text, WHITE.0);
        self.canvas.pad();
        &self.canvas
    }

    fn wait_for(&mut self, index: u64) -> Duration {
        let start = *self.start.get_or_insert_with(monotonic_now);
        let due = start + self.interval() * index as u32;
        let now = monotonic_now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due
    }
}

impl Source for TestSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Testsrc,
            device: "test pattern".into(),
            format: self.format,
            size: self.size,
            fps: self.fps,
        }
    }

    fn next_frame(&mut self) -> Result<RawFrame<'_>, CaptureError> {
        let interval = self.interval();
        if let Some(start) = self.start {
            // Fell behind by more than a frame: skip, as a camera would.
            let now = monotonic_now();
            let due = start + interval * self.next_index as u32;
            if now > due + interval {
                let behind = (now - start).as_nanos() / interval.as_nanos();
                self.next_index = behind as u64;
            }
        }
        let seq = self.next_index;
        let mono = self.wait_for(seq);
        self.next_index += 1;
        let captured = Timestamp::from_mono(mono);
        let size = self.size;
        let format = self.format;
        let quality = self.quality;
        self.show(seq, captured);
        let stride = match format {
            PixelFormat::Mjpeg => {
                self.out = encode::encode_i420(&self.canvas, quality)
                    .map_err(|e| CaptureError::Io(std::io::Error::other(e.to_string())))?;
                0
            }
            raw => convert::pack(&self.canvas, raw, &mut self.out)
                .map_err(|e| CaptureError::Unsupported(e.to_string()))?,
        };
        Ok(RawFrame {
            data: &self.out,
            format,
            size,
            stride,
            seq,
            captured,
        })
    }
}

/// Fills a rectangle of an I420 image (even coordinates and sizes keep the
/// chroma exact), clipped to the image.
pub fn fill_rect(img: &mut I420, x: usize, y: usize, w: usize, h: usize, colour: (u8, u8, u8)) {
    let size = img.size();
    let (iw, ih) = (size.width as usize, size.height as usize);
    let x1 = (x + w).min(iw);
    let y1 = (y + h).min(ih);
    if x >= x1 || y >= y1 {
        return;
    }
    let (ys, cs) = (img.y_stride(), img.c_stride());
    let (yp, up, vp) = img.planes_mut();
    for row in y..y1 {
        yp[row * ys + x..row * ys + x1].fill(colour.0);
    }
    for row in y / 2..y1.div_ceil(2) {
        up[row * cs + x / 2..row * cs + x1.div_ceil(2)].fill(colour.1);
        vp[row * cs + x / 2..row * cs + x1.div_ceil(2)].fill(colour.2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luma_of(img: &I420) -> (Vec<u8>, usize) {
        (img.planes().0.to_vec(), img.y_stride())
    }

    #[test]
    fn strip_reads_back_raw() {
        let mut src = TestSource::new(Size::new(640, 480), 30, PixelFormat::Yuyv, 80).unwrap();
        for seq in [0u64, 1, 2, 255, 65_537, 0xDEAD_BEEF] {
            let img = src.render(seq, Timestamp::now());
            let (luma, stride) = luma_of(img);
            assert_eq!(read_sequence(&luma, 640, 480, stride), Some(seq as u32));
        }
    }

    #[test]
    fn no_strip_reads_as_none() {
        let flat = vec![128u8; 640 * 480];
        assert_eq!(read_sequence(&flat, 640, 480, 640), None);
    }

    #[test]
    fn frames_are_paced_and_numbered() {
        let mut src = TestSource::new(Size::new(320, 240), 50, PixelFormat::Nv12, 80).unwrap();
        let first = src.next_frame().unwrap();
        let (s0, t0) = (first.seq, first.captured.mono);
        assert_eq!(first.data.len(), 320 * 240 * 3 / 2);
        let mut last = (s0, t0);
        for _ in 0..5 {
            let f = src.next_frame().unwrap();
            assert!(f.seq > last.0);
            assert!(f.captured.mono > last.1);
            last = (f.seq, f.captured.mono);
        }
        // Timestamps are on the 20 ms grid the frame rate sets.
        let step = (last.1 - t0).as_nanos() / u128::from(last.0 - s0);
        assert_eq!(step, 20_000_000);
    }

    #[test]
    fn refuses_sizes_it_cannot_draw() {
        assert!(TestSource::new(Size::new(160, 120), 30, PixelFormat::Yuyv, 80).is_err());
        assert!(TestSource::new(Size::new(3840, 2160), 30, PixelFormat::Yuyv, 80).is_err());
    }
}
