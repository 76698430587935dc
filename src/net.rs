//! Accepting connections, for the HTTP server and the frame tap: the accept
//! loop (until shutdown, each connection its own task, accept errors such as
//! running out of file descriptors logged once per run and retried after a
//! pause), and the table of open connections with its cap.
//!
//! # The cap
//! A flood of idle clients (a buggy app, a port scan, a neighbour on the
//! Wi-Fi) must not starve the page or run the process out of file
//! descriptors. Each connection is *busy* while it answers a request or
//! streams, *receiving* while the only thing it waits for is a request body
//! (see [`Busy::receiving`]), and *idle* otherwise (waiting for a request,
//! keeping alive). When a new connection would exceed the cap, the
//! connection idle the longest is closed to make room; if none is idle, the
//! receiving one with the slowest body so far (a client that sends a byte
//! now and then holds a connection at no cost to itself); only if every
//! connection is busy is the newcomer turned away. So half-sent bodies can
//! never keep `/healthz` or the owner's page out. No address may hold more
//! than a quarter of the cap (at least 8), so one client cannot take the
//! table for itself: past its share, its own connections make room in the
//! same order, and only if all of them are busy is it turned away. When a burst ends, the memory its connections used is
//! handed back to the kernel ([`crate::memory`]).

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
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
    peer: IpAddr,
    /// Requests being answered and bodies being sent.
    busy: u32,
    /// Of those, requests whose handler waits for their body.
    receiving: u32,
    /// Body bytes received since `receiving_since`.
    received: u64,
    receiving_since: Option<Instant>,
    idle_since: Instant,
    evict: Arc<Evict>,
}

impl Conn {
    /// Body bytes a second while receiving (lowest first when a receiving
    /// connection must make room).
    fn rate(&self, now: Instant) -> f64 {
        let secs = self
            .receiving_since
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64())
            .max(0.001);
        self.received as f64 / secs
    }
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
    /// Open connections by client address.
    by_peer: HashMap<IpAddr, usize>,
    /// Connections told to close that have not yet gone.
    leaving: usize,
    /// The most open at once since memory was last handed back.
    peak: usize,
    trimmed: Option<Instant>,
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every connection is busy answering or streaming.
    Full,
    /// This address already holds its share of the table.
    PerAddress(usize),
}

