//! What a stranger on the dashcam's network can send, tried on the real
//! binary over real sockets from many loopback addresses (127.0.0.x, each a
//! different client to the server): a storm of wrong passwords, request
//! bodies that never finish, and a dashcam whose password file is missing
//! or garbled. In every case the recorder loses nothing, the owner gets in,
//! and what the stranger costs stays bounded.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine;
use blackbox_testkit::MjpegReader;
use common::{Server, TempDir, raw_request};

const PASSWORD: &str = "a long dashcam password";

fn login_request(port: u16, password: &str) -> String {
    let body = format!("password={}", password.replace(' ', "+"));
    format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

fn basic_request(port: u16, path: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("x:{password}"));
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Connection: close\r\n\r\n"
    )
}

/// The session cookie from a login by `from`, or the status it got.
fn login_from(from: [u8; 4], port: u16) -> Result<String, (u16, String)> {
    let (code, head, body) = raw_request(from, port, &login_request(port, PASSWORD));
    if code != 303 {
        return Err((code, head + &body));
    }
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    Ok(cookie.split(';').next().unwrap().to_string())
}

fn status_with(server: &Server, cookie: &str) -> serde_json::Value {
    let (code, _, body) = raw_request(
        [127, 0, 0, 1],
        server.port,
        &format!(
            "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            server.port
        ),
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A live view that keeps reading, counting parts and the longest wait for
/// one, until told to stop.
struct Viewer {
    stop: Arc<AtomicBool>,
    parts: Arc<AtomicU64>,
    longest_gap_ms: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Viewer {
    fn start(url: &str, cookie: &str) -> Viewer {
        let mut reader =
            MjpegReader::open_with(url, &[("Cookie", cookie)]).expect("the owner's live view");
        let (stop, parts, gap) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, p, g) = (stop.clone(), parts.clone(), gap.clone());
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !s.load(Ordering::SeqCst) {
                reader.next_part().map_err(|e| e.to_string())?;
                p.fetch_add(1, Ordering::SeqCst);
                g.fetch_max(last.elapsed().as_millis() as u64, Ordering::SeqCst);
                last = Instant::now();
            }
            Ok(())
        });
        Viewer {
            stop,
            parts,
            longest_gap_ms: gap,
            thread,
        }
    }

    fn parts(&self) -> u64 {
        self.parts.load(Ordering::SeqCst)
    }

    /// Stops it; the stream must never have failed.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap()
            .expect("the owner's stream kept going");
        (
            self.parts.load(Ordering::SeqCst),
            self.longest_gap_ms.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn a_storm_of_wrong_logins_costs_bounded_memory_and_nothing_else() {
    let dir = TempDir::new("storm");
    let file = common::password_file(&dir, PASSWORD);
    let server = Server::start(&["--password-file", &file, "--size", "320x240", "--fps", "10"]);
    let port = server.port;
    let cookie = login_from([127, 0, 0, 1], port).expect("the owner logs in");
    let viewer = Viewer::start(&server.url("/video_feed"), &cookie);
    let before = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = status_with(&server, &cookie);
            if n(&st["recorder"]["frames_written"]) >= 10 && viewer.parts() >= 5 {
                break st;
            }
            assert!(Instant::now() < deadline, "never recorded: {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (_, rss_before) = server.peak_and_rss_kib();
    let t0 = Instant::now();

    // 200 wrong passwords at once from 20 addresses: half through the
    // login form, half as HTTP Basic.
    let barrier = Arc::new(Barrier::new(200));
    let attackers: Vec<_> = (0..200u32)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let from = [127, 0, 0, 10 + (i % 20) as u8];
                let request = if i % 2 == 0 {
                    login_request(port, "not the password")
                } else {
                    basic_request(port, "/api/status", "not the password")
                };
                barrier.wait();
                raw_request(from, port, &request).0
            })
        })
        .collect();
    let codes: Vec<u16> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    let burst = t0.elapsed();
    let wrong = codes.iter().filter(|&&c| c == 401).count();
    let refused = codes.iter().filter(|&&c| c == 429).count();
    assert_eq!(wrong + refused, 200, "only 401 and 429: {codes:?}");
    assert!(wrong >= 1, "some were checked");
    // Everyone together gets the shared budget (10 at once, one more every
    // 3 s), however many addresses they come from.
    let budget = 10 + burst.as_secs() as usize / 3 + 1;
    assert!(wrong <= budget, "{wrong} checked in {burst:?}");
    let (peak, _) = server.peak_and_rss_kib();
    println!(
        "storm: {wrong} checked, {refused} refused in {burst:?}; RSS {rss_before} KiB before, peak {peak} KiB"
    );
    assert!(
        peak <= rss_before + 64 * 1024,
        "peak RSS {peak} KiB against {rss_before} KiB before the storm"
    );

    // The owner gets in at once from the address that logged in before,
    // and within 5 s from a new one.
    login_from([127, 0, 0, 1], port).expect("the owner's known address");
    let t1 = Instant::now();
    loop {
        match login_from([127, 0, 0, 99], port) {
            Ok(_) => break,
            Err((429, _)) => std::thread::sleep(Duration::from_millis(250)),
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "the owner waited more than 5 s"
        );
    }
    println!(
        "storm: the owner logged in from a new address after {:?}",
        t1.elapsed()
    );

    // The memory went back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, rss) = server.peak_and_rss_kib();
        if rss <= rss_before + 16 * 1024 {
            println!("storm: RSS {rss} KiB after");
            break;
        }
        assert!(Instant::now() < deadline, "RSS stayed at {rss} KiB");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Recording lost nothing and capture kept its rate; the owner's live
    // view never stopped.
    let parts_during = viewer.parts();
    let after = status_with(&server, &cookie);
    let elapsed = t0.elapsed().as_secs_f64();
    let (parts, gap) = viewer.finish();
    assert!(parts > parts_during.min(5), "the stream went on");
    println!("storm: the owner's stream got {parts} parts, longest wait {gap} ms");
    assert!(gap < 10_000, "the owner's stream stalled for {gap} ms");
    assert_eq!(n(&after["recorder"]["dropped"]), 0, "{after}");
    assert_eq!(n(&after["recorder"]["frames_lost"]), 0, "{after}");
    let written =
        n(&after["recorder"]["frames_written"]) - n(&before["recorder"]["frames_written"]);
    let captured = n(&after["frames"]["captured"]) - n(&before["frames"]["captured"]);
    println!("storm: {captured} frames captured and {written} written in {elapsed:.1} s at 10 fps");
    assert!(
        captured as f64 >= 10.0 * elapsed * 0.5,
        "capture fell to {captured} frames in {elapsed:.1} s"
    );
}

