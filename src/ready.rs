//! Readiness: whether blackbox is doing its job right now, not merely
//! alive. Liveness ([`crate::supervise::Health::check`], `/healthz`, the
//! watchdog) says every stage makes progress, and stays true while the card
//! refuses every write, because the recorder keeps turning. Readiness
//! (`/healthz?ready`) asks more: the first camera streams, recording is on and
//! not failing, frames have been written, and (with syncing on) a
//! `fdatasync` succeeded within twice the sync interval and a second. The
//! update gate commits a slot only while this holds; it reads this answer,
//! one word, never the human `STATUS=` line.

use std::time::Duration;

use crate::state::AppState;

/// Why blackbox is not ready; each has one word for `/healthz?ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// A stage stopped making progress (liveness fails too).
    Stalled,
    /// The camera is not streaming.
    NoFrames,
    /// Recording is off or disabled.
    NotRecording,
    /// Recording is on but frames are being lost.
    RecordingFailing,
    /// No frame written yet, or no successful sync recently.
    NotSynced,
}

impl NotReady {
    pub fn word(self) -> &'static str {
        match self {
            Self::Stalled => "stalled",
            Self::NoFrames => "no-frames",
            Self::NotRecording => "not-recording",
            Self::RecordingFailing => "recording-failing",
            Self::NotSynced => "not-synced",
        }
    }
}

/// Whether blackbox is ready, and if not, why.
pub fn readiness(state: &AppState) -> Result<(), NotReady> {
    state.health.check().map_err(|_| NotReady::Stalled)?;
    // The first camera: an unplugged rear camera must not roll an update
    // back, a front camera that an update broke must.
    if state.cameras.first().stats.capture_status().state.name() != "streaming" {
        return Err(NotReady::NoFrames);
    }
    let Some(recorder) = &state.recorder else {
        return Err(NotReady::NotRecording);
    };
    let st = recorder.status();
    match st.state {
        "recording" => {}
        "failing" => return Err(NotReady::RecordingFailing),
        _ => return Err(NotReady::NotRecording),
    }
    if st.frames_written == 0 {
        return Err(NotReady::NotSynced);
    }
    if let Some(interval) = state.config.record.sync_interval {
        let limit = interval * 2 + Duration::from_secs(1);
        if st.last_good_sync.is_none_or(|t| t.elapsed() > limit) {
            return Err(NotReady::NotSynced);
        }
    }
    Ok(())
}
