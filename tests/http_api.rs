//! The HTTP surface besides the stream: UI, snapshot, status, metrics, and
//! what happens to requests that are wrong.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, decode_luma, get, request};

#[test]
fn snapshot_status_metrics_and_errors() {
    let server = Server::start(&["--size", "800x600", "--fps", "20", "--quality", "70"]);

    // A snapshot with nobody watching still works: the request waits for one frame.
    let (code, headers, body) = get(&server.url("/snapshot.jpg"));
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(headers["cache-control"].contains("no-store"));
    let (_, w, h) = decode_luma(&body);
    assert_eq!((w, h), (800, 600));

    let st = server.status();
    assert_eq!(st["source"]["kind"], "testsrc");
    assert_eq!(st["source"]["state"], "streaming");
    assert_eq!(st["source"]["pixel_format"], "yuyv");
    assert_eq!(st["source"]["width"], 800);
    assert_eq!(st["fps"]["target"], 20);
    assert_eq!(st["encode"]["quality"], 70);
    assert!(st["frames"]["captured"].as_u64().unwrap() > 0);
    assert!(st["frames"]["encoded"].as_u64().unwrap() >= 1);
    assert!(st["encode"]["mean_ms"].as_f64().unwrap() > 0.0);
    for key in [
        "source",
        "encoder_busy",
        "encode_error",
        "corrupt",
        "viewer_skipped",
        "ordered_overflow",
    ] {
        assert!(st["drops"][key].is_u64(), "drops.{key} missing: {st}");
    }
    assert!(st["uptime_seconds"].as_f64().unwrap() > 0.0);
    assert!(st["version"].is_string());
    // The measured rate appears once a few samples are in (its value is a
    // matter for the benchmarks, not the tests).
    server.wait_status(30, "a measured capture rate", |st| {
        st["fps"]["capture"].as_f64().unwrap() > 0.0
    });

    let (code, headers, body) = get(&server.url("/metrics"));
    assert_eq!(code, 200);
    assert!(headers["content-type"].starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "# TYPE blackbox_frames_total counter",
        "blackbox_frames_total{camera=\"front\",stage=\"captured\"}",
        "blackbox_frames_dropped_total{camera=\"front\",reason=\"encoder_busy\"}",
        "blackbox_fps{camera=\"front\",kind=\"target\"} 20",
        "blackbox_viewers{camera=\"front\"} 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let (code, headers, body) = get(&server.url("/no/such/page"));
    assert_eq!(code, 404);
    assert_eq!(headers["content-type"], "application/json");
    let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"], "not found");
    assert_eq!(err["path"], "/no/such/page");

    let (code, headers, _) = request("POST", &server.url("/api/status"));
    assert_eq!(code, 405);
    assert_eq!(headers["allow"], "GET, HEAD");
}

/// The metric families in an exposition, each checked for its `# HELP`
/// and `# TYPE` and for samples that parse.
fn families(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut helped = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped = rest.split(' ').next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            assert_eq!(helped.as_deref(), Some(name.as_str()), "HELP before {line}");
            assert!(matches!(parts.next(), Some("counter" | "gauge")), "{line}");
            assert!(!names.contains(&name), "{name} twice");
            names.push(name);
        } else {
            let family = names.last().expect("a sample before any TYPE");
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(
                series.starts_with(family.as_str()),
                "{line} outside {family}"
            );
            let labels = &series[family.len()..];
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        }
    }
    names
}

#[test]
fn every_metric_the_readme_names_is_emitted() {
    let server = Server::start(&["--size", "640x480", "--fps", "10"]);
    server.wait_status(30, "recording", |st| {
        st["recorder"]["frames_written"].as_u64().unwrap() > 0
    });
    let (code, _, body) = get(&server.url("/metrics"));
    assert_eq!(code, 200);
    let emitted = families(&String::from_utf8(body).unwrap());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut named = Vec::new();
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("blackbox_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        if name.len() > "blackbox_".len() && !named.contains(&name) {
            named.push(name);
        }
    }
    assert!(named.len() >= 10, "the README names {named:?}");
    for name in &named {
        assert!(
            emitted.contains(name),
            "{name} is in the README, not in /metrics"
        );
    }
    for name in &emitted {
        assert!(named.contains(name), "{name} is emitted but not documented");
    }
}

#[test]
fn a_flood_of_idle_connections_cannot_starve_the_page() {
    let dir = common::TempDir::new("flood");
    let cfg = dir.0.join("blackbox.toml");
    std::fs::write(&cfg, "[http]\nmax_connections = 64\n").unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap(), "--size", "320x240"]);
    // A viewer streaming before the flood is busy, never closed for room.
    let mut viewer = common::MjpegReader::open(&server.url("/video_feed"));
    viewer.next_part().unwrap();
    // This process may need more than the common 1,024 open files.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let flood_size = 2000.min(hard.saturating_sub(64) as usize);
    let mut flood = Vec::new();
    for _ in 0..flood_size {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            flood.push(s);
        }
    }
    assert!(flood.len() > 1000, "{} connections opened", flood.len());
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .count()
    };
    let st = server.status();
    let open = st["http_connections"].as_u64().unwrap();
    assert!(open <= 64 + 16, "{open} connections open, cap 64: {st}");
    assert!(fds() < 64 + 16 + 128, "{} file descriptors", fds());
    // The page and the API still answer, and the viewer still streams.
    let (code, _, _) = get(&server.url("/"));
    assert_eq!(code, 200);
    let (code, _, _) = get(&server.url("/api/status"));
    assert_eq!(code, 200);
    let first = common::sequence_of(&viewer.next_part().unwrap().data);
    let next = common::sequence_of(&viewer.next_part().unwrap().data);
    assert!(next > first);
    drop(flood);
    server.wait_status(30, "the flood to be gone", |st| {
        st["http_connections"].as_u64().unwrap() <= 3
    });
}

#[test]
fn the_page_works_offline() {
    let server = Server::start(&["--size", "640x480"]);
    let (code, headers, body) = get(&server.url("/"));
    assert_eq!(code, 200);
    assert!(headers["content-type"].starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("/video_feed"));
    assert!(html.contains("/api/status"));
    assert!(html.contains("NO SIGNAL"));
    // Everything is inline: no scripts, styles or fonts from elsewhere.
    for needle in ["src=\"http", "href=\"http", "@import", "//cdn"] {
        assert!(!html.contains(needle), "the page loads {needle}");
    }
}

#[test]
fn malformed_requests_get_400_and_the_server_carries_on() {
    let server = Server::start(&["--size", "640x480"]);
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS hello
        b"GET / HTTP/9.9\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(garbage).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty()
                || reply.starts_with("HTTP/1.1 400")
                || reply.starts_with("HTTP/1.1 505"),
            "{reply}"
        );
    }
    // An oversized header block.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let _ = s.write_all(big.as_bytes());
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );

    let (code, _, _) = get(&server.url("/api/status"));
    assert_eq!(code, 200, "still serving after the garbage");
}

#[test]
fn every_response_carries_the_security_headers() {
    let server = Server::start(&["--size", "320x240"]);
    for path in ["/", "/login", "/api/status", "/no/such/thing", "/healthz"] {
        let (_, headers, _) = get(&server.url(path));
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let csp = &headers["content-security-policy"];
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
    }
}
