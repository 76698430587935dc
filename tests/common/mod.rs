//! Shared helpers for the integration tests: the real `blackbox` binary on
//! 127.0.0.1 port 0, a real HTTP client, an MJPEG part reader and a JPEG
//! decoder that reads the test pattern's sequence number back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use blackbox_testkit as testkit;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_blackbox");

/// A running blackbox; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub tap_port: Option<u16>,
    /// The plain-HTTP redirect listener's port, when HTTPS has one.
    pub redirect_port: Option<u16>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// The data directory, when the test did not choose one.
    _data: Option<TempDir>,
}

impl Server {
    /// Starts `blackbox run --listen 127.0.0.1:0 ARGS...` and waits for the
    /// line that announces the port.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    /// Like [`Server::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on("127.0.0.1:0", args, env)
    }

    /// Like [`Server::start_with_env`], listening on `listen`.
    pub fn start_on(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let own_data = !args.contains(&"--data");
        let data = own_data.then(|| {
            TempDir::new(&format!(
                "data{}",
                SERVERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ))
        });
        let mut cmd = Command::new(BIN);
        cmd.arg("run").args(["--listen", listen]);
        if let Some(d) = &data {
            cmd.arg("--data").arg(&d.0);
        }
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start blackbox");
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut port = None;
        let mut tap_port = None;
        let mut redirect_port = None;
        let want_tap = args.contains(&"--tap");
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).expect("read stdout") == 0 {
                let status = child.wait();
                let said = stderr.join().unwrap_or_default();
                panic!("blackbox exited before announcing its port: {status:?}; it said: {said}");
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("blackbox: redirect to HTTPS at http://")
            {
                let addr = rest.split('/').next().unwrap();
                redirect_port = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
            }
            let view = line.trim().strip_prefix("blackbox: live view at ");
            if let Some(rest) = view.and_then(|v| {
                v.strip_prefix("http://")
                    .or_else(|| v.strip_prefix("https://"))
            }) {
                // "HOST:PORT/", perhaps followed by "(listening on all interfaces)".
                let addr = rest.split('/').next().unwrap();
                port = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("blackbox: frame tap at ") {
                tap_port = Some(rest.rsplit(':').next().unwrap().parse().unwrap());
            }
            if port.is_some() && (!want_tap || tap_port.is_some()) {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Server {
            child,
            port: port.unwrap(),
            tap_port,
            redirect_port,
            stderr: Some(stderr),
            _data: data,
        }
    }

    /// Peak and current resident memory of the server process, in KiB
    /// (`VmHWM`, `VmRSS`).
    pub fn peak_and_rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        testkit::get_json(&self.url("/api/status")).expect("status")
    }

    /// Polls the status until `check` holds, for at most `secs` seconds.
    pub fn wait_status(
        &self,
        secs: u64,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.status();
            if check(&st) {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {st}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Process ids of the server's children.
    pub fn children(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let tasks = format!("/proc/{}/task", self.pid());
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
        out
    }

    /// Sends SIGTERM and waits for the exit, which must come within
    /// `limit`; returns its status and how long it took.
    pub fn sigterm_within(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let t0 = std::time::Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            assert!(
                t0.elapsed() < limit,
                "still running {limit:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and returns what the server logged.
    pub fn terminate(&mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET with a real HTTP client: (status, headers, body).
pub fn get(url: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    testkit::get(url).expect("request")
}

pub fn request(method: &str, url: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    testkit::request(method, url).expect("request")
}

/// The stream reader, panicking on bad framing.
pub struct MjpegReader {
    inner: testkit::MjpegReader,
    pub headers: HashMap<String, String>,
}

impl MjpegReader {
    pub fn open(url: &str) -> MjpegReader {
        let inner = testkit::MjpegReader::open(url).expect("open stream");
        MjpegReader {
            headers: inner.headers.clone(),
            inner,
        }
    }

    /// The next part, or `None` when the server ended the stream or the
    /// connection; panics on bad framing.
    pub fn next_part(&mut self) -> Option<testkit::Part> {
        match self.inner.next_part() {
            Ok(part) => Some(part),
            Err(testkit::StreamError::End | testkit::StreamError::Io(_)) => None,
            Err(e @ testkit::StreamError::Framing(_)) => panic!("{e}"),
        }
    }
}

/// Decodes the luma of a JPEG: (pixels, width, height).
pub fn decode_luma(jpeg: &[u8]) -> (Vec<u8>, usize, usize) {
    testkit::decode_luma(jpeg).expect("a decodable JPEG")
}

/// The sequence number the test pattern drew into a JPEG.
pub fn sequence_of(jpeg: &[u8]) -> u32 {
    let (luma, w, h) = decode_luma(jpeg);
    blackbox::capture::testsrc::read_sequence(&luma, w, h, w).expect("sequence strip")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "blackbox-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Frames counted by ffprobe (decoding them), and the stream's size.
pub fn ffprobe(path: &Path) -> (u64, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("ffprobe gave no {k}: {text}"))
            .to_string()
    };
    assert_eq!(field("codec_name"), "mjpeg");
    (
        field("nb_read_frames").parse().unwrap(),
        field("width").parse().unwrap(),
        field("height").parse().unwrap(),
    )
}

/// Decodes every frame with ffmpeg (stopping at the first error): the
/// number it decoded, and whatever it reported (empty if all went well).
pub fn ffmpeg_try_decode(path: &Path) -> (u64, String) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-", "-progress", "pipe:1", "-nostats"])
        .output()
        .expect("ffmpeg is installed (scripts/deps.sh)");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .next_back()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() && errors.is_empty() {
        errors = format!("ffmpeg exited with {}", out.status);
    }
    (frames, errors)
}

/// Decodes every frame with ffmpeg, which must succeed; returns the number
/// it decoded and whatever it reported.
pub fn ffmpeg_decode(path: &Path) -> (u64, String) {
    let (frames, errors) = ffmpeg_try_decode(path);
    assert!(!errors.starts_with("ffmpeg exited"), "{errors}");
    (frames, errors)
}

/// The recorder's reserve for tests, in bytes: the default, 5 % of the file
/// system, is a share of the host's disk here, and a host with less than
/// that free would see every finished segment deleted to make room.
pub const RESERVE: &str = "min_free = \"1MiB\"\n";

/// Writes `text` as `blackbox.toml` in `dir`; returns its path.
pub fn config_file(dir: &TempDir, text: &str) -> String {
    let path = dir.0.join("blackbox.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A plain JPEG of `size` (mid-grey) written to `dir/frame.jpg`, for the
/// stand-in camera to send.
pub fn plain_jpeg(dir: &TempDir, width: u32, height: u32) -> PathBuf {
    let path = dir.0.join("frame.jpg");
    let img = blackbox::convert::I420::new(blackbox::frame::Size::new(width, height)).unwrap();
    std::fs::write(&path, blackbox::encode::encode_i420(&img, 80).unwrap()).unwrap();
    path
}

/// GET a JSON document, panicking on failure.
pub fn testkit_get_json(url: &str) -> serde_json::Value {
    testkit::get_json(url).expect("JSON")
}

/// Writes a password file with `blackbox passwd` (the password on stdin,
/// not a terminal); returns its path.
pub fn password_file(dir: &TempDir, password: &str) -> String {
    use std::io::Write;
    let file = dir.0.join("password");
    let mut child = Command::new(BIN)
        .arg("passwd")
        .arg(&file)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    file.display().to_string()
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `from`
/// (any of 127.0.0.0/8), so a test can be many clients at once.
pub fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let [a, b, c, d] = from;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(a, b, c, d, 0),
    )?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, port),
    )?;
    Ok(std::net::TcpStream::from(fd))
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) from
/// `from` and reads the reply: (status, head, body).
pub fn raw_request(from: [u8; 4], port: u16, request: &str) -> (u16, String, String) {
    use std::io::Write;
    let mut s = connect_from(from, port).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(request.as_bytes()).expect("send");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).to_string();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"));
    (code, head.to_string(), body.to_string())
}

/// Waits (at most a minute) until the files in `dir` hold at least
/// `bytes`: the recorder writes, whatever the web side does.
pub fn wait_recorded(dir: &Path, bytes: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum::<u64>()
        })
        .unwrap_or(0)
        < bytes
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing recorded in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
