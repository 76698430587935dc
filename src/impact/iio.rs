//! An accelerometer through the kernel's Industrial I/O sysfs ABI:
//! `iio:deviceN/in_accel_{x,y,z}_raw`, each scaled by `in_accel_{x,y,z}_scale`
//! or the shared `in_accel_scale`, after adding `in_accel_{x,y,z}_offset` or
//! `in_accel_offset` where the driver has one; the result is in m/s²
//! (Documentation/ABI/testing/sysfs-bus-iio). Each sample opens and reads
//! the three `_raw` files afresh, at the configured rate: a few
//! microseconds each on sysfs, and a device that goes away is an error at
//! once rather than a stale file handle.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Sample, SensorError};
use crate::clock::monotonic_now;

/// Standard gravity, m/s² per g.
pub const G: f64 = 9.80665;
const AXES: [&str; 3] = ["x", "y", "z"];

/// An open IIO accelerometer.
pub struct Iio {
    raw: [PathBuf; 3],
    /// g per raw unit, and the offset in raw units, each axis.
    scale: [f64; 3],
    offset: [f64; 3],
    pub name: String,
}

/// Whether `dir` is an IIO device with the three acceleration channels.
pub fn is_accelerometer(dir: &Path) -> bool {
    AXES.iter()
        .all(|a| dir.join(format!("in_accel_{a}_raw")).is_file())
}

/// Reads a number from a sysfs attribute.
fn number(path: &Path) -> Result<f64, SensorError> {
    let text = fs::read_to_string(path).map_err(|e| SensorError::Open(path.to_path_buf(), e))?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            SensorError::Malformed(path.to_path_buf(), text.trim().chars().take(40).collect())
        })
}

/// The first of `names` in `dir` that exists.
fn first(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.exists())
}

impl Iio {
    pub fn open(dir: &Path) -> Result<Self, SensorError> {
        if !is_accelerometer(dir) {
            return Err(SensorError::NotAccelerometer(dir.to_path_buf()));
        }
        let mut scale = [0.0; 3];
        let mut offset = [0.0; 3];
        for (i, a) in AXES.iter().enumerate() {
            let s = first(
                dir,
                &[format!("in_accel_{a}_scale"), "in_accel_scale".into()],
            )
            .ok_or_else(|| SensorError::NoResolution(dir.to_path_buf()))?;
            scale[i] = number(&s)? / G;
            if let Some(o) = first(
                dir,
                &[format!("in_accel_{a}_offset"), "in_accel_offset".into()],
            ) {
                offset[i] = number(&o)?;
            }
        }
        let raw = AXES.map(|a| dir.join(format!("in_accel_{a}_raw")));
        let name = fs::read_to_string(dir.join("name"))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        Ok(Self {
            raw,
            scale,
            offset,
            name,
        })
    }

    /// Reads the three axes now.
    pub fn read(&mut self) -> Result<Sample, SensorError> {
        let mut g = [0.0; 3];
        for (i, path) in self.raw.iter().enumerate() {
            let mut buf = [0u8; 32];
            let n = File::open(path)
                .and_then(|mut f| f.read(&mut buf))
                .map_err(SensorError::Read)?;
            let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
            let raw = text.parse::<i64>().map_err(|_| {
                SensorError::Malformed(path.clone(), text.chars().take(40).collect())
            })? as f64;
            g[i] = (raw + self.offset[i]) * self.scale[i];
        }
        Ok(Sample {
            mono: monotonic_now(),
            g,
        })
    }
}

/// How long to wait before the next sample at `rate_hz`, given when the
/// last one was due: the schedule keeps its pace, and a reader that fell
/// behind starts again from now instead of hurrying to catch up.
pub fn next_due(due: Duration, now: Duration, rate_hz: u32) -> Duration {
    let period = Duration::from_secs(1) / rate_hz.max(1);
    let next = due + period;
    if next + period < now { now } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = crate::ota::scratch(&format!("iio-{name}"));
        for (f, v) in files {
            fs::write(dir.join(f), v).unwrap();
        }
        dir
    }

    #[test]
    fn raw_values_are_scaled_to_g() {
        // An ADXL345-like device: one shared scale (0.038307 m/s² per unit).
        let dir = device(
            "shared",
            &[
                ("in_accel_x_raw", "0\n"),
                ("in_accel_y_raw", "-128\n"),
                ("in_accel_z_raw", "256\n"),
                ("in_accel_scale", "0.038307\n"),
                ("name", "adxl345\n"),
            ],
        );
        let mut d = Iio::open(&dir).unwrap();
        assert_eq!(d.name, "adxl345");
        let s = d.read().unwrap();
        assert!((s.g[2] - 256.0 * 0.038307 / G).abs() < 1e-9, "{s:?}");
        assert!((s.g[1] + 128.0 * 0.038307 / G).abs() < 1e-9, "{s:?}");
        // A new value is read each time.
        fs::write(dir.join("in_accel_x_raw"), "100\n").unwrap();
        assert!(d.read().unwrap().g[0] > 0.3);
    }

    #[test]
    fn per_axis_scale_and_offset_win() {
        let dir = device(
            "axes",
            &[
                ("in_accel_x_raw", "10"),
                ("in_accel_y_raw", "0"),
                ("in_accel_z_raw", "0"),
                ("in_accel_scale", "1"),
                ("in_accel_x_scale", "9.80665"),
                ("in_accel_x_offset", "-9"),
            ],
        );
        let s = Iio::open(&dir).unwrap().read().unwrap();
        assert!((s.g[0] - 1.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_device_without_a_scale_or_with_garbage_is_a_clear_error() {
        let dir = device(
            "noscale",
            &[
                ("in_accel_x_raw", "1"),
                ("in_accel_y_raw", "1"),
                ("in_accel_z_raw", "1"),
            ],
        );
        assert!(matches!(Iio::open(&dir), Err(SensorError::NoResolution(_))));
        fs::write(dir.join("in_accel_scale"), "fast").unwrap();
        let e = Iio::open(&dir).err().unwrap();
        assert!(e.to_string().contains("fast"), "{e}");
        fs::write(dir.join("in_accel_scale"), "1").unwrap();
        fs::write(dir.join("in_accel_y_raw"), "x1").unwrap();
        let e = Iio::open(&dir).unwrap().read().err().unwrap();
        assert!(matches!(e, SensorError::Malformed(..)), "{e}");
        fs::remove_file(dir.join("in_accel_z_raw")).unwrap();
        assert!(matches!(
            Iio::open(&dir),
            Err(SensorError::NotAccelerometer(_))
        ));
    }

    #[test]
    fn the_schedule_keeps_its_pace_and_never_hurries() {
        let ms = Duration::from_millis;
        assert_eq!(next_due(ms(1000), ms(1003), 100), ms(1010));
        assert_eq!(next_due(ms(1000), ms(1500), 100), ms(1500));
    }
}
