//! Building responses: the one body type every handler returns (a whole
//! buffer or a stream), JSON and JSON errors, `no-store` caching headers and
//! the 405 with its `Allow` list.

use std::io;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, PRAGMA};
use hyper::{Response, StatusCode};

/// Every response body: a whole buffer or a stream.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

const NO_STORE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A complete response with its type and length.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let body = body.into();
    let len = body.len();
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// A JSON error: `{"error": ..., "status": ..., "path": ...}`.
pub fn json_error(status: StatusCode, message: &str, path: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "status": status.as_u16(), "path": path });
    respond(status, "application/json", body.to_string())
}

/// 405 with the methods the path accepts.
pub fn not_allowed(allow: &'static str, path: &str) -> Response<Body> {
    let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", path);
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

/// Marks a response as never to be cached (live data).
pub fn no_store(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
