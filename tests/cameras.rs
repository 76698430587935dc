//! Several cameras in one blackbox: two test patterns at different sizes and
//! rates, each with its own live view, snapshot, status and metrics; the
//! first where one-camera clients look; a camera turned upside down in the
//! conversion; both recorded into segments that pair up by moment, every
//! frame of each accounted for, an event protecting both, the loop deleting
//! whole moments; and each broken `[[cameras]]` list refused with one line.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use blackbox::record::names;
use blackbox::record::scan::{self, Depth};
use common::{MjpegReader, Server, TempDir, get};

/// Front 640x480 at 25 fps; rear 320x240 at 10 fps, mounted upside down.
const TWO: &str = "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"640x480\"\nfps = 25\n\
                   [[cameras]]\nid = \"rear\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\nrotation = 180\n";

fn start_two(dir: &TempDir, record: &str) -> Server {
    let cfg = common::config_file(dir, &format!("{TWO}[record]\n{}{record}", common::RESERVE));
    let data = dir.0.join("data").display().to_string();
    Server::start(&["--config", &cfg, "--data", &data])
}

/// The test pattern's sequence number in a frame turned upside down.
fn turned_sequence(jpeg: &[u8]) -> Option<u32> {
    let (mut luma, w, h) = common::decode_luma(jpeg);
    // A tightly packed plane turned half way round is its pixels reversed.
    luma.reverse();
    blackbox::capture::testsrc::read_sequence(&luma, w, h, w)
}

/// The test-pattern sequence number of every frame of a segment, in order.
fn sequences(path: &Path, turned: bool) -> Vec<u32> {
    let s = scan::scan(path, Depth::Checksums).unwrap();
    assert!(s.problem.is_none(), "{}: {:?}", path.display(), s.problem);
    let file = File::open(path).unwrap();
    s.frames
        .iter()
        .map(|f| {
            let jpeg = scan::read_frame(&file, f, true).unwrap();
            if turned {
                turned_sequence(&jpeg).expect("a turned strip")
            } else {
                common::sequence_of(&jpeg)
            }
        })
        .collect()
}

/// The rpicam-vid stand-in (tests/fixtures).
fn stand_in() -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fake-rpicam-vid")
        .display()
        .to_string()
}

/// Stops recording and waits until every camera's segment is finished.
fn stop_recording(server: &Server) -> serde_json::Value {
    let (code, _, _) = common::request("POST", &server.url("/api/recording/stop"));
    assert_eq!(code, 200);
    server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped"
            && st["recorder"]["cameras"]
                .as_array()
                .is_some_and(|c| c.iter().all(|c| c["segment"].is_null()))
    })
}

/// Checks camera `n` of the status `st` against its files `segs` (in
/// order): each plays at `size` and decodes frame for frame, the frames are
/// in order, every frame written is in a file, and every sequence number
/// from the first to the last is recorded or counted as dropped.
fn every_frame_of(
    st: &serde_json::Value,
    n: usize,
    segs: &[PathBuf],
    size: (u32, u32),
    turned: bool,
) {
    let id = st["cameras"][n]["id"].as_str().unwrap().to_string();
    let track = &st["recorder"]["cameras"][n];
    assert_eq!(track["id"], id.as_str());
    let mut seqs = Vec::new();
    for seg in segs {
        let (frames, w, h) = common::ffprobe(seg);
        assert_eq!((w, h), size, "{}", seg.display());
        let (decoded, errors) = common::ffmpeg_decode(seg);
        assert_eq!(decoded, frames, "{}: {errors}", seg.display());
        seqs.extend(sequences(seg, turned));
    }
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "{id}: out of order or twice"
    );
    let written = track["frames_written"].as_u64().unwrap();
    assert_eq!(
        seqs.len() as u64,
        written,
        "{id}: every frame written is in a file"
    );
    let span = u64::from(seqs[seqs.len() - 1] - seqs[0]) + 1;
    let drops = &st["cameras"][n]["drops"];
    let counted = track["dropped"].as_u64().unwrap()
        + track["frames_lost"].as_u64().unwrap()
        + drops["encoder_busy"].as_u64().unwrap()
        + drops["source"].as_u64().unwrap();
    assert!(
        written + counted >= span,
        "{id}: {} of {span} frames neither recorded nor counted",
        span - written
    );
}

