//! The Pi camera source, with a stand-in `rpicam-vid` (there is no Pi camera
//! here): frames arrive, a killed child is restarted, malformed output is
//! counted and recovered from, and the placeholder stands in meanwhile.

mod common;

use std::path::PathBuf;

use common::{MjpegReader, Server, TempDir, decode_luma};

fn stand_in() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fake-rpicam-vid")
        .display()
        .to_string()
}

fn config(dir: &TempDir, program: &str, extra: &str) -> String {
    let path = dir.0.join("blackbox.toml");
    std::fs::write(
        &path,
        format!(
            "[camera]\nsource = \"rpicam\"\nrpicam_path = \"{program}\"\ntimeout = \"5s\"\n{extra}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Reads until `n` frames from the stand-in have arrived, checking every
/// part's size; placeholders may only come before the first of them.
fn camera_frames(server: &Server, n: usize, size: (usize, usize)) -> usize {
    let mut feed = MjpegReader::open(&server.url("/video_feed"));
    let mut camera = 0;
    while camera < n {
        let part = feed.next_part().expect("stream ended");
        let (luma, w, h) = decode_luma(&part.data);
        assert_eq!((w, h), size);
        if is_camera_frame(&luma) {
            camera += 1;
        } else {
            assert_eq!(camera, 0, "a placeholder between camera frames");
        }
    }
    camera
}

fn frames(server: &Server, n: usize, size: (usize, usize)) -> Vec<Vec<u8>> {
    let mut feed = MjpegReader::open(&server.url("/video_feed"));
    let mut out = Vec::new();
    while out.len() < n {
        let part = feed.next_part().expect("stream ended");
        let (luma, w, h) = decode_luma(&part.data);
        assert_eq!((w, h), size);
        out.push(luma);
    }
    out
}

/// True for a frame from the stand-in (flat luma above the caption at the
/// bottom), false for a placeholder.
fn is_camera_frame(luma: &[u8]) -> bool {
    let first = luma[luma.len() / 2];
    luma[..luma.len() * 3 / 4]
        .iter()
        .step_by(97)
        .all(|&v| v.abs_diff(first) <= 3)
}

#[test]
fn frames_arrive_with_the_right_command_line() {
    let dir = TempDir::new("rpicam-ok");
    let args_file = dir.0.join("args");
    let cfg = config(&dir, &stand_in(), "");
    let server = Server::start_with_env(
        &["--config", &cfg, "--size", "640x480", "--fps", "30"],
        &[("FAKE_RPICAM_ARGS", args_file.to_str().unwrap())],
    );
    camera_frames(&server, 15, (640, 480));
    let st = server.status();
    assert_eq!(st["source"]["kind"], "rpicam");
    assert_eq!(st["source"]["state"], "streaming");
    assert_eq!(st["source"]["pixel_format"], "yu12");
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        args.lines().next().unwrap(),
        "--camera 0 -t 0 -n --codec yuv420 --width 640 --height 480 --framerate 30 --flush -o -"
    );
}

#[test]
fn a_killed_child_is_restarted() {
    let dir = TempDir::new("rpicam-kill");
    let args_file = dir.0.join("args");
    let cfg = config(&dir, &stand_in(), "");
    let server = Server::start_with_env(
        &["--config", &cfg, "--size", "640x480", "--fps", "30"],
        &[("FAKE_RPICAM_ARGS", args_file.to_str().unwrap())],
    );
    server.wait_status(60, "streaming", |st| st["source"]["state"] == "streaming");
    let children = server.children();
    assert_eq!(children.len(), 1, "one rpicam-vid child: {children:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(children[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let st = server.wait_status(60, "a restart", |st| {
        st["source"]["reconnects"].as_u64().unwrap() >= 1 && st["source"]["state"] == "streaming"
    });
    assert!(st["drops"]["capture_errors"].as_u64().unwrap() >= 1);
    let restarted = server.children();
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted[0], children[0]);
    camera_frames(&server, 5, (640, 480));
    assert_eq!(
        std::fs::read_to_string(&args_file).unwrap().lines().count(),
        2
    );
}

