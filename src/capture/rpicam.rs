//! The Raspberry Pi 5 ribbon-cable camera, which needs libcamera rather than
//! raw V4L2: `rpicam-vid` runs as a child process and writes frames to its
//! standard output, and this source reads them.
//!
//! - `--codec yuv420`: back-to-back planar I420 frames of exactly
//!   `W*H*3/2` bytes, read whole (they go through the encoder like YU12).
//! - `--codec mjpeg`: concatenated JPEGs, split at SOI/EOI; bytes between
//!   images are skipped (resync) and reported as one bad frame.
//!
//! The child's stderr goes to the log line by line. When the child exits the
//! source reports [`CaptureError::Gone`] (after a [`CaptureError::BadFrame`]
//! for any partial frame it left), and the capture thread starts a new one
//! with back-off. Dropping the source stops the child: SIGTERM, then SIGKILL
//! after a second.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::capture::{CaptureError, Source, SourceInfo, SourceKind};
use crate::clock::Timestamp;
use crate::frame::{PixelFormat, RawFrame, Size};

/// libcamera takes a moment to start the sensor; the first frame may be slow.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 256 * 1024;

/// How to run `rpicam-vid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpicamRequest {
    /// The program (a path, or a name looked up on PATH).
    pub program: String,
    /// Which camera (`--camera N`): 0 or 1 on a Pi 5.
    pub camera: u32,
    /// Upside down, turned by libcamera (`--rotation 180`: the sensor reads
    /// out flipped, at no cost).
    pub rotate: bool,
    pub size: Size,
    pub fps: u32,
    /// MJPEG from the camera's ISP instead of raw I420.
    pub mjpeg: bool,
    pub quality: u8,
    /// Longest wait for a frame once streaming.
    pub timeout: Duration,
}

impl RpicamRequest {
    /// The arguments passed to the program.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["--camera".into(), self.camera.to_string()];
        if self.rotate {
            args.push("--rotation".into());
            args.push("180".into());
        }
        args.extend(
            [
                "-t",
                "0",
                "-n",
                "--codec",
                if self.mjpeg { "mjpeg" } else { "yuv420" },
                "--width",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.push(self.size.width.to_string());
        args.push("--height".into());
        args.push(self.size.height.to_string());
        args.push("--framerate".into());
        args.push(self.fps.to_string());
        if self.mjpeg {
            args.push("-q".into());
            args.push(self.quality.to_string());
        }
        args.push("--flush".into());
        args.push("-o".into());
        args.push("-".into());
        args
    }
}

/// The cameras `program --list-cameras` names (within 5 s), by index.
pub fn list_cameras(program: &str) -> Vec<u32> {
    let Ok(mut child) = Command::new(program)
        .arg("--list-cameras")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Vec::new();
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Vec::new();
            }
        }
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    // "Available cameras" then lines like "0 : imx708 [4608x2592 ...]".
    let mut found: Vec<u32> = text
        .lines()
        .filter_map(|l| {
            let (n, _) = l.trim_start().split_once(" : ")?;
            n.trim().parse::<u32>().ok()
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// `rpicam-vid` running as a child.
pub struct RpicamSource {
    child: Child,
    stdout: ChildStdout,
    info: SourceInfo,
    timeout: Duration,
    /// Bytes read and not yet handed out.
    pending: Vec<u8>,
    /// The frame lent by the last `next_frame`.
    frame: Vec<u8>,
    frames: u64,
    eof: bool,
}

impl RpicamSource {
    /// Starts the child.
    pub fn spawn(req: &RpicamRequest) -> Result<Self, CaptureError> {
        if req.size.width % 2 == 1 || req.size.height % 2 == 1 {
            return Err(CaptureError::Unsupported(format!(
                "odd frame size {}",
                req.size
            )));
        }
        let mut child = Command::new(&req.program)
            .args(req.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CaptureError::Gone(format!("cannot run {}: {e}", req.program)))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| CaptureError::Gone("no stdout from the child".into()))?;
        if let Some(stderr) = child.stderr.take() {
            let name = req.program.clone();
            let _ = std::thread::Builder::new()
                .name("rpicam-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        log::info!("{name}: {line}");
                    }
                });
        }
        log::info!("started {} (pid {})", req.program, child.id());
        Ok(Self {
            child,
            stdout,
            info: SourceInfo {
                kind: SourceKind::Rpicam,
                device: req.program.clone(),
                format: if req.mjpeg {
                    PixelFormat::Mjpeg
                } else {
                    PixelFormat::Yu12
                },
                size: req.size,
                fps: req.fps,
            },
            timeout: req.timeout,
            pending: Vec::with_capacity(READ_CHUNK),
            frame: Vec::new(),
            frames: 0,
            eof: false,
        })
    }

    fn frame_len(&self) -> usize {
        self.info.size.pixels() * 3 / 2
    }

    /// Reads more from the child, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), CaptureError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(CaptureError::Timeout(self.timeout));
        }
        let wait = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.stdout.as_fd(), PollFlags::POLLIN)];
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
        )
        .map_err(|e| CaptureError::Io(io::Error::from(e)))?;
        if ready == 0 {
            return Err(CaptureError::Timeout(self.timeout));
        }
        let start = self.pending.len();
        self.pending.resize(start + READ_CHUNK, 0);
        let n = match self.stdout.read(&mut self.pending[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                self.pending.truncate(start);
                return Err(CaptureError::Io(e));
            }
        };
        self.pending.truncate(start + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// Reports the child's exit.
    fn gone(&mut self) -> CaptureError {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => match self.child.wait() {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            },
        };
        CaptureError::Gone(format!("{} exited ({status})", self.info.device))
    }

    /// The most a JPEG may take while it is reassembled: the size of the
    /// raw frame (no JPEG of it is larger), and at least 1 MiB.
    fn max_jpeg(&self) -> usize {
        self.frame_len().max(1 << 20)
    }

    /// Takes the next whole JPEG out of `pending`, if there is one. Returns
    /// the number of bytes skipped before it.
    fn take_jpeg(&mut self) -> Option<(usize, Vec<u8>)> {
        let soi = self.pending.windows(2).position(|w| w == [0xFF, 0xD8])?;
        let eoi = self.pending[soi + 2..]
            .windows(2)
            .position(|w| w == [0xFF, 0xD9])?
            + soi
            + 4;
        let jpeg = self.pending[soi..eoi].to_vec();
        self.pending.drain(..eoi);
        Some((soi, jpeg))
    }
}

