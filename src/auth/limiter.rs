//! The limit on failed logins, per client address: after [`MAX_FAILURES`]
//! in [`WINDOW`], further attempts from that address are refused (HTTP 429
//! with `Retry-After`) until the oldest failure leaves the window. Bounded in
//! memory: past [`MAX_ADDRESSES`] addresses the quietest are forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 4096;

/// Failed attempts by address.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Limiter {
    /// `Ok` if `ip` may try; else how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        let Some(times) = map.get_mut(&ip) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() < MAX_FAILURES {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(WINDOW
            .saturating_sub(now.duration_since(oldest))
            .max(Duration::from_secs(1)))
    }

    /// Counts a failed attempt from `ip`; returns how many it has made in
    /// the window.
    pub fn failed(&self, ip: IpAddr) -> usize {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < WINDOW)
            });
            if map.len() >= MAX_ADDRESSES {
                let quietest = map
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(q) = quietest {
                    map.remove(&q);
                }
            }
        }
        let times = map.entry(ip).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
        times.len()
    }

    /// A successful login clears the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        lock(&self.failures).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_a_pause_per_address() {
        let l = Limiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(l.check(a).is_ok());
            l.failed(a);
        }
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
        assert!(l.check(b).is_ok(), "another address is not affected");
        l.succeeded(a);
        assert!(l.check(a).is_ok());
        for i in 0..MAX_ADDRESSES as u32 + 10 {
            l.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(lock(&l.failures).len() <= MAX_ADDRESSES);
    }
}
