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
    std::thread::sleep(Duration::from_millis(1500));
    let fps = server.status()["fps"]["capture"].as_f64().unwrap();
    assert!(fps > 10.0, "measured capture fps {fps}");

    let (code, headers, body) = get(&server.url("/metrics"));
    assert_eq!(code, 200);
    assert!(headers["content-type"].starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "# TYPE blackbox_frames_total counter",
        "blackbox_frames_total{stage=\"captured\"}",
        "blackbox_frames_dropped_total{reason=\"encoder_busy\"}",
        "blackbox_fps{kind=\"target\"} 20",
        "blackbox_viewers 0",
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
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
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
