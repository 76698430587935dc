//! systemd supervision, from systemd's side of the socket: blackbox runs
//! with `$NOTIFY_SOCKET` naming a datagram socket this test reads, as
//! systemd's would be, and a watchdog of 2 s. It says READY, feeds the
//! watchdog while every stage progresses, stops feeding it while any one
//! stage is wedged (each in turn, through the test-only fault injection),
//! says which in STATUS=, answers 503 on /healthz, feeds it again once the
//! stage is released, and says STOPPING on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, TempDir};

struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    fn bind(path: &Path) -> Systemd {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Systemd { socket }
    }

    /// Messages until `found` holds for one of them, for at most `secs`;
    /// returns them all.
    fn until(&self, secs: u64, what: &str, found: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let hit = found(&msg);
                seen.push(msg);
                if hit {
                    return seen;
                }
            }
            assert!(Instant::now() < deadline, "no {what} in {secs} s: {seen:?}");
        }
    }

    /// Every message for `secs`.
    fn during(&self, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        seen
    }
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[test]
fn the_watchdog_is_fed_only_while_every_stage_progresses() {
    let dir = TempDir::new("supervise");
    let notify = dir.0.join("notify");
    let faults = dir.0.join("faults");
    std::fs::write(&faults, "").unwrap();
    let systemd = Systemd::bind(&notify);
    let mut server = Server::start_with_env(
        &["--size", "320x240", "--fps", "10"],
        &[
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
            ("BLACKBOX_FAULTS", faults.to_str().unwrap()),
        ],
    );
    let ready = systemd.until(60, "READY=1", |m| m.contains("READY=1"));
    let ready = ready.last().unwrap();
    assert!(ready.contains("STATUS="), "{ready}");
    systemd.until(30, "WATCHDOG=1", |m| m.contains("WATCHDOG=1"));
    let (code, _, body) = common::get(&server.url("/healthz"));
    assert_eq!((code, String::from_utf8_lossy(&body).trim()), (200, "ok"));

    for (fault, stage) in [
        ("wedge_capture", "camera front's capture thread"),
        ("wedge_encoder", "the encoders of camera front"),
        ("wedge_recorder", "the recorder"),
        ("wedge_executor", "the executor"),
    ] {
        std::fs::write(&faults, format!("{fault} = 1\n")).unwrap();
        // STATUS= names the stalled stage once the stall is seen.
        let marker = format!("STALLED: {stage}");
        systemd.until(60, &marker, |m| m.contains(&marker));
        if stage != "the executor" {
            // (A wedged executor cannot answer HTTP at all.)
            let (code, _, body) = common::get(&server.url("/healthz"));
            assert_eq!(
                (code, String::from_utf8_lossy(&body).trim()),
                (503, "stalled"),
                "{stage}"
            );
        }
        let quiet = systemd.during(3);
        assert_eq!(pings(&quiet), 0, "{stage} wedged, yet: {quiet:?}");
        std::fs::write(&faults, "").unwrap();
        systemd.until(60, "WATCHDOG=1 again", |m| m.contains("WATCHDOG=1"));
    }
    let (code, _, _) = common::get(&server.url("/healthz"));
    assert_eq!(code, 200);
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    systemd.until(30, "STOPPING=1", |m| m.contains("STOPPING=1"));
    let log = server.terminate();
    for stage in [
        "camera front's capture thread",
        "the encoders of camera front",
        "the recorder",
        "the executor",
    ] {
        // One line per stall, not one per second of it. (A second line is a
        // real stall of its own: a busy host's disk may hold a sync for
        // longer than the recorder's 3 s.)
        let lines = log
            .lines()
            .filter(|l| l.contains("the watchdog is not fed") && l.contains(stage))
            .count();
        assert!(
            (1..=2).contains(&lines),
            "one line as {stage} stalls, not {lines}:\n{log}"
        );
    }
}
