//! Reading a request body under a deadline. A client that starts a body and
//! then sends a byte now and then (slowloris) would otherwise hold its
//! connection, its task and a handler forever at no cost to itself. A body
//! gets [`GRACE`] to start and must then keep up an average of [`MIN_RATE`]:
//! after `t` seconds at least `(t - GRACE) × MIN_RATE` bytes must have
//! arrived, or the request ends with 408. While its handler waits, the
//! connection counts as *receiving* ([`crate::net::Busy::receiving`]): the
//! table may close it to make room for a newcomer.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use smol::Timer;

use crate::net::{Busy, Receiving};

/// How long a body may take before the minimum rate applies.
pub const GRACE: Duration = Duration::from_secs(10);
/// Bytes a second a body must average after [`GRACE`] (a phone on a poor
/// link uploads a 100 MB bundle far faster than this).
pub const MIN_RATE: u64 = 8 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route accepts.
    TooLarge(usize),
    /// The client fell under the minimum rate.
    TooSlow { got: u64, secs: u64 },
    /// The connection failed or the framing was bad.
    Broken(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(max) => write!(f, "the request body is larger than {max} bytes"),
            Self::TooSlow { got, secs } => write!(
                f,
                "the request body came too slowly ({got} bytes in {secs} s; at least {MIN_RATE} bytes a second after the first {} s)",
                GRACE.as_secs()
            ),
            Self::Broken(why) => write!(f, "the request body broke off: {why}"),
        }
    }
}

/// A request body being read, with its deadline.
pub struct BodyReader {
    body: Incoming,
    started: Instant,
    got: u64,
    receiving: Receiving,
}

impl BodyReader {
    pub fn new(body: Incoming, busy: &Busy) -> Self {
        Self {
            body,
            started: Instant::now(),
            got: 0,
            receiving: busy.receiving(),
        }
    }

    /// When the bytes received so far stop being enough.
    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.got as f64 / MIN_RATE as f64);
        self.started + GRACE + earned
    }

    /// The next chunk of data; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            let deadline = self.deadline();
            let frame = futures_lite::future::or(async { Some(self.body.frame().await) }, async {
                Timer::at(deadline).await;
                None
            })
            .await;
            let Some(frame) = frame else {
                return Some(Err(BodyError::TooSlow {
                    got: self.got,
                    secs: self.started.elapsed().as_secs(),
                }));
            };
            match frame? {
                Err(e) => return Some(Err(BodyError::Broken(e.to_string()))),
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        self.got += data.len() as u64;
                        self.receiving.got(data.len());
                        return Some(Ok(data));
                    }
                }
            }
        }
    }

    /// The whole body, at most `max` bytes.
    pub async fn collect(mut self, max: usize) -> Result<Bytes, BodyError> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > max {
                return Err(BodyError::TooLarge(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
