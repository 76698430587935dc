//! The GPS track recorded in the segments, over HTTP:
//! - `GET /recordings/NAME.gpx` (NAME with or without `.mkv`): the
//!   segment's fixes as GPX 1.1;
//! - `GET /recordings/NAME/track`: the same fixes as JSON, each with its
//!   offset into the segment, and the acceleration trace (`accel`: `[t, x,
//!   y, z, m]`, seconds into the segment, the axes and the magnitude without
//!   gravity in g), for the page's replay;
//! - `GET /api/trips?from=…&to=…` (Unix seconds or ISO 8601 UTC): one GPX
//!   of every fix in that range, a track segment per recorded moment.
//!
//! The fixes are read from the files (each sample's checksum checked; a
//! damaged one is left out), on the blocking pool. A trip reads at most a
//! day of recordings, and one trip is read at a time.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{CONTENT_DISPOSITION, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::clock::{parse_iso_utc, unix_seconds};
use crate::gps::{Fix, gpx};
use crate::http::respond::{Body, json, json_error, respond};
use crate::record::recorder::RecorderHandle;
use crate::record::scan::{self, Depth};

/// The longest range a trip may span.
const MAX_TRIP: Duration = Duration::from_secs(24 * 3600);
/// A trip is being read (one at a time: each reads many files).
static TRIP_BUSY: AtomicBool = AtomicBool::new(false);

/// One recorded fix and its offset into its segment.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Seconds since the segment's first frame.
    pub t: f64,
    #[serde(flatten)]
    pub fix: Fix,
}

/// One block of the trace as the recorder writes it.
#[derive(serde::Deserialize)]
struct TraceBlock {
    g: Vec<[f64; 5]>,
}

/// The fixes in an open segment file, in order.
pub fn points(file: &File) -> std::io::Result<Vec<Point>> {
    Ok(read_tracks(file, false)?.0)
}

/// The fixes and (if `trace`) the acceleration trace, `[t, x, y, z, m]`.
fn read_tracks(file: &File, trace: bool) -> std::io::Result<(Vec<Point>, Vec<[f64; 5]>)> {
    let s = scan::scan_file(file, Depth::Structure)?;
    let mut accel = Vec::new();
    for r in s.trace.iter().filter(|_| trace) {
        let Ok(bytes) = scan::read_frame(file, r, true) else {
            continue;
        };
        if let Ok(block) = serde_json::from_slice::<TraceBlock>(&bytes) {
            let t0 = r.ts_ms as f64 / 1000.0;
            accel.extend(
                block
                    .g
                    .iter()
                    .map(|g| [t0 + g[0] / 1000.0, g[1], g[2], g[3], g[4]]),
            );
        }
    }
    let mut out = Vec::with_capacity(s.samples.len());
    for r in &s.samples {
        let Ok(bytes) = scan::read_frame(file, r, true) else {
            continue;
        };
        if let Ok(fix) = serde_json::from_slice::<Fix>(&bytes) {
            out.push(Point {
                t: r.ts_ms as f64 / 1000.0,
                fix,
            });
        }
    }
    Ok((out, accel))
}

type Tracks = (Vec<Point>, Vec<[f64; 5]>, SystemTime);

/// Reads a segment's fixes (and its trace if `trace`): `Ok(None)` if there
/// is no such segment.
async fn segment_points(
    rec: &RecorderHandle,
    name: &str,
    trace: bool,
) -> std::io::Result<Option<Tracks>> {
    let store = rec.store.clone();
    let owned = name.to_string();
    smol::unblock(move || {
        let Some((file, entry)) = store.open_segment(&owned)? else {
            return Ok(None);
        };
        let (points, accel) = read_tracks(&file, trace)?;
        Ok(Some((points, accel, entry.start)))
    })
    .await
}

fn gpx_response(doc: String, filename: &str) -> Response<Body> {
    let mut res = respond(StatusCode::OK, "application/gpx+xml", doc);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        res.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    res
}

/// `GET /recordings/NAME.gpx`.
pub async fn segment_gpx(rec: &RecorderHandle, name: &str, path: &str) -> Response<Body> {
    match segment_points(rec, name, false).await {
        Ok(Some((points, _, _))) => {
            let fixes: Vec<Fix> = points.into_iter().map(|p| p.fix).collect();
            let base = name.strip_suffix(".mkv").unwrap_or(name);
            gpx_response(gpx::document(base, &[fixes]), &format!("{base}.gpx"))
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such recording", path),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), path),
    }
}

/// `GET /recordings/NAME/track`.
pub async fn segment_track(rec: &RecorderHandle, name: &str, path: &str) -> Response<Body> {
    match segment_points(rec, name, true).await {
        Ok(Some((points, accel, start))) => json(
            StatusCode::OK,
            &serde_json::json!({
                "name": name, "start": unix_seconds(start), "points": points, "accel": accel
            }),
        ),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such recording", path),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), path),
    }
}

/// A time in a query: Unix seconds or ISO 8601 UTC.
fn time_param(query: Option<&str>, key: &str) -> Result<Option<SystemTime>, ()> {
    let Some(v) = super::query_value(query, key) else {
        return Ok(None);
    };
    let v = v.replace("%3A", ":").replace("%3a", ":");
    if let Some(t) = parse_iso_utc(&v) {
        return Ok(Some(t));
    }
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..1e11).contains(&s) => {
            Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(s)))
        }
        _ => Err(()),
    }
}

/// Clears [`TRIP_BUSY`] when the trip ends, however it ends.
struct TripSlot;

impl Drop for TripSlot {
    fn drop(&mut self) {
        TRIP_BUSY.store(false, Ordering::Release);
    }
}

/// `GET /api/trips?from=…&to=…`.
pub async fn trips(rec: &RecorderHandle, query: Option<&str>, path: &str) -> Response<Body> {
    let (Ok(Some(from)), Ok(to)) = (time_param(query, "from="), time_param(query, "to=")) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "from (and optionally to) must be Unix seconds or ISO 8601 UTC (2026-12-05T20:00:00Z)",
            path,
        );
    };
    let to = to.unwrap_or_else(|| from + MAX_TRIP);
    if to < from || to.duration_since(from).unwrap_or_default() > MAX_TRIP {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a trip spans at most 24 hours, and to comes after from",
            path,
        );
    }
    if TRIP_BUSY.swap(true, Ordering::AcqRel) {
        let mut res = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "another trip is being read; try again in a moment",
            path,
        );
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static("2"));
        return res;
    }
    let slot = TripSlot;
    let store = rec.store.clone();
    let read = smol::unblock(move || {
        let _slot = slot;
        // One file per moment (every camera's carries the same fixes),
        // the moments that overlap the range.
        let mut seen = std::collections::HashSet::new();
        let mut segments = Vec::new();
        for e in store.list() {
            if e.end() < from || e.start > to || !seen.insert(e.seq) {
                continue;
            }
            let Ok(Some((file, _))) = store.open_segment(&e.name) else {
                continue;
            };
            let Ok(points) = points(&file) else {
                continue;
            };
            let fixes: Vec<Fix> = points
                .into_iter()
                .map(|p| p.fix)
                .filter(|f| {
                    f.time
                        .as_deref()
                        .and_then(parse_iso_utc)
                        .is_none_or(|t| t >= from && t <= to)
                })
                .collect();
            segments.push(fixes);
        }
        segments
    })
    .await;
    let name = format!(
        "blackbox trip {}",
        crate::clock::Utc::from_system(from).compact()
    );
    gpx_response(gpx::document(&name, &read), "trip.gpx")
}
