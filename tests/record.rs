//! The recorder end to end, on real files and file systems, asserting
//! correctness only (every frame accounted for, order, files that play),
//! never speed: recordings play in ffprobe/ffmpeg and follow each other in
//! order; `kill -9` keeps every frame written; loop recording and ENOSPC on
//! a small tmpfs; a card that turns read-only, and syncs that fail, are
//! reported once and recovered from; the wall clock stepping a day either
//! way; events, their coalescing and their quota; playback, downloads,
//! `Range`, and a segment moving to `events/` while it is read.
//!
//! Tests that mount a tmpfs need root (CI and the VM rig run as root).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blackbox::record::names;
use blackbox::record::scan::{self, Depth};
use common::{MjpegReader, Server, TempDir, ffmpeg_decode, ffprobe, get, request, sequence_of};
use serde_json::Value;

/// Writes a config with `[record]` lines (and any further sections) into
/// `dir`; returns the arguments that use it with `dir/data` as the data
/// directory.
fn config(dir: &Path, extra: &str) -> Vec<String> {
    let path = dir.join("blackbox.toml");
    // A test that sets its own reserve keeps it; the rest use a fixed one.
    let reserve = if extra.contains("min_free") {
        ""
    } else {
        common::RESERVE
    };
    std::fs::write(&path, format!("[record]\n{reserve}{extra}")).unwrap();
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
    start_env(dir, extra, more, &[])
}

fn start_env(dir: &Path, extra: &str, more: &[&str], env: &[(&str, &str)]) -> Server {
    let cfg = config(dir, extra);
    let mut flags = vec!["--size", "640x480", "--fps", "25"];
    flags.extend_from_slice(more);
    Server::start_with_env(&args(&cfg, &flags), env)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    // By sequence number: recording order whatever the clock said.
    v.sort_by_key(|p| seq_of(p));
    v
}

fn finished(dir: &Path) -> Vec<PathBuf> {
    files(dir, ".mkv")
}

fn seq_of(p: &Path) -> u64 {
    let name = p.file_name().unwrap().to_string_lossy();
    names::parse(&name)
        .or_else(|| names::parse_part(&name))
        .map_or(u64::MAX, |n| n.seq)
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().to_string()
}

/// The test-pattern sequence number of every frame of a file, in order.
fn sequences(path: &Path) -> Vec<u32> {
    let s = scan::scan(path, Depth::Checksums).unwrap();
    assert!(s.problem.is_none(), "{}: {:?}", path.display(), s.problem);
    let file = File::open(path).unwrap();
    s.frames
        .iter()
        .map(|f| sequence_of(&scan::read_frame(&file, f, true).unwrap()))
        .collect()
}

fn rec(st: &Value, key: &str) -> u64 {
    st["recorder"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("recorder.{key} in {st}"))
}

/// Frames that did not reach a recording, by counters that must explain
/// every sequence number missing from the recordings: dropped before or in
/// the recorder, lost to the card, or captured while recording was off
/// (`idle`: nobody wanted them, so they were not even encoded).
fn counted_drops(st: &Value) -> u64 {
    let d = &st["drops"];
    [
        "source",
        "encoder_busy",
        "encode_error",
        "convert",
        "corrupt",
    ]
    .iter()
    .map(|k| d[k].as_u64().unwrap())
    .sum::<u64>()
        + st["frames"]["idle"].as_u64().unwrap()
        + rec(st, "dropped")
        + rec(st, "frames_lost")
}

/// Every frame in `segs` (in recording order) is in order and appears once,
/// and every sequence number between the first and the last is either
/// recorded or counted as dropped. Returns the frames recorded.
fn account(segs: &[PathBuf], st: &Value) -> u64 {
    let mut all: Vec<u32> = Vec::new();
    for seg in segs {
        let seqs = sequences(seg);
        assert!(!seqs.is_empty(), "{} is empty", seg.display());
        all.extend(seqs);
    }
    for pair in all.windows(2) {
        assert!(
            pair[1] > pair[0],
            "frame {} follows {}: out of order or twice",
            pair[1],
            pair[0]
        );
    }
    let span = u64::from(all[all.len() - 1] - all[0]) + 1;
    let recorded = all.len() as u64;
    assert!(
        recorded + counted_drops(st) >= span,
        "{} of {span} sequence numbers are neither recorded ({recorded}) nor counted as dropped ({}): {st}",
        span - recorded,
        counted_drops(st)
    );
    recorded
}

