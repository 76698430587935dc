//! A recording as a power cut or a dying card might leave it: the scanner
//! must not panic or hang on any bytes, and whatever repair keeps must be a
//! file the scanner calls intact (header, checksums, cues, statistics) with
//! the same frames it found before repairing.
#![no_main]

use std::time::SystemTime;

use blackbox::record::scan::{self, Depth};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("blackbox-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("x.mkv.part");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(before) = scan::scan(&path, Depth::Checksums) else {
        return;
    };
    let _ = scan::brief(&path);
    let quick = scan::scan(&path, Depth::Structure).expect("a structure scan of a readable file");
    assert!(quick.frames.len() >= before.frames.len());
    match scan::repair(&path, SystemTime::UNIX_EPOCH) {
        Ok(repaired) => {
            let after = scan::scan(&path, Depth::Checksums).expect("readable");
            assert!(after.intact(), "repair left {:?} / {:?}", after.problem, after.header_problem);
            assert_eq!(after.frames.len(), before.frames.len());
            assert_eq!(repaired.summary.frames, before.frames.len() as u64);
            assert!(scan::brief(&path).ok().flatten().is_some());
        }
        Err(scan::RepairError::NothingToKeep(_)) => {}
        Err(scan::RepairError::Io(e)) => panic!("I/O error on a temporary file: {e}"),
    }
});
