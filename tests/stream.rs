//! The live stream and the frame tap, end to end: the real binary, real
//! sockets on 127.0.0.1, a real HTTP client, every JPEG decoded. Tests count
//! frames received and check their order, never how fast they came.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{MjpegReader, Server, TempDir, decode_luma, sequence_of};

/// Reads `n` parts and checks each one: headers, size, the capture time.
fn read_parts(url: &str, n: usize, width: usize, height: usize) -> Vec<u32> {
    let mut feed = MjpegReader::open(url);
    assert!(
        feed.headers["content-type"].starts_with("multipart/x-mixed-replace"),
        "{:?}",
        feed.headers
    );
    assert!(feed.headers["cache-control"].contains("no-store"));
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let part = feed.next_part().expect("stream ended early");
        assert_eq!(part.headers["content-type"], "image/jpeg");
        assert_eq!(
            part.headers["content-length"].parse::<usize>().unwrap(),
            part.data.len()
        );
        let ts: f64 = part.headers["x-timestamp"]
            .parse()
            .expect("X-Timestamp is seconds");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (now - ts).abs() < 60.0,
            "X-Timestamp {ts} is not the capture time (now {now})"
        );
        let (luma, w, h) = decode_luma(&part.data);
        assert_eq!((w, h), (width, height));
        let seq = blackbox::capture::testsrc::read_sequence(&luma, w, h, w).expect("strip");
        seqs.push(seq);
    }
    seqs
}