#[test]
fn no_valid_password_beyond_loopback_closes_the_web_but_never_the_recorder() {
    for case in ["missing", "garbled"] {
        let dir = TempDir::new(&format!("closed-{case}"));
        let file = dir.0.join("password");
        if case == "garbled" {
            std::fs::write(&file, "hunter2\n").unwrap();
        }
        let data = dir.0.join("data");
        let mut server = Server::start_on(
            "0.0.0.0:0",
            &[
                "--data",
                data.to_str().unwrap(),
                "--password-file",
                file.to_str().unwrap(),
                "--size",
                "320x240",
                "--fps",
                "10",
            ],
            &[],
        );
        // Every page says why; /healthz still answers.
        for path in ["/", "/api/status", "/video_feed", "/login"] {
            let (code, headers, body) = common::get(&server.url(path));
            assert_eq!(code, 503, "{case} {path}");
            assert_eq!(headers["retry-after"], "5");
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("blackbox passwd"), "{case}: {body}");
            let why = if case == "missing" {
                "does not exist"
            } else {
                "expected one argon2id hash"
            };
            assert!(body.contains(why), "{case}: {body}");
        }
        let (code, _, _) = common::get(&server.url("/healthz"));
        assert_eq!(code, 200, "{case}");
        // The recorder runs all the same: segments grow on the card.
        common::wait_recorded(&data.join("recordings"), 20_000);
        // A valid password opens the web side, without a restart.
        common::password_file(&dir, PASSWORD);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, _, _) = common::get(&server.url("/api/status"));
            if code == 401 {
                break;
            }
            assert_eq!(code, 503);
            assert!(Instant::now() < deadline, "{case}: still closed");
            std::thread::sleep(Duration::from_millis(200));
        }
        login_from([127, 0, 0, 1], server.port).expect("the owner logs in");
        assert!(server.child.try_wait().unwrap().is_none(), "still running");
        let log = server.terminate();
        assert_eq!(
            log.matches("the web side is closed").count(),
            1,
            "logged once: {log}"
        );
    }
}

