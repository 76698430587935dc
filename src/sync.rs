//! Small synchronisation helpers shared by the threads and tasks.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, carrying on if another thread panicked while holding it.
/// Every value blackbox keeps under a mutex stays consistent between
/// statements (counters, queues, the newest frame), so the data is usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// A one-way "stop now" flag that tasks can await.
#[derive(Default)]
pub struct Shutdown {
    flag: AtomicBool,
    event: Event,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub async fn wait(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            let listener = self.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }
}
