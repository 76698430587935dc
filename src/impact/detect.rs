//! Impact detection on a stream of acceleration samples, independent of
//! where they come from. Gravity (and the mounting angle) is removed by a
//! slowly adapting baseline: an exponential average of the samples with a
//! time constant of [`BASELINE_TAU`]; what is left is the car's own
//! acceleration. A *burst* starts when its magnitude goes over the
//! threshold and ends when it falls back under it (or after
//! [`MAX_BURST`]); it is one impact at the moment it started, with the
//! highest magnitude seen in it. After an impact, the hold-off keeps a crash
//! that rattles on for seconds from making more than one event.
//!
//! The baseline stands still during a burst, so a crash does not teach it a
//! new "gravity"; it adapts again after the burst, so a camera knocked to a
//! new angle settles within a few time constants.

use std::time::Duration;

/// How slowly the gravity estimate follows the samples.
pub const BASELINE_TAU: Duration = Duration::from_secs(2);
/// A burst longer than this is reported at this length (a sensor that has
/// turned over would otherwise keep the baseline frozen for ever).
pub const MAX_BURST: Duration = Duration::from_secs(1);
/// A gap between samples longer than this restarts the baseline from the
/// next sample (a sensor that was gone, a system that was suspended).
const GAP: Duration = Duration::from_secs(2);

/// One impact: when its burst began (the samples' clock) and its peak, in g.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impact {
    pub at: Duration,
    pub peak_g: f64,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    at: Duration,
    peak: f64,
}

/// The detector's state; [`Detector::push`] takes one sample at a time.
#[derive(Debug)]
pub struct Detector {
    threshold_g: f64,
    holdoff: Duration,
    baseline: Option<[f64; 3]>,
    last: Duration,
    burst: Option<Burst>,
    /// No new burst starts before this (the hold-off after an impact).
    quiet_until: Duration,
}

/// What one sample gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The magnitude of the acceleration with gravity removed, in g.
    pub magnitude_g: f64,
    /// An impact whose burst just ended.
    pub impact: Option<Impact>,
}

impl Detector {
    pub fn new(threshold_g: f64, holdoff: Duration) -> Self {
        Self {
            threshold_g,
            holdoff,
            baseline: None,
            last: Duration::ZERO,
            burst: None,
            quiet_until: Duration::ZERO,
        }
    }

    /// The current estimate of gravity (in g, on the sensor's axes).
    pub fn gravity(&self) -> Option<[f64; 3]> {
        self.baseline
    }

    /// Takes the sample `g` (in g, each axis) taken at `t`; `t` does not go
    /// backwards (a sample that does is taken as taken at the last time).
    pub fn push(&mut self, t: Duration, g: [f64; 3]) -> Step {
        let t = t.max(self.last);
        let gap = t - self.last;
        self.last = t;
        let base = match self.baseline {
            Some(b) if gap <= GAP || self.burst.is_some() => b,
            _ => {
                self.baseline = Some(g);
                return Step {
                    magnitude_g: 0.0,
                    impact: self.end_burst(),
                };
            }
        };
        let d = [g[0] - base[0], g[1] - base[1], g[2] - base[2]];
        let m = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let mut impact = None;
        if m > self.threshold_g {
            match self.burst.as_mut() {
                Some(b) => {
                    b.peak = b.peak.max(m);
                    if t.saturating_sub(b.at) >= MAX_BURST {
                        impact = self.end_burst();
                    }
                }
                None if t >= self.quiet_until => {
                    self.burst = Some(Burst { at: t, peak: m });
                }
                None => {}
            }
        } else {
            impact = self.end_burst();
        }
        if self.burst.is_none() {
            // exp(-dt/tau), the share of the old estimate that remains.
            let keep = (-gap.as_secs_f64() / BASELINE_TAU.as_secs_f64()).exp();
            let b = [
                g[0] + (base[0] - g[0]) * keep,
                g[1] + (base[1] - g[1]) * keep,
                g[2] + (base[2] - g[2]) * keep,
            ];
            self.baseline = Some(b);
        }
        Step {
            magnitude_g: m,
            impact,
        }
    }

