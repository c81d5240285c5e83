//! The WebSocket edge: one [`session`] per connection turns wire messages into room
//! inputs and room outputs into wire messages. It decides nothing about visits; the
//! room state machine does. Who gets a socket at all is [`crate::state::admission`]'s.

pub mod session;
pub mod socket;
mod throttle;

use crate::ids::{ParticipantId, StaffId};
use crate::protocol::{ErrorCode, ServerMsg};
use crate::state::AppState;

/// An admin changed `staff`'s account — deactivated it, changed its roles, revoked its
/// sessions, or took it off a room. What their open socket was allowed at `hello` (the live queue with patient
/// names, admitting) no longer holds, so the socket is closed on whichever node holds it
/// (`access_revoked`, close code 4403). The dashboard reconnects, and its new `hello` is
/// checked against the account as it is now — and so is a resume while the database is
/// away (`identity::access::staff_changed`).
pub async fn staff_access_changed(state: &AppState, staff: &StaffId) {
    crate::identity::access::staff_changed(state.memo.as_ref(), staff).await;
    let live = state.live.as_ref();
    // A staff member's participant id is their staff id.
    let Ok(who) = ParticipantId::parse(staff.as_str()) else {
        return;
    };
    let msg = ServerMsg::error(
        ErrorCode::AccessRevoked,
        "an admin changed your account or your rooms; sign in again",
    );
    if let Err(e) = live.revoke(&who, msg).await {
        // This node's socket is closed already; other nodes' sockets are refused at their
        // next hello, but stay open until then.
        tracing::warn!(staff = %staff, error = %e, "could not tell every node that a staff account changed");
    }
}
