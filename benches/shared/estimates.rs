//! What criterion measured in this run, read back from its estimates so a
//! benchmark can print ratios against a baseline measured alongside.

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// Short runs (30 samples, 4 s each): enough for a median on a quiet
/// machine, short enough for `cargo bench` to finish in minutes.
pub fn short_runs() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

/// Runs the benchmarks, then the summary criterion prints at the end.
pub fn run_then_summarise(benches: fn()) {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!();
}

/// The median criterion measured for one benchmark in this run, in ns.
pub fn median_ns(group: &str, function: &str) -> Option<f64> {
    let home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let path = home.join(group).join(function).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}