/// The open connections and their cap.
pub struct Connections {
    max: usize,
    per_address: usize,
    table: Mutex<Table>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Self {
            max,
            per_address: (max / 4).max(8).min(max),
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

    /// Admits a new connection from `peer`. If `peer` holds its share
    /// already, one of its own connections makes room (the longest idle,
    /// else its slowest receiving one); if the table is full, any one does,
    /// in the same order. Refused if no such connection exists (every one
    /// is busy), or if so many are still on their way out that the table
    /// would pass the cap by a quarter.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let mut t = lock(&self.table);
        if t.conns.len() >= self.max + (self.max / 4).max(1) {
            return Err(Refusal::Full);
        }
        let staying = |c: &Conn| !c.evict.flag.load(Ordering::SeqCst);
        let mine = t
            .conns
            .values()
            .filter(|c| c.peer == peer && staying(c))
            .count();
        let (over_share, full) = (
            mine >= self.per_address,
            t.conns.len() - t.leaving >= self.max,
        );
        if over_share || full {
            let now = Instant::now();
            let candidates = || {
                t.conns
                    .iter()
                    .filter(|(_, c)| staying(c) && (!over_share || c.peer == peer))
            };
            let idle = candidates()
                .filter(|(_, c)| c.busy == 0)
                .min_by_key(|(_, c)| c.idle_since)
                .map(|(id, _)| *id);
            let slowest = || {
                candidates()
                    .filter(|(_, c)| c.receiving > 0 && c.busy == c.receiving)
                    .min_by(|(_, a), (_, b)| a.rate(now).total_cmp(&b.rate(now)))
                    .map(|(id, _)| *id)
            };
            let victim = idle.or_else(slowest).ok_or(if over_share {
                Refusal::PerAddress(self.per_address)
            } else {
                Refusal::Full
            })?;
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
                peer,
                busy: 0,
                receiving: 0,
                received: 0,
                receiving_since: None,
                idle_since: Instant::now(),
                evict: evict.clone(),
            },
        );
        *t.by_peer.entry(peer).or_default() += 1;
        t.peak = t.peak.max(t.conns.len());
        Ok(Slot {
            conns: self.clone(),
            id,
            evict,
        })
    }

    fn with_conn(&self, id: u64, f: impl FnOnce(&mut Conn)) {
        if let Some(c) = lock(&self.table).conns.get_mut(&id) {
            f(c);
        }
    }

    fn set_busy(&self, id: u64, more: bool) {
        self.with_conn(id, |c| {
            if more {
                c.busy += 1;
            } else {
                c.busy = c.busy.saturating_sub(1);
                if c.busy == 0 {
                    c.idle_since = Instant::now();
                }
            }
        });
    }

    fn remove(&self, id: u64) {
        let release = {
            let mut t = lock(&self.table);
            if let Some(c) = t.conns.remove(&id) {
                if c.evict.flag.load(Ordering::SeqCst) {
                    t.leaving = t.leaving.saturating_sub(1);
                }
                if let Some(n) = t.by_peer.get_mut(&c.peer) {
                    *n -= 1;
                    if *n == 0 {
                        t.by_peer.remove(&c.peer);
                    }
                }
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

impl Busy {
    /// Marks the request as waiting for its body until the returned guard
    /// is dropped: while nothing else keeps the connection busy, it may be
    /// closed to make room, the slowest sender first.
    pub fn receiving(&self) -> Receiving {
        self.conns.with_conn(self.id, |c| {
            c.receiving += 1;
            c.receiving_since.get_or_insert_with(Instant::now);
        });
        Receiving {
            conns: self.conns.clone(),
            id: self.id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conns.set_busy(self.id, false);
    }
}

/// A request is waiting for its body while this lives.
pub struct Receiving {
    conns: Arc<Connections>,
    id: u64,
}

impl Receiving {
    /// Counts `n` body bytes received.
    pub fn got(&self, n: usize) {
        self.conns.with_conn(self.id, |c| c.received += n as u64);
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.conns.with_conn(self.id, |c| {
            c.receiving = c.receiving.saturating_sub(1);
            if c.receiving == 0 {
                c.receiving_since = None;
                c.received = 0;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    /// A new address each time (the per-address share is tested alone).
    fn any() -> IpAddr {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        IpAddr::V4(std::net::Ipv4Addr::from(
            0xC633_6400 + NEXT.fetch_add(1, Ordering::SeqCst),
        ))
    }

    #[test]
    fn the_longest_idle_makes_room_and_busy_ones_never_do() {
        let conns = Connections::new(3);
        let a = conns.admit(any()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = conns.admit(any()).unwrap();
        let c = conns.admit(any()).unwrap();
        let _streaming = c.busy();
        // Full: the longest idle (a) is told to close.
        let d = conns.admit(any()).unwrap();
        assert!(a.evict.flag.load(Ordering::SeqCst));
        assert!(!b.evict.flag.load(Ordering::SeqCst));
        drop(a);
        assert_eq!(conns.count(), 3);
        // Full again, with b idle: b goes; then only busy ones are left.
        let _bb = b.busy();
        let _db = d.busy();
        assert_eq!(
            conns.admit(any()).err(),
            Some(Refusal::Full),
            "every connection is busy"
        );
        drop(_bb);
        let e = conns.admit(any()).unwrap();
        assert!(b.evict.flag.load(Ordering::SeqCst));
        drop(b);
        drop(e);
        assert_eq!(conns.count(), 2);
    }

    #[test]
    fn the_slowest_body_makes_room_and_an_address_has_its_share() {
        let conns = Connections::new(3);
        let slow = conns.admit(any()).unwrap();
        let fast = conns.admit(any()).unwrap();
        let stream = conns.admit(any()).unwrap();
        let (slow_busy, fast_busy, _s) = (slow.busy(), fast.busy(), stream.busy());
        let (slow_body, fast_body) = (slow_busy.receiving(), fast_busy.receiving());
        slow_body.got(1);
        fast_body.got(1 << 20);
        // No connection is idle: the slowest sender makes room.
        let d = conns.admit(any()).unwrap();
        let _db = d.busy();
        assert!(slow.evict.flag.load(Ordering::SeqCst));
        assert!(!fast.evict.flag.load(Ordering::SeqCst));
        // Its body read, a request is busy again, and never made to leave.
        drop(fast_body);
        drop(slow);
        assert_eq!(conns.admit(any()).err(), Some(Refusal::Full));

        // One address holds at most a quarter of the table (at least 8):
        // past that its own idle connections make room, and only when all
        // of them are busy is it turned away.
        let conns = Connections::new(40);
        let mine: Vec<_> = (0..10).map(|_| conns.admit(A).unwrap()).collect();
        let others: Vec<_> = (0..5).map(|_| conns.admit(any()).unwrap()).collect();
        let eleventh = conns.admit(A).unwrap();
        assert!(
            mine[0].evict.flag.load(Ordering::SeqCst),
            "its own longest idle"
        );
        assert!(others.iter().all(|o| !o.evict.flag.load(Ordering::SeqCst)));
        drop(mine);
        let mine: Vec<_> = (0..9).map(|_| conns.admit(A).unwrap()).collect();
        let _busy: Vec<_> = mine.iter().chain([&eleventh]).map(Slot::busy).collect();
        assert_eq!(conns.admit(A).err(), Some(Refusal::PerAddress(10)));
        assert!(conns.admit(any()).is_ok(), "others are not affected");
    }
}
