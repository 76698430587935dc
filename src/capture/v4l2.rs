//! V4L2 cameras (USB/UVC, HDMI bridges, the kernel's vivid test driver):
//! opening a device, choosing its input, negotiating size, pixel format and
//! frame rate, and MMAP streaming. Also the device report behind
//! `blackbox probe` and control access for fault-injection tests. This is the
//! only file that imports the `v4l` crate.
//!
//! # Implementation
//! Buffers are the driver's, requested with REQBUFS and mapped with mmap by
//! `v4l`'s MMAP stream; [`V4l2Source::next_frame`] lends one until the next
//! call, when it is queued back to the driver. Waiting is `poll` with a
//! timeout, so a camera that goes silent is an error, not a hang.
//!
//! Three things in `v4l` 0.14 are worked around here:
//! - its `Stream` and buffer arena *panic* in `Drop` when STREAMOFF or
//!   REQBUFS fail with anything but ENODEV, and a second panic while
//!   unwinding would abort the process. [`V4l2Source`]'s own `Drop` stops the
//!   stream first; if that fails with another error the stream is leaked
//!   (one mapping and one file descriptor) rather than dropped;
//! - it returns the whole mapped buffer, not the `bytesused` part;
//! - it wraps neither VIDIOC_ENUMINPUT/S_INPUT nor the DV-timings ioctls
//!   (HDMI inputs), which are called here through its raw `ioctl`.

use std::io;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use v4l::buffer::{Flags as BufFlags, Type as BufType};
use v4l::capability::Flags as CapFlags;
use v4l::control::{Control, Type as CtrlType, Value};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use crate::capture::{CaptureError, Source, SourceInfo, SourceKind};
use crate::clock::Timestamp;
use crate::frame::{PixelFormat, RawFrame, Size};

const ENODEV: i32 = 19;
/// `V4L2_IN_CAP_DV_TIMINGS`: the input is configured with DV timings (HDMI).
const IN_CAP_DV_TIMINGS: u32 = 0x2;

/// What to ask the device for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4l2Request {
    pub device: String,
    /// Input index to select (VIDIOC_S_INPUT); `None` keeps the current one.
    pub input: Option<u32>,
    pub size: Size,
    pub fps: u32,
    /// `None`: the best format the device offers (MJPEG, then YUYV, NV12, YU12).
    pub format: Option<PixelFormat>,
    /// With `format` `None`: raw formats before MJPEG (a camera turned in
    /// the conversion; camera JPEGs pass through as they came).
    pub raw_first: bool,
    pub buffers: u32,
    /// Longest wait for one frame.
    pub timeout: Duration,
}

fn fourcc_of(format: PixelFormat) -> FourCC {
    FourCC::new(match format {
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Nv12 => b"NV12",
        PixelFormat::Yu12 => b"YU12",
        PixelFormat::Mjpeg => b"MJPG",
    })
}

fn format_of(fourcc: FourCC) -> Option<PixelFormat> {
    match &fourcc.repr {
        b"YUYV" => Some(PixelFormat::Yuyv),
        b"NV12" => Some(PixelFormat::Nv12),
        b"YU12" => Some(PixelFormat::Yu12),
        b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
        _ => None,
    }
}

fn io_error(context: &str, e: io::Error) -> CaptureError {
    if e.raw_os_error() == Some(ENODEV) {
        CaptureError::Gone(format!("{context}: device disconnected"))
    } else if e.kind() == io::ErrorKind::NotFound {
        CaptureError::Gone(format!("{context}: no such device"))
    } else {
        CaptureError::Io(io::Error::new(e.kind(), format!("{context}: {e}")))
    }
}

/// Issues one V4L2 ioctl on `fd` with `arg`.
///
/// # Safety
/// `request` must be an ioctl whose argument is a `T` (its size is encoded in
/// the request number), and `fd` an open V4L2 device.
unsafe fn ioctl<T>(fd: c_int, request: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller guarantees that `request` takes a `*mut T`; `arg`
    // is a valid, exclusive reference for the duration of the call.
    unsafe { v4l::v4l2::ioctl(fd, request as _, arg as *mut T as *mut c_void) }
}