/// Finished segments in `dir`, by moment then camera.
fn segments(dir: &Path) -> BTreeMap<(u64, String), PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = names::parse(&name)?;
            Some(((n.seq, n.camera.as_str().to_string()), e.path()))
        })
        .collect()
}

/// `n` frames from a camera's live view: their sizes and sequence numbers.
fn frames(url: &str, n: usize, turned: bool) -> Vec<((usize, usize), u32)> {
    let mut reader = MjpegReader::open(url);
    (0..n)
        .map(|_| {
            let part = reader.next_part().expect("a frame");
            let (_, w, h) = common::decode_luma(&part.data);
            let seq = if turned {
                turned_sequence(&part.data).expect("the strip, once turned back")
            } else {
                common::sequence_of(&part.data)
            };
            ((w, h), seq)
        })
        .collect()
}

#[test]
fn each_camera_has_its_own_live_view_status_and_metrics() {
    let dir = TempDir::new("cams-live");
    let server = start_two(&dir, "enabled = false\n");
    let front = frames(&server.url("/cameras/front/video_feed"), 8, false);
    let rear = frames(&server.url("/cameras/rear/video_feed"), 4, true);
    for (frames, size) in [(&front, (640, 480)), (&rear, (320, 240))] {
        assert!(frames.iter().all(|(s, _)| *s == size), "{frames:?}");
        assert!(
            frames.windows(2).all(|w| w[1].1 > w[0].1),
            "in order: {frames:?}"
        );
    }
    // The rear camera is upside down: its strip is at the bottom, turned.
    let (code, _, jpeg) = get(&server.url("/cameras/rear/snapshot.jpg"));
    assert_eq!(code, 200);
    let (luma, w, h) = common::decode_luma(&jpeg);
    assert_eq!((w, h), (320, 240));
    assert_eq!(
        blackbox::capture::testsrc::read_sequence(&luma, w, h, w),
        None,
        "no strip at the top of a turned picture"
    );
    assert!(turned_sequence(&jpeg).is_some());
    // One-camera clients see the first camera.
    let first = frames(&server.url("/video_feed"), 2, false);
    assert!(first.iter().all(|(s, _)| *s == (640, 480)));
    let (code, _, jpeg) = get(&server.url("/snapshot.jpg"));
    assert_eq!(code, 200);
    assert_eq!(common::decode_luma(&jpeg).1, 640);

    let st = server.wait_status(30, "both cameras streaming", |st| {
        st["cameras"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["source"]["state"] == "streaming"))
    });
    let cams = st["cameras"].as_array().unwrap();
    assert_eq!(cams[0]["id"], "front");
    assert_eq!(cams[1]["id"], "rear");
    assert_eq!(cams[1]["rotation"], 180);
    assert_eq!(cams[1]["source"]["width"], 320);
    assert_eq!(cams[1]["fps"]["target"], 10);
    assert_eq!(st["id"], "front", "the first camera's status at the top");
    assert_eq!(st["source"]["width"], 640);
    let (code, _, body) = get(&server.url("/metrics"));
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "blackbox_fps{camera=\"front\",kind=\"target\"} 25",
        "blackbox_fps{camera=\"rear\",kind=\"target\"} 10",
        "blackbox_capture_streaming{camera=\"rear\"} 1",
        "blackbox_frames_total{camera=\"rear\",stage=\"encoded\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    // Unknown cameras and paths are 404, other methods 405.
    for path in [
        "/cameras/side/video_feed",
        "/cameras/front/nothing",
        "/cameras/front",
        "/cameras/../video_feed",
    ] {
        let (code, _, _) = get(&server.url(path));
        assert_eq!(code, 404, "{path}");
    }
    let (code, _, _) = common::request("POST", &server.url("/cameras/rear/snapshot.jpg"));
    assert_eq!(code, 405);
}

/// `n` messages from a tap: length-prefixed JPEGs.
fn tap_frames(addr: &str, n: usize) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    (0..n)
        .map(|_| {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut jpeg = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut jpeg).unwrap();
            jpeg
        })
        .collect()
}