fn assert_increasing(seqs: &[u32]) {
    for pair in seqs.windows(2) {
        assert!(
            pair[1] > pair[0],
            "sequence went {} -> {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn video_feed_delivers_decodable_frames_in_order() {
    let server = Server::start(&["--size", "640x480", "--fps", "30", "--pixel-format", "yuyv"]);
    let seqs = read_parts(&server.url("/video_feed"), 45, 640, 480);
    assert_increasing(&seqs);
}

#[test]
fn nv12_and_stream_alias_work() {
    let server = Server::start(&[
        "--size",
        "1280x720",
        "--fps",
        "25",
        "--pixel-format",
        "nv12",
    ]);
    let seqs = read_parts(&server.url("/stream"), 15, 1280, 720);
    assert_increasing(&seqs);
}

#[test]
fn mjpeg_camera_frames_pass_through_unencoded() {
    let server = Server::start(&[
        "--size",
        "640x480",
        "--fps",
        "30",
        "--pixel-format",
        "mjpeg",
    ]);
    let seqs = read_parts(&server.url("/video_feed"), 20, 640, 480);
    assert_increasing(&seqs);
    let st = server.status();
    assert!(
        st["frames"]["passed_through"].as_u64().unwrap() >= 20,
        "{st}"
    );
    assert_eq!(st["frames"]["encoded"], 0, "{st}");
}

#[test]
fn nothing_is_encoded_for_nobody() {
    // Recording on: the recorder is a consumer, so frames are encoded.
    let server = Server::start(&["--size", "640x480", "--fps", "30"]);
    server.wait_status(60, "encoding for the recorder", |st| {
        st["frames"]["encoded"].as_u64().unwrap() > 5
    });
    // Recording off and nobody watching: capture goes on, encoding stops.
    let (code, _, _) = common::request("POST", &server.url("/api/recording/stop"));
    assert_eq!(code, 200);
    server.wait_status(60, "the recorder to stop", |st| {
        st["recorder"]["recording"] == false
    });
    // Whatever was in the encoders when recording stopped comes out first:
    // wait for two readings 300 ms apart with the same count.
    let encoded = |st: &serde_json::Value| st["frames"]["encoded"].as_u64().unwrap();
    let idle = |st: &serde_json::Value| st["frames"]["idle"].as_u64().unwrap();
    let mut before = server.status();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = server.status();
        if encoded(&now) == encoded(&before) {
            break;
        }
        before = now;
    }
    let after = server.wait_status(60, "frames captured for nobody", |st| {
        idle(st) >= idle(&before) + 10
    });
    assert_eq!(
        encoded(&after),
        encoded(&before),
        "encoded for nobody: {after}"
    );
    // A viewer brings encoding back.
    let seqs = read_parts(&server.url("/video_feed"), 3, 640, 480);
    assert_increasing(&seqs);
    assert!(encoded(&server.status()) > encoded(&after));
}

#[test]
fn twenty_viewers_and_one_that_never_reads() {
    let dir = TempDir::new("viewers");
    let cfg = common::config_file(&dir, "[http]\nwrite_timeout = \"2s\"\n");
    let server = Server::start(&["--config", &cfg, "--size", "640x480", "--fps", "30"]);
    // The stalled client: asks for the stream and never reads a byte.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled
        .write_all(b"GET /video_feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = server.rss_kib();

    let url = server.url("/video_feed");
    // Every viewer reads until all twenty are connected and it has 30 parts
    // (none leaves early, whatever the host's speed).
    let all_in = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewers: Vec<_> = (0..20)
        .map(|_| {
            let (url, all_in) = (url.clone(), all_in.clone());
            std::thread::spawn(move || {
                let mut feed = MjpegReader::open(&url);
                let mut seqs = Vec::new();
                while seqs.len() < 30 || !all_in.load(std::sync::atomic::Ordering::SeqCst) {
                    seqs.push(sequence_of(
                        &feed.next_part().expect("stream ended early").data,
                    ));
                }
                seqs
            })
        })
        .collect();
    server.wait_status(60, "20 viewers and the stalled one", |st| {
        st["viewers"] == 21
    });
    all_in.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut rss_during = server.rss_kib();
    let mut results = Vec::new();
    for v in viewers {
        results.push(v.join().unwrap());
        rss_during = rss_during.max(server.rss_kib());
    }
    for (i, seqs) in results.iter().enumerate() {
        // Each got the newest frame whenever it could take one: in order,
        // each one whole (a slow viewer skips frames, it never queues them).
        assert!(seqs.len() >= 30, "viewer {i}");
        assert_increasing(seqs);
    }
    // The stalled client costs at most a frame or two, not a growing queue.
    let growth = rss_during.saturating_sub(rss_before);
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB with a stalled client ({rss_before} -> {rss_during})"
    );
    // Once its socket buffers are full, the write timeout drops it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = server.status();
        if st["viewers"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled viewer was never dropped: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stalled);
}

#[test]
fn a_client_that_leaves_is_removed() {
    let server = Server::start(&["--size", "640x480", "--fps", "30"]);
    {
        let mut feed = MjpegReader::open(&server.url("/video_feed"));
        feed.next_part().unwrap();
        assert_eq!(server.status()["viewers"], 1);
    }
    // The next frame's write fails and the viewer goes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.status()["viewers"] != 0 {
        assert!(Instant::now() < deadline, "viewer not removed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_tap_message(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut jpeg = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut jpeg).unwrap();
    jpeg
}

#[test]
fn tap_delivers_every_frame_in_order_to_two_clients() {
    // A queue deep enough that a client busy decoding on a loaded machine
    // never falls out of it: this test is about order and completeness.
    let dir = TempDir::new("tap");
    let cfg = common::config_file(&dir, "[tap]\nqueue_frames = 1000\n");
    let server = Server::start(&[
        "--config",
        &cfg,
        "--size",
        "640x480",
        "--fps",
        "30",
        "--tap",
        "127.0.0.1:0",
    ]);
    let port = server.tap_port.unwrap();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                (0..60)
                    .map(|_| sequence_of(&read_tap_message(&mut s)))
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    server.wait_status(60, "both tap clients", |st| st["tap_clients"] == 2);
    let got: Vec<Vec<u32>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let st = server.status();
    assert_eq!(st["drops"]["ordered_overflow"], 0, "{st}");
    let lost_upstream = ["source", "encoder_busy", "encode_error", "convert"]
        .iter()
        .map(|k| st["drops"][k].as_u64().unwrap())
        .sum::<u64>();
    for seqs in &got {
        assert_increasing(seqs);
        if lost_upstream == 0 {
            for pair in seqs.windows(2) {
                assert_eq!(pair[1], pair[0] + 1, "tap skipped a frame");
            }
        }
    }
    // Both clients saw exactly the same frames where they overlap.
    let start = got[0][0].max(got[1][0]);
    let end = got[0][59].min(got[1][59]);
    let window = |s: &Vec<u32>| {
        s.iter()
            .copied()
            .filter(|&q| q >= start && q <= end)
            .collect::<Vec<_>>()
    };
    assert!(end >= start, "the clients' windows do not overlap");
    assert_eq!(window(&got[0]), window(&got[1]));
}

#[test]
fn sigterm_exits_cleanly_within_two_seconds_with_viewers() {
    let mut server = Server::start(&["--size", "640x480", "--fps", "30"]);
    let url = server.url("/video_feed");
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut feed = MjpegReader::open(&url);
                let mut n = 0;
                while feed.next_part().is_some() {
                    n += 1;
                }
                n // the stream ended: the server closed it
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let (status, _) = server.sigterm_within(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    for v in viewers {
        assert!(
            v.join().unwrap() > 0,
            "a viewer got no frames before shutdown"
        );
    }
    let log = server.terminate();
    assert!(log.contains("shutting down"), "{log}");
}