fn plays(seg: &Path) {
    let (frames, w, h) = ffprobe(seg);
    assert_eq!((w, h), (640, 480), "{}", seg.display());
    let (decoded, errors) = ffmpeg_decode(seg);
    assert_eq!(decoded, frames, "{}", seg.display());
    assert!(errors.trim().is_empty(), "{}: {errors}", seg.display());
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

/// Writes the fault-injection file atomically (see src/faults.rs).
fn set_faults(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn recordings_play_and_every_frame_is_accounted_for() {
    let dir = TempDir::new("rec-play");
    let server = start(&dir.0, "segment_seconds = 2\n", &[]);
    server.wait_status(60, "three finished segments", |st| {
        rec(st, "segments_finished") >= 3
    });
    let (code, _, _) = request("POST", &server.url("/api/recording/stop"));
    assert_eq!(code, 200);
    let st = server.wait_status(30, "the recorder to stop", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    let recordings = dir.0.join("data/recordings");
    let segs = finished(&recordings);
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(files(&recordings, ".part").is_empty());
    let mut total = 0;
    for seg in &segs {
        plays(seg);
        total += ffprobe(seg).0;
    }
    assert_eq!(
        total,
        rec(&st, "frames_written"),
        "every written frame plays"
    );
    assert_eq!(account(&segs, &st), total);
    // A segment ends before the 2 s boundary after its start and the next
    // one starts at or after it (by each file's own start time, in ns).
    for pair in segs.windows(2) {
        let a = scan::scan(&pair[0], Depth::Structure).unwrap();
        let b = scan::scan(&pair[1], Depth::Structure).unwrap();
        let a_start = a.started.unwrap();
        let a_last = a_start + Duration::from_millis(a.frames.last().unwrap().ts_ms);
        let ms = a_start
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let boundary = std::time::UNIX_EPOCH + Duration::from_millis((ms / 2000 + 1) as u64 * 2000);
        assert!(
            a_last < boundary && b.started.unwrap() >= boundary,
            "{} ends after, or {} starts before, the boundary",
            name_of(&pair[0]),
            name_of(&pair[1])
        );
    }
}

#[test]
fn kill_9_keeps_every_frame_written() {
    let dir = TempDir::new("rec-kill");
    let cfg = config(&dir.0, "sync_interval = \"1s\"\n");
    let args = args(&cfg, &["--size", "640x480", "--fps", "25"]);
    let mut server = Server::start(&args);
    let before = server.wait_status(60, "frames on disk", |st| rec(st, "frames_written") > 80);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let recordings = dir.0.join("data/recordings");
    assert_eq!(files(&recordings, ".part").len(), 1, "a .part is left");
    drop(server);

    // Start again: the .part is recovered before recording resumes.
    let server = Server::start(&args);
    let st = server.wait_status(60, "recording again", |st| rec(st, "frames_written") > 0);
    // The segments written before the kill (more than one if a segment
    // boundary fell in the run), the last of them recovered.
    let segs = finished(&recordings);
    assert!(!segs.is_empty());
    let mut frames = 0;
    let mut last = None;
    for seg in &segs {
        plays(seg);
        let seqs = sequences(seg);
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "in order");
        assert!(last.is_none_or(|l| seqs[0] > l), "in order across segments");
        last = seqs.last().copied();
        frames += seqs.len() as u64;
    }
    assert!(
        frames >= rec(&before, "frames_written"),
        "{frames} frames kept, {} were written before the kill",
        rec(&before, "frames_written")
    );
    assert!(
        std::fs::read_dir(dir.0.join("data/damaged"))
            .unwrap()
            .next()
            .is_none()
    );
    // The new segment continues the numbering.
    let current = st["recorder"]["segment"].as_str().unwrap();
    assert!(names::parse(current).unwrap().seq > seq_of(segs.last().unwrap()));
}

/// A tmpfs of `size`, unmounted on drop.
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

#[test]
fn loop_recording_deletes_the_oldest_and_never_pauses() {
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
    let mut seen: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let st = server.status();
        // Finished segments stay within the budget (the open one is held
        // to it too, every second, so it may pass it by a second's worth).
        let finished_bytes = rec(&st, "recordings_bytes") - rec(&st, "segment_bytes");
        assert!(finished_bytes <= budget, "over budget: {st}");
        for p in finished(&recordings) {
            let s = seq_of(&p);
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        // Oldest first: what is left is always the newest run of segments.
        seen.sort_unstable();
        let left: Vec<u64> = finished(&recordings).iter().map(|p| seq_of(p)).collect();
        if let Some(first) = left.first() {
            let from = seen.iter().position(|s| s == first).unwrap();
            assert_eq!(
                &seen[from..from + left.len()],
                &left[..],
                "a newer segment was deleted before an older one"
            );
        }
        if rec(&st, "segments_deleted") >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop never deleted 5: {st}");
    }
    request("POST", &server.url("/api/recording/stop"));
    let st = server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    let segs = finished(&recordings);
    assert!(segs.len() >= 2);
    // Recording never paused: the segments left are contiguous, with any
    // gap explained by counted drops.
    account(&segs, &st);
    assert_eq!(rec(&st, "frames_lost"), 0, "{st}");
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
    let st = server.wait_status(120, "the disk to fill and space to be freed", |st| {
        rec(st, "segments_deleted") >= 2
    });
    let written = rec(&st, "frames_written");
    let st = server.wait_status(120, "recording to go on", |st| {
        rec(st, "frames_written") > written + 50
    });
    assert_eq!(st["recorder"]["recording"], true);
    assert!(
        mnt.join("other-file").exists(),
        "only recordings are deleted"
    );
    for seg in finished(&mnt.join("recordings")) {
        plays(&seg);
    }
}

/// Counts log lines containing `needle`.
fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// An ext4 file system in an image on a loop device, mounted with
/// `errors=remount-ro` as the appliance mounts its data partition;
/// unmounted on drop.
struct Ext4 {
    mnt: PathBuf,
    device: String,
}

impl Ext4 {
    fn mount(dir: &Path, size: &str) -> Ext4 {
        let img = dir.join("card.img");
        let mnt = dir.join("data");
        std::fs::create_dir_all(&mnt).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?} (this test needs root and loop devices): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run(Command::new("truncate").args(["-s", size]).arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&img)
            .arg(&mnt));
        let source = run(Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&mnt));
        Ext4 {
            mnt,
            device: source.rsplit('/').next().unwrap_or_default().to_string(),
        }
    }

    /// What the kernel does when the card returns errors: ext4 goes
    /// read-only, under every open file.
    fn fail(&self) {
        std::fs::write(
            format!("/sys/fs/ext4/{}/trigger_fs_error", self.device),
            "test\n",
        )
        .unwrap();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[test]
fn a_card_that_turns_read_only_is_reported_once_and_counted() {
    let dir = TempDir::new("rec-readonly");
    let card = Ext4::mount(&dir.0, "128M");
    let mut server = start(&dir.0, "segment_seconds = 2\n", &[]);
    server.wait_status(60, "a finished segment", |st| {
        rec(st, "segments_finished") >= 1
    });
    // Ready: streaming, written and synced.
    let (code, _, body) = get(&server.url("/healthz?ready"));
    assert_eq!((code, body.as_slice()), (200, b"ready\n".as_slice()));
    card.fail();
    let st = server.wait_status(60, "the failure to show", |st| {
        st["recorder"]["state"] == "failing" && rec(st, "frames_lost") > 50
    });
    let failure = &st["recorder"]["failure"];
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "the status says why: {st}"
    );
    assert!(failure["frames_lost"].as_u64().unwrap() > 50, "{st}");
    assert_eq!(st["recorder"]["recording"], true);
    let (_, _, body) = get(&server.url("/metrics"));
    let metrics = String::from_utf8(body).unwrap();
    assert!(metrics.contains("blackbox_recorder_failing 1"), "{metrics}");
    // Alive (every stage turns), but not ready: the update gate reads this.
    let (code, _, body) = get(&server.url("/healthz"));
    assert_eq!((code, body.as_slice()), (200, b"ok\n".as_slice()));
    let (code, _, body) = get(&server.url("/healthz?ready"));
    assert_eq!(
        (code, body.as_slice()),
        (503, b"recording-failing\n".as_slice())
    );
    // Still serving, still capturing.
    let captured = st["frames"]["captured"].as_u64().unwrap();
    server.wait_status(30, "capture to go on", |st| {
        st["frames"]["captured"].as_u64().unwrap() > captured + 25
    });
    let log = server.terminate();
    assert_eq!(
        lines_with(&log, "recorder: writing frames"),
        1,
        "one line for the whole run of failures:\n{log}"
    );
    // What was finished before the card failed still plays.
    for seg in finished(&card.mnt.join("recordings")) {
        plays(&seg);
    }
}

