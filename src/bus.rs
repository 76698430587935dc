//! The frame bus: where encoded frames meet their consumers, with the two
//! delivery policies of DESIGN.md §1.
//!
//! - **Live** ([`Viewer`]): the bus keeps only the newest frame. A viewer asks
//!   for the next frame when it is ready to send one, gets the newest, and
//!   skips (and counts) whatever it missed. There is no per-viewer queue, so
//!   a viewer on a slow link holds at most one frame and delays nobody.
//! - **Ordered** ([`OrderedReceiver`]): every frame, in order, through a
//!   bounded queue per subscriber. When a subscriber falls behind by a full
//!   queue the oldest frame is dropped and counted; publishing never blocks.
//!
//! [`Bus::has_consumers`] lets the capture thread skip encoding when nobody
//! would receive the frame.
//!
//! # Implementation
//! The newest frame sits behind a mutex with a publication index; viewers wait
//! on an [`event_listener::Event`] that every publish notifies. Ordered queues
//! are `async_channel`s filled with `force_send`, which evicts the oldest
//! entry of a full queue. [`Bus::close`] ends every viewer and queue, which is
//! how shutdown reaches the HTTP streams and the tap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use event_listener::{Event, Listener};

use crate::frame::Frame;
use crate::stats::Counter;
use crate::sync::lock;

#[derive(Default)]
struct Latest {
    /// Publication index of `frame` (1 for the first frame, 0 for none).
    index: u64,
    frame: Option<Arc<Frame>>,
    closed: bool,
}

/// An ordered subscriber's queue and its own count of dropped frames.
type Subscriber = (async_channel::Sender<Arc<Frame>>, Arc<Counter>);

/// The frame bus.
#[derive(Default)]
pub struct Bus {
    latest: Mutex<Latest>,
    published_event: Event,
    viewers: AtomicUsize,
    ordered: Mutex<Vec<Subscriber>>,
    /// Frames published.
    pub published: Counter,
    /// Frames live viewers skipped because a newer one was ready.
    pub viewer_skipped: Counter,
    /// Frames evicted from full ordered queues.
    pub ordered_dropped: Counter,
}

impl Bus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes a frame to every consumer. Never blocks on a consumer.
    pub fn publish(&self, frame: Arc<Frame>) {
        {
            let mut latest = lock(&self.latest);
            if latest.closed {
                return;
            }
            latest.index += 1;
            latest.frame = Some(frame.clone());
        }
        self.published.inc();
        self.published_event.notify(usize::MAX);
        let mut ordered = lock(&self.ordered);
        ordered.retain(|(tx, dropped)| match tx.force_send(frame.clone()) {
            Ok(None) => true,
            Ok(Some(_evicted)) => {
                self.ordered_dropped.inc();
                dropped.inc();
                true
            }
            Err(_) => false, // the subscriber went away
        });
    }

    /// The newest frame, if any was published.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        lock(&self.latest).frame.clone()
    }

    /// Becomes a live viewer; dropping the [`Viewer`] leaves.
    pub fn viewer(self: &Arc<Self>) -> Viewer {
        self.viewers.fetch_add(1, Ordering::SeqCst);
        Viewer {
            bus: self.clone(),
            last: 0,
        }
    }

    /// Live viewers right now.
    pub fn viewer_count(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    /// Subscribes to every frame, in order, through a queue of `capacity`
    /// frames (at least 1).
    pub fn subscribe_ordered(&self, capacity: usize) -> OrderedReceiver {
        self.subscribe_ordered_counted(capacity, Arc::new(Counter::default()))
    }

    /// Like [`Bus::subscribe_ordered`], counting this subscriber's dropped
    /// frames in `dropped` (which may outlive the subscription).
    pub fn subscribe_ordered_counted(
        &self,
        capacity: usize,
        dropped: Arc<Counter>,
    ) -> OrderedReceiver {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        // Checked under the subscriber list's lock, which `close` takes to
        // clear the list after setting `closed`: either this sees `closed`
        // and the sender is dropped (the receiver ends at once), or `close`
        // clears the sender added here. Never a sender nobody will close.
        let mut ordered = lock(&self.ordered);
        if !self.is_closed() {
            ordered.push((tx, dropped));
        }
        OrderedReceiver { rx: Box::pin(rx) }
    }

    /// Ordered subscribers right now.
    pub fn ordered_count(&self) -> usize {
        lock(&self.ordered)
            .iter()
            .filter(|(tx, _)| !tx.is_closed())
            .count()
    }

    /// Whether anybody would receive a frame published now.
    pub fn has_consumers(&self) -> bool {
        self.viewer_count() > 0 || self.ordered_count() > 0
    }

    /// Ends every viewer and ordered subscriber; later publishes and
    /// subscriptions are ignored.
    pub fn close(&self) {
        lock(&self.latest).closed = true;
        self.published_event.notify(usize::MAX);
        lock(&self.ordered).clear();
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.latest).closed
    }
}

/// What a viewer found when it looked.
enum Look {
    Frame(Arc<Frame>),
    Closed,
    Nothing,
}

