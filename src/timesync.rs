//! Whether the wall clock can be trusted, and from where it came. A Pi 5
//! without an RTC battery or a network boots with whatever time it last
//! saved; footage named by that time is evidence with a wrong date. So
//! blackbox asks, every [`POLL`]:
//! - chrony (`chronyc -n -c tracking`, read-only, allowed to any local
//!   user): synchronised or not, and its reference: a reference clock named
//!   `GPS`/`NMEA`/`PPS` is the GPS, an address is NTP;
//! - without chrony, the kernel (`adjtimex` with no change asked, which a
//!   unit with `ProtectClock=` forbids: then the state is unknown);
//! - and whether the kernel set the clock from an RTC at boot
//!   (`/sys/class/rtc/rtc0/hctosys`): the source of an unsynchronised clock.
//!
//! [`TimeSync`] keeps the answer for the status, the page and the recorder
//! (each segment notes whether the clock was synchronised when it began),
//! and, once a synchronised time is seen, the offset that turns the
//! monotonic clock into true time: a segment recorded before then can be
//! shown at its corrected start.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::{monotonic_now, unix_seconds, wall_now};
use crate::sync::lock;

/// How often the clock's state is asked for.
pub const POLL: Duration = Duration::from_secs(10);
/// chronyc that does not answer within this is taken as absent.
const CHRONYC_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Synchronised to the GPS (chrony's reference clock).
    Gps,
    /// Synchronised over the network.
    Ntp,
    /// Not synchronised; set from the RTC at boot.
    Rtc,
    /// Not synchronised, and no RTC set it: whatever was saved last.
    None,
    /// Nothing could be asked (no chrony, adjtimex forbidden).
    Unknown,
}

/// What `/api/status` says of the clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClockStatus {
    pub synchronized: bool,
    pub source: Source,
    /// chrony's reference (`GPS`, an address), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The current wall-clock time's error against the last synchronised
    /// time seen (seconds; positive: the clock runs ahead). `None` until
    /// one was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction_seconds: Option<f64>,
    /// Unix seconds when the clock was first seen synchronised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronized_since: Option<f64>,
}

/// One answer from the system.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub synchronized: Option<bool>,
    pub reference: Option<String>,
}

/// Parses `chronyc -n -c tracking`: reference ID (hex), reference name or
/// address, ..., leap status last.
pub fn parse_chronyc(out: &str) -> Option<Reading> {
    let line = out.lines().next()?;
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() < 14 {
        return None;
    }
    let leap = fields[fields.len() - 1].trim();
    let synchronized = match leap {
        "Not synchronised" => false,
        "Normal" | "Insert second" | "Delete second" => true,
        _ => return None,
    };
    let id = fields[0].trim();
    let name = fields[1].trim();
    let reference =
        (!name.is_empty() && id != "00000000" && id != "7F7F0101").then(|| name.to_string());
    Some(Reading {
        synchronized: Some(synchronized),
        reference,
    })
}

/// `chronyc` on PATH, if there is one.
fn find_chronyc() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("chronyc"))
        .find(|p| p.is_file())
}

