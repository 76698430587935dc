//! The GPS end to end with the real gpsd (Debian's package): the test is
//! the receiver, feeding NMEA over TCP to a gpsd it starts
//! (`gpsd -N -n -S PORT tcp://127.0.0.1:FEED`), and blackbox reads gpsd's
//! JSON. A drive of three minutes with known positions and speeds (replayed
//! at five fixes a second) must come back out of the
//! recordings exactly (positions to 1e-6°, speed to 0.1 m/s, times to the
//! second), as GPX that gpsbabel reads, through gpsd restarts and a power
//! cut; with no gpsd at all recording goes on and the status says why.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blackbox::gps::Fix;
use blackbox::record::scan::{self, Depth};
use common::{RESERVE, Server, TempDir, config_file, get};

/// One fed fix.
#[derive(Clone, Debug)]
struct Fed {
    unix: u64,
    lat: f64,
    lon: f64,
    speed: f64,
    track: f64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nmea(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{sum:02X}\r\n")
}

/// `ddmm.mmmmmm` and the hemisphere, as NMEA writes an angle.
fn angle(v: f64, degree_digits: usize, pos: char, neg: char) -> (String, char) {
    let a = v.abs();
    let deg = a.trunc();
    let min = (a - deg) * 60.0;
    (
        format!("{:0w$}{:09.6}", deg as u32, min, w = degree_digits),
        if v >= 0.0 { pos } else { neg },
    )
}

/// The RMC and GGA sentences of one fix.
fn sentences(f: &Fed) -> String {
    let secs = f.unix % 86_400;
    let days = f.unix / 86_400;
    let civil = blackbox::clock::Utc::from_system(UNIX_EPOCH + Duration::from_secs(f.unix));
    let date = civil.compact();
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let _ = days;
    let ddmmyy = format!("{}{}{}", &date[6..8], &date[4..6], &date[2..4]);
    let (lat, ns) = angle(f.lat, 2, 'N', 'S');
    let (lon, ew) = angle(f.lon, 3, 'E', 'W');
    let knots = f.speed / 0.514_444;
    let rmc = format!(
        "GPRMC,{hh:02}{mm:02}{ss:02}.000,A,{lat},{ns},{lon},{ew},{knots:.4},{:.2},{ddmmyy},,,A",
        f.track
    );
    let gga =
        format!("GPGGA,{hh:02}{mm:02}{ss:02}.000,{lat},{ns},{lon},{ew},1,08,0.9,34.5,M,46.9,M,,");
    // A u-blox receiver's order: RMC first.
    nmea(&rmc) + &nmea(&gga)
}

/// A drive: `n` fixes a second apart from `start`, heading north-east at
/// changing speeds.
fn drive(start: u64, n: u64, from: usize) -> Vec<Fed> {
    (0..n)
        .map(|i| {
            let k = (from as u64 + i) as f64;
            Fed {
                unix: start + i,
                lat: 52.5 + k * 0.000_123_4,
                lon: 13.4 + k * 0.000_098_7,
                speed: 8.0 + (k * 1.3) % 9.0,
                track: (10.0 + k * 7.0) % 360.0,
            }
        })
        .collect()
}

/// The receiver: gpsd connects to it and reads NMEA.
struct Receiver {
    listener: TcpListener,
    port: u16,
    conn: Option<TcpStream>,
}

impl Receiver {
    fn new() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Receiver {
            listener,
            port,
            conn: None,
        }
    }

    /// Waits for gpsd to connect (again).
    fn accept(&mut self) {
        self.listener.set_nonblocking(false).unwrap();
        let (c, _) = self.listener.accept().unwrap();
        self.conn = Some(c);
    }

    /// Sends a fix; a gpsd that went away is not an error here.
    fn send(&mut self, f: &Fed) {
        if let Some(c) = self.conn.as_mut() {
            let _ = c.write_all(sentences(f).as_bytes());
        }
    }
}

