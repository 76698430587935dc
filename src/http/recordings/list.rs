//! `GET /api/recordings`: every segment, newest first (those being written
//! included), each with its camera; the same grouped by moment (every
//! camera's segment of one stretch of time, under one sequence number), each
//! with the events whose windows cover it (from the event journal, so
//! after a restart too: why, when, an impact's peak); the recent events and
//! the space they use. Read from the store's index; no segment file is
//! opened.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::clock::{Utc, unix_seconds, wall_now};
use crate::http::respond::{Body, json, no_store};
use crate::record::recorder::RecorderHandle;
use crate::timesync::TimeSync;

#[derive(Serialize)]
struct Entry {
    name: String,
    /// The camera's id (a file from before cameras had ids is the first
    /// camera's).
    camera: String,
    /// The moment: larger is newer, whatever the clock said; every camera's
    /// segment of a moment has the same.
    seq: u64,
    /// Unix seconds of the first frame, by the wall clock at the time.
    start: f64,
    /// `2026-11-26 17:26:00` (UTC), for people.
    start_utc: String,
    duration_seconds: f64,
    frames: u64,
    bytes: u64,
    protected: bool,
    /// Being written now.
    recording: bool,
    /// Whether the clock was synchronised when it began (`null`: the file
    /// does not say).
    clock_synchronized: Option<bool>,
    /// For a segment begun before the clock was synchronised, recorded
    /// since start-up: its true start, once a synchronised time has been
    /// seen (Unix seconds, and for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    corrected_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    corrected_start_utc: Option<String>,
    /// A parked car's time-lapse: frames seconds apart, played back at the
    /// camera's rate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    timelapse: bool,
}

/// One moment: its cameras' segments, by camera id.
#[derive(Serialize)]
struct Moment {
    seq: u64,
    start: f64,
    start_utc: String,
    /// The longest of its segments.
    duration_seconds: f64,
    /// Camera id to segment name.
    cameras: BTreeMap<String, String>,
    /// An event protects one of its segments.
    protected: bool,
    /// One of its segments is being written.
    recording: bool,
    /// The events whose windows cover it.
    events: Vec<MomentEvent>,
    /// One of its segments is a time-lapse.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    timelapse: bool,
}

/// An event, as a moment lists it.
#[derive(Serialize)]
struct MomentEvent {
    reason: String,
    /// Unix seconds of the trigger.
    at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_g: Option<f64>,
    /// While the car was parked (`motion` is always).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    parked: bool,
}

pub async fn list(rec: &RecorderHandle, first_camera: &str, clock: &TimeSync) -> Response<Body> {
    let status = rec.status();
    let mut entries: Vec<Entry> = rec
        .store
        .list()
        .into_iter()
        .rev()
        .map(|e| {
            let corrected = e
                .mono
                .filter(|_| e.clock_synced == Some(false))
                .and_then(|(from, _)| clock.true_time(from));
            Entry {
                clock_synchronized: e.clock_synced,
                corrected_start: corrected.map(unix_seconds),
                corrected_start_utc: corrected.map(|t| Utc::from_system(t).display_seconds()),
                camera: e.camera.camera_or(first_camera).to_string(),
                start: unix_seconds(e.start),
                start_utc: Utc::from_system(e.start).display_seconds(),
                duration_seconds: e.duration_ms as f64 / 1000.0,
                frames: e.frames,
                bytes: e.bytes,
                protected: e.protected,
                timelapse: e.timelapse,
                recording: false,
                seq: e.seq,
                name: e.name,
            }
        })
        .collect();
    // The segments being written, newest moment first.
    for t in status.cameras.iter().rev() {
        let Some(name) = &t.segment else { continue };
        let Some(n) = crate::record::names::parse(name) else {
            continue;
        };
        let start = unix_seconds(n.start);
        entries.insert(
            0,
            Entry {
                camera: t.id.clone(),
                start,
                start_utc: Utc::from_system(n.start).display_seconds(),
                duration_seconds: (unix_seconds(wall_now()) - start).max(0.0),
                frames: t.segment_frames,
                bytes: t.segment_bytes,
                protected: false,
                timelapse: false,
                recording: true,
                clock_synchronized: None,
                corrected_start: None,
                corrected_start_utc: None,
                seq: n.seq,
                name: name.clone(),
            },
        );
    }
    entries.sort_by(|a, b| b.seq.cmp(&a.seq).then_with(|| a.camera.cmp(&b.camera)));
    let mut moments: Vec<Moment> = Vec::new();
    for e in &entries {
        let m = match moments.last_mut() {
            Some(m) if m.seq == e.seq => m,
            _ => {
                moments.push(Moment {
                    seq: e.seq,
                    start: e.start,
                    start_utc: e.start_utc.clone(),
                    duration_seconds: 0.0,
                    cameras: BTreeMap::new(),
                    protected: false,
                    recording: false,
                    events: Vec::new(),
                    timelapse: false,
                });
                let Some(m) = moments.last_mut() else { break };
                m
            }
        };
        m.start = m.start.min(e.start);
        m.duration_seconds = m.duration_seconds.max(e.duration_seconds);
        m.protected |= e.protected;
        m.recording |= e.recording;
        m.timelapse |= e.timelapse;
        m.cameras.insert(e.camera.clone(), e.name.clone());
    }
    let journal = rec.store.journal.records();
    for m in &mut moments {
        let end = m.start + m.duration_seconds;
        m.events = journal
            .iter()
            .filter(|r| r.from <= end && m.start <= r.to)
            .map(|r| MomentEvent {
                reason: r.reason.clone(),
                at: r.at,
                peak_g: r.peak_g,
                parked: r.parked,
            })
            .collect();
    }
    let body = serde_json::json!({
        "recordings": entries,
        "moments": moments,
        "events": status.events,
        "disk": status.disk,
        "recordings_bytes": status.recordings_bytes,
        "events_bytes": status.events_bytes,
    });
    no_store(json(StatusCode::OK, &body))
}
