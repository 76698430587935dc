//! `GET /recordings/NAME/play?t=SECONDS`: a segment replayed as multipart
//! MJPEG at its recorded pace, from the frame nearest `t` (a `<video>`
//! element cannot play MJPEG in Matroska; an `<img>` can show this). Pausing
//! is closing; seeking is a new request. Each frame's checksum is checked as
//! it is read; a frame that fails is skipped. The file is opened once, so a
//! segment moved to `events/` mid-replay keeps playing.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::stream;
use hyper::{Response, StatusCode};
use smol::Timer;

use crate::clock::unix_seconds;
use crate::http::multipart;
use crate::http::respond::{Body, json_error};
use crate::record::recorder::RecorderHandle;
use crate::record::scan::{self, Depth, FrameRef};

struct Play {
    file: Arc<File>,
    frames: Arc<Vec<FrameRef>>,
    next: usize,
    /// When the first frame was sent, and its timestamp.
    t0: Option<(Instant, u64)>,
    started: f64,
}

pub async fn play(
    rec: &RecorderHandle,
    name: &str,
    query: Option<&str>,
    path: &str,
) -> Response<Body> {
    let t = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("t="))
        .map_or(Ok(0.0), str::parse::<f64>);
    let t = match t {
        Ok(t) if t.is_finite() && t >= 0.0 => t,
        _ => {
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
    let want = (t * 1000.0) as u64;
    let first = s
        .frames
        .iter()
        .enumerate()
        .min_by_key(|(_, f)| f.ts_ms.abs_diff(want))
        .map_or(0, |(i, _)| i);
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
