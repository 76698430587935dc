//! The gpsd client: a task on the executor that connects to gpsd, asks for
//! JSON reports, and feeds every line into [`Gps`]. When gpsd is absent,
//! refuses, goes silent or restarts, it connects again with back-off (1 s
//! doubling to 30 s, back to 1 s after a connection that worked), logging
//! the first failure of a run once and the run's end with its count. Lines
//! are bounded ([`proto::LineBuffer`]), so a stranger on gpsd's port can
//! cost no more than one line of memory.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::{Async, Timer};

use crate::clock::monotonic_now;
use crate::failures::FailureRun;
use crate::gps::Gps;
use crate::gps::proto::{self, Line, LineBuffer};

/// The longest wait before trying gpsd again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection attempt that takes longer fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// gpsd sends something at least once a second while a receiver is
/// attached, and at least its greeting at once; a connection silent for
/// this long is taken as dead (a gpsd that hung, a half-open socket).
const SILENCE: Duration = Duration::from_secs(30);

/// Runs until the task is dropped.
pub async fn run(gps: Arc<Gps>, addr: SocketAddr) {
    let mut backoff = Duration::from_secs(1);
    let mut failures = FailureRun::new("gpsd");
    loop {
        let (why, worked) = match session(&gps, addr, &mut failures).await {
            Ok(worked) => ("it closed the connection".to_string(), worked),
            Err((e, worked)) => (e.to_string(), worked),
        };
        gps.disconnected(why.clone());
        failures.failed(&format!("gpsd at {addr}: {why}"));
        if worked {
            backoff = Duration::from_secs(1);
        }
        Timer::after(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: Ok(worked) when gpsd closed it, Err((why, worked))
/// otherwise; `worked` says whether gpsd sent at least one valid report.
async fn session(
    gps: &Gps,
    addr: SocketAddr,
    failures: &mut FailureRun,
) -> Result<bool, (std::io::Error, bool)> {
    let mut stream = Async::<TcpStream>::connect(addr)
        .or(timeout("no answer", CONNECT_TIMEOUT))
        .await
        .map_err(|e| (e, false))?;
    stream
        .write_all(proto::WATCH)
        .or(timeout("it does not take the WATCH request", SILENCE))
        .await
        .map_err(|e| (e, false))?;
    gps.connected();
    let mut worked = false;
    let mut lines = LineBuffer::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .or(timeout("silent for 30 s", SILENCE))
            .await
            .map_err(|e| (e, worked))?;
        if n == 0 {
            return Ok(worked);
        }
        let now = monotonic_now();
        for line in lines.push(&buf[..n]) {
            match line {
                Line::Whole(l) => match proto::parse(&l) {
                    Ok(r) => {
                        if !worked {
                            // gpsd is back: the run of failures ends here.
                            failures.succeeded();
                            worked = true;
                        }
                        gps.report(r, now);
                    }
                    Err(e) => {
                        log::debug!("gpsd: {e}");
                        gps.malformed();
                    }
                },
                Line::TooLong => gps.malformed(),
            }
        }
    }
}

/// Fails with `what` after `after`: raced against a socket operation.
async fn timeout<T>(what: &'static str, after: Duration) -> std::io::Result<T> {
    Timer::after(after).await;
    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}
