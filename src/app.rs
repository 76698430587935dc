//! Wiring: binds the sockets, starts the cameras ([`crate::cameras`]) and the
//! recorder, runs the HTTP server and the tap on one smol executor, and shuts everything down in order on
//! SIGTERM or SIGINT (viewers closed, threads joined, well within 2 s).

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smol::{Async, Executor, Timer};

use crate::auth::Auth;
use crate::cameras::Cameras;
use crate::config::Config;
use crate::net::Connections;
use crate::record::recorder::{Annotations, RecordedCamera, Recorder, RecorderConfig};
use crate::state::AppState;
use crate::supervise::Health;
use crate::sync::Shutdown;
use crate::systemd::Supervisor;

/// Why blackbox stopped with an error.
#[derive(Debug)]
pub enum AppError {
    /// A listening socket could not be bound (address in use, no permission).
    Bind {
        field: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
    /// The data directory could not be set up.
    Data(std::path::PathBuf, std::io::Error),
    /// A thread or socket could not be set up.
    Io(std::io::Error),
    /// The password file is unreadable or malformed.
    Password(crate::auth::password::PasswordError),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { field, addr, error } => {
                write!(f, "cannot listen on {addr} ({field}): {error}")
            }
            Self::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Self::Data(dir, e) => write!(
                f,
                "cannot use the data directory {} (record.dir): {e}",
                dir.display()
            ),
            Self::Io(e) => write!(f, "{e}"),
            Self::Password(e) => write!(f, "{e} (http.password_file)"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn bind(field: &'static str, addr: SocketAddr) -> Result<Async<TcpListener>, AppError> {
    let listener =
        TcpListener::bind(addr).map_err(|error| AppError::Bind { field, addr, error })?;
    Ok(Async::new(listener)?)
}

/// Runs blackbox until SIGTERM or SIGINT.
pub fn run(mut config: Config) -> Result<(), AppError> {
    fit_file_limit(&mut config);
    crate::memory::map_large_allocations_alone();
    // Who may come in is settled before anyone can: no password, no
    // network. Beyond loopback a missing or unusable password file closes
    // the web side, never the recorder (logged once; the page says why).
    let beyond_loopback = !config.http.listen.ip().is_loopback();
    let auth = Arc::new(
        Auth::new(
            config.http.password_file.as_deref(),
            &config.http.allowed_hosts,
            beyond_loopback,
        )
        .map_err(AppError::Password)?,
    );
    if let Some(why) = auth.closed() {
        log::error!(
            "the web side is closed until a valid password exists (recording goes on): {why}"
        );
    } else if auth.required() {
        log::info!("a password is set: every route but /login and /healthz needs it");
    }
    // Sockets first: a bad address must fail before anything starts.
    let http_listener = bind("http.listen", config.http.listen)?;
    let redirect_listener = match config.http.redirect_listen {
        Some(addr) => Some(bind("http.redirect_listen", addr)?),
        None => None,
    };
    // HTTPS: a certificate that cannot be used closes the web side (every
    // connection is dropped, logged once), never the recorder.
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => match crate::tls::load(cert, key) {
            Ok(t) => {
                log::info!("HTTPS: certificate fingerprint (SHA-256) {}", t.fingerprint);
                crate::state::TlsState::On(t)
            }
            Err(e) => {
                log::error!(
                    "HTTPS cannot start, so the web side answers nothing until it is fixed and blackbox restarted (recording goes on): {e}"
                );
                crate::state::TlsState::Broken
            }
        },
        _ => crate::state::TlsState::Off,
    };
    let tap_listener = match config.tap.listen {
        Some(addr) => Some(bind("tap.listen", addr)?),
        None => None,
    };
    // Every socket is bound: no program started from here on (rpicam-vid)
    // may bind a privileged port.
    crate::privilege::keep_from_children();

    let (signal_rx, signal_tx) = UnixStream::pair()?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(sig, signal_tx.try_clone()?)
            .map_err(AppError::Signals)?;
    }
    let signal_rx = Async::new(signal_rx)?;
    // SIGUSR1 marks an event (a button wired to a GPIO helper, a script).
    let (usr1_rx, usr1_tx) = UnixStream::pair()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGUSR1, usr1_tx)
        .map_err(AppError::Signals)?;
    let usr1_rx = Async::new(usr1_rx)?;