#[test]
fn a_card_full_of_other_files_fails_honestly_and_recovers() {
    let dir = TempDir::new("rec-full");
    let mnt = dir.0.join("data");
    let _fs = Tmpfs::mount(&mnt, "16m");
    let mut server = start(
        &dir.0,
        "segment_seconds = 3600\nmax_usage = \"100%\"\nmin_free = \"0\"\n",
        &[],
    );
    server.wait_status(60, "recording", |st| rec(st, "frames_written") > 10);
    // Somebody else's file takes every byte left; the recorder has nothing
    // of its own to delete but the segment it is writing.
    let hog = mnt.join("other-file");
    let free = blackbox::record::store::disk(&mnt).unwrap().free;
    std::fs::write(&hog, vec![1u8; free as usize]).unwrap_or(());
    let st = server.wait_status(60, "the failure to show", |st| {
        st["recorder"]["state"] == "failing" && rec(st, "frames_lost") > 25
    });
    assert!(
        st["recorder"]["failure"]["error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{st}"
    );
    std::fs::remove_file(&hog).unwrap();
    let lost = rec(&st, "frames_lost");
    let st = server.wait_status(60, "recording to resume", |st| {
        st["recorder"]["state"] == "recording"
    });
    assert!(st["recorder"]["failure"].is_null(), "cleared: {st}");
    assert!(rec(&st, "frames_lost") >= lost);
    let written = rec(&st, "frames_written");
    server.wait_status(60, "frames written again", |st| {
        rec(st, "frames_written") > written + 25
    });
    request("POST", &server.url("/api/recording/stop"));
    let st = server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    let log = server.terminate();
    assert_eq!(
        lines_with(&log, "recorder: writing frames"),
        2,
        "one line when the failures start, one when they stop:\n{log}"
    );
    assert!(log.contains("working again after"), "{log}");
    let segs = finished(&mnt.join("recordings"));
    for seg in &segs {
        plays(seg);
    }
    // Every frame is in a file or counted as lost or dropped.
    account(&segs, &st);
}

#[test]
fn failed_syncs_end_the_segment_and_are_counted() {
    let dir = TempDir::new("rec-syncfail");
    let faults = dir.0.join("faults");
    set_faults(&faults, "");
    let mut server = start_env(
        &dir.0,
        "segment_seconds = 3600\nsync_interval = \"200ms\"\n",
        &[],
        &[("BLACKBOX_FAULTS", faults.to_str().unwrap())],
    );
    let st = server.wait_status(60, "recording", |st| rec(st, "frames_written") > 20);
    let first = st["recorder"]["segment"].as_str().unwrap().to_string();
    set_faults(&faults, "fail_sync = 1\n");
    let st = server.wait_status(60, "a failed sync", |st| {
        rec(st, "sync_errors") >= 1 && rec(st, "segments_recovered") >= 1
    });
    assert_ne!(
        st["recorder"]["segment"],
        first.as_str(),
        "a new segment: {st}"
    );
    set_faults(&faults, "fail_dir_sync = 1\n");
    let errors = rec(&st, "sync_errors");
    // Closing and opening a segment fsync the directory. (A start right
    // after a stop may reach the recorder as the start alone: only the
    // latest wish counts. So wait for the stop to take effect.)
    request("POST", &server.url("/api/recording/stop"));
    server.wait_status(60, "stopped", |st| st["recorder"]["state"] == "stopped");
    request("POST", &server.url("/api/recording/start"));
    server.wait_status(60, "a failed directory sync", |st| {
        rec(st, "sync_errors") >= errors + 2
    });
    set_faults(&faults, "");
    let st = server.wait_status(60, "syncing again", |st| {
        st["recorder"]["state"] == "recording" && rec(st, "segment_synced_bytes") > 0
    });
    let (_, _, body) = get(&server.url("/metrics"));
    let metrics = String::from_utf8(body).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("blackbox_recorder_sync_errors_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.ends_with(&format!(" {}", rec(&st, "sync_errors"))),
        "{line}"
    );
    request("POST", &server.url("/api/recording/stop"));
    let st = server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    let log = server.terminate();
    // Each run of failures: one line as it begins, one as it ends.
    for run in [
        "recorder: syncing segments",
        "recorder: syncing the recordings directory",
    ] {
        assert_eq!(lines_with(&log, run), 2, "{run}:\n{log}");
    }
    let segs = finished(&dir.0.join("data/recordings"));
    assert!(segs.len() >= 3, "{segs:?}");
    for seg in &segs {
        plays(seg);
    }
    // Ending segments early lost nothing: every frame is accounted for.
    account(&segs, &st);
}

#[test]
fn the_wall_clock_stepping_a_day_either_way() {
    let dir = TempDir::new("rec-clock");
    let faults = dir.0.join("faults");
    set_faults(&faults, "");
    let server = start_env(
        &dir.0,
        "segment_seconds = 2\nmax_usage = \"3MiB\"\n",
        &[],
        &[("BLACKBOX_FAULTS", faults.to_str().unwrap())],
    );
    let recordings = dir.0.join("data/recordings");
    // Every segment's name, as they appear (the loop deletes the oldest).
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let finished_after = |n: u64| {
        let now = rec(&server.status(), "segments_finished");
        server.wait_status(60, "segments to finish", |st| {
            for p in finished(&recordings) {
                seen.borrow_mut().insert(seq_of(&p), name_of(&p));
            }
            rec(st, "segments_finished") >= now + n
        });
    };
    finished_after(2);
    set_faults(&faults, "clock_offset_ms = -86400000\n");
    finished_after(3);
    set_faults(&faults, "clock_offset_ms = 86400000\n");
    finished_after(3);
    request("POST", &server.url("/api/recording/stop"));
    let st = server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    assert!(rec(&st, "segments_deleted") >= 1, "the loop ran: {st}");
    let segs = finished(&recordings);
    for p in &segs {
        seen.borrow_mut().insert(seq_of(p), name_of(p));
    }
    let day = Duration::from_secs(86_400);
    let starts: Vec<_> = seen
        .borrow()
        .values()
        .map(|n| names::parse(n).unwrap().start)
        .collect();
    // The names follow the clock: back a day, then forward two.
    let back = starts.windows(2).any(|w| w[0] > w[1] + day / 2);
    let forward = starts.windows(2).any(|w| w[1] > w[0] + day);
    assert!(back && forward, "names: {:?}", seen.borrow());
    // No segment grew past its 2 s (by the monotonic timestamps inside).
    for seg in &segs {
        let s = scan::scan(seg, Depth::Structure).unwrap();
        let span = s.frames.last().unwrap().ts_ms;
        assert!(span < 2000, "{} spans {span} ms", name_of(seg));
        plays(seg);
    }
    // Loop deletion went by recording order: what is left is the newest
    // run of sequence numbers, though some of them have older names.
    let seqs: Vec<u64> = segs.iter().map(|p| seq_of(p)).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let current = rec(&st, "segments_finished") + rec(&st, "segments_recovered");
    assert!(
        *seqs.last().unwrap() >= current,
        "{seqs:?} ({current} made)"
    );
    // Every frame recorded across both steps.
    account(&segs, &st);
}

#[test]
fn events_are_kept_apart_and_survive_the_loop() {
    let dir = TempDir::new("rec-events");
    let server = start(
        &dir.0,
        "segment_seconds = 2\nmax_usage = \"2MiB\"\n[event]\npre_seconds = 2\npost_seconds = 2\nmax_usage = \"64MiB\"\n",
        &["--quality", "90"],
    );
    server.wait_status(60, "a finished segment", |st| {
        rec(st, "segments_finished") >= 2
    });
    let (code, _, body) = request("POST", &server.url("/api/events"));
    assert_eq!(code, 202);
    let ev: Value = serde_json::from_slice(&body).unwrap();
    let (from, to) = (ev["from"].as_f64().unwrap(), ev["to"].as_f64().unwrap());
    // Let the window close and the loop rule run over plenty of segments.
    server.wait_status(120, "the loop rule", |st| rec(st, "segments_deleted") >= 6);
    let events = finished(&dir.0.join("data/events"));
    assert!(events.len() >= 2, "protected: {events:?}");
    // Together they cover the whole window.
    let mut covered_from = f64::MAX;
    let mut covered_to = 0.0f64;
    for seg in &events {
        let s = scan::scan(seg, Depth::Checksums).unwrap();
        assert!(s.intact());
        let start = s
            .started
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        covered_from = covered_from.min(start);
        covered_to = covered_to.max(start + s.duration_ms.unwrap() / 1000.0);
    }
    assert!(
        covered_from <= from + 0.1 && covered_to >= to - 0.1,
        "window {from}..{to}, kept {covered_from}..{covered_to}"
    );
    // A signal is an event too.
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let st = server.wait_status(30, "the SIGUSR1 event", |st| {
        st["recorder"]["events"].as_array().unwrap().len() >= 2
    });
    assert_eq!(st["recorder"]["events"][1]["reason"], "signal");
}

#[test]
fn a_flood_of_events_coalesces_and_costs_no_memory() {
    let dir = TempDir::new("rec-flood");
    let server = start(&dir.0, "segment_seconds = 2\n", &[]);
    server.wait_status(60, "recording", |st| rec(st, "frames_written") > 10);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for _ in 0..1000 {
        let res = agent.post(&server.url("/api/events")).send_empty().unwrap();
        assert_eq!(res.status().as_u16(), 202);
    }
    let st = server.wait_status(30, "every trigger counted", |st| {
        st["recorder"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["count"].as_u64().unwrap())
            .sum::<u64>()
            >= 1000
    });
    let events = st["recorder"]["events"].as_array().unwrap();
    assert!(events.len() <= 20, "{} entries", events.len());
    let (_, _, body) = get(&server.url("/api/status"));
    assert!(body.len() < 16 * 1024, "status is {} bytes", body.len());
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
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..10 {
        let before = rec(&server.status(), "segments_finished");
        server.wait_status(60, "a segment", |st| rec(st, "segments_finished") > before);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
        for p in finished(&events) {
            if !seen.contains(&seq_of(&p)) {
                seen.push(seq_of(&p));
            }
        }
    }
    let before = rec(&server.status(), "segments_finished");
    server.wait_status(60, "the last window to close", |st| {
        rec(st, "segments_finished") > before + 1
    });
    let left = finished(&events);
    let bytes: u64 = left.iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(bytes <= 3 << 20, "events use {bytes} bytes, quota 3 MiB");
    let left: Vec<u64> = left.iter().map(|p| seq_of(p)).collect();
    for s in &left {
        if !seen.contains(s) {
            seen.push(*s);
        }
    }
    assert!(seen.len() > left.len(), "the quota never deleted an event");
    seen.sort_unstable();
    assert_eq!(&seen[seen.len() - left.len()..], &left[..], "oldest first");
}

fn ranged(server: &Server, name: &str, range: &str) -> (u16, Option<String>, Vec<u8>) {
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
    (code, cr, res.into_body().read_to_vec().unwrap())
}

#[test]
fn playback_downloads_and_names() {
    let dir = TempDir::new("rec-http");
    let server = start(&dir.0, "segment_seconds = 3600\n", &[]);
    server.wait_status(60, "six seconds recorded", |st| {
        rec(st, "frames_written") >= 150
    });
    // Deleting the segment being written is refused.
    let st = server.status();
    let current = st["recorder"]["segment"].as_str().unwrap().to_string();
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{current}")));
    assert_eq!(code, 409);
    request("POST", &server.url("/api/recording/stop"));
    server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });

    let list = common::testkit_get_json(&server.url("/api/recordings"));
    // The longest (an hour boundary may have split the recording in two).
    let entry = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|e| e["frames"].as_u64().unwrap())
        .unwrap()
        .clone();
    let name = entry["name"].as_str().unwrap().to_string();
    assert!(entry["duration_seconds"].as_f64().unwrap() > 2.0, "{entry}");
    assert!(entry["frames"].as_u64().unwrap() >= 75, "{entry}");
    let path = dir.0.join("data/recordings").join(&name);

    // play?t=3 starts at the frame nearest 3 s, in order, and never runs
    // ahead of the recorded pace.
    let scanned = scan::scan(&path, Depth::Checksums).unwrap();
    let file = File::open(&path).unwrap();
    let nearest = scanned
        .frames
        .iter()
        .min_by_key(|f| f.ts_ms.abs_diff(3000))
        .unwrap();
    let want = sequence_of(&scan::read_frame(&file, nearest, true).unwrap());
    // Measured from the request: the server can send frame k no sooner than
    // its recorded distance from the first, whatever the host's speed.
    let t0 = Instant::now();
    let mut feed = MjpegReader::open(&server.url(&format!("/recordings/{name}/play?t=3")));
    let first = feed.next_part().unwrap();
    let ts0: f64 = first.headers["x-timestamp"].parse().unwrap();
    assert_eq!(sequence_of(&first.data), want);
    let mut last = want;
    for _ in 0..30 {
        let part = feed.next_part().unwrap();
        let seq = sequence_of(&part.data);
        assert!(seq > last, "replayed out of order");
        last = seq;
        let ts: f64 = part.headers["x-timestamp"].parse().unwrap();
        assert!(
            t0.elapsed().as_secs_f64() >= (ts - ts0) - 0.002,
            "replay ran ahead of the recording"
        );
    }
    drop(feed);

    // Downloads: whole, and by range (RFC 9110).
    let bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    let (code, headers, body) = get(&server.url(&format!("/recordings/{name}")));
    assert_eq!(code, 200);
    assert_eq!(body, bytes);
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{name}\"")
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    let (code, cr, body) = ranged(&server, &name, "bytes=100-1099");
    assert_eq!(code, 206);
    assert_eq!(cr.unwrap(), format!("bytes 100-1099/{len}"));
    assert_eq!(body, bytes[100..1100]);
    let (code, _, body) = ranged(&server, &name, "bytes=-500");
    assert_eq!(code, 206);
    assert_eq!(body, bytes[len - 500..]);
    let (code, cr, body) = ranged(&server, &name, "bytes=0-18446744073709551616");
    assert_eq!(code, 206, "a last byte past the end is clamped");
    assert_eq!(cr.unwrap(), format!("bytes 0-{}/{len}", len - 1));
    assert_eq!(body, bytes);
    for ignored in ["bytes=9-2", "bytes=x-", "pages=1-2", "bytes=0-1,5-6"] {
        let (code, cr, body) = ranged(&server, &name, ignored);
        assert_eq!((code, cr), (200, None), "{ignored}");
        assert_eq!(body.len(), len);
    }
    let (code, cr, _) = ranged(&server, &name, &format!("bytes={}-", len + 10));
    assert_eq!(code, 416);
    assert_eq!(cr.unwrap(), format!("bytes */{len}"));

    // Names that try to leave the data directory, and unknown ones.
    for bad in [
        "/recordings/..%2F..%2Fetc%2Fpasswd",
        "/recordings/%2Fetc%2Fpasswd",
        "/recordings/x.mkv/play",
        "/api/recordings/..%2Fblackbox.toml",
    ] {
        let (code, _, _) = get(&server.url(bad));
        assert_eq!(code, 400, "{bad}");
    }
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    use std::io::{Read, Write};
    raw.write_all(
        b"GET /recordings/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    let _ = raw.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 404"),
        "{reply}"
    );
    assert!(!reply.contains("root:"), "{reply}");
    let (code, _, _) = get(&server.url("/recordings/99999999-20990101T000000Z.mkv"));
    assert_eq!(code, 404);

    // Delete a finished one.
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{name}")));
    assert_eq!(code, 204);
    assert!(!path.exists());
    let (code, _, _) = request("DELETE", &server.url(&format!("/api/recordings/{name}")));
    assert_eq!(code, 404);
}

