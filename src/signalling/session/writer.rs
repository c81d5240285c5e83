//! What is written: messages framed once, and how a connection is closed.

use super::*;

/// Close codes, by the error that ends the connection. Documented in docs/protocol.md.
pub fn close_code(msg: &ServerMsg) -> u16 {
    match msg {
        ServerMsg::GoingAway { .. } => 1001,
        ServerMsg::Error {
            code: ErrorCode::TooLarge,
            ..
        } => 1009,
        ServerMsg::Error {
            code: ErrorCode::AccessRevoked,
            ..
        } => 4403,
        ServerMsg::Error {
            code: ErrorCode::ServerFull | ErrorCode::Unavailable,
            ..
        } => 1013,
        _ => 1008,
    }
}

/// The close reason: the error code (or `going_away`), so a client that only sees the
/// close frame still knows why.
pub(super) fn close_reason(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Error { code, .. } => code.as_str(),
        ServerMsg::GoingAway { .. } => "going_away",
        _ => "",
    }
}

pub(super) type Sink = socket::Writer<tokio::io::WriteHalf<socket::Io>>;

/// `msg` as one text frame, serialised once, straight into the bytes that are written.
pub(super) fn frame(msg: &ServerMsg) -> socket::OutFrame {
    let mut f = socket::OutFrame::text(256);
    serde_json::to_writer(f.payload(), msg).expect("server messages serialise");
    f
}

/// Longest the last words to a closing client may take: one that does not read (a flood)
/// must not keep its session, and its slot, alive.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Send `msg`, then the close frame its code calls for, each bounded by [`CLOSE_WAIT`].
pub(super) async fn send_close(sink: &mut Sink, msg: &ServerMsg) {
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(frame(msg))).await;
    let code = close_code(msg);
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.close(Some((code, close_reason(msg))))).await;
    if code == 1009 {
        // The rest of the oversized frame cannot be read, and a socket closed with unread
        // data is reset, which loses this close frame on its way: hold the socket (this
        // half keeps it open) while the client reads it.
        tokio::time::sleep(CLOSE_WAIT).await;
    }
}

/// What the rooms told this connection about its visit, as it is sent.
pub(super) fn observe(v: &mut View, msg: &ServerMsg) {
    match msg {
        ServerMsg::Admitted { room, visit, .. } => v.active = Some((room.clone(), visit.clone())),
        ServerMsg::VisitEnded { visit, .. }
        | ServerMsg::SentBack { visit, .. }
        | ServerMsg::Denied { visit, .. }
            if v.active.as_ref().is_some_and(|(_, a)| a == visit) =>
        {
            v.active = None;
        }
        _ => {}
    }
}