    let started = Instant::now();
    let health = Arc::new(Health::default());
    let cameras = Arc::new(Cameras::new(&config, &health));
    let clock = Arc::new(crate::timesync::TimeSync::default());
    let gps = Arc::new(crate::gps::Gps::new(
        config.gps.enabled,
        &config.gps.server.to_string(),
    ));
    let impact = Arc::new(crate::impact::Impact::new(&config.impact));
    let parking = Arc::new(crate::parking::Parking::new(config.parking.clone()));
    let recorder = if config.record.enabled {
        // Every camera; those with `record` on are recorded.
        let recorded = cameras
            .iter()
            .map(|c| RecordedCamera {
                id: c.id.clone(),
                bus: c.bus.clone(),
                record: c.config.record,
                fps: c.config.fps,
            })
            .collect();
        let rc = RecorderConfig {
            record: config.record.clone(),
            event: config.event.clone(),
            event_budget: config.event_budget(),
        };
        Some(
            Recorder::start(
                rc,
                recorded,
                Annotations {
                    gps: gps.clone(),
                    accel: impact.clone(),
                    clock: clock.clone(),
                    parking: parking.clone(),
                },
                health.clone(),
            )
            .map_err(|e| AppError::Data(config.record.dir.clone(), e))?,
        )
    } else {
        None
    };
    // A tap per camera: `tap.listen` is the first camera's, the next port
    // the second's, and so on (each its own with port 0).
    let mut taps = Vec::new();
    if let (Some(first), Some(base)) = (tap_listener, config.tap.listen) {
        taps.push((cameras.first().clone(), first));
        for (i, cam) in cameras.iter().enumerate().skip(1) {
            let port = match base.port() {
                0 => Some(0),
                p => u16::try_from(i).ok().and_then(|i| p.checked_add(i)),
            };
            let Some(port) = port else {
                return Err(AppError::Io(std::io::Error::other(format!(
                    "tap.listen = {base}: no port left for camera {}'s tap",
                    cam.id
                ))));
            };
            taps.push((
                cam.clone(),
                bind("tap.listen", SocketAddr::new(base.ip(), port))?,
            ));
        }
    }
    let running = cameras.start(config.encode.workers, &gps, Some(&parking))?;
    if let crate::config::IgnitionChoice::Input(path) = &config.parking.ignition {
        crate::parking::ignition::start(
            parking.clone(),
            path.clone(),
            config.parking.ignition_code,
        )?;
    }
    // The accelerometer on its own thread: an impact is an event.
    crate::impact::start(impact.clone(), config.impact.clone(), {
        let rec = recorder.as_ref().map(Recorder::handle);
        move |at, peak_g| {
            if let Some(rec) = &rec {
                rec.event_with(at, "impact", Some(peak_g));
            }
        }
    })?;

    let http_addr = http_listener.get_ref().local_addr()?;
    let tap_addrs = taps
        .iter()
        .map(|(cam, l)| Ok((cam.id.clone(), l.get_ref().local_addr()?)))
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    let redirect_addr = match &redirect_listener {
        Some(l) => Some(l.get_ref().local_addr()?),
        None => None,
    };
    announce(
        http_addr,
        !matches!(tls, crate::state::TlsState::Off),
        redirect_addr,
        &tap_addrs,
    );
    let tap_addrs = tap_addrs.into_iter().collect();

    let (config_gps_enabled, gps_server) = (config.gps.enabled, config.gps.server);
    let http = Connections::new(config.http.max_connections);
    let state = Arc::new(AppState {
        config,
        cameras: cameras.clone(),
        started,
        http,
        refused: AtomicU64::new(0),
        tap_clients: AtomicUsize::new(0),
        taps: tap_addrs,
        shutdown: Shutdown::default(),
        recorder: recorder.as_ref().map(Recorder::handle),
        gps: gps.clone(),
        impact,
        parking,
        clock: clock.clone(),
        auth,
        health: health.clone(),
        uploading: AtomicBool::new(false),
        tls,
        https_port: http_addr.port(),
    });
    let supervisor = Supervisor::start(state.clone())?;

    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        ex.spawn(crate::http::serve(http_listener, state.clone(), ex.clone()))
            .detach();
        for (camera, l) in taps {
            ex.spawn(crate::tap::serve(l, camera, state.clone(), ex.clone()))
                .detach();
        }
        // The clock's state, asked off the executor (chronyc is a process).
        ex.spawn({
            let clock = clock.clone();
            async move {
                loop {
                    let (reading, rtc) = smol::unblock(crate::timesync::read_system).await;
                    clock.update(&reading, rtc);
                    Timer::after(crate::timesync::POLL).await;
                }
            }
        })
        .detach();
        if config_gps_enabled {
            ex.spawn(crate::gps::client::run(gps.clone(), gps_server))
                .detach();
        }
        if let Some(l) = redirect_listener {
            ex.spawn(crate::http::serve_redirect(l, state.clone(), ex.clone()))
                .detach();
        }
        let sampler = {
            let (cameras, health) = (cameras.clone(), health.clone());
            ex.spawn(async move {
                loop {
                    for c in cameras.iter() {
                        c.stats.sample_rates(c.bus.published.get());
                    }
                    // The executor answers: one of the stages the watchdog
                    // is fed for.
                    health.executor.beat();
                    crate::faults::hold_while(|f| f.wedge_executor);
                    Timer::after(Duration::from_millis(500)).await;
                }
            })
        };