    fn end_burst(&mut self) -> Option<Impact> {
        let b = self.burst.take()?;
        self.quiet_until = b.at + self.holdoff;
        Some(Impact {
            at: b.at,
            peak_g: b.peak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little deterministic noise in [-a, a].
    fn noise(i: u64, a: f64) -> f64 {
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        (x as f64 / (1u64 << 31) as f64 - 0.5) * 2.0 * a
    }

    fn at(i: u64, hz: u64) -> Duration {
        Duration::from_micros(i * 1_000_000 / hz)
    }

    #[test]
    fn a_tilted_mount_and_road_noise_are_no_impact() {
        let mut d = Detector::new(1.5, Duration::from_secs(10));
        // 1 g along a tilted axis, 0.3 g of noise on each axis, 10 minutes.
        for i in 0..60_000 {
            let g = [
                0.5 + noise(i, 0.3),
                0.0 + noise(i + 7, 0.3),
                0.866 + noise(i + 13, 0.3),
            ];
            let s = d.push(at(i, 100), g);
            assert_eq!(s.impact, None, "sample {i}: {s:?}");
        }
        let g = d.gravity().unwrap();
        assert!(
            (g[0] - 0.5).abs() < 0.1 && (g[2] - 0.866).abs() < 0.1,
            "{g:?}"
        );
    }

    #[test]
    fn a_spike_is_one_impact_with_its_peak_and_the_hold_off_keeps_it_one() {
        let mut d = Detector::new(1.5, Duration::from_secs(5));
        let mut impacts = Vec::new();
        for i in 0..1000 {
            // 1 g down; at 3 s a 2.5 g jolt sideways over 50 ms (peak in the
            // middle), then a rattle of 1.8 g at 3.5 s, inside the hold-off.
            let mut g = [noise(i, 0.05), noise(i + 3, 0.05), 1.0];
            match i {
                300..=304 => g[0] += [1.0, 2.0, 2.5, 2.0, 1.0][(i - 300) as usize],
                350 => g[1] += 1.8,
                _ => {}
            }
            if let Some(x) = d.push(at(i, 100), g).impact {
                impacts.push(x);
            }
        }
        assert_eq!(impacts.len(), 1, "{impacts:?}");
        assert_eq!(impacts[0].at, at(301, 100));
        assert!((impacts[0].peak_g - 2.5).abs() < 0.1, "{impacts:?}");
    }

    #[test]
    fn after_the_hold_off_a_second_crash_is_a_second_impact() {
        let mut d = Detector::new(1.0, Duration::from_secs(2));
        let mut n = 0;
        for i in 0..1000 {
            let mut g = [0.0, 0.0, 1.0];
            if i == 100 || i == 500 {
                g[0] = 3.0;
            }
            n += usize::from(d.push(at(i, 100), g).impact.is_some());
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn a_sensor_turned_over_is_one_impact_then_settles() {
        let mut d = Detector::new(1.0, Duration::from_secs(5));
        let mut n = 0;
        for i in 0..3000 {
            // At 2 s the sensor turns: gravity moves from z to -z for good.
            let g = if i < 200 {
                [0.0, 0.0, 1.0]
            } else {
                [0.0, 0.0, -1.0]
            };
            n += usize::from(d.push(at(i, 100), g).impact.is_some());
        }
        assert_eq!(n, 1);
        assert!(d.gravity().unwrap()[2] < -0.9);
    }

    #[test]
    fn a_gap_in_the_samples_starts_the_baseline_again() {
        let mut d = Detector::new(1.0, Duration::from_secs(5));
        d.push(Duration::ZERO, [0.0, 0.0, 1.0]);
        // Back after a minute at another angle: no impact, a new baseline.
        let s = d.push(Duration::from_secs(60), [1.0, 0.0, 0.0]);
        assert_eq!(
            s,
            Step {
                magnitude_g: 0.0,
                impact: None
            }
        );
        assert_eq!(d.gravity(), Some([1.0, 0.0, 0.0]));
    }
}
