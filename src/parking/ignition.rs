//! The ignition line, read from an input device: the Pi's `gpio-key`
//! overlay turns a GPIO into a key (or, with `linux,input-type = <5>`, a
//! switch) on `/dev/input/eventN`, pressed while the line is active. Its
//! level is asked for when the device opens (`EVIOCGKEY` / `EVIOCGSW`) and
//! after the kernel dropped events (`SYN_DROPPED`), and followed from its
//! events in between. A device that is missing, goes away or is not such a
//! key is logged once and looked for again every [`RETRY`]; meanwhile the
//! line counts as unknown and the car as driving. Runs on its own thread.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::libc;

use super::Parking;
use crate::failures::FailureRun;
use crate::impact::evdev::parse;

/// How soon a missing or failed line is looked for again.
pub const RETRY: Duration = Duration::from_secs(2);

const EV_SYN: u16 = 0x00;
const EV_KEY: u16 = 0x01;
const EV_SW: u16 = 0x05;
const SYN_DROPPED: u16 = 3;

nix::ioctl_read_buf!(eviocgbit_key, b'E', 0x20 + EV_KEY, u8);
nix::ioctl_read_buf!(eviocgbit_sw, b'E', 0x20 + EV_SW, u8);
nix::ioctl_read_buf!(eviocgkey, b'E', 0x18, u8);
nix::ioctl_read_buf!(eviocgsw, b'E', 0x1b, u8);

/// Why the line cannot be read.
#[derive(Debug)]
pub enum LineError {
    Open(PathBuf, std::io::Error),
    NoSuchCode(PathBuf, u16),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open(p, e) => write!(f, "cannot open the ignition line {}: {e}", p.display()),
            Self::NoSuchCode(p, c) => {
                write!(
                    f,
                    "{} has no key or switch {c}: not the ignition line",
                    p.display()
                )
            }
            Self::Io(p, e) => write!(f, "the ignition line {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LineError {}

fn bit(bits: &[u8], n: usize) -> bool {
    bits.get(n / 8).is_some_and(|b| b & (1 << (n % 8)) != 0)
}

/// An open ignition line.
pub struct Line {
    file: File,
    path: PathBuf,
    code: u16,
    /// Whether `code` is a switch (`EV_SW`) rather than a key.
    switch: bool,
}

impl Line {
    pub fn open(path: &Path, code: u16) -> Result<Self, LineError> {
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|e| LineError::Open(path.to_path_buf(), e))?;
        let fd = file.as_raw_fd();
        let mut keys = [0u8; 96];
        let mut sws = [0u8; 8];
        // SAFETY: the buffers outlive the calls and their lengths are passed.
        let has_key = unsafe { eviocgbit_key(fd, &mut keys) }.is_ok() && bit(&keys, code.into());
        // SAFETY: as above.
        let has_sw = unsafe { eviocgbit_sw(fd, &mut sws) }.is_ok() && bit(&sws, code.into());
        if !has_key && !has_sw {
            return Err(LineError::NoSuchCode(path.to_path_buf(), code));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            code,
            switch: !has_key && has_sw,
        })
    }

    /// The line's level now, asked of the kernel.
    pub fn level(&self) -> Result<bool, LineError> {
        let fd = self.file.as_raw_fd();
        let mut bits = [0u8; 96];
        // SAFETY: the buffer outlives the call and its length is passed.
        let r = unsafe {
            if self.switch {
                eviocgsw(fd, &mut bits)
            } else {
                eviocgkey(fd, &mut bits)
            }
        };
        r.map_err(|e| LineError::Io(self.path.clone(), e.into()))?;
        Ok(bit(&bits, self.code.into()))
    }

    /// Blocks until the line's level may have changed; returns it.
    pub fn wait_change(&mut self) -> Result<bool, LineError> {
        let size = size_of::<libc::input_event>();
        let mut buf = vec![0u8; 16 * size];
        let kind = if self.switch { EV_SW } else { EV_KEY };
        loop {
            let n = self
                .file
                .read(&mut buf)
                .map_err(|e| LineError::Io(self.path.clone(), e))?;
            if n == 0 {
                return Err(LineError::Io(
                    self.path.clone(),
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            let mut level = None;
            for chunk in buf[..n].chunks_exact(size) {
                let ev = parse(chunk);
                match (ev.kind, ev.code) {
                    (EV_SYN, SYN_DROPPED) => level = Some(self.level()?),
                    // 2 is autorepeat: the key is still down.
                    (k, c) if k == kind && c == self.code && ev.value != 2 => {
                        level = Some(ev.value != 0)
                    }
                    _ => {}
                }
            }
            if let Some(l) = level {
                return Ok(l);
            }
        }
    }
}

/// Starts the thread that follows the line `path` for `parking`.
pub fn start(
    parking: Arc<Parking>,
    path: PathBuf,
    code: u16,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ignition".into())
        .spawn(move || follow(&parking, &path, code))
}

fn follow(parking: &Parking, path: &Path, code: u16) {
    let mut failures = FailureRun::new("ignition line");
    loop {
        let result: Result<(), LineError> = Line::open(path, code).and_then(|mut line| {
            parking.set_line(Some(line.level()?), None);
            if let Some(e) = failures.succeeded() {
                log::info!(
                    "parking: the ignition line is back after {} failed tries",
                    e.count
                );
            }
            loop {
                let on = line.wait_change()?;
                parking.set_line(Some(on), None);
            }
        });
        if let Err(e) = result {
            failures.failed(&format!("{e}; the car counts as driving"));
            parking.set_line(None, Some(e.to_string()));
        }
        std::thread::sleep(RETRY);
    }
}