#[test]
fn each_camera_has_its_own_tap() {
    let dir = TempDir::new("cams-tap");
    let cfg = common::config_file(&dir, &format!("{TWO}[record]\nenabled = false\n"));
    let server = Server::start(&["--config", &cfg, "--tap", "127.0.0.1:0"]);
    let st = server.status();
    let first = format!("127.0.0.1:{}", server.tap_port.unwrap());
    assert_eq!(st["cameras"][0]["tap"], first.as_str(), "{st}");
    let rear = st["cameras"][1]["tap"].as_str().unwrap().to_string();
    assert_ne!(rear, first);
    for (addr, size, turned) in [(first, (640, 480), false), (rear, (320, 240), true)] {
        let seqs: Vec<u32> = tap_frames(&addr, 4)
            .iter()
            .map(|jpeg| {
                let (_, w, h) = common::decode_luma(jpeg);
                assert_eq!((w, h), size, "{addr}");
                if turned {
                    turned_sequence(jpeg).unwrap()
                } else {
                    common::sequence_of(jpeg)
                }
            })
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{addr}: {seqs:?}");
    }
}

#[test]
fn both_cameras_record_moments_that_pair_and_an_event_keeps_both() {
    let dir = TempDir::new("cams-rec");
    let server = start_two(&dir, "segment_seconds = 2\n");
    server.wait_status(90, "three moments of both cameras", |st| {
        st["recorder"]["segments_finished"].as_u64().unwrap_or(0) >= 6
    });
    let (code, _, _) = common::request("POST", &server.url("/api/events"));
    assert_eq!(code, 202);
    // An event covers the seconds after it too: let them be recorded.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let st = stop_recording(&server);
    let data = dir.0.join("data");
    let mut all = segments(&data.join("recordings"));
    let protected = segments(&data.join("events"));
    assert!(
        protected.keys().any(|k| k.1 == "front") && protected.keys().any(|k| k.1 == "rear"),
        "the event protects both cameras: {protected:?}"
    );
    all.extend(protected.clone());
    // Every moment has both cameras, under one start time.
    let mut moments: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (seq, cam) in all.keys() {
        moments.entry(*seq).or_default().push(cam);
    }
    assert!(moments.len() >= 3, "{moments:?}");
    for (seq, cams) in &moments {
        assert_eq!(cams, &vec!["front", "rear"], "moment {seq}: {all:?}");
        let front = all[&(*seq, "front".to_string())]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let rear = all[&(*seq, "rear".to_string())]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert_eq!(
            front.replace("-front.mkv", ""),
            rear.replace("-rear.mkv", "")
        );
    }
    // Every frame of each camera, in order, in files that play.
    let by_camera = |id: &str| -> Vec<PathBuf> {
        all.iter()
            .filter(|(k, _)| k.1 == id)
            .map(|(_, p)| p.clone())
            .collect()
    };
    every_frame_of(&st, 0, &by_camera("front"), (640, 480), false);
    every_frame_of(&st, 1, &by_camera("rear"), (320, 240), true);
    // The list pairs them too.
    let list = common::testkit_get_json(&server.url("/api/recordings"));
    let moments_listed = list["moments"].as_array().unwrap();
    assert_eq!(moments_listed.len(), moments.len(), "{list}");
    for m in moments_listed {
        let cams = m["cameras"].as_object().unwrap();
        assert_eq!(
            cams.keys().collect::<Vec<_>>(),
            vec!["front", "rear"],
            "{m}"
        );
    }
    assert!(moments_listed.iter().any(|m| m["protected"] == true));
    // Replaying a moment together: the rear frame nearest the front's.
    let m = &moments_listed[moments_listed.len() / 2];
    let (front, rear) = (
        m["cameras"]["front"].as_str().unwrap(),
        m["cameras"]["rear"].as_str().unwrap(),
    );
    let (code, h, jpeg) = get(&server.url(&format!("/recordings/{front}/frame?t=0.5")));
    assert_eq!(code, 200);
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(h["x-offset"].parse::<f64>().unwrap() > 0.4);
    assert_eq!(common::decode_luma(&jpeg).1, 640);
    let at: f64 = h["x-timestamp"].parse().unwrap();
    let (code, h, jpeg) = get(&server.url(&format!("/recordings/{rear}/frame?at={at:.6}")));
    assert_eq!(code, 200);
    assert_eq!(common::decode_luma(&jpeg).1, 320);
    let rear_at: f64 = h["x-timestamp"].parse().unwrap();
    assert!(
        (rear_at - at).abs() <= 0.1,
        "{at} and {rear_at}: over a rear frame apart"
    );
    for bad in ["t=-1", "t=abc", "at=NaN"] {
        let (code, _, _) = get(&server.url(&format!("/recordings/{front}/frame?{bad}")));
        assert_eq!(code, 400, "{bad}");
    }
    let (code, _, _) = get(&server.url("/recordings/00000999-20261126T172600Z-side.mkv/frame"));
    assert_eq!(code, 404);
}