impl Source for RpicamSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn next_frame(&mut self) -> Result<RawFrame<'_>, CaptureError> {
        let wait = if self.frames == 0 {
            FIRST_FRAME_TIMEOUT.max(self.timeout)
        } else {
            self.timeout
        };
        let deadline = Instant::now() + wait;
        loop {
            let ready = if self.info.format == PixelFormat::Mjpeg {
                match self.take_jpeg() {
                    Some((0, jpeg)) => Some(jpeg),
                    Some((skipped, jpeg)) => {
                        // Keep the good frame for the next call; report the junk.
                        self.pending.splice(0..0, jpeg);
                        return Err(CaptureError::BadFrame {
                            seq: None,
                            reason: format!("{skipped} bytes of garbage before a JPEG"),
                        });
                    }
                    None if self.pending.len() > self.max_jpeg() => {
                        // No whole JPEG in more bytes than any frame takes:
                        // the stream lost its way. Drop what is buffered
                        // (keeping a last 0xFF that may start a marker) and
                        // resynchronise on the next SOI.
                        let n = self.pending.len();
                        let keep = usize::from(self.pending.last() == Some(&0xFF));
                        self.pending.drain(..n - keep);
                        return Err(CaptureError::BadFrame {
                            seq: None,
                            reason: format!("{n} bytes without a whole JPEG"),
                        });
                    }
                    None => None,
                }
            } else if self.pending.len() >= self.frame_len() {
                let rest = self.pending.split_off(self.frame_len());
                Some(std::mem::replace(&mut self.pending, rest))
            } else {
                None
            };
            if let Some(frame) = ready {
                self.frame = frame;
                let seq = self.frames;
                self.frames += 1;
                return Ok(RawFrame {
                    data: &self.frame,
                    format: self.info.format,
                    size: self.info.size,
                    stride: self.info.size.width as usize,
                    seq,
                    captured: Timestamp::now(),
                });
            }
            if self.eof {
                if !self.pending.is_empty() {
                    let n = self.pending.len();
                    self.pending.clear();
                    return Err(CaptureError::BadFrame {
                        seq: None,
                        reason: format!("short frame: {n} bytes before the stream ended"),
                    });
                }
                return Err(self.gone());
            }
            self.fill(deadline)?;
        }
    }
}

impl Drop for RpicamSource {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let req = RpicamRequest {
            program: "rpicam-vid".into(),
            camera: 0,
            rotate: false,
            size: Size::new(1280, 720),
            fps: 30,
            mjpeg: false,
            quality: 80,
            timeout: Duration::from_secs(2),
        };
        assert_eq!(
            req.args().join(" "),
            "--camera 0 -t 0 -n --codec yuv420 --width 1280 --height 720 --framerate 30 --flush -o -"
        );
        let rear = RpicamRequest {
            camera: 1,
            rotate: true,
            ..req.clone()
        };
        assert!(
            rear.args()
                .join(" ")
                .starts_with("--camera 1 --rotation 180 -t 0")
        );
        let mjpeg = RpicamRequest { mjpeg: true, ..req };
        assert!(mjpeg.args().join(" ").contains("--codec mjpeg"));
        assert!(mjpeg.args().join(" ").contains("-q 80"));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let req = RpicamRequest {
            program: "/nonexistent/rpicam-vid".into(),
            camera: 0,
            rotate: false,
            size: Size::new(640, 480),
            fps: 30,
            mjpeg: false,
            quality: 80,
            timeout: Duration::from_secs(2),
        };
        assert!(matches!(
            RpicamSource::spawn(&req),
            Err(CaptureError::Gone(_))
        ));
    }
}
