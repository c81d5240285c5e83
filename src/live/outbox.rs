//! One connection's outbox: what rooms and peers push to it, and what its session takes
//! off and writes. Also the direct ways a room opens between the connections in a call
//! ([`Outbox::relay`]), so a relayed message need not pass through the room's task.
//!
//! # Direct ways
//! The room owns who is in a visit; it does not hand that state out. What it can hand out is
//! a *way*: "this connection may pass relayed messages straight to that one". The memory
//! store opens a way for each pair of connected participants of a visit in call, and closes
//! it before it sends anything that changes that pair's standing (the visit ends, one side
//! drops, is sent back, reconnects). The rules that keep every protocol behaviour:
//! - **The sender's order.** A connection with an input its rooms have not handled yet
//!   (`unhandled`) relays through the room, behind that input: what it sent in order is
//!   handled in order, exactly as when everything went through the room.
//! - **The room's word comes first.** Closing a way bumps the *receiving* queue's `epoch`
//!   under its lock, and a direct push checks the epoch under that same lock: a relay
//!   either lands before the room's message that ended the call, or is refused and goes
//!   through the room (which then refuses it, or holds it for replay) like any other.
//! - **Nothing is lost.** A refused direct push gives the message back; the caller submits
//!   it to the room.
//!
//! The first answer of a call (admitted → in call) always goes through the room: ways exist
//! only for visits already in call.

use crate::ids::{ParticipantId, RoomId};
use crate::protocol::ServerMsg;
use std::sync::Arc;

/// What the writer half of a connection receives.
#[derive(Debug)]
/// Boxed: a channel allocates room for 32 entries up front, and a `ServerMsg` is 160
/// bytes, so unboxed that is 5 KiB per idle connection.
pub enum Outgoing {
    Msg(Box<ServerMsg>),
    /// Send this, then close the connection.
    Close(Box<ServerMsg>),
    /// Answer a client's WebSocket ping with these bytes.
    Pong(Box<[u8]>),
}

/// Where one connection's messages go. Bounded: a client that cannot keep up is
/// dropped (its session is told, [`Next::Killed`]) rather than stalling anyone else.
///
/// Not a tokio channel: that allocates its shared state and a block of 32 slots up front,
/// ≈ 1.3 KiB for every connection, most of which sit idle (issue 20). Here an idle
/// connection's queue holds nothing; a push takes a lock for the push alone (never across
/// an await), and wakes the session.
#[derive(Clone)]
pub struct Outbox {
    pub conn: u64,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("conn", &self.conn).finish()
    }
}

/// The session's end of its [`Outbox`]. Dropping it closes the outbox: later pushes are
/// refused.
pub struct Inbox {
    queue: Arc<Queue>,
}

struct Queue {
    // std Mutex: held for one push or pop, never across an await.
    state: std::sync::Mutex<QueueState>,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    items: std::collections::VecDeque<Outgoing>,
    waker: Option<std::task::Waker>,
    killed: bool,
    closed: bool,
    /// Inputs from this connection that its rooms have not handled yet: while any is,
    /// its relays go through the room, behind them.
    unhandled: u32,
    /// Bumped each time a room closes a way into this connection: a way opened at an
    /// older epoch no longer delivers here.
    epoch: u32,
    /// Ways a room opened from this connection to peers in a call (memory store only).
    /// Empty, and no allocation, for any connection not in a call.
    ways: Box<[Way]>,
}

/// A way out of one connection: relays in `room` addressed to `to` may go straight into
/// `outbox` while its queue is still at `epoch`.
struct Way {
    room: RoomId,
    to: ParticipantId,
    outbox: Outbox,
    epoch: u32,
}

impl QueueState {
    fn take(&mut self) -> Option<Next> {
        if self.killed {
            return Some(Next::Killed);
        }
        let m = self.items.pop_front()?;
        if self.items.is_empty() && self.items.capacity() > 4 {
            // A burst is over: do not keep its room for the connection's life.
            self.items = Default::default();
        }
        Some(Next::Out(m))
    }
}

/// What the session takes from its inbox next.
pub enum Next {
    Out(Outgoing),
    /// The client fell `capacity` messages behind: drop it.
    Killed,
}

impl Outbox {
    /// A connection's outbox holding at most `capacity` messages, and its session's end.
    pub fn new(conn: u64, capacity: usize) -> (Outbox, Inbox) {
        let queue = Arc::new(Queue {
            state: std::sync::Mutex::new(QueueState::default()),
            capacity: capacity.max(1),
        });
        (
            Outbox {
                conn,
                queue: queue.clone(),
            },
            Inbox { queue },
        )
    }

