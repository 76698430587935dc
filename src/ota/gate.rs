//! The health gate (`blackbox ota gate`, run by `blackbox-health.service`):
//! after an update boots as a one-shot tryboot, it decides whether the new
//! slot becomes the default.
//!
//! Healthy means, all at once: the service is `active` (it sent READY), it
//! has not restarted since the gate began, its systemd status line says
//! frames are streaming and a segment is recording, and `/healthz` answers
//! 200 (every stage, the recorder's syncs included, is making progress).
//! Held for `hold` without a break, the slot is committed with
//! `rauc status mark-good`. A restart, or no such stretch before
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
    pub status: String,
    pub healthz: bool,
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
        if !self.status.starts_with("streaming") {
            return Some(format!("no frames: {:?}", self.status));
        }
        if !self.status.contains("; recording ") || self.status.contains("waiting for frames") {
            return Some(format!("not recording: {:?}", self.status));
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
                let since = *healthy_since.get_or_insert(t);
                if t.duration_since(since) >= timing.hold {
                    return Verdict::Healthy(t.duration_since(start));
                }
            }
            Some(p) => {
                healthy_since = None;
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

/// Whether `GET /healthz` at `addr` answers 200.
pub fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Samples the real service.
pub fn look(unit: &str, addr: SocketAddr) -> Sample {
    let mut s = systemd_sample(unit);
    s.healthz = healthz(addr);
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
        }
    }

    /// Runs the gate over `samples` (the last repeats), one second apart.
    fn run(samples: Vec<Sample>) -> Verdict {
        let t0 = Instant::now();
        let clock = Cell::new(t0);
        let i = Cell::new(0);
        watch(
            Timing {
                hold: Duration::from_secs(5),
                deadline: Duration::from_secs(20),
                every: Duration::from_secs(1),
            },
            || {
                let n = i.get();
                i.set(n + 1);
                samples[n.min(samples.len() - 1)].clone()
            },
            |d| clock.set(clock.get() + d),
            || clock.get(),
        )
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
                status: "no signal (reopening); recording, waiting for frames".into(),
                ..good(0)
            },
            Sample {
                status: "streaming 30.0 fps; not recording".into(),
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
    fn healthz_against_a_real_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                let _ = write!(c, "HTTP/1.1 {code}\r\nContent-Length: 3\r\n\r\nok\n");
            }
        });
        assert!(healthz(addr));
        assert!(!healthz(addr));
        t.join().unwrap();
        assert!(!healthz(addr), "nobody listening");
    }
}
