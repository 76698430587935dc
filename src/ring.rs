//! A short ring of sequenced samples that a sensor fills and the recorder
//! drains at every frame (the GPS fixes, the accelerometer's trace): each
//! sample has a sequence number counting from 1 and the monotonic time it
//! was taken; the recorder asks for those after the last it wrote, up to
//! the frame it is about to write. The newest number is also kept in an
//! atomic, so the check made at every frame takes no lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sync::lock;

/// What a sample in the ring says of itself.
pub trait Stamped: Clone {
    fn seq(&self) -> u64;
    fn mono(&self) -> Duration;
}

#[derive(Debug)]
pub struct SeqRing<T> {
    cap: usize,
    items: Mutex<VecDeque<T>>,
    newest: AtomicU64,
}

impl<T: Stamped> SeqRing<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            items: Mutex::new(VecDeque::with_capacity(cap)),
            newest: AtomicU64::new(0),
        }
    }

    /// The next sample's sequence number.
    pub fn next_seq(&self) -> u64 {
        self.newest.load(Ordering::Relaxed) + 1
    }

    /// Adds a sample numbered [`SeqRing::next_seq`]; the oldest goes when
    /// the ring is full.
    pub fn push(&self, sample: T) {
        let seq = sample.seq();
        let mut items = lock(&self.items);
        if items.len() == self.cap {
            items.pop_front();
        }
        items.push_back(sample);
        self.newest.store(seq, Ordering::Release);
    }

    /// Changes the newest sample in place (nothing if there is none).
    pub fn update_last(&self, f: impl FnOnce(&mut T)) {
        if let Some(last) = lock(&self.items).back_mut() {
            f(last);
        }
    }

    /// The newest sample, if any.
    pub fn last(&self) -> Option<T> {
        lock(&self.items).back().cloned()
    }

    /// The newest sample's sequence number (0: none yet).
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::Acquire)
    }

    /// Samples after `seq` taken at or before `upto`, oldest first.
    pub fn after(&self, seq: u64, upto: Duration) -> Vec<T> {
        if self.newest() <= seq {
            return Vec::new();
        }
        lock(&self.items)
            .iter()
            .filter(|s| s.seq() > seq && s.mono() <= upto)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct S(u64, u64);

    impl Stamped for S {
        fn seq(&self) -> u64 {
            self.0
        }
        fn mono(&self) -> Duration {
            Duration::from_millis(self.1)
        }
    }

    #[test]
    fn samples_after_a_number_up_to_a_time_and_the_oldest_go() {
        let r = SeqRing::new(3);
        assert_eq!(r.newest(), 0);
        for i in 1..=4 {
            r.push(S(r.next_seq(), i * 10));
        }
        assert_eq!(r.newest(), 4);
        assert_eq!(
            r.after(0, Duration::from_millis(30)),
            vec![S(2, 20), S(3, 30)]
        );
        assert_eq!(r.after(3, Duration::from_secs(1)), vec![S(4, 40)]);
        assert!(r.after(4, Duration::from_secs(1)).is_empty());
        r.update_last(|s| s.1 = 45);
        assert_eq!(r.last(), Some(S(4, 45)));
    }
}
