//! The parked camera's motion detector, per frame at 1280x720 and
//! 1920x1080, against encoding the same frame (the baseline, measured in
//! the same run). Prints each median and the ratio.
//! Run: `cargo bench --bench parking`.

use std::hint::black_box;

use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::encode;
use blackbox::frame::{PixelFormat, Size};
use blackbox::parking::motion::MotionDetector;
use criterion::{Criterion, criterion_group};

#[path = "shared/estimates.rs"]
mod estimates;
#[path = "shared/noise.rs"]
mod noise;
use estimates::median_ns;

const SIZES: [Size; 2] = [Size::new(1280, 720), Size::new(1920, 1080)];

fn group_name(size: Size) -> String {
    format!("motion_{size}")
}

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let mut src = TestSource::new(size, 30, PixelFormat::Yuyv, 80).expect("pattern");
        let mut frame = src.render(1234, Timestamp::now()).clone();
        noise::add_sensor_noise(&mut frame);
        let mut group = c.benchmark_group(group_name(size));
        let mut m = MotionDetector::new(12.0, 0.005);
        let (w, h, stride) = (size.width as usize, size.height as usize, frame.y_stride());
        group.bench_function("motion", |b| {
            b.iter(|| black_box(m.push(black_box(frame.planes().0), w, h, stride)))
        });
        group.bench_function("encode", |b| {
            b.iter(|| black_box(encode::encode_i420(black_box(&frame), 80).expect("encode")))
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
    println!("the motion detector against encoding the same frame (medians of this run):");
    for size in SIZES {
        let group = group_name(size);
        let (Some(motion), Some(encode)) =
            (median_ns(&group, "motion"), median_ns(&group, "encode"))
        else {
            println!("  {size}: no estimates (run with `cargo bench`, not in test mode)");
            continue;
        };
        println!(
            "  {size}: {:.3} ms a frame against {:.2} ms, ratio {:.3}",
            motion / 1e6,
            encode / 1e6,
            motion / encode
        );
    }
}
