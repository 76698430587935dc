//! Parking mode end to end on the host, parked and unparked by hand
//! (`POST /api/parking`), with the test pattern's view and the parking
//! clock under the test's control (the `fault-injection` feature's `scene`
//! and `mono_offset_ms`):
//!
//! - `timelapse`: an hour parked, stepped through in half-minute steps, is
//!   exactly its 120 frames, in files marked as a time-lapse that play at
//!   the camera's rate; the cut-off after an hour stops recording; driving
//!   records everything again at once.
//! - `motion`: a still view records nothing, a whole-frame change of light
//!   nothing, a moving square one clip that begins with its pre-roll; an
//!   event while parked records its window at the normal rate; both are
//!   listed as parked.
//! - A broken `[parking]` is refused with one line.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{RESERVE, Server, TempDir, config_file, ffprobe};

struct Faults(PathBuf);

impl Faults {
    fn new(dir: &Path) -> Faults {
        let f = Faults(dir.join("faults"));
        f.set("");
        f
    }

    /// Replaces the faults file whole (a new inode: read at once).
    fn set(&self, text: &str) {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
}

fn park(server: &Server, parked: bool) -> serde_json::Value {
    let (code, body) = blackbox_testkit::send(
        "POST",
        &server.url("/api/parking"),
        &[("content-type", "application/json")],
        &format!("{{\"parked\": {parked}}}"),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn parking(server: &Server) -> serde_json::Value {
    blackbox_testkit::get_json(&server.url("/api/parking")).unwrap()
}

fn start(root: &TempDir, faults: &Faults, segment_seconds: u32, parking: &str) -> Server {
    let cfg = config_file(
        root,
        &format!(
            "[camera]\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 20\n\
             [record]\nsegment_seconds = {segment_seconds}\n{RESERVE}\
             [event]\npre_seconds = 2\npost_seconds = 2\n\
             [impact]\nsensor = \"off\"\n\
             [parking]\n{parking}"
        ),
    );
    let data = root.0.join("data");
    Server::start_with_env(
        &["--config", &cfg, "--data", data.to_str().unwrap()],
        &[("BLACKBOX_FAULTS", faults.0.to_str().unwrap())],
    )
}

fn recordings(server: &Server) -> serde_json::Value {
    common::testkit_get_json(&server.url("/api/recordings"))
}

fn written(server: &Server) -> u64 {
    server.status()["recorder"]["frames_written"]
        .as_u64()
        .unwrap()
}

/// Frames written once the count stops moving (the status is refreshed
/// a few times a second; frames already on their way are written).
fn settled(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = written(server);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = written(server);
        if now == last {
            return now;
        }
        assert!(Instant::now() < deadline, "frames are still being written");
        last = now;
    }
}

#[test]
fn an_hour_parked_in_timelapse_is_its_frames_and_the_cutoff_stops_it() {
    let root = TempDir::new("parking-timelapse");
    let faults = Faults::new(&root.0);
    // Segments of 2 s: 40 time-lapse frames at 20 fps each.
    let server = start(
        &root,
        &faults,
        2,
        "mode = \"timelapse\"\ntimelapse_interval_seconds = 30\ncutoff_hours = 1\n",
    );
    server.wait_status(60, "recording", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(10)
    });
    assert_eq!(parking(&server)["phase"], "driving");
    let st = park(&server, true);
    assert_eq!(st["phase"], "parked", "{st}");
    assert_eq!(st["by"], "hand");

    // Each step: wait for the frame that is due, then move the parking
    // clock on by one interval.
    let mut offset = 0u64;
    for k in 1..=120u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = parking(&server);
            let n = p["timelapse_frames"].as_u64().unwrap();
            assert!(n <= k, "frame {n} before its time (step {k}): {p}");
            if n == k {
                break;
            }
            assert!(Instant::now() < deadline, "frame {k} never came: {p}");
            std::thread::sleep(Duration::from_millis(20));
        }
        offset += 30_000;
        faults.set(&format!("mono_offset_ms = {offset}\n"));
    }
    // An hour after parking: cut off, and nothing more is recorded.
    server.wait_status(30, "the cut-off", |s| s["parking"]["phase"] == "cut-off");
    let before = settled(&server);
    std::thread::sleep(Duration::from_secs(1));
    let st = server.status();
    assert_eq!(st["parking"]["timelapse_frames"], 120, "{}", st["parking"]);
    assert_eq!(st["recorder"]["frames_written"].as_u64().unwrap(), before);
    let text = common::get(&server.url("/metrics")).2;
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("blackbox_parking_phase{phase=\"cut-off\"} 1"),
        "{text}"
    );
    assert!(text.contains("blackbox_parking_timelapse_frames_total 120"));

    // Driving: everything again, at once.
    assert_eq!(park(&server, false)["phase"], "driving");
    server.wait_status(30, "recording again", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(before + 20)
    });
    common::request("POST", &server.url("/api/recording/stop"));
    server.wait_status(30, "segments closed", |s| {
        s["recorder"]["cameras"][0]["segment"].is_null()
    });

    let list = recordings(&server);
    let lapses: Vec<&serde_json::Value> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["timelapse"] == true)
        .collect();
    assert!(!lapses.is_empty(), "{list}");
    let mut frames = 0;
    for e in &lapses {
        let path = root
            .0
            .join("data/recordings")
            .join(e["name"].as_str().unwrap());
        let (n, w, h) = ffprobe(&path);
        assert_eq!((w, h), (320, 240));
        assert_eq!(n, e["frames"].as_u64().unwrap(), "{e}");
        // Played back at the camera's 20 fps: 50 ms a frame.
        let d = e["duration_seconds"].as_f64().unwrap();
        assert!((d - n as f64 * 0.05).abs() < 0.051, "{n} frames in {d} s");
        frames += n;
    }
    assert_eq!(frames, 120, "{lapses:?}");
    // Closed by their own timeline, not the wall's: 2 s of playback (40
    // frames) each, however long the hour took here.
    assert!(lapses.len() <= 4, "{} time-lapse files", lapses.len());
    assert!(
        list["moments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["timelapse"] == true)
    );
    // Driving before and after: ordinary segments too.
    assert!(list["recordings"].as_array().unwrap().len() > lapses.len());
}