const fn iowr(nr: u64, size: usize) -> u64 {
    // _IOWR('V', nr, size): direction read|write (3) in bits 30-31, the
    // argument size in bits 16-29, the type 'V' in bits 8-15, nr in 0-7.
    (3u64 << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}

const VIDIOC_ENUMINPUT: u64 = iowr(26, mem::size_of::<v4l::v4l_sys::v4l2_input>());
const VIDIOC_S_INPUT: u64 = iowr(39, mem::size_of::<c_int>());
const VIDIOC_S_DV_TIMINGS: u64 = iowr(87, mem::size_of::<v4l::v4l_sys::v4l2_dv_timings>());
const VIDIOC_ENUM_DV_TIMINGS: u64 = iowr(98, mem::size_of::<v4l::v4l_sys::v4l2_enum_dv_timings>());

/// One input of a device (camera, tuner, HDMI...).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InputInfo {
    pub index: u32,
    pub name: String,
    /// `camera` or `tuner`.
    pub kind: &'static str,
    /// Configured by DV timings (HDMI and similar).
    pub dv_timings: bool,
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn inputs(dev: &Device) -> Vec<InputInfo> {
    let fd = dev.handle().fd();
    let mut out = Vec::new();
    for index in 0..64 {
        // SAFETY: v4l2_input is plain old data; all-zero is a valid value.
        let mut input: v4l::v4l_sys::v4l2_input = unsafe { mem::zeroed() };
        input.index = index;
        // SAFETY: VIDIOC_ENUMINPUT takes a v4l2_input; fd is the open device.
        if unsafe { ioctl(fd, VIDIOC_ENUMINPUT, &mut input) }.is_err() {
            break; // EINVAL past the last input
        }
        out.push(InputInfo {
            index,
            name: c_string(&input.name),
            kind: if input.type_ == 1 { "tuner" } else { "camera" },
            dv_timings: input.capabilities & IN_CAP_DV_TIMINGS != 0,
        });
    }
    out
}

fn select_input(dev: &Device, index: u32) -> Result<InputInfo, CaptureError> {
    let all = inputs(dev);
    let info = all
        .iter()
        .find(|i| i.index == index)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<String> = all
                .iter()
                .map(|i| format!("{} {}", i.index, i.name))
                .collect();
            CaptureError::Unsupported(format!(
                "no input {index}; the device has: {}",
                names.join(", ")
            ))
        })?;
    let mut arg = index as c_int;
    // SAFETY: VIDIOC_S_INPUT takes an int; fd is the open device.
    unsafe { ioctl(dev.handle().fd(), VIDIOC_S_INPUT, &mut arg) }
        .map_err(|e| io_error("VIDIOC_S_INPUT", e))?;
    Ok(info)
}

/// Frames per second of a set of BT.656/1120 timings.
fn timings_fps(bt: &v4l::v4l_sys::v4l2_bt_timings) -> f64 {
    // Copy out of the packed struct before use.
    let (w, h, pclk) = ({ bt.width }, { bt.height }, { bt.pixelclock });
    let total_w = w + { bt.hfrontporch } + { bt.hsync } + { bt.hbackporch };
    let total_h = h + { bt.vfrontporch } + { bt.vsync } + { bt.vbackporch };
    if total_w == 0 || total_h == 0 {
        return 0.0;
    }
    pclk as f64 / (f64::from(total_w) * f64::from(total_h))
}

