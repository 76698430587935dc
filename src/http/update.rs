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

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_lite::AsyncWriteExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, Response, StatusCode};

use super::body::BodyReader;
use super::respond::{Body, json, json_error, no_store};
use crate::net::Busy;
use crate::ota::install::{self, BUNDLE, Progress, REQUEST};
use crate::state::AppState;

/// Larger than any bundle we make (~220 MB) by a wide margin.
pub const MAX_BUNDLE: u64 = 2 << 30;
/// Room left on the card beyond the bundle and the recorder's `min_free`.
const HEADROOM: u64 = 256 << 20;
/// Numbers each upload's temporary file.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// The update directory: `update/` in the data directory.
pub fn dir(state: &AppState) -> PathBuf {
    state.config.record.dir.join("update")
}

/// An install is asked for, queued, running, or rebooting into its result.
fn busy(dir: &Path) -> bool {
    dir.join(REQUEST).exists()
        || matches!(
            install::read_status(dir).state.as_str(),
            "queued" | "installing" | "rebooting"
        )
}

/// Marks the one upload in progress; dropping it lets the next one in.
struct Uploading<'a>(&'a AtomicBool);

impl<'a> Uploading<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::SeqCst)).then_some(Self(flag))
    }
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// (free, total) bytes of the file system holding `dir`.
fn space(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let f = st.fragment_size() as u64;
    Some((st.blocks_available() as u64 * f, st.blocks() as u64 * f))
}

/// `GET /api/update`.
pub fn status(state: &AppState) -> Response<Body> {
    no_store(json(StatusCode::OK, &install::read_status(&dir(state))))
}

/// `POST /api/update`.
pub async fn upload(req: Request<Incoming>, state: &AppState, busy_conn: &Busy) -> Response<Body> {
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
    let Some(_uploading) = Uploading::take(&state.uploading) else {
        return json_error(StatusCode::CONFLICT, "another upload is under way", &path);
    };
    if busy(&dir) {
        return json_error(StatusCode::CONFLICT, "an update is being installed", &path);
    }
    // The recorder keeps record.min_free free by deleting the oldest
    // footage: a bundle must fit above that line, with room to spare.
    if let Some((free, total)) = space(&dir) {
        let keep = state.config.record.min_free.bytes(total) + HEADROOM;
        if free < len.saturating_add(keep) {
            return json_error(
                StatusCode::INSUFFICIENT_STORAGE,
                &format!(
                    "not enough room on the card for this bundle: {len} bytes, {free} free, \
                     {keep} kept free for recording"
                ),
                &path,
            );
        }
    }
    // Only one upload runs at a time: any temporary file is a stale one
    // (a restart in the middle of an upload).
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".upload-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // A name of its own, made here and nowhere else.
    let part = dir.join(format!(
        ".upload-{}-{}.part",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    match receive(req, &part, len, busy_conn).await {
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
    let (d, status, part_done) = (dir.clone(), p.clone(), part.clone());
    let queued = smol::unblock(move || {
        std::fs::rename(&part_done, d.join(BUNDLE))?;
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

/// Streams the body into `part` (a new file), exactly `len` bytes, synced,
/// at no less than the minimum rate ([`super::body`]).
async fn receive(req: Request<Incoming>, part: &Path, len: u64, busy: &Busy) -> Result<(), String> {
    let create = {
        let part = part.to_path_buf();
        smol::unblock(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .mode(0o600)
                .open(part)
        })
    };
    let mut file = smol::fs::File::from(
        create
            .await
            .map_err(|e| format!("cannot create {}: {e}", part.display()))?,
    );
    let mut body = BodyReader::new(req.into_body(), busy);
    // Upload progress is the page's to show (it knows what it sent);
    // the card gets the bundle and nothing else.
    let mut got: u64 = 0;
    while let Some(chunk) = body.next().await {
        let data = chunk.map_err(|e| format!("the upload failed: {e}"))?;
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
