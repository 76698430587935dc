//! Encode cost at 1280x720 and 1920x1080: bare mozjpeg on a ready I420 frame
//! (the baseline) against blackbox's full path for YUYV and NV12 cameras
//! (conversion into the padded I420 image, mozjpeg, publishing on the bus to
//! a live viewer), on the test pattern with sensor-like noise added. Prints the ratio full/bare per size and format, from
//! medians measured in this run.
//!
//! Run: `cargo bench --bench encode`.

use std::hint::black_box;
use std::sync::Arc;

use blackbox::bus::Bus;
use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::convert::{self, I420};
use blackbox::encode;
use blackbox::frame::{Frame, PixelFormat, Size};
use bytes::Bytes;
use criterion::{Criterion, criterion_group};

#[path = "shared/estimates.rs"]
mod estimates;
#[path = "shared/noise.rs"]
mod noise;
use estimates::median_ns;
use noise::add_sensor_noise;

const QUALITY: u8 = 80;
const SIZES: [Size; 2] = [Size::new(1280, 720), Size::new(1920, 1080)];
const FORMATS: [PixelFormat; 2] = [PixelFormat::Yuyv, PixelFormat::Nv12];

fn group_name(size: Size) -> String {
    format!("encode_{size}")
}

fn bench(c: &mut Criterion) {
    for size in SIZES {
        // Real picture content: the test pattern, as a camera would send it.
        let mut src = TestSource::new(size, 30, PixelFormat::Yuyv, QUALITY).expect("pattern");
        let mut i420 = src.render(1234, Timestamp::now()).clone();
        add_sensor_noise(&mut i420);
        let mut group = c.benchmark_group(group_name(size));
        group.bench_function("bare_mozjpeg", |b| {
            b.iter(|| black_box(encode::encode_i420(black_box(&i420), QUALITY).expect("encode")))
        });
        for format in FORMATS {
            let mut packed = Vec::new();
            let stride = convert::pack(&i420, format, &mut packed).expect("pack");
            let bus = Bus::new();
            let mut viewer = bus.viewer();
            let mut img = I420::new(size).expect("size");
            group.bench_function(format!("full_{format}"), |b| {
                b.iter(|| {
                    convert::to_i420(format, black_box(&packed), size, stride, &mut img)
                        .expect("convert");
                    let jpeg = encode::encode_i420(&img, QUALITY).expect("encode");
                    bus.publish(Arc::new(Frame {
                        jpeg: Bytes::from(jpeg),
                        seq: 0,
                        captured: Timestamp::now(),
                        size,
                        source_format: format,
                        placeholder: false,
                        motion: None,
                    }));
                    black_box(viewer.next_blocking())
                })
            });
        }
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
    println!("full path / bare mozjpeg (medians of this run, quality {QUALITY}):");
    for size in SIZES {
        let group = group_name(size);
        let Some(bare) = median_ns(&group, "bare_mozjpeg") else {
            println!("  {size}: no estimates (run with `cargo bench`, not in test mode)");
            continue;
        };
        for format in FORMATS {
            if let Some(full) = median_ns(&group, &format!("full_{format}")) {
                println!(
                    "  {size} {format}: bare {:.2} ms, full {:.2} ms, ratio {:.3}",
                    bare / 1e6,
                    full / 1e6,
                    full / bare
                );
            }
        }
    }
}
