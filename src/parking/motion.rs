//! Motion in a parked car's view, cheaply: the luma plane reduced to a
//! grid of [`GRID_W`] x [`GRID_H`] cells (each the mean of every other
//! pixel of every other row in its block), compared with a running average
//! of the grid (the background). A cell changed if it differs from the
//! background by more than `pixel_threshold` levels after the frame's
//! common shift is taken out; there is motion if at least `area` of the
//! cells changed. A whole-frame light change (headlights sweeping the car
//! park, the camera's IR switching, a cloud) moves most cells the same way:
//! when more than [`LIGHTING_SHARE`] of them moved before the common shift
//! is removed and few are left after, it is a lighting change, never
//! motion, and the background jumps to the new frame.

/// The grid's size: about 5 000 cells, enough for a person at 20 m in a
/// 1080p frame to cover several.
pub const GRID_W: usize = 96;
pub const GRID_H: usize = 54;
/// More than this share of cells moved before the common shift is taken
/// out: the light changed.
pub const LIGHTING_SHARE: f32 = 0.6;
/// How fast the background follows the frames (per frame).
const LEARN: f32 = 0.05;

/// What one frame showed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub motion: bool,
    /// The share of cells that changed.
    pub changed: f32,
    /// The frame was a whole-frame light change.
    pub lighting: bool,
}

#[derive(Debug)]
pub struct MotionDetector {
    pixel_threshold: f32,
    area: f32,
    background: Option<Vec<f32>>,
    cells: Vec<f32>,
}

impl MotionDetector {
    /// `pixel_threshold`: levels (0-255) a cell must change by;
    /// `area`: the share of cells (0-1) that must change.
    pub fn new(pixel_threshold: f32, area: f32) -> Self {
        Self {
            pixel_threshold,
            area,
            background: None,
            cells: vec![0.0; GRID_W * GRID_H],
        }
    }

    /// Looks at one frame's luma plane (`width` x `height` visible pixels,
    /// rows `stride` bytes apart).
    pub fn push(&mut self, y: &[u8], width: usize, height: usize, stride: usize) -> Verdict {
        self.reduce(y, width, height, stride);
        let Some(bg) = self.background.as_mut() else {
            self.background = Some(self.cells.clone());
            return Verdict {
                motion: false,
                changed: 0.0,
                lighting: false,
            };
        };
        let n = self.cells.len() as f32;
        let shift = self
            .cells
            .iter()
            .zip(bg.iter())
            .map(|(c, b)| c - b)
            .sum::<f32>()
            / n;
        let (mut raw, mut changed) = (0usize, 0usize);
        for (c, b) in self.cells.iter().zip(bg.iter()) {
            let d = c - b;
            raw += usize::from(d.abs() > self.pixel_threshold);
            changed += usize::from((d - shift).abs() > self.pixel_threshold);
        }
        let changed = changed as f32 / n;
        let lighting = raw as f32 / n > LIGHTING_SHARE && changed < LIGHTING_SHARE / 2.0;
        if lighting {
            bg.copy_from_slice(&self.cells);
        } else {
            for (b, c) in bg.iter_mut().zip(self.cells.iter()) {
                *b += (c - *b) * LEARN;
            }
        }
        Verdict {
            motion: !lighting && changed >= self.area,
            changed,
            lighting,
        }
    }

    fn reduce(&mut self, y: &[u8], width: usize, height: usize, stride: usize) {
        for gy in 0..GRID_H {
            let (r0, r1) = (
                gy * height / GRID_H,
                ((gy + 1) * height / GRID_H).max(gy * height / GRID_H + 1),
            );
            for gx in 0..GRID_W {
                let (c0, c1) = (
                    gx * width / GRID_W,
                    ((gx + 1) * width / GRID_W).max(gx * width / GRID_W + 1),
                );
                let (mut sum, mut count) = (0u32, 0u32);
                for r in (r0..r1.min(height)).step_by(2) {
                    let row = &y[r * stride..r * stride + width];
                    for &p in row[c0..c1.min(width)].iter().step_by(2) {
                        sum += u32::from(p);
                        count += 1;
                    }
                }
                self.cells[gy * GRID_W + gx] = sum as f32 / count.max(1) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 640;
    const H: usize = 360;

    /// A textured scene with a bright square at `at`, everything `light`
    /// levels brighter.
    fn scene(at: Option<(usize, usize)>, light: i32, noise_seed: u64) -> Vec<u8> {
        let mut y = vec![0u8; W * H];
        let mut s = noise_seed;
        for r in 0..H {
            for c in 0..W {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let noise = ((s >> 60) as i32) - 8; // sensor noise, +-8
                let base = 60 + ((r / 40 + c / 40) % 2) as i32 * 60;
                let obj = at
                    .is_some_and(|(x, yy)| (x..x + 40).contains(&c) && (yy..yy + 60).contains(&r));
                let v = if obj { 230 } else { base } + light + noise;
                y[r * W + c] = v.clamp(0, 255) as u8;
            }
        }
        y
    }

    #[test]
    fn a_still_scene_with_sensor_noise_is_no_motion() {
        let mut m = MotionDetector::new(12.0, 0.005);
        for i in 0..20 {
            let v = m.push(&scene(None, 0, i), W, H, W);
            assert!(!v.motion, "frame {i}: {v:?}");
        }
    }

    #[test]
    fn an_object_moving_across_is_motion() {
        let mut m = MotionDetector::new(12.0, 0.005);
        for i in 0..5 {
            m.push(&scene(None, 0, i), W, H, W);
        }
        let v = m.push(&scene(Some((300, 150)), 0, 9), W, H, W);
        assert!(v.motion && !v.lighting, "{v:?}");
    }

    #[test]
    fn headlights_over_the_whole_frame_are_no_motion() {
        let mut m = MotionDetector::new(12.0, 0.005);
        for i in 0..5 {
            m.push(&scene(None, 0, i), W, H, W);
        }
        let v = m.push(&scene(None, 50, 7), W, H, W);
        assert!(!v.motion && v.lighting, "{v:?}");
        // The background took the new light: the next frame is still.
        let v = m.push(&scene(None, 50, 8), W, H, W);
        assert!(!v.motion && !v.lighting, "{v:?}");
    }
}
