//! Repeated failures, logged once. A card that has gone read-only fails every
//! frame, 30 times a second; logging each would write ~100,000 lines an hour
//! onto that same card. A [`FailureRun`] logs the first failure of a run with
//! its error, counts the rest quietly (logging again only if the error
//! changes, at most once a minute), and when the run ends, at the next
//! success, logs one line with how many failed and for how long.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a run whose error keeps changing may log again.
const RELOG_EVERY: Duration = Duration::from_secs(60);

/// One kind of operation that can fail repeatedly, e.g. "writing frames".
#[derive(Debug)]
pub struct FailureRun {
    what: &'static str,
    run: Option<Run>,
}

#[derive(Debug)]
struct Run {
    since: Instant,
    count: u64,
    error: String,
    logged_error: String,
    logged_at: Instant,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub count: u64,
    pub lasted: Duration,
}

impl FailureRun {
    pub const fn new(what: &'static str) -> Self {
        Self { what, run: None }
    }

    /// Records a failure; logs it if it starts a run (or, at most once a
    /// minute, if the error is not the one last logged).
    pub fn failed(&mut self, error: &dyn Display) {
        let error = error.to_string();
        match &mut self.run {
            None => {
                log::warn!(
                    "{}: {error} (further failures are counted, not logged)",
                    self.what
                );
                let now = Instant::now();
                self.run = Some(Run {
                    since: now,
                    count: 1,
                    logged_error: error.clone(),
                    error,
                    logged_at: now,
                });
            }
            Some(run) => {
                run.count += 1;
                if error != run.logged_error && run.logged_at.elapsed() >= RELOG_EVERY {
                    log::warn!("{}: now {error} ({} failures so far)", self.what, run.count);
                    run.logged_error.clone_from(&error);
                    run.logged_at = Instant::now();
                }
                run.error = error;
            }
        }
    }

    /// Records a success; if it ends a run, logs the count and returns it.
    pub fn succeeded(&mut self) -> Option<Ended> {
        let run = self.run.take()?;
        let ended = Ended {
            count: run.count,
            lasted: run.since.elapsed(),
        };
        log::info!(
            "{}: working again after {} failure{} over {:.1} s",
            self.what,
            ended.count,
            if ended.count == 1 { "" } else { "s" },
            ended.lasted.as_secs_f64()
        );
        Some(ended)
    }

    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.run.is_some()
    }

    /// The current run's latest error.
    pub fn error(&self) -> Option<&str> {
        self.run.as_ref().map(|r| r.error.as_str())
    }

    /// Failures in the current run.
    pub fn count(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.count)
    }

    /// When the current run began.
    pub fn since(&self) -> Option<Instant> {
        self.run.as_ref().map(|r| r.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_counted_and_ends_at_the_next_success() {
        let mut f = FailureRun::new("writing");
        assert!(!f.failing());
        assert_eq!(f.succeeded(), None, "no run to end");
        for i in 0..100 {
            f.failed(&format!("EROFS {i}"));
        }
        assert!(f.failing());
        assert_eq!(f.count(), 100);
        assert_eq!(f.error(), Some("EROFS 99"));
        let ended = f.succeeded().unwrap();
        assert_eq!(ended.count, 100);
        assert!(!f.failing());
        assert_eq!(f.error(), None);
    }
}