/// Opens a connection from `from` that sends a login request's head and a
/// few bytes of its 1000-byte body, then nothing more.
fn half_sent(from: [u8; 4], port: u16) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = common::connect_from(from, port).expect("connect");
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\npassword=ab"
    );
    // The server may already have turned it away (503 and closed).
    let _ = s.write_all(head.as_bytes());
    s
}

/// `/healthz` from `from` answers 200, and the owner's page loads (a login
/// from a new address, then the page with its cookie).
fn owner_gets_in(port: u16, from: [u8; 4]) {
    let (code, _, body) = raw_request(
        from,
        port,
        &format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let cookie = login_from(from, port).expect("the owner logs in");
    let (code, _, body) = raw_request(
        from,
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(code, 200);
    assert!(body.contains("<html"), "the page");
}

#[test]
fn half_sent_bodies_never_keep_the_owner_or_healthz_out() {
    let dir = TempDir::new("slow");
    let file = common::password_file(&dir, PASSWORD);
    // The default cap (256): 300 half-sent bodies from 3 addresses.
    let server = Server::start(&["--password-file", &file, "--size", "320x240", "--fps", "10"]);
    let port = server.port;
    let owner = login_from([127, 0, 0, 1], port).expect("the owner logs in");
    let t0 = Instant::now();
    let held: Vec<_> = (0..300u32)
        .map(|i| half_sent([127, 0, 0, 20 + (i % 3) as u8], port))
        .collect();
    // Each address holds its share (64); past it, its own slowest body
    // makes room.
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = status_with(&server, &owner);
        if n(&st["http_connections"]) == 3 * 64 + 1 {
            break st;
        }
        assert!(Instant::now() < deadline, "{st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "slow bodies: {} held, {} closed to make room, after {:?}",
        n(&st["http_connections"]) - 1,
        300 - 3 * 64,
        t0.elapsed()
    );
    assert_eq!(n(&st["http_refused"]), 0, "{st}");
    for i in 0..10 {
        owner_gets_in(port, [127, 0, 0, 100 + i]);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The held bodies end with 408 once they fall under the minimum rate.
    let mut timed_out = 0;
    for mut s in held {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        if reply.starts_with("HTTP/1.1 408") {
            timed_out += 1;
            assert!(reply.contains("too slowly"), "{reply}");
        } else {
            assert_eq!(reply, "", "closed to make room");
        }
    }
    assert_eq!(timed_out, 3 * 64);
    println!(
        "slow bodies: every held body ended with 408 after {:?}",
        t0.elapsed()
    );
    let after = status_with(&server, &owner);
    assert_eq!(n(&after["recorder"]["dropped"]), 0, "{after}");
    assert_eq!(n(&after["recorder"]["frames_lost"]), 0, "{after}");

    // A table of 8, all taken by one address's half-sent bodies: the
    // slowest makes room for /healthz and the owner.
    let config = common::config_file(&dir, "[http]\nmax_connections = 8\n");
    let server = Server::start(&[
        "--config",
        &config,
        "--password-file",
        &file,
        "--size",
        "320x240",
        "--fps",
        "10",
    ]);
    let port = server.port;
    let _held: Vec<_> = (0..8).map(|_| half_sent([127, 0, 0, 30], port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    // A ninth from the same address: one of its own bodies makes room.
    owner_gets_in(port, [127, 0, 0, 30]);
    for i in 0..5 {
        owner_gets_in(port, [127, 0, 0, 40 + i]);
    }
}
