//! Shutdown never hangs: SIGTERM while a client starts and stops recording
//! as fast as it can (a start that reaches the recorder after the frame bus
//! closed once left it waiting forever), a hundred times, each at a
//! different moment. Every run must exit 0 within 2 s of the signal.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, TempDir};

#[test]
fn start_and_stop_racing_sigterm_always_exit_cleanly() {
    let dir = TempDir::new("shutdown-race");
    let mut slowest = Duration::ZERO;
    for run in 0..100u64 {
        let data = dir.0.join(format!("d{run}"));
        let mut server = Server::start(&[
            "--size",
            "320x240",
            "--fps",
            "30",
            "--data",
            data.to_str().unwrap(),
        ]);
        let done = Arc::new(AtomicBool::new(false));
        let hammer = {
            let done = done.clone();
            let (start, stop) = (
                server.url("/api/recording/start"),
                server.url("/api/recording/stop"),
            );
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                while !done.load(Ordering::SeqCst) {
                    for url in [&start, &stop] {
                        if agent.post(url).send_empty().is_err() {
                            return; // the server has gone
                        }
                    }
                }
            })
        };
        // A different moment each run: 0 to 200 ms after it answered.
        std::thread::sleep(Duration::from_millis((run * 37) % 200));
        let (status, took) = server.sigterm_within(Duration::from_secs(2));
        slowest = slowest.max(took);
        done.store(true, Ordering::SeqCst);
        hammer.join().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "run {run}: {:?}",
            server.terminate()
        );
    }
    println!("100 runs; the slowest exit took {slowest:?}");
}
