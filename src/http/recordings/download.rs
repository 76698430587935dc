//! `GET /recordings/NAME`: a finished segment as a download, whole or one
//! byte range ([`crate::http::range`]). The file is opened once, wherever it
//! is, and read from that open file: a segment that an event moves to
//! `events/`, or that loop deletion removes, while it downloads keeps
//! downloading.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures_lite::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue,
    RANGE,
};
use hyper::{HeaderMap, Response, StatusCode};

use crate::http::range::{self, Range};
use crate::http::respond::{Body, empty, json_error};
use crate::record::recorder::RecorderHandle;

/// Bytes read from the file at a time.
const CHUNK: u64 = 256 * 1024;

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

pub async fn download(
    rec: &RecorderHandle,
    name: &str,
    headers: &HeaderMap,
    path: &str,
) -> Response<Body> {
    let store = rec.store.clone();
    let owned = name.to_string();
    let opened = smol::unblock(move || {
        let (file, entry) = match store.open_segment(&owned)? {
            Some(x) => x,
            None => return Ok(None),
        };
        let len = file.metadata()?.len();
        Ok::<_, std::io::Error>(Some((file, entry, len)))
    })
    .await;
    let (file, _, len) = match opened {
        Ok(Some(x)) => x,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "no such recording", path),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), path),
    };
    let asked = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range::parse(asked, len) {
        Range::Whole => (StatusCode::OK, 0, len.saturating_sub(1)),
        Range::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Range::Unsatisfiable => {
            let mut res = json_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable",
                path,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(CONTENT_RANGE, v);
            }
            return res;
        }
    };
    let body = if len == 0 {
        empty()
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
