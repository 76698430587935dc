//! `blackbox-hil SUITE`: the tests that run inside the qemu VMs, against the
//! kernel's vivid driver (a real V4L2 device). Started by the VM's `/init`
//! with vivid loaded as `/dev/video0`; prints one line per test and a
//! closing `N passed, M failed`, and exits non-zero on any failure.
//!
//! vivid is loaded with two instances (`n_devs=2`): `/dev/video0` and
//! `/dev/video1`, two cameras with controls of their own.
//!
//! Suites: `x86_64` (capture at several formats and rates, `probe`, two
//! cameras recorded at once while one is disconnected, `--source auto`
//! finding two Pi cameras (a busybox stand-in for rpicam-vid) and both
//! vivid cameras, fault injection
//! through vivid's own controls, unloading and reloading the module),
//! `aarch64` (`probe`, a capture test, the two cameras and the four found
//! by auto, for the ARM build), and
//! `bench` (frame rates received against the driver's, printed, never a
//! failure: the guest is emulated and its speed is the host's business).
//!
//! The tests assert correctness only: every part a whole JPEG of the right
//! size in capture order, every sequence number the driver issued and every
//! frame captured accounted for by a counter. How many frames per second an
//! emulated guest sustains is what the `bench` suite prints.
//!
//! Each test starts the real `blackbox` binary on 127.0.0.1 and talks to it
//! over HTTP like a browser would.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod uinput;

use blackbox::capture::v4l2;
use blackbox_testkit as kit;
use serde_json::Value;

const DEVICE: &str = "/dev/video0";
/// The second vivid instance: the rear camera.
const REAR: &str = "/dev/video1";
const BLACKBOX: &str = "/bin/blackbox";
const VIVID_KO: &str = "/lib/modules/vivid.ko";
const VIVID_PARAMS: &str = "n_devs=2 node_types=0x1,0x1";

type Outcome = Result<String, String>;
/// A test on its own blackbox.
type Standalone = (&'static str, Box<dyn Fn() -> Outcome>);
/// A fault test on the shared, running blackbox.
type FaultTest = (&'static str, fn(&Blackbox) -> Outcome);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($fmt)+));
        }
    };
}

/// A running blackbox, killed on drop.
struct Blackbox {
    child: Child,
    port: u16,
    log: String,
    /// Its data directory.
    data: String,
}

/// How long a start may take before it counts as a hang: far beyond a
/// slow start under emulation, well inside the VM's own timeout.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(120);

static STARTS: AtomicU64 = AtomicU64::new(0);

