//! An accelerometer as an input device: `/dev/input/eventN` with the
//! `INPUT_PROP_ACCELEROMETER` property and the absolute axes X, Y and Z,
//! whose resolution is in units per g (the kernel's input ABI says so for
//! accelerometers). The device's events carry `CLOCK_MONOTONIC` times (asked
//! for with `EVIOCSCLOCKID`), the clock the frames use; a sample is the three
//! axes at each `SYN_REPORT`. `SYN_DROPPED` (the kernel's buffer overran)
//! drops everything up to the next report, as the ABI asks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use nix::libc;

use super::{Sample, SensorError};

const EV_SYN: u16 = 0x00;
const EV_ABS: u16 = 0x03;
const SYN_REPORT: u16 = 0;
const SYN_DROPPED: u16 = 3;
const INPUT_PROP_ACCELEROMETER: usize = 0x06;

nix::ioctl_read_buf!(eviocgprop, b'E', 0x09, u8);
nix::ioctl_read_buf!(eviocgname, b'E', 0x06, u8);
nix::ioctl_read_buf!(eviocgbit_abs, b'E', 0x20 + EV_ABS, u8);
nix::ioctl_read!(eviocgabs_x, b'E', 0x40, libc::input_absinfo);
nix::ioctl_read!(eviocgabs_y, b'E', 0x41, libc::input_absinfo);
nix::ioctl_read!(eviocgabs_z, b'E', 0x42, libc::input_absinfo);
nix::ioctl_write_ptr!(eviocsclockid, b'E', 0xa0, libc::c_int);

/// An open input-device accelerometer.
pub struct Evdev {
    file: File,
    pub name: String,
    /// Units per g, each axis.
    per_g: [f64; 3],
    raw: [i32; 3],
    dropping: bool,
    buf: Vec<u8>,
    filled: usize,
}

fn bit(bits: &[u8], n: usize) -> bool {
    bits.get(n / 8).is_some_and(|b| b & (1 << (n % 8)) != 0)
}

/// Whether the device at `path` says it is an accelerometer with X, Y and
/// Z (what `auto` looks for).
pub fn is_accelerometer(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let fd = file.as_raw_fd();
    let mut props = [0u8; 8];
    let mut abs = [0u8; 8];
    // SAFETY: the buffers outlive the calls and their lengths are passed.
    let ok = unsafe { eviocgprop(fd, &mut props).is_ok() && eviocgbit_abs(fd, &mut abs).is_ok() };
    ok && bit(&props, INPUT_PROP_ACCELEROMETER) && (0..3).all(|a| bit(&abs, a))
}

impl Evdev {
    /// Opens `path`; `units_per_g` stands in for an axis whose driver
    /// gives no resolution.
    pub fn open(path: &Path, units_per_g: Option<f64>) -> Result<Self, SensorError> {
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|e| SensorError::Open(path.to_path_buf(), e))?;
        if !is_accelerometer(path) {
            return Err(SensorError::NotAccelerometer(path.to_path_buf()));
        }
        let fd = file.as_raw_fd();
        let mut name = [0u8; 128];
        // SAFETY: the buffer outlives the call and its length is passed.
        let name = match unsafe { eviocgname(fd, &mut name) } {
            Ok(_) => {
                String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or(&[])).into_owned()
            }
            Err(_) => String::new(),
        };
        let clock: libc::c_int = libc::CLOCK_MONOTONIC;
        // SAFETY: `clock` outlives the call; the kernel reads one int.
        unsafe { eviocsclockid(fd, &clock) }
            .map_err(|e| SensorError::Ioctl("EVIOCSCLOCKID", e.into()))?;
        let mut per_g = [0.0; 3];
        let mut raw = [0; 3];
        for (axis, get) in [eviocgabs_x, eviocgabs_y, eviocgabs_z].iter().enumerate() {
            // SAFETY: an all-zero input_absinfo is valid (plain integers).
            let mut info: libc::input_absinfo = unsafe { std::mem::zeroed() };
            // SAFETY: `info` outlives the call; the kernel fills it.
            unsafe { get(fd, &mut info) }.map_err(|e| SensorError::Ioctl("EVIOCGABS", e.into()))?;
            raw[axis] = info.value;
            per_g[axis] = match (info.resolution, units_per_g) {
                (r, _) if r > 0 => f64::from(r),
                (_, Some(u)) => u,
                _ => return Err(SensorError::NoResolution(path.to_path_buf())),
            };
        }
        Ok(Self {
            file,
            name,
            per_g,
            raw,
            dropping: false,
            buf: vec![0; 64 * size_of::<libc::input_event>()],
            filled: 0,
        })
    }

    /// Blocks until the device reports a complete sample.
    pub fn read(&mut self) -> Result<Sample, SensorError> {
        let size = size_of::<libc::input_event>();
        loop {
            while self.filled >= size {
                let ev = parse(&self.buf[..size]);
                self.buf.copy_within(size..self.filled, 0);
                self.filled -= size;
                if let Some(s) = self.take(ev) {
                    return Ok(s);
                }
            }
            let n = self
                .file
                .read(&mut self.buf[self.filled..])
                .map_err(SensorError::Read)?;
            if n == 0 {
                return Err(SensorError::Read(io::Error::from(
                    io::ErrorKind::UnexpectedEof,
                )));
            }
            self.filled += n;
        }
    }

    fn take(&mut self, ev: Event) -> Option<Sample> {
        match (ev.kind, ev.code) {
            (EV_ABS, c @ 0..=2) => {
                self.raw[usize::from(c)] = ev.value;
                None
            }
            (EV_SYN, SYN_DROPPED) => {
                self.dropping = true;
                None
            }
            (EV_SYN, SYN_REPORT) if self.dropping => {
                self.dropping = false;
                None
            }
            (EV_SYN, SYN_REPORT) => Some(Sample {
                mono: ev.time,
                g: [
                    f64::from(self.raw[0]) / self.per_g[0],
                    f64::from(self.raw[1]) / self.per_g[1],
                    f64::from(self.raw[2]) / self.per_g[2],
                ],
            }),
            _ => None,
        }
    }
}