/// On a DV-timings input, picks the advertised timings closest to the
/// requested size and rate and applies them.
fn select_timings(dev: &Device, size: Size, fps: u32) -> Result<(), CaptureError> {
    let fd = dev.handle().fd();
    let mut best: Option<(f64, v4l::v4l_sys::v4l2_dv_timings)> = None;
    for index in 0..256 {
        // SAFETY: plain old data; all-zero is valid.
        let mut e: v4l::v4l_sys::v4l2_enum_dv_timings = unsafe { mem::zeroed() };
        e.index = index;
        // SAFETY: VIDIOC_ENUM_DV_TIMINGS takes a v4l2_enum_dv_timings.
        if unsafe { ioctl(fd, VIDIOC_ENUM_DV_TIMINGS, &mut e) }.is_err() {
            break;
        }
        // SAFETY: the driver fills the `bt` member for BT.656/1120 timings,
        // the only kind V4L2 defines; reading a packed copy is sound.
        let bt = unsafe { e.timings.__bindgen_anon_1.bt };
        if { bt.width } != size.width || { bt.height } != size.height || { bt.interlaced } != 0 {
            continue;
        }
        let miss = (timings_fps(&bt) - f64::from(fps)).abs();
        if best.as_ref().is_none_or(|(m, _)| miss < *m) {
            best = Some((miss, e.timings));
        }
    }
    let Some((_, mut timings)) = best else {
        return Err(CaptureError::Unsupported(format!(
            "the input offers no progressive {size} timings"
        )));
    };
    // SAFETY: VIDIOC_S_DV_TIMINGS takes a v4l2_dv_timings, as enumerated.
    unsafe { ioctl(fd, VIDIOC_S_DV_TIMINGS, &mut timings) }
        .map_err(|e| io_error("VIDIOC_S_DV_TIMINGS", e))
}

/// A V4L2 capture device, streaming.
pub struct V4l2Source {
    /// The MMAP stream; it holds the device's file descriptor open.
    stream: Option<Stream<'static>>,
    info: SourceInfo,
    stride: usize,
    timeout: Duration,
}

impl V4l2Source {
    /// Opens and configures the device; streaming starts on the first frame.
    pub fn open(req: &V4l2Request) -> Result<Self, CaptureError> {
        let dev = Device::with_path(&req.device).map_err(|e| io_error(&req.device, e))?;
        let caps = dev
            .query_caps()
            .map_err(|e| io_error("VIDIOC_QUERYCAP", e))?;
        if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
            return Err(CaptureError::Unsupported(format!(
                "{} ({}) is not a video capture device",
                req.device, caps.card
            )));
        }
        if !caps.capabilities.contains(CapFlags::STREAMING) {
            return Err(CaptureError::Unsupported(format!(
                "{} ({}) does not support streaming I/O",
                req.device, caps.card
            )));
        }
        if let Some(index) = req.input {
            let input = select_input(&dev, index)?;
            if input.dv_timings {
                select_timings(&dev, req.size, req.fps)?;
            }
        }