#[test]
fn downloads_and_replays_carry_on_while_their_segment_is_protected() {
    let dir = TempDir::new("rec-move");
    let server = start(&dir.0, "segment_seconds = 3600\n", &["--quality", "95"]);
    server.wait_status(60, "frames", |st| rec(st, "frames_written") >= 100);
    request("POST", &server.url("/api/recording/stop"));
    let st = server.wait_status(30, "stopped", |st| {
        st["recorder"]["state"] == "stopped" && st["recorder"]["segment"].is_null()
    });
    let list = common::testkit_get_json(&server.url("/api/recordings"));
    let name = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|e| e["bytes"].as_u64().unwrap())
        .and_then(|e| e["name"].as_str())
        .unwrap()
        .to_string();
    let path = dir.0.join("data/recordings").join(&name);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 256 << 10, "{} bytes", bytes.len());

    // A download read slowly, and a replay, both started before the move.
    let url = server.url(&format!("/recordings/{name}"));
    let mut download = ureq::get(&url).call().unwrap().into_body().into_reader();
    let mut head = vec![0u8; 64 * 1024];
    use std::io::Read;
    download.read_exact(&mut head).unwrap();
    let mut replay = MjpegReader::open(&server.url(&format!("/recordings/{name}/play")));
    let first = sequence_of(&replay.next_part().unwrap().data);

    let (code, _, _) = request(
        "POST",
        &server.url(&format!("/api/recordings/{name}/protect")),
    );
    assert_eq!(code, 200);
    assert!(!path.exists() && dir.0.join("data/events").join(&name).exists());

    let mut rest = Vec::new();
    download.read_to_end(&mut rest).unwrap();
    head.extend(rest);
    assert_eq!(head, bytes, "the download finished whole");
    let mut last = first;
    for _ in 0..10 {
        let seq = sequence_of(&replay.next_part().unwrap().data);
        assert!(seq > last);
        last = seq;
    }
    // And new requests find it in its new place.
    let (code, _, body) = get(&url);
    assert_eq!((code, body.len()), (200, bytes.len()));
    let _ = st;
}

