//! `POST /api/update` on the real binary over a real socket: a bundle
//! uploaded with the password and the page's own origin lands whole in the
//! update directory with a request for the root install service; a foreign
//! origin, no password, no length, too large, or a second upload while one
//! waits change nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::{Server, TempDir};

const PASSWORD: &str = "a long dashcam password";

/// Sends one request (the head's lines, then `body`) and returns the status
/// code and the response text.
fn raw(server: &Server, head: &[String], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = head.join("\r\n");
    req.push_str("\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A refusal may come (and the connection close) before the body is sent.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

fn head(server: &Server, method: &str, origin: Option<&str>, auth: bool) -> Vec<String> {
    let mut h = vec![
        format!("{method} /api/update HTTP/1.1"),
        format!("Host: 127.0.0.1:{}", server.port),
    ];
    if let Some(o) = origin {
        h.push(format!("Origin: {o}"));
    }
    if auth {
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("blackbox:{PASSWORD}"));
        h.push(format!("Authorization: Basic {cred}"));
    }
    h
}

#[test]
fn an_upload_is_queued_whole_and_only_from_the_page() {
    let dir = TempDir::new("update");
    let file = common::password_file(&dir, PASSWORD);
    let data = dir.0.join("data");
    let data_arg = data.display().to_string();
    let config = common::config_file(&dir, &format!("[record]\n{}", common::RESERVE));
    let server = Server::start(&[
        "--config",
        &config,
        "--password-file",
        &file,
        "--size",
        "320x240",
        "--data",
        &data_arg,
        "--record",
        "off",
    ]);
    let own = format!("http://127.0.0.1:{}", server.port);
    let update = data.join("update");
    let bundle: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let with_len = |mut h: Vec<String>, n: usize| {
        h.push("Content-Type: application/octet-stream".into());
        h.push(format!("Content-Length: {n}"));
        h
    };

    // Nothing without the password, nothing from another site.
    // (Refusals get small bodies: a server that answers before reading a
    // large one closes with unread data, and the client may see a reset.)
    let small = b"not a bundle";
    let (code, _) = raw(
        &server,
        &with_len(head(&server, "POST", Some(&own), false), small.len()),
        small,
    );
    assert_eq!(code, 401);
    let (code, _) = raw(
        &server,
        &with_len(
            head(&server, "POST", Some("http://evil.example"), true),
            small.len(),
        ),
        small,
    );
    assert_eq!(code, 403);
    assert!(!update.join("bundle.raucb").exists() && !update.join("request").exists());

    // No length, or far too long: refused before anything is written.
    let mut h = head(&server, "POST", Some(&own), true);
    h.push("Transfer-Encoding: chunked".into());
    let (code, text) = raw(&server, &h, b"3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(code, 411, "{text}");
    let (code, _) = raw(
        &server,
        &with_len(head(&server, "POST", Some(&own), true), 5 << 30),
        b"",
    );
    assert_eq!(code, 413);

    // The real thing.
    let (code, text) = raw(
        &server,
        &with_len(head(&server, "POST", Some(&own), true), bundle.len()),
        &bundle,
    );
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("\"queued\""), "{text}");
    assert_eq!(std::fs::read(update.join("bundle.raucb")).unwrap(), bundle);
    assert!(update.join("request").exists());
    assert_eq!(uploads_left(&update), Vec::<String>::new());
    let (code, text) = raw(&server, &head(&server, "GET", None, true), b"");
    assert_eq!(code, 200);
    assert!(text.contains("\"state\":\"queued\""), "{text}");

    // A second one while the first waits for the installer.
    let (code, _) = raw(
        &server,
        &with_len(head(&server, "POST", Some(&own), true), 10),
        b"0123456789",
    );
    assert_eq!(code, 409);
    assert_eq!(std::fs::read(update.join("bundle.raucb")).unwrap(), bundle);
    // Still queued once the installer has taken the request: busy.
    std::fs::remove_file(update.join("request")).unwrap();
    let (code, text) = raw(
        &server,
        &with_len(head(&server, "POST", Some(&own), true), 10),
        b"0123456789",
    );
    assert_eq!(code, 409, "{text}");
    assert_eq!(std::fs::read(update.join("bundle.raucb")).unwrap(), bundle);
}

/// Temporary upload files left in the update directory.
fn uploads_left(update: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(update)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

#[test]
fn one_upload_at_a_time_and_never_into_the_recorders_reserve() {
    let dir = TempDir::new("update-one");
    let data = dir.0.join("data");
    let data_arg = data.display().to_string();
    let config = common::config_file(&dir, &format!("[record]\n{}", common::RESERVE));
    let server = Server::start(&[
        "--config", &config, "--size", "320x240", "--data", &data_arg, "--record", "off",
    ]);
    let own = format!("http://127.0.0.1:{}", server.port);
    let update = data.join("update");
    // The first sends half its body and waits.
    let mut h = head(&server, "POST", Some(&own), false);
    h.push("Content-Length: 200000".into());
    h.push("Connection: close".into());
    let mut first = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    first
        .write_all(format!("{}\r\n\r\n", h.join("\r\n")).as_bytes())
        .unwrap();
    first.write_all(&[1u8; 100_000]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while uploads_left(&update).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first upload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second one meanwhile is refused and touches nothing.
    let mut h = head(&server, "POST", Some(&own), false);
    h.push("Content-Length: 10".into());
    let (code, text) = raw(&server, &h, b"0123456789");
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("another upload"), "{text}");
    // The first finishes whole.
    first.write_all(&[1u8; 100_000]).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reply = String::new();
    let _ = first.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    assert_eq!(
        std::fs::read(update.join("bundle.raucb")).unwrap(),
        vec![1u8; 200_000]
    );
    assert_eq!(uploads_left(&update), Vec::<String>::new());
    drop(server);

    // A card whose free space is the recorder's reserve takes no bundle.
    let config = common::config_file(&dir, "[record]\nmin_free = \"99%\"\n");
    let server = Server::start(&[
        "--config", &config, "--size", "320x240", "--data", &data_arg, "--record", "off",
    ]);
    let own = format!("http://127.0.0.1:{}", server.port);
    std::fs::remove_file(update.join("bundle.raucb")).unwrap();
    std::fs::remove_file(update.join("status")).ok();
    std::fs::remove_file(update.join("request")).ok();
    let mut h = head(&server, "POST", Some(&own), false);
    h.push("Content-Length: 10".into());
    let (code, text) = raw(&server, &h, b"0123456789");
    assert_eq!(code, 507, "{text}");
    assert!(text.contains("kept free for recording"), "{text}");
}

#[test]
fn a_broken_upload_leaves_nothing_to_install() {
    let dir = TempDir::new("update-broken");
    let data = dir.0.join("data");
    let data_arg = data.display().to_string();
    let config = common::config_file(&dir, &format!("[record]\n{}", common::RESERVE));
    let server = Server::start(&[
        "--config", &config, "--size", "320x240", "--data", &data_arg, "--record", "off",
    ]);
    let own = format!("http://127.0.0.1:{}", server.port);
    // Says 1 MB, sends 1000 bytes, hangs up.
    let mut h = head(&server, "POST", Some(&own), false);
    h.push("Content-Length: 1000000".into());
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(format!("{}\r\n\r\n", h.join("\r\n")).as_bytes())
        .unwrap();
    s.write_all(&[7u8; 1000]).unwrap();
    drop(s);
    let update = data.join("update");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = raw(&server, &head(&server, "GET", None, false), b"");
        if text.contains("\"failed\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!update.join("bundle.raucb").exists());
    assert_eq!(uploads_left(&update), Vec::<String>::new());
    assert!(!update.join("request").exists());
}
