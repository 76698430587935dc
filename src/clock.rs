//! Time, in one place: the kernel's monotonic clock (the clock V4L2 stamps
//! buffers with, and what rotation, syncing and timeouts run on), the wall
//! clock (what people read and what names files), conversions between them
//! and to Unix seconds, and UTC calendar fields in both directions without a
//! calendar crate.
//!
//! Frame timestamps are monotonic so that they never jump when NTP, GPS or
//! the user sets the clock; the wall-clock time shown to people and sent in
//! `X-Timestamp` is derived from them once, at capture. Every wall-clock
//! reading goes through [`wall_now`], so a test can step it (see
//! [`crate::faults`]).

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

/// The clock parking mode's timers run on: the monotonic clock, moved on
/// by an injected offset under test (see [`crate::faults`]) so that hours
/// of parking pass in seconds.
pub fn parking_now() -> Duration {
    monotonic_now() + Duration::from_millis(crate::faults::current().mono_offset_ms)
}

/// The wall clock now (stepped by an injected offset under test).
pub fn wall_now() -> SystemTime {
    let offset = crate::faults::current().clock_offset_ms;
    let now = SystemTime::now();
    let step = Duration::from_millis(offset.unsigned_abs());
    if offset >= 0 {
        now + step
    } else {
        now.checked_sub(step).unwrap_or(UNIX_EPOCH)
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The time `secs` seconds after the Unix epoch (clamped to it).
pub fn from_unix_seconds(secs: f64) -> SystemTime {
    if secs.is_finite() && secs > 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(secs.min(1e12))
    } else {
        UNIX_EPOCH
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
        let now_wall = wall_now();
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
        unix_seconds(self.wall)
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

    /// `2026-11-26 17:26:00`
    pub fn display_seconds(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261126T172600Z`, the form used in file names.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Parses the [`Utc::compact`] form back into a time; `None` for
    /// anything else (wrong length, a non-digit, a month 13, a 31 April).
    pub fn parse_compact(s: &str) -> Option<SystemTime> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(r)?;
            part.iter().all(u8::is_ascii_digit).then(|| {
                part.iter()
                    .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
            })
        };
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
        let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        let days = days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
        u64::try_from(secs)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }
}

/// Parses an ISO 8601 UTC time as gpsd and GPX write it,
/// `2026-12-05T20:00:02.000Z` (fraction optional, up to nanoseconds);
/// `None` for anything else.
pub fn parse_iso_utc(s: &str) -> Option<SystemTime> {
    let (main, frac) = match s.strip_suffix('Z')?.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s.strip_suffix('Z')?, None),
    };
    let b = main.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let compact = format!(
        "{}{}{}T{}{}{}Z",
        &main[0..4],
        &main[5..7],
        &main[8..10],
        &main[11..13],
        &main[14..16],
        &main[17..19]
    );
    let whole = Utc::parse_compact(&compact)?;
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Some(whole + Duration::from_nanos(u64::from(nanos)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` for a date
/// that does not exist. The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > days_in_month {
        return None;
    }
    // Count years from March, so that the leap day ends the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
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
    fn iso_times_as_gpsd_writes_them() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_713_960);
        assert_eq!(parse_iso_utc("2026-11-26T17:26:00Z"), Some(t));
        assert_eq!(
            parse_iso_utc("2026-11-26T17:26:00.250Z"),
            Some(t + Duration::from_millis(250))
        );
        for bad in [
            "2026-11-26T17:26:00",
            "2026-11-26 17:26:00Z",
            "2026-13-26T17:26:00Z",
            "2026-11-26T17:26:00.Z",
            "2026-11-26T17:26:00.1234567890Z",
            "",
            "Z",
        ] {
            assert_eq!(parse_iso_utc(bad), None, "{bad}");
        }
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
    fn compact_round_trips_and_refuses_impossible_dates() {
        for secs in [
            0u64,
            951_825_600,
            1_795_713_960,
            4_107_542_400,
            4_102_444_799,
        ] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(Utc::parse_compact(&Utc::from_system(t).compact()), Some(t));
        }
        for d in (-1000..100_000).step_by(7) {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), Some(d));
        }
        for bad in [
            "20261131T000000Z",
            "20260229T000000Z",
            "21000229T000000Z",
            "20261301T000000Z",
            "20261126T240000Z",
            "20261126T176000Z",
            "2026112XT172600Z",
            "20261126 172600Z",
            "20261126T172600",
            "",
        ] {
            assert_eq!(Utc::parse_compact(bad), None, "{bad}");
        }
        assert!(Utc::parse_compact("20000229T120000Z").is_some());
    }

    #[test]
    fn unix_seconds_both_ways() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_713_960_250);
        assert_eq!(unix_seconds(t), 1_795_713_960.25);
        assert_eq!(from_unix_seconds(1_795_713_960.25), t);
        assert_eq!(from_unix_seconds(-5.0), UNIX_EPOCH);
        assert_eq!(from_unix_seconds(f64::NAN), UNIX_EPOCH);
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
