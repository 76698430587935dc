//! The `Range` request header, as RFC 9110 §14 has it, for downloads of
//! recordings. One byte range is served as 206; a header that is malformed,
//! in another unit, or asks for several ranges is ignored (200, the whole
//! file), which the RFC allows; a valid range that starts past the end is
//! 416. A last position past the end, however many digits it has, is the
//! end.

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The whole file, 200.
    Whole,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// 416, with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// A run of ASCII digits as a number; `u64::MAX` for one too large (a
/// position past any file's end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// One `range-spec`: `Some(None)` for a valid but unsatisfiable one,
/// `None` for an invalid one.
fn spec(s: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (first, last) = s.split_once('-')?;
    if first.is_empty() {
        // suffix-range: the last N bytes (all of them if N is larger).
        let n = digits(last)?;
        return Some((n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1)));
    }
    let start = digits(first)?;
    let end = match last {
        "" => None,
        l => Some(digits(l)?),
    };
    if end.is_some_and(|e| e < start) {
        return None; // last before first: invalid, not unsatisfiable
    }
    if start >= len {
        return Some(None);
    }
    Some(Some((start, end.map_or(len - 1, |e| e.min(len - 1)))))
}

/// The answer to `header` for a file of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Range {
    let Some(h) = header else {
        return Range::Whole;
    };
    let Some((unit, set)) = h.trim().split_once('=') else {
        return Range::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return Range::Whole;
    }
    // A list; recipients accept and skip empty elements.
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [one] = specs[..] else {
        return Range::Whole; // none, or several: serve the whole file
    };
    match spec(one, len) {
        None => Range::Whole,
        Some(None) => Range::Unsatisfiable,
        Some(Some((start, end))) => Range::Part { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> Range {
        Range::Part { start, end }
    }

    #[test]
    fn rfc_9110_ranges() {
        assert_eq!(parse(None, 100), Range::Whole);
        assert_eq!(parse(Some("bytes=0-9"), 100), part(0, 9));
        assert_eq!(parse(Some("Bytes=0-9"), 100), part(0, 9));
        assert_eq!(parse(Some("bytes=90-"), 100), part(90, 99));
        assert_eq!(parse(Some("bytes=-10"), 100), part(90, 99));
        assert_eq!(parse(Some("bytes=-1000"), 100), part(0, 99));
        assert_eq!(parse(Some("bytes=50-500"), 100), part(50, 99));
        assert_eq!(parse(Some("bytes=0-9,"), 100), part(0, 9));
        // A last position past the end is clamped, however large.
        assert_eq!(
            parse(Some("bytes=0-18446744073709551616"), 100),
            part(0, 99)
        );
        assert_eq!(
            parse(Some("bytes=0-999999999999999999999999999999"), 100),
            part(0, 99)
        );
        // Valid but past the end: 416.
        assert_eq!(parse(Some("bytes=100-"), 100), Range::Unsatisfiable);
        assert_eq!(
            parse(Some("bytes=18446744073709551616-"), 100),
            Range::Unsatisfiable
        );
        assert_eq!(parse(Some("bytes=-0"), 100), Range::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0"), 0), Range::Unsatisfiable);
        // Malformed, other units, several ranges: ignored.
        for ignored in [
            "bytes=9-2",
            "bytes=x-",
            "bytes=-",
            "bytes=",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes 0-9",
            "items=0-9",
            "bytes=0-1,5-6",
            "",
            "=",
        ] {
            assert_eq!(parse(Some(ignored), 100), Range::Whole, "{ignored:?}");
        }
    }
}