/// A live viewer: gets the newest frame, never a backlog.
pub struct Viewer {
    bus: Arc<Bus>,
    /// Publication index of the last frame this viewer took.
    last: u64,
}

impl Viewer {
    fn look(&mut self) -> Look {
        let latest = lock(&self.bus.latest);
        if latest.closed {
            return Look::Closed;
        }
        match &latest.frame {
            Some(frame) if latest.index > self.last => {
                if self.last > 0 {
                    self.bus.viewer_skipped.add(latest.index - self.last - 1);
                }
                self.last = latest.index;
                Look::Frame(frame.clone())
            }
            _ => Look::Nothing,
        }
    }

    /// The newest frame this viewer has not had yet, waiting for one if
    /// needed; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Arc<Frame>> {
        loop {
            match self.look() {
                Look::Frame(f) => return Some(f),
                Look::Closed => return None,
                Look::Nothing => {}
            }
            let listener = self.bus.published_event.listen();
            match self.look() {
                Look::Frame(f) => return Some(f),
                Look::Closed => return None,
                Look::Nothing => listener.await,
            }
        }
    }

    /// Like [`Viewer::next`], for threads outside the executor.
    pub fn next_blocking(&mut self) -> Option<Arc<Frame>> {
        loop {
            match self.look() {
                Look::Frame(f) => return Some(f),
                Look::Closed => return None,
                Look::Nothing => {}
            }
            let listener = self.bus.published_event.listen();
            match self.look() {
                Look::Frame(f) => return Some(f),
                Look::Closed => return None,
                Look::Nothing => listener.wait(),
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.bus.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An ordered subscription: every frame, in order, unless the queue overflowed.
pub struct OrderedReceiver {
    // Pinned once here, so a receiver can be polled in place among others.
    rx: std::pin::Pin<Box<async_channel::Receiver<Arc<Frame>>>>,
}

impl OrderedReceiver {
    /// The next frame; `None` once the bus is closed and the queue drained.
    pub async fn recv(&self) -> Option<Arc<Frame>> {
        self.rx.recv().await.ok()
    }

    /// Polls for the next frame (for waiting on several receivers at once):
    /// `Ready(None)` once the bus is closed and the queue drained.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Arc<Frame>>> {
        futures_lite::Stream::poll_next(self.rx.as_mut(), cx)
    }

    /// Like [`OrderedReceiver::recv`], for threads outside the executor.
    pub fn recv_blocking(&self) -> Option<Arc<Frame>> {
        self.rx.recv_blocking().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::frame::{PixelFormat, Size};
    use bytes::Bytes;

    fn frame(seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            jpeg: Bytes::from_static(b"jpeg"),
            seq,
            captured: Timestamp::now(),
            size: Size::new(2, 2),
            source_format: PixelFormat::Yuyv,
            placeholder: false,
            motion: None,
        })
    }

    #[test]
    fn viewers_get_the_newest_and_count_skips() {
        let bus = Bus::new();
        let mut v = bus.viewer();
        assert!(bus.has_consumers());
        for seq in 0..5 {
            bus.publish(frame(seq));
        }
        let got = v.next_blocking().unwrap();
        assert_eq!(got.seq, 4);
        bus.publish(frame(5));
        bus.publish(frame(6));
        assert_eq!(v.next_blocking().unwrap().seq, 6);
        assert_eq!(bus.viewer_skipped.get(), 1);
        drop(v);
        assert!(!bus.has_consumers());
    }

    #[test]
    fn ordered_subscribers_get_everything_or_count_drops() {
        let bus = Bus::new();
        let rx = bus.subscribe_ordered(3);
        for seq in 0..5 {
            bus.publish(frame(seq));
        }
        let got: Vec<u64> = (0..3).map(|_| rx.recv_blocking().unwrap().seq).collect();
        assert_eq!(got, vec![2, 3, 4], "oldest evicted first");
        assert_eq!(bus.ordered_dropped.get(), 2);
        drop(rx);
        bus.publish(frame(5));
        assert_eq!(bus.ordered_count(), 0, "gone subscribers are pruned");
    }

    #[test]
    fn close_ends_everyone() {
        let bus = Bus::new();
        let mut v = bus.viewer();
        let rx = bus.subscribe_ordered(2);
        let waiter = std::thread::spawn(move || v.next_blocking().is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        bus.close();
        assert!(waiter.join().unwrap());
        assert!(rx.recv_blocking().is_none());
    }

    #[test]
    fn subscribing_after_close_ends_at_once() {
        let bus = Bus::new();
        bus.close();
        let rx = bus.subscribe_ordered(4);
        assert!(rx.recv_blocking().is_none());
        // Racing: every subscription made while another thread closes the
        // bus ends; none waits forever.
        for _ in 0..200 {
            let bus = Bus::new();
            let b = bus.clone();
            let closer = std::thread::spawn(move || b.close());
            let rx = bus.subscribe_ordered(4);
            closer.join().unwrap();
            assert!(rx.recv_blocking().is_none());
        }
    }
}
