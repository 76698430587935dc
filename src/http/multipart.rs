//! `multipart/x-mixed-replace` MJPEG, the one writer behind both the live
//! stream and replay: one part per JPEG, each with `Content-Type`,
//! `Content-Length` and `X-Timestamp` (capture time, Unix seconds with
//! microseconds). Each part is followed at once by the next boundary, so a
//! browser shows a frame as soon as it has arrived rather than when the next
//! one starts.
//!
//! The body pulls the next JPEG from its source only when hyper is ready to
//! send more, so a slow client makes its source skip (live) or wait
//! (replay), never queue.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use futures_lite::{Stream, StreamExt, stream};
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame as BodyFrame;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::respond::{Body, no_store};

pub const BOUNDARY: &str = "blackboxframe";
const FIRST: &[u8] = b"--blackboxframe\r\n";
const NEXT: &[u8] = b"\r\n--blackboxframe\r\n";

/// One part: a JPEG and the Unix time it was captured.
pub type Part = (Bytes, f64);

/// The part headers for a JPEG of `len` bytes captured at `unix_seconds`.
fn head(len: usize, unix_seconds: f64) -> Bytes {
    Bytes::from(format!(
        "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {unix_seconds:.6}\r\n\r\n"
    ))
}

struct Writer<S> {
    parts: S,
    queued: VecDeque<Bytes>,
}

/// A streaming response of `parts`, until the source ends or fails.
pub fn response<S>(parts: S) -> Response<Body>
where
    S: Stream<Item = io::Result<Part>> + Send + Unpin + 'static,
{
    let w = Writer {
        parts,
        queued: VecDeque::from([Bytes::from_static(FIRST)]),
    };
    let frames = stream::unfold(w, |mut w| async move {
        if let Some(bytes) = w.queued.pop_front() {
            return Some((Ok(BodyFrame::data(bytes)), w));
        }
        match w.parts.next().await? {
            Ok((jpeg, at)) => {
                let h = head(jpeg.len(), at);
                w.queued.push_back(jpeg);
                w.queued.push_back(Bytes::from_static(NEXT));
                Some((Ok(BodyFrame::data(h)), w))
            }
            Err(e) => Some((Err(e), w)),
        }
    });
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    let ct = format!("multipart/x-mixed-replace;boundary={BOUNDARY}");
    if let Ok(v) = HeaderValue::from_str(&ct) {
        res.headers_mut().insert(CONTENT_TYPE, v);
    }
    no_store(res)
}