/// One `struct input_event`, read from its bytes in the machine's layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Event {
    pub(crate) time: Duration,
    pub(crate) kind: u16,
    pub(crate) code: u16,
    pub(crate) value: i32,
}

pub(crate) fn parse(b: &[u8]) -> Event {
    // SAFETY: `b` holds size_of::<input_event>() bytes (the caller's slice)
    // and every bit pattern is a valid input_event (plain integers);
    // read_unaligned copes with the buffer's alignment.
    let ev: libc::input_event =
        unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<libc::input_event>()) };
    let secs = u64::try_from(ev.time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(ev.time.tv_usec).unwrap_or(0).min(999_999);
    Event {
        time: Duration::from_secs(secs) + Duration::from_micros(micros),
        kind: ev.type_,
        code: ev.code,
        value: ev.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(sec: i64, usec: i64, kind: u16, code: u16, value: i32) -> Vec<u8> {
        let ev = libc::input_event {
            time: libc::timeval {
                tv_sec: sec as libc::time_t,
                tv_usec: usec as libc::suseconds_t,
            },
            type_: kind,
            code,
            value,
        };
        // SAFETY: input_event is plain integers; the slice covers exactly it.
        unsafe {
            std::slice::from_raw_parts(
                (&ev as *const libc::input_event).cast::<u8>(),
                size_of::<libc::input_event>(),
            )
        }
        .to_vec()
    }

    fn dev() -> Evdev {
        Evdev {
            file: File::open("/dev/null").unwrap(),
            name: String::new(),
            per_g: [256.0; 3],
            raw: [0; 3],
            dropping: false,
            buf: Vec::new(),
            filled: 0,
        }
    }

    #[test]
    fn axes_are_a_sample_at_each_report_in_g() {
        let mut d = dev();
        assert_eq!(d.take(parse(&bytes(5, 250_000, EV_ABS, 0, 128))), None);
        assert_eq!(d.take(parse(&bytes(5, 250_000, EV_ABS, 2, -256))), None);
        let s = d.take(parse(&bytes(5, 250_000, EV_SYN, SYN_REPORT, 0)));
        assert_eq!(
            s,
            Some(Sample {
                mono: Duration::from_millis(5250),
                g: [0.5, 0.0, -1.0]
            })
        );
    }

    #[test]
    fn after_a_drop_the_next_report_is_skipped() {
        let mut d = dev();
        d.take(parse(&bytes(1, 0, EV_SYN, SYN_DROPPED, 0)));
        d.take(parse(&bytes(1, 0, EV_ABS, 1, 256)));
        assert_eq!(d.take(parse(&bytes(1, 0, EV_SYN, SYN_REPORT, 0))), None);
        let s = d
            .take(parse(&bytes(1, 10_000, EV_SYN, SYN_REPORT, 0)))
            .unwrap();
        assert_eq!(s.g, [0.0, 1.0, 0.0]);
    }

    #[test]
    fn a_file_that_is_not_an_input_device_is_refused() {
        assert!(!is_accelerometer(Path::new("/dev/null")));
        assert!(matches!(
            Evdev::open(Path::new("/dev/null"), None),
            Err(SensorError::NotAccelerometer(_))
        ));
    }
}
