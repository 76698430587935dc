//! `Range` headers: never a panic, and a range served is always inside the
//! file.
#![no_main]

use blackbox::http::range::{self, Range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (len, header) = match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_le_bytes(*len) % (1 << 40), rest),
        None => (1000, data),
    };
    let header = String::from_utf8_lossy(header);
    match range::parse(Some(&header), len) {
        Range::Part { start, end } => assert!(start <= end && end < len, "{header:?} {len}"),
        Range::Whole | Range::Unsatisfiable => {}
    }
});
