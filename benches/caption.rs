//! The caption's cost, at 1280x720 and 1920x1080, against encoding the
//! same frame without it (the baseline, measured in the same run):
//! - `plain`: mozjpeg on a ready I420 frame;
//! - `captioned`: the caption drawn (time, speed, position), then mozjpeg;
//! - `mjpeg_recode`: what an MJPEG camera with `caption_mjpeg` pays: its
//!   JPEG decoded (zune-jpeg) into I420, captioned and encoded again.
//!
//! Prints each median and its ratio to `plain`. Run: `cargo bench --bench caption`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use blackbox::caption::Captioner;
use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::config::Caption;
use blackbox::convert::{self, I420};
use blackbox::encode;
use blackbox::frame::{PixelFormat, Size};
use blackbox::gps::Gps;
use criterion::{Criterion, criterion_group};

#[path = "shared/estimates.rs"]
mod estimates;
#[path = "shared/noise.rs"]
mod noise;
use estimates::median_ns;
use noise::add_sensor_noise;

const QUALITY: u8 = 80;
const SIZES: [Size; 2] = [Size::new(1280, 720), Size::new(1920, 1080)];

fn group_name(size: Size) -> String {
    format!("caption_{size}")
}

fn bench(c: &mut Criterion) {
    let all = Caption {
        time: true,
        speed: true,
        position: true,
    };
    let captioner = Captioner::new(all, Arc::new(Gps::off())).expect("a caption");
    for size in SIZES {
        let mut src = TestSource::new(size, 30, PixelFormat::Yuyv, QUALITY).expect("pattern");
        let mut frame = src.render(1234, Timestamp::now()).clone();
        add_sensor_noise(&mut frame);
        let jpeg = encode::encode_i420(&frame, QUALITY).expect("encode");
        let mut group = c.benchmark_group(group_name(size));
        // Both copy the frame first (a caption is drawn on a copy), so the
        // difference is the caption alone.
        let mut img = frame.clone();
        group.bench_function("plain", |b| {
            b.iter(|| {
                img.copy_from(&frame);
                black_box(encode::encode_i420(black_box(&img), QUALITY).expect("encode"))
            })
        });
        group.bench_function("captioned", |b| {
            b.iter(|| {
                img.copy_from(&frame);
                captioner.draw(&mut img, SystemTime::now());
                black_box(encode::encode_i420(&img, QUALITY).expect("encode"))
            })
        });
        let mut img = I420::new(size).expect("size");
        group.bench_function("mjpeg_recode", |b| {
            b.iter(|| {
                convert::jpeg_to_i420(black_box(&jpeg), &mut img).expect("decode");
                captioner.draw(&mut img, SystemTime::now());
                black_box(encode::encode_i420(&img, QUALITY).expect("encode"))
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = estimates::short_runs();
    targets = bench
}

fn main() {
    estimates::run_then_summarise(benches);
    println!("against encoding without a caption (medians of this run, quality {QUALITY}):");
    for size in SIZES {
        let group = group_name(size);
        let Some(plain) = median_ns(&group, "plain") else {
            println!("  {size}: no estimates (run with `cargo bench`, not in test mode)");
            continue;
        };
        for f in ["captioned", "mjpeg_recode"] {
            if let Some(ns) = median_ns(&group, f) {
                println!(
                    "  {size} {f}: {:.2} ms against {:.2} ms, ratio {:.3}",
                    ns / 1e6,
                    plain / 1e6,
                    ns / plain
                );
            }
        }
    }
}
