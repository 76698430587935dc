//! `GET /api/recordings`: every segment, newest first (the one being
//! written included), with the recent events and the space they use. Read
//! from the store's index; no segment file is opened.

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::clock::{Utc, unix_seconds, wall_now};
use crate::http::respond::{Body, json, no_store};
use crate::record::recorder::RecorderHandle;

#[derive(Serialize)]
struct Entry {
    name: String,
    /// The recording order: larger is newer, whatever the clock said.
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

pub async fn list(rec: &RecorderHandle, _path: &str) -> Response<Body> {
    let status = rec.status();
    let mut entries: Vec<Entry> = rec
        .store
        .list()
        .into_iter()
        .rev()
        .map(|e| Entry {
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
    if let (Some(name), Some(start)) = (status.segment.clone(), status.segment_started) {
        let seq = crate::record::names::parse(&name).map_or(0, |n| n.seq);
        entries.insert(
            0,
            Entry {
                start,
                start_utc: Utc::from_system(crate::clock::from_unix_seconds(start))
                    .display_seconds(),
                duration_seconds: (unix_seconds(wall_now()) - start).max(0.0),
                frames: status.segment_frames,
                bytes: status.segment_bytes,
                protected: false,
                recording: true,
                seq,
                name,
            },
        );
    }
    let body = serde_json::json!({
        "recordings": entries,
        "events": status.events,
        "disk": status.disk,
        "recordings_bytes": status.recordings_bytes,
        "events_bytes": status.events_bytes,
    });
    no_store(json(StatusCode::OK, &body))
}
