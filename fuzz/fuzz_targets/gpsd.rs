//! gpsd's JSON lines as they come off the socket, in any chunks: never a
//! panic, never more than one line held, and a fix accepted has a position
//! on the globe and survives its own JSON (what goes into the recordings).
#![no_main]

use blackbox::gps::proto::{self, Line, LineBuffer, Report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::default();
    // The first byte picks the chunk size, as reads of a socket would.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for part in data.chunks(chunk) {
        for line in lines.push(part) {
            let Line::Whole(l) = line else { continue };
            assert!(l.len() <= proto::MAX_LINE);
            if let Ok(Report::Fix(f)) = proto::parse(&l) {
                assert!((-90.0..=90.0).contains(&f.lat) && (-180.0..=180.0).contains(&f.lon));
                assert!(f.mode == 2 || f.mode == 3);
                let json = serde_json::to_vec(&f).unwrap();
                assert_eq!(json.first(), Some(&b'{'));
                assert_eq!(json.last(), Some(&b'}'));
                let back: blackbox::gps::Fix = serde_json::from_slice(&json).unwrap();
                assert_eq!(back, f);
            }
        }
        assert!(lines.held() <= proto::MAX_LINE);
    }
});
