//! The accept loop shared by the HTTP server and the frame tap: accept until
//! shutdown, hand each connection to its own task, and survive accept errors
//! (out of file descriptors and the like) without spinning or flooding the log.

use std::net::TcpListener;
use std::time::Duration;

use smol::{Async, Executor, Timer};

use crate::sync::Shutdown;

/// Accepts connections on `listener` until `shutdown`, handing each to
/// `serve` as a task on `ex`. Accept errors (out of file descriptors and the
/// like) are logged and retried after a pause; serving carries on.
pub async fn accept_until_shutdown<F, Fut>(
    listener: &Async<TcpListener>,
    shutdown: &Shutdown,
    ex: &Executor<'static>,
    what: &str,
    mut serve: F,
) where
    F: FnMut(Async<std::net::TcpStream>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                log::debug!("{what}: connection from {peer}");
                ex.spawn(serve(stream)).detach();
            }
            Some(Err(e)) => {
                log::warn!("{what}: accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}
