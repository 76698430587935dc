//! `GET /api/recordings`: every segment, newest first (those being written
//! included), each with its camera; the same grouped by moment (every
//! camera's segment of one stretch of time, under one sequence number); the
//! recent events and the space they use. Read from the store's index; no
//! segment file is opened.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::clock::{Utc, unix_seconds, wall_now};
use crate::http::respond::{Body, json, no_store};
use crate::record::recorder::RecorderHandle;

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
}

pub async fn list(rec: &RecorderHandle, first_camera: &str, _path: &str) -> Response<Body> {
    let status = rec.status();
    let mut entries: Vec<Entry> = rec
        .store
        .list()
        .into_iter()
        .rev()
        .map(|e| Entry {
            camera: e.camera.camera_or(first_camera).to_string(),
            start: unix_seconds(e.start),
            start_utc: Utc::from_system(e.start).display_seconds(),
            duration_seconds: e.duration_ms as f64 / 1000.0,
            frames: e.frames,
            bytes: e.bytes,
            protected: e.protected,
            recording: false,
            seq: e.seq,
            name: e.name,
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
                recording: true,
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
                });
                let Some(m) = moments.last_mut() else { break };
                m
            }
        };
        m.start = m.start.min(e.start);
        m.duration_seconds = m.duration_seconds.max(e.duration_seconds);
        m.protected |= e.protected;
        m.recording |= e.recording;
        m.cameras.insert(e.camera.clone(), e.name.clone());
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