    /// Never blocks. Returns false when the client was too slow and is being dropped, or
    /// its session has ended.
    pub fn push(&self, msg: Outgoing) -> bool {
        self.offer(None, msg).unwrap_or(false)
    }

    /// The one way into the queue. Refused (the message given back) once the session has
    /// ended or the client was dropped, or, with `epoch`, when a way into this connection
    /// was closed since that epoch. Otherwise `Ok(taken)`: false when this message found
    /// the queue full, so the client is dropped and the message with it.
    fn offer(&self, epoch: Option<u32>, msg: Outgoing) -> Result<bool, Outgoing> {
        let (taken, waker) = {
            let mut q = self.queue.state.lock().expect("poisoned");
            if q.closed || q.killed || epoch.is_some_and(|e| e != q.epoch) {
                return Err(msg);
            }
            let taken = q.items.len() < self.queue.capacity;
            if taken {
                q.items.push_back(msg);
            } else {
                q.killed = true;
                q.items.clear();
            }
            (taken, q.waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(taken)
    }
}

impl Inbox {
    /// The next message, or [`Next::Killed`] once the client fell too far behind.
    /// Cancel-safe: a message is taken only in the poll that returns it.
    pub fn poll_next(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Next> {
        let mut q = self.queue.state.lock().expect("poisoned");
        match q.take() {
            Some(next) => std::task::Poll::Ready(next),
            None => {
                if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.waker = Some(cx.waker().clone());
                }
                std::task::Poll::Pending
            }
        }
    }

    /// What is queued now, without waiting.
    pub fn try_next(&self) -> Option<Next> {
        self.queue.state.lock().expect("poisoned").take()
    }

    pub async fn next(&self) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next message, `None` once killed (for tests and tools).
    pub async fn recv(&mut self) -> Option<Outgoing> {
        match self.next().await {
            Next::Out(m) => Some(m),
            Next::Killed => None,
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut q = self.queue.state.lock().expect("poisoned");
        q.closed = true;
        q.items.clear();
        q.waker = None;
        // Two connections' ways point at each other's queues: let go of them here, so a
        // call whose rooms never closed its ways (its task stopped first) frees its queues.
        q.ways = Box::default();
    }
}

impl Outbox {
    /// Pass a relayed message from this connection straight to `to`'s, if a room opened
    /// that way and nothing this connection sent before is still waiting for a room. Gives
    /// `msg` back otherwise (the caller submits it to the room). See the module's doc.
    pub fn relay(
        &self,
        room: &RoomId,
        to: &ParticipantId,
        msg: Box<ServerMsg>,
    ) -> Result<(), Box<ServerMsg>> {
        let way = {
            let q = self.queue.state.lock().expect("poisoned");
            if q.unhandled > 0 {
                return Err(msg);
            }
            match q.ways.iter().find(|w| w.to == *to && w.room == *room) {
                Some(w) => (w.outbox.clone(), w.epoch),
                None => return Err(msg),
            }
        };
        let (target, epoch) = way;
        target.push_at(epoch, msg)
    }

    /// Push `msg` if this queue is still at `epoch` (no way into it closed since).
    fn push_at(&self, epoch: u32, msg: Box<ServerMsg>) -> Result<(), Box<ServerMsg>> {
        match self.offer(Some(epoch), Outgoing::Msg(msg)) {
            Ok(_) => Ok(()),
            Err(Outgoing::Msg(msg)) => Err(msg),
            Err(_) => unreachable!("offer gives back what it was given"),
        }
    }

    /// This connection handed an input to a room: its relays wait behind it.
    pub(crate) fn hold(&self) {
        let mut q = self.queue.state.lock().expect("poisoned");
        q.unhandled = q.unhandled.saturating_add(1);
    }

    /// A room handled (or could not take) an input this connection handed it.
    pub(crate) fn handled(&self) {
        let mut q = self.queue.state.lock().expect("poisoned");
        q.unhandled = q.unhandled.saturating_sub(1);
    }

    /// Let relays from this connection to `to` go straight into `target`, as long as no
    /// way into `target` is closed after this.
    pub(crate) fn open_way(&self, room: &RoomId, to: &ParticipantId, target: &Outbox) {
        let epoch = target.queue.state.lock().expect("poisoned").epoch;
        let way = Way {
            room: room.clone(),
            to: to.clone(),
            outbox: target.clone(),
            epoch,
        };
        self.edit_ways(|w| w.to == *to && w.room == *room, Some(way));
    }

    /// Forget this connection's way in `room` into `target` (closed at that end already).
    pub(crate) fn forget_way(&self, room: &RoomId, target: &Outbox) {
        self.edit_ways(|w| w.outbox.same(target) && w.room == *room, None);
    }

    /// Drop the ways `old` picks and add `new`. The table is a boxed slice (no spare
    /// capacity, nothing for a connection outside a call), rebuilt only when it changes.
    fn edit_ways(&self, old: impl Fn(&Way) -> bool, new: Option<Way>) {
        let mut q = self.queue.state.lock().expect("poisoned");
        if q.closed || (new.is_none() && !q.ways.iter().any(&old)) {
            return;
        }
        let mut ways: Vec<Way> = std::mem::take(&mut q.ways).into_vec();
        ways.retain(|w| !old(w));
        ways.extend(new);
        q.ways = ways.into_boxed_slice();
    }

    /// Close every way into this connection: from now on a direct push here is refused
    /// until a room opens a way again.
    pub(crate) fn close_ways_in(&self) {
        let mut q = self.queue.state.lock().expect("poisoned");
        q.epoch = q.epoch.wrapping_add(1);
    }

    /// Whether two handles are the same connection's outbox.
    pub(crate) fn same(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.queue, &other.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::parse(s).unwrap()
    }

    fn eoc(from: &str) -> Box<ServerMsg> {
        Box::new(ServerMsg::EndOfCandidates { from: pid(from) })
    }

    fn queued(rx: &Inbox) -> usize {
        std::iter::from_fn(|| rx.try_next()).count()
    }

    #[test]
    fn a_relay_goes_straight_only_along_an_open_way() {
        let room = RoomId::parse("r_1").unwrap();
        let (a, _a_rx) = Outbox::new(1, 8);
        let (b, b_rx) = Outbox::new(2, 8);
        // No way: the message comes back whole.
        let back = a.relay(&room, &pid("p_b"), eoc("p_a")).unwrap_err();
        assert_eq!(back, eoc("p_a"));

        a.open_way(&room, &pid("p_b"), &b);
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_ok());
        assert_eq!(queued(&b_rx), 1);
        // Only to that participant, only in that room.
        assert!(a.relay(&room, &pid("p_c"), eoc("p_a")).is_err());
        let other = RoomId::parse("r_2").unwrap();
        assert!(a.relay(&other, &pid("p_b"), eoc("p_a")).is_err());

        // Something of `a`'s is still with a room: its relays wait behind it.
        a.hold();
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_err());
        a.handled();
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_ok());
        assert_eq!(queued(&b_rx), 1);
    }