impl Blackbox {
    fn start(args: &[&str]) -> Result<Blackbox, String> {
        let log = format!(
            "/tmp/blackbox-{}.log",
            STARTS.fetch_add(1, Ordering::SeqCst)
        );
        let stderr = File::create(&log).map_err(|e| e.to_string())?;
        let data = format!("/tmp/blackbox-data-{}", STARTS.load(Ordering::SeqCst));
        let mut child = Command::new(BLACKBOX)
            .arg("run")
            .args(["--listen", "127.0.0.1:0", "--data", &data])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {BLACKBOX}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // The first line, read on a thread so that a blackbox that never
        // announces (a hang at start-up) fails this test with its log
        // rather than stalling the suite until the VM's timeout.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            let first = lines.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let mut sink = String::new();
            let _ = lines.read_to_string(&mut sink);
        });
        let line = match rx.recv_timeout(ANNOUNCE_WITHIN) {
            Ok(first) => first.map_err(|e| e.to_string())?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "blackbox did not announce its port in {} s; its log: {tail}",
                    ANNOUNCE_WITHIN.as_secs()
                ));
            }
        };
        let port = line
            .trim()
            .strip_prefix("blackbox: live view at http://")
            .and_then(|rest| rest.trim_end_matches('/').rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("blackbox did not announce its port: {line:?}"))?;
        Ok(Blackbox {
            child,
            port,
            log,
            data,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn status(&self) -> Result<Value, String> {
        kit::get_json(&self.url("/api/status"))
    }

    fn wait_status(
        &self,
        secs: f64,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let st = self.status()?;
            if check(&st) {
                return Ok(st);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {secs} s waiting for {what}; status {st}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; the exit code.
    fn stop(mut self) -> Result<i32, String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return status
                    .code()
                    .ok_or_else(|| format!("killed by a signal: {status}"));
            }
            if Instant::now() > deadline {
                return Err("still running 5 s after SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(12)..].join("\n    ")
    }
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn num(st: &Value, path: &[&str]) -> f64 {
    let mut v = st;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

/// Reads `n` parts, checking every one: a whole JPEG of the right size,
/// captured after the one before. Returns the seconds it took.
fn read_parts(bb: &Blackbox, n: usize, size: (usize, usize)) -> Result<f64, String> {
    let mut feed = kit::MjpegReader::open(&bb.url("/video_feed"))?;
    // The first parts may predate the reader; start the clock after them.
    for _ in 0..3 {
        feed.next_part().map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    let mut last_ts = 0.0f64;
    for i in 0..n {
        let part = feed.next_part().map_err(|e| e.to_string())?;
        ensure!(
            part.headers.get("content-type").map(String::as_str) == Some("image/jpeg"),
            "part {i} has content-type {:?}",
            part.headers.get("content-type")
        );
        ensure!(
            kit::is_whole_jpeg(&part.data),
            "part {i} is not a whole JPEG"
        );
        let dims = if i == 0 {
            // One full decode; the header is enough for the rest (decoding
            // every frame in the emulated guest would slow the client).
            let (_, w, h) = kit::decode_luma(&part.data)?;
            Some((w, h))
        } else {
            kit::jpeg_dimensions(&part.data)
        };
        ensure!(
            dims == Some(size),
            "part {i} is {dims:?}, expected {size:?}"
        );
        let ts: f64 = part
            .headers
            .get("x-timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or(format!("part {i} has no X-Timestamp"))?;
        ensure!(
            ts > last_ts,
            "part {i} was captured before the one before it"
        );
        last_ts = ts;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Every frame captured between two status readings went somewhere: encoded,
/// passed through, captured for nobody, or dropped and counted (a few may
/// still be with the encoders); and every sequence number the driver issued
/// was captured or counted as skipped or bad.
fn frames_accounted(before: &Value, after: &Value, workers: f64) -> Result<String, String> {
    let delta = |path: &[&str]| num(after, path) - num(before, path);
    let captured = delta(&["frames", "captured"]);
    let outcomes = delta(&["frames", "encoded"])
        + delta(&["frames", "passed_through"])
        + delta(&["frames", "idle"])
        + delta(&["drops", "encoder_busy"])
        + delta(&["drops", "encode_error"])
        + delta(&["drops", "convert"])
        + delta(&["drops", "corrupt"]);
    ensure!(
        (captured - outcomes).abs() <= workers + 2.0,
        "{captured} frames captured, {outcomes} accounted for"
    );
    let t0 = tally(before);
    let t1 = tally(after);
    let span = t1.sequence - t0.sequence;
    let seen = (t1.captured - t0.captured) + (t1.gaps - t0.gaps) + (t1.bad - t0.bad);
    ensure!(
        t1.reconnects > t0.reconnects || (seen - span).abs() <= 1.0,
        "accounted {seen} frames for a sequence span of {span}"
    );
    Ok(format!("{captured} captured, all accounted for"))
}

/// Starts blackbox on vivid at `size` and `fps` in `format` from `input`.
fn start_capture(
    input: u32,
    size: (usize, usize),
    fps: u32,
    format: &str,
) -> Result<Blackbox, String> {
    let size_arg = format!("{}x{}", size.0, size.1);
    let (input_arg, fps_arg) = (input.to_string(), fps.to_string());
    Blackbox::start(&[
        "--source",
        "v4l2",
        "--device",
        DEVICE,
        "--input",
        &input_arg,
        "--size",
        &size_arg,
        "--fps",
        &fps_arg,
        "--pixel-format",
        format,
        "--record",
        "off",
    ])
}

/// Correctness of capture at a size, rate and format: negotiation, every
/// part, every frame accounted for, a clean exit. Rates are printed.
fn capture(input: u32, size: (usize, usize), fps: u32, format: &str) -> Outcome {
    let bb = start_capture(input, size, fps, format)?;
    let run = || -> Outcome {
        let st = bb.wait_status(60.0, "streaming", |st| st["source"]["state"] == "streaming")?;
        ensure!(
            st["source"]["pixel_format"] == format,
            "negotiated {}",
            st["source"]["pixel_format"]
        );
        ensure!(
            st["source"]["width"] == size.0 && st["source"]["height"] == size.1,
            "negotiated {}x{}",
            st["source"]["width"],
            st["source"]["height"]
        );
        let before = bb.status()?;
        let secs = read_parts(&bb, 60, size)?;
        let after = bb.status()?;
        let accounted = frames_accounted(&before, &after, num(&after, &["encode", "workers"]))?;
        Ok(format!(
            "60 parts in {secs:.1} s ({:.1} fps received; driver {:.1} fps; encode {:.1} ms); {accounted}",
            60.0 / secs,
            num(&after, &["fps", "capture"]),
            num(&after, &["encode", "mean_ms"]),
        ))
    };
    let result = run();
    let code = bb.stop();
    let info = result?;
    ensure!(code == Ok(0), "blackbox exited with {code:?}");
    Ok(info)
}

/// The benchmark: frames per second received by a viewer against what the
/// driver delivered, for each case, printed as a table.
fn bench() -> Vec<(&'static str, Outcome)> {
    /// (name, input, size, fps, pixel format)
    type Case = (&'static str, u32, (usize, usize), u32, &'static str);
    let cases: [Case; 4] = [
        ("640x480 YUYV 25 fps (webcam)", 0, (640, 480), 25, "yuyv"),
        ("1280x720 NV12 12 fps (webcam)", 0, (1280, 720), 12, "nv12"),
        ("1280x720 NV12 30 fps (HDMI)", 3, (1280, 720), 30, "nv12"),
        ("1280x720 NV12 60 fps (HDMI)", 3, (1280, 720), 60, "nv12"),
    ];
    println!(
        "     | case                            driver fps  received fps  ratio  encode ms  encoder busy"
    );
    let mut out = Vec::new();
    for (name, input, size, fps, format) in cases {
        let outcome = (|| -> Outcome {
            let bb = start_capture(input, size, fps, format)?;
            bb.wait_status(60.0, "streaming", |st| st["source"]["state"] == "streaming")?;
            std::thread::sleep(Duration::from_secs(2)); // the rate window fills
            let before = bb.status()?;
            let n = (fps as usize * 6).max(30);
            let secs = read_parts(&bb, n, size)?;
            let after = bb.status()?;
            let _ = bb.stop();
            let driver = num(&after, &["fps", "capture"]);
            let received = n as f64 / secs;
            let busy =
                num(&after, &["drops", "encoder_busy"]) - num(&before, &["drops", "encoder_busy"]);
            println!(
                "     | {name:<31} {driver:>10.1}  {received:>12.1}  {:>5.2}  {:>9.1}  {busy:>12}",
                received / driver.max(0.001),
                num(&after, &["encode", "mean_ms"]),
            );
            Ok(format!("{received:.1} of {driver:.1} fps"))
        })();
        out.push((name, outcome));
    }
    out
}

fn auto_picks_the_camera() -> Outcome {
    let bb = Blackbox::start(&["--source", "auto", "--size", "640x480", "--fps", "25"])?;
    let st = bb.wait_status(60.0, "streaming", |st| st["source"]["state"] == "streaming")?;
    ensure!(
        st["source"]["kind"] == "v4l2",
        "auto chose {}",
        st["source"]["kind"]
    );
    let device = st["source"]["device"].as_str().unwrap_or("").to_string();
    ensure!(device.starts_with(DEVICE), "auto opened {device}");
    let code = bb.stop();
    ensure!(code == Ok(0), "blackbox exited with {code:?}");
    Ok(format!("auto chose {device}"))
}

fn probe() -> Outcome {
    let out = Command::new(BLACKBOX)
        .args(["probe", DEVICE, "--json"])
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let dev = &reports[0];
    ensure!(dev["driver"] == "vivid", "driver {}", dev["driver"]);
    let inputs: Vec<&str> = dev["inputs"]
        .as_array()
        .ok_or("no inputs")?
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    ensure!(inputs.len() == 4, "inputs {inputs:?}");
    ensure!(
        inputs.iter().any(|n| n.contains("Webcam")),
        "no webcam input in {inputs:?}"
    );
    ensure!(
        inputs.iter().any(|n| n.contains("HDMI")),
        "no HDMI input in {inputs:?}"
    );
    let formats: Vec<&str> = dev["formats"]
        .as_array()
        .ok_or("no formats")?
        .iter()
        .filter_map(|f| f["fourcc"].as_str())
        .collect();
    for want in ["YUYV", "NV12"] {
        ensure!(formats.contains(&want), "no {want} in {formats:?}");
    }
    let yuyv = dev["formats"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["fourcc"] == "YUYV"))
        .ok_or("no YUYV")?;
    ensure!(
        yuyv["sizes"].as_array().is_some_and(|s| !s.is_empty()) || !yuyv["size_range"].is_null(),
        "YUYV lists no sizes"
    );
    let text = Command::new(BLACKBOX)
        .args(["probe"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text.stdout);
    ensure!(
        text.contains("YUYV") && text.contains("HDMI"),
        "text probe lacks YUYV/HDMI:\n{text}"
    );
    for line in text.lines().take(14) {
        println!("     | {line}");
    }
    Ok(format!(
        "{} inputs, {} formats",
        inputs.len(),
        formats.len()
    ))
}

/// Watches the stream in the background for the duration of a fault, so
/// that placeholders are generated (they are made only for viewers).
struct Watcher {
    stop: Arc<AtomicBool>,
    parts: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(bb: &Blackbox) -> Watcher {
        let url = bb.url("/video_feed");
        let stop = Arc::new(AtomicBool::new(false));
        let parts = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), parts.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok(mut feed) = kit::MjpegReader::open(&url) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                while !s.load(Ordering::SeqCst) {
                    match feed.next_part() {
                        Ok(_) => {
                            p.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        Watcher {
            stop,
            parts,
            thread: Some(thread),
        }
    }
}

impl Watcher {
    /// Parts received so far (frames and placeholders).
    fn parts(&self) -> u64 {
        self.parts.load(Ordering::SeqCst)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The reader blocks until the next part; blackbox sends one at least
        // once a second (frames or placeholders), so the join is prompt.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn control(name: &str, value: i64) -> Result<(), String> {
    control_on(DEVICE, name, value)
}

fn control_on(device: &str, name: &str, value: i64) -> Result<(), String> {
    v4l2::set_control(Path::new(device), name, value)
        .map_err(|e| format!("setting {name:?} on {device}: {e}"))
}

/// `--source auto` with two Pi cameras (the rpicam-vid stand-in answering
/// for camera 0 and camera 1) and the two vivid cameras: four cameras, the
/// Pi's first (front, rear, then camera3 and camera4), each streaming its
/// own frames.
fn auto_finds_every_camera() -> Outcome {
    let config = "/tmp/auto-cameras.toml";
    std::fs::write(
        config,
        "[camera]\nsource = \"auto\"\nrpicam_path = \"/bin/fake-rpicam-vid\"\nsize = \"320x240\"\n\
         fps = 10\ntimeout = \"5s\"\n[record]\nenabled = false\n",
    )
    .map_err(|e| e.to_string())?;
    let bb = Blackbox::start(&["--config", config])?;
    let run = || -> Outcome {
        let st = bb.wait_status(120.0, "four cameras streaming", |st| {
            st["cameras"].as_array().is_some_and(|c| {
                c.len() == 4 && c.iter().all(|c| c["source"]["state"] == "streaming")
            })
        })?;
        let found: Vec<(String, String)> = st["cameras"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap_or("").to_string(),
                            c["source"]["kind"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want = [
            ("front", "rpicam"),
            ("rear", "rpicam"),
            ("camera3", "v4l2"),
            ("camera4", "v4l2"),
        ];
        ensure!(
            found
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .eq(want.iter().copied()),
            "auto found {found:?}"
        );
        // The stand-in's camera 0 is grey 80, camera 1 grey 200.
        for (id, grey) in [("front", 80i32), ("rear", 200)] {
            let (code, _, jpeg) = kit::get(&bb.url(&format!("/cameras/{id}/snapshot.jpg")))?;
            ensure!(code == 200, "{id}: snapshot HTTP {code}");
            let (luma, w, h) = kit::decode_luma(&jpeg)?;
            let mid = i32::from(luma[luma.len() / 2]);
            ensure!(
                (mid - grey).abs() <= 4 && (w, h) == (320, 240),
                "{id}: {w}x{h}, luma {mid}, expected {grey}"
            );
        }
        Ok(format!("auto found {found:?}"))
    };
    let result = run().map_err(|e| format!("{e}\n    log: {}", bb.log_tail()));
    let code = bb.stop();
    let info = result?;
    ensure!(code == Ok(0), "blackbox exited with {code:?}");
    Ok(info)
}

/// Two vivid cameras recorded at once, the front in YUYV and the rear in
/// NV12; the rear is disconnected and comes back while the front carries
/// on: no error, no reopening, every sequence number of the front's
/// accounted for, and every camera's files whole.
fn two_cameras() -> Outcome {
    let config = "/tmp/two-cameras.toml";
    std::fs::write(
        config,
        format!(
            "[[cameras]]\nid = \"front\"\nsource = \"v4l2\"\ndevice = \"{DEVICE}\"\ninput = 0\n\
             size = \"640x480\"\nfps = 15\npixel_format = \"yuyv\"\n\
             [[cameras]]\nid = \"rear\"\nsource = \"v4l2\"\ndevice = \"{REAR}\"\ninput = 0\n\
             size = \"320x240\"\nfps = 15\npixel_format = \"nv12\"\n\
             [record]\nsegment_seconds = 2\nmin_free = \"1MiB\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let bb = Blackbox::start(&["--config", config])?;
    let run = || -> Outcome {
        let written = |st: &Value, i: usize| {
            st["recorder"]["cameras"][i]["frames_written"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let cams = |st: &Value, i: usize, path: &[&str]| {
            let mut v = &st["cameras"][i];
            for p in path {
                v = &v[*p];
            }
            v.as_f64().unwrap_or(f64::NAN)
        };
        let st = bb.wait_status(120.0, "both cameras recording", |st| {
            (0..2).all(|i| st["cameras"][i]["source"]["state"] == "streaming")
                && st["recorder"]["cameras"][0]["frames_written"]
                    .as_u64()
                    .unwrap_or(0)
                    > 20
                && st["recorder"]["cameras"][1]["frames_written"]
                    .as_u64()
                    .unwrap_or(0)
                    > 20
        })?;
        ensure!(
            st["cameras"][0]["source"]["pixel_format"] == "yuyv"
                && st["cameras"][1]["source"]["pixel_format"] == "nv12",
            "negotiated {} and {}",
            st["cameras"][0]["source"]["pixel_format"],
            st["cameras"][1]["source"]["pixel_format"]
        );
        let rear_before = cams(&st, 1, &["source", "reconnects"]);
        let rear_written_before = written(&st, 1);
        control_on(REAR, "Disconnect", 1)?;
        let st = bb.wait_status(120.0, "the rear camera back and recording", |st| {
            cams(st, 1, &["source", "reconnects"]) > rear_before
                && st["cameras"][1]["source"]["state"] == "streaming"
                && written(st, 1) > rear_written_before
        })?;
        let rear_written_after = written(&st, 1);
        bb.wait_status(120.0, "more rear frames after the reconnect", |s| {
            written(s, 1) > rear_written_after + 10.0
        })?;
        let (code, _, _) = kit::request("POST", &bb.url("/api/recording/stop"))?;
        ensure!(code == 200, "stop: HTTP {code}");
        let st = bb.wait_status(60.0, "stopped", |st| {
            st["recorder"]["state"] == "stopped"
                && st["recorder"]["cameras"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|c| c["segment"].is_null()))
        })?;
        // The front camera never noticed.
        ensure!(
            cams(&st, 0, &["source", "reconnects"]) == 0.0
                && cams(&st, 0, &["drops", "capture_errors"]) == 0.0,
            "the front camera was disturbed: {}",
            st["cameras"][0]
        );
        let front = &st["cameras"][0];
        let seen = num(front, &["frames", "captured"])
            + num(front, &["drops", "source"])
            + num(front, &["drops", "bad_frame"]);
        let span = num(front, &["source", "sequence"]) + 1.0;
        ensure!(
            (seen - span).abs() <= 1.0,
            "front: accounted {seen} frames for {span} sequence numbers"
        );
        ensure!(
            cams(&st, 1, &["drops", "capture_errors"]) >= 1.0,
            "the rear disconnect was not counted"
        );
        // Every file of each camera is whole, and holds what was written.
        let data = &bb.data;
        let mut frames = [0u64; 2];
        let mut files = [0usize; 2];
        for dir in ["recordings", "events"] {
            let Ok(rd) = std::fs::read_dir(format!("{data}/{dir}")) else {
                continue;
            };
            for e in rd.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().to_string();
                let i = if name.ends_with("-front.mkv") {
                    0
                } else if name.ends_with("-rear.mkv") {
                    1
                } else {
                    continue;
                };
                let scan = blackbox::record::scan::scan(
                    &e.path(),
                    blackbox::record::scan::Depth::Checksums,
                )
                .map_err(|err| format!("{name}: {err}"))?;
                ensure!(scan.problem.is_none(), "{name}: {:?}", scan.problem);
                frames[i] += scan.frames.len() as u64;
                files[i] += 1;
            }
        }
        for i in 0..2 {
            ensure!(
                frames[i] as f64 == written(&st, i),
                "camera {i}: {} frames in {} files, {} written",
                frames[i],
                files[i],
                written(&st, i)
            );
        }
        Ok(format!(
            "front {} frames in {} files, rear {} in {} files; the rear reconnected, the front undisturbed",
            frames[0], files[0], frames[1], files[1]
        ))
    };
    let result = run().map_err(|e| format!("{e}\n    log: {}", bb.log_tail()));
    let code = bb.stop();
    let info = result?;
    ensure!(code == Ok(0), "blackbox exited with {code:?}");
    Ok(info)
}

/// The counters that must add up against the driver's sequence numbers.
#[derive(Debug, Clone, Copy)]
struct Tally {
    captured: f64,
    gaps: f64,
    bad: f64,
    sequence: f64,
    errors: f64,
    reconnects: f64,
    placeholders: f64,
}

fn tally(st: &Value) -> Tally {
    Tally {
        captured: num(st, &["frames", "captured"]),
        gaps: num(st, &["drops", "source"]),
        bad: num(st, &["drops", "bad_frame"]),
        sequence: num(st, &["source", "sequence"]),
        errors: num(st, &["drops", "capture_errors"]),
        reconnects: num(st, &["source", "reconnects"]),
        placeholders: num(st, &["frames", "placeholders"]),
    }
}

fn streaming(st: &Value) -> bool {
    st["source"]["state"] == "streaming"
}

fn fault_error_buffer(bb: &Blackbox) -> Outcome {
    let before = tally(&bb.wait_status(60.0, "streaming", streaming)?);
    control("Inject V4L2_BUF_FLAG_ERROR", 1)?;
    bb.wait_status(60.0, "the bad buffer", |st| tally(st).bad > before.bad)?;
    std::thread::sleep(Duration::from_secs(1));
    let st = bb.status()?;
    let after = tally(&st);
    ensure!(
        after.bad == before.bad + 1.0,
        "bad frames {} -> {}",
        before.bad,
        after.bad
    );
    ensure!(
        after.reconnects == before.reconnects,
        "the device was reopened for one bad buffer"
    );
    ensure!(streaming(&st), "not streaming after a bad buffer");
    let accounted =
        (after.captured - before.captured) + (after.gaps - before.gaps) + (after.bad - before.bad);
    let span = after.sequence - before.sequence;
    ensure!(
        (accounted - span).abs() <= 1.0,
        "accounted {accounted} frames for a sequence span of {span}"
    );
    Ok(format!(
        "1 flagged buffer counted; {accounted} frames accounted over {span} sequence numbers"
    ))
}

fn fault_dropped_buffers(bb: &Blackbox) -> Outcome {
    let before = tally(&bb.wait_status(60.0, "streaming", streaming)?);
    control("Percentage of Dropped Buffers", 50)?;
    std::thread::sleep(Duration::from_secs(3));
    control("Percentage of Dropped Buffers", 0)?;
    std::thread::sleep(Duration::from_secs(1));
    let st = bb.status()?;
    let after = tally(&st);
    let gaps = after.gaps - before.gaps;
    let span = after.sequence - before.sequence;
    let accounted = (after.captured - before.captured) + gaps + (after.bad - before.bad);
    ensure!(
        gaps > 0.0,
        "no drops counted while the driver dropped half its buffers"
    );
    ensure!(
        (accounted - span).abs() <= 1.0,
        "accounted {accounted} frames for a sequence span of {span}"
    );
    ensure!(
        after.reconnects == before.reconnects,
        "the device was reopened"
    );
    ensure!(streaming(&st), "not streaming");
    Ok(format!(
        "{gaps} dropped of {span} ({:.0} %), every sequence number accounted",
        100.0 * gaps / span
    ))
}

fn fault_disconnect(bb: &Blackbox) -> Outcome {
    let before = tally(&bb.wait_status(60.0, "streaming", streaming)?);
    let _watch = Watcher::start(bb);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    control("Disconnect", 1)?;
    let st = bb.wait_status(60.0, "recovery", |st| {
        tally(st).reconnects > before.reconnects
            && streaming(st)
            && tally(st).captured > before.captured + 5.0
    })?;
    let took = t0.elapsed();
    let after = tally(&st);
    ensure!(
        after.errors > before.errors,
        "the disconnect was not counted"
    );
    ensure!(
        after.placeholders > before.placeholders,
        "no placeholder was shown while disconnected"
    );
    Ok(format!(
        "streaming again {:.2} s after the disconnect; {} placeholder(s); last error {}",
        took.as_secs_f64(),
        after.placeholders - before.placeholders,
        st["source"]["last_error"]
    ))
}

fn fault_streamon_error(bb: &Blackbox) -> Outcome {
    let before = tally(&bb.wait_status(60.0, "streaming", streaming)?);
    let _watch = Watcher::start(bb);
    std::thread::sleep(Duration::from_millis(500));
    control("Inject VIDIOC_STREAMON Error", 1)?;
    control("Disconnect", 1)?; // forces a reopen, whose STREAMON then fails
    let st = bb.wait_status(60.0, "recovery", |st| {
        tally(st).reconnects >= before.reconnects + 2.0
            && streaming(st)
            && tally(st).captured > before.captured + 5.0
    })?;
    let after = tally(&st);
    ensure!(
        after.errors == before.errors + 2.0,
        "expected 2 errors (disconnect, STREAMON), counted {}",
        after.errors - before.errors
    );
    ensure!(
        after.placeholders > before.placeholders,
        "no placeholder while the device could not stream"
    );
    Ok(format!(
        "disconnect and a failed STREAMON counted; {} placeholder(s); streaming again",
        after.placeholders - before.placeholders
    ))
}

fn fault_rmmod(bb: &Blackbox) -> Outcome {
    let before = tally(&bb.wait_status(60.0, "streaming", streaming)?);
    let watch = Watcher::start(bb);
    control("Disconnect", 1)?; // makes blackbox let go of the device
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match nix::kmod::delete_module(c"vivid", nix::kmod::DeleteModuleFlags::O_NONBLOCK) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => return Err(format!("rmmod vivid: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    std::thread::sleep(Duration::from_millis(2500));
    let st = bb.status()?;
    ensure!(
        st["source"]["state"] == "no_signal",
        "state {} with the module gone",
        st["source"]["state"]
    );
    let (code, _, body) = kit::get(&bb.url("/snapshot.jpg"))?;
    ensure!(code == 200, "snapshot HTTP {code} while the module is gone");
    let (_, w, h) = kit::decode_luma(&body)?;
    ensure!((w, h) == (640, 480), "placeholder is {w}x{h}");
    let during = tally(&st);
    ensure!(
        during.placeholders >= before.placeholders + 2.0,
        "placeholders {} -> {}",
        before.placeholders,
        during.placeholders
    );
    let seen_while_gone = watch.parts();
    ensure!(
        seen_while_gone > 0,
        "the viewer received nothing while the module was gone"
    );

    let ko = File::open(VIVID_KO).map_err(|e| e.to_string())?;
    let params = std::ffi::CString::new(VIVID_PARAMS).map_err(|e| e.to_string())?;
    nix::kmod::finit_module(&ko, &params, nix::kmod::ModuleInitFlags::empty())
        .map_err(|e| format!("insmod: {e}"))?;
    let t0 = Instant::now();
    bb.wait_status(60.0, "streaming after insmod", |st| {
        streaming(st) && tally(st).captured > during.captured
    })?;
    let took = t0.elapsed();
    Ok(format!(
        "placeholder {w}x{h} while unloaded ({seen_while_gone} parts to the viewer); streaming {:.2} s after insmod",
        took.as_secs_f64()
    ))
}

/// Replays `secs` of driving at 100 samples a second.
fn drive(acc: &mut uinput::Accelerometer, secs: f64, from: u64) -> Result<u64, String> {
    let t0 = Instant::now();
    let mut i = from;
    while t0.elapsed().as_secs_f64() < secs {
        acc.sample(kit::road(i))?;
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(i)
}

fn protected_cameras(bb: &Blackbox) -> Vec<String> {
    std::fs::read_dir(format!("{}/events", bb.data))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mkv"))
        .collect()
}

/// A virtual accelerometer (uinput, INPUT_PROP_ACCELEROMETER) replays a
/// drive: a tilted mount with road noise is no event; a 2.5 g jolt is one
/// `impact` event with its peak, protecting both cameras' footage; the
/// sensor unplugged mid-drive is logged once while recording goes on, and
/// found again when it is back.
fn impact_from_a_virtual_accelerometer() -> Outcome {
    let mut acc = uinput::Accelerometer::create("blackbox test accelerometer")?;
    acc.sample([0.5, 0.0, 0.866])?;
    let config = "/tmp/impact.toml";
    std::fs::write(
        config,
        "[[cameras]]\nid = \"front\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\n\
         [[cameras]]\nid = \"rear\"\nsource = \"testsrc\"\nsize = \"320x240\"\nfps = 10\n\
         [record]\nsegment_seconds = 2\nmin_free = \"1MiB\"\n\
         [event]\npre_seconds = 2\npost_seconds = 2\n\
         [impact]\nsensor = \"auto\"\nthreshold_g = 1.5\nholdoff_seconds = 10\n",
    )
    .map_err(|e| e.to_string())?;
    let bb = Blackbox::start(&["--config", config])?;
    let run = |acc: &mut uinput::Accelerometer| -> Outcome {
        let st = bb.wait_status(120.0, "the accelerometer found", |st| {
            st["impact"]["state"] == "reading"
        })?;
        ensure!(
            st["impact"]["kind"] == "evdev"
                && st["impact"]["name"] == "blackbox test accelerometer",
            "found {}",
            st["impact"]
        );
        let i = drive(acc, 4.0, 0)?;
        let st = bb.status()?;
        ensure!(
            st["impact"]["impacts"] == 0,
            "road noise made an event: {}",
            st["impact"]
        );
        ensure!(
            num(&st, &["impact", "samples"]) > 100.0,
            "too few samples: {}",
            st["impact"]
        );
        // The jolt: 50 ms sideways, peaking at 2.5 g.
        for j in [1.0, 2.0, 2.5, 2.0, 1.0] {
            let mut g = [0.5, 0.0, 0.866];
            g[1] += j;
            acc.sample(g)?;
            std::thread::sleep(Duration::from_millis(10));
        }
        let i = drive(acc, 3.0, i + 5)?;
        let st = bb.wait_status(60.0, "the impact", |st| st["impact"]["impacts"] == 1)?;
        let peak = num(&st, &["impact", "last_impact", "peak_g"]);
        // Against a baseline that averaged the noise away.
        ensure!((peak - 2.5).abs() < 0.1, "peak {peak}");
        let events = st["recorder"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            events.len() == 1
                && events[0]["reason"] == "impact"
                && (num(&events[0], &["peak_g"]) - peak).abs() < 1e-9,
            "events {events:?}"
        );
        // Both cameras' footage around it is protected.
        let t0 = Instant::now();
        let mut i = i;
        let mut names = protected_cameras(&bb);
        while !["-front.mkv", "-rear.mkv"]
            .iter()
            .all(|c| names.iter().any(|n| n.ends_with(c)))
        {
            ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "protected: {names:?}"
            );
            i = drive(acc, 0.5, i)?;
            names = protected_cameras(&bb);
        }
        ensure!(
            bb.status()?["impact"]["impacts"] == 1,
            "more than one event"
        );
        Ok(format!("peak {peak:.2} g; protected {}", names.join(", ")))
    };
    let found = run(&mut acc).map_err(|e| format!("{e}\n    {}", bb.log_tail()))?;
    // Unplugged mid-drive: recording goes on; plugged back: read again.
    drop(acc);
    let st = bb.wait_status(60.0, "the loss", |st| st["impact"]["state"] != "reading")?;
    let written = num(&st, &["recorder", "frames_written"]);
    std::thread::sleep(Duration::from_secs(5));
    let st = bb.status()?;
    ensure!(
        num(&st, &["recorder", "frames_written"]) > written + 20.0,
        "recording stalled without the sensor: {}",
        st["recorder"]
    );
    let mut acc = uinput::Accelerometer::create("blackbox test accelerometer")?;
    let samples = num(&st, &["impact", "samples"]);
    let t0 = Instant::now();
    let mut i = 0;
    loop {
        i = drive(&mut acc, 0.5, i)?;
        let st = bb.status()?;
        if st["impact"]["state"] == "reading" && num(&st, &["impact", "samples"]) > samples + 20.0 {
            break;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "not read again: {}",
            st["impact"]
        );
    }
    let log = std::fs::read_to_string(&bb.log).unwrap_or_default();
    bb.stop()?;
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accelerometer:"))
        .collect();
    ensure!(
        said.len() == 2 && said[1].contains("working again"),
        "the loss and the return, once each: {said:?}"
    );
    Ok(format!("{found}; unplugged and back, logged once"))
}

/// Parking mode on vivid, its ignition a virtual key (uinput) as the
/// Pi's gpio-key overlay makes one: the ignition off parks the car after
/// the delay; parked in `motion`, vivid's picture held still records
/// nothing, its brightness turned up and down records nothing, its colour
/// bars moving record one clip that begins with its pre-roll; an impact
/// (the virtual accelerometer) while parked is an event recorded at the
/// normal rate; the ignition on drives again at once.
fn parking_on_the_ignition_line() -> Outcome {
    const KEY_PROG1: u16 = 148;
    let mut key = uinput::Key::create("blackbox test ignition", KEY_PROG1)?;
    let jolt = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // The parked car's accelerometer: a tilted mount with a little noise,
    // 100 samples a second; a 2.5 g jolt when asked.
    let feeder = {
        let (jolt, stop) = (jolt.clone(), stop.clone());
        let mut acc = uinput::Accelerometer::create("blackbox test accelerometer")?;
        std::thread::spawn(move || -> Result<(), String> {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if jolt.swap(false, Ordering::SeqCst) {
                    for j in [1.0, 2.0, 2.5, 2.0, 1.0] {
                        acc.sample([0.5, j, 0.866])?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                i = drive(&mut acc, 0.2, i)?;
            }
            Ok(())
        })
    };
    control("OSD Text Mode", 2)?; // none: no counters ticking
    control("Horizontal Movement", 3)?; // no movement
    control("Brightness", 128)?;
    let config = "/tmp/parking.toml";
    std::fs::write(
        config,
        format!(
            "[camera]\nsource = \"v4l2\"\ndevice = \"{DEVICE}\"\ninput = 0\nsize = \"640x360\"\nfps = 10\npixel_format = \"yuyv\"\n\
             [record]\nsegment_seconds = 60\nmin_free = \"1MiB\"\n\
             [event]\npre_seconds = 2\npost_seconds = 2\n\
             [impact]\nsensor = \"auto\"\nthreshold_g = 1.5\n\
             [parking]\nmode = \"motion\"\nignition = \"{}\"\nignition_code = {KEY_PROG1}\n\
             delay_seconds = 2\npre_roll_seconds = 2\nmotion_post_seconds = 2\n",
            key.path
        ),
    )
    .map_err(|e| e.to_string())?;
    let bb = Blackbox::start(&["--config", config])?;
    let run = |key: &mut uinput::Key| -> Outcome {
        key.set(true)?;
        bb.wait_status(120.0, "driving, the ignition on, recording", |st| {
            st["parking"]["ignition"]["on"] == true
                && st["parking"]["phase"] == "driving"
                && st["impact"]["state"] == "reading"
                && num(st, &["recorder", "frames_written"]) > 10.0
        })?;
        let off_at = kit_now();
        key.set(false)?;
        let st = bb.wait_status(60.0, "parked", |st| st["parking"]["phase"] == "parked")?;
        ensure!(st["parking"]["by"] == "ignition", "{}", st["parking"]);
        let since = num(&st, &["parking", "parked_since"]);
        ensure!(
            since >= off_at + 1.5,
            "parked {:.2} s after the ignition went off, the delay is 2 s",
            since - off_at
        );
        let written = |bb: &Blackbox| -> Result<f64, String> {
            let mut last = num(&bb.status()?, &["recorder", "frames_written"]);
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = num(&bb.status()?, &["recorder", "frames_written"]);
                if now == last {
                    return Ok(now);
                }
                last = now;
            }
        };
        let parked = written(&bb)?;
        // Still, then the light up and down again: nothing.
        std::thread::sleep(Duration::from_secs(3));
        control("Brightness", 220)?;
        std::thread::sleep(Duration::from_secs(2));
        control("Brightness", 128)?;
        std::thread::sleep(Duration::from_secs(2));
        let st = bb.status()?;
        ensure!(
            num(&st, &["recorder", "frames_written"]) == parked
                && st["parking"]["motion_clips"] == 0,
            "a still view or a change of light was recorded: {}",
            st["parking"]
        );
        ensure!(
            num(&st, &["parking", "lighting_changes"]) >= 1.0,
            "no change of light seen: {}",
            st["parking"]
        );
        // The bars move for two seconds: one clip.
        control("Horizontal Movement", 5)?;
        std::thread::sleep(Duration::from_secs(2));
        control("Horizontal Movement", 3)?;
        bb.wait_status(60.0, "the motion clip", |st| {
            st["parking"]["motion_clips"] == 1
        })?;
        let clip = written(&bb)? - parked;
        // An impact while parked: an event at the normal rate.
        std::thread::sleep(Duration::from_secs(3));
        jolt.store(true, Ordering::SeqCst);
        let st = bb.wait_status(60.0, "the impact", |st| {
            st["recorder"]["events"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["reason"] == "impact" && e["parked"] == true)
            })
        })?;
        let _ = st;
        let before_drive = written(&bb)?;
        ensure!(before_drive > parked + clip, "the impact recorded nothing");
        // The ignition on: driving at once.
        key.set(true)?;
        bb.wait_status(30.0, "driving again", |st| {
            st["parking"]["phase"] == "driving"
        })?;
        bb.wait_status(60.0, "recording everything", |st| {
            num(st, &["recorder", "frames_written"]) > before_drive + 20.0
        })?;
        // The list says why: a parked motion clip, its pre-roll before it.
        let list = kit::get_json(&bb.url("/api/recordings"))?;
        let moments = list["moments"].as_array().cloned().unwrap_or_default();
        let mut motion: Vec<&Value> = moments
            .iter()
            .filter(|m| {
                m["events"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|e| e["reason"] == "motion" && e["parked"] == true)
                })
            })
            .collect();
        motion.sort_by(|a, b| num(a, &["seq"]).total_cmp(&num(b, &["seq"])));
        ensure!(!motion.is_empty(), "no motion clip listed: {list}");
        let at = motion[0]["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["reason"] == "motion"))
            .map_or(0.0, |e| num(e, &["at"]));
        let pre = at - num(motion[0], &["start"]);
        ensure!((1.0..=2.2).contains(&pre), "pre-roll {pre:.2} s");
        Ok(format!(
            "parked {:.1} s after the ignition went off; {clip} frames of motion with {pre:.1} s of pre-roll; the impact's event recorded",
            since - off_at
        ))
    };
    let outcome = run(&mut key).map_err(|e| format!("{e}\n    {}", bb.log_tail()));
    stop.store(true, Ordering::SeqCst);
    let fed = feeder
        .join()
        .map_err(|_| "the accelerometer feeder panicked".to_string())?;
    control("OSD Text Mode", 0)?;
    control("Brightness", 128)?;
    fed?;
    outcome
}

/// Unix seconds now.
fn kit_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn main() {
    let suite = std::env::args().nth(1).unwrap_or_else(|| "x86_64".into());
    // An optional second argument runs only the tests whose names contain it.
    let filter = std::env::args().nth(2).unwrap_or_default();
    let wanted = |name: &str| name.contains(filter.as_str());
    let mut passed = 0;
    let mut failed = 0;
    let mut record = |name: &str, outcome: Outcome| match outcome {
        Ok(info) => {
            passed += 1;
            println!("ok   {name}: {info}");
        }
        Err(why) => {
            failed += 1;
            println!("FAIL {name}: {why}");
        }
    };

    if suite == "bench" {
        for (name, outcome) in bench() {
            record(name, outcome);
        }
        println!("{passed} passed, {failed} failed");
        std::process::exit(if failed == 0 { 0 } else { 1 });
    }
    let tests: Vec<Standalone> = vec![
        ("probe lists vivid's inputs and formats", Box::new(probe)),
        (
            "capture 640x480 YUYV 25 fps (webcam input)",
            Box::new(|| capture(0, (640, 480), 25, "yuyv")),
        ),
        (
            "--source auto picks the V4L2 camera",
            Box::new(auto_picks_the_camera),
        ),
        (
            "two cameras (YUYV and NV12) recorded; the rear unplugged and back, the front undisturbed",
            Box::new(two_cameras),
        ),
        (
            "auto finds both Pi cameras (rpicam-vid stand-in) and both V4L2 cameras",
            Box::new(auto_finds_every_camera),
        ),
        (
            "impact from a virtual accelerometer (uinput): one event with its peak, unplugged and back",
            Box::new(impact_from_a_virtual_accelerometer),
        ),
        (
            "parking on a virtual ignition key: still, light and movement, an impact parked",
            Box::new(parking_on_the_ignition_line),
        ),
        (
            "capture 640x480 NV12 25 fps (webcam input)",
            Box::new(|| capture(0, (640, 480), 25, "nv12")),
        ),
        (
            "capture 1280x720 NV12 30 fps (HDMI input, DV timings)",
            Box::new(|| capture(3, (1280, 720), 30, "nv12")),
        ),
    ];
    for (i, (name, test)) in tests.iter().enumerate() {
        // The aarch64 suite proves the ARM build: probe, one capture, auto,
        // two cameras, the Pi cameras.
        if (suite == "aarch64" && i > 4) || !wanted(name) {
            continue;
        }
        record(name, test());
    }
    if suite == "x86_64" && wanted("fault") {
        match Blackbox::start(&[
            "--source",
            "v4l2",
            "--device",
            DEVICE,
            "--input",
            "0",
            "--size",
            "640x480",
            "--fps",
            "25",
            "--pixel-format",
            "yuyv",
        ]) {
            Ok(bb) => {
                let tests: [FaultTest; 5] = [
                    ("fault: buffer flagged with an error", fault_error_buffer),
                    ("fault: dropped buffers", fault_dropped_buffers),
                    ("fault: disconnect", fault_disconnect),
                    ("fault: STREAMON error", fault_streamon_error),
                    ("fault: rmmod vivid, then load it again", fault_rmmod),
                ];
                for (name, test) in tests {
                    let outcome = test(&bb).map_err(|e| format!("{e}\n    log: {}", bb.log_tail()));
                    record(name, outcome);
                }
                record(
                    "still serving after every fault",
                    kit::get_json(&bb.url("/api/status"))
                        .map(|st| format!("state {}", st["source"]["state"])),
                );
                let code = bb.stop();
                record(
                    "clean exit after the faults",
                    if code == Ok(0) {
                        Ok("exit 0".into())
                    } else {
                        Err(format!("{code:?}"))
                    },
                );
            }
            Err(e) => record("fault injection", Err(e)),
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
