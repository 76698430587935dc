//! Recording over HTTP: start and stop, events, the list of segments, their
//! download (with `Range`), replay in the page as paced MJPEG, deletion and
//! protection. Names are checked against the one pattern blackbox writes
//! (`store::valid_name`), so no request can reach outside the data
//! directory. File reads run on the blocking pool, never on the executor.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_lite::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue,
    RANGE,
};
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde::Serialize;
use smol::Timer;

use super::mjpeg;
use super::respond::{Body, json, json_error, no_store};
use crate::clock::Utc;
use crate::record::mkv;
use crate::record::recorder::{Command, DeleteError};
use crate::record::store;
use crate::state::AppState;
use crate::sync::lock;

const CHUNK: u64 = 256 * 1024;

/// Duration and frame count per file, keyed by name and size, so listing
/// does not rescan files that have not changed.
#[derive(Default)]
pub struct MetaCache(Mutex<HashMap<String, (u64, Meta)>>);

#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    duration_ms: u64,
    frames: u64,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    /// Unix seconds of the first frame.
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

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn disabled(path: &str) -> Response<Body> {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "recording is disabled (record.enabled = false)",
        path,
    )
}

/// Splits `NAME` or `NAME/ACTION` and checks the name.
fn split_name(rest: &str) -> Option<(&str, Option<&str>)> {
    let (name, action) = match rest.split_once('/') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    store::valid_name(name).then_some((name, action))
}

/// Routes under `/api/recording`, `/api/events`, `/api/recordings` and
/// `/recordings/`. `None` when the path is not one of them.
pub async fn handle(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    state: &AppState,
) -> Option<Response<Body>> {
    let post = method == Method::POST;
    let readable = method == Method::GET || method == Method::HEAD;
    let not_allowed = |allow: &'static str| {
        let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", path);
        res.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        res
    };
    Some(match path {
        "/api/recording/start" | "/api/recording/stop" => {
            if !post {
                return Some(not_allowed("POST"));
            }
            let Some(rec) = state.recorder.as_ref() else {
                return Some(disabled(path));
            };
            let start = path.ends_with("start");
            rec.send(if start { Command::Start } else { Command::Stop });
            json(StatusCode::OK, &serde_json::json!({ "recording": start }))
        }
        "/api/events" => {
            if !post {
                return Some(not_allowed("POST"));
            }
            let Some(rec) = state.recorder.as_ref() else {
                return Some(disabled(path));
            };
            let at = SystemTime::now();
            rec.send(Command::Event {
                at,
                reason: "api".into(),
            });
            let (pre, post_s) = (
                state.config.event.pre_seconds,
                state.config.event.post_seconds,
            );
            json(
                StatusCode::ACCEPTED,
                &serde_json::json!({
                    "at": unix(at),
                    "from": unix(at) - pre as f64,
                    "to": unix(at) + post_s as f64,
                }),
            )
        }
        "/api/recordings" => {
            if !readable {
                return Some(not_allowed("GET, HEAD"));
            }
            list(state, path).await
        }
        _ => {
            let (api, rest) = if let Some(rest) = path.strip_prefix("/api/recordings/") {
                (true, rest)
            } else if let Some(rest) = path.strip_prefix("/recordings/") {
                (false, rest)
            } else {
                return None;
            };
            let Some((name, action)) = split_name(rest) else {
                return Some(json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid recording name",
                    path,
                ));
            };
            if api {
                match (method.clone(), action) {
                    (Method::DELETE, None) => delete(state, name, path).await,
                    (Method::POST, Some("protect")) => protect(state, name, path).await,
                    (_, None) => not_allowed("DELETE"),
                    (_, Some("protect")) => not_allowed("POST"),
                    _ => json_error(StatusCode::NOT_FOUND, "not found", path),
                }
            } else {
                if !readable {
                    return Some(not_allowed("GET, HEAD"));
                }
                let Some(rec) = state.recorder.as_ref() else {
                    return Some(disabled(path));
                };
                let Some((file, _)) = rec.store.find(name) else {
                    return Some(json_error(StatusCode::NOT_FOUND, "no such recording", path));
                };
                match action {
                    None => download(file, name, headers, path).await,
                    Some("play") => play(file, query, path).await,
                    Some(_) => json_error(StatusCode::NOT_FOUND, "not found", path),
                }
            }
        }
    })
}

