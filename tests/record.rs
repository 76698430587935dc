//! The recorder end to end, on real files and file systems: recordings play
//! in ffprobe/ffmpeg and follow each other without a gap, `kill -9` loses at
//! most the sync interval, loop recording and ENOSPC on a small tmpfs,
//! events and their quota, playback, downloads and bad names, and a slow
//! disk that must not slow the live view.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blackbox::record::mkv;
use common::{MjpegReader, Server, TempDir, ffmpeg_decode, ffprobe, get, request, sequence_of};

/// Writes a config with `[record]` lines (and any further sections) into
/// `dir`; returns the arguments that use it with `dir/data` as the data
/// directory.
fn config(dir: &Path, extra: &str) -> Vec<String> {
    let path = dir.join("blackbox.toml");
    std::fs::write(&path, format!("[record]\n{extra}")).unwrap();
    vec![
        "--config".into(),
        path.display().to_string(),
        "--data".into(),
        dir.join("data").display().to_string(),
    ]
}

fn args<'a>(cfg: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    cfg.iter()
        .map(String::as_str)
        .chain(more.iter().copied())
        .collect()
}

/// Starts blackbox at 640x480, 25 fps, recording into `dir/data` with the
/// `[record]` lines (and further sections) in `extra`, plus `more` flags.
fn start(dir: &Path, extra: &str, more: &[&str]) -> Server {
    let cfg = config(dir, extra);
    let mut flags = vec!["--size", "640x480", "--fps", "25"];
    flags.extend_from_slice(more);
    Server::start(&args(&cfg, &flags))
}

fn finished(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "mkv"));
    v.sort();
    v
}

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(".mkv.part"));
    v
}

/// The test-pattern sequence numbers of a file's first and last frames.
fn first_last_seq(path: &Path) -> (u32, u32, usize) {
    let scan = mkv::scan(path).unwrap();
    let file = File::open(path).unwrap();
    let first = sequence_of(&mkv::read_frame(&file, &scan.frames[0]).unwrap());
    let last = sequence_of(&mkv::read_frame(&file, scan.frames.last().unwrap()).unwrap());
    (first, last, scan.frames.len())
}

fn rec(st: &serde_json::Value, key: &str) -> u64 {
    st["recorder"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("recorder.{key} in {st}"))
}