    #[test]
    fn closing_the_ways_into_a_connection_refuses_a_way_read_before() {
        let room = RoomId::parse("r_1").unwrap();
        let (a, _a_rx) = Outbox::new(1, 8);
        let (b, b_rx) = Outbox::new(2, 8);
        a.open_way(&room, &pid("p_b"), &b);
        // The room closes the ways into `b` before it sends what ended the call; `a`'s own
        // table still names the way (the room forgets it there a moment later).
        b.close_ways_in();
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_err());
        assert_eq!(queued(&b_rx), 0);
        // Opened again at the new epoch, it delivers.
        a.open_way(&room, &pid("p_b"), &b);
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_ok());
        a.forget_way(&room, &b);
        assert!(a.relay(&room, &pid("p_b"), eoc("p_a")).is_err());
    }

    #[test]
    fn a_way_into_a_closed_connection_gives_the_message_back() {
        let room = RoomId::parse("r_1").unwrap();
        let (a, a_rx) = Outbox::new(1, 8);
        let (b, b_rx) = Outbox::new(2, 8);
        a.open_way(&room, &pid("p_b"), &b);
        b.open_way(&room, &pid("p_a"), &a);
        drop(b_rx);
        assert_eq!(a.relay(&room, &pid("p_b"), eoc("p_a")), Err(eoc("p_a")));
        // The closed end let go of its ways, so the two queues do not keep each other.
        assert_eq!(Arc::strong_count(&a.queue), 2, "a and a_rx only");
        drop(a_rx);
    }
}
