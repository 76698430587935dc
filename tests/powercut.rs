//! Power cuts and damaged cards, the way they really fail, checked with real
//! players:
//!
//! - a `.part` left by `kill -9` of the real binary, with random 4 KiB pages
//!   among the writes after its last sync zeroed (pages that never reached
//!   the card), and sometimes cut short: recovery keeps every frame before
//!   the last sync, cuts at the first damaged frame, and ffmpeg decodes every
//!   kept frame without an error;
//! - two cameras recording when the plug is pulled: start-up recovery
//!   finishes both `.part` files, which decode, verify and still pair by
//!   name, and the next moment has both cameras again;
//! - 200 corrupted copies (flipped bytes anywhere, zeroed pages, cuts) fed to
//!   `blackbox recover`: nothing is deleted, every file kept opens in ffprobe
//!   and decodes in ffmpeg frame for frame, and `verify` calls it `ok`;
//! - corrupted finished files: `verify` never says `ok` about a file ffmpeg
//!   cannot play.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::encode;
use blackbox::frame::{PixelFormat, Size};
use blackbox::record::mkv::MkvWriter;
use blackbox::record::names::SegmentName;
use blackbox::record::scan::{self, Depth};
use common::{Server, TempDir};

/// A small deterministic generator (xorshift), so every run damages files
/// the same way and a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the players say about a file.
struct Played {
    probed_frames: Option<u64>,
    decoded: u64,
    errors: String,
}

fn play(path: &Path) -> Played {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/deps.sh)");
    let probed_frames = if probe.status.success() {
        String::from_utf8_lossy(&probe.stdout).trim().parse().ok()
    } else {
        None
    };
    let (decoded, errors) = common::ffmpeg_try_decode(path);
    Played {
        probed_frames,
        decoded,
        errors,
    }
}

