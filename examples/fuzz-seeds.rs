//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/TARGET/`): small
//! recordings made by the real writer (open, finished, several clusters,
//! cut), Range headers, names, config files and JPEGs. Run it from the
//! checkout after a format change: `cargo run --example fuzz-seeds`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use blackbox::convert::I420;
use blackbox::encode;
use blackbox::frame::Size;
use blackbox::record::mkv::MkvWriter;

/// A tiny stand-in JPEG: SOI, some bytes, EOI (the scanner checks no more).
fn jpeg(i: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend((0..len).map(|k| (k as u8).wrapping_mul(31).wrapping_add(i)));
    v.extend([0xFF, 0xD9]);
    v
}

fn recording(path: &Path, frames: u8, gap_ms: u64, finish: bool) -> std::io::Result<()> {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_713_960);
    let _ = std::fs::remove_file(path);
    let mut w = MkvWriter::create(path, Size::new(320, 240), t0)?;
    for i in 0..frames {
        w.write_frame(u64::from(i) * gap_ms, &jpeg(i, 40))?;
    }
    if finish {
        w.finish(gap_ms)?;
    } else {
        // Trim the preallocated zeros: seeds stay small.
        let end = w.bytes();
        drop(w);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(end)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let dir = |t: &str| {
        let d = root.join(t);
        std::fs::create_dir_all(&d).map(|()| d)
    };
    let mkv = dir("mkv_scan")?;
    recording(&mkv.join("open-3"), 3, 40, false)?;
    recording(&mkv.join("finished-3"), 3, 40, true)?;
    recording(&mkv.join("open-3-clusters"), 5, 600, false)?;
    recording(&mkv.join("finished-3-clusters"), 5, 600, true)?;
    let full = std::fs::read(mkv.join("finished-3"))?;
    std::fs::write(mkv.join("cut"), &full[..full.len() - 70])?;

    let range = dir("range")?;
    for (i, h) in [
        "bytes=0-9",
        "bytes=-500",
        "bytes=100-",
        "bytes=0-18446744073709551616",
        "bytes=9-2",
        "bytes=0-1,5-6",
        "items=0-9",
    ]
    .iter()
    .enumerate()
    {
        let mut seed = 4096u64.to_le_bytes().to_vec();
        seed.extend_from_slice(h.as_bytes());
        std::fs::write(range.join(format!("h{i}")), seed)?;
    }

    let names = dir("names")?;
    for (i, n) in [
        "00000042-20261126T172600Z.mkv",
        "00000042-20261126T172600Z.mkv.part",
        "000000000042-20000229T120000Z.mkv",
        "../00000042-20261126T172600Z.mkv",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(names.join(format!("n{i}")), n)?;
    }

    let config = dir("config")?;
    std::fs::write(
        config.join("full.toml"),
        "[camera]\nsource = \"testsrc\"\nsize = \"1280x720\"\nfps = 30\npixel_format = \"auto\"\ntimeout = \"2s\"\n\
         [encode]\nquality = 80\nworkers = 0\n[http]\nlisten = \"127.0.0.1:8080\"\nmax_connections = 256\n\
         [tap]\nlisten = \"off\"\n[record]\nsegment_seconds = 60\nsync_interval = \"1s\"\nmax_usage = \"80%\"\n\
         min_free = \"5%\"\n[event]\npre_seconds = 10\nmax_usage = \"2GiB\"\n",
    )?;
    std::fs::write(config.join("bad.toml"), "[camera]\nfsp = 15\n[record\n")?;

    let origins = dir("origin")?;
    for (i, seed) in [
        "192.168.1.20:8080\nhttp://192.168.1.20:8080\n",
        "dashcam.example\n\nhttp://dashcam.example/recordings\n",
        "[::1]:8080\nnull\n",
        "evil.example\nhttp://evil.example\n",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(origins.join(format!("o{i}")), seed)?;
    }

    let jpegs = dir("jpeg")?;
    let real = encode::encode_i420(
        &I420::new(Size::new(320, 240)).map_err(std::io::Error::other)?,
        50,
    )
    .map_err(std::io::Error::other)?;
    std::fs::write(jpegs.join("real.jpg"), &real)?;
    std::fs::write(jpegs.join("cut.jpg"), &real[..real.len() / 2])?;
    println!("seeds written to {}", root.display());
    Ok(())
}