async fn list(state: &AppState, path: &str) -> Response<Body> {
    let Some(rec) = state.recorder.clone() else {
        return disabled(path);
    };
    let cache = state.recordings_meta.clone();
    let status = rec.status();
    let entries = smol::unblock(move || {
        let mut out = Vec::new();
        for protected in [false, true] {
            for seg in rec.store.list(protected) {
                let dir = if protected {
                    &rec.store.events
                } else {
                    &rec.store.recordings
                };
                let meta = {
                    let cached = lock(&cache.0)
                        .get(&seg.name)
                        .filter(|(b, _)| *b == seg.bytes)
                        .map(|(_, m)| *m);
                    match cached {
                        Some(m) => m,
                        None => {
                            let m = mkv::scan(&dir.join(&seg.name))
                                .map(|s| Meta {
                                    duration_ms: s.duration_ms.unwrap_or(0.0) as u64,
                                    frames: s.frames.len() as u64,
                                })
                                .unwrap_or_default();
                            lock(&cache.0).insert(seg.name.clone(), (seg.bytes, m));
                            m
                        }
                    }
                };
                let start = store::name_time(&seg.name).unwrap_or(UNIX_EPOCH);
                out.push(Entry {
                    start: unix(start),
                    start_utc: Utc::from_system(start).display_millis()[..19].to_string(),
                    duration_seconds: meta.duration_ms as f64 / 1000.0,
                    frames: meta.frames,
                    bytes: seg.bytes,
                    protected,
                    recording: false,
                    name: seg.name,
                });
            }
        }
        out
    })
    .await;
    let mut entries = entries;
    if let (Some(name), Some(start)) = (status.segment.clone(), status.segment_started) {
        let t = UNIX_EPOCH + Duration::from_secs_f64(start);
        entries.push(Entry {
            name,
            start,
            start_utc: Utc::from_system(t).display_millis()[..19].to_string(),
            duration_seconds: (unix(SystemTime::now()) - start).max(0.0),
            frames: status.segment_frames,
            bytes: status.segment_bytes,
            protected: false,
            recording: true,
        });
    }
    entries.sort_by(|a, b| b.start.total_cmp(&a.start));
    let body = serde_json::json!({
        "recordings": entries,
        "events": status.events,
        "disk": status.disk,
        "recordings_bytes": status.recordings_bytes,
        "events_bytes": status.events_bytes,
    });
    no_store(json(StatusCode::OK, &body))
}

async fn delete(state: &AppState, name: &str, path: &str) -> Response<Body> {
    let Some(rec) = state.recorder.as_ref() else {
        return disabled(path);
    };
    let (tx, rx) = async_channel::bounded(1);
    let answer = rec
        .ask(
            Command::Delete {
                name: name.to_string(),
                reply: tx,
            },
            rx,
        )
        .await;
    match answer {
        Some(Ok(())) => {
            let mut res = Response::new(super::respond::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        Some(Err(DeleteError::InUse)) => {
            json_error(StatusCode::CONFLICT, "that segment is being recorded", path)
        }
        Some(Err(DeleteError::NotFound)) => {
            json_error(StatusCode::NOT_FOUND, "no such recording", path)
        }
        Some(Err(DeleteError::Io(e))) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e, path),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recorder is not running",
            path,
        ),
    }
}

async fn protect(state: &AppState, name: &str, path: &str) -> Response<Body> {
    let Some(rec) = state.recorder.as_ref() else {
        return disabled(path);
    };
    let (tx, rx) = async_channel::bounded(1);
    match rec
        .ask(
            Command::Protect {
                name: name.to_string(),
                reply: tx,
            },
            rx,
        )
        .await
    {
        Some(Ok(true)) => json(
            StatusCode::OK,
            &serde_json::json!({ "name": name, "protected": true }),
        ),
        Some(Ok(false)) => json_error(StatusCode::NOT_FOUND, "no such finished recording", path),
        Some(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e, path),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recorder is not running",
            path,
        ),
    }
}

