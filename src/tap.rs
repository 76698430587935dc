//! The frame tap: every frame of one camera, in order, to local programs
//! over TCP (the seed's C-to-Python socket). Each message is a 4-byte
//! big-endian length followed by that many bytes of JPEG; nothing is sent
//! the other way. Each camera has a tap of its own (its own port), so the
//! messages stay what one-camera readers expect.
//!
//! Each client is an ordered subscriber of the bus with a queue of
//! `tap.queue_frames`; a client that falls further behind loses the oldest
//! frames (counted as ordered overflow), and one whose socket accepts
//! nothing for `http.write_timeout` is disconnected.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use futures_lite::{AsyncWriteExt, future};
use smol::{Async, Executor, Timer};

use crate::cameras::CameraUnit;
use crate::net::accept_until_shutdown;
use crate::state::{AppState, Gauge};

/// Accepts tap clients of `camera` until shutdown.
pub async fn serve(
    listener: Async<TcpListener>,
    camera: Arc<CameraUnit>,
    state: Arc<AppState>,
    ex: Arc<Executor<'static>>,
) {
    accept_until_shutdown(&listener, &state.shutdown, &ex, "tap", |stream| {
        client(stream, camera.clone(), state.clone())
    })
    .await;
}

async fn client(mut stream: Async<TcpStream>, camera: Arc<CameraUnit>, state: Arc<AppState>) {
    let _open = Gauge::enter(&state.tap_clients);
    if let Ok(peer) = stream.get_ref().peer_addr() {
        log::info!("tap client {peer} connected to camera {}", camera.id);
    }
    let _ = stream.get_ref().set_nodelay(true);
    let frames = camera.bus.subscribe_ordered(state.config.tap.queue_frames);
    let timeout = state.config.http.write_timeout;
    while let Some(frame) = frames.recv().await {
        let Ok(len) = u32::try_from(frame.jpeg.len()) else {
            continue;
        };
        let write = async {
            stream.write_all(&len.to_be_bytes()).await?;
            stream.write_all(&frame.jpeg).await
        };
        let outcome = future::or(async { Some(write.await) }, async {
            Timer::after(timeout).await;
            None
        })
        .await;
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                log::info!("tap client left: {e}");
                return;
            }
            None => {
                log::info!("tap client dropped: no progress for {timeout:?}");
                return;
            }
        }
    }
}
