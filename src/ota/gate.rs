//! The health gate (`blackbox ota gate`, run by `blackbox-health.service`):
//! after an update boots as a one-shot tryboot, it decides whether the new
//! slot becomes the default.
//!
//! Healthy means, all at once: the service is `active` (it sent READY), it
//! has not restarted since the gate began, `/healthz` answers 200 (every
//! stage is making progress) and `/healthz?ready` answers 200 (the camera
//! streams, and frames are being written and synced: see
//! [`crate::ready`]). The gate reads those structured answers, never the
//! human `STATUS=` line, which it only quotes in its log.
//! Held for `hold` without a break, the slot is committed with
//! `rauc status mark-good`. A restart, recording that fails for
//! [`FAILING_GIVE_UP`] in a row, or no healthy stretch before
//! `deadline`, marks it bad (`rauc status mark-bad`) and reboots: the
//! firmware's tryboot flag is gone, so the old slot boots. A hang or crash
//! of the whole system lands there too, by the watchdog.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// One look at the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub active: bool,
    pub restarts: u64,
    /// systemd's status line, for the log only.
    pub status: String,
    pub healthz: bool,
    /// `None` when `/healthz?ready` answers 200; else its word (or why it
    /// could not be asked).
    pub not_ready: Option<String>,
}

impl Sample {
    /// Whether this look, alone, is healthy; else why not.
    pub fn problem(&self) -> Option<String> {
        if !self.active {
            return Some("the service is not active".into());
        }
        if !self.healthz {
            return Some("/healthz does not answer 200".into());
        }
        if let Some(word) = &self.not_ready {
            return Some(format!("not ready ({word}); status: {:?}", self.status));
        }
        None
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy for the whole hold; after this long.
    Healthy(Duration),
    /// Why not.
    Unhealthy(String),
}

/// How long to watch.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Healthy this long without a break.
    pub hold: Duration,
    /// Give up after this long.
    pub deadline: Duration,
    /// Look this often.
    pub every: Duration,
}

/// A slot whose recorder has failed this long without a break is rolled
/// back at once rather than at the deadline: a camera that has not started
/// yet is worth waiting for, a card this system cannot write is not.
pub const FAILING_GIVE_UP: Duration = Duration::from_secs(60);

/// Watches `look` until a verdict; `sleep` waits between looks (real time
/// in the gate, none in tests).
pub fn watch(
    timing: Timing,
    mut look: impl FnMut() -> Sample,
    mut sleep: impl FnMut(Duration),
    now: impl Fn() -> Instant,
) -> Verdict {
    let start = now();
    let first = look();
    // The gate starts with the boot: any restart in this boot counts.
    let restarts = 0u64;
    let mut healthy_since: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut last_problem = String::from("not looked at yet");
    let mut sample = first;
    loop {
        let t = now();
        if sample.restarts > restarts {
            return Verdict::Unhealthy(format!(
                "the service restarted {} time(s) in this boot",
                sample.restarts
            ));
        }
        match sample.problem() {
            None => {
                failing_since = None;
                let since = *healthy_since.get_or_insert(t);
                if t.duration_since(since) >= timing.hold {
                    return Verdict::Healthy(t.duration_since(start));
                }
            }
            Some(p) => {
                healthy_since = None;
                if sample
                    .not_ready
                    .as_deref()
                    .is_some_and(|w| w.contains("recording-failing"))
                {
                    let since = *failing_since.get_or_insert(t);
                    if t.duration_since(since) >= FAILING_GIVE_UP {
                        return Verdict::Unhealthy(format!(
                            "recording has failed for {} s in a row: {p}",
                            t.duration_since(since).as_secs()
                        ));
                    }
                } else {
                    failing_since = None;
                }
                last_problem = p;
            }
        }
        if t.duration_since(start) >= timing.deadline {
            return Verdict::Unhealthy(format!(
                "not healthy for {} s in a row within {} s; last: {last_problem}",
                timing.hold.as_secs(),
                timing.deadline.as_secs()
            ));
        }
        sleep(timing.every);
        sample = look();
    }
}

/// `systemctl show` for the unit, parsed.
fn systemd_sample(unit: &str) -> Sample {
    let out = Command::new("systemctl")
        .args([
            "show",
            unit,
            "-p",
            "ActiveState",
            "-p",
            "NRestarts",
            "-p",
            "StatusText",
        ])
        .output();
    let mut s = Sample::default();
    let Ok(out) = out else {
        return s;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => s.active = v == "active",
            Some(("NRestarts", v)) => s.restarts = v.parse().unwrap_or(0),
            Some(("StatusText", v)) => s.status = v.to_string(),
            _ => {}
        }
    }
    s
}

/// `GET target` at `addr`: the status code and the body's first word.
fn ask(addr: SocketAddr, target: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("cannot ask: {e}"))?;
    let mut reply = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no HTTP answer".to_string())?;
    let word = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| body.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    Ok((code, word))
}

