//! Test-only fault injection. With the `fault-injection` cargo feature (which
//! `scripts/test.sh` enables and the release build does not), a test can make
//! a running blackbox misbehave in ways the real world produces but a test
//! cannot arrange on demand: a wall clock that steps, a card that writes
//! slowly, an `fdatasync` or a directory fsync that fails.
//!
//! The test names a file in `BLACKBOX_FAULTS` and writes `key = value` lines
//! to it (rename a new file over it to change them atomically):
//!
//! | key | effect |
//! |---|---|
//! | `clock_offset_ms` | added to the wall clock ([`crate::clock::wall_now`]); negative steps back |
//! | `mono_offset_ms` | added to the parking clock ([`crate::clock::parking_now`]): the ignition delay, the time-lapse interval and the cut-off, so a test can park for hours in seconds |
//! | `scene` | the test pattern's view: `moving` (as normal), `still` (the picture freezes), `bright` (the frozen picture, much brighter: headlights) |
//! | `slow_write_ms` | the recorder sleeps this long before every frame it writes |
//! | `fail_sync` | `1`: every `fdatasync` of a segment fails with EIO |
//! | `fail_dir_sync` | `1`: every directory fsync fails with EIO |
//! | `wedge_capture`, `wedge_encoder`, `wedge_recorder`, `wedge_executor` | `1`: that stage stops making progress (a thread stuck in a driver, a deadlock) until the flag is cleared |
//!
//! The file is read again when its modification time changes, checked at most
//! every 20 ms. Without the feature every function here is a constant and the
//! environment is never read.

/// What the test pattern shows (the `scene` key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scene {
    #[default]
    Moving,
    Still,
    Bright,
}

/// The faults in force right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub clock_offset_ms: i64,
    pub mono_offset_ms: u64,
    pub scene: Scene,
    pub slow_write_ms: u64,
    pub fail_sync: bool,
    pub fail_dir_sync: bool,
    pub wedge_capture: bool,
    pub wedge_encoder: bool,
    pub wedge_recorder: bool,
    pub wedge_executor: bool,
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::Mutex;
    use std::time::{Duration, Instant, SystemTime};

    use super::{Faults, Scene};
    use crate::sync::lock;

    struct Cache {
        checked: Option<Instant>,
        /// The file as last read: modification time, inode and size (a
        /// file renamed over it is a new inode even within one tick of the
        /// coarse clock that stamps mtimes).
        seen: Option<(SystemTime, u64, u64)>,
        faults: Faults,
    }

    static CACHE: Mutex<Cache> = Mutex::new(Cache {
        checked: None,
        seen: None,
        faults: Faults {
            clock_offset_ms: 0,
            mono_offset_ms: 0,
            scene: Scene::Moving,
            slow_write_ms: 0,
            fail_sync: false,
            fail_dir_sync: false,
            wedge_capture: false,
            wedge_encoder: false,
            wedge_recorder: false,
            wedge_executor: false,
        },
    });

    fn parse(text: &str) -> Faults {
        let mut f = Faults::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "clock_offset_ms" => f.clock_offset_ms = v.parse().unwrap_or(0),
                "mono_offset_ms" => f.mono_offset_ms = v.parse().unwrap_or(0),
                "scene" => {
                    f.scene = match v {
                        "still" => Scene::Still,
                        "bright" => Scene::Bright,
                        _ => Scene::Moving,
                    }
                }
                "slow_write_ms" => f.slow_write_ms = v.parse().unwrap_or(0),
                "fail_sync" => f.fail_sync = v == "1",
                "fail_dir_sync" => f.fail_dir_sync = v == "1",
                "wedge_capture" => f.wedge_capture = v == "1",
                "wedge_encoder" => f.wedge_encoder = v == "1",
                "wedge_recorder" => f.wedge_recorder = v == "1",
                "wedge_executor" => f.wedge_executor = v == "1",
                _ => {}
            }
        }
        f
    }

    pub fn current() -> Faults {
        let Some(path) = std::env::var_os("BLACKBOX_FAULTS") else {
            return Faults::default();
        };
        let mut c = lock(&CACHE);
        if c.checked
            .is_some_and(|t| t.elapsed() < Duration::from_millis(20))
        {
            return c.faults;
        }
        c.checked = Some(Instant::now());
        let seen = std::fs::metadata(&path).ok().and_then(|m| {
            use std::os::unix::fs::MetadataExt;
            Some((m.modified().ok()?, m.ino(), m.len()))
        });
        if seen != c.seen {
            c.seen = seen;
            c.faults = std::fs::read_to_string(&path)
                .map(|t| parse(&t))
                .unwrap_or_default();
        }
        c.faults
    }
}

/// The faults in force (all off without the `fault-injection` feature).
#[cfg(feature = "fault-injection")]
pub fn current() -> Faults {
    imp::current()
}

/// The faults in force (all off without the `fault-injection` feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn current() -> Faults {
    Faults::default()
}

/// Holds the calling thread while `wedged` says so (a stage stuck in a
/// driver or a deadlock, as far as anyone watching can tell).
pub fn hold_while(wedged: fn(&Faults) -> bool) {
    while wedged(&current()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The error an injected failure reports: EIO, exactly as a failing card's.
pub fn eio() -> std::io::Error {
    std::io::Error::from(nix::errno::Errno::EIO)
}
