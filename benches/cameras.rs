//! The cameras benchmark: what a second camera costs. In one run, blackbox
//! with one test pattern at 1280x720 30 fps (recording, one viewer) is the
//! baseline; then two such cameras; then two at 1920x1080 30 fps. For each,
//! prints the CPU time per frame (the process's user + system time over the
//! frames it captured) and its ratio to the baseline, each camera's
//! measured rate, the recorder's dropped and lost frames, the encoders'
//! busy drops, and resident memory.
//!
//! `cargo bench --bench cameras` measures 20 s a case; `cargo test` runs
//! 2 s a case so that it cannot rot. Nothing is asserted: the numbers are
//! this machine's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{MjpegReader, Server, TempDir};
use serde_json::Value;

/// The process's user + system CPU time.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

struct Measured {
    cpu_per_frame_ms: f64,
    fps: Vec<f64>,
    recorder_dropped: u64,
    recorder_lost: u64,
    encoder_busy: u64,
    rss_mib: f64,
}

fn captured(st: &Value) -> u64 {
    st["cameras"].as_array().map_or(0, |c| {
        c.iter()
            .filter_map(|c| c["frames"]["captured"].as_u64())
            .sum()
    })
}

fn case(cameras: &[(&str, &str)], seconds: u64) -> Measured {
    let dir = TempDir::new("bench-cameras");
    let mut text = String::new();
    for (id, size) in cameras {
        text.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\nsource = \"testsrc\"\nsize = \"{size}\"\nfps = 30\n"
        ));
    }
    text.push_str(&format!(
        "[record]\nsegment_seconds = 10\n{}",
        common::RESERVE
    ));
    let cfg = common::config_file(&dir, &text);
    let data = dir.0.join("data").display().to_string();
    let server = Server::start(&["--config", &cfg, "--data", &data]);
    // One viewer per camera, reading everything it is sent.
    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = cameras
        .iter()
        .map(|(id, _)| {
            let url = server.url(&format!("/cameras/{id}/video_feed"));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut feed = MjpegReader::open(&url);
                while !stop.load(Ordering::SeqCst) && feed.next_part().is_some() {}
            })
        })
        .collect();
    // Warm up, then measure.
    server.wait_status(60, "every camera streaming", |st| {
        st["cameras"].as_array().is_some_and(|c| {
            c.len() == cameras.len() && c.iter().all(|c| c["source"]["state"] == "streaming")
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    let (st0, cpu0, t0) = (server.status(), cpu(server.pid()), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (st1, cpu1) = (server.status(), cpu(server.pid()));
    let elapsed = t0.elapsed().as_secs_f64();
    let frames = captured(&st1).saturating_sub(captured(&st0)).max(1);
    let delta = |i: usize, path: &[&str]| {
        let get = |st: &Value| {
            let mut x = &st["cameras"][i];
            for p in path {
                x = &x[*p];
            }
            x.as_u64().unwrap_or(0)
        };
        get(&st1).saturating_sub(get(&st0))
    };
    let fps = (0..cameras.len())
        .map(|i| delta(i, &["frames", "captured"]) as f64 / elapsed)
        .collect();
    let encoder_busy = (0..cameras.len())
        .map(|i| delta(i, &["drops", "encoder_busy"]))
        .sum();
    let rec = &st1["recorder"];
    let m = Measured {
        cpu_per_frame_ms: (cpu1 - cpu0).as_secs_f64() * 1000.0 / frames as f64,
        fps,
        recorder_dropped: rec["dropped"].as_u64().unwrap_or(0),
        recorder_lost: rec["frames_lost"].as_u64().unwrap_or(0),
        encoder_busy,
        rss_mib: server.rss_kib() as f64 / 1024.0,
    };
    stop.store(true, Ordering::SeqCst);
    drop(server);
    for v in viewers {
        let _ = v.join();
    }
    m
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = if full { 20 } else { 2 };
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("one camera 1280x720 30 fps", vec![("front", "1280x720")]),
        (
            "two cameras 1280x720 30 fps",
            vec![("front", "1280x720"), ("rear", "1280x720")],
        ),
        (
            "two cameras 1920x1080 30 fps",
            vec![("front", "1920x1080"), ("rear", "1920x1080")],
        ),
    ];
    println!(
        "{:<30} {:>12} {:>7} {:>16} {:>9} {:>6} {:>9} {:>8}",
        "case",
        "CPU ms/frame",
        "ratio",
        "fps per camera",
        "rec drop",
        "lost",
        "enc busy",
        "RSS MiB"
    );
    let mut baseline = None;
    for (name, cams) in cases {
        let m = case(&cams, seconds);
        let base = *baseline.get_or_insert(m.cpu_per_frame_ms);
        let fps: Vec<String> = m.fps.iter().map(|f| format!("{f:.1}")).collect();
        println!(
            "{name:<30} {:>12.2} {:>7.2} {:>16} {:>9} {:>6} {:>9} {:>8.1}",
            m.cpu_per_frame_ms,
            m.cpu_per_frame_ms / base.max(1e-9),
            fps.join(" / "),
            m.recorder_dropped,
            m.recorder_lost,
            m.encoder_busy,
            m.rss_mib
        );
    }
}