#[test]
fn recordings_play_and_follow_each_other_without_a_gap() {
    let dir = TempDir::new("rec-play");
    let server = start(&dir.0, "segment_seconds = 2\n", &[]);
    server.wait_status(20, "three finished segments", |st| {
        rec(st, "segments_finished") >= 3
    });
    let (code, _, _) = request("POST", &server.url("/api/recording/stop"));
    assert_eq!(code, 200);
    let st = server.wait_status(10, "the recorder to stop", |st| {
        st["recorder"]["recording"] == false && st["recorder"]["segment"].is_null()
    });
    let written = rec(&st, "frames_written");
    let segs = finished(&dir.0.join("data/recordings"));
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(parts(&dir.0.join("data/recordings")).is_empty());

    let mut total = 0;
    let mut previous_last: Option<u32> = None;
    for seg in &segs {
        let (frames, w, h) = ffprobe(seg);
        assert_eq!((w, h), (640, 480), "{}", seg.display());
        let (decoded, errors) = ffmpeg_decode(seg);
        assert_eq!(decoded, frames, "{}", seg.display());
        assert!(errors.trim().is_empty(), "{}: {errors}", seg.display());
        let (first, last, n) = first_last_seq(seg);
        assert_eq!(n as u64, frames);
        assert_eq!(
            (last - first + 1) as u64,
            frames,
            "{}: a frame missing inside",
            seg.display()
        );
        if let Some(prev) = previous_last {
            assert_eq!(
                first,
                prev + 1,
                "a gap between segments before {}",
                seg.display()
            );
        }
        previous_last = Some(last);
        total += frames;
        // Segments after the first start on whole multiples of 2 s.
        let name = seg.file_name().unwrap().to_string_lossy().to_string();
        if seg != &segs[0] {
            let secs: u32 = name[13..15].parse().unwrap();
            assert_eq!(secs % 2, 0, "{name} does not start on a 2 s boundary");
        }
        let out = Command::new(common::BIN)
            .arg("verify")
            .arg(seg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        total, written,
        "ffprobe counts every frame the recorder wrote"
    );
}

#[test]
fn kill_9_loses_at_most_the_sync_interval() {
    let dir = TempDir::new("rec-kill");
    let cfg = config(&dir.0, "sync_interval = \"1s\"\n");
    let args = args(&cfg, &["--size", "640x480", "--fps", "25"]);
    let mut server = Server::start(&args);
    server.wait_status(10, "frames on disk", |st| rec(st, "frames_written") > 80);
    let before = server.status();
    let captured_seq = before["source"]["sequence"].as_u64().unwrap() as u32;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let recordings = dir.0.join("data/recordings");
    assert_eq!(
        parts(&recordings).len(),
        1,
        "the interrupted segment is a .part"
    );
    drop(server);

    // Start again: the .part is recovered before recording resumes.
    let server = Server::start(&args);
    server.wait_status(10, "recording again", |st| rec(st, "frames_written") > 0);
    let segs = finished(&recordings);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let (first, last, n) = first_last_seq(&segs[0]);
    assert_eq!(
        (last - first + 1) as usize,
        n,
        "no frame missing inside the recovered file"
    );
    let lost = captured_seq.saturating_sub(last);
    // sync interval (1 s = 25 frames) + 1 frame, + 1 captured while the
    // status was read.
    assert!(
        lost <= 27,
        "lost {lost} frames: last recorded {last}, captured {captured_seq}"
    );
    let out = Command::new(common::BIN)
        .arg("verify")
        .arg(&segs[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        std::fs::read_dir(dir.0.join("data/damaged"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// A tmpfs of `size`, unmounted on drop. Needs root (CI and the VM rig run
/// as root); fails clearly otherwise.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn loop_recording_on_a_small_file_system_for_a_minute() {
    let dir = TempDir::new("rec-loop");
    let mnt = dir.0.join("data");
    let _fs = Tmpfs::mount(&mnt, "24m");
    let server = start(
        &dir.0,
        "segment_seconds = 2\nmax_usage = \"8MiB\"\nmin_free = \"2MiB\"\n",
        &["--quality", "90"],
    );
    let recordings = mnt.join("recordings");
    let budget = 8u64 << 20;
    let mut seen: Vec<String> = Vec::new();
    let mut last_written = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        let st = server.status();
        let written = rec(&st, "frames_written");
        assert!(written > last_written, "recording stopped: {st}");
        last_written = written;
        // Finished segments stay within the budget (the open one adds at
        // most one segment's worth).
        let finished_bytes: u64 = finished(&recordings)
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum();
        assert!(
            finished_bytes <= budget,
            "{finished_bytes} bytes finished, budget {budget}"
        );
        assert!(st["recorder"]["disk"]["free"].as_u64().unwrap() > 0);
        for p in finished(&recordings) {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        // Oldest first: what is left is always the newest run of names.
        let left: Vec<String> = finished(&recordings)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        seen.sort();
        if let Some(first_left) = left.first() {
            let from = seen.iter().position(|n| n == first_left).unwrap();
            assert_eq!(
                &seen[from..from + left.len()],
                &left[..],
                "a newer segment was deleted before an older one"
            );
        }
    }
    let st = server.status();
    assert!(
        rec(&st, "segments_deleted") >= 5,
        "the loop never deleted anything: {st}"
    );
    assert!(
        dir_bytes(&recordings) <= budget + (4 << 20) + (3 << 20),
        "{st}"
    );
    // Recording never paused: the segments left follow each other exactly.
    let segs = finished(&recordings);
    for pair in segs.windows(2) {
        let (_, last, _) = first_last_seq(&pair[0]);
        let (first, _, _) = first_last_seq(&pair[1]);
        assert_eq!(
            first,
            last + 1,
            "gap between {} and {}",
            pair[0].display(),
            pair[1].display()
        );
    }
}

#[test]
fn a_full_disk_does_not_stop_recording() {
    let dir = TempDir::new("rec-enospc");
    let mnt = dir.0.join("data");
    let _fs = Tmpfs::mount(&mnt, "16m");
    // Somebody else's file takes most of the card; no budget applies, so
    // the recorder runs into ENOSPC and must make room itself.
    std::fs::write(mnt.join("other-file"), vec![0u8; 7 << 20]).unwrap();
    let server = start(
        &dir.0,
        "segment_seconds = 2\nmax_usage = \"100%\"\nmin_free = \"0\"\n",
        &["--quality", "95"],
    );
    let st = server.wait_status(40, "the disk to fill and space to be freed", |st| {
        rec(st, "segments_deleted") >= 2
    });
    let written = rec(&st, "frames_written");
    std::thread::sleep(Duration::from_secs(4));
    let st = server.status();
    assert!(
        rec(&st, "frames_written") > written + 50,
        "recording stopped after the disk filled: {st}"
    );
    assert_eq!(st["recorder"]["recording"], true);
    assert!(
        mnt.join("other-file").exists(),
        "only recordings are deleted"
    );
    for seg in finished(&mnt.join("recordings")) {
        let out = Command::new(common::BIN)
            .arg("verify")
            .arg(&seg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn events_are_kept_apart_and_survive_the_loop() {
    let dir = TempDir::new("rec-events");
    let server = start(
        &dir.0,
        "segment_seconds = 2\nmax_usage = \"2MiB\"\n[event]\npre_seconds = 2\npost_seconds = 2\nmax_usage = \"64MiB\"\n",
        &["--quality", "90"],
    );
    server.wait_status(10, "a finished segment", |st| {
        rec(st, "segments_finished") >= 2
    });
    let (code, _, body) = request("POST", &server.url("/api/events"));
    assert_eq!(code, 202);
    let ev: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (from, to) = (ev["from"].as_f64().unwrap(), ev["to"].as_f64().unwrap());
    // Let the window close and the loop rule run over plenty of segments.
    server.wait_status(30, "the loop rule", |st| rec(st, "segments_deleted") >= 6);
    let events = finished(&dir.0.join("data/events"));
    assert!(events.len() >= 2, "protected: {events:?}");
    // Together they cover the whole window.
    let mut covered_from = f64::MAX;
    let mut covered_to = 0.0f64;
    for seg in &events {
        let name = seg.file_name().unwrap().to_string_lossy().to_string();
        let start = blackbox::record::store::name_time(&name)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let scan = mkv::scan(seg).unwrap();
        assert!(scan.finished);
        covered_from = covered_from.min(start);
        covered_to = covered_to.max(start + scan.duration_ms.unwrap() / 1000.0);
    }
    assert!(
        covered_from <= from + 1.0 && covered_to >= to - 1.0,
        "window {from}..{to}, kept {covered_from}..{covered_to}"
    );
    // A signal is an event too.
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let st = server.wait_status(5, "the SIGUSR1 event", |st| {
        st["recorder"]["events"].as_array().unwrap().len() >= 2
    });
    assert_eq!(st["recorder"]["events"][1]["reason"], "signal");
}

#[test]
fn events_have_their_own_quota() {
    let dir = TempDir::new("rec-equota");
    let server = start(
        &dir.0,
        "segment_seconds = 2\n[event]\npre_seconds = 1\npost_seconds = 1\nmax_usage = \"3MiB\"\n",
        &["--quality", "90"],
    );
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    let events = dir.0.join("data/events");
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(2));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
        for p in finished(&events) {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let left = finished(&events);
    let bytes: u64 = left.iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(bytes <= 3 << 20, "events use {bytes} bytes, quota 3 MiB");
    assert!(
        seen.len() > left.len(),
        "the quota never deleted an event: {seen:?}"
    );
    let names: Vec<String> = left
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for n in &names {
        if !seen.contains(n) {
            seen.push(n.clone());
        }
    }
    seen.sort();
    assert_eq!(
        &seen[seen.len() - names.len()..],
        &names[..],
        "oldest events go first"
    );
}

#[test]
fn playback_downloads_and_names() {
    let dir = TempDir::new("rec-http");
    let server = start(&dir.0, "segment_seconds = 60\n", &[]);
    server.wait_status(15, "six seconds recorded", |st| {
        rec(st, "frames_written") >= 150
    });
    // Deleting the segment being written is refused.
    let st = server.status();
    let current = st["recorder"]["segment"].as_str().unwrap().to_string();
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{current}")));
    assert_eq!(code, 409);
    request("POST", &server.url("/api/recording/stop"));
    server.wait_status(10, "stopped", |st| st["recorder"]["segment"].is_null());

    let list = common::testkit_get_json(&server.url("/api/recordings"));
    let longest = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["duration_seconds"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["duration_seconds"].as_f64().unwrap())
        })
        .unwrap()
        .clone();
    let name = longest["name"].as_str().unwrap().to_string();
    assert!(
        longest["duration_seconds"].as_f64().unwrap() > 4.0,
        "{longest}"
    );
    assert!(longest["frames"].as_u64().unwrap() > 100);
    let path = dir.0.join("data/recordings").join(&name);

    // play?t=3 starts at the frame nearest 3 s and keeps the recorded pace.
    let scan = mkv::scan(&path).unwrap();
    let file = File::open(&path).unwrap();
    let nearest = scan
        .frames
        .iter()
        .min_by_key(|f| f.ts_ms.abs_diff(3000))
        .unwrap();
    let want = sequence_of(&mkv::read_frame(&file, nearest).unwrap());
    let mut feed = MjpegReader::open(&server.url(&format!("/recordings/{name}/play?t=3")));
    let first = feed.next_part().unwrap();
    assert_eq!(sequence_of(&first.data), want);
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        feed.next_part().unwrap();
        n += 1;
    }
    let fps = f64::from(n) / t0.elapsed().as_secs_f64();
    assert!(
        (fps - 25.0).abs() < 4.0,
        "replayed at {fps:.1} fps, recorded at 25"
    );

    // Downloads: whole, and by range.
    let bytes = std::fs::read(&path).unwrap();
    let (code, headers, body) = get(&server.url(&format!("/recordings/{name}")));
    assert_eq!(code, 200);
    assert_eq!(body, bytes);
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{name}\"")
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    let ranged = |range: &str| {
        let res = ureq::get(&server.url(&format!("/recordings/{name}")))
            .header("Range", range)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let code = res.status().as_u16();
        let cr = res
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.into_body().read_to_vec().unwrap();
        (code, cr, body)
    };
    let (code, cr, body) = ranged("bytes=100-1099");
    assert_eq!(code, 206);
    assert_eq!(cr.unwrap(), format!("bytes 100-1099/{}", bytes.len()));
    assert_eq!(body, bytes[100..1100]);
    let (code, _, body) = ranged("bytes=-500");
    assert_eq!(code, 206);
    assert_eq!(body, bytes[bytes.len() - 500..]);
    let (code, cr, _) = ranged(&format!("bytes={}-", bytes.len() + 10));
    assert_eq!(code, 416);
    assert_eq!(cr.unwrap(), format!("bytes */{}", bytes.len()));

    // Names that try to leave the data directory, and unknown ones.
    for bad in [
        "/recordings/..%2F..%2Fetc%2Fpasswd",
        "/recordings/%2Fetc%2Fpasswd",
        "/recordings/x.mkv/play",
        "/api/recordings/..%2Fblackbox.toml",
    ] {
        let (code, _, _) = get(&server.url(bad));
        assert!(code == 400 || code == 404 || code == 405, "{bad}: {code}");
    }
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    use std::io::{Read, Write};
    raw.write_all(
        b"GET /recordings/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    let _ = raw.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 404"),
        "{reply}"
    );
    assert!(!reply.contains("root:"), "{reply}");
    let (code, _, _) = get(&server.url("/recordings/20990101T000000Z.mkv"));
    assert_eq!(code, 404);

    // Delete a finished one.
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{name}")));
    assert_eq!(code, 204);
    assert!(!path.exists());
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{name}")));
    assert_eq!(code, 404);
}

#[test]
fn a_slow_disk_never_slows_the_live_view() {
    let dir = TempDir::new("rec-slow");
    let cfg = config(&dir.0, "queue_frames = 10\n");
    let server = Server::start_with_env(
        &args(&cfg, &["--size", "640x480", "--fps", "25"]),
        &[("BLACKBOX_TEST_SLOW_WRITE_MS", "100")],
    );
    let mut feed = MjpegReader::open(&server.url("/video_feed"));
    let mut seqs = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        seqs.push(sequence_of(&feed.next_part().unwrap().data));
    }
    let span = (seqs[seqs.len() - 1] - seqs[0] + 1) as f64;
    assert!(
        seqs.len() as f64 >= 0.9 * span,
        "the viewer got {} of {span} frames",
        seqs.len()
    );
    let st = server.status();
    assert!(st["fps"]["capture"].as_f64().unwrap() > 22.0, "{st}");
    assert!(
        st["recorder"]["dropped"].as_u64().unwrap() > 20,
        "the recorder's drops are counted: {st}"
    );
    assert_eq!(st["drops"]["encoder_busy"], 0, "{st}");
}
