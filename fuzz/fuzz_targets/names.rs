//! Recording names from URLs: never a panic; a name accepted round-trips
//! exactly and cannot leave the data directory.
#![no_main]

use blackbox::record::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(n) = names::parse(s) {
        assert!(!s.contains('/') && !s.contains('\0') && !s.starts_with('.'));
        assert_eq!(names::parse(&n.file_name()), Some(n));
    }
    let _ = names::parse_part(s);
});