/// Parses a single `bytes=` range against a file of `len` bytes:
/// `Ok(None)` for no range, `Err` for one that cannot be satisfied.
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(h) = header else { return Ok(None) };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: send the whole file
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if len == 0 || start >= len || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The bytes `start..=end` of `file`, read in chunks on the blocking pool.
fn file_body(file: Arc<File>, start: u64, end: u64) -> Body {
    let chunks = stream::unfold(start, move |at| {
        let file = file.clone();
        async move {
            if at > end {
                return None;
            }
            let n = CHUNK.min(end + 1 - at);
            let read = smol::unblock(move || {
                let mut buf = vec![0u8; n as usize];
                file.read_exact_at(&mut buf, at).map(|()| buf)
            })
            .await;
            Some(match read {
                Ok(buf) => (Ok(BodyFrame::data(Bytes::from(buf))), at + n),
                Err(e) => (Err(e), end + 1),
            })
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

async fn download(
    path: PathBuf,
    name: &str,
    headers: &HeaderMap,
    req_path: &str,
) -> Response<Body> {
    let opened =
        smol::unblock(move || File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len()))))
            .await;
    let (file, len) = match opened {
        Ok(x) => x,
        Err(e) => return json_error(StatusCode::NOT_FOUND, &e.to_string(), req_path),
    };
    let range = parse_range(headers.get(RANGE).and_then(|v| v.to_str().ok()), len);
    let (status, start, end) = match range {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut res = json_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable",
                req_path,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(CONTENT_RANGE, v);
            }
            return res;
        }
    };
    let body = if len == 0 {
        super::respond::empty()
    } else {
        file_body(Arc::new(file), start, end)
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/x-matroska"));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        CONTENT_LENGTH,
        HeaderValue::from(if len == 0 { 0 } else { end + 1 - start }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(CONTENT_RANGE, v);
    }
    res
}

/// Replays a segment as multipart MJPEG at its recorded pace, from the
/// frame nearest `t` seconds.
async fn play(path: PathBuf, query: Option<&str>, req_path: &str) -> Response<Body> {
    let t = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("t="))
        .map(|v| v.parse::<f64>())
        .unwrap_or(Ok(0.0));
    let t = match t {
        Ok(t) if t.is_finite() && t >= 0.0 => t,
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "t must be a number of seconds >= 0",
                req_path,
            );
        }
    };
    let scanned = {
        let path = path.clone();
        smol::unblock(move || {
            let scan = mkv::scan(&path)?;
            let file = File::open(&path)?;
            Ok::<_, std::io::Error>((scan, file))
        })
        .await
    };
    let (scan, file) = match scanned {
        Ok(x) => x,
        Err(e) => return json_error(StatusCode::NOT_FOUND, &e.to_string(), req_path),
    };
    if scan.frames.is_empty() {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the recording holds no frames",
            req_path,
        );
    }
    let want = (t * 1000.0) as u64;
    let first = scan
        .frames
        .iter()
        .enumerate()
        .min_by_key(|(_, f)| f.ts_ms.abs_diff(want))
        .map_or(0, |(i, _)| i);
    let started = scan.started.unwrap_or(UNIX_EPOCH);
    let frames = Arc::new(scan.frames);
    let file = Arc::new(file);
    struct Play {
        i: usize,
        t0: Option<Instant>,
        queued: Vec<Bytes>,
    }
    let parts = stream::unfold(
        Play {
            i: first,
            t0: None,
            queued: vec![Bytes::from_static(mjpeg::FIRST)],
        },
        move |mut p| {
            let (frames, file) = (frames.clone(), file.clone());
            async move {
                if let Some(b) = p.queued.pop() {
                    return Some((Ok(BodyFrame::data(b)), p));
                }
                let f = *frames.get(p.i)?;
                let base = frames[first].ts_ms;
                let t0 = *p.t0.get_or_insert_with(Instant::now);
                let due = t0 + Duration::from_millis(f.ts_ms - base);
                if due > Instant::now() {
                    Timer::at(due).await;
                }
                let jpeg = smol::unblock(move || mkv::read_frame(&file, &f)).await;
                let jpeg = match jpeg {
                    Ok(j) => Bytes::from(j),
                    Err(e) => return Some((Err(e), Play { i: usize::MAX, ..p })),
                };
                p.i += 1;
                let at = unix(started) + f.ts_ms as f64 / 1000.0;
                p.queued = vec![Bytes::from_static(mjpeg::NEXT), jpeg.clone()];
                Some((Ok(BodyFrame::data(mjpeg::head(jpeg.len(), at))), p))
            }
        },
    );
    let mut res = Response::new(StreamBody::new(parts).boxed_unsync());
    if let Ok(v) = HeaderValue::from_str(&format!(
        "multipart/x-mixed-replace;boundary={}",
        mjpeg::BOUNDARY
    )) {
        res.headers_mut().insert(CONTENT_TYPE, v);
    }
    no_store(res)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=9-2"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=x-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
    }
}
