//! Login and the guards around every route, on the real binary with a real
//! HTTP client: the password file (`blackbox passwd`), the login page and
//! its session cookie, HTTP Basic for tools and players, the limit on failed
//! attempts, logout and password changes; cross-site requests (a form POST,
//! a `text/plain` POST with a foreign Origin, a change with no Origin but a
//! session cookie), a foreign Host (DNS rebinding), no CORS headers; and no
//! the tap beyond loopback.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::{Server, TempDir};

const PASSWORD: &str = "a long dashcam password";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// (status, headers, body) of a request with extra headers.
fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, ureq::http::HeaderMap, String) {
    let a = agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = a.run(req.body(body.to_string()).unwrap()).unwrap();
    let code = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().read_to_string().unwrap_or_default();
    (code, headers, body)
}

fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("blackbox:{password}"))
    )
}

fn origin(server: &Server) -> String {
    format!("http://127.0.0.1:{}", server.port)
}

/// Logs in with the form; returns the session cookie (`name=value`).
fn login(server: &Server) -> String {
    let (code, headers, body) = send(
        "POST",
        &server.url("/login"),
        &[
            ("Origin", &origin(server)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(code, 303, "{body}");
    assert_eq!(headers["location"], "/");
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    assert!(
        pair.starts_with("blackbox_session=") && pair.len() == 17 + 32,
        "{pair}"
    );
    pair
}

/// Waits until the recorder shows an event.
fn server_wait_event(server: &Server, auth: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, body) = send(
            "GET",
            &server.url("/api/status"),
            &[("Authorization", auth)],
            "",
        );
        let st: serde_json::Value = serde_json::from_str(&body).unwrap();
        if st["recorder"]["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until recording is `on` (a start or stop takes effect when the
/// recorder reads its mailbox).
fn wait_recording(server: &Server, auth: &str, on: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while recording(server, auth) != on {
        assert!(
            std::time::Instant::now() < deadline,
            "recording never became {on}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn recording(server: &Server, auth: &str) -> bool {
    let (code, _, body) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", auth)],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    st["recorder"]["recording"].as_bool().unwrap()
}

#[test]
fn every_route_needs_the_password_but_login_and_healthz() {
    let dir = TempDir::new("auth-routes");
    let file = common::password_file(&dir, PASSWORD);
    let server = Server::start(&["--password-file", &file, "--size", "320x240"]);
    // Nothing without it; a page load goes to the login page; tools are
    // asked for Basic.
    for path in [
        "/api/status",
        "/video_feed",
        "/snapshot.jpg",
        "/metrics",
        "/api/recordings",
    ] {
        let (code, headers, _) = send("GET", &server.url(path), &[], "");
        assert_eq!(code, 401, "{path}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "{path}"
        );
    }
    let (code, headers, _) = send("GET", &server.url("/"), &[("Accept", "text/html")], "");
    assert_eq!(
        (code, headers["location"].to_str().unwrap()),
        (303, "/login")
    );
    // The page's own requests get no Basic challenge (no browser dialog).
    let (code, headers, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("X-Requested-With", "blackbox")],
        "",
    );
    assert_eq!(code, 401);
    assert!(!headers.contains_key("www-authenticate"));
    // Public: the login page and one word of health, no counters.
    let (code, _, body) = send("GET", &server.url("/login"), &[], "");
    assert_eq!(code, 200);
    assert!(body.contains("name=\"password\""));
    let (code, _, body) = send("GET", &server.url("/healthz"), &[], "");
    assert_eq!((code, body.trim()), (200, "ok"));

    // HTTP Basic for tools and players.
    let auth = basic(PASSWORD);
    assert!(recording(&server, &auth));
    let mut feed = {
        let res = agent()
            .get(&server.url("/video_feed"))
            .header("Authorization", &auth)
            .call()
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.into_body().into_reader()
    };
    let mut first = vec![0u8; 4096];
    std::io::Read::read_exact(&mut feed, &mut first).unwrap();
    assert!(first.starts_with(b"--blackboxframe"));

    // A browser session.
    let cookie = login(&server);
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 200);
    let (code, _, _) = send("GET", &server.url("/"), &[("Cookie", &cookie)], "");
    assert_eq!(code, 200);
    // No CORS, ever.
    let (_, headers, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        "",
    );
    assert!(
        !headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{headers:?}"
    );
    // Logout ends it.
    let (code, headers, _) = send(
        "POST",
        &server.url("/logout"),
        &[("Cookie", &cookie), ("Origin", &origin(&server))],
        "",
    );
    assert_eq!(
        (code, headers["location"].to_str().unwrap()),
        (303, "/login")
    );
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 401);
}

#[test]
fn failed_logins_are_limited_per_address_and_logged() {
    let dir = TempDir::new("auth-limit");
    let file = common::password_file(&dir, PASSWORD);
    let mut server = Server::start(&["--password-file", &file, "--size", "320x240"]);
    for i in 0..5 {
        let (code, _, body) = send(
            "POST",
            &server.url("/login"),
            &[
                ("Origin", &origin(&server)),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "password=wrong+password",
        );
        assert_eq!(code, 401, "attempt {i}");
        assert!(body.contains("Wrong password"));
    }
    // The sixth, even with the right password, waits.
    let (code, headers, _) = send(
        "POST",
        &server.url("/login"),
        &[
            ("Origin", &origin(&server)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(code, 429);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Basic from the same address waits too.
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", &basic(PASSWORD))],
        "",
    );
    assert_eq!(code, 429);
    let log = server.terminate();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("failed login from 127.0.0.1"))
            .count(),
        5,
        "{log}"
    );
    assert!(
        !log.contains("wrong password") && !log.contains(PASSWORD),
        "no secrets logged"
    );
}

#[test]
fn cross_site_requests_change_nothing() {
    let dir = TempDir::new("auth-csrf");
    let file = common::password_file(&dir, PASSWORD);
    let server = Server::start(&["--password-file", &file, "--size", "320x240"]);
    let cookie = login(&server);
    let auth = basic(PASSWORD);
    let stop = server.url("/api/recording/stop");
    // A cross-site form POST (the browser sends the cookie it holds... if
    // SameSite let it; Origin gives it away either way).
    let (code, _, _) = send(
        "POST",
        &stop,
        &[
            ("Cookie", &cookie),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "x=1",
    );
    assert_eq!(code, 403);
    // A CORS "simple" text/plain POST with a foreign Origin: it stopped the
    // recording before.
    let (code, _, _) = send(
        "POST",
        &stop,
        &[
            ("Authorization", &auth),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        "x",
    );
    assert_eq!(code, 403);
    // A Referer from elsewhere, and an opaque origin.
    for (h, v) in [("Referer", "http://evil.example/page"), ("Origin", "null")] {
        let (code, _, _) = send("POST", &stop, &[("Cookie", &cookie), (h, v)], "");
        assert_eq!(code, 403, "{h}: {v}");
    }
    // A session cookie with neither Origin nor Referer.
    let (code, _, _) = send("POST", &stop, &[("Cookie", &cookie)], "");
    assert_eq!(code, 403);
    let (code, _, _) = send(
        "DELETE",
        &server.url("/api/recordings/00000001-20261126T172600Z.mkv"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 403);
    // A sync point: an event goes through the recorder's mailbox after
    // anything sent before it; once it shows, a stop would have too.
    let (code, _, _) = send(
        "POST",
        &server.url("/api/events"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(code, 202);
    server_wait_event(&server, &auth);
    assert!(recording(&server, &auth), "still recording after all of it");
    // A foreign Host (DNS rebinding), even with the password.
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", &auth), ("Host", "evil.example")],
        "",
    );
    assert_eq!(code, 421);
    // The page itself, and a tool with Basic and no Origin, may.
    let (code, _, _) = send(
        "POST",
        &stop,
        &[("Cookie", &cookie), ("Origin", &origin(&server))],
        "",
    );
    assert_eq!(code, 200);
    wait_recording(&server, &auth, false);
    let (code, _, _) = send(
        "POST",
        &server.url("/api/recording/start"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(code, 200);
    wait_recording(&server, &auth, true);
}

#[test]
fn a_password_change_ends_every_session() {
    let dir = TempDir::new("auth-change");
    let file = common::password_file(&dir, PASSWORD);
    let server = Server::start(&["--password-file", &file, "--size", "320x240"]);
    let cookie = login(&server);
    let change = |current: &str, new: &str| {
        send(
            "POST",
            &server.url("/api/password"),
            &[
                ("Cookie", &cookie),
                ("Origin", &origin(&server)),
                ("Content-Type", "application/json"),
            ],
            &serde_json::json!({ "current": current, "new": new }).to_string(),
        )
        .0
    };
    assert_eq!(change("not it", "another long password"), 403);
    assert_eq!(change(PASSWORD, "short"), 400);
    assert_eq!(change(PASSWORD, "another long password"), 204);
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 401, "the session ended");
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", &basic("another long password"))],
        "",
    );
    assert_eq!(code, 200);
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", &basic(PASSWORD))],
        "",
    );
    assert_eq!(code, 401);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("$argon2id$")
    );
}

#[test]
fn without_a_password_only_loopback_and_still_no_cross_site_changes() {
    // (Beyond loopback without a password, the web side is closed and the
    // recorder runs: tests/hostile.rs.)
    let out = Command::new(common::BIN)
        .args(["run", "--tap", "0.0.0.0:9000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "the tap is loopback only");

    let server = Server::start(&["--size", "320x240"]);
    let (code, _, _) = send(
        "POST",
        &server.url("/api/recording/stop"),
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        "x",
    );
    assert_eq!(code, 403);
    let (code, _, _) = send(
        "GET",
        &server.url("/api/status"),
        &[("Host", "evil.example")],
        "",
    );
    assert_eq!(code, 421);
    // Recording starts with the recorder thread (a moment after the port
    // is announced); the refused stop changed nothing.
    let st = server.wait_status(60, "recording", |st| st["recorder"]["recording"] == true);
    assert_eq!(st["auth"]["required"], false);
}

#[test]
fn firstboot_makes_a_unique_password_once() {
    let dir = TempDir::new("auth-firstboot");
    let file = dir.0.join("password");
    let shown = dir.0.join("blackbox-password.txt");
    let run = || {
        Command::new(common::BIN)
            .arg("firstboot")
            .arg("--password-file")
            .arg(&file)
            .arg("--show-in")
            .arg(&shown)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let clear = stdout
        .split("password is ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(std::fs::read_to_string(&shown).unwrap().contains(clear));
    let out = run();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already set"));
    let server = Server::start(&[
        "--password-file",
        file.to_str().unwrap(),
        "--size",
        "320x240",
    ]);
    let (code, _, body) = send(
        "GET",
        &server.url("/api/status"),
        &[("Authorization", &basic(clear))],
        "",
    );
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        st["auth"]["first_boot"], true,
        "the page asks for a new one"
    );
}
