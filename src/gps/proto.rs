//! gpsd's JSON protocol, the part blackbox reads: one report per line, of
//! which `TPV` (time, position, velocity) and `SKY` (satellites) matter and
//! every other class is ignored. Parsing trusts nothing: a line is bounded
//! before it is parsed ([`LineBuffer`]), every field is optional, numbers
//! must be finite and in range, and a report that breaks a rule is an error
//! the caller counts, never a panic.

use serde::{Deserialize, Serialize};

/// The longest line kept. gpsd's longest reports are SKY with every
/// satellite listed (a few KiB); anything longer is not gpsd's.
pub const MAX_LINE: usize = 16 * 1024;

/// What gpsd is asked for once connected: JSON reports, no NMEA.
pub const WATCH: &[u8] = b"?WATCH={\"enable\":true,\"json\":true};\n";

/// A position fix as blackbox records it: what one `TPV` report with a fix
/// says. Serialized, it is the sample stored in each recording's GPS track,
/// so its field names are part of the file format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// The receiver's UTC time of the fix, as gpsd gives it (ISO 8601).
    pub time: Option<String>,
    /// 2 (2D) or 3 (3D).
    pub mode: u8,
    /// Degrees, WGS84.
    pub lat: f64,
    pub lon: f64,
    /// Metres above mean sea level (3D fixes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
    /// Metres per second over ground.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Degrees from true north.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<f64>,
    /// Estimated horizontal and vertical error, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eph: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epv: Option<f64>,
    /// Satellites used in the fix, from the last SKY report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sats: Option<u32>,
}

/// One report, as far as blackbox cares.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// A TPV with a 2D or 3D fix.
    Fix(Fix),
    /// A TPV that says there is no fix (mode 0 or 1, or no position).
    NoFix,
    /// Satellites: seen and used.
    Sky { seen: u32, used: u32 },
    /// Any other class (VERSION, DEVICES, WATCH, ...).
    Other,
}

/// Why a line is not a report.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    /// Longer than [`MAX_LINE`]; dropped unread.
    TooLong,
    /// Not JSON, or not an object with a `class`.
    NotJson(String),
    /// A TPV or SKY whose fields are out of range.
    Invalid(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong => write!(f, "a line longer than {MAX_LINE} bytes"),
            Self::NotJson(e) => write!(f, "not a gpsd report: {e}"),
            Self::Invalid(what) => write!(f, "a report with {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Deserialize)]
struct Wire {
    class: String,
    #[serde(default)]
    mode: Option<i64>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default, rename = "altMSL")]
    alt_msl: Option<f64>,
    /// Older gpsd (before 3.20) has only `alt`.
    #[serde(default)]
    alt: Option<f64>,
    #[serde(default)]
    speed: Option<f64>,
    #[serde(default)]
    track: Option<f64>,
    #[serde(default)]
    eph: Option<f64>,
    #[serde(default)]
    epv: Option<f64>,
    // SKY
    #[serde(default, rename = "nSat")]
    n_sat: Option<u32>,
    #[serde(default, rename = "uSat")]
    u_sat: Option<u32>,
    #[serde(default)]
    satellites: Option<Vec<Satellite>>,
}

#[derive(Deserialize)]
struct Satellite {
    #[serde(default)]
    used: bool,
}

/// A value that must be finite and within `range` if present.
fn checked(
    v: Option<f64>,
    range: std::ops::RangeInclusive<f64>,
    what: &'static str,
) -> Result<Option<f64>, ParseError> {
    match v {
        Some(x) if !x.is_finite() || !range.contains(&x) => Err(ParseError::Invalid(what)),
        other => Ok(other),
    }
}

/// A time as gpsd writes it: `YYYY-MM-DDTHH:MM:SS[.fff]Z`, at most 40
/// bytes of digits and separators.
fn plausible_time(t: &str) -> bool {
    t.len() <= 40
        && t.len() >= 20
        && t.ends_with('Z')
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"-:.TZ".contains(&b))
}

/// Parses one line (without its newline).
pub fn parse(line: &[u8]) -> Result<Report, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let w: Wire = serde_json::from_slice(line).map_err(|e| ParseError::NotJson(e.to_string()))?;
    match w.class.as_str() {
        "TPV" => {
            let mode = w.mode.unwrap_or(0);
            let (Some(lat), Some(lon)) = (w.lat, w.lon) else {
                return Ok(Report::NoFix);
            };
            if mode < 2 {
                return Ok(Report::NoFix);
            }
            if mode > 3 {
                return Err(ParseError::Invalid("a mode beyond 3D"));
            }
            let lat = checked(Some(lat), -90.0..=90.0, "a latitude out of range")?;
            let lon = checked(Some(lon), -180.0..=180.0, "a longitude out of range")?;
            let time = match w.time {
                Some(t) if plausible_time(&t) => Some(t),
                Some(_) => return Err(ParseError::Invalid("a malformed time")),
                None => None,
            };
            Ok(Report::Fix(Fix {
                time,
                mode: mode as u8,
                lat: lat.unwrap_or(0.0),
                lon: lon.unwrap_or(0.0),
                alt: checked(
                    w.alt_msl.or(w.alt),
                    -10_000.0..=100_000.0,
                    "an altitude out of range",
                )?,
                speed: checked(w.speed, 0.0..=2_000.0, "a speed out of range")?,
                track: checked(w.track, 0.0..=360.0, "a heading out of range")?,
                eph: checked(w.eph, 0.0..=1e7, "a horizontal error out of range")?,
                epv: checked(w.epv, 0.0..=1e7, "a vertical error out of range")?,
                sats: None,
            }))
        }
        "SKY" => {
            // gpsd 3.22 sends SKY reports with only DOPs between the ones
            // that list satellites: those say nothing about the count.
            let (seen, used) = match (&w.satellites, w.n_sat, w.u_sat) {
                (_, Some(n), Some(u)) => (n, u),
                (Some(list), _, _) => (
                    list.len() as u32,
                    list.iter().filter(|s| s.used).count() as u32,
                ),
                _ => return Ok(Report::Other),
            };
            if used > seen || seen > 1024 {
                return Err(ParseError::Invalid("a satellite count out of range"));
            }
            Ok(Report::Sky { seen, used })
        }
        _ => Ok(Report::Other),
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes, holding
/// no more than that: the rest of a longer line is skipped up to its
/// newline and reported once as [`ParseError::TooLong`].
#[derive(Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Inside a line that was too long: skipping to its end.
    skipping: bool,
}

