//! Recording over HTTP: start and stop, events, the list of segments, their
//! download (with `Range`), replay in the page as paced MJPEG, deletion and
//! protection. Names must be ones blackbox writes
//! ([`crate::record::names`]), so no request can reach outside the data
//! directory. File reads run on the blocking pool, never on the executor.

mod download;
mod list;
mod replay;
pub mod track;

use hyper::{HeaderMap, Method, Response, StatusCode};

use super::respond::{Body, empty, json, json_error, not_allowed};
use crate::clock::{Timestamp, unix_seconds};
use crate::record::names;
use crate::record::recorder::{Command, RecorderHandle};
use crate::record::store::DeleteError;
use crate::state::AppState;

fn disabled(path: &str) -> Response<Body> {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "recording is disabled (record.enabled = false)",
        path,
    )
}

fn not_running(path: &str) -> Response<Body> {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the recorder is not running",
        path,
    )
}

/// The value of `key` (given with its `=`, e.g. `"t="`) in a query string.
fn query_value<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix(key))
}

/// Splits `NAME` or `NAME/ACTION` and checks the name.
fn split_name(rest: &str) -> Option<(&str, Option<&str>)> {
    let (name, action) = match rest.split_once('/') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    names::parse(name).map(|_| (name, action))
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
    let (api, rest) = match path {
        "/api/recording/start"
        | "/api/recording/stop"
        | "/api/events"
        | "/api/recordings"
        | "/api/trips" => (true, None),
        _ => match (
            path.strip_prefix("/api/recordings/"),
            path.strip_prefix("/recordings/"),
        ) {
            (Some(rest), _) => (true, Some(rest)),
            (None, Some(rest)) => (false, Some(rest)),
            (None, None) => return None,
        },
    };
    let Some(rec) = state.recorder.as_ref() else {
        return Some(disabled(path));
    };
    let Some(rest) = rest else {
        return Some(match path {
            "/api/recordings" if readable => {
                list::list(rec, &state.cameras.first().id, &state.clock).await
            }
            "/api/recordings" => not_allowed("GET, HEAD", path),
            "/api/trips" if readable => track::trips(rec, query, path).await,
            "/api/trips" => not_allowed("GET, HEAD", path),
            _ if !post => not_allowed("POST", path),
            "/api/events" => event(rec, state, "api"),
            _ => {
                let on = path.ends_with("start");
                rec.set_recording(on);
                json(StatusCode::OK, &serde_json::json!({ "recording": on }))
            }
        });
    };
    // NAME.gpx: the segment's GPS track (NAME with or without .mkv).
    let gpx_name = (!api)
        .then(|| rest.strip_suffix(".gpx"))
        .flatten()
        .filter(|n| !n.contains('/'))
        .map(|n| {
            if n.ends_with(".mkv") {
                n.to_string()
            } else {
                format!("{n}.mkv")
            }
        });
    if let Some(name) = gpx_name {
        return Some(match names::parse(&name) {
            None => json_error(StatusCode::BAD_REQUEST, "invalid recording name", path),
            Some(_) if readable => track::segment_gpx(rec, &name, path).await,
            Some(_) => not_allowed("GET, HEAD", path),
        });
    }
    let Some((name, action)) = split_name(rest) else {
        return Some(json_error(
            StatusCode::BAD_REQUEST,
            "invalid recording name",
            path,
        ));
    };
    Some(match (api, action) {
        (true, None) if method == Method::DELETE => delete(rec, name, path).await,
        (true, None) => not_allowed("DELETE", path),
        (true, Some("protect")) if post => protect(rec, name, path).await,
        (true, Some("protect")) => not_allowed("POST", path),
        (false, None) if readable => download::download(rec, name, headers, path).await,
        (false, Some("play")) if readable => replay::play(rec, name, query, path).await,
        (false, Some("frame")) if readable => replay::frame(rec, name, query, path).await,
        (false, Some("track")) if readable => track::segment_track(rec, name, path).await,
        (false, None | Some("play") | Some("frame") | Some("track")) => {
            not_allowed("GET, HEAD", path)
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found", path),
    })
}

/// Marks an event now; answers the window it protects.
pub fn event(rec: &RecorderHandle, state: &AppState, reason: &str) -> Response<Body> {
    let at = Timestamp::now();
    rec.event(at, reason);
    let at = unix_seconds(at.wall);
    let (pre, post) = (
        state.config.event.pre_seconds as f64,
        state.config.event.post_seconds as f64,
    );
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "at": at, "from": at - pre, "to": at + post }),
    )
}

async fn delete(rec: &RecorderHandle, name: &str, path: &str) -> Response<Body> {
    let (tx, rx) = async_channel::bounded(1);
    let cmd = Command::Delete {
        name: name.to_string(),
        reply: tx,
    };
    match rec.ask(cmd, rx).await {
        Some(Ok(())) => {
            let mut res = Response::new(empty());
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
        None => not_running(path),
    }
}

async fn protect(rec: &RecorderHandle, name: &str, path: &str) -> Response<Body> {
    let (tx, rx) = async_channel::bounded(1);
    let cmd = Command::Protect {
        name: name.to_string(),
        reply: tx,
    };
    match rec.ask(cmd, rx).await {
        Some(Ok(true)) => json(
            StatusCode::OK,
            &serde_json::json!({ "name": name, "protected": true }),
        ),
        Some(Ok(false)) => json_error(StatusCode::NOT_FOUND, "no such finished recording", path),
        Some(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e, path),
        None => not_running(path),
    }
}