/// Whether `GET /healthz` at `addr` answers 200.
pub fn healthz(addr: SocketAddr) -> bool {
    matches!(ask(addr, "/healthz"), Ok((200, _)))
}

/// `None` if `GET /healthz?ready` at `addr` answers 200; else why not.
pub fn not_ready(addr: SocketAddr) -> Option<String> {
    match ask(addr, "/healthz?ready") {
        Ok((200, _)) => None,
        Ok((code, word)) => Some(format!("{code} {word}")),
        Err(e) => Some(e),
    }
}

/// Samples the real service.
pub fn look(unit: &str, addr: SocketAddr) -> Sample {
    let mut s = systemd_sample(unit);
    s.healthz = healthz(addr);
    s.not_ready = not_ready(addr);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn good(restarts: u64) -> Sample {
        Sample {
            active: true,
            restarts,
            status: "streaming 30.0 fps; recording 00000001-20261128T120000Z.mkv".into(),
            healthz: true,
            not_ready: None,
        }
    }

    /// Runs the gate over `samples` (the last repeats), one second apart,
    /// holding 5 s with a deadline of 20 s.
    fn run(samples: Vec<Sample>) -> Verdict {
        run_with(samples, 5, 20, 1).0
    }

    /// The same with its own timing (seconds); also how long it watched.
    fn run_with(samples: Vec<Sample>, hold: u64, deadline: u64, every: u64) -> (Verdict, Duration) {
        let t0 = Instant::now();
        let clock = Cell::new(t0);
        let i = Cell::new(0);
        let v = watch(
            Timing {
                hold: Duration::from_secs(hold),
                deadline: Duration::from_secs(deadline),
                every: Duration::from_secs(every),
            },
            || {
                let n = i.get();
                i.set(n + 1);
                samples[n.min(samples.len() - 1)].clone()
            },
            |d| clock.set(clock.get() + d),
            || clock.get(),
        );
        (v, clock.get() - t0)
    }

    #[test]
    fn healthy_after_the_hold() {
        assert_eq!(run(vec![good(0)]), Verdict::Healthy(Duration::from_secs(5)));
    }

    #[test]
    fn a_break_starts_the_hold_again() {
        let mut s = vec![good(0); 4];
        s.push(Sample {
            healthz: false,
            ..good(0)
        });
        s.push(good(0));
        assert_eq!(run(s), Verdict::Healthy(Duration::from_secs(10)));
    }

    #[test]
    fn a_restart_fails_at_once() {
        let v = run(vec![good(0), good(0), good(1)]);
        assert!(
            matches!(v, Verdict::Unhealthy(ref why) if why.contains("restarted")),
            "{v:?}"
        );
    }

    #[test]
    fn never_healthy_fails_at_the_deadline() {
        for bad in [
            Sample {
                active: false,
                ..good(0)
            },
            Sample {
                not_ready: Some("503 no-frames".into()),
                ..good(0)
            },
            Sample {
                not_ready: Some("503 not-recording".into()),
                ..good(0)
            },
            // A card that refuses every write: alive, but never committed,
            // whatever the status line says.
            Sample {
                status: "streaming 30.0 fps; recording 00000001-20261128T120000Z.mkv".into(),
                not_ready: Some("503 recording-failing".into()),
                ..good(0)
            },
        ] {
            let v = run(vec![bad]);
            assert!(
                matches!(v, Verdict::Unhealthy(ref why) if why.contains("within 20 s")),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_recorder_that_keeps_failing_is_rolled_back_early() {
        let failing = Sample {
            not_ready: Some("503 recording-failing".into()),
            ..good(0)
        };
        let (v, watched) = run_with(vec![failing.clone()], 30, 300, 2);
        assert!(
            matches!(v, Verdict::Unhealthy(ref why) if why.contains("recording has failed for 60 s")),
            "{v:?}"
        );
        assert_eq!(watched, FAILING_GIVE_UP, "at once, not at the deadline");
        // A failure that clears starts the count again.
        let mut samples = vec![failing.clone(); 50];
        samples.push(good(0));
        samples.extend(vec![failing.clone(); 50]);
        samples.push(good(0));
        let (v, _) = run_with(samples, 5, 300, 1);
        assert!(matches!(v, Verdict::Healthy(_)), "{v:?}");
    }

    #[test]
    fn healthz_against_a_real_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for (code, word) in [
                ("200 OK", "ok"),
                ("503 Service Unavailable", "stalled"),
                ("200 OK", "ready"),
                ("503 Service Unavailable", "recording-failing"),
            ] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.1 {code}\r\nContent-Length: {}\r\n\r\n{word}\n",
                    word.len() + 1
                );
            }
        });
        assert!(healthz(addr));
        assert!(!healthz(addr));
        assert_eq!(not_ready(addr), None);
        assert_eq!(not_ready(addr).as_deref(), Some("503 recording-failing"));
        t.join().unwrap();
        assert!(!healthz(addr), "nobody listening");
        assert!(not_ready(addr).is_some());
    }
}