#[test]
fn a_camera_that_fails_and_comes_back_never_costs_the_other_a_frame() {
    let dir = TempDir::new("cams-fail");
    let stand_in = stand_in();
    let cfg = common::config_file(
        &dir,
        &format!(
            "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 15\n\
             [[cameras]]\nid = \"rear\"\nsource = \"rpicam\"\nrpicam_path = \"{stand_in}\"\n\
             size = \"320x240\"\nfps = 10\ntimeout = \"5s\"\n\
             [record]\nsegment_seconds = 2\n{}",
            common::RESERVE
        ),
    );
    let once = dir.0.join("once");
    let data = dir.0.join("data").display().to_string();
    // The rear camera's rpicam-vid dies after 20 frames; its restart runs.
    let server = Server::start_with_env(
        &["--config", &cfg, "--data", &data],
        &[
            ("FAKE_RPICAM_EXIT_AFTER", "20"),
            ("FAKE_RPICAM_ONCE", once.to_str().unwrap()),
        ],
    );
    server.wait_status(120, "the rear camera back after its failure", |st| {
        let rear = &st["cameras"][1];
        rear["source"]["reconnects"].as_u64().unwrap_or(0) >= 1
            && rear["source"]["state"] == "streaming"
            && st["recorder"]["cameras"][1]["frames_written"]
                .as_u64()
                .unwrap_or(0)
                > 40
    });
    let st = stop_recording(&server);
    // The front camera never noticed: no error, no reopening, and every
    // frame of it from the first to the last is in a file (or counted).
    assert_eq!(st["cameras"][0]["source"]["reconnects"], 0, "{st}");
    assert_eq!(st["cameras"][0]["drops"]["capture_errors"], 0, "{st}");
    let all = segments(&dir.0.join("data/recordings"));
    let front: Vec<PathBuf> = all
        .iter()
        .filter(|(k, _)| k.1 == "front")
        .map(|(_, p)| p.clone())
        .collect();
    every_frame_of(&st, 0, &front, (320, 240), false);
    // And the rear camera's files, before and after its failure, play.
    let rear: Vec<_> = all.iter().filter(|(k, _)| k.1 == "rear").collect();
    assert!(rear.len() >= 2, "{all:?}");
    for (_, seg) in rear {
        let (frames, w, h) = common::ffprobe(seg);
        assert_eq!((w, h), (320, 240));
        let (decoded, errors) = common::ffmpeg_decode(seg);
        assert_eq!(decoded, frames, "{}: {errors}", seg.display());
    }
}

