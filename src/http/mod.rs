//! The web side: an HTTP/1.1 server (hyper on the smol executor) serving the
//! UI, the live MJPEG stream, snapshots, status and metrics. This module and
//! its children are the only place that imports hyper.
//!
//! # Implementation
//! One task per connection, admitted by the connection table
//! ([`crate::net::Connections`]): past `http.max_connections` the
//! longest-idle connection is closed to make room, and if every connection
//! is busy the newcomer gets a 503. A connection is busy from a request's
//! arrival until its response body has been sent or dropped, so a live
//! viewer is never the one closed. A request body must keep arriving at a
//! minimum rate ([`body`]), and while its handler waits for it the
//! connection may be closed to make room (the slowest sender first), so
//! half-sent bodies cannot hold the table; no address may hold more than a
//! quarter of it. Each socket is wrapped in [`io::WriteTimeout`],
//! so a client that stops reading is disconnected after
//! `http.write_timeout` instead of pinning a frame forever; hyper's write
//! buffer is capped so that a stalled viewer holds at most about one frame
//! beyond the kernel's socket buffer. On shutdown the accept loop ends and
//! each connection finishes gracefully: the bus is closed, so every stream
//! body ends and the response completes.

mod body;
mod guard;
mod headers;
mod io;
mod live;
mod login;
mod metrics;
mod multipart;
pub mod range;
mod recordings;
mod redirect;
mod respond;
mod routes;
mod status;
mod update;
mod wifi;

use std::convert::Infallible;
use std::net::TcpListener;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use futures_lite::{AsyncWriteExt, future};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::{Async, Executor, Timer};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::net::{Busy, Refusal, accept_until_shutdown};
use crate::state::{AppState, TlsState};
use respond::Body;

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

/// Turns a connection away: the table is full of busy connections, or its
/// address holds its share.
async fn refuse(mut stream: Async<std::net::TcpStream>, state: &AppState, why: Refusal) {
    if state.refused.fetch_add(1, Ordering::Relaxed) == 0 {
        log::warn!(
            "http: turning connections away ({}; counted in http_refused)",
            match why {
                Refusal::Full => format!("{} connections, all busy", state.http.max()),
                Refusal::PerAddress(n) => format!("{n} from one address"),
            }
        );
    }
    let message = match why {
        Refusal::Full => "too many connections",
        Refusal::PerAddress(_) => "too many connections from your address",
    };
    let body = format!(r#"{{"error":"{message}","status":503}}"#);
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = future::or(async { stream.write_all(reply.as_bytes()).await }, async {
        Timer::after(Duration::from_secs(1)).await;
        Ok(())
    })
    .await;
}

/// Keeps `busy` alive as long as the body is being sent.
fn while_sending(body: Body, busy: Busy) -> Body {
    body.map_err(move |e| {
        let _still_sending = &busy;
        e
    })
    .boxed_unsync()
}

async fn connection(stream: Async<std::net::TcpStream>, state: Arc<AppState>) {
    let peer = stream
        .get_ref()
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let slot = match state.http.admit(peer) {
        Ok(slot) => Arc::new(slot),
        Err(why) => {
            refuse(stream, &state, why).await;
            return;
        }
    };
    let _ = stream.get_ref().set_nodelay(true);
    match &state.tls {
        TlsState::Off => serve_io(stream, slot, state.clone(), peer).await,
        TlsState::On(tls) => {
            // The handshake gets the same time as a request's headers, and
            // the connection may be closed to make room meanwhile.
            let accept = tls.acceptor.accept(stream);
            let shaken = future::or(async { Some(accept.await) }, async {
                future::or(
                    async {
                        Timer::after(HEADER_TIMEOUT).await;
                    },
                    slot.evicted(),
                )
                .await;
                None
            })
            .await;
            match shaken {
                Some(Ok(tls_stream)) => serve_io(tls_stream, slot, state.clone(), peer).await,
                Some(Err(e)) => log::debug!("TLS handshake with {peer} failed: {e}"),
                None => log::debug!("TLS handshake with {peer} timed out"),
            }
        }
        // Logged at start-up: nothing to serve with.
        TlsState::Broken => {}
    }
}

/// Serves HTTP/1.1 on an accepted connection (plain or TLS) until it
/// closes, is closed to make room, or blackbox shuts down.
async fn serve_io<T>(
    stream: T,
    slot: Arc<crate::net::Slot>,
    state: Arc<AppState>,
    peer: std::net::IpAddr,
) where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
{
    let io = io::WriteTimeout::new(FuturesIo::new(stream), state.config.http.write_timeout);
    let (svc_state, svc_slot) = (state.clone(), slot.clone());
    let svc = service_fn(move |req| {
        let state = svc_state.clone();
        let busy = svc_slot.busy();
        async move {
            let mut res = routes::handle(req, &state, peer, &busy).await;
            headers::secure(&mut res);
            Ok::<_, Infallible>(res.map(|body| while_sending(body, busy)))
        }
    });
    let mut conn = pin!(builder().serve_connection(io, svc));
    let finished = until_closed(conn.as_mut(), &state, &slot).await;
    let result = match finished {
        Some(r) => r,
        // Closed to make room for a newer connection: drop it at once.
        None if !state.shutdown.is_triggered() => return,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        log::debug!("connection closed: {e}");
    }
}

/// hyper's HTTP/1 settings for every connection: the header deadline and
/// the buffer cap.
fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF);
    builder
}

/// Runs a connection until it ends (`Some`), or until shutdown or the
/// table wants it closed (`None`).
async fn until_closed<F: std::future::Future>(
    conn: std::pin::Pin<&mut F>,
    state: &AppState,
    slot: &crate::net::Slot,
) -> Option<F::Output> {
    future::or(async { Some(conn.await) }, async {
        future::or(state.shutdown.wait(), slot.evicted()).await;
        None
    })
    .await
}

/// Accepts plain-HTTP connections on `http.redirect_listen` until
/// shutdown ([`redirect`]).
pub async fn serve_redirect(
    listener: Async<TcpListener>,
    state: Arc<AppState>,
    ex: Arc<Executor<'static>>,
) {
    accept_until_shutdown(&listener, &state.shutdown, &ex, "http redirect", |stream| {
        redirect::connection(stream, state.clone())
    })
    .await;
}
