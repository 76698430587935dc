//! The load benchmark: blackbox at 1280x720, 30 fps, recording, with 100
//! live viewers and 1,000 API requests a second for 60 s, all on loopback;
//! then a burst of 2,000 idle connections. Prints, from one run:
//!
//! - capture fps against the target, and against the same process with no
//!   load a moment before (the baseline);
//! - frames the recorder dropped or lost (must be none), and viewer skips;
//! - each viewer's received fps: min, median, max;
//! - API requests answered, errors, and latency percentiles;
//! - resident memory at the start and end, and before, during and after the
//!   burst of idle connections (with the ratio to before).
//!
//! `cargo bench --bench load` runs it in full; `cargo test` runs a short
//! version (3 s, 5 viewers) so that it cannot rot. Numbers are printed,
//! never asserted: they are this machine's. What is asserted is that the
//! recorder dropped and lost nothing: the process exits 1 otherwise.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blackbox_testkit as kit;
use common::{Server, TempDir};

struct Plan {
    seconds: u64,
    viewers: usize,
    api_per_second: u64,
    idle_burst: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn capture_fps(server: &Server) -> f64 {
    server.status()["fps"]["capture"].as_f64().unwrap_or(0.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            seconds: 60,
            viewers: 100,
            api_per_second: 1000,
            idle_burst: 2000,
        }
    } else {
        Plan {
            seconds: 3,
            viewers: 5,
            api_per_second: 50,
            idle_burst: 100,
        }
    };
    let dir = TempDir::new("bench-load");
    let cfg = dir.0.join("blackbox.toml");
    std::fs::write(&cfg, "[http]\nmax_connections = 512\n").unwrap();
    let server = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--data",
        dir.0.join("data").to_str().unwrap(),
    ]);
    server.wait_status(60, "recording", |st| {
        st["recorder"]["frames_written"].as_u64().unwrap_or(0) > 30
    });
    std::thread::sleep(Duration::from_secs(3)); // the rate window fills
    let baseline_fps = capture_fps(&server);
    let rss_start = server.rss_kib();
    let before = server.status();

    // The load.
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("/video_feed");
    let viewers: Vec<_> = (0..plan.viewers)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(mut feed) = kit::MjpegReader::open(&url) else {
                    return (0u64, 1.0);
                };
                let t0 = Instant::now();
                let mut parts = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if feed.next_part().is_err() {
                        break;
                    }
                    parts += 1;
                }
                (parts, t0.elapsed().as_secs_f64())
            })
        })
        .collect();
    let api_threads = 8u64;
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let api: Vec<_> = (0..api_threads)
        .map(|t| {
            let (stop, answered, errors) = (stop.clone(), answered.clone(), errors.clone());
            let paths = ["/api/status", "/api/recordings", "/metrics", "/api/status"];
            let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
            let every = Duration::from_secs_f64(api_threads as f64 / plan.api_per_second as f64);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut latencies = Vec::new();
                let mut next = Instant::now() + every.mul_f64(t as f64 / api_threads as f64);
                let mut i = t as usize;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                    }
                    next += every;
                    let t0 = Instant::now();
                    let ok = agent
                        .get(&urls[i % urls.len()])
                        .call()
                        .and_then(|r| r.into_body().read_to_vec())
                        .is_ok();
                    latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                    i += 1;
                    if ok {
                        answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut fps_samples = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(plan.seconds) {
        std::thread::sleep(Duration::from_secs(1));
        fps_samples.push(capture_fps(&server));
    }
    let loaded = t0.elapsed().as_secs_f64();
    let after = server.status();
    stop.store(true, Ordering::Relaxed);
    let mut viewer_fps: Vec<f64> = viewers
        .into_iter()
        .map(|v| {
            let (parts, secs) = v.join().unwrap();
            parts as f64 / secs.max(0.001)
        })
        .collect();
    let mut latencies: Vec<f64> = api.into_iter().flat_map(|a| a.join().unwrap()).collect();
    viewer_fps.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    fps_samples.sort_by(f64::total_cmp);
    let rss_end = server.rss_kib();
    let delta = |path: &[&str]| {
        let get = |v: &serde_json::Value| path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0);
        get(&after) - get(&before)
    };
    let captured = delta(&["frames", "captured"]) as f64 / loaded;

    println!(
        "load: {} viewers + {} API requests/s for {} s at 1280x720 30 fps, recording",
        plan.viewers, plan.api_per_second, plan.seconds
    );
    println!(
        "  capture fps        {captured:.2} over the run (target 30: ratio {:.3}; no load just before: {baseline_fps:.2}, ratio {:.3}); per-second samples min {:.1} median {:.1}",
        captured / 30.0,
        captured / baseline_fps.max(0.001),
        percentile(&fps_samples, 0.0),
        percentile(&fps_samples, 0.5),
    );
    println!(
        "  recorder           {} frames written, {} dropped (disk behind), {} lost (card); upstream drops: encoder busy {}, source {}",
        delta(&["recorder", "frames_written"]),
        delta(&["recorder", "dropped"]),
        delta(&["recorder", "frames_lost"]),
        delta(&["drops", "encoder_busy"]),
        delta(&["drops", "source"]),
    );
    // The one thing this benchmark asserts: load on the web side never
    // costs the recording a frame (dropped: the recorder's queue
    // overflowed; lost: the card refused them).
    let recorder_losses = delta(&["recorder", "dropped"]) + delta(&["recorder", "frames_lost"]);
    println!(
        "  viewer fps         min {:.1}  median {:.1}  max {:.1}  (skipped frames in all: {})",
        percentile(&viewer_fps, 0.0),
        percentile(&viewer_fps, 0.5),
        percentile(&viewer_fps, 1.0),
        delta(&["drops", "viewer_skipped"]),
    );
    println!(
        "  API                {} answered ({:.0}/s), {} errors; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        answered.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed) as f64 / loaded,
        errors.load(Ordering::Relaxed),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    println!(
        "  RSS                {:.1} MB at the start, {:.1} MB at the end (ratio {:.2})",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_end as f64 / rss_start as f64
    );

    // A burst of idle connections, then their memory.
    std::thread::sleep(Duration::from_secs(6)); // a quiet moment
    let rss_before = server.rss_kib();
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut idle = Vec::new();
    let mut peak_conns = 0;
    for _ in 0..plan.idle_burst {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let st = server.status();
    peak_conns = peak_conns.max(st["http_connections"].as_u64().unwrap_or(0));
    let rss_during = server.rss_kib();
    let opened = idle.len();
    drop(idle);
    std::thread::sleep(Duration::from_secs(7));
    let rss_after = server.rss_kib();
    println!(
        "  idle burst         {opened} connections opened; {peak_conns} held at once (cap 512); RSS {:.1} MB before, {:.1} MB during, {:.1} MB after (after/before {:.2})",
        rss_before as f64 / 1024.0,
        rss_during as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after as f64 / rss_before as f64
    );
    if recorder_losses > 0 {
        eprintln!("load: FAIL: the recorder dropped or lost {recorder_losses} frames under load");
        std::process::exit(1);
    }
}
