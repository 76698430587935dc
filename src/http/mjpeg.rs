//! The live stream: `multipart/x-mixed-replace` MJPEG, one part per frame,
//! each with `Content-Type`, `Content-Length` and `X-Timestamp` (capture time,
//! Unix seconds). Each part is followed at once by the next boundary, so a
//! browser shows a frame as soon as it has arrived rather than when the next
//! one starts.
//!
//! The body asks the bus for a frame only when hyper is ready to send one,
//! so a slow viewer gets the newest frame and skips the rest.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures_lite::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;

use crate::bus::{Bus, Viewer};
use crate::frame::Frame;

pub const BOUNDARY: &str = "blackboxframe";
pub const FIRST: &[u8] = b"--blackboxframe\r\n";
pub const NEXT: &[u8] = b"\r\n--blackboxframe\r\n";

struct Feed {
    viewer: Viewer,
    queued: VecDeque<Bytes>,
}

/// The part headers for a JPEG of `len` bytes captured at `unix_seconds`.
pub fn head(len: usize, unix_seconds: f64) -> Bytes {
    Bytes::from(format!(
        "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {unix_seconds:.6}\r\n\r\n"
    ))
}

/// The part headers for one frame.
pub fn part_head(frame: &Frame) -> Bytes {
    head(frame.jpeg.len(), frame.captured.unix_seconds())
}

/// A streaming body that sends frames to one viewer until the bus closes.
pub fn body(bus: &Arc<Bus>) -> super::respond::Body {
    let feed = Feed {
        viewer: bus.viewer(),
        queued: VecDeque::from([Bytes::from_static(FIRST)]),
    };
    let parts = stream::unfold(feed, |mut feed| async move {
        if let Some(bytes) = feed.queued.pop_front() {
            return Some((Ok::<_, std::io::Error>(BodyFrame::data(bytes)), feed));
        }
        let frame = feed.viewer.next().await?;
        feed.queued.push_back(frame.jpeg.clone());
        feed.queued.push_back(Bytes::from_static(NEXT));
        Some((Ok(BodyFrame::data(part_head(&frame))), feed))
    });
    StreamBody::new(parts).boxed_unsync()
}
