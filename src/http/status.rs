//! What `/api/status` reports (and `/metrics` exposes, see
//! [`super::metrics`]), gathered once per request from the counters of
//! every stage: each camera's under `cameras`, and the first camera's also
//! at the top level, where clients written for one camera read them.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::cameras::CameraUnit;
use crate::config::Config;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_seconds: f64,
    /// The first camera's status, flat (`source`, `fps`, `frames`…).
    #[serde(flatten)]
    pub first: CameraStatus,
    /// Every camera's, in order.
    pub cameras: Vec<CameraStatus>,
    pub tap_clients: usize,
    pub http_connections: usize,
    /// Connections turned away because every one of `http.max_connections`
    /// was busy.
    pub http_refused: u64,
    /// `null` when recording is disabled.
    pub recorder: Option<RecorderView>,
    pub auth: AuthStatus,
    /// The fix, and why there is none when there is none.
    pub gps: crate::gps::GpsStatus,
    /// The accelerometer: the sensor, its state and why, the last impact.
    pub impact: crate::impact::ImpactStatus,
    /// Parking mode: driving or parked, why, what is recorded.
    pub parking: crate::parking::ParkingStatus,
    /// Whether the wall clock (which names the recordings) is synchronised,
    /// and from where.
    pub clock: crate::timesync::ClockStatus,
}

#[derive(Debug, Serialize)]
pub struct AuthStatus {
    /// A password is set (everything but /login and /healthz needs it).
    pub required: bool,
    /// It is the one generated at first boot: the page asks for a new one.
    pub first_boot: bool,
}

#[derive(Debug, Serialize)]
pub struct RecorderView {
    #[serde(flatten)]
    pub status: crate::record::recorder::RecorderStatus,
    /// Frames dropped because the disk fell behind.
    pub dropped: u64,
}

/// One camera's part of the status.
#[derive(Clone, Debug, Serialize)]
pub struct CameraStatus {
    pub id: String,
    /// Whether its frames are recorded (`camera.record`).
    pub record: bool,
    /// Degrees its picture is turned.
    pub rotation: u32,
    pub source: SourceStatus,
    pub fps: Fps,
    pub frames: Frames,
    pub drops: Drops,
    pub encode: EncodeStatus,
    pub viewers: usize,
    /// Where its frame tap listens (`tap.listen`; `null` without one).
    pub tap: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    pub kind: &'static str,
    pub device: Option<String>,
    pub pixel_format: &'static str,
    pub width: u32,
    pub height: u32,
    /// `starting`, `streaming` or `no_signal`.
    pub state: &'static str,
    pub last_error: Option<String>,
    pub reconnects: u64,
    /// The last sequence number the source reported (its own numbering).
    pub sequence: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fps {
    pub target: u32,
    /// Frames per second from the source, measured over the last seconds.
    pub capture: f64,
    /// Frames per second published to consumers.
    pub output: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Frames {
    pub captured: u64,
    pub encoded: u64,
    pub passed_through: u64,
    pub published: u64,
    /// Captured while nobody was watching, so not encoded.
    pub idle: u64,
    /// "No signal" frames sent while the camera was down.
    pub placeholders: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Drops {
    /// Skipped by the source (sequence gaps).
    pub source: u64,
    /// Every encoder was busy.
    pub encoder_busy: u64,
    /// mozjpeg failed.
    pub encode_error: u64,
    /// A raw buffer could not be converted.
    pub convert: u64,
    /// A camera JPEG failed the structural check.
    pub corrupt: u64,
    /// The source reported a bad frame (driver error flag, empty, short).
    pub bad_frame: u64,
    /// Frames live viewers skipped for a newer one.
    pub viewer_skipped: u64,
    /// Frames evicted from full ordered queues (tap, recorder).
    pub ordered_overflow: u64,
    /// Errors that closed the source.
    pub capture_errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EncodeStatus {
    pub quality: u8,
    pub workers: usize,
    pub mean_ms: f64,
}

impl CameraStatus {
    pub fn gather(unit: &CameraUnit, cfg: &Config, tap: Option<String>) -> Self {
        let stats = &unit.stats;
        let bus = &unit.bus;
        let cam = &unit.config;
        let capture = stats.capture_status();
        let (fps_in, fps_out) = stats.rates();
        let info = capture.info.as_ref();
        CameraStatus {
            id: unit.id.clone(),
            record: cam.record,
            rotation: cam.rotation.degrees(),
            source: SourceStatus {
                kind: info.map_or(cam.source.name(), |i| i.kind.name()),
                device: info.map(|i| i.device.clone()),
                pixel_format: info
                    .map(|i| i.format.name())
                    .or(cam.pixel_format.map(|f| f.name()))
                    .unwrap_or("auto"),
                width: info.map_or(cam.size, |i| i.size).width,
                height: info.map_or(cam.size, |i| i.size).height,
                state: capture.state.name(),
                last_error: capture.last_error,
                reconnects: capture.reconnects,
                sequence: stats.last_sequence.load(Ordering::Relaxed),
            },
            fps: Fps {
                target: info.map_or(cam.fps, |i| i.fps),
                capture: round3(fps_in),
                output: round3(fps_out),
            },
            frames: Frames {
                captured: stats.captured.get(),
                encoded: stats.encoded.get(),
                passed_through: stats.passed_through.get(),
                published: bus.published.get(),
                idle: stats.idle.get(),
                placeholders: stats.placeholders.get(),
            },
            drops: Drops {
                source: stats.dropped_source.get(),
                encoder_busy: stats.dropped_busy.get(),
                encode_error: stats.encode_errors.get(),
                convert: stats.dropped_convert.get(),
                corrupt: stats.dropped_corrupt.get(),
                bad_frame: stats.dropped_bad.get(),
                viewer_skipped: bus.viewer_skipped.get(),
                ordered_overflow: bus.ordered_dropped.get(),
                capture_errors: stats.capture_errors.get(),
            },
            encode: EncodeStatus {
                quality: unit.quality,
                workers: cfg.encode.workers,
                mean_ms: round3(stats.mean_encode_ms()),
            },
            viewers: bus.viewer_count(),
            tap,
        }
    }
}

impl Status {
    pub fn gather(state: &AppState) -> Self {
        let cameras: Vec<CameraStatus> = state
            .cameras
            .iter()
            .map(|u| {
                let tap = state.taps.get(&u.id).map(|a| a.to_string());
                CameraStatus::gather(u, &state.config, tap)
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: round3(state.started.elapsed().as_secs_f64()),
            first: cameras[0].clone(),
            cameras,
            tap_clients: state.tap_clients.load(Ordering::SeqCst),
            http_connections: state.http.count(),
            http_refused: state.refused.load(Ordering::Relaxed),
            recorder: state.recorder.as_ref().map(|r| RecorderView {
                status: r.status(),
                dropped: r.dropped(),
            }),
            auth: AuthStatus {
                required: state.auth.required(),
                first_boot: state.auth.first_boot(),
            },
            gps: state.gps.status(),
            impact: state.impact.status(),
            parking: state.parking.status(),
            clock: state.clock.status(),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
