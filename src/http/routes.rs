//! Request routing: which path does what, method checks, JSON errors.

use std::time::Duration;

use futures_lite::future;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use smol::Timer;

use super::mjpeg;
use super::respond::{Body, json_error, no_store, not_allowed, respond};
use super::status::Status;
use crate::clock::monotonic_now;
use crate::frame::Frame;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("ui/index.html");
/// How long a snapshot waits for a frame when nothing is flowing.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// Answers one request.
pub async fn handle(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    if let Some(res) =
        super::recordings::handle(req.method(), &path, query.as_deref(), req.headers(), state).await
    {
        return res;
    }
    let readable = matches!(*req.method(), Method::GET | Method::HEAD);
    let known = matches!(
        path.as_str(),
        "/" | "/index.html"
            | "/video_feed"
            | "/stream"
            | "/snapshot.jpg"
            | "/api/status"
            | "/metrics"
    );
    if !known {
        return json_error(StatusCode::NOT_FOUND, "not found", &path);
    }
    if !readable {
        return not_allowed("GET, HEAD", &path);
    }
    match path.as_str() {
        "/" | "/index.html" => no_store(respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX_HTML,
        )),
        "/video_feed" | "/stream" => stream(state),
        "/snapshot.jpg" => snapshot(state, &path).await,
        "/api/status" => {
            let body = serde_json::to_vec(&Status::gather(state)).unwrap_or_default();
            no_store(respond(StatusCode::OK, "application/json", body))
        }
        _ => no_store(respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Status::gather(state).prometheus(),
        )),
    }
}

fn stream(state: &AppState) -> Response<Body> {
    let mut res = Response::new(mjpeg::body(&state.bus));
    let h = res.headers_mut();
    let ct = format!("multipart/x-mixed-replace;boundary={}", mjpeg::BOUNDARY);
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(CONTENT_TYPE, v);
    }
    no_store(res)
}

fn jpeg(frame: &Frame) -> Response<Body> {
    let mut res = respond(StatusCode::OK, "image/jpeg", frame.jpeg.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("{:.6}", frame.captured.unix_seconds())) {
        res.headers_mut().insert("x-timestamp", v);
    }
    no_store(res)
}

/// The newest frame. When frames are flowing it is sent at once; otherwise
/// (nobody watching, so nothing is encoded) the request becomes a viewer
/// for one frame.
async fn snapshot(state: &AppState, path: &str) -> Response<Body> {
    let fresh =
        Duration::from_secs(2) / state.config.camera.fps.max(1) + Duration::from_millis(100);
    if let Some(frame) = state.bus.latest()
        && monotonic_now().saturating_sub(frame.captured.mono) < fresh
    {
        return jpeg(&frame);
    }
    let mut viewer = state.bus.viewer();
    let frame = future::or(viewer.next(), async {
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