fn verify_ok(path: &Path) -> (bool, String) {
    let out = Command::new(common::BIN)
        .arg("verify")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn recover(dir: &Path) -> String {
    let out = Command::new(common::BIN)
        .arg("recover")
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The JPEGs of a file's frames, every checksum checked.
fn jpegs(path: &Path) -> Vec<Vec<u8>> {
    let s = scan::scan(path, Depth::Checksums).unwrap();
    let f = File::open(path).unwrap();
    s.frames
        .iter()
        .map(|fr| scan::read_frame(&f, fr, true).unwrap())
        .collect()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v.sort();
    v
}

#[test]
fn a_power_cut_with_two_cameras_recovers_both_and_they_still_pair() {
    let dir = TempDir::new("powercut-two");
    let cfg = dir.0.join("blackbox.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 25\n\
             [[cameras]]\nid = \"rear\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\n\
             [record]\n{}segment_seconds = 3600\nsync_interval = \"1s\"\n",
            common::RESERVE
        ),
    )
    .unwrap();
    let data = dir.0.join("data");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let mut server = Server::start(&args);
    let st = server.wait_status(60, "both cameras recorded and synced", |st| {
        let c = &st["recorder"]["cameras"];
        st["recorder"]["segment_synced_bytes"].as_u64().unwrap_or(0) > 0
            && c[0]["segment_frames"].as_u64().unwrap_or(0) >= 50
            && c[1]["segment_frames"].as_u64().unwrap_or(0) >= 20
    });
    let names: Vec<String> = (0..2)
        .map(|i| {
            st["recorder"]["cameras"][i]["segment"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The plug is pulled.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let rec = data.join("recordings");
    for n in &names {
        assert!(
            rec.join(format!("{n}.part")).exists(),
            "kill -9 left {n}.part"
        );
    }
    // Power back: start-up recovery finishes both, under their names.
    let mut server = Server::start(&args);
    server.wait_status(60, "recording again", |st| {
        st["recorder"]["frames_written"].as_u64().unwrap_or(0) > 10
    });
    let log = server.terminate();
    for n in &names {
        let path = rec.join(n);
        assert!(path.exists(), "{n} was recovered:\n{log}");
        let kept = jpegs(&path);
        assert!(!kept.is_empty(), "{n}");
        let p = play(&path);
        assert_eq!(p.probed_frames, Some(kept.len() as u64), "{n}: ffprobe");
        assert_eq!(p.decoded, kept.len() as u64, "{n}: ffmpeg");
        assert!(p.errors.is_empty(), "{n}: ffmpeg said {}", p.errors);
        let (ok, text) = verify_ok(&path);
        assert!(ok, "{n}: {text}");
    }
    // Still one moment: the two recovered files pair by name.
    assert_eq!(
        names[0].strip_suffix("-front.mkv"),
        names[1].strip_suffix("-rear.mkv"),
        "{names:?}"
    );
    // And the next moment after the cut has both cameras again, numbered
    // past the recovered one.
    let seq = |name: &str| blackbox::record::names::parse(name).unwrap().seq;
    let after: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".mkv") && !names.contains(n))
        .collect();
    assert!(after.iter().any(|n| n.ends_with("-front.mkv")), "{after:?}");
    assert!(after.iter().any(|n| n.ends_with("-rear.mkv")), "{after:?}");
    assert!(after.iter().all(|n| seq(n) > seq(&names[0])), "{after:?}");
}

#[test]
fn a_power_cut_loses_nothing_before_the_last_sync() {
    let dir = TempDir::new("powercut-real");
    let cfg = dir.0.join("blackbox.toml");
    // One long segment, synced every second.
    std::fs::write(
        &cfg,
        format!(
            "[record]\n{}segment_seconds = 3600\nsync_interval = \"1s\"\n",
            common::RESERVE
        ),
    )
    .unwrap();
    let data = dir.0.join("data");
    let mut server = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--size",
        "320x240",
        "--fps",
        "25",
        "--quality",
        "85",
    ]);
    // Wait for a few syncs, note what is durable, let more frames follow
    // the last sync, and pull the plug, unless the segment changed in the
    // meantime (a segment boundary): then measure again.
    let (segment, synced) = loop {
        let st = server.wait_status(60, "seconds recorded and synced", |st| {
            st["recorder"]["segment_synced_bytes"].as_u64().unwrap() > 0
                && st["recorder"]["segment_frames"].as_u64().unwrap() >= 100
        });
        let segment = st["recorder"]["segment"].as_str().unwrap().to_string();
        let synced = st["recorder"]["segment_synced_bytes"].as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(700));
        if server.status()["recorder"]["segment"] == segment.as_str() {
            server.child.kill().unwrap();
            break (segment, synced);
        }
    };
    server.child.wait().unwrap();
    let part = data.join("recordings").join(format!("{segment}.part"));
    assert!(part.exists(), "kill -9 left {}", part.display());

    let original = scan::scan(&part, Depth::Checksums).unwrap();
    let all = jpegs(&part);
    let before_sync = original.frames.iter().filter(|f| f.end() <= synced).count();
    assert!(
        before_sync >= 50,
        "{before_sync} frames before the last sync"
    );
    assert!(
        original.data_end > synced + 4 * 4096,
        "frames were written after the last sync ({} > {synced})",
        original.data_end
    );
    let bytes = std::fs::read(&part).unwrap();
    // Pages wholly after the last sync, up to the end of the data.
    let first_page = synced.div_ceil(4096);
    let last_page = original.data_end.div_ceil(4096);

    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut cut_early = 0;
    for trial in 0..24 {
        let trial_dir = dir.0.join(format!("trial{trial}"));
        let rec = trial_dir.join("recordings");
        std::fs::create_dir_all(&rec).unwrap();
        let mut damaged = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let page = first_page + rng.below(last_page - first_page);
            let from = (page * 4096) as usize;
            let to = (from + 4096).min(damaged.len());
            damaged[from..to].fill(0);
        }
        if rng.below(3) == 0 {
            // The file's size on the card did not catch up either.
            let page = first_page + rng.below(last_page - first_page);
            damaged.truncate((page * 4096) as usize);
        }
        let copy = rec.join(format!("{segment}.part"));
        std::fs::write(&copy, &damaged).unwrap();
        let report = recover(&trial_dir);
        let kept_path = rec.join(&segment);
        assert!(kept_path.exists(), "trial {trial}: {report}");
        let kept = jpegs(&kept_path);
        assert!(
            kept.len() >= before_sync,
            "trial {trial}: kept {} frames of the {before_sync} before the last sync: {report}",
            kept.len()
        );
        assert_eq!(
            kept[..],
            all[..kept.len()],
            "trial {trial}: kept frames differ"
        );
        if kept.len() < all.len() {
            cut_early += 1;
        }
        let p = play(&kept_path);
        assert_eq!(
            p.probed_frames,
            Some(kept.len() as u64),
            "trial {trial}: ffprobe"
        );
        assert_eq!(p.decoded, kept.len() as u64, "trial {trial}: ffmpeg");
        assert!(
            p.errors.is_empty(),
            "trial {trial}: ffmpeg said {}",
            p.errors
        );
        let (ok, text) = verify_ok(&kept_path);
        assert!(ok, "trial {trial}: {text}");
    }
    assert!(
        cut_early >= 12,
        "only {cut_early} of 24 trials damaged a frame: the test is not testing"
    );
}

/// A segment of the test pattern, written as blackbox writes it; finished
/// or left open as a crash would.
fn segment(path: &Path, frames: u32, finish: bool) {
    let size = Size::new(320, 240);
    let mut src = TestSource::new(size, 25, PixelFormat::Yuyv, 80).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_713_960);
    let mut w = MkvWriter::create(path, size, t0).unwrap();
    for i in 0..frames {
        let img = src.render(u64::from(i), Timestamp::now());
        let jpeg = encode::encode_i420(img, 70).unwrap();
        w.write_frame(u64::from(i) * 40, &jpeg).unwrap();
    }
    if finish {
        w.finish(40).unwrap();
    }
}