#[test]
fn parked_a_still_view_and_light_record_nothing_and_movement_a_clip_with_its_pre_roll() {
    let root = TempDir::new("parking-motion");
    let faults = Faults::new(&root.0);
    faults.set("scene = still\n");
    let server = start(
        &root,
        &faults,
        60,
        "mode = \"motion\"\npre_roll_seconds = 2\nmotion_post_seconds = 2\n",
    );
    server.wait_status(60, "recording", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(10)
    });
    park(&server, true);
    let parked_at = settled(&server);

    // Still, then the light changes twice: nothing.
    std::thread::sleep(Duration::from_secs(3));
    faults.set("scene = bright\n");
    std::thread::sleep(Duration::from_secs(2));
    faults.set("scene = still\n");
    std::thread::sleep(Duration::from_secs(2));
    let p = parking(&server);
    assert_eq!(written(&server), parked_at, "{p}");
    assert_eq!(p["motion_clips"], 0, "{p}");
    assert!(p["lighting_changes"].as_u64() >= Some(1), "{p}");

    // The square moves for a second and a half: one clip.
    faults.set("scene = moving\n");
    std::thread::sleep(Duration::from_millis(1500));
    faults.set("scene = still\n");
    server.wait_status(30, "the clip", |s| s["parking"]["motion_clips"] == 1);
    let clip_frames = settled(&server) - parked_at;
    assert!(clip_frames > 0);

    // An event while parked (after the clip's footage has left the
    // event's window): its window at the normal rate.
    std::thread::sleep(Duration::from_secs(3));
    let (code, _, _) = common::request("POST", &server.url("/api/events"));
    assert_eq!(code, 202);
    // Its window: 2 s before from the ring (at parking.fps), 2 s after at
    // the camera's rate.
    let st = server.wait_status(30, "the event's frames", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(parked_at + clip_frames + 20)
    });
    let events = st["recorder"]["events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["parked"], true, "{events:?}");

    // Driving: at once.
    assert_eq!(park(&server, false)["phase"], "driving");
    common::request("POST", &server.url("/api/recording/stop"));
    server.wait_status(30, "segments closed", |s| {
        s["recorder"]["cameras"][0]["segment"].is_null()
    });

    let list = recordings(&server);
    let moments = list["moments"].as_array().unwrap();
    let with = |reason: &str| -> Vec<&serde_json::Value> {
        moments
            .iter()
            .filter(|m| {
                m["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["reason"] == reason && e["parked"] == true)
            })
            .collect()
    };
    // The clip: one moment, or two if a segment boundary fell inside it.
    let mut motion = with("motion");
    motion.sort_by_key(|m| m["seq"].as_u64());
    assert!((1..=2).contains(&motion.len()), "{moments:#?}");
    let first = motion[0];
    let at = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "motion")
        .unwrap()["at"]
        .as_f64()
        .unwrap();
    // It begins with the 2 s before the motion was seen...
    let pre = at - first["start"].as_f64().unwrap();
    assert!((1.0..=2.2).contains(&pre), "pre-roll {pre} s");
    // ...goes on 2 s after the last motion (at least 4 s in all), is not
    // protected, and its files hold exactly its frames.
    let (mut d, mut n) = (0.0, 0);
    for m in &motion {
        assert_eq!(m["protected"], false, "a motion clip is not protected");
        d += m["duration_seconds"].as_f64().unwrap();
        let name = m["cameras"]["front"].as_str().unwrap();
        n += ffprobe(&root.0.join("data/recordings").join(name)).0;
    }
    assert!(d >= 4.0, "the clip lasts {d} s");
    assert_eq!(n, clip_frames, "the clip's files hold the clip");
    assert!(!with("api").is_empty(), "{moments:#?}");
}

#[test]
fn a_broken_parking_section_is_refused_in_one_line() {
    let root = TempDir::new("parking-config");
    for (text, word) in [
        ("mode = \"sometimes\"\n", "parking.mode"),
        ("delay_seconds = 7200\n", "parking.delay_seconds"),
        ("ignition = \"gpio17\"\n", "parking.ignition"),
        ("motion_area_percent = 0\n", "parking.motion_area_percent"),
    ] {
        let cfg = config_file(&root, &format!("[parking]\n{text}"));
        let out = std::process::Command::new(common::BIN)
            .args(["run", "--config", &cfg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(word), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
