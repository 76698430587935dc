//! `blackbox probe`: what the V4L2 devices on this machine offer (inputs,
//! pixel formats, sizes, frame rates), as text like `v4l2-ctl
//! --list-formats-ext` or as JSON for scripts; and every camera `--source
//! auto` would use, Pi cameras included.

use std::fmt::Write as _;
use std::path::Path;

use crate::capture::CaptureError;
use crate::capture::v4l2::{self, DeviceReport};

/// Reports on `device`, or on every video device when `None`.
pub fn probe(device: Option<&Path>) -> Result<Vec<DeviceReport>, CaptureError> {
    match device {
        Some(path) => Ok(vec![v4l2::describe(path)?]),
        None => Ok(v4l2::video_devices()
            .iter()
            .filter_map(|p| match v4l2::describe(p) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!("{}: {e}", p.display());
                    None
                }
            })
            .collect()),
    }
}

/// Every camera `--source auto` would record, as text.
pub fn auto_text() -> String {
    let mut base = crate::config::Config::default().camera;
    base.source = crate::capture::SourceKind::Auto;
    let mut out = String::from("--source auto would use:\n");
    for c in crate::capture::discover(&base) {
        let _ = writeln!(out, "  {}: {}", c.id, crate::capture::describe_choice(&c));
    }
    out
}

/// The reports as text.
pub fn to_text(reports: &[DeviceReport]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        out.push_str("no V4L2 video devices found\n");
    }
    for r in reports {
        let _ = writeln!(
            out,
            "{}: {} (driver {}, {})",
            r.path, r.card, r.driver, r.bus
        );
        if !r.capture {
            out.push_str("  not a video capture device\n\n");
            continue;
        }
        if !r.streaming {
            out.push_str("  no streaming I/O: blackbox cannot use it\n");
        }
        if !r.inputs.is_empty() {
            out.push_str("  inputs:\n");
            for i in &r.inputs {
                let dv = if i.dv_timings { ", DV timings" } else { "" };
                let _ = writeln!(out, "    {}: {} ({}{dv})", i.index, i.name, i.kind);
            }
        }
        out.push_str("  formats:\n");
        for f in &r.formats {
            let usable = match f.blackbox_name {
                Some(name) => format!("--pixel-format {name}"),
                None => "not used by blackbox".to_string(),
            };
            let _ = writeln!(out, "    {} ({}) [{usable}]", f.fourcc, f.description);
            if let Some(((minw, minh), (maxw, maxh))) = f.size_range {
                let _ = writeln!(out, "      sizes {minw}x{minh} to {maxw}x{maxh}");
            }
            for s in &f.sizes {
                let mut rates: Vec<String> = s.fps.iter().map(|f| format!("{f}")).collect();
                if let Some((lo, hi)) = s.fps_range {
                    rates.push(format!("{lo}-{hi}"));
                }
                let _ = writeln!(
                    out,
                    "      {}x{}: {} fps",
                    s.width,
                    s.height,
                    rates.join(", ")
                );
            }
        }
        out.push('\n');
    }
    out
}
