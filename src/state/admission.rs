//! Who gets a WebSocket slot. Two pools, so idle sockets cannot lock anyone out:
//!
//! - **Unauthenticated**: a socket that has not said `hello` yet holds a [`Pending`] slot,
//!   at most `signalling.max_unauthenticated` per node and `max_unauthenticated_per_ip`
//!   per client address, for at most `hello_timeout_secs`. These never count against
//!   `max_connections`.
//! - **Established**: after `hello` the socket trades its pending slot for one of
//!   `max_connections`. Waiting-room patients may not take the last `reserved_percent`
//!   of them: those are kept for staff and for guests of admitted visits.
//!
//! Slots are RAII values: dropping one (the socket ended, the upgrade never finished)
//! gives it back, so there is no path that leaks a slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a socket was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every established slot (open to this role) is taken.
    #[error("this server is at its connection limit; try again shortly")]
    ServerFull,
    /// This address already has `max_unauthenticated_per_ip` sockets waiting to say hello.
    #[error("too many connections from your address are waiting to say hello")]
    TooManyFromAddress,
    /// The node already holds `max_unauthenticated` sockets waiting to say hello.
    #[error("too many connections are waiting to say hello; try again shortly")]
    TooManyUnauthenticated,
}

#[derive(Default)]
struct PendingCounts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

pub struct Admission {
    established: Arc<Semaphore>,
    limit: usize,
    reserved: usize,
    max_pending: usize,
    max_pending_per_ip: usize,
    // std Mutex: a counter update, never held across an await.
    pending: Mutex<PendingCounts>,
}

/// A socket that has not said `hello` yet. Dropping it frees its place.
pub struct Pending {
    admission: Arc<Admission>,
    ip: IpAddr,
}

/// A socket past `hello`. Dropping it frees its place.
pub struct Established {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// `established` is the semaphore `/readyz` reads (`limit` permits).
    pub fn new(
        established: Arc<Semaphore>,
        limit: usize,
        reserved_percent: usize,
        max_pending: usize,
        max_pending_per_ip: usize,
    ) -> Self {
        Self {
            established,
            limit,
            reserved: limit * reserved_percent / 100,
            max_pending,
            max_pending_per_ip,
            pending: Mutex::default(),
        }
    }

    /// A place for a new socket from `ip` to say hello in.
    pub fn pending(self: &Arc<Self>, ip: IpAddr) -> Result<Pending, Refused> {
        // A node with no established slot left could admit nobody after hello either.
        if self.established.available_permits() == 0 {
            return Err(Refused::ServerFull);
        }
        let mut p = self.pending.lock().expect("poisoned");
        let from_ip = p.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_pending_per_ip {
            return Err(Refused::TooManyFromAddress);
        }
        if p.total >= self.max_pending {
            return Err(Refused::TooManyUnauthenticated);
        }
        p.total += 1;
        *p.by_ip.entry(ip).or_default() += 1;
        Ok(Pending {
            admission: self.clone(),
            ip,
        })
    }

    /// Trade a pending place for an established one. `reserved`: staff and guests of
    /// admitted visits may use the reserved share; waiting-room patients may not.
    pub fn establish(&self, pending: Pending, reserved: bool) -> Result<Established, Refused> {
        let keep = if reserved { 0 } else { self.reserved };
        // Checked then taken, not atomically: two patients at once may dip one slot into
        // the reserve. The reserve is a margin, not an invariant anyone relies on exactly.
        if self.established.available_permits() <= keep {
            return Err(Refused::ServerFull);
        }
        let permit = self
            .established
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::ServerFull)?;
        drop(pending);
        Ok(Established { _permit: permit })
    }

    /// Sockets waiting to say hello, on this node.
    pub fn unauthenticated(&self) -> usize {
        self.pending.lock().expect("poisoned").total
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut p = self.admission.pending.lock().expect("poisoned");
        p.total = p.total.saturating_sub(1);
        if let Some(n) = p.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                p.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(
        limit: usize,
        reserved_percent: usize,
        pending: usize,
        per_ip: usize,
    ) -> Arc<Admission> {
        Arc::new(Admission::new(
            Arc::new(Semaphore::new(limit)),
            limit,
            reserved_percent,
            pending,
            per_ip,
        ))
    }

    #[test]
    fn one_address_gets_its_share_of_unauthenticated_places_and_no_more() {
        let a = admission(40, 10, 100, 3);
        let attacker: IpAddr = [192, 0, 2, 1].into();
        let held: Vec<_> = (0..3).map(|_| a.pending(attacker).unwrap()).collect();
        assert_eq!(a.pending(attacker).err(), Some(Refused::TooManyFromAddress));
        // Someone else still gets in.
        assert!(a.pending([192, 0, 2, 2].into()).is_ok());
        drop(held);
        assert!(
            a.pending(attacker).is_ok(),
            "places come back when sockets end"
        );
        assert_eq!(a.unauthenticated(), 0);
    }

    #[test]
    fn the_reserve_is_for_staff_and_guests() {
        let a = admission(10, 20, 100, 100);
        let ip: IpAddr = [192, 0, 2, 1].into();
        let patients: Vec<_> = (0..8)
            .map(|_| a.establish(a.pending(ip).unwrap(), false).unwrap())
            .collect();
        assert_eq!(
            a.establish(a.pending(ip).unwrap(), false).err(),
            Some(Refused::ServerFull)
        );
        let staff: Vec<_> = (0..2)
            .map(|_| a.establish(a.pending(ip).unwrap(), true).unwrap())
            .collect();
        assert_eq!(a.pending(ip).err(), Some(Refused::ServerFull));
        drop((patients, staff));
        assert_eq!(a.unauthenticated(), 0);
    }
}