        if let Some(rec) = state.recorder.clone() {
            ex.spawn(async move {
                let mut byte = [0u8; 1];
                while usr1_rx.read_with(|mut s| s.read(&mut byte)).await.is_ok() {
                    log::info!("SIGUSR1: event");
                    rec.event(crate::clock::Timestamp::now(), "signal");
                }
            })
            .detach();
        }

        supervisor.ready();
        let mut byte = [0u8; 1];
        let _ = signal_rx.read_with(|mut s| s.read(&mut byte)).await;
        log::info!("shutting down");
        supervisor.stopping();
        state.shutdown.trigger();
        cameras.close();
        drop(sampler);
        // Let the streams send their last bytes and close, but never wait
        // long for a client that stopped reading.
        let deadline = Instant::now() + Duration::from_millis(800);
        while state.http.count() + state.tap_clients.load(Ordering::SeqCst) > 0
            && Instant::now() < deadline
        {
            Timer::after(Duration::from_millis(20)).await;
        }
    }));
    drop(ex);
    supervisor.join();
    running.shutdown();
    if let Some(r) = recorder {
        // The buses are closed: the recorder finishes its segments and exits.
        r.join();
    }
    log::info!("stopped");
    Ok(())
}

/// File descriptors beyond the HTTP connections: the camera and its
/// buffers, segment files, pipes, the tap and its clients, the listeners.
const OTHER_FILES: u64 = 128;

/// Raises the soft limit on open files towards the hard one so that
/// `http.max_connections` (and the quarter beyond it that may be closing)
/// fits; where it cannot, lowers the cap to what fits. The common default
/// of 1,024 open files fits the default of 256 connections.
fn fit_file_limit(config: &mut Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let max = config.http.max_connections as u64;
    let need = max + max / 4 + OTHER_FILES;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let mut soft = soft;
    if soft < need && setrlimit(Resource::RLIMIT_NOFILE, need.min(hard), hard).is_ok() {
        soft = need.min(hard);
    }
    if soft < need {
        let fits = (soft.saturating_sub(OTHER_FILES) * 4 / 5).max(8) as usize;
        log::warn!(
            "http.max_connections = {} needs {need} open files, the limit is {soft}: serving at most {fits}",
            config.http.max_connections
        );
        config.http.max_connections = fits;
    }
}

fn announce(
    http: SocketAddr,
    tls: bool,
    redirect: Option<SocketAddr>,
    taps: &[(String, SocketAddr)],
) {
    let scheme = if tls { "https" } else { "http" };
    let shown = if http.ip().is_unspecified() {
        format!(
            "{scheme}://localhost:{}/ (listening on all interfaces)",
            http.port()
        )
    } else {
        format!("{scheme}://{http}/")
    };
    let mut out = std::io::stdout().lock();
    // Before the live view's line, which tools wait for last.
    if let Some(r) = redirect {
        let _ = writeln!(out, "blackbox: redirect to HTTPS at http://{r}/");
    }
    let _ = writeln!(out, "blackbox: live view at {shown}");
    for (n, (id, tap)) in taps.iter().enumerate() {
        if n == 0 {
            // The first camera's, where one-camera tools look.
            let _ = writeln!(out, "blackbox: frame tap at {tap}");
        } else {
            let _ = writeln!(out, "blackbox: frame tap for {id} at {tap}");
        }
    }
    let _ = out.flush();
}
