//! Supervision: is every stage making progress, and telling systemd.
//!
//! Each stage beats as it makes progress ([`Health`]): every camera's
//! capture thread each time its loop turns (a missing camera is progress: it is handled,
//! with placeholders and reopening), the encoders each time they finish a
//! job they were given for that camera, the recorder on each housekeeping tick while its
//! data is synced as often as configured, and the executor from a task of
//! its own. `/healthz` answers from [`Health::check`], and the systemd
//! watchdog is fed (`WATCHDOG=1`) only while every stage is healthy: a
//! wedged thread stops the pings and systemd restarts the service.
//!
//! systemd's notification protocol is one datagram to the socket named by
//! `$NOTIFY_SOCKET` (a leading `@` is the abstract namespace); no
//! libsystemd. [`Notifier`] sends `READY=1` once blackbox serves, a one-line
//! `STATUS=` every few seconds, `STOPPING=1` on shutdown, and `WATCHDOG=1`
//! every half `$WATCHDOG_USEC` (if `$WATCHDOG_PID` names this process).

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::monotonic_now;

/// A stage that has not beaten for this long is stalled.
const STALL: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    monotonic_now().as_millis() as u64
}

/// The last time a stage showed progress.
#[derive(Debug)]
pub struct Beat(AtomicU64);

impl Default for Beat {
    fn default() -> Self {
        Self(AtomicU64::new(now_ms()))
    }
}

impl Beat {
    pub fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// Jobs given to the encoders and jobs they finished.
#[derive(Debug, Default)]
pub struct Encoders {
    submitted: AtomicU64,
    completed: AtomicU64,
    /// The last completion, or the moment work arrived for idle encoders.
    progress: Beat,
}

impl Encoders {
    pub fn submitted(&self) {
        if self.submitted.load(Ordering::SeqCst) == self.completed.load(Ordering::SeqCst) {
            self.progress.beat(); // idle until now: the clock starts here
        }
        self.submitted.fetch_add(1, Ordering::SeqCst);
    }

    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
        self.progress.beat();
    }

    fn stalled_for(&self) -> Option<Duration> {
        let pending = self.submitted.load(Ordering::SeqCst) > self.completed.load(Ordering::SeqCst);
        let age = self.progress.age();
        (pending && age > STALL).then_some(age)
    }
}

/// A stage that stopped making progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub stage: String,
    pub for_ms: u64,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has made no progress for {} ms",
            self.stage, self.for_ms
        )
    }
}

/// One camera's stages: its capture thread and its encoder jobs.
#[derive(Debug, Default)]
pub struct CameraBeats {
    pub capture: Beat,
    pub encoders: Encoders,
}

/// Every stage's heartbeat.
#[derive(Debug, Default)]
pub struct Health {
    /// Each camera's, by id, in camera order.
    cameras: std::sync::Mutex<Vec<(String, Arc<CameraBeats>)>>,
    /// Beaten by the recorder's tick while its syncs are current.
    pub recorder: Beat,
    /// Whether there is a recorder to watch.
    pub recorder_present: AtomicBool,
    /// How long the recorder may go without a beat: twice its sync interval
    /// and a second for its tick (a single slow sync does not cost a restart:
    /// systemd waits `WatchdogSec` on top); [`STALL`] when it does not sync
    /// or this is 0.
    pub recorder_limit_ms: AtomicU64,
    pub executor: Beat,
}

impl Health {
    /// Watches camera `id` from now on; its pipeline beats what this returns.
    pub fn add_camera(&self, id: &str) -> Arc<CameraBeats> {
        let beats = Arc::new(CameraBeats::default());
        crate::sync::lock(&self.cameras).push((id.to_string(), beats.clone()));
        beats
    }

    /// `Ok` if every stage made progress recently; else the first that did not.
    pub fn check(&self) -> Result<(), Stall> {
        let stall = |stage: String, age: Duration| Stall {
            stage,
            for_ms: age.as_millis() as u64,
        };
        for (id, beats) in crate::sync::lock(&self.cameras).iter() {
            let capture = beats.capture.age();
            if capture > STALL {
                return Err(stall(format!("camera {id}'s capture thread"), capture));
            }
            if let Some(age) = beats.encoders.stalled_for() {
                return Err(stall(format!("the encoders of camera {id}"), age));
            }
        }
        if self.recorder_present.load(Ordering::Relaxed) {
            let limit = match self.recorder_limit_ms.load(Ordering::Relaxed) {
                0 => STALL,
                ms => Duration::from_millis(ms),
            };
            let age = self.recorder.age();
            if age > limit {
                return Err(stall("the recorder".into(), age));
            }
        }
        let executor = self.executor.age();
        if executor > STALL {
            return Err(stall("the executor".into(), executor));
        }
        Ok(())
    }
}

/// Where systemd listens, if it does.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().to_string();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
            };
            match UnixDatagram::unbound() {
                Ok(s) => Some((s, addr)),
                Err(e) => {
                    log::warn!("systemd notification socket: {e}");
                    None
                }
            }
        });
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(Duration::from_micros);
        Self { socket, watchdog }
    }

    /// Whether systemd is listening.
    pub fn active(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to feed the watchdog (half its timeout), if there is one.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one notification (`READY=1`, `STATUS=…`); failures are
    /// reported to the caller, which logs them once.
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        match &self.socket {
            Some((s, addr)) => s.send_to_addr(message.as_bytes(), addr).map(|_| ()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_stall_and_recover() {
        let h = Health::default();
        let front = h.add_camera("front");
        let rear = h.add_camera("rear");
        assert_eq!(h.check(), Ok(()));
        rear.capture.0.store(0, Ordering::Relaxed); // a beat long ago
        assert_eq!(h.check().unwrap_err().stage, "camera rear's capture thread");
        rear.capture.beat();
        // Work waiting for encoders that finish nothing.
        front.encoders.submitted();
        front.encoders.progress.0.store(0, Ordering::Relaxed);
        assert_eq!(h.check().unwrap_err().stage, "the encoders of camera front");
        front.encoders.completed();
        assert_eq!(h.check(), Ok(()));
        // Idle encoders are not stalled, however long ago they worked.
        front.encoders.progress.0.store(0, Ordering::Relaxed);
        assert_eq!(h.check(), Ok(()));
        h.recorder_present.store(true, Ordering::Relaxed);
        h.recorder.0.store(0, Ordering::Relaxed);
        assert_eq!(h.check().unwrap_err().stage, "the recorder");
        h.recorder.beat();
        h.executor.0.store(0, Ordering::Relaxed);
        assert_eq!(h.check().unwrap_err().stage, "the executor");
    }

    #[test]
    fn notifications_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("blackbox-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                std::os::unix::net::SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: Some(Duration::from_secs(10)),
        };
        n.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(5)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
