//! Config files: any text is either a configuration or a clear error, never
//! a panic.
#![no_main]

use std::path::Path;

use blackbox::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_text(Path::new("fuzz.toml"), text, &Overrides::default()) {
        Ok(cfg) => assert!(cfg.camera.fps >= 1 && cfg.encode.quality >= 1),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
