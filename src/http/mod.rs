//! The web side: an HTTP/1.1 server (hyper on the smol executor) serving the
//! UI, the live MJPEG stream, snapshots, status and metrics. This module and
//! its children are the only place that imports hyper.
//!
//! # Implementation
//! One task per connection. Each socket is wrapped in [`io::WriteTimeout`],
//! so a client that stops reading is disconnected after
//! `http.write_timeout` instead of pinning a frame forever; hyper's write
//! buffer is capped so that a stalled viewer holds at most about one frame
//! beyond the kernel's socket buffer. On shutdown the accept loop ends and
//! each connection finishes gracefully: the bus is closed, so every stream
//! body ends and the response completes.

mod io;
mod mjpeg;
mod recordings;
mod respond;
mod routes;
mod status;

use std::convert::Infallible;
use std::net::TcpListener;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::{Async, Executor};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::net::accept_until_shutdown;
use crate::state::{AppState, Gauge};

pub use recordings::MetaCache;
pub use status::Status;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's buffer limit (headers in, queued body out). 16 KiB allows large
/// request headers while keeping at most one JPEG queued per viewer.
const MAX_BUF: usize = 16 * 1024;

/// Accepts connections until shutdown.
pub async fn serve(listener: Async<TcpListener>, state: Arc<AppState>, ex: Arc<Executor<'static>>) {
    accept_until_shutdown(&listener, &state.shutdown, &ex, "http", |stream| {
        connection(stream, state.clone())
    })
    .await;
}

async fn connection(stream: Async<std::net::TcpStream>, state: Arc<AppState>) {
    let _open = Gauge::enter(&state.connections);
    let _ = stream.get_ref().set_nodelay(true);
    let io = io::WriteTimeout::new(FuturesIo::new(stream), state.config.http.write_timeout);
    let svc_state = state.clone();
    let svc = service_fn(move |req| {
        let state = svc_state.clone();
        async move { Ok::<_, Infallible>(routes::handle(req, &state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF);
    let mut conn = pin!(builder.serve_connection(io, svc));
    let finished = future::or(async { Some(conn.as_mut().await) }, async {
        state.shutdown.wait().await;
        None
    })
    .await;
    let result = match finished {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        log::debug!("connection closed: {e}");
    }
}