        let offered: Vec<PixelFormat> = dev
            .enum_formats()
            .map_err(|e| io_error("VIDIOC_ENUM_FMT", e))?
            .into_iter()
            .filter_map(|d| format_of(d.fourcc))
            .collect();
        let format = match req.format {
            Some(f) if offered.contains(&f) => f,
            Some(f) => {
                let names: Vec<&str> = offered.iter().map(|f| f.name()).collect();
                return Err(CaptureError::Unsupported(format!(
                    "{} does not offer {f}; it offers {}",
                    req.device,
                    if names.is_empty() {
                        "nothing blackbox can use".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            None => PixelFormat::ALL
                .into_iter()
                .filter(|f| !req.raw_first || f.is_raw())
                .chain(PixelFormat::ALL.into_iter().filter(|f| !f.is_raw()))
                .find(|f| offered.contains(f))
                .ok_or_else(|| {
                    CaptureError::Unsupported(format!(
                        "{} offers none of MJPEG, YUYV, NV12, YU12",
                        req.device
                    ))
                })?,
        };

        let wanted = Format::new(req.size.width, req.size.height, fourcc_of(format));
        let got = dev
            .set_format(&wanted)
            .map_err(|e| io_error("VIDIOC_S_FMT", e))?;
        if format_of(got.fourcc) != Some(format) {
            return Err(CaptureError::Unsupported(format!(
                "{} refused {format} (it chose {})",
                req.device, got.fourcc
            )));
        }
        let size = Size::new(got.width, got.height);
        if size != req.size {
            log::warn!("{} gives {size} instead of {}", req.device, req.size);
        }
        if format.is_raw() && (size.width % 2 == 1 || size.height % 2 == 1) {
            return Err(CaptureError::Unsupported(format!("odd frame size {size}")));
        }

        let fps = match dev.set_params(&v4l::video::capture::Parameters::with_fps(req.fps)) {
            Ok(p) if p.interval.numerator > 0 => {
                (f64::from(p.interval.denominator) / f64::from(p.interval.numerator)).round() as u32
            }
            Ok(_) => req.fps,
            Err(e) => {
                log::info!(
                    "{}: cannot set the frame rate ({e}); using the driver's",
                    req.device
                );
                req.fps
            }
        };

        let mut stream = Stream::with_buffers(&dev, BufType::VideoCapture, req.buffers.max(2))
            .map_err(|e| io_error("VIDIOC_REQBUFS", e))?;
        stream.set_timeout(req.timeout);
        Ok(Self {
            stream: Some(stream),
            info: SourceInfo {
                kind: SourceKind::V4l2,
                device: format!("{} ({})", req.device, caps.card),
                format,
                size,
                fps,
            },
            stride: got.stride as usize,
            timeout: req.timeout,
        })
    }
}

impl Source for V4l2Source {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn next_frame(&mut self) -> Result<RawFrame<'_>, CaptureError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| CaptureError::Gone("stream closed".into()))?;
        let (buf, meta) = match stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(CaptureError::Timeout(self.timeout));
            }
            Err(e) => return Err(io_error("VIDIOC_DQBUF", e)),
        };
        let seq = u64::from(meta.sequence);
        if meta.flags.contains(BufFlags::ERROR) {
            return Err(CaptureError::BadFrame {
                seq: Some(seq),
                reason: "the driver flagged the buffer as an error".into(),
            });
        }
        let used = (meta.bytesused as usize).min(buf.len());
        if used == 0 {
            return Err(CaptureError::BadFrame {
                seq: Some(seq),
                reason: "empty buffer".into(),
            });
        }
        let ts = Duration::new(
            meta.timestamp.sec.max(0) as u64,
            (meta.timestamp.usec.max(0) as u32) * 1000,
        );
        let captured = if ts.is_zero() {
            Timestamp::now()
        } else {
            Timestamp::from_mono(ts)
        };
        Ok(RawFrame {
            data: &buf[..used],
            format: self.info.format,
            size: self.info.size,
            stride: self.stride,
            seq,
            captured,
        })
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        match stream.stop() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(ENODEV) => {}
            Err(e) => {
                // `v4l` would panic in Drop; keep the process, lose a mapping.
                log::warn!("STREAMOFF failed ({e}); leaking the stream instead of aborting");
                mem::forget(stream);
                return;
            }
        }
        if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
            log::warn!("closing the V4L2 stream panicked; carrying on");
        }
    }
}

/// A frame size a format offers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    /// Frame rates offered at this size (discrete), or the range (stepwise).
    pub fps: Vec<f64>,
    pub fps_range: Option<(f64, f64)>,
}

/// A pixel format a device offers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    /// Whether blackbox can use it (and how it is called in the config).
    pub blackbox_name: Option<&'static str>,
    pub sizes: Vec<SizeInfo>,
    /// Stepwise sizes: (min, max) width and height.
    pub size_range: Option<((u32, u32), (u32, u32))>,
}

/// What `blackbox probe` reports for one device.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeviceReport {
    pub path: String,
    pub driver: String,
    pub card: String,
    pub bus: String,
    pub capture: bool,
    pub streaming: bool,
    pub inputs: Vec<InputInfo>,
    pub formats: Vec<FormatInfo>,
}

fn fps_of(f: v4l::Fraction) -> f64 {
    if f.numerator == 0 {
        0.0
    } else {
        (f64::from(f.denominator) / f64::from(f.numerator) * 1000.0).round() / 1000.0
    }
}

