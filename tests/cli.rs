//! Bad input on the command line or in the config file: exit code 2 and one
//! clear line on stderr that names the field.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{BIN, TempDir};

fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A valid configuration would run forever; these must all fail fast.
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("blackbox {args:?} did not exit");
}

fn assert_refused(args: &[&str], needles: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "{args:?}: {stderr:?} should mention {n:?}"
        );
    }
}

#[test]
fn invalid_flags_name_the_field() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--size", "641x480"], &["camera.size", "--size", "even"]),
        (&["--size", "640x0"], &["camera.size", "zero"]),
        (&["--size", "wide"], &["camera.size", "WIDTHxHEIGHT"]),
        (&["--fps", "0"], &["camera.fps", "--fps"]),
        (&["--fps", "fast"], &["camera.fps"]),
        (&["--quality", "0"], &["encode.quality", "1 to 100"]),
        (&["--quality", "101"], &["encode.quality"]),
        (&["--source", "webcam9"], &["camera.source", "testsrc"]),
        (&["--pixel-format", "rgb24"], &["camera.pixel_format"]),
        (&["--listen", "localhost"], &["http.listen"]),
        (&["--tap", "99999"], &["tap.listen"]),
    ];
    for (args, needles) in cases {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        assert_refused(&full, needles);
    }
}

#[test]
fn bad_config_files_are_refused() {
    let dir = TempDir::new("cli");
    let missing = dir.0.join("missing.toml");
    assert_refused(
        &["run", "--config", missing.to_str().unwrap()],
        &["cannot read config file", "missing.toml"],
    );

    let cases: &[(&str, &[&str])] = &[
        ("[camera\nfps = 30\n", &["line 1"]),
        ("[camera]\nfsp = 30\n", &["line 2", "fsp"]),
        ("[camera]\nfps = 0\n", &["camera.fps"]),
        ("[camera]\nsize = \"1281x720\"\n", &["camera.size"]),
        ("[encode]\nquality = 500\n", &["encode.quality"]),
        (
            "[http]\nwrite_timeout = \"later\"\n",
            &["http.write_timeout"],
        ),
        ("[tap]\nqueue_frames = 0\n", &["tap.queue_frames"]),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let path = dir.0.join(format!("c{i}.toml"));
        std::fs::write(&path, body).unwrap();
        assert_refused(&["run", "--config", path.to_str().unwrap()], needles);
    }
}

#[test]
fn an_address_in_use_is_refused() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused(
        &["run", "--listen", &addr],
        &["http.listen", &addr, "in use"],
    );
    assert_refused(
        &["run", "--listen", "127.0.0.1:0", "--tap", &addr],
        &["tap.listen", "in use"],
    );
}

#[test]
fn help_documents_the_flags() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run"), "{text}");
    let out = run(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--source",
        "--size",
        "--fps",
        "--pixel-format",
        "--quality",
        "--listen",
        "--tap",
    ] {
        assert!(text.contains(flag), "run --help lacks {flag}: {text}");
    }
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn probe_reports_and_refuses_clearly() {
    // This machine may have no V4L2 devices at all; the listing still works.
    let out = run(&["probe"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["probe", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let parsed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("probe --json is JSON");
    assert!(parsed.is_array());

    let out = run(&["probe", "/dev/no-such-video9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/dev/no-such-video9"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = run(&["probe", "/dev/null"]);
    assert_ne!(out.status.code(), Some(0), "/dev/null is no camera");
}

#[test]
fn a_missing_camera_is_not_fatal() {
    // blackbox keeps serving (placeholders) and keeps trying to open it.
    let server = common::Server::start(&[
        "--source",
        "v4l2",
        "--device",
        "/dev/no-such-video9",
        "--size",
        "640x480",
    ]);
    let st = server.wait_status(60, "no signal", |st| st["source"]["state"] == "no_signal");
    assert!(
        st["source"]["last_error"]
            .as_str()
            .unwrap()
            .contains("no-such-video9"),
        "{st}"
    );
    let (code, _, body) = common::get(&server.url("/snapshot.jpg"));
    assert_eq!(code, 200);
    let (_, w, h) = common::decode_luma(&body);
    assert_eq!((w, h), (640, 480));
    server.wait_status(60, "retries", |st| {
        st["source"]["reconnects"].as_u64().unwrap() >= 2
    });
}
