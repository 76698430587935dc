//! The limits on password guesses. Every attempt is counted as a failure
//! *before* its password is hashed ([`Limiter::begin`]), so a burst of
//! simultaneous guesses cannot slip past the count while the checks run;
//! a right password takes its attempt back ([`Limiter::succeeded`]).
//!
//! Two budgets, both of which an attempt must fit:
//! - per address: [`MAX_FAILURES`] in [`WINDOW`]; then that address waits
//!   (HTTP 429 with `Retry-After`) until its oldest failure leaves the window;
//! - for everyone together: a bucket of [`GLOBAL_BURST`] attempts that
//!   refills one every [`GLOBAL_REFILL`], so 250 addresses get no more
//!   guesses than a handful would. An address that logged in within
//!   [`KNOWN_FOR`] (the owner's phone, a player, Prometheus) is spared the
//!   shared budget, so a storm from strangers never locks the owner out;
//!   its own per-address limit still holds.
//!
//! Bounded in memory: past [`MAX_ADDRESSES`] addresses the quietest are
//! forgotten, and at most [`MAX_KNOWN`] known addresses are kept.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 4096;
/// Attempts everyone together may make at once, with the bucket full.
pub const GLOBAL_BURST: u32 = 10;
/// The shared bucket gains one attempt this often (20 a minute).
pub const GLOBAL_REFILL: Duration = Duration::from_secs(3);
/// How long an address that logged in stays spared the shared budget.
pub const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);
/// Known addresses remembered at most.
pub const MAX_KNOWN: usize = 64;

/// Why an attempt may not be made now, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This address has used its attempts.
    Address(Duration),
    /// Everyone together has: a storm of guesses is under way.
    Everyone(Duration),
}

impl Refused {
    /// How long until an attempt may be made (at least a second).
    pub fn wait(self) -> Duration {
        match self {
            Self::Address(d) | Self::Everyone(d) => d.max(Duration::from_secs(1)),
        }
    }
}

/// The shared bucket: `tokens` attempts left as of `at`.
struct Bucket {
    tokens: u32,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let gained = now.duration_since(self.at).as_nanos() / GLOBAL_REFILL.as_nanos();
        if gained > 0 {
            let gained = u32::try_from(gained).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(gained).min(GLOBAL_BURST);
            self.at = if self.tokens == GLOBAL_BURST {
                now
            } else {
                self.at + GLOBAL_REFILL * gained
            };
        }
    }

    fn until_next(&self, now: Instant) -> Duration {
        (self.at + GLOBAL_REFILL).saturating_duration_since(now)
    }
}

struct State {
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    bucket: Bucket,
    /// Addresses that logged in, and when they last did.
    known: HashMap<IpAddr, Instant>,
}

/// Attempts by address, and the shared budget.
pub struct Limiter {
    state: Mutex<State>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                failures: HashMap::new(),
                bucket: Bucket {
                    tokens: GLOBAL_BURST,
                    at: Instant::now(),
                },
                known: HashMap::new(),
            }),
        }
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

