//! `POST /api/update`: an update bundle uploaded from the page, streamed to
//! the update directory on the data partition, and `GET /api/update`: how
//! the upload and the install are going.
//!
//! The server cannot install anything (it runs unprivileged and
//! sandboxed): a complete upload is renamed to `bundle.raucb` beside a
//! `request` file, and `blackbox-update.path` starts the install as root
//! (see [`crate::ota::install`]). The request body is the bundle itself
//! (`application/octet-stream`); its length must be given up front so that
//! a bundle the card has no room for is refused before a byte is written.
//! Like every state change it needs the login and the page's own origin
//! (the guard checks both before this runs).

use std::path::{Path, PathBuf};

use futures_lite::AsyncWriteExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, Response, StatusCode};

use super::respond::{Body, json, json_error, no_store};
use crate::ota::install::{self, BUNDLE, Progress, REQUEST};
use crate::state::AppState;

/// Larger than any bundle we make (~220 MB) by a wide margin.
pub const MAX_BUNDLE: u64 = 2 << 30;
/// Room left on the card beyond the bundle, for the recorder.
const HEADROOM: u64 = 256 << 20;

/// The update directory: `update/` in the data directory.
pub fn dir(state: &AppState) -> PathBuf {
    state.config.record.dir.join("update")
}

fn busy(dir: &Path) -> bool {
    dir.join(REQUEST).exists() || install::read_status(dir).state == "installing"
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// `GET /api/update`.
pub fn status(state: &AppState) -> Response<Body> {
    no_store(json(StatusCode::OK, &install::read_status(&dir(state))))
}

/// `POST /api/update`.
pub async fn upload(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    let path = req.uri().path().to_string();
    let dir = dir(state);
    let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return json_error(
            StatusCode::LENGTH_REQUIRED,
            "send the bundle with a Content-Length",
            &path,
        );
    };
    if len == 0 || len > MAX_BUNDLE {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a bundle is 1 byte to {MAX_BUNDLE} bytes; this is {len}"),
            &path,
        );
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot create {}: {e}", dir.display()),
            &path,
        );
    }
    if busy(&dir) {
        return json_error(StatusCode::CONFLICT, "an update is being installed", &path);
    }
    if free_bytes(&dir).is_some_and(|free| free < len + HEADROOM) {
        return json_error(
            StatusCode::INSUFFICIENT_STORAGE,
            "not enough room on the card for this bundle",
            &path,
        );
    }
    let part = dir.join(format!("{BUNDLE}.part"));
    match receive(req, &part, len).await {
        Ok(()) => {}
        Err(why) => {
            let _ = std::fs::remove_file(&part);
            let _ = install::write_status(
                &dir,
                &Progress {
                    state: "failed".into(),
                    percent: 0,
                    message: why.clone(),
                },
            );
            return json_error(StatusCode::BAD_REQUEST, &why, &path);
        }
    }
    let p = Progress {
        state: "queued".into(),
        percent: 0,
        message: "uploaded; the install starts".into(),
    };
    let (d, status) = (dir.clone(), p.clone());
    let queued = smol::unblock(move || {
        std::fs::rename(d.join(format!("{BUNDLE}.part")), d.join(BUNDLE))?;
        let _ = install::write_status(&d, &status);
        std::fs::write(d.join(REQUEST), "install\n")
    })
    .await;
    if let Err(e) = queued {
        let _ = std::fs::remove_file(&part);
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot queue the install: {e}"),
            &path,
        );
    }
    log::info!("update: {len} bytes uploaded; install requested");
    no_store(json(StatusCode::ACCEPTED, &p))
}

/// Streams the body into `part`, exactly `len` bytes, synced.
async fn receive(req: Request<Incoming>, part: &Path, len: u64) -> Result<(), String> {
    let mut file = smol::fs::File::create(part)
        .await
        .map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    let mut body = req.into_body();
    // Upload progress is the page's to show (it knows what it sent);
    // the card gets the bundle and nothing else.
    let mut got: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the upload broke off: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        got += data.len() as u64;
        if got > len {
            return Err("more bytes than Content-Length".into());
        }
        file.write_all(&data)
            .await
            .map_err(|e| format!("cannot write the bundle: {e}"))?;
    }
    if got != len {
        return Err(format!("the upload ended after {got} of {len} bytes"));
    }
    file.sync_all()
        .await
        .map_err(|e| format!("cannot sync the bundle: {e}"))
}
