//! The encoder pool every camera shares: a fixed set of threads, and one
//! small queue (a lane) per camera, taken in turn so that a camera with big
//! or many frames cannot starve another.
//!
//! A lane holds at most as many jobs as there are encoder threads; a camera
//! whose lane is full drops its frame (counted by its pipeline), so capture
//! never waits for the encoders and one camera's backlog is never another's.
//! Workers take the next job from the lane after the one they served last
//! (round robin), so with every lane busy each camera gets its turn.
//! Closing the pool lets the workers finish what is queued, then join them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::sync::lock;

/// One frame's encoding, with everything it reports to.
pub type Job = Box<dyn FnOnce() + Send>;

struct Lane {
    jobs: VecDeque<Job>,
}

struct Queues {
    lanes: Vec<Lane>,
    /// The lane the next free worker looks at first.
    next: usize,
    closed: bool,
}

struct Inner {
    queues: Mutex<Queues>,
    work: Condvar,
    /// Jobs one lane may hold.
    capacity: usize,
}

/// The running pool.
pub struct EncoderPool {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

/// A camera's way into the pool.
#[derive(Clone)]
pub struct LaneSender {
    inner: Arc<Inner>,
    lane: usize,
}

impl EncoderPool {
    /// Starts `workers` threads (at least one) serving `lanes` cameras.
    pub fn start(workers: usize, lanes: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let inner = Arc::new(Inner {
            queues: Mutex::new(Queues {
                lanes: (0..lanes)
                    .map(|_| Lane {
                        jobs: VecDeque::with_capacity(workers),
                    })
                    .collect(),
                next: 0,
                closed: false,
            }),
            work: Condvar::new(),
            capacity: workers,
        });
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("encode-{i}"))
                    .spawn(move || serve(&inner))?,
            );
        }
        Ok(Self { inner, threads })
    }

    /// The sender for lane `lane` (one per camera, `0..lanes`).
    pub fn lane(&self, lane: usize) -> LaneSender {
        LaneSender {
            inner: self.inner.clone(),
            lane,
        }
    }

    /// Lets the workers finish every queued job, then joins them.
    pub fn shutdown(mut self) {
        self.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn close(&self) {
        lock(&self.inner.queues).closed = true;
        self.inner.work.notify_all();
    }
}

impl Drop for EncoderPool {
    fn drop(&mut self) {
        self.close();
    }
}

impl LaneSender {
    /// Whether this camera's lane has no room.
    pub fn is_full(&self) -> bool {
        let q = lock(&self.inner.queues);
        q.lanes
            .get(self.lane)
            .is_none_or(|l| l.jobs.len() >= self.inner.capacity)
    }

    /// Queues `job`, or gives it back when the lane is full or the pool
    /// closed.
    pub fn try_send(&self, job: Job) -> Result<(), Job> {
        let mut q = lock(&self.inner.queues);
        if q.closed {
            return Err(job);
        }
        let capacity = self.inner.capacity;
        match q.lanes.get_mut(self.lane) {
            Some(l) if l.jobs.len() < capacity => l.jobs.push_back(job),
            _ => return Err(job),
        }
        drop(q);
        self.inner.work.notify_one();
        Ok(())
    }
}

/// A worker: the next job in turn, until the pool is closed and empty.
fn serve(inner: &Inner) {
    loop {
        let job = {
            let mut q = lock(&inner.queues);
            loop {
                if let Some(job) = take_in_turn(&mut q) {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = inner
                    .work
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        // Test-only: an encoder that never comes back.
        crate::faults::hold_while(|f| f.wedge_encoder);
        job();
    }
}

/// The first job of the first non-empty lane from `next` on; `next` moves
/// past the lane served.
fn take_in_turn(q: &mut Queues) -> Option<Job> {
    let n = q.lanes.len();
    for k in 0..n {
        let i = (q.next + k) % n;
        if let Some(job) = q.lanes[i].jobs.pop_front() {
            q.next = (i + 1) % n;
            return Some(job);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_served_in_turn_and_bounded() {
        // One worker, held on a first job while both lanes fill.
        let pool = EncoderPool::start(1, 2).unwrap();
        let (a, b) = (pool.lane(0), pool.lane(1));
        let gate = Arc::new(Mutex::new(()));
        let held = lock(&gate);
        let order = Arc::new(Mutex::new(Vec::new()));
        let g = gate.clone();
        a.try_send(Box::new(move || drop(lock(&g)))).ok().unwrap();
        // Wait until the worker holds that job.
        while !lock(&pool.inner.queues).lanes[0].jobs.is_empty() {
            std::thread::yield_now();
        }
        let push = |lane: &LaneSender, tag: &'static str| {
            let order = order.clone();
            lane.try_send(Box::new(move || lock(&order).push(tag)))
        };
        assert!(push(&a, "a1").is_ok());
        assert!(
            a.is_full(),
            "a lane holds as many jobs as there are workers"
        );
        assert!(push(&a, "a2").is_err(), "a full lane gives the job back");
        assert!(push(&b, "b1").is_ok(), "another camera's lane is its own");
        drop(held);
        pool.shutdown();
        let got = lock(&order).clone();
        assert_eq!(
            got,
            vec!["b1", "a1"],
            "lane 0 was served last, so lane 1 goes first"
        );
    }

    #[test]
    fn a_busy_camera_cannot_starve_another() {
        // Camera 0 keeps its lane full, camera 1 has a job now and then:
        // every second take is camera 1's while it has one.
        let tagged = |tag: usize| -> Job {
            Box::new(move || {
                let _ = tag;
            })
        };
        let mut q = Queues {
            lanes: (0..2)
                .map(|_| Lane {
                    jobs: VecDeque::new(),
                })
                .collect(),
            next: 0,
            closed: false,
        };
        let mut served = Vec::new();
        for turn in 0..12 {
            while q.lanes[0].jobs.len() < 4 {
                q.lanes[0].jobs.push_back(tagged(0));
            }
            if turn % 3 == 0 {
                q.lanes[1].jobs.push_back(tagged(1));
            }
            let before: Vec<usize> = q.lanes.iter().map(|l| l.jobs.len()).collect();
            take_in_turn(&mut q).unwrap()();
            let after: Vec<usize> = q.lanes.iter().map(|l| l.jobs.len()).collect();
            served.push(if after[1] < before[1] { 1 } else { 0 });
        }
        assert_eq!(served, vec![0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]);
        assert!(
            take_in_turn(&mut Queues {
                lanes: Vec::new(),
                next: 0,
                closed: false
            })
            .is_none()
        );
    }
}
