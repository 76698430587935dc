//! Which of a parked camera's frames are recorded, frame by frame, for one
//! camera (the recorder keeps a gate per camera):
//!
//! - driving: every frame;
//! - `motion`: every frame goes through a RAM ring holding the last
//!   `pre_roll` seconds (at most [`RING_BYTES`]); a frame the detector
//!   flagged starts a clip: the ring is written first, then every frame
//!   until `motion_post` after the last motion. Each clip is reported once
//!   it ends ([`Gate::take_clips`]);
//! - `timelapse`: one frame each `timelapse_interval` of the parking clock,
//!   retimed onto a timeline a camera frame apart, so the file plays back
//!   at the normal rate (an hour at one frame in 10 s is 12 s at 30 fps);
//! - `off`, and past the cut-off: nothing.
//!
//! While parked (not past the cut-off) an event ([`Gate::record_until`])
//! records at the normal rate, from the ring, until its window ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::config::ParkingMode;
use crate::frame::Frame;
use crate::parking::Phase;

/// The most a camera's pre-roll ring holds, whatever its length in time.
pub const RING_BYTES: usize = 64 << 20;

/// A frame to write, and whether it belongs to a time-lapse.
#[derive(Clone, Debug)]
pub struct Write {
    pub frame: Arc<Frame>,
    pub timelapse: bool,
    /// The first frame of a clip (motion or an event while parked): it
    /// starts a segment of its own.
    pub fresh: bool,
}

/// A clip recorded because something moved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clip {
    /// Its first frame (from the pre-roll).
    pub from: Timestamp,
    /// The frame the motion was seen in.
    pub trigger: Timestamp,
    /// Its last frame.
    pub to: Timestamp,
}

pub struct Gate {
    /// How long the ring reaches back.
    ring_span: Duration,
    post: Duration,
    interval: Duration,
    /// One frame of the camera: the time-lapse's step on its timeline.
    step: Duration,
    ring: VecDeque<Arc<Frame>>,
    ring_bytes: usize,
    /// Frames are written at the normal rate up to this capture time.
    until: Option<Duration>,
    /// The clip being written, if motion started it.
    clip: Option<Clip>,
    clips: Vec<Clip>,
    /// The last frame written at the normal rate while parked.
    last_written: Option<Timestamp>,
    /// The parking clock when the next time-lapse frame is due.
    due: Option<Duration>,
    /// The time-lapse run: its first frame's capture time and frames since.
    run: Option<(Duration, u32)>,
}

impl Gate {
    /// `ring_span`: the pre-roll (and an event's `pre` while parked);
    /// `fps`: the camera's rate, the time-lapse's playback rate.
    pub fn new(ring_span: Duration, post: Duration, interval: Duration, fps: u32) -> Self {
        Self {
            ring_span,
            post,
            interval,
            step: Duration::from_nanos(1_000_000_000 / u64::from(fps.max(1))),
            ring: VecDeque::new(),
            ring_bytes: 0,
            until: None,
            clip: None,
            clips: Vec::new(),
            last_written: None,
            due: None,
            run: None,
        }
    }

    /// Records at the normal rate up to capture time `until` (an event's
    /// window), the ring first.
    pub fn record_until(&mut self, until: Duration) {
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
    }

    /// Clips that ended since the last call.
    pub fn take_clips(&mut self) -> Vec<Clip> {
        std::mem::take(&mut self.clips)
    }

    /// Whether frames are being written at the normal rate now.
    pub fn recording(&self) -> bool {
        self.until.is_some()
    }

    /// What to write for `frame`, seen in `phase` at parking-clock `now`.
    pub fn offer(&mut self, frame: &Arc<Frame>, phase: Phase, now: Duration) -> Vec<Write> {
        let mono = frame.captured.mono;
        let mode = match phase {
            Phase::Driving => {
                self.stop();
                return vec![Write {
                    frame: frame.clone(),
                    timelapse: false,
                    fresh: false,
                }];
            }
            Phase::CutOff => {
                self.stop();
                return Vec::new();
            }
            Phase::Parked(m) => m,
        };
        self.push(frame);
        if mode == ParkingMode::Motion && frame.motion == Some(true) {
            self.record_until(mono + self.post);
            if self.clip.is_none() {
                let from = self.ring.front().map_or(frame.captured, |f| f.captured);
                self.clip = Some(Clip {
                    from,
                    trigger: frame.captured,
                    to: frame.captured,
                });
            }
        }
        if let Some(until) = self.until {
            if mono <= until {
                self.run = None;
                let fresh = self.last_written.is_none();
                let out: Vec<Write> = self
                    .ring
                    .drain(..)
                    .enumerate()
                    .map(|(i, frame)| Write {
                        frame,
                        timelapse: false,
                        fresh: fresh && i == 0,
                    })
                    .collect();
                self.ring_bytes = 0;
                if let Some(last) = out.last() {
                    self.last_written = Some(last.frame.captured);
                }
                return out;
            }
            self.until = None;
            self.end_clip();
            self.last_written = None;
        }
        if mode != ParkingMode::Timelapse || self.due.is_some_and(|d| now < d) {
            return Vec::new();
        }
        // A frame is due: the next is one interval on (or an interval from
        // now, after a gap longer than one).
        self.due = Some(match self.due {
            Some(d) if d + self.interval > now => d + self.interval,
            _ => now + self.interval,
        });
        let (base, n) = self.run.get_or_insert((mono, 0));
        let retimed = *base + self.step * *n;
        *n += 1;
        let mut f = Frame::clone(frame);
        f.captured = Timestamp {
            mono: retimed,
            ..frame.captured
        };
        vec![Write {
            frame: Arc::new(f),
            timelapse: true,
            fresh: false,
        }]
    }

