//! What systemd hears from blackbox, on a thread of its own: `READY=1` once
//! the HTTP socket listens and the pipeline runs, a one-line `STATUS=` every
//! few seconds (source state, fps, recording, segment), `STOPPING=1` on
//! shutdown, and `WATCHDOG=1` every half watchdog period only while
//! [`crate::supervise::Health`] says every stage is making progress. A stall
//! is logged once when it begins and once when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::failures::FailureRun;
use crate::state::AppState;
use crate::supervise::Notifier;

/// How often STATUS= is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The notifying thread.
pub struct Supervisor {
    notifier: Arc<Notifier>,
    state: Arc<AppState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One line for `systemctl status`.
fn status_line(state: &AppState) -> String {
    let several = state.cameras.len() > 1;
    let mut line = state
        .cameras
        .iter()
        .map(|c| {
            let capture = c.stats.capture_status();
            let (fps, _) = c.stats.rates();
            let what = match capture.state.name() {
                "streaming" => format!("streaming {fps:.1} fps"),
                "starting" => "starting".to_string(),
                _ => format!(
                    "no signal ({})",
                    capture.last_error.unwrap_or_else(|| "reopening".into())
                ),
            };
            if several {
                format!("{} {what}", c.id)
            } else {
                what
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    match &state.recorder {
        None => line.push_str("; recording disabled"),
        Some(r) => {
            let st = r.status();
            match (st.state, st.failure, st.segment) {
                ("failing", Some(f), _) => {
                    line.push_str(&format!("; recording FAILING: {}", f.error))
                }
                ("recording", _, Some(seg)) => line.push_str(&format!("; recording {seg}")),
                ("recording", _, None) => line.push_str("; recording, waiting for frames"),
                _ => line.push_str("; not recording"),
            }
        }
    }
    line
}

impl Supervisor {
    /// Starts the thread (it pings nothing until there is a watchdog).
    pub fn start(state: Arc<AppState>) -> std::io::Result<Self> {
        let notifier = Arc::new(Notifier::from_env());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (notifier, state, stop) = (notifier.clone(), state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("supervisor".into())
                .spawn(move || supervise(&notifier, &state, &stop))?
        };
        if let Some(every) = notifier.watchdog_every() {
            log::info!("systemd watchdog: fed every {every:?} while every stage progresses");
        }
        Ok(Self {
            notifier,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Tells systemd blackbox is serving.
    pub fn ready(&self) {
        let msg = format!("READY=1\nSTATUS={}", status_line(&self.state));
        if let Err(e) = self.notifier.send(&msg) {
            log::warn!("cannot tell systemd blackbox is ready: {e}");
        }
    }

    /// Tells systemd blackbox is stopping, and stops the thread.
    pub fn stopping(&self) {
        let _ = self.notifier.send("STOPPING=1");
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the thread.
    pub fn join(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(notifier: &Notifier, state: &AppState, stop: &AtomicBool) {
    let tick = notifier
        .watchdog_every()
        .map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1)));
    let mut stalls = FailureRun::new("supervisor: the watchdog is not fed");
    let mut sends = FailureRun::new("supervisor: notifying systemd");
    let mut last_status = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let health = state.health.check();
        match &health {
            Ok(()) => {
                stalls.succeeded();
            }
            Err(stall) => stalls.failed(stall),
        }
        let mut msg = String::new();
        if health.is_ok() && notifier.watchdog_every().is_some() {
            msg.push_str("WATCHDOG=1\n");
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            let line = match &health {
                Ok(()) => status_line(state),
                Err(stall) => format!("STALLED: {stall}; {}", status_line(state)),
            };
            msg.push_str(&format!("STATUS={line}\n"));
        }
        if !msg.is_empty() && notifier.active() {
            match notifier.send(msg.trim_end()) {
                Ok(()) => {
                    sends.succeeded();
                }
                Err(e) => sends.failed(&e),
            }
        }
        // Sleep in short steps so that shutdown is prompt.
        let until = Instant::now() + tick;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
