//! Accepting connections, for the HTTP server and the frame tap: the accept
//! loop (until shutdown, each connection its own task, accept errors such as
//! running out of file descriptors logged once per run and retried after a
//! pause), and the table of open connections with its cap.
//!
//! # The cap
//! A flood of idle clients (a buggy app, a port scan, a neighbour on the
//! Wi-Fi) must not starve the page or run the process out of file
//! descriptors. Each connection is *busy* while it answers a request or
//! streams, and *idle* otherwise (waiting for a request, keeping alive). When
//! a new connection would exceed the cap, the connection idle the longest is
//! closed to make room; only if every connection is busy is the newcomer
//! turned away. When a burst ends, the memory its connections used is handed
//! back to the kernel ([`crate::memory`]).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;
use smol::{Async, Executor, Timer};

use crate::failures::FailureRun;
use crate::sync::{Shutdown, lock};

/// Accepts connections on `listener` until `shutdown`, handing each to
/// `serve` as a task on `ex`. Accept errors (out of file descriptors and the
/// like) are logged once per run and retried after a pause.
pub async fn accept_until_shutdown<F, Fut>(
    listener: &Async<TcpListener>,
    shutdown: &Shutdown,
    ex: &Executor<'static>,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(Async<std::net::TcpStream>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failures = FailureRun::new(what);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                failures.succeeded();
                log::debug!("{what}: connection from {peer}");
                ex.spawn(serve(stream)).detach();
                // Let connections told to make room close before the next.
                futures_lite::future::yield_now().await;
            }
            Some(Err(e)) => {
                failures.failed(&format!("accept failed: {e}"));
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One open connection, as the table sees it.
struct Conn {
    /// Requests being answered and bodies being sent.
    busy: u32,
    idle_since: Instant,
    evict: Arc<Evict>,
}

/// The signal that tells a connection to close.
#[derive(Default)]
struct Evict {
    flag: AtomicBool,
    event: Event,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    /// Connections told to close that have not yet gone.
    leaving: usize,
    /// The most open at once since memory was last handed back.
    peak: usize,
    trimmed: Option<Instant>,
}

/// The open connections and their cap.
pub struct Connections {
    max: usize,
    table: Mutex<Table>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    /// Open connections now.
    pub fn count(&self) -> usize {
        lock(&self.table).conns.len()
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits a new connection, closing the longest-idle one if the table is
    /// full; `None` if every connection is busy, or if so many are still on
    /// their way out that the table would pass the cap by a quarter.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut t = lock(&self.table);
        if t.conns.len() >= self.max + (self.max / 4).max(1) {
            return None;
        }
        if t.conns.len() - t.leaving >= self.max {
            let victim = t
                .conns
                .iter()
                .filter(|(_, c)| c.busy == 0 && !c.evict.flag.load(Ordering::SeqCst))
                .min_by_key(|(_, c)| c.idle_since)
                .map(|(id, _)| *id)?;
            if let Some(c) = t.conns.get(&victim) {
                c.evict.flag.store(true, Ordering::SeqCst);
                c.evict.event.notify(usize::MAX);
            }
            t.leaving += 1;
        }
        let id = t.next_id;
        t.next_id += 1;
        let evict = Arc::new(Evict::default());
        t.conns.insert(
            id,
            Conn {
                busy: 0,
                idle_since: Instant::now(),
                evict: evict.clone(),
            },
        );
        t.peak = t.peak.max(t.conns.len());
        Some(Slot {
            conns: self.clone(),
            id,
            evict,
        })
    }

    fn set_busy(&self, id: u64, more: bool) {
        let mut t = lock(&self.table);
        if let Some(c) = t.conns.get_mut(&id) {
            if more {
                c.busy += 1;
            } else {
                c.busy = c.busy.saturating_sub(1);
                if c.busy == 0 {
                    c.idle_since = Instant::now();
                }
            }
        }
    }

    fn remove(&self, id: u64) {
        let release = {
            let mut t = lock(&self.table);
            if t.conns
                .remove(&id)
                .is_some_and(|c| c.evict.flag.load(Ordering::SeqCst))
            {
                t.leaving = t.leaving.saturating_sub(1);
            }
            // A burst is over when a quarter of its peak is left: give its
            // memory back (at most every few seconds).
            let over = t.peak >= 64 && t.conns.len() <= t.peak / 4;
            let due = t
                .trimmed
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
            if over && due {
                t.peak = t.conns.len();
                t.trimmed = Some(Instant::now());
            }
            over && due
        };
        if release {
            crate::memory::release_free_memory();
        }
    }
}

/// A connection's place in the table; leaving it (dropping) frees it.
pub struct Slot {
    conns: Arc<Connections>,
    id: u64,
    evict: Arc<Evict>,
}

impl Slot {
    /// Marks the connection busy until the returned guard is dropped.
    pub fn busy(&self) -> Busy {
        self.conns.set_busy(self.id, true);
        Busy {
            conns: self.conns.clone(),
            id: self.id,
        }
    }

    /// Resolves when the table wants this connection closed to make room.
    pub async fn evicted(&self) {
        loop {
            if self.evict.flag.load(Ordering::SeqCst) {
                return;
            }
            let listener = self.evict.event.listen();
            if self.evict.flag.load(Ordering::SeqCst) {
                return;
            }
            listener.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.remove(self.id);
    }
}

/// A connection is busy while this lives.
pub struct Busy {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conns.set_busy(self.id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_makes_room_and_busy_ones_never_do() {
        let conns = Connections::new(3);
        let a = conns.admit().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = conns.admit().unwrap();
        let c = conns.admit().unwrap();
        let _streaming = c.busy();
        // Full: the longest idle (a) is told to close.
        let d = conns.admit().unwrap();
        assert!(a.evict.flag.load(Ordering::SeqCst));
        assert!(!b.evict.flag.load(Ordering::SeqCst));
        drop(a);
        assert_eq!(conns.count(), 3);
        // Full again, with b idle: b goes; then only busy ones are left.
        let _bb = b.busy();
        let _db = d.busy();
        assert!(conns.admit().is_none(), "every connection is busy");
        drop(_bb);
        let e = conns.admit().unwrap();
        assert!(b.evict.flag.load(Ordering::SeqCst));
        drop(b);
        drop(e);
        assert_eq!(conns.count(), 2);
    }
}