/// Damages `bytes` one of several ways a card does.
fn corrupt(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let len = bytes.len() as u64;
    match rng.below(6) {
        0 | 1 => {
            let n = 1 + rng.below(8);
            let mut at = Vec::new();
            for _ in 0..n {
                // A quarter of the flips land in the header.
                let i = if rng.below(4) == 0 {
                    rng.below(512)
                } else {
                    rng.below(len)
                } as usize;
                bytes[i] ^= 1 << rng.below(8);
                at.push(i);
            }
            format!("flipped bits at {at:?}")
        }
        2 => {
            let i = rng.below(len) as usize;
            bytes[i] = rng.next() as u8;
            format!("a byte set at {i}")
        }
        3 => {
            let page = rng.below(len.div_ceil(4096)) as usize * 4096;
            let end = (page + 4096).min(bytes.len());
            bytes[page..end].fill(0);
            format!("page at {page} zeroed")
        }
        4 => {
            let at = rng.below(len) as usize;
            bytes.truncate(at);
            format!("cut at {at}")
        }
        _ => {
            let at = rng.below(len) as usize;
            let n = (1 + rng.below(64)) as usize;
            let end = (at + n).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b = rng.next() as u8;
            }
            format!("{n} random bytes at {at}")
        }
    }
}

#[test]
fn two_hundred_corrupted_copies_recover_to_files_that_play() {
    let dir = TempDir::new("powercut-fuzz");
    let open = dir.0.join("open.mkv.part");
    let done = dir.0.join("done.mkv");
    segment(&open, 50, false);
    segment(&done, 50, true);
    let sources = [std::fs::read(&open).unwrap(), std::fs::read(&done).unwrap()];
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_713_960);

    let mut rng = Rng(0xB1AC_B0C5_0000_0200);
    let mut what = Vec::new();
    // Four data directories of 50 copies each: four runs of `recover`.
    for batch in 0..4u64 {
        let rec = dir.0.join(format!("batch{batch}/recordings"));
        std::fs::create_dir_all(&rec).unwrap();
        for i in 0..50u64 {
            let n = batch * 50 + i;
            // Half are open segments, half finished ones a cut interrupted
            // before their rename.
            let mut bytes = sources[(n % 2) as usize].clone();
            what.push(corrupt(&mut bytes, &mut rng));
            let name = SegmentName {
                seq: n + 1,
                start: t0,
                camera: blackbox::record::names::CameraTag::NONE,
            };
            std::fs::write(rec.join(name.part_name()), &bytes).unwrap();
        }
    }
    let mut kept_files = 0;
    let mut damaged_files = 0;
    for batch in 0..4u64 {
        let root = dir.0.join(format!("batch{batch}"));
        let report = recover(&root);
        let kept = files(&root.join("recordings"), ".mkv");
        let damaged = files(&root.join("damaged"), ".mkv.part");
        assert!(
            files(&root.join("recordings"), ".part").is_empty(),
            "{report}"
        );
        assert_eq!(
            kept.len() + damaged.len(),
            50,
            "nothing is deleted: {report}"
        );
        for path in &kept {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let seq = blackbox::record::names::parse(&name).unwrap().seq;
            let how = &what[seq as usize - 1];
            let frames = scan::scan(path, Depth::Checksums).unwrap();
            assert!(frames.intact(), "{name} ({how}): {:?}", frames.problem);
            let n = frames.frames.len() as u64;
            let p = play(path);
            assert_eq!(p.probed_frames, Some(n), "{name} ({how}): ffprobe");
            assert_eq!(p.decoded, n, "{name} ({how}): ffmpeg decoded");
            assert!(p.errors.is_empty(), "{name} ({how}): ffmpeg: {}", p.errors);
            let (ok, text) = verify_ok(path);
            assert!(ok, "{name} ({how}): verify: {text}");
        }
        kept_files += kept.len();
        damaged_files += damaged.len();
    }
    assert!(
        kept_files >= 120,
        "{kept_files} of 200 kept, {damaged_files} damaged"
    );
}

#[test]
fn verify_never_calls_a_file_ok_that_ffmpeg_cannot_play() {
    let dir = TempDir::new("verify-fuzz");
    let done = dir.0.join("done.mkv");
    segment(&done, 40, true);
    let source = std::fs::read(&done).unwrap();
    let mut rng = Rng(0x0E5F_1F00_0000_0100);
    let mut said_ok = 0;
    for i in 0..100 {
        let mut bytes = source.clone();
        let how = corrupt(&mut bytes, &mut rng);
        let path = dir.0.join(format!("copy{i}.mkv"));
        std::fs::write(&path, &bytes).unwrap();
        let (ok, text) = verify_ok(&path);
        if ok {
            said_ok += 1;
            let p = play(&path);
            let frames = scan::scan(&path, Depth::Checksums).unwrap().frames.len() as u64;
            assert!(
                p.errors.is_empty() && p.decoded == frames && p.probed_frames == Some(frames),
                "copy {i} ({how}): verify said ok, ffmpeg said {:?} after {} of {frames} frames\n{text}",
                p.errors,
                p.decoded
            );
        }
    }
    // Flips inside Void padding change nothing a player reads: those copies
    // are rightly ok. Most damage is not.
    assert!(said_ok < 50, "{said_ok} of 100 damaged copies called ok");
}
