//! The store benchmark: what 1,000 finished segments on the card cost.
//! Prints, against an empty card measured in the same run:
//!
//! - start-up (recovery and indexing, to the moment blackbox listens), with
//!   the page cache warm and, as root, dropped (a cold card);
//! - the recorder thread's longest time on one event (`max_command_ms`,
//!   which must stay far under 50 ms: an event reads the index, no file);
//! - `GET /api/recordings` (the whole list).
//!
//! `cargo bench --bench store` runs it with 1,000 segments; `cargo test`
//! with 50, so that it cannot rot. Numbers are printed, never asserted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use blackbox::convert::I420;
use blackbox::encode;
use blackbox::frame::Size;
use blackbox::record::mkv::MkvWriter;
use blackbox::record::names::SegmentName;
use common::{Server, TempDir};

/// `n` finished one-minute segments of 5 frames each, a minute apart.
fn fill(recordings: &Path, n: u64) {
    std::fs::create_dir_all(recordings).unwrap();
    let size = Size::new(320, 240);
    let jpeg = encode::encode_i420(&I420::new(size).unwrap(), 50).unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(60 * (n + 10));
    for seq in 1..=n {
        let name = SegmentName {
            seq,
            start: t0 + Duration::from_secs(60 * seq),
            camera: blackbox::record::names::CameraTag::new("front").unwrap(),
        };
        let path = recordings.join(name.file_name());
        let mut w = MkvWriter::create(&path, size, name.start).unwrap();
        for i in 0..5 {
            w.write_frame(i * 40, &jpeg).unwrap();
        }
        w.finish(40).unwrap();
    }
}

fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

struct Measured {
    startup: Duration,
    startup_cold: Option<Duration>,
    event_ms: f64,
    list_ms: f64,
    listed: usize,
}

fn measure(data: &Path) -> Measured {
    let start = |cold: bool| {
        let dropped = cold && drop_caches();
        let t0 = Instant::now();
        let server = Server::start(&[
            "--size",
            "320x240",
            "--fps",
            "10",
            "--data",
            data.to_str().unwrap(),
        ]);
        let took = t0.elapsed();
        (server, took, dropped)
    };
    let (cold_server, cold, dropped) = start(true);
    drop(cold_server);
    let (server, startup, _) = start(false);
    server.wait_status(60, "recording", |st| {
        st["recorder"]["frames_written"].as_u64().unwrap_or(0) > 5
    });
    for _ in 0..20 {
        let (code, _, _) = common::request("POST", &server.url("/api/events"));
        assert_eq!(code, 202);
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = server.wait_status(60, "the events", |st| {
        st["recorder"]["events"].as_array().map_or(0, |e| {
            e.iter().map(|e| e["count"].as_u64().unwrap_or(0)).sum()
        }) >= 20
    });
    let mut list_ms = f64::MAX;
    let mut listed = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        let list = common::testkit_get_json(&server.url("/api/recordings"));
        list_ms = list_ms.min(t0.elapsed().as_secs_f64() * 1000.0);
        listed = list["recordings"].as_array().map_or(0, Vec::len);
    }
    Measured {
        startup,
        startup_cold: dropped.then_some(cold),
        event_ms: st["recorder"]["max_command_ms"].as_f64().unwrap_or(0.0),
        list_ms,
        listed,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1000 } else { 50 };
    let empty = TempDir::new("bench-store-empty");
    let base = measure(&empty.0.join("data"));
    let dir = TempDir::new("bench-store-full");
    let data = dir.0.join("data");
    let t0 = Instant::now();
    fill(&data.join("recordings"), n);
    println!(
        "store: {n} finished segments written in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let m = measure(&data);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  start-up, warm     {:.0} ms with {n} segments, {:.0} ms empty (ratio {:.2})",
        ms(m.startup),
        ms(base.startup),
        ms(m.startup) / ms(base.startup)
    );
    match (m.startup_cold, base.startup_cold) {
        (Some(c), Some(b)) => println!(
            "  start-up, cold     {:.0} ms with {n} segments, {:.0} ms empty (ratio {:.2})",
            ms(c),
            ms(b),
            ms(c) / ms(b)
        ),
        _ => println!("  start-up, cold     not measured (dropping the page cache needs root)"),
    }
    println!(
        "  event, recorder    {:.2} ms at most with {n} segments, {:.2} ms empty (ratio {:.2}; the requirement is under 50 ms)",
        m.event_ms,
        base.event_ms,
        m.event_ms / base.event_ms.max(0.001)
    );
    println!(
        "  list               {:.1} ms for {} entries, {:.1} ms for {} (ratio {:.2})",
        m.list_ms,
        m.listed,
        base.list_ms,
        base.listed,
        m.list_ms / base.list_ms.max(0.001)
    );
}