    fn push(&mut self, frame: &Arc<Frame>) {
        self.ring_bytes += frame.jpeg.len();
        self.ring.push_back(frame.clone());
        let newest = frame.captured.mono;
        while let Some(old) = self.ring.front() {
            let stale = newest.saturating_sub(old.captured.mono) > self.ring_span;
            if !(stale || self.ring_bytes > RING_BYTES) {
                break;
            }
            self.ring_bytes -= old.jpeg.len();
            self.ring.pop_front();
        }
    }

    fn end_clip(&mut self) {
        if let Some(mut clip) = self.clip.take() {
            if let Some(last) = self.last_written {
                clip.to = last;
            }
            self.clips.push(clip);
        }
    }

    /// Driving again, cut off, or no more frames for now: whatever was
    /// parked ends (a clip being written is reported).
    pub fn stop(&mut self) {
        self.end_clip();
        self.ring.clear();
        self.ring_bytes = 0;
        self.until = None;
        self.due = None;
        self.run = None;
        self.last_written = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{PixelFormat, Size};
    use bytes::Bytes;

    const FPS: u64 = 10;

    fn frame(i: u64, motion: bool) -> Arc<Frame> {
        Arc::new(Frame {
            jpeg: Bytes::from(vec![0u8; 1000]),
            seq: i,
            captured: Timestamp::from_mono(Duration::from_millis(1_000_000 + i * 1000 / FPS)),
            size: Size::new(64, 48),
            source_format: PixelFormat::Yuyv,
            placeholder: false,
            motion: Some(motion),
        })
    }

    fn gate() -> Gate {
        Gate::new(
            Duration::from_secs(3),
            Duration::from_secs(2),
            Duration::from_secs(10),
            FPS as u32,
        )
    }

    const MOTION: Phase = Phase::Parked(ParkingMode::Motion);

    #[test]
    fn motion_writes_the_pre_roll_then_until_the_post() {
        let mut g = gate();
        let mut written = Vec::new();
        for i in 0..200 {
            let moving = (100..105).contains(&i);
            for w in g.offer(&frame(i, moving), MOTION, Duration::ZERO) {
                assert!(!w.timelapse);
                assert_eq!(w.fresh, written.is_empty());
                written.push(w.frame.seq);
            }
        }
        // 3 s of pre-roll (frames 70-99: 30 frames, 31 with the one 3.0 s
        // back), the motion, 2 s after the last moving frame (104).
        let first = written[0];
        assert!((69..=70).contains(&first), "{first}");
        assert_eq!(*written.last().unwrap(), 124);
        assert!(
            written.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, none twice"
        );
        let clips = g.take_clips();
        assert_eq!(clips.len(), 1);
        assert_eq!(clips[0].trigger.mono, frame(100, true).captured.mono);
        assert_eq!(clips[0].from.mono, frame(first, false).captured.mono);
        assert_eq!(clips[0].to.mono, frame(124, false).captured.mono);
    }

    #[test]
    fn a_still_view_writes_nothing_and_the_ring_stays_bounded() {
        let mut g = gate();
        for i in 0..1000 {
            assert!(g.offer(&frame(i, false), MOTION, Duration::ZERO).is_empty());
        }
        assert!(g.ring.len() <= 31);
        assert!(g.take_clips().is_empty());
    }

    #[test]
    fn an_event_while_parked_records_at_the_normal_rate() {
        for mode in [
            ParkingMode::Motion,
            ParkingMode::Timelapse,
            ParkingMode::Off,
        ] {
            let mut g = gate();
            let phase = Phase::Parked(mode);
            let mut n = 0;
            for i in 0..100 {
                if i == 50 {
                    g.record_until(frame(70, false).captured.mono);
                }
                for w in g.offer(&frame(i, false), phase, Duration::from_secs(5)) {
                    n += usize::from(!w.timelapse);
                }
            }
            // The ring (3 s) and the frames up to 70.
            assert!((51..=52).contains(&n), "{mode:?}: {n}");
        }
    }

    #[test]
    fn timelapse_takes_one_frame_an_interval_on_a_camera_frame_timeline() {
        let mut g = gate();
        let phase = Phase::Parked(ParkingMode::Timelapse);
        let mut out = Vec::new();
        // An hour of parking clock in 1 s steps, a frame each step.
        for i in 0..3600 {
            out.extend(g.offer(&frame(i, false), phase, Duration::from_secs(i)));
        }
        assert_eq!(out.len(), 360);
        assert!(out.iter().all(|w| w.timelapse));
        let t0 = out[0].frame.captured.mono;
        for (k, w) in out.iter().enumerate() {
            assert_eq!(
                w.frame.captured.mono - t0,
                Duration::from_millis(100) * k as u32
            );
        }
    }

    #[test]
    fn driving_and_cut_off() {
        let mut g = gate();
        assert_eq!(
            g.offer(&frame(0, false), Phase::Driving, Duration::ZERO)
                .len(),
            1
        );
        assert!(
            g.offer(&frame(1, true), Phase::CutOff, Duration::ZERO)
                .is_empty()
        );
    }
}
