//! A clock that cannot be trusted, then can: a card that boots a year
//! behind records segments marked as named by an unsynchronised clock;
//! once chrony says the clock is synchronised (to the GPS), the status says
//! so and the recordings list gives those segments their corrected start.
//! chrony itself is a stand-in here (`chronyc` on PATH printing what the
//! test writes, in chronyc's own CSV form); the real chrony with gpsd runs
//! in the appliance image.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use blackbox::record::scan::{self, Depth};
use common::{RESERVE, Server, TempDir, config_file};

const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;
const UNSYNCED: &str =
    "00000000,,0,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not synchronised\n";
const ON_GPS: &str =
    "47505300,GPS,1,1796500000.1,0.000001,0.0,0.0,-1.2,0.0,0.05,0.0,0.00001,16.0,Normal\n";

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn segments_from_before_the_clock_was_set_are_marked_and_corrected() {
    let dir = TempDir::new("clock");
    let bin = dir.0.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let state = dir.0.join("chrony-state");
    let chronyc = bin.join("chronyc");
    std::fs::write(&chronyc, "#!/bin/sh\ncat \"$FAKE_CHRONY_STATE\"\n").unwrap();
    std::fs::set_permissions(&chronyc, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_atomically(&state, UNSYNCED);
    let faults = dir.0.join("faults");
    // The card's clock is a year behind.
    write_atomically(&faults, &format!("clock_offset_ms = {}\n", -YEAR_MS));
    let cfg = config_file(
        &dir,
        &format!(
            "[camera]\nsize = \"320x240\"\nfps = 10\n[record]\nsegment_seconds = 2\n{RESERVE}[gps]\nenabled = false\n"
        ),
    );
    let data = dir.0.join("data");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = Server::start_with_env(
        &["--config", &cfg, "--data", data.to_str().unwrap()],
        &[
            ("PATH", &path),
            ("FAKE_CHRONY_STATE", state.to_str().unwrap()),
            ("BLACKBOX_FAULTS", faults.to_str().unwrap()),
        ],
    );
    let st = server.wait_status(60, "the clock read", |s| s["clock"]["source"] != "unknown");
    assert_eq!(st["clock"]["synchronized"], false, "{st}");
    assert!(
        ["none", "rtc"].contains(&st["clock"]["source"].as_str().unwrap()),
        "{st}"
    );
    let list = |server: &Server| {
        common::testkit_get_json(&server.url("/api/recordings"))["recordings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let before = loop {
        let finished: Vec<_> = list(&server)
            .into_iter()
            .filter(|e| e["recording"] == false)
            .collect();
        if let Some(e) = finished.first() {
            break e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no finished segment");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(before["clock_synchronized"], false, "{before}");
    assert!(before.get("corrected_start").is_none(), "{before}");

    // chrony steps the clock to the GPS's time.
    write_atomically(&faults, "clock_offset_ms = 0\n");
    write_atomically(&state, ON_GPS);
    let st = server.wait_status(60, "synchronised to the GPS", |s| {
        s["clock"]["synchronized"] == true
    });
    assert_eq!(st["clock"]["source"], "gps");
    assert_eq!(st["clock"]["reference"], "GPS");
    assert!(st["clock"]["correction_seconds"].as_f64().unwrap().abs() < 1.0);

    let name = before["name"].as_str().unwrap().to_string();
    let entry = list(&server)
        .into_iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap();
    let named = entry["start"].as_f64().unwrap();
    let corrected = entry["corrected_start"]
        .as_f64()
        .expect("a corrected start");
    let shift = corrected - named;
    assert!(
        (shift - YEAR_MS as f64 / 1000.0).abs() < 2.0,
        "named {named}, corrected {corrected}"
    );
    assert!(entry["corrected_start_utc"].as_str().is_some());
    // Segments begun after the clock was set are marked synchronised.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let synced = list(&server)
            .into_iter()
            .any(|e| e["recording"] == false && e["clock_synchronized"] == true);
        if synced {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no synchronised segment"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The mark is in the file itself.
    let file = ["recordings", "events"]
        .iter()
        .map(|d| data.join(d).join(&name))
        .find(|p| p.exists())
        .unwrap();
    let s = scan::scan(&file, Depth::Structure).unwrap();
    assert_eq!(s.clock_synced, Some(false));
}
