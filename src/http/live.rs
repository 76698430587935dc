//! The live view: the MJPEG stream (`/video_feed`, `/stream`) and the
//! newest frame as one JPEG (`/snapshot.jpg`). A viewer is a live consumer
//! of the bus: it gets the newest frame whenever it can take one and skips
//! (and counts) the rest, so a viewer on a slow link holds at most one frame
//! and delays nobody.

use std::time::Duration;

use futures_lite::{future, stream};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use smol::Timer;

use super::multipart;
use super::respond::{Body, json_error, no_store, respond};
use crate::cameras::CameraUnit;
use crate::clock::monotonic_now;
use crate::frame::Frame;

/// How long a snapshot waits for a frame when nothing is flowing.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// A camera's live stream, until its bus closes (shutdown) or the client
/// leaves.
pub fn stream(camera: &CameraUnit) -> Response<Body> {
    let viewer = camera.bus.viewer();
    let parts = stream::unfold(viewer, |mut v| async move {
        let f = v.next().await?;
        Some((Ok((f.jpeg.clone(), f.captured.unix_seconds())), v))
    });
    multipart::response(Box::pin(parts))
}

fn jpeg(frame: &Frame) -> Response<Body> {
    let mut res = respond(StatusCode::OK, "image/jpeg", frame.jpeg.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("{:.6}", frame.captured.unix_seconds())) {
        res.headers_mut().insert("x-timestamp", v);
    }
    no_store(res)
}

/// A camera's newest frame. When frames are flowing it is sent at once;
/// otherwise (nobody watching, so nothing is encoded) the request becomes a
/// viewer for one frame.
pub async fn snapshot(camera: &CameraUnit, path: &str) -> Response<Body> {
    let fresh = Duration::from_secs(2) / camera.config.fps.max(1) + Duration::from_millis(100);
    if let Some(frame) = camera.bus.latest()
        && monotonic_now().saturating_sub(frame.captured.mono) < fresh
    {
        return jpeg(&frame);
    }
    // A camera nobody watches encodes nothing: a new viewer is first handed
    // the last frame it made, however old, so wait for a new one.
    let mut viewer = camera.bus.viewer();
    let asked = monotonic_now();
    let next_fresh = async {
        loop {
            let f = viewer.next().await?;
            if f.captured.mono + fresh >= asked {
                return Some(f);
            }
        }
    };
    let frame = future::or(next_fresh, async {
        Timer::after(SNAPSHOT_WAIT).await;
        None
    })
    .await;
    match frame {
        Some(frame) => jpeg(&frame),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no frame from the camera",
            path,
        ),
    }
}
