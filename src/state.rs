//! What the HTTP handlers and the frame tap share while blackbox runs: the
//! configuration, the cameras (each with its bus and counters), the recorder's handle, the
//! shutdown flag, and gauges of open connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::auth::Auth;
use crate::cameras::Cameras;
use crate::config::Config;
use crate::net::Connections;
use crate::record::recorder::RecorderHandle;
use crate::supervise::Health;
use crate::sync::Shutdown;

/// Everything the HTTP handlers and the tap share.
pub struct AppState {
    pub config: Config,
    pub cameras: Arc<Cameras>,
    /// When blackbox started.
    pub started: std::time::Instant,
    /// Open HTTP connections, and their cap.
    pub http: Arc<Connections>,
    /// Connections turned away because every one was busy.
    pub refused: AtomicU64,
    /// Connected tap clients.
    pub tap_clients: AtomicUsize,
    /// Each camera's tap, by camera id (none without `tap.listen`).
    pub taps: std::collections::BTreeMap<String, std::net::SocketAddr>,
    pub shutdown: Shutdown,
    /// The recorder, unless recording is disabled.
    pub recorder: Option<RecorderHandle>,
    /// The GPS as gpsd reports it.
    pub gps: Arc<crate::gps::Gps>,
    /// The accelerometer and its impacts.
    pub impact: Arc<crate::impact::Impact>,
    pub parking: Arc<crate::parking::Parking>,
    /// Whether the wall clock is synchronised, and from where.
    pub clock: Arc<crate::timesync::TimeSync>,
    /// The password, sessions and origin checks.
    pub auth: Arc<Auth>,
    /// Every stage's progress (`/healthz`, the watchdog).
    pub health: Arc<Health>,
    /// An update bundle is being uploaded (one at a time).
    pub uploading: AtomicBool,
    /// Whether the web server speaks HTTPS.
    pub tls: TlsState,
    /// The port of `http.listen` (where the redirect listener sends to).
    pub https_port: u16,
}

/// HTTPS, as configured and loaded.
pub enum TlsState {
    /// Plain HTTP.
    Off,
    On(crate::tls::Tls),
    /// Configured, but the certificate or key could not be used: every
    /// connection is dropped (the reason was logged at start-up).
    Broken,
}

impl TlsState {
    /// Whether cookies must be `Secure`.
    pub fn secure(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// Counts something for as long as it lives.
pub struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    pub fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
