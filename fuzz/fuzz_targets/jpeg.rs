//! What a camera sends as MJPEG: the structural check and the frame-size
//! reader never panic, and the check only ever returns a prefix of its
//! input that starts with SOI and ends with EOI.
#![no_main]

use blackbox::encode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jpeg) = encode::check_jpeg(data) {
        assert!(data.starts_with(jpeg));
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }
    let _ = encode::jpeg_size(data);
});