/// A gpsd of the test's own, on its own port, reading the receiver.
struct Gpsd {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Gpsd {
    fn start(receiver_port: u16, port: u16) -> Gpsd {
        let dir = TempDir::new("gpsd");
        let gpsd = ["/usr/sbin/gpsd", "/usr/bin/gpsd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("gpsd is installed (scripts/deps.sh)");
        let child = Command::new(gpsd)
            .args(["-N", "-n", "-S", &port.to_string(), "-F"])
            .arg(dir.0.join("control"))
            .arg(format!("tcp://127.0.0.1:{receiver_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gpsd");
        Gpsd {
            child,
            port,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gpsd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn blackbox(data: &TempDir, gpsd_port: u16, segment_seconds: u32) -> Server {
    let cfg = config_file(
        data,
        &format!(
            "[camera]\nsize = \"320x240\"\nfps = 10\n[record]\nsegment_seconds = {segment_seconds}\n{RESERVE}"
        ),
    );
    let dir = data.0.join("data");
    Server::start(&[
        "--config",
        &cfg,
        "--data",
        dir.to_str().unwrap(),
        "--gps-server",
        &format!("127.0.0.1:{gpsd_port}"),
    ])
}

/// A receiver, a gpsd reading it (connected), and gpsd's port.
fn receiver_and_gpsd() -> (Receiver, Gpsd, u16) {
    let mut receiver = Receiver::new();
    let gpsd_port = free_port();
    let gpsd = Gpsd::start(receiver.port, gpsd_port);
    receiver.accept();
    (receiver, gpsd, gpsd_port)
}

/// Like [`receiver_and_gpsd`], with blackbox recording in `data` and
/// connected to that gpsd.
fn drive_rig(data: &TempDir, segment_seconds: u32) -> (Receiver, Gpsd, Server) {
    let (receiver, gpsd, gpsd_port) = receiver_and_gpsd();
    let server = blackbox(data, gpsd_port, segment_seconds);
    server.wait_status(60, "blackbox connected to gpsd", |s| {
        s["gps"]["state"] == "no-fix"
    });
    (receiver, gpsd, server)
}

/// Every finished segment in the data directory, in recording order.
fn segments(data: &TempDir) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["recordings", "events"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(data.0.join("data").join(d))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
        .collect();
    out.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    out
}

/// The fixes in a file, with their offsets (ms), and its frames' last
/// offset.
fn track_of(path: &Path) -> (Vec<(u64, Fix)>, Option<u64>) {
    let file = std::fs::File::open(path).unwrap();
    let s = scan::scan_file(&file, Depth::Checksums).unwrap();
    let fixes = s
        .samples
        .iter()
        .map(|r| {
            let bytes = scan::read_frame(&file, r, true).unwrap();
            (r.ts_ms, serde_json::from_slice::<Fix>(&bytes).unwrap())
        })
        .collect();
    (fixes, s.frames.last().map(|f| f.ts_ms))
}

fn unix_of(f: &Fix) -> u64 {
    blackbox::clock::parse_iso_utc(f.time.as_deref().unwrap())
        .unwrap_or_else(|| panic!("a fix without a time: {f:?}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every recorded fix matches the fed one of the same second.
fn assert_matches(recorded: &[Fix], fed: &[Fed]) {
    for r in recorded {
        let t = unix_of(r);
        let f = fed
            .iter()
            .find(|f| f.unix == t)
            .unwrap_or_else(|| panic!("a recorded fix at {t} that was never fed: {r:?}"));
        assert!((r.lat - f.lat).abs() < 1e-6, "lat {} vs {}", r.lat, f.lat);
        assert!((r.lon - f.lon).abs() < 1e-6, "lon {} vs {}", r.lon, f.lon);
        let speed = r.speed.unwrap();
        assert!(
            (speed - f.speed).abs() < 0.1,
            "speed {speed} vs {}",
            f.speed
        );
        assert!((r.track.unwrap() - f.track).abs() < 0.1);
        assert_eq!(r.mode, 3);
    }
}

/// Feeds `fixes` at one a second of real time.
fn feed(receiver: &mut Receiver, fixes: &[Fed]) {
    feed_at(receiver, fixes, 1);
}

/// Feeds `fixes` at `per_second` a second of real time (a drive replayed
/// faster than it was driven, as gpsfake can: each fix keeps its own time).
fn feed_at(receiver: &mut Receiver, fixes: &[Fed], per_second: u32) {
    let t0 = Instant::now();
    for (i, f) in fixes.iter().enumerate() {
        let due = t0 + Duration::from_secs(1) * i as u32 / per_second;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        receiver.send(f);
    }
}

fn gpsbabel_points(gpx: &[u8], dir: &TempDir, name: &str) -> Vec<(f64, f64)> {
    let path = dir.0.join(name);
    std::fs::write(&path, gpx).unwrap();
    let lint = Command::new("xmllint")
        .args(["--noout"])
        .arg(&path)
        .output()
        .expect("xmllint is installed (scripts/deps.sh)");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    let out = Command::new("gpsbabel")
        .args(["-t", "-i", "gpx", "-f"])
        .arg(&path)
        .args(["-o", "unicsv", "-F", "-"])
        .output()
        .expect("gpsbabel is installed (scripts/deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "gpsbabel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (lat, lon) = (col("Latitude"), col("Longitude"));
    lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[lat].parse().unwrap(), v[lon].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_drive_comes_back_out_of_the_recordings_exactly() {
    let data = TempDir::new("gps-drive");
    let (mut receiver, _gpsd, mut server) = drive_rig(&data, 5);
    // Three minutes of driving, replayed at five fixes a second.
    let fed = drive(now_unix(), 180, 0);
    feed(&mut receiver, &fed[..1]);
    let st = server.wait_status(60, "a fix", |s| s["gps"]["state"] == "fix");
    assert_eq!(st["gps"]["fix"], "3d");
    assert!((st["gps"]["lat"].as_f64().unwrap() - fed[0].lat).abs() < 1e-6);
    assert!((st["gps"]["speed"].as_f64().unwrap() - fed[0].speed).abs() < 0.1);
    let (_, _, metrics) = get(&server.url("/metrics"));
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("\nblackbox_gps_fix 3\n"), "{metrics}");
    feed_at(&mut receiver, &fed[1..], 5);
    // The last fix goes into the file with the next frame.
    server.wait_status(30, "every fix written", |s| {
        s["recorder"]["gps_samples"].as_u64() >= Some(fed.len() as u64)
    });
    server.terminate();

    let files = segments(&data);
    assert!(
        files.len() >= 6,
        "a drive of 36 s in 5 s segments: {files:?}"
    );
    let mut recorded = Vec::new();
    for f in &files {
        let (fixes, last_frame) = track_of(f);
        for (ts, _) in &fixes {
            assert!(Some(*ts) <= last_frame.map(|l| l + 1000), "{}", f.display());
        }
        recorded.extend(fixes.into_iter().map(|(_, fix)| fix));
    }
    let times: Vec<u64> = recorded.iter().map(unix_of).collect();
    let fed_times: Vec<u64> = fed.iter().map(|f| f.unix).collect();
    assert_eq!(times, fed_times, "every fix once, in order, none lost");
    assert_matches(&recorded, &fed);
    // ffprobe lists the track beside the video.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&files[1])
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&out.stdout);
    assert!(
        streams.contains("mjpeg,video") && streams.contains("subrip,subtitle"),
        "{streams}"
    );

    // GPX per segment and for the trip, read by gpsbabel.
    let server = blackbox(&data, free_port(), 5);
    let name = files[1].file_name().unwrap().to_str().unwrap().to_string();
    let (code, headers, gpx) = get(&server.url(&format!(
        "/recordings/{}.gpx",
        name.strip_suffix(".mkv").unwrap()
    )));
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/gpx+xml");
    let in_file = track_of(&files[1]).0;
    let points = gpsbabel_points(&gpx, &data, "segment.gpx");
    assert_eq!(points.len(), in_file.len());
    for ((lat, lon), (_, fix)) in points.iter().zip(&in_file) {
        assert!((lat - fix.lat).abs() < 1e-6 && (lon - fix.lon).abs() < 1e-6);
    }
    let (code, _, trip) = get(&server.url(&format!(
        "/api/trips?from={}&to={}",
        fed[0].unix,
        fed[fed.len() - 1].unix
    )));
    assert_eq!(code, 200);
    let points = gpsbabel_points(&trip, &data, "trip.gpx");
    assert_eq!(points.len(), fed.len());
    for ((lat, lon), f) in points.iter().zip(&fed) {
        assert!((lat - f.lat).abs() < 1e-6 && (lon - f.lon).abs() < 1e-6);
    }
    // The page's replay reads the same fixes with their offsets.
    let track = common::testkit_get_json(&server.url(&format!("/recordings/{name}/track")));
    assert_eq!(track["points"].as_array().unwrap().len(), in_file.len());
    for bad in [
        "/api/trips",
        "/api/trips?from=x",
        "/api/trips?from=0&to=999999",
    ] {
        assert_eq!(get(&server.url(bad)).0, 400, "{bad}");
    }
    assert_eq!(get(&server.url("/recordings/nope.gpx")).0, 400);
}

#[test]
fn gpsd_restarting_mid_drive_leaves_a_gap_and_no_lost_frame() {
    let data = TempDir::new("gps-restart");
    let (mut receiver, mut gpsd, mut server) = drive_rig(&data, 5);
    let gpsd_port = gpsd.port;
    let start = now_unix();
    let before = drive(start, 4, 0);
    feed(&mut receiver, &before);
    server.wait_status(30, "the first fixes written", |s| {
        s["recorder"]["gps_samples"].as_u64() >= Some(before.len() as u64)
    });
    gpsd.kill();
    let st = server.wait_status(60, "gpsd missed", |s| s["gps"]["state"] == "no-gpsd");
    assert!(st["gps"]["why"].as_str().unwrap().contains("gpsd"), "{st}");
    let written = st["recorder"]["frames_written"].as_u64().unwrap();
    server.wait_status(60, "recording on without gpsd", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(written + 20)
    });
    // gpsd back on the same port; it reconnects to the receiver.
    let _gpsd = Gpsd::start(receiver.port, gpsd_port);
    receiver.accept();
    server.wait_status(90, "reconnected", |s| s["gps"]["state"] == "no-fix");
    let after = drive(now_unix(), 4, 20);
    feed(&mut receiver, &after);
    let st = server.wait_status(30, "the later fixes written", |s| {
        s["recorder"]["gps_samples"].as_u64() >= Some((before.len() + after.len()) as u64)
    });
    assert_eq!(st["recorder"]["frames_lost"], 0);
    assert_eq!(st["recorder"]["dropped"], 0);
    assert!(st["gps"]["connects"].as_u64() >= Some(2));
    let log = server.terminate();
    let missed = log.matches("gpsd at 127.0.0.1").count();
    assert!(
        (1..=3).contains(&missed),
        "a missing gpsd is logged once per run, not per attempt: {log}"
    );
    let recorded: Vec<Fix> = segments(&data)
        .iter()
        .flat_map(|f| track_of(f).0)
        .map(|(_, f)| f)
        .collect();
    let all: Vec<Fed> = before.iter().chain(&after).cloned().collect();
    let times: Vec<u64> = recorded.iter().map(unix_of).collect();
    assert_eq!(times, all.iter().map(|f| f.unix).collect::<Vec<_>>());
    assert_matches(&recorded, &all);
}

#[test]
fn a_power_cut_mid_drive_keeps_every_complete_fix_and_no_more() {
    let data = TempDir::new("gps-cut");
    let (mut receiver, _gpsd, mut server) = drive_rig(&data, 60);
    let fed = drive(now_unix(), 6, 0);
    feed(&mut receiver, &fed);
    server.wait_status(30, "fixes written", |s| {
        s["recorder"]["gps_samples"].as_u64() >= Some(fed.len() as u64)
    });
    server.child.kill().unwrap();
    let _ = server.child.wait();
    // Recovery at the next start.
    let mut again = blackbox(&data, free_port(), 5);
    again.terminate();
    let files = segments(&data);
    assert!(!files.is_empty());
    let mut recorded = Vec::new();
    for f in &files {
        let (fixes, last_frame) = track_of(f);
        let last_frame = last_frame.unwrap();
        for (ts, _) in &fixes {
            assert!(*ts <= last_frame, "the track ends with its video");
        }
        let (frames, _) = common::ffmpeg_decode(f);
        assert!(frames > 0);
        recorded.extend(fixes.into_iter().map(|(_, x)| x));
    }
    assert!(recorded.len() >= fed.len() - 1, "{recorded:?}");
    assert_matches(&recorded, &fed);
}

#[test]
fn no_gpsd_is_normal_and_the_status_says_why() {
    let data = TempDir::new("gps-none");
    // Nothing listens on this port.
    let mut server = blackbox(&data, free_port(), 5);
    let st = server.wait_status(60, "gpsd missed", |s| s["gps"]["state"] == "no-gpsd");
    assert_eq!(st["gps"]["fix"], "none");
    assert!(
        st["gps"]["why"]
            .as_str()
            .unwrap()
            .contains("does not answer")
    );
    server.wait_status(60, "recording without GPS", |s| {
        s["recorder"]["frames_written"].as_u64() > Some(30)
    });
    let log = server.terminate();
    assert_eq!(
        log.matches("gpsd at 127.0.0.1").count(),
        1,
        "logged once: {log}"
    );
    // Switched off, it is "off" and connects to nothing.
    let server = Server::start(&["--gps", "off"]);
    assert_eq!(server.status()["gps"]["state"], "off");
}

#[test]
fn the_caption_in_the_picture_shows_the_time_and_the_fed_speed() {
    let data = TempDir::new("gps-caption");
    let (mut receiver, _gpsd, gpsd_port) = receiver_and_gpsd();
    let cfg = config_file(
        &data,
        &format!(
            "[camera]\nsize = \"1280x720\"\nfps = 5\ncaption = [\"time\", \"speed\", \"position\"]\n[record]\nenabled = false\n{RESERVE}"
        ),
    );
    let server = Server::start(&[
        "--config",
        &cfg,
        "--gps-server",
        &format!("127.0.0.1:{gpsd_port}"),
    ]);
    let size = blackbox::frame::Size::new(1280, 720);
    // Before any fix: no speed, no position.
    let (_, _, jpeg) = get(&server.url("/snapshot.jpg"));
    let (luma, w, _) = common::decode_luma(&jpeg);
    let lines = blackbox::caption::read_lines(&luma, w, size, 1);
    assert!(lines[0].ends_with("UTC  -- KM/H  NO GPS"), "{lines:?}");
    server.wait_status(60, "connected", |s| s["gps"]["state"] == "no-fix");
    let mut fed = drive(now_unix(), 3, 0);
    for f in &mut fed {
        f.speed = 15.0; // 54 km/h
    }
    feed(&mut receiver, &fed);
    server.wait_status(30, "the fed speed", |s| {
        s["gps"]["speed"]
            .as_f64()
            .is_some_and(|v| (v - 15.0).abs() < 0.01)
    });
    // A frame captured after the fix arrived (an idle camera's snapshot
    // may be the last frame it made).
    let seen = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (headers, text) = loop {
        let (_, headers, jpeg) = get(&server.url("/snapshot.jpg"));
        let captured: f64 = headers["x-timestamp"].parse().unwrap();
        if captured > seen {
            let (luma, w, _) = common::decode_luma(&jpeg);
            break (
                headers,
                blackbox::caption::read_lines(&luma, w, size, 1).remove(0),
            );
        }
        assert!(Instant::now() < deadline, "no new frame");
        std::thread::sleep(Duration::from_millis(100));
    };
    let last = &fed[fed.len() - 1];
    let expected_position = format!("N{:.5} E{:.5}", last.lat, last.lon);
    assert!(
        text.ends_with(&format!("UTC  54 KM/H  {expected_position}")),
        "{text:?}"
    );
    // The time is the frame's own capture time, to the second.
    let captured: f64 = headers["x-timestamp"].parse().unwrap();
    let shown = blackbox::clock::Utc::from_system(UNIX_EPOCH + Duration::from_secs_f64(captured))
        .display_seconds();
    assert!(text.starts_with(&shown), "{text:?} vs {shown}");
}
