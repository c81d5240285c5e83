//! A room task's inbox: many senders, one receiver, bounded, and a sender that finds it
//! full waits for room (no input is ever dropped).
//!
//! Not a tokio channel: that allocates its shared state, two cache-padded halves, and a
//! block of 32 slots when it is made, ≈ 1.1 KiB for every room, which in a clinic of
//! one-physician rooms is paid per visit (issue 20). Here an empty inbox holds its
//! counters alone; a send or receive takes a lock for the push or pop (never across an
//! await), and a waiting sender waits on a [`Notify`], which allocates nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// An inbox holding at most `capacity` items, and its receiving end.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waiting: 0,
            closed: false,
            receiver: None,
        }),
        capacity: capacity.max(1),
        senders: AtomicUsize::new(1),
        room_made: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Not under the lock: cloning a sender is an increment.
    senders: AtomicUsize,
    /// Wakes a sender waiting for the inbox to have room, or to close.
    room_made: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    /// Senders waiting for room: each pop wakes one.
    waiting: usize,
    /// The receiver closed or dropped the inbox: sends are refused.
    closed: bool,
    /// The receiver, waiting for an item or for the last sender to go.
    receiver: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic never happens while the lock is held (push, pop, counters), so a
        // poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` if the inbox has room for it now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let s = self.shared.lock();
        if s.closed {
            return Err(TrySendError::Closed(item));
        }
        if s.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        push(s, item);
        Ok(())
    }

    /// Queues `item`, waiting while the inbox is full. Gives it back once the receiver
    /// has closed the inbox.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        // Counts this sender as waiting from the first time it finds the inbox full until
        // it returns, however it returns (a dropped future included).
        let mut waiting: Option<Waiting<'_, T>> = None;
        loop {
            let room_made = self.shared.room_made.notified();
            tokio::pin!(room_made);
            {
                let mut s = self.shared.lock();
                if s.closed {
                    return Err(item);
                }
                if s.items.len() < self.shared.capacity {
                    push(s, item);
                    return Ok(());
                }
                if waiting.is_none() {
                    s.waiting += 1;
                    waiting = Some(Waiting(&self.shared));
                }
                // Registered before the lock is let go: a pop after this wakes us.
                room_made.as_mut().enable();
            }
            room_made.await;
        }
    }

    /// Whether the receiver has closed the inbox.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

/// Queue `item` and wake the receiver, once the lock is let go.
fn push<T>(mut s: std::sync::MutexGuard<'_, State<T>>, item: T) {
    s.items.push_back(item);
    let receiver = s.receiver.take();
    drop(s);
    if let Some(w) = receiver {
        w.wake();
    }
}

struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

/// Why [`Sender::try_send`] gave the item back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    Full(T),
    Closed(T),
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last one: the receiver, if waiting, learns the inbox has ended. Taken
        // under the lock, so a receiver that saw a sender left has registered by now.
        let receiver = self.shared.lock().receiver.take();
        if let Some(w) = receiver {
            w.wake();
        }
    }
}

pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the inbox is empty and every sender is gone (or it
    /// was closed). Cancel-safe: an item is taken only in the poll that returns it.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.shared.lock();
        if let Some(item) = self.take(&mut s) {
            return Poll::Ready(Some(item));
        }
        if s.closed || self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        if !s.receiver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.receiver = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// An item queued now, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut s = self.shared.lock();
        self.take(&mut s)
    }

    fn take(&self, s: &mut State<T>) -> Option<T> {
        let item = s.items.pop_front()?;
        if s.items.is_empty() && s.items.capacity() > 8 {
            // A burst is over: do not keep its room for the room task's life.
            s.items = VecDeque::new();
        }
        if s.waiting > 0 {
            self.shared.room_made.notify_one();
        }
        Some(item)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }

    /// Refuse further sends; what is queued can still be received.
    pub(crate) fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room_made.notify_waiters();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut s = self.shared.lock();
            s.closed = true;
            std::mem::take(&mut s.items)
        };
        self.shared.room_made.notify_waiters();
        // Dropped outside the lock: an item's own drop may do anything.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn items_arrive_in_order_and_end_when_senders_go() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        tx.send(1).await.unwrap();
        tx2.send(2).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "a sender is left, so the inbox is open"
        );
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_inbox_makes_senders_wait_and_loses_nothing() {
        let (tx, mut rx) = channel(2);
        let mut senders = Vec::new();
        for i in 0..10 {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move { tx.send(i).await }));
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            rx.shared.lock().items.len(),
            2,
            "no more than the capacity is queued"
        );
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        for s in senders {
            assert!(s.await.unwrap().is_ok());
        }
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn try_send_says_full_or_closed_and_gives_the_item_back() {
        let (tx, mut rx) = channel(1);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.try_send(3), Ok(()));
        rx.close();
        assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
        assert_eq!(rx.try_recv(), Some(3));
    }

    #[tokio::test]
    async fn closing_refuses_sends_and_frees_waiting_senders() {
        let (tx, mut rx) = channel(1);
        tx.send("queued").await.unwrap();
        let blocked = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send("blocked").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished());
        rx.close();
        assert_eq!(blocked.await.unwrap(), Err("blocked"));
        assert!(tx.is_closed());
        assert_eq!(tx.send("late").await, Err("late"));
        // What was queued before the close is still there for the leftovers.
        assert_eq!(rx.try_recv(), Some("queued"));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_cancelled_waiting_sender_does_not_strand_the_next() {
        let (tx, mut rx) = channel(1);
        tx.send(0).await.unwrap();
        let first = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(1).await })
        };
        let second = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(2).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        assert_eq!(rx.recv().await, Some(0));
        assert!(second.await.unwrap().is_ok());
        assert_eq!(rx.recv().await, Some(2));
    }
}