impl Limiter {
    /// `Ok` if `ip` may try now; nothing is counted.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let now = Instant::now();
        Self::room(&mut lock(&self.state), ip, now).map(|_| ())
    }

    /// Whether `ip` may try now, by both budgets; `Ok(true)` if the attempt
    /// draws on the shared one (`ip` is not known).
    fn room(s: &mut State, ip: IpAddr, now: Instant) -> Result<bool, Refused> {
        Self::address_room(s, ip, now)?;
        if Self::is_known(s, ip, now) {
            return Ok(false);
        }
        s.bucket.refill(now);
        if s.bucket.tokens == 0 {
            return Err(Refused::Everyone(s.bucket.until_next(now)));
        }
        Ok(true)
    }

    fn address_room(s: &mut State, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let Some(times) = s.failures.get_mut(&ip) else {
            return Ok(());
        };
        expire(times, now);
        if times.len() < MAX_FAILURES {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(Refused::Address(
            WINDOW.saturating_sub(now.duration_since(oldest)),
        ))
    }

    fn is_known(s: &State, ip: IpAddr, now: Instant) -> bool {
        s.known
            .get(&ip)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR)
    }

    /// Starts an attempt from `ip`: counted as a failure at once (and taken
    /// from the shared budget unless `ip` is known), before any hashing.
    /// [`Self::succeeded`] or [`Self::cancel`] take it back.
    pub fn begin(&self, ip: IpAddr) -> Result<(), Refused> {
        let now = Instant::now();
        let mut s = lock(&self.state);
        if Self::room(&mut s, ip, now)? {
            s.bucket.tokens -= 1;
        }
        if s.failures.len() >= MAX_ADDRESSES && !s.failures.contains_key(&ip) {
            s.failures.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < WINDOW)
            });
            if s.failures.len() >= MAX_ADDRESSES {
                let quietest = s
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(q) = quietest {
                    s.failures.remove(&q);
                }
            }
        }
        let times = s.failures.entry(ip).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
        Ok(())
    }

    /// Failed attempts `ip` has made in the window (the one that just
    /// failed included).
    pub fn failures(&self, ip: IpAddr) -> usize {
        let now = Instant::now();
        let mut s = lock(&self.state);
        s.failures.get_mut(&ip).map_or(0, |t| {
            expire(t, now);
            t.len()
        })
    }

    /// The attempt made no guess (it was turned away before its check):
    /// it is taken back from both budgets.
    pub fn cancel(&self, ip: IpAddr) {
        let mut s = lock(&self.state);
        let known = Self::is_known(&s, ip, Instant::now());
        if let Some(t) = s.failures.get_mut(&ip) {
            t.pop_back();
            if t.is_empty() {
                s.failures.remove(&ip);
            }
        }
        if !known {
            s.bucket.tokens = (s.bucket.tokens + 1).min(GLOBAL_BURST);
        }
    }

    /// A right password: the address's failures are cleared, its attempt
    /// goes back to the shared budget, and it is known from now on.
    pub fn succeeded(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut s = lock(&self.state);
        let was_known = Self::is_known(&s, ip, now);
        s.failures.remove(&ip);
        if !was_known {
            s.bucket.tokens = (s.bucket.tokens + 1).min(GLOBAL_BURST);
        }
        if s.known.len() >= MAX_KNOWN && !s.known.contains_key(&ip) {
            let oldest = s.known.iter().min_by_key(|(_, at)| **at).map(|(ip, _)| *ip);
            if let Some(o) = oldest {
                s.known.remove(&o);
            }
        }
        s.known.insert(ip, now);
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
            l.begin(a).unwrap();
        }
        assert_eq!(l.failures(a), MAX_FAILURES);
        let Err(Refused::Address(wait)) = l.begin(a) else {
            panic!("the sixth attempt is refused");
        };
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
        assert!(l.check(b).is_ok(), "another address is not affected");
        l.succeeded(a);
        assert!(l.check(a).is_ok());
        for i in 0..MAX_ADDRESSES as u32 + 10 {
            let ip = IpAddr::from(i.to_be_bytes());
            let mut s = lock(&l.state);
            s.bucket.tokens = GLOBAL_BURST;
            drop(s);
            l.begin(ip).unwrap();
        }
        assert!(lock(&l.state).failures.len() <= MAX_ADDRESSES);
    }

    #[test]
    fn many_addresses_share_one_budget_but_a_known_one_is_spared() {
        let l = Limiter::default();
        let owner: IpAddr = "192.0.2.200".parse().unwrap();
        l.begin(owner).unwrap();
        l.succeeded(owner);
        let mut allowed = 0;
        let mut refused = 0;
        for i in 0..250u32 {
            let ip = IpAddr::from((0xC633_6400u32 + i).to_be_bytes());
            match l.begin(ip) {
                Ok(()) => allowed += 1,
                Err(Refused::Everyone(wait)) => {
                    assert!(wait <= GLOBAL_REFILL);
                    refused += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(allowed, GLOBAL_BURST as usize, "250 addresses, one budget");
        assert_eq!(refused, 250 - GLOBAL_BURST as usize);
        // The owner, known by a past login, still gets in.
        l.begin(owner).unwrap();
        l.succeeded(owner);
        // A new address waits for the bucket; a cancelled attempt refunds.
        let newcomer: IpAddr = "192.0.2.201".parse().unwrap();
        assert!(matches!(l.check(newcomer), Err(Refused::Everyone(_))));
        l.cancel(IpAddr::from(0xC633_6400u32.to_be_bytes()));
        l.begin(newcomer).unwrap();
    }

    #[test]
    fn the_bucket_refills_over_time() {
        let mut b = Bucket {
            tokens: 0,
            at: Instant::now(),
        };
        let later = b.at + GLOBAL_REFILL * 2 + Duration::from_millis(1);
        b.refill(later);
        assert_eq!(b.tokens, 2);
        assert!(b.until_next(later) < GLOBAL_REFILL);
        b.refill(later + GLOBAL_REFILL * 100);
        assert_eq!(b.tokens, GLOBAL_BURST);
    }
}
