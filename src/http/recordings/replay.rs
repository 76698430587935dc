//! `GET /recordings/NAME/play?t=SECONDS`: a segment replayed as multipart
//! MJPEG at its recorded pace, from the frame nearest `t` (a `<video>`
//! element cannot play MJPEG in Matroska; an `<img>` can show this). Pausing
//! is closing; seeking is a new request. Each frame's checksum is checked as
//! it is read; a frame that fails is skipped. The file is opened once, so a
//! segment moved to `events/` mid-replay keeps playing.
//!
//! `GET /recordings/NAME/frame?t=SECONDS` (or `?at=UNIX_SECONDS`): the one
//! frame nearest that time, with its capture time in `X-Timestamp`. The page
//! replays a moment's cameras together with it: each step shows the first
//! camera's frame for the player's clock and every other camera's frame
//! nearest that frame's own time, so they stay within a frame interval.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::stream;
use hyper::{Response, StatusCode};
use smol::Timer;

use crate::clock::unix_seconds;
use crate::http::multipart;
use crate::http::respond::{Body, json_error, no_store, respond};
use crate::record::recorder::RecorderHandle;
use crate::record::scan::{self, Depth, FrameRef};
use hyper::header::HeaderValue;

struct Play {
    file: Arc<File>,
    frames: Arc<Vec<FrameRef>>,
    next: usize,
    /// When the first frame was sent, and its timestamp.
    t0: Option<(Instant, u64)>,
    started: f64,
}

/// The number `key=` in the query, if given: `Err` when it is not a
/// finite number >= 0.
fn seconds(query: Option<&str>, key: &str) -> Result<Option<f64>, ()> {
    let Some(v) = super::query_value(query, key) else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(Some(t)),
        _ => Err(()),
    }
}

/// The index of the frame whose timestamp is nearest `ms`.
fn nearest(frames: &[FrameRef], ms: u64) -> usize {
    frames
        .iter()
        .enumerate()
        .min_by_key(|(_, f)| f.ts_ms.abs_diff(ms))
        .map_or(0, |(i, _)| i)
}

/// Frame lists of recently asked-for segments, so that a replay asking for
/// a frame at every step scans each file once: (name, length, frames,
/// start in Unix seconds), newest last, at most [`INDEXED`].
type Indexed = (String, u64, Arc<Vec<FrameRef>>, f64);
static INDEX: std::sync::Mutex<Vec<Indexed>> = std::sync::Mutex::new(Vec::new());
/// Segments whose frame lists are kept (a few kilobytes each).
const INDEXED: usize = 8;

/// The frames of an open segment and its start, scanned or remembered.
fn frames_of(
    name: &str,
    file: &File,
    entry: &crate::record::index::Entry,
) -> std::io::Result<(Arc<Vec<FrameRef>>, f64)> {
    let len = file.metadata()?.len();
    {
        let mut ix = crate::sync::lock(&INDEX);
        if let Some(i) = ix.iter().position(|e| e.0 == name && e.1 == len) {
            let hit = ix.remove(i);
            let out = (hit.2.clone(), hit.3);
            ix.push(hit);
            return Ok(out);
        }
    }
    let s = scan::scan_file(file, Depth::Structure)?;
    let started = unix_seconds(s.started.unwrap_or(entry.start));
    let frames = Arc::new(s.frames);
    let mut ix = crate::sync::lock(&INDEX);
    ix.retain(|e| e.0 != name);
    if ix.len() >= INDEXED {
        ix.remove(0);
    }
    ix.push((name.to_string(), len, frames.clone(), started));
    Ok((frames, started))
}

/// One frame of a segment: at `t` seconds into it, or nearest the wall-clock
/// time `at`.
pub async fn frame(
    rec: &RecorderHandle,
    name: &str,
    query: Option<&str>,
    path: &str,
) -> Response<Body> {
    let (Ok(t), Ok(at)) = (seconds(query, "t="), seconds(query, "at=")) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "t and at must be numbers of seconds >= 0",
            path,
        );
    };
    let store = rec.store.clone();
    let owned = name.to_string();
    let found = smol::unblock(move || {
        let Some((file, entry)) = store.open_segment(&owned)? else {
            return Ok(None);
        };
        let (frames, started) = frames_of(&owned, &file, &entry)?;
        if frames.is_empty() {
            return Ok(Some(None));
        }
        let ms = match (at, t) {
            (Some(at), _) => ((at - started).max(0.0) * 1000.0) as u64,
            (None, t) => (t.unwrap_or(0.0) * 1000.0) as u64,
        };
        let f = frames[nearest(&frames, ms)];
        let jpeg = scan::read_frame(&file, &f, true)?;
        Ok::<_, std::io::Error>(Some(Some((
            jpeg,
            started + f.ts_ms as f64 / 1000.0,
            f.ts_ms,
        ))))
    })
    .await;
    match found {
        Ok(Some(Some((jpeg, at, ts_ms)))) => {
            let mut res = respond(StatusCode::OK, "image/jpeg", jpeg);
            for (k, v) in [
                ("x-timestamp", format!("{at:.6}")),
                ("x-offset", format!("{:.3}", ts_ms as f64 / 1000.0)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    res.headers_mut().insert(k, v);
                }
            }
            no_store(res)
        }
        Ok(Some(None)) => json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the recording holds no frames",
            path,
        ),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such recording", path),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "that frame is damaged",
            path,
        ),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), path),
    }
}

pub async fn play(
    rec: &RecorderHandle,
    name: &str,
    query: Option<&str>,
    path: &str,
) -> Response<Body> {
    let t = match seconds(query, "t=") {
        Ok(t) => t.unwrap_or(0.0),
        Err(()) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "t must be a number of seconds >= 0",
                path,
            );
        }
    };
    let store = rec.store.clone();
    let owned = name.to_string();
    let opened = smol::unblock(move || {
        let Some((file, entry)) = store.open_segment(&owned)? else {
            return Ok(None);
        };
        let s = scan::scan_file(&file, Depth::Structure)?;
        Ok::<_, std::io::Error>(Some((file, entry, s)))
    })
    .await;
    let (file, entry, s) = match opened {
        Ok(Some(x)) => x,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "no such recording", path),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), path),
    };
    if s.frames.is_empty() {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the recording holds no frames",
            path,
        );
    }
    let first = nearest(&s.frames, (t * 1000.0) as u64);
    let play = Play {
        file: Arc::new(file),
        frames: Arc::new(s.frames),
        next: first,
        t0: None,
        started: unix_seconds(s.started.unwrap_or(entry.start)),
    };
    let parts = stream::unfold(play, |mut p| async move {
        loop {
            let f = *p.frames.get(p.next)?;
            p.next += 1;
            let (t0, base) = *p.t0.get_or_insert((Instant::now(), f.ts_ms));
            let due = t0 + Duration::from_millis(f.ts_ms.saturating_sub(base));
            if due > Instant::now() {
                Timer::at(due).await;
            }
            let file = p.file.clone();
            match smol::unblock(move || scan::read_frame(&file, &f, true)).await {
                Ok(jpeg) => {
                    let at = p.started + f.ts_ms as f64 / 1000.0;
                    return Some((Ok((Bytes::from(jpeg), at)), p));
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    log::debug!("replay: skipping a frame: {e}");
                }
                Err(e) => {
                    return Some((
                        Err(e),
                        Play {
                            next: usize::MAX,
                            ..p
                        },
                    ));
                }
            }
        }
    });
    multipart::response(Box::pin(parts))
}
