//! Several cameras in one blackbox: two test patterns at different sizes and
//! rates, each with its own live view, snapshot, status and metrics; the
//! first where one-camera clients look; a camera turned upside down in the
//! conversion; and each broken `[[cameras]]` list refused with one line.

mod common;

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