/// Asks chrony; `None` if it is not there or does not answer. Where there
/// is no chronyc nothing is started (no fork of this process for nothing).
fn ask_chrony() -> Option<Reading> {
    let mut child = Command::new(find_chronyc()?)
        .args(["-n", "-c", "tracking"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + CHRONYC_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    use std::io::Read;
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    parse_chronyc(&out)
}

/// Asks the kernel, changing nothing; `None` where that is forbidden.
fn ask_kernel() -> Option<bool> {
    // SAFETY: a zeroed timex is a valid argument; modes = 0 asks for the
    // state without changing anything, and the kernel only writes into
    // the struct we own for the duration of the call.
    let (state, status) = unsafe {
        let mut tx: nix::libc::timex = std::mem::zeroed();
        tx.modes = 0;
        let state = nix::libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return None;
    }
    Some(state != nix::libc::TIME_ERROR && status & nix::libc::STA_UNSYNC == 0)
}

/// Whether the kernel set the clock from an RTC at boot.
fn rtc_set_clock() -> bool {
    std::fs::read_to_string("/sys/class/rtc/rtc0/hctosys").is_ok_and(|v| v.trim() == "1")
}

/// The clock's state as blackbox knows it.
pub struct TimeSync {
    synchronized: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    status: Option<ClockStatus>,
    /// True time minus the monotonic clock, as of the last synchronised
    /// reading (wall - mono, in ns since the epoch).
    offset: Option<Duration>,
    since: Option<SystemTime>,
}

impl Default for TimeSync {
    fn default() -> Self {
        Self {
            synchronized: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }
}

/// The source a reading names.
pub fn source_of(r: &Reading, rtc: bool) -> Source {
    match (r.synchronized, r.reference.as_deref()) {
        (Some(true), Some(name))
            if ["GPS", "NMEA", "PPS", "GPSD"].contains(&name.to_ascii_uppercase().as_str()) =>
        {
            Source::Gps
        }
        (Some(true), _) => Source::Ntp,
        (Some(false), _) if rtc => Source::Rtc,
        (Some(false), _) => Source::None,
        (None, _) => Source::Unknown,
    }
}

impl TimeSync {
    /// Whether the clock was synchronised at the last look (cheap).
    pub fn synchronized(&self) -> bool {
        self.synchronized.load(Ordering::Relaxed)
    }

    /// Takes one reading (what [`poll`] asks the system).
    pub fn update(&self, r: &Reading, rtc: bool) {
        let synced = r.synchronized == Some(true);
        self.synchronized.store(synced, Ordering::Relaxed);
        let mut i = lock(&self.inner);
        if synced {
            let wall = wall_now();
            if let Ok(since_epoch) = wall.duration_since(SystemTime::UNIX_EPOCH) {
                i.offset = since_epoch.checked_sub(monotonic_now());
            }
            i.since.get_or_insert(wall);
        }
        i.status = Some(ClockStatus {
            synchronized: synced,
            source: source_of(r, rtc),
            reference: r.reference.clone(),
            correction_seconds: None,
            synchronized_since: i.since.map(unix_seconds),
        });
    }

    /// The true time at monotonic instant `mono`, once a synchronised time
    /// has been seen.
    pub fn true_time(&self, mono: Duration) -> Option<SystemTime> {
        let offset = lock(&self.inner).offset?;
        Some(SystemTime::UNIX_EPOCH + offset + mono)
    }

    pub fn status(&self) -> ClockStatus {
        let i = lock(&self.inner);
        let mut s = i.status.clone().unwrap_or(ClockStatus {
            synchronized: false,
            source: Source::Unknown,
            reference: None,
            correction_seconds: None,
            synchronized_since: None,
        });
        if let Some(offset) = i.offset {
            let truth = SystemTime::UNIX_EPOCH + offset + monotonic_now();
            let wall = wall_now();
            s.correction_seconds = Some(match wall.duration_since(truth) {
                Ok(ahead) => (ahead.as_secs_f64() * 1000.0).round() / 1000.0,
                Err(e) => -(e.duration().as_secs_f64() * 1000.0).round() / 1000.0,
            });
        }
        s
    }
}

/// Asks chrony, else the kernel, once.
pub fn read_system() -> (Reading, bool) {
    let reading = ask_chrony().unwrap_or_else(|| Reading {
        synchronized: ask_kernel(),
        reference: None,
    });
    (reading, rtc_set_clock())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronyc_output_is_read() {
        let gps = "47505300,GPS,1,1796500000.123456789,0.000012345,0.000001,0.00002,-1.234,0.001,0.05,0.000000001,0.000010,16.0,Normal\n";
        let r = parse_chronyc(gps).unwrap();
        assert_eq!(r.synchronized, Some(true));
        assert_eq!(source_of(&r, false), Source::Gps);
        let ntp = "C0A80101,192.168.1.1,2,1796500000.1,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,64.0,Normal";
        assert_eq!(source_of(&parse_chronyc(ntp).unwrap(), false), Source::Ntp);
        let none = "00000000,,0,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not synchronised";
        let r = parse_chronyc(none).unwrap();
        assert_eq!(r.synchronized, Some(false));
        assert_eq!(r.reference, None);
        assert_eq!(source_of(&r, true), Source::Rtc);
        assert_eq!(source_of(&r, false), Source::None);
        for bad in [
            "",
            "506 Cannot talk to daemon",
            "a,b,c",
            "1,2,3,4,5,6,7,8,9,10,11,12,13,Maybe",
        ] {
            assert_eq!(parse_chronyc(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_true_time_comes_from_the_last_synchronised_reading() {
        let t = TimeSync::default();
        assert_eq!(t.true_time(Duration::ZERO), None);
        assert_eq!(t.status().source, Source::Unknown);
        t.update(
            &Reading {
                synchronized: Some(false),
                reference: None,
            },
            false,
        );
        assert!(!t.synchronized());
        assert_eq!(t.status().correction_seconds, None);
        t.update(
            &Reading {
                synchronized: Some(true),
                reference: Some("GPS".into()),
            },
            false,
        );
        assert!(t.synchronized());
        let s = t.status();
        assert_eq!(s.source, Source::Gps);
        assert!(s.correction_seconds.unwrap().abs() < 0.5);
        let now = t.true_time(monotonic_now()).unwrap();
        let diff = now
            .duration_since(wall_now())
            .unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(500));
    }
}