/// Describes a device: capabilities, inputs, formats, sizes and rates.
pub fn describe(path: &Path) -> Result<DeviceReport, CaptureError> {
    let shown = path.display().to_string();
    let dev = Device::with_path(path).map_err(|e| io_error(&shown, e))?;
    let caps = dev
        .query_caps()
        .map_err(|e| io_error("VIDIOC_QUERYCAP", e))?;
    let capture = caps.capabilities.contains(CapFlags::VIDEO_CAPTURE);
    let mut formats = Vec::new();
    if capture {
        for desc in dev
            .enum_formats()
            .map_err(|e| io_error("VIDIOC_ENUM_FMT", e))?
        {
            let mut info = FormatInfo {
                fourcc: desc.fourcc.to_string(),
                description: desc.description.clone(),
                blackbox_name: format_of(desc.fourcc).map(PixelFormat::name),
                sizes: Vec::new(),
                size_range: None,
            };
            for fs in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
                match fs.size {
                    FrameSizeEnum::Discrete(d) => {
                        let mut size = SizeInfo {
                            width: d.width,
                            height: d.height,
                            fps: Vec::new(),
                            fps_range: None,
                        };
                        for fi in dev
                            .enum_frameintervals(desc.fourcc, d.width, d.height)
                            .unwrap_or_default()
                        {
                            match fi.interval {
                                FrameIntervalEnum::Discrete(f) => size.fps.push(fps_of(f)),
                                FrameIntervalEnum::Stepwise(s) => {
                                    size.fps_range = Some((fps_of(s.max), fps_of(s.min)))
                                }
                            }
                        }
                        info.sizes.push(size);
                    }
                    FrameSizeEnum::Stepwise(s) => {
                        info.size_range =
                            Some(((s.min_width, s.min_height), (s.max_width, s.max_height)));
                    }
                }
            }
            formats.push(info);
        }
    }
    Ok(DeviceReport {
        path: shown,
        driver: caps.driver,
        card: caps.card,
        bus: caps.bus,
        capture,
        streaming: caps.capabilities.contains(CapFlags::STREAMING),
        inputs: inputs(&dev),
        formats,
    })
}

/// A control a device exposes.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ControlInfo {
    pub id: u32,
    pub name: String,
    pub kind: &'static str,
    pub minimum: i64,
    pub maximum: i64,
    pub default: i64,
}

/// Lists the device's controls (VIDIOC_QUERY_EXT_CTRL).
pub fn controls(path: &Path) -> Result<Vec<ControlInfo>, CaptureError> {
    let dev = Device::with_path(path).map_err(|e| io_error(&path.display().to_string(), e))?;
    let list = dev
        .query_controls()
        .map_err(|e| io_error("VIDIOC_QUERY_EXT_CTRL", e))?;
    Ok(list
        .into_iter()
        .filter(|d| d.typ != CtrlType::CtrlClass)
        .map(|d| ControlInfo {
            id: d.id,
            name: d.name,
            kind: match d.typ {
                CtrlType::Integer | CtrlType::Integer64 => "integer",
                CtrlType::Boolean => "boolean",
                CtrlType::Menu | CtrlType::IntegerMenu => "menu",
                CtrlType::Button => "button",
                _ => "other",
            },
            minimum: d.minimum,
            maximum: d.maximum,
            default: d.default,
        })
        .collect())
}

/// Sets the control named `name` (case-insensitive) to `value`; buttons are
/// pressed whatever the value. Opens and closes the device around the call.
pub fn set_control(path: &Path, name: &str, value: i64) -> Result<(), CaptureError> {
    let all = controls(path)?;
    let ctl = all
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| CaptureError::Unsupported(format!("no control named {name:?}")))?;
    let dev = Device::with_path(path).map_err(|e| io_error(&path.display().to_string(), e))?;
    let value = match ctl.kind {
        "button" => Value::None,
        "boolean" => Value::Boolean(value != 0),
        _ => Value::Integer(value),
    };
    dev.set_control(Control { id: ctl.id, value })
        .map_err(|e| io_error("VIDIOC_S_EXT_CTRLS", e))
}

/// The `/dev/video*` nodes, in numeric order.
pub fn video_devices() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
