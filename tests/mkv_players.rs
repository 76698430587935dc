//! Recordings checked by real players: ffprobe counts the frames and reads
//! the size, ffmpeg decodes every frame; and files cut anywhere (a power
//! cut) are repaired so that both still play every complete frame.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use common::{ffmpeg_decode, ffprobe};

use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::encode;
use blackbox::frame::{PixelFormat, Size};
use blackbox::record::mkv::MkvWriter;
use blackbox::record::scan::{self, Depth};
use common::TempDir;

/// Writes `n` test-pattern frames at 25 fps; returns the end offset of each
/// frame's block.
fn write_segment(path: &Path, size: Size, n: u32, finish: bool) -> Vec<u64> {
    let mut src = TestSource::new(size, 25, PixelFormat::Yuyv, 80).unwrap();
    let mut w = MkvWriter::create(path, size, SystemTime::now()).unwrap();
    let mut ends = Vec::new();
    for i in 0..n {
        let img = src.render(u64::from(i), Timestamp::now());
        let jpeg = encode::encode_i420(img, 60).unwrap();
        w.write_frame(u64::from(i) * 40, &jpeg).unwrap();
        ends.push(w.bytes());
    }
    if finish {
        w.finish(40).unwrap();
    }
    ends
}

#[test]
fn a_finished_segment_plays_in_ffprobe_and_ffmpeg() {
    let dir = TempDir::new("players");
    let path = dir.0.join("00000001-20261126T172600Z.mkv");
    write_segment(&path, Size::new(640, 480), 130, true);
    assert_eq!(ffprobe(&path), (130, 640, 480));
    let (decoded, errors) = ffmpeg_decode(&path);
    assert_eq!(decoded, 130);
    assert!(errors.trim().is_empty(), "ffmpeg reported: {errors}");
    // The duration is the one written (130 frames at 25 fps).
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let duration: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((duration - 5.2).abs() < 0.05, "duration {duration}");
}

#[test]
fn a_file_cut_anywhere_is_repaired_and_keeps_every_complete_frame() {
    let dir = TempDir::new("powercut");
    let original = dir.0.join("original.mkv.part");
    let ends = write_segment(&original, Size::new(320, 240), 80, false);
    let bytes = std::fs::read(&original).unwrap();
    let scan = scan::scan(&original, Depth::Checksums).unwrap();

    // Every cluster boundary, just before and after it, and 200 offsets
    // spread pseudo-randomly over the file.
    let mut cuts: Vec<u64> = Vec::new();
    for c in &scan.clusters {
        cuts.extend([c.offset - 1, c.offset, c.offset + 1, c.offset + 13]);
    }
    let first = ends[0] - 200;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cuts.push(first + x % (ends[ends.len() - 1] - first));
    }
    let mut checked_with_players = 0;
    for (i, &cut) in cuts.iter().enumerate() {
        let path = dir.0.join(format!("cut{i}.mkv"));
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count() as u64;
        let s = scan::scan(&path, Depth::Checksums).unwrap();
        assert_eq!(s.frames.len() as u64, complete, "cut at byte {cut}");
        if complete == 0 {
            assert!(!s.usable());
            continue;
        }
        let repaired = scan::repair(&path, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(repaired.summary.frames, complete);
        // Every repaired file plays in both players, every frame decoding.
        assert_eq!(ffprobe(&path).0, complete, "ffprobe after a cut at {cut}");
        let (decoded, errors) = ffmpeg_decode(&path);
        assert_eq!(decoded, complete, "ffmpeg after a cut at {cut}");
        assert!(errors.trim().is_empty(), "cut at {cut}: {errors}");
        let again = scan::scan(&path, Depth::Checksums).unwrap();
        assert!(again.intact(), "{:?}", again.problem);
        checked_with_players += 1;
        std::fs::remove_file(&path).unwrap();
    }
    assert!(
        checked_with_players >= 200,
        "{checked_with_players} repaired files played"
    );
}

#[test]
fn recover_and_verify_on_the_command_line() {
    let dir = TempDir::new("recover-cli");
    let recordings = dir.0.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    // An interrupted segment cut mid-frame, and a file with nothing in it.
    let full = dir.0.join("full.mkv.part");
    let ends = write_segment(&full, Size::new(320, 240), 60, false);
    let bytes = std::fs::read(&full).unwrap();
    let cut_at = (ends[40] + ends[41]) / 2;
    let part = recordings.join("00000001-20261126T172600Z.mkv.part");
    std::fs::write(&part, &bytes[..cut_at as usize]).unwrap();
    let garbage = recordings.join("00000002-20261126T172700Z.mkv.part");
    std::fs::write(&garbage, b"power went out before the header was written").unwrap();

    let verify = |p: &Path| {
        Command::new(common::BIN)
            .arg("verify")
            .arg(p)
            .output()
            .unwrap()
    };
    let out = verify(&part);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a cut file is damaged until recovered"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("frames:    41"));

    let out = Command::new(common::BIN)
        .arg("recover")
        .arg(&dir.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one file was damaged: {text}");
    assert!(text.contains("recovered (41 frames"), "{text}");
    assert!(text.contains("damaged"), "{text}");
    let recovered = recordings.join("00000001-20261126T172600Z.mkv");
    assert!(recovered.exists() && !part.exists());
    assert!(
        dir.0
            .join("damaged/00000002-20261126T172700Z.mkv.part")
            .exists(),
        "moved, not deleted"
    );
    let out = verify(&recovered);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ffprobe(&recovered).0, 41);

    let out = Command::new(common::BIN)
        .arg("recover")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to recover"));
    let out = verify(&dir.0.join("no-such.mkv"));
    assert_eq!(out.status.code(), Some(1));
}