#[test]
fn auto_finds_both_pi_cameras_and_runs_one_rpicam_vid_each() {
    let dir = TempDir::new("cams-auto");
    let stand_in = stand_in();
    let cfg = common::config_file(
        &dir,
        &format!(
            "[camera]\nsource = \"auto\"\nrpicam_path = \"{stand_in}\"\nsize = \"320x240\"\n\
             fps = 10\ntimeout = \"5s\"\n[record]\nenabled = false\n"
        ),
    );
    let args = dir.0.join("args");
    let server = Server::start_with_env(
        &["--config", &cfg],
        &[
            ("FAKE_RPICAM_CAMERAS", "2"),
            ("FAKE_RPICAM_ARGS", args.to_str().unwrap()),
        ],
    );
    let st = server.wait_status(60, "two Pi cameras streaming", |st| {
        st["cameras"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["source"]["state"] == "streaming"))
    });
    assert_eq!(st["cameras"][0]["id"], "front");
    assert_eq!(st["cameras"][1]["id"], "rear");
    for c in st["cameras"].as_array().unwrap() {
        assert_eq!(c["source"]["kind"], "rpicam", "{c}");
    }
    // Each view shows its own camera: the stand-in's front frames have luma
    // 16 to 95, its rear ones 136 to 215.
    for (id, bright) in [("front", false), ("rear", true)] {
        let mut reader = MjpegReader::open(&server.url(&format!("/cameras/{id}/video_feed")));
        let mut seen = 0;
        while seen < 3 {
            let part = reader.next_part().expect("a frame");
            let (luma, _, _) = common::decode_luma(&part.data);
            let mid = luma[luma.len() / 2];
            // Flat above the caption at the bottom.
            let flat = luma[..luma.len() * 3 / 4]
                .iter()
                .step_by(97)
                .all(|&v| v.abs_diff(mid) <= 3);
            if !flat {
                continue; // a placeholder while the camera started
            }
            assert_eq!(mid >= 116, bright, "{id}: luma {mid}");
            seen += 1;
        }
    }
    // `blackbox probe` lists them too, with the ids auto gives them.
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&stand_in, bin.join("rpicam-vid")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blackbox"))
        .arg("probe")
        .env("PATH", path)
        .env("FAKE_RPICAM_CAMERAS", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in [
        "front: the Pi camera 0 (rpicam-vid --camera 0)",
        "rear: the Pi camera 1 (rpicam-vid --camera 1)",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    let lines = std::fs::read_to_string(&args).unwrap();
    for n in ["0", "1"] {
        assert!(
            lines
                .lines()
                .any(|l| l.starts_with(&format!("--camera {n} "))),
            "rpicam-vid --camera {n}: {lines}"
        );
    }
}

#[test]
fn the_loop_deletes_whole_moments_oldest_first() {
    let dir = TempDir::new("cams-loop");
    let server = start_two(&dir, "segment_seconds = 1\nmax_usage = \"3MiB\"\n");
    server.wait_status(120, "the loop to delete", |st| {
        st["recorder"]["segments_deleted"].as_u64().unwrap_or(0) >= 6
    });
    let (code, _, _) = common::request("POST", &server.url("/api/recording/stop"));
    assert_eq!(code, 200);
    server.wait_status(30, "stopped", |st| st["recorder"]["state"] == "stopped");
    let left = segments(&dir.0.join("data/recordings"));
    let seqs: Vec<u64> = left.keys().map(|k| k.0).collect();
    let mut moments: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &seqs {
        *moments.entry(*s).or_default() += 1;
    }
    // What is left is the newest moments, each whole.
    assert!(!moments.is_empty());
    assert!(moments.values().all(|n| *n == 2), "{left:?}");
    let first_left = *moments.keys().next().unwrap();
    assert!(first_left > 1, "the oldest went first: {left:?}");
    let newest = *moments.keys().next_back().unwrap();
    assert_eq!(
        moments.len() as u64,
        newest - first_left + 1,
        "no moment in the middle was deleted: {left:?}"
    );
}

#[test]
fn a_card_from_before_camera_ids_keeps_working() {
    // A one-camera card: record a moment, then give its file the name
    // older versions wrote (no camera in it).
    let dir = TempDir::new("cams-legacy");
    let one = common::config_file(
        &dir,
        &format!("[record]\nsegment_seconds = 2\n{}", common::RESERVE),
    );
    let data = dir.0.join("data").display().to_string();
    let server = Server::start(&["--config", &one, "--data", &data, "--size", "320x240"]);
    server.wait_status(60, "a finished segment", |st| {
        st["recorder"]["segments_finished"].as_u64().unwrap_or(0) >= 1
    });
    stop_recording(&server);
    drop(server);
    let rec = dir.0.join("data/recordings");
    let ((seq, _), path) = segments(&rec).into_iter().next().unwrap();
    let old_name = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("-front.mkv", ".mkv");
    std::fs::rename(&path, rec.join(&old_name)).unwrap();
    // Now two cameras on that card.
    let two = common::config_file(
        &dir,
        &format!("{TWO}[record]\nsegment_seconds = 2\n{}", common::RESERVE),
    );
    let server = Server::start(&["--config", &two, "--data", &data]);
    server.wait_status(60, "a new moment", |st| {
        st["recorder"]["segments_finished"].as_u64().unwrap_or(0) >= 2
    });
    let list = common::testkit_get_json(&server.url("/api/recordings"));
    let old = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == old_name.as_str())
        .unwrap_or_else(|| panic!("{old_name} not listed: {list}"));
    assert_eq!(
        old["camera"], "front",
        "an untagged file is the first camera's"
    );
    let moment = list["moments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["seq"] == seq)
        .unwrap();
    assert_eq!(moment["cameras"]["front"], old_name.as_str());
    // It plays, downloads, and new moments come after it.
    let (code, _, body) = get(&server.url(&format!("/recordings/{old_name}")));
    assert_eq!(
        (code, body.len() as u64),
        (200, std::fs::metadata(rec.join(&old_name)).unwrap().len())
    );
    let (code, _, _) = get(&server.url(&format!("/recordings/{old_name}/frame?t=0")));
    assert_eq!(code, 200);
    let newer = list["moments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["seq"].as_u64().unwrap() > seq);
    assert!(newer.count() >= 1, "{list}");
}

#[test]
fn a_camera_nobody_watches_or_records_costs_no_encoding() {
    let dir = TempDir::new("cams-idle");
    let cfg = common::config_file(
        &dir,
        &format!("{TWO}record = false\n[record]\n{}", common::RESERVE),
    );
    let data = dir.0.join("data").display().to_string();
    let server = Server::start(&["--config", &cfg, "--data", &data]);
    let st = server.wait_status(60, "the rear camera idle", |st| {
        st["cameras"][1]["frames"]["idle"].as_u64().unwrap_or(0) >= 10
            && st["recorder"]["frames_written"].as_u64().unwrap_or(0) >= 10
    });
    assert_eq!(st["cameras"][1]["record"], false);
    assert_eq!(st["cameras"][1]["frames"]["encoded"], 0, "{st}");
    assert_eq!(
        st["recorder"]["cameras"].as_array().unwrap().len(),
        1,
        "only front is recorded"
    );
    // A viewer comes: now it is encoded, for the viewer alone.
    let frames = frames(&server.url("/cameras/rear/video_feed"), 3, true);
    assert_eq!(frames.len(), 3);
    let st = server.status();
    assert!(
        st["cameras"][1]["frames"]["encoded"].as_u64().unwrap() >= 3,
        "{st}"
    );
}

#[test]
fn with_no_camera_recorded_the_recorder_still_answers_and_stays_healthy() {
    let dir = TempDir::new("cams-norec");
    let cfg = common::config_file(
        &dir,
        "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"320x240\"\nrecord = false\n",
    );
    let data = dir.0.join("data").display().to_string();
    let mut server = Server::start(&["--config", &cfg, "--data", &data]);
    let (code, _, _) = common::request("POST", &server.url("/api/events"));
    assert_eq!(code, 202);
    let (code, _, _) = common::request(
        "DELETE",
        &server.url("/api/recordings/00000001-20261205T000000Z-front.mkv"),
    );
    assert_eq!(code, 404, "answered, not left waiting");
    // Longer than a stall takes to be seen: the recorder keeps beating.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let (code, _, body) = get(&server.url("/healthz"));
    assert_eq!((code, String::from_utf8_lossy(&body).trim()), (200, "ok"));
    let st = server.status();
    assert_eq!(st["recorder"]["cameras"].as_array().unwrap().len(), 0);
    let (status, _) = server.sigterm_within(std::time::Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn a_broken_camera_list_stops_blackbox_with_one_line() {
    let dir = TempDir::new("cams-bad");
    let cam = |id: &str, more: &str| format!("[[cameras]]\nid = \"{id}\"\n{more}\n");
    let cases = [
        (
            cam("front", "source = \"testsrc\"") + &cam("front", "source = \"testsrc\""),
            "camera \"front\": camera.id",
        ),
        (
            cam("front", "source = \"v4l2\"\ndevice = \"/dev/video0\"")
                + &cam("rear", "source = \"v4l2\"\ndevice = \"/dev/video0\""),
            "camera \"rear\": camera.device",
        ),
        (
            cam("front", "source = \"rpicam\"") + &cam("rear", "source = \"rpicam\""),
            "camera \"rear\": camera.index",
        ),
        (
            cam("front", "source = \"testsrc\"") + "[[cameras]]\nsource = \"testsrc\"\n",
            "camera #2 of [[cameras]]: camera.id",
        ),
        (
            cam("Front Camera", "source = \"testsrc\""),
            "camera.id = \"Front Camera\"",
        ),
    ];
    for (text, expected) in cases {
        let cfg = common::config_file(&dir, &text);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_blackbox"))
            .args(["run", "--config", &cfg, "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
}
