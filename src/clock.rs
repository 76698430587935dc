//! Time as the capture side sees it: the kernel's monotonic clock (the clock
//! V4L2 stamps buffers with), its mapping to wall-clock time, and UTC
//! formatting without a calendar crate.
//!
//! Frame timestamps are monotonic so that they never jump when NTP or the user
//! sets the clock; the wall-clock time shown to people and sent in
//! `X-Timestamp` is derived from them once, at capture.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// Time on `CLOCK_MONOTONIC`, as a duration since an arbitrary point (boot).
pub fn monotonic_now() -> Duration {
    // CLOCK_MONOTONIC always exists on Linux; the fallback only guards against
    // a kernel that refuses it, where a zero timestamp is harmless.
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
        Err(_) => Duration::ZERO,
    }
}

/// A capture time: monotonic for arithmetic, wall clock for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// `CLOCK_MONOTONIC` at capture.
    pub mono: Duration,
    /// The wall-clock time that corresponds to `mono`, fixed at capture.
    pub wall: SystemTime,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from_mono(monotonic_now())
    }

    /// Maps a monotonic time (e.g. a V4L2 buffer timestamp from moments ago)
    /// to the wall clock by the current offset between the two clocks.
    pub fn from_mono(mono: Duration) -> Self {
        let now_mono = monotonic_now();
        let now_wall = SystemTime::now();
        let wall = if mono <= now_mono {
            now_wall - (now_mono - mono)
        } else {
            now_wall + (mono - now_mono)
        };
        Self { mono, wall }
    }

    /// Seconds since the Unix epoch with microseconds, as uStreamer and
    /// browsers' tools expect in `X-Timestamp`.
    pub fn unix_seconds(&self) -> f64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Utc {
    /// Breaks a wall-clock time down into UTC fields. Times before 1970 clamp
    /// to the epoch (a camera's clock that far off is unset, not historical).
    pub fn from_system(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = d.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            millis: d.subsec_millis(),
        }
    }

    /// `2026-11-26 17:26:00.123`
    pub fn display_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// `20261126T172600Z`, the form used in file names.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// The calendar repeats every 400 years (146 097 days); within an era, years
/// are counted from March so that the leap day falls at the end.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Utc {
        Utc::from_system(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(0).compact(), "19700101T000000Z");
        // 2000-02-29 12:00:00, a leap day in a century leap year.
        assert_eq!(at(951_825_600).compact(), "20000229T120000Z");
        // 2026-11-26 17:26:00
        assert_eq!(at(1_795_713_960).compact(), "20261126T172600Z");
        // 2100-03-01, after a century non-leap February.
        assert_eq!(at(4_107_542_400).compact(), "21000301T000000Z");
    }

    #[test]
    fn every_day_for_a_thousand_years_is_consecutive() {
        let mut prev = civil_from_days(-1);
        for d in 0..365_250 {
            let cur = civil_from_days(d);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }

    #[test]
    fn mono_maps_to_wall_near_now() {
        let ts = Timestamp::now();
        let diff = SystemTime::now()
            .duration_since(ts.wall)
            .unwrap_or(Duration::ZERO);
        assert!(diff < Duration::from_secs(1));
    }
}
