//! `blackbox verify FILE`: what a recording holds (frames, duration, size,
//! gaps longer than two frame intervals) and whether a player will read all
//! of it. A file is `ok` only if every check holds: the header exactly as
//! blackbox writes it, every frame's CRC-32, cues and statistics that match
//! the frames, nothing after them, and every JPEG decoding cleanly (in strict
//! mode, unless `--quick` skips the decoding). Anything less is `DAMAGED`,
//! with the first reason found.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::path::Path;

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::record::scan::{self, Depth, Scan};

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
    pub scan: Scan,
    pub interval_ms: u64,
    pub gaps: Vec<Gap>,
    /// The first frame that did not decode (1-based) and why.
    pub undecodable: Option<(usize, String)>,
    /// Whether the frames were decoded.
    pub decoded: bool,
}

impl Report {
    /// Why the file is damaged, or `None` if it is whole.
    pub fn damage(&self) -> Option<String> {
        let s = &self.scan;
        if !s.usable() {
            return Some(
                s.problem
                    .clone()
                    .or(s.header_problem.clone())
                    .unwrap_or_else(|| "no complete frame".into()),
            );
        }
        if let Some(p) = &s.problem {
            return Some(p.clone());
        }
        if let Some(p) = &s.header_problem {
            return Some(p.clone());
        }
        if !s.finished {
            return Some("not finished (interrupted; `blackbox recover` repairs it)".into());
        }
        if let Some((n, why)) = &self.undecodable {
            return Some(format!("frame {n} does not decode: {why}"));
        }
        None
    }

    pub fn damaged(&self) -> bool {
        self.damage().is_some()
    }

    pub fn text(&self) -> String {
        let s = &self.scan;
        let mut out = String::new();
        let _ = writeln!(out, "file:      {}", self.file);
        match s.size {
            Some(size) => {
                let _ = writeln!(out, "video:     MJPEG {size}");
            }
            None => out.push_str("video:     unknown (header damaged)\n"),
        }
        let first = s.frames.first().map_or(0, |f| f.ts_ms);
        let last = s.frames.last().map_or(0, |f| f.ts_ms);
        let _ = writeln!(
            out,
            "frames:    {}{}",
            s.frames.len(),
            if self.decoded { ", each decoded" } else { "" }
        );
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
        let verdict = match self.damage() {
            Some(why) => format!("DAMAGED: {why}"),
            None => "ok".into(),
        };
        let _ = writeln!(out, "status:    {verdict}");
        out
    }
}

/// Decodes a JPEG strictly: any corruption the decoder notices is an error.
pub fn decode_strict(jpeg: &[u8]) -> Result<(), String> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), options);
    dec.decode().map(|_| ()).map_err(|e| format!("{e:?}"))
}

/// Checks `path` (see the module documentation); `decode` also decodes
/// every frame.
pub fn verify(path: &Path, decode: bool) -> io::Result<Report> {
    let file = File::open(path)?;
    let scan = scan::scan_file(&file, Depth::Checksums)?;
    let interval = scan.interval_ms();
    let gaps = scan
        .frames
        .windows(2)
        .filter(|w| interval > 0 && w[1].ts_ms - w[0].ts_ms > 2 * interval)
        .map(|w| Gap {
            after_ms: w[0].ts_ms,
            length_ms: w[1].ts_ms - w[0].ts_ms,
        })
        .collect();
    let mut undecodable = None;
    if decode {
        for (i, f) in scan.frames.iter().enumerate() {
            let result = scan::read_frame(&file, f, true)
                .map_err(|e| e.to_string())
                .and_then(|jpeg| decode_strict(&jpeg));
            if let Err(why) = result {
                undecodable = Some((i + 1, why));
                break;
            }
        }
    }
    Ok(Report {
        file: path.display().to_string(),
        scan,
        interval_ms: interval,
        gaps,
        undecodable,
        decoded: decode,
    })
}