/// One item [`LineBuffer::push`] gives back.
#[derive(Debug, PartialEq)]
pub enum Line {
    Whole(Vec<u8>),
    TooLong,
}

impl LineBuffer {
    /// Takes `bytes` read from the socket and returns the lines they end.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|&b| b == b'\n');
            let (part, rest, ended) = match nl {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.skipping {
                if ended {
                    self.skipping = false;
                }
                continue;
            }
            if self.buf.len() + part.len() > MAX_LINE {
                self.buf.clear();
                out.push(Line::TooLong);
                self.skipping = !ended;
                continue;
            }
            self.buf.extend_from_slice(part);
            if ended {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if !line.is_empty() {
                    out.push(Line::Whole(line));
                }
            }
        }
        out
    }

    /// Bytes held for a line not yet ended (never more than [`MAX_LINE`]).
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tpv_from_gpsd_3_22() {
        let line = br#"{"class":"TPV","device":"tcp://127.0.0.1:40001","mode":3,"time":"2026-12-05T20:00:02.000Z","ept":0.005,"lat":52.502090933,"lon":13.410905350,"altHAE":81.4000,"altMSL":34.5000,"alt":34.5000,"track":90.0000,"magtrack":94.0595,"magvar":4.1,"speed":10.289,"climb":0.000,"geoidSep":46.900,"eph":17.100}"#;
        let Report::Fix(f) = parse(line).unwrap() else {
            panic!("not a fix")
        };
        assert_eq!(f.mode, 3);
        assert_eq!(f.time.as_deref(), Some("2026-12-05T20:00:02.000Z"));
        assert_eq!((f.lat, f.lon), (52.502090933, 13.410905350));
        assert_eq!(f.alt, Some(34.5));
        assert_eq!(f.speed, Some(10.289));
        assert_eq!(f.track, Some(90.0));
        assert_eq!(f.eph, Some(17.1));
    }

    #[test]
    fn no_fix_and_other_classes() {
        assert_eq!(
            parse(br#"{"class":"TPV","mode":1,"time":"2026-12-05T20:00:02.000Z"}"#),
            Ok(Report::NoFix)
        );
        assert_eq!(parse(br#"{"class":"TPV","mode":3}"#), Ok(Report::NoFix));
        assert_eq!(
            parse(br#"{"class":"VERSION","release":"3.22"}"#),
            Ok(Report::Other)
        );
        assert_eq!(
            parse(br#"{"class":"SKY","nSat":12,"uSat":8}"#),
            Ok(Report::Sky { seen: 12, used: 8 })
        );
        assert_eq!(
            parse(
                br#"{"class":"SKY","satellites":[{"PRN":1,"used":true},{"PRN":2,"used":false}]}"#
            ),
            Ok(Report::Sky { seen: 2, used: 1 })
        );
        assert_eq!(parse(br#"{"class":"SKY","hdop":0.9}"#), Ok(Report::Other));
    }

    #[test]
    fn bad_reports_are_errors() {
        for line in [
            &b"garbage"[..],
            b"{}",
            br#"{"class":5}"#,
            br#"{"class":"TPV","mode":3,"lat":91,"lon":0}"#,
            br#"{"class":"TPV","mode":3,"lat":1,"lon":0,"speed":-1}"#,
            br#"{"class":"TPV","mode":9,"lat":1,"lon":0}"#,
            br#"{"class":"TPV","mode":3,"lat":1,"lon":0,"time":"\n"}"#,
            br#"{"class":"SKY","nSat":1,"uSat":2}"#,
        ] {
            assert!(parse(line).is_err(), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse(&[b' '; MAX_LINE + 1]), Err(ParseError::TooLong));
    }

    #[test]
    fn a_fix_survives_its_own_json() {
        let f = Fix {
            time: Some("2026-12-05T20:00:02.000Z".into()),
            mode: 2,
            lat: -33.123456789,
            lon: 151.2,
            alt: None,
            speed: Some(0.0),
            track: None,
            eph: None,
            epv: None,
            sats: Some(7),
        };
        let s = serde_json::to_string(&f).unwrap();
        assert!(s.starts_with('{') && s.ends_with('}'));
        assert_eq!(serde_json::from_str::<Fix>(&s).unwrap(), f);
    }

    #[test]
    fn lines_are_split_and_bounded() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"ab"), vec![]);
        assert_eq!(
            b.push(b"c\r\nde\n\nf"),
            vec![Line::Whole(b"abc".to_vec()), Line::Whole(b"de".to_vec())]
        );
        assert_eq!(b.held(), 1);
        let long = vec![b'x'; MAX_LINE];
        assert_eq!(b.push(&long), vec![Line::TooLong]);
        assert_eq!(b.held(), 0);
        // The rest of the long line is skipped, whatever its length.
        assert_eq!(b.push(&long), vec![]);
        assert_eq!(b.held(), 0);
        assert_eq!(b.push(b"tail\nok\n"), vec![Line::Whole(b"ok".to_vec())]);
    }
}
