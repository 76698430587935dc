//! Impacts end to end on the host, from an IIO accelerometer laid out as
//! the kernel's sysfs ABI documents it (`iio:device0/in_accel_{x,y,z}_raw`,
//! `in_accel_scale` in m/s² per unit, `name`), whose values the test writes
//! as a replayed trace (each file replaced whole, as sysfs gives a whole
//! value to every read). blackbox reads it at 100 Hz: a tilted mount with
//! road noise makes no event; a 2.5 g jolt makes exactly one `impact` event
//! with its peak, protecting every camera's footage around it; the sensor
//! taken away mid-drive is logged once while recording goes on, and read
//! again when it is back.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use blackbox_testkit::road;
use common::{RESERVE, Server, TempDir, config_file};

/// An ADXL345's scale: 3.9 mg per unit, in m/s².
const SCALE: f64 = 0.038_245_935;
const G: f64 = 9.806_65;

struct Accel {
    dir: PathBuf,
}

impl Accel {
    fn new(root: &Path) -> Accel {
        let dir = root.join("iio:device0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("in_accel_scale"), format!("{SCALE}\n")).unwrap();
        std::fs::write(dir.join("name"), "adxl345\n").unwrap();
        let a = Accel { dir };
        a.set(TILT);
        a
    }

    /// Puts `g` on the three axes, each file replaced whole.
    fn set(&self, g: [f64; 3]) {
        for (axis, v) in ["x", "y", "z"].iter().zip(g) {
            let raw = (v * G / SCALE).round() as i64;
            let tmp = self.dir.join(format!(".{axis}"));
            std::fs::write(&tmp, format!("{raw}\n")).unwrap();
            std::fs::rename(&tmp, self.dir.join(format!("in_accel_{axis}_raw"))).unwrap();
        }
    }
}

/// 1 g with the camera tilted 30° (the mount's angle).
const TILT: [f64; 3] = [0.5, 0.0, 0.866];

/// Drives for `secs` at 100 writes a second.
fn drive(a: &Accel, secs: f64, from: u64) -> u64 {
    let t0 = Instant::now();
    let mut i = from;
    while t0.elapsed().as_secs_f64() < secs {
        a.set(road(i));
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    i
}

#[test]
fn a_jolt_is_one_impact_event_on_every_camera_and_road_noise_is_none() {
    let root = TempDir::new("impact-iio");
    let accel = Accel::new(&root.0);
    let cfg = config_file(
        &root,
        &format!(
            "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\n\
             [[cameras]]\nid = \"rear\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\n\
             [record]\nsegment_seconds = 2\n{RESERVE}\
             [event]\npre_seconds = 2\npost_seconds = 2\n\
             [impact]\nsensor = \"{}\"\nthreshold_g = 1.5\nholdoff_seconds = 10\n",
            accel.dir.display()
        ),
    );
    let data = root.0.join("data");
    let mut server = Server::start(&["--config", &cfg, "--data", data.to_str().unwrap()]);
    let st = server.wait_status(60, "the sensor read", |s| {
        s["impact"]["state"] == "reading" && s["impact"]["samples"].as_u64() > Some(50)
    });
    assert_eq!(st["impact"]["kind"], "iio");
    assert_eq!(st["impact"]["name"], "adxl345");

    // Driving: a tilted mount and road noise, no event.
    let i = drive(&accel, 5.0, 0);
    let st = server.status();
    assert_eq!(st["impact"]["impacts"], 0, "{}", st["impact"]);
    assert!(
        st["impact"]["max_g"].as_f64().unwrap() < 1.0,
        "{}",
        st["impact"]
    );
    let gravity = st["impact"]["gravity"].as_array().unwrap();
    assert!(
        (gravity[0].as_f64().unwrap() - 0.5).abs() < 0.15,
        "{gravity:?}"
    );

    // A 2.5 g jolt sideways for 300 ms, a 1.8 g rattle a second later
    // (inside the hold-off), then driving on.
    let mut jolt = TILT;
    jolt[1] += 2.5;
    accel.set(jolt);
    std::thread::sleep(Duration::from_millis(300));
    let i = drive(&accel, 1.0, i);
    let mut rattle = TILT;
    rattle[0] -= 1.8;
    accel.set(rattle);
    std::thread::sleep(Duration::from_millis(200));
    let i = drive(&accel, 1.0, i);
    let st = server.wait_status(30, "the impact", |s| s["impact"]["impacts"] == 1);
    let peak = st["impact"]["last_impact"]["peak_g"].as_f64().unwrap();
    assert!((peak - 2.5).abs() < 0.1, "peak {peak}");
    let events = st["recorder"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "impact");
    assert!((events[0]["peak_g"].as_f64().unwrap() - peak).abs() < 1e-9);
    let at = events[0]["at"].as_f64().unwrap();

    // The footage around it, on both cameras, is in events/.
    let i = drive(&accel, 5.0, i);
    let deadline = Instant::now() + Duration::from_secs(60);
    let protected = loop {
        let names: Vec<String> = std::fs::read_dir(data.join("events"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".mkv"))
            .collect();
        let both = ["-front.mkv", "-rear.mkv"]
            .iter()
            .all(|c| names.iter().any(|n| n.ends_with(c)));
        if both || Instant::now() > deadline {
            break names;
        }
        drive(&accel, 0.5, i);
    };
    assert!(
        ["-front.mkv", "-rear.mkv"]
            .iter()
            .all(|c| protected.iter().any(|n| n.ends_with(c))),
        "protected: {protected:?} (event at {at})"
    );
    assert_eq!(server.status()["impact"]["impacts"], 1, "still one event");

    // Each camera's segments carry the trace: the jolt is in it with its
    // peak, beside frames that ffmpeg decodes.
    for camera in ["front", "rear"] {
        let mut highest = 0.0f64;
        let mut samples = 0;
        for name in protected
            .iter()
            .filter(|n| n.ends_with(&format!("-{camera}.mkv")))
        {
            let (code, _, body) = common::get(&server.url(&format!("/recordings/{name}/track")));
            assert_eq!(code, 200, "{name}");
            let track: serde_json::Value = serde_json::from_slice(&body).unwrap();
            for s in track["accel"].as_array().unwrap() {
                let s = s.as_array().unwrap();
                assert_eq!(s.len(), 5, "{s:?}");
                highest = highest.max(s[4].as_f64().unwrap());
                samples += 1;
            }
            let (decoded, errors) = common::ffmpeg_decode(&data.join("events").join(name));
            assert!(decoded > 0 && errors.is_empty(), "{name}: {errors}");
        }
        assert!(samples > 100, "{camera}: {samples} trace samples");
        assert!(
            (highest - peak).abs() < 0.01,
            "{camera}: the trace's highest {highest}, the peak {peak}"
        );
    }

    // The sensor taken away mid-drive: failed, recording goes on.
    let away = root.0.join("iio:away");
    std::fs::rename(&accel.dir, &away).unwrap();
    server.wait_status(30, "the sensor's loss", |s| {
        s["impact"]["state"] == "failed"
    });
    let written = server.status()["recorder"]["frames_written"]
        .as_u64()
        .unwrap();
    // Several retries (one every 2 s) while it is away.
    std::thread::sleep(Duration::from_secs(7));
    let st = server.status();
    assert_eq!(st["impact"]["state"], "failed", "{}", st["impact"]);
    assert!(st["recorder"]["frames_written"].as_u64().unwrap() > written + 20);
    assert!(
        st["impact"]["failures"].as_u64().unwrap() >= 3,
        "{}",
        st["impact"]
    );
    // Back: read again.
    std::fs::rename(&away, &accel.dir).unwrap();
    let samples = st["impact"]["samples"].as_u64().unwrap();
    server.wait_status(30, "the sensor back", |s| {
        s["impact"]["state"] == "reading" && s["impact"]["samples"].as_u64() > Some(samples + 50)
    });
    let log = server.terminate();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accelerometer:"))
        .collect();
    assert_eq!(
        warned.len(),
        2,
        "the loss once, the return once: {warned:?}"
    );
    assert!(warned[1].contains("working again"), "{warned:?}");

    // After a restart the recordings list still says why the footage is
    // kept: the moments around it list the impact with its peak.
    let server = Server::start(&[
        "--config",
        &cfg,
        "--data",
        data.to_str().unwrap(),
        "--impact-sensor",
        "off",
    ]);
    let list = testkit_json(&server.url("/api/recordings"));
    let with: Vec<&serde_json::Value> = list["moments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["events"].as_array().unwrap().is_empty())
        .collect();
    assert!(!with.is_empty(), "{list}");
    for m in &with {
        assert_eq!(m["protected"], true, "{m}");
        let e = &m["events"][0];
        assert_eq!(e["reason"], "impact", "{m}");
        assert!((e["peak_g"].as_f64().unwrap() - peak).abs() < 1e-9, "{m}");
        assert!((e["at"].as_f64().unwrap() - at).abs() < 1e-6, "{m}");
    }
}

fn testkit_json(url: &str) -> serde_json::Value {
    let (code, _, body) = common::get(url);
    assert_eq!(code, 200, "{url}");
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn no_sensor_is_normal_and_a_wrong_one_is_a_clear_failure() {
    // `auto` on a machine with none: said, not failed.
    let server = Server::start(&["--impact-sensor", "auto"]);
    let st = server.wait_status(30, "the search", |s| s["impact"]["state"] != "searching");
    if st["impact"]["state"] == "no-sensor" {
        assert!(
            st["impact"]["why"]
                .as_str()
                .unwrap()
                .contains("no accelerometer found")
        );
    }
    drop(server);
    // A file that is not one: failed, with why.
    let dir = TempDir::new("impact-wrong");
    let not = dir.0.join("not-a-sensor");
    std::fs::write(&not, "x").unwrap();
    let server = Server::start(&["--impact-sensor", not.to_str().unwrap()]);
    let st = server.wait_status(30, "the failure", |s| s["impact"]["state"] == "failed");
    assert!(
        st["impact"]["why"]
            .as_str()
            .unwrap()
            .contains("is not an accelerometer"),
        "{}",
        st["impact"]
    );
    // Off: nothing is read.
    let server = Server::start(&["--impact-sensor", "off"]);
    assert_eq!(server.status()["impact"]["state"], "off");
    // A bad value is refused before anything starts.
    let out = std::process::Command::new(common::BIN)
        .args(["run", "--impact-threshold", "40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("impact.threshold_g"), "{err}");
}