#[test]
fn a_short_frame_is_counted_and_the_child_restarted() {
    let dir = TempDir::new("rpicam-short");
    let once = dir.0.join("once");
    let cfg = config(&dir, &stand_in(), "");
    let server = Server::start_with_env(
        &["--config", &cfg, "--size", "640x480", "--fps", "30"],
        &[
            ("FAKE_RPICAM_SHORT_AT", "10"),
            ("FAKE_RPICAM_ONCE", once.to_str().unwrap()),
        ],
    );
    let st = server.wait_status(60, "recovery", |st| {
        st["source"]["reconnects"].as_u64().unwrap() >= 1
            && st["source"]["state"] == "streaming"
            && st["frames"]["captured"].as_u64().unwrap() > 20
    });
    assert_eq!(st["drops"]["bad_frame"], 1, "{st}");
    assert!(
        st["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{st}"
    );
}

#[test]
fn mjpeg_garbage_is_skipped_without_a_restart() {
    let dir = TempDir::new("rpicam-mjpeg");
    let jpeg_path = common::plain_jpeg(&dir, 640, 480);
    let cfg = config(&dir, &stand_in(), "pixel_format = \"mjpeg\"\n");
    let server = Server::start_with_env(
        &["--config", &cfg, "--size", "640x480", "--fps", "30"],
        &[
            ("FAKE_RPICAM_JPEG", jpeg_path.to_str().unwrap()),
            ("FAKE_RPICAM_GARBAGE_AT", "5"),
        ],
    );
    // Placeholders may come first (published before the stand-in's first
    // frame): count the camera's frames.
    let mut feed = MjpegReader::open(&server.url("/video_feed"));
    let mut camera = 0;
    while camera < 15 {
        let part = feed.next_part().expect("stream ended");
        let (luma, w, h) = decode_luma(&part.data);
        assert_eq!((w, h), (640, 480));
        camera += usize::from(is_camera_frame(&luma));
    }
    let st = server.status();
    assert!(
        st["frames"]["passed_through"].as_u64().unwrap() >= 15,
        "{st}"
    );
    assert_eq!(st["drops"]["bad_frame"], 1, "{st}");
    assert_eq!(st["source"]["reconnects"], 0, "{st}");
    assert_eq!(st["source"]["pixel_format"], "mjpeg");
}

#[test]
fn a_jpeg_that_never_ends_is_dropped_not_buffered() {
    let dir = TempDir::new("rpicam-noeoi");
    let jpeg_path = common::plain_jpeg(&dir, 640, 480);
    let cfg = config(&dir, &stand_in(), "pixel_format = \"mjpeg\"\n");
    // 16 MiB of one JPEG that never ends, then good frames again.
    let server = Server::start_with_env(
        &["--config", &cfg, "--size", "640x480", "--fps", "30"],
        &[
            ("FAKE_RPICAM_JPEG", jpeg_path.to_str().unwrap()),
            ("FAKE_RPICAM_NO_EOI_AT", "5"),
            ("FAKE_RPICAM_NO_EOI_BYTES", "16777216"),
        ],
    );
    let st = server.wait_status(60, "frames after the junk", |st| {
        st["frames"]["passed_through"].as_u64().unwrap() >= 10
    });
    // The junk was dropped in pieces no larger than a raw frame, each
    // counted; the camera was never restarted for it.
    let bad = st["drops"]["bad_frame"].as_u64().unwrap();
    assert!((8..=40).contains(&bad), "{bad} bad frames: {st}");
    assert_eq!(st["source"]["reconnects"], 0, "{st}");
}

#[test]
fn the_placeholder_stands_in_at_the_configured_size() {
    let dir = TempDir::new("rpicam-missing");
    let cfg = config(&dir, "/nonexistent/rpicam-vid", "");
    let server = Server::start(&["--config", &cfg, "--size", "800x600"]);
    let got = frames(&server, 2, (800, 600));
    assert!(
        got.iter().all(|l| !is_camera_frame(l)),
        "placeholders, not camera frames"
    );
    let st = server.status();
    assert_eq!(st["source"]["state"], "no_signal");
    assert!(
        st["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot run"),
        "{st}"
    );
    assert!(st["frames"]["placeholders"].as_u64().unwrap() >= 2);
    let (code, _, body) = common::get(&server.url("/snapshot.jpg"));
    assert_eq!(code, 200);
    let (_, w, h) = decode_luma(&body);
    assert_eq!((w, h), (800, 600));
}
