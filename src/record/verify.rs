//! `blackbox verify FILE`: what a recording holds (frames, duration, size,
//! gaps longer than two frame intervals) and whether it is damaged.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::record::mkv;

/// A gap between two frames.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub after_ms: u64,
    pub length_ms: u64,
}

/// The verdict on one file.
#[derive(Clone, Debug)]
pub struct Report {
    pub file: String,
    pub scan: mkv::Scan,
    pub interval_ms: u64,
    pub gaps: Vec<Gap>,
}

impl Report {
    /// Not finished, headers broken, no frames, or trailing bytes that are
    /// not part of the structure.
    pub fn damaged(&self) -> bool {
        !self.scan.usable() || !self.scan.finished || self.scan.problem.is_some()
    }

    pub fn text(&self) -> String {
        let s = &self.scan;
        let mut out = String::new();
        let _ = writeln!(out, "file:      {}", self.file);
        match s.size {
            Some(size) => {
                let _ = writeln!(out, "video:     MJPEG {size}");
            }
            None => out.push_str("video:     unknown (headers damaged)\n"),
        }
        let first = s.frames.first().map_or(0, |f| f.ts_ms);
        let last = s.frames.last().map_or(0, |f| f.ts_ms);
        let _ = writeln!(out, "frames:    {}", s.frames.len());
        let _ = writeln!(
            out,
            "duration:  {:.3} s (frames span {:.3} s, about {} ms apart)",
            s.duration_ms.unwrap_or(0.0) / 1000.0,
            (last - first) as f64 / 1000.0,
            self.interval_ms
        );
        let _ = writeln!(out, "bytes:     {}", s.file_len);
        if self.gaps.is_empty() {
            out.push_str("gaps:      none\n");
        } else {
            let _ = writeln!(out, "gaps:      {}", self.gaps.len());
            for g in self.gaps.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  at {:.3} s: {} ms without frames",
                    g.after_ms as f64 / 1000.0,
                    g.length_ms
                );
            }
        }
        let verdict = if !s.usable() {
            format!(
                "DAMAGED: {}",
                s.problem
                    .clone()
                    .unwrap_or_else(|| "no complete frame".into())
            )
        } else if let Some(p) = &s.problem {
            format!("DAMAGED: {p}")
        } else if !s.finished {
            "DAMAGED: not finished (interrupted; `blackbox recover` repairs it)".into()
        } else {
            "ok".into()
        };
        let _ = writeln!(out, "status:    {verdict}");
        out
    }
}

/// Scans `path` and looks for gaps longer than two typical frame intervals.
pub fn verify(path: &Path) -> io::Result<Report> {
    let scan = mkv::scan(path)?;
    let mut deltas: Vec<u64> = scan
        .frames
        .windows(2)
        .map(|w| w[1].ts_ms - w[0].ts_ms)
        .collect();
    deltas.sort_unstable();
    let interval = deltas.get(deltas.len() / 2).copied().unwrap_or(0);
    let gaps = scan
        .frames
        .windows(2)
        .filter(|w| interval > 0 && w[1].ts_ms - w[0].ts_ms > 2 * interval)
        .map(|w| Gap {
            after_ms: w[0].ts_ms,
            length_ms: w[1].ts_ms - w[0].ts_ms,
        })
        .collect();
    Ok(Report {
        file: path.display().to_string(),
        scan,
        interval_ms: interval,
        gaps,
    })
}