#[test]
fn a_slow_disk_drops_recorder_frames_counted_and_never_stalls_capture() {
    let dir = TempDir::new("rec-slow");
    let faults = dir.0.join("faults");
    set_faults(&faults, "slow_write_ms = 100\n");
    let server = start_env(
        &dir.0,
        "queue_frames = 10\n",
        &[],
        &[("BLACKBOX_FAULTS", faults.to_str().unwrap())],
    );
    let mut feed = MjpegReader::open(&server.url("/video_feed"));
    let mut seqs = Vec::new();
    while seqs.len() < 60 {
        seqs.push(sequence_of(&feed.next_part().unwrap().data));
    }
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "the live view in order"
    );
    let st = server.wait_status(60, "the recorder's drops", |st| rec(st, "dropped") > 20);
    // Writing takes 100 ms a frame, so the recorder keeps at most ten a
    // second; the rest were dropped from its queue, and counted.
    assert!(rec(&st, "frames_written") > 0);
    assert_eq!(rec(&st, "frames_lost"), 0, "dropped, not lost: {st}");
}

#[test]
fn the_data_directory_is_ours_alone() {
    let dir = TempDir::new("rec-ours");
    let recordings = dir.0.join("data/recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    // Planted before start: a link to a system file and a FIFO, under names
    // a segment could have, and a damaged file of 3 MiB.
    let link = "00000001-20261126T172600Z.mkv";
    let fifo = "00000002-20261126T172700Z.mkv";
    std::os::unix::fs::symlink("/etc/hostname", recordings.join(link)).unwrap();
    nix::unistd::mkfifo(
        &recordings.join(fifo),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let damaged = dir.0.join("data/damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(
        damaged.join("00000003-20261126T172800Z.mkv.part"),
        vec![0u8; 3 << 20],
    )
    .unwrap();
    let mut server = start(&dir.0, "segment_seconds = 1\nmax_usage = \"2MiB\"\n", &[]);
    server.wait_status(60, "a segment", |st| rec(st, "segments_finished") >= 2);
    let list = common::testkit_get_json(&server.url("/api/recordings"));
    let names: Vec<&str> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&link) && !names.contains(&fifo),
        "{names:?}"
    );
    for name in [link, fifo] {
        let (code, _, body) = get(&server.url(&format!("/recordings/{name}")));
        assert_eq!(code, 404, "{name}: {}", String::from_utf8_lossy(&body));
    }
    // The damaged file counted against the 2 MiB budget, and went first.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&damaged).unwrap().next().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "damaged/ was never pruned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A finished segment swapped for a link while the server runs is not
    // served either.
    let seg = finished(&recordings)
        .into_iter()
        .find(|p| p.symlink_metadata().unwrap().is_file())
        .unwrap();
    let seg_name = seg.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&seg).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &seg).unwrap();
    let (code, _, _) = get(&server.url(&format!("/recordings/{seg_name}")));
    assert_eq!(code, 404, "a link under a segment's name");
    std::fs::remove_file(&seg).unwrap();

    // `recover` refuses while the service holds the directory, for the data
    // directory and for its recordings/ alike.
    for target in [dir.0.join("data"), recordings.clone()] {
        let out = std::process::Command::new(common::BIN)
            .arg("recover")
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{target:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use by another blackbox"), "{err}");
    }
    // So does a second blackbox on the same card.
    let out = std::process::Command::new(common::BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.0.join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another blackbox"));
    let log = server.terminate();
    assert_eq!(
        log.matches("not regular files and are ignored").count(),
        1,
        "logged once: {log}"
    );
    // Once it has stopped, recover may run.
    let out = std::process::Command::new(common::BIN)
        .arg("recover")
        .arg(dir.0.join("data"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
