//! The accelerometer reader's cost, against encoding one 720p frame (the
//! baseline, measured in the same run):
//! - `iio_sample`: one IIO sample, the three `_raw` files opened and read
//!   (here from a tree laid out like sysfs on this machine's file system);
//! - `detector`: one sample through gravity removal and the threshold;
//! - `encode_720p`: mozjpeg on a ready 1280x720 frame.
//!
//! Prints each median, the share of one core the reader takes at 100 Hz,
//! and that against recording one 720p camera at 30 fps.
//! Run: `cargo bench --bench impact`.

use std::hint::black_box;
use std::time::Duration;

use blackbox::capture::testsrc::TestSource;
use blackbox::clock::Timestamp;
use blackbox::encode;
use blackbox::frame::{PixelFormat, Size};
use blackbox::impact::detect::Detector;
use blackbox::impact::iio::Iio;
use criterion::{Criterion, criterion_group};

#[path = "shared/estimates.rs"]
mod estimates;
#[path = "shared/noise.rs"]
mod noise;
use estimates::median_ns;

const GROUP: &str = "impact";

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("blackbox-bench-iio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    for (f, v) in [
        ("in_accel_x_raw", "13\n"),
        ("in_accel_y_raw", "-4\n"),
        ("in_accel_z_raw", "256\n"),
        ("in_accel_scale", "0.038307\n"),
    ] {
        std::fs::write(dir.join(f), v).expect("a sysfs-like file");
    }
    let mut iio = Iio::open(&dir).expect("the tree");
    let mut group = c.benchmark_group(GROUP);
    group.bench_function("iio_sample", |b| {
        b.iter(|| black_box(iio.read().expect("read")))
    });
    let mut det = Detector::new(1.5, Duration::from_secs(10));
    let mut t = Duration::ZERO;
    group.bench_function("detector", |b| {
        b.iter(|| {
            t += Duration::from_millis(10);
            black_box(det.push(t, black_box([0.5, 0.01, 0.866])))
        })
    });
    let size = Size::new(1280, 720);
    let mut src = TestSource::new(size, 30, PixelFormat::Yuyv, 80).expect("pattern");
    let mut frame = src.render(1234, Timestamp::now()).clone();
    noise::add_sensor_noise(&mut frame);
    group.bench_function("encode_720p", |b| {
        b.iter(|| black_box(encode::encode_i420(black_box(&frame), 80).expect("encode")))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = estimates::short_runs();
    targets = bench
}

fn main() {
    estimates::run_then_summarise(benches);
    let (Some(read), Some(detect), Some(encode)) = (
        median_ns(GROUP, "iio_sample"),
        median_ns(GROUP, "detector"),
        median_ns(GROUP, "encode_720p"),
    ) else {
        println!("no estimates (run with `cargo bench`, not in test mode)");
        return;
    };
    let sample = read + detect;
    println!("the accelerometer reader (medians of this run):");
    println!(
        "  one sample {:.1} us (read {:.1} us, detector {:.3} us); at 100 Hz {:.3} % of one core",
        sample / 1e3,
        read / 1e3,
        detect / 1e3,
        sample * 100.0 / 1e9 * 100.0
    );
    println!(
        "  against recording one 720p camera at 30 fps ({:.2} ms a frame, {:.1} % of a core): ratio {:.4}",
        encode / 1e6,
        encode * 30.0 / 1e9 * 100.0,
        (sample * 100.0) / (encode * 30.0)
    );
}
