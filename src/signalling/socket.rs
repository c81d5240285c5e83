//! The WebSocket under one signalling connection (RFC 6455, server side, no extensions),
//! built so that a connection between messages holds no buffer at all.
//!
//! Why not tungstenite's stream (what axum's `WebSocket` wraps): it keeps a read buffer
//! zero-filled to its full size and grown to the largest frame seen, and a write buffer
//! grown to the largest frame sent, for the connection's whole life. A visit's first offer
//! and answer are ≈ 3 KB each, so every connection in call carried ≈ 16 KiB of buffers
//! it used once (docs/benchmarks.md, "Memory per connection"). Here:
//! - a read lands in a buffer on the stack of the poll; only bytes of a frame that has not
//!   fully arrived are kept on the heap, and that allocation is freed once the frame is;
//! - a message is serialised once, straight into the frame that is written, which is freed
//!   when the write is done.
//!
//! The frame header rules are tungstenite's own ([`FrameHeader::parse`] / `format`); what
//! is ours is the buffering and the message rules a server must enforce (masking, control
//! frames, fragmentation, UTF-8, size), each answered with the close code RFC 6455 names.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::io::{self, Cursor};
use std::mem::MaybeUninit;
use std::task::{Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The upgraded connection.
pub type Io = TokioIo<Upgraded>;

/// Most bytes read from the socket per poll (`signalling.read_buffer_bytes` chooses up to
/// this), on the stack: a batch of candidates or most of an offer in one system call.
pub const MAX_READ: usize = crate::config::SignallingSettings::MAX_READ_BUFFER_BYTES;

/// Hard cap on one WebSocket message: above it the connection is closed (1009), refused
/// from the frame header before any of it is held. Between `signalling.max_message_bytes`
/// and this, the message is refused with `too_large` and the connection stays up.
pub const HARD_MESSAGE_LIMIT: usize = 1 << 20;

/// Why an upgrade request is refused (before anything is switched).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("a WebSocket upgrade must be a GET")]
    NotGet,
    #[error(
        "the request does not ask to upgrade to a WebSocket (Connection: upgrade, Upgrade: websocket)"
    )]
    NotUpgrade,
    #[error("only WebSocket version 13 is spoken (Sec-WebSocket-Version)")]
    Version,
    #[error("the Sec-WebSocket-Key header is missing")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl HandshakeError {
    pub fn status(&self) -> StatusCode {
        match self {
            HandshakeError::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeError::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An accepted upgrade request: answer with [`Upgrade::response`], then await
/// [`Upgrade::on`] for the connection.
pub struct Upgrade {
    accept: HeaderValue,
    pub on: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = HandshakeError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(HandshakeError::NotGet);
        }
        let h = &parts.headers;
        if !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return Err(HandshakeError::NotUpgrade);
        }
        if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
            return Err(HandshakeError::Version);
        }
        let key = h
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(HandshakeError::NoKey)?;
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(HandshakeError::NotUpgradable)?;
        Ok(Upgrade {
            accept: HeaderValue::try_from(accept).map_err(|_| HandshakeError::NoKey)?,
            on,
        })
    }
}

/// Only for axum's bounds: `GET /ws` takes the result and answers with the API's error.
impl axum::response::IntoResponse for HandshakeError {
    fn into_response(self) -> axum::response::Response {
        (self.status(), self.to_string()).into_response()
    }
}

impl Upgrade {
    /// `101 Switching Protocols`, with the key's answer.
    pub fn response(&self) -> axum::response::Response {
        axum::response::Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept.clone())
            .body(axum::body::Body::empty())
            .expect("static headers are valid")
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Split an upgraded connection into its two halves.
pub fn split(
    io: Upgraded,
    read_chunk: usize,
    max_message: usize,
) -> (Reader<ReadHalf<Io>>, Writer<WriteHalf<Io>>) {
    let (r, w) = tokio::io::split(TokioIo::new(io));
    (Reader::new(r, read_chunk, max_message), Writer { io: w })
}

/// A whole message from the client.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    /// Binary messages are not part of the protocol; only their size is kept.
    Binary(usize),
    /// Answer with a pong carrying the same bytes.
    Ping(Vec<u8>),
    Pong,
    /// The client closes; the code it gave, if any.
    Close(Option<u16>),
}

/// Why reading stopped. Each has the close code RFC 6455 gives it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("message of {size} bytes is over the limit of {max}")]
    TooLarge { size: u64, max: usize },
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("a text message that is not UTF-8")]
    NotUtf8,
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    pub fn close_code(&self) -> u16 {
        match self {
            ReadError::TooLarge { .. } => 1009,
            ReadError::Protocol(_) => 1002,
            ReadError::NotUtf8 => 1007,
            ReadError::Io(_) => 1006,
        }
    }
}

pub struct Reader<R> {
    io: R,
    /// Bytes read and not yet taken as a frame: empty, with nothing allocated, between
    /// messages.
    pending: Vec<u8>,
    /// A fragmented message being put together: whether it is text, and its bytes so far.
    partial: Option<(bool, Vec<u8>)>,
    read_chunk: usize,
    max_message: usize,
}

/// One frame taken out of the read bytes.
struct Frame {
    is_final: bool,
    opcode: OpCode,
    payload: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R, read_chunk: usize, max_message: usize) -> Self {
        Reader {
            io,
            pending: Vec::new(),
            partial: None,
            read_chunk: read_chunk.clamp(1, MAX_READ),
            max_message,
        }
    }

    /// The next whole message; `None` once the connection is closed cleanly (end of stream
    /// between messages).
    pub async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        loop {
            match self.take_frame() {
                Err(e) => return Some(Err(e)),
                Ok(Some(frame)) => match self.message(frame) {
                    Ok(Some(m)) => return Some(Ok(m)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                },
                Ok(None) => {}
            }
            match self.read_more().await {
                Ok(0) if self.pending.is_empty() && self.partial.is_none() => return None,
                Ok(0) => {
                    return Some(Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(ReadError::Io(e))),
            }
        }
    }

    /// Read what the socket has into a stack buffer and keep it in `pending`.
    async fn read_more(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            let mut chunk = [MaybeUninit::<u8>::uninit(); MAX_READ];
            let mut buf = ReadBuf::uninit(&mut chunk[..self.read_chunk]);
            ready!(std::pin::Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            let got = buf.filled();
            self.pending.extend_from_slice(got);
            Poll::Ready(Ok(got.len()))
        })
        .await
    }

    /// Take one whole frame from `pending`, unmasked, if it has arrived.
    fn take_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut cursor = Cursor::new(&self.pending[..]);
        let Some((header, len)) =
            FrameHeader::parse(&mut cursor).map_err(|_| ReadError::Protocol("bad frame header"))?
        else {
            return Ok(None);
        };
        // Checked before the payload arrives: an oversized frame is never buffered.
        let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len()) as u64;
        if len.saturating_add(so_far) > self.max_message as u64 {
            return Err(ReadError::TooLarge {
                size: len.saturating_add(so_far),
                max: self.max_message,
            });
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let Some(mask) = header.mask else {
            return Err(ReadError::Protocol("a client frame must be masked"));
        };
        if let OpCode::Control(_) = header.opcode
            && (!header.is_final || len > 125)
        {
            return Err(ReadError::Protocol(
                "a control frame must be whole and at most 125 bytes",
            ));
        }
        let start = cursor.position() as usize;
        let end = start + len as usize;
        if self.pending.len() < end {
            // Room for the rest now, so the frame is read in as few steps as it takes.
            self.pending.reserve(end - self.pending.len());
            return Ok(None);
        }
        let mut payload = if end == self.pending.len() {
            // The frame is all there is (the usual case): its bytes become the payload,
            // no second copy, and nothing is left held while the connection waits.
            let mut all = std::mem::take(&mut self.pending);
            all.drain(..start);
            all
        } else {
            let payload = self.pending[start..end].to_vec();
            self.pending.drain(..end);
            payload
        };
        unmask(&mut payload, mask);
        Ok(Some(Frame {
            is_final: header.is_final,
            opcode: header.opcode,
            payload,
        }))
    }

    /// Put frames together into messages.
    fn message(&mut self, frame: Frame) -> Result<Option<Incoming>, ReadError> {
        let data = match frame.opcode {
            OpCode::Control(Control::Ping) => return Ok(Some(Incoming::Ping(frame.payload))),
            OpCode::Control(Control::Pong) => return Ok(Some(Incoming::Pong)),
            OpCode::Control(Control::Close) => return close_code(&frame.payload).map(Some),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(ReadError::Protocol("reserved opcode"));
            }
            OpCode::Data(d) => d,
        };
        let (text, bytes) = match (data, self.partial.take()) {
            (Data::Continue, None) => {
                return Err(ReadError::Protocol(
                    "a continuation with nothing to continue",
                ));
            }
            (Data::Continue, Some((text, mut so_far))) => {
                so_far.extend_from_slice(&frame.payload);
                (text, so_far)
            }
            (_, Some(_)) => {
                return Err(ReadError::Protocol("a new message inside a fragmented one"));
            }
            (d, None) => (d == Data::Text, frame.payload),
        };
        if !frame.is_final {
            self.partial = Some((text, bytes));
            return Ok(None);
        }
        Ok(Some(if text {
            Incoming::Text(String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)?)
        } else {
            Incoming::Binary(bytes.len())
        }))
    }
}

/// A close frame's body: nothing, or a code and a UTF-8 reason.
fn close_code(body: &[u8]) -> Result<Incoming, ReadError> {
    match body {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(ReadError::Protocol("a close frame with half a code")),
        [a, b, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| ReadError::NotUtf8)?;
            Ok(Incoming::Close(Some(u16::from_be_bytes([*a, *b]))))
        }
    }
}

fn unmask(bytes: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = bytes.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Room kept in front of a frame being built for its header (2–10 bytes, server frames are
/// not masked), so a message is serialised once, in place.
pub const HEADER_ROOM: usize = 10;

/// A frame being built: [`Frame::text`] then write the payload after [`HEADER_ROOM`].
pub struct OutFrame {
    buf: Vec<u8>,
    opcode: OpCode,
}

impl OutFrame {
    pub fn text(capacity: usize) -> Self {
        Self::new(OpCode::Data(Data::Text), capacity)
    }

    fn new(opcode: OpCode, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_ROOM + capacity);
        buf.resize(HEADER_ROOM, 0);
        OutFrame { buf, opcode }
    }

    /// Where the payload is written.
    pub fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The frame's bytes, header in front of the payload.
    fn finish(&mut self) -> &[u8] {
        let len = (self.buf.len() - HEADER_ROOM) as u64;
        let header = FrameHeader {
            opcode: self.opcode,
            ..FrameHeader::default()
        };
        let hlen = header.len(len);
        let start = HEADER_ROOM - hlen;
        let mut slot = &mut self.buf[start..HEADER_ROOM];
        header
            .format(len, &mut slot)
            .expect("the header fits the room kept for it");
        &self.buf[start..]
    }
}

pub struct Writer<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Writer { io }
    }

    /// Write one frame and free it.
    pub async fn send(&mut self, mut frame: OutFrame) -> io::Result<()> {
        self.io.write_all(frame.finish()).await?;
        self.io.flush().await
    }

    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut f = OutFrame::new(OpCode::Control(Control::Pong), payload.len());
        f.payload().extend_from_slice(payload);
        self.send(f).await
    }

    /// A close frame with `code` and `reason` (at most 123 bytes), or an empty one.
    pub async fn close(&mut self, code: Option<(u16, &str)>) -> io::Result<()> {
        let mut f = OutFrame::new(OpCode::Control(Control::Close), 2 + 123);
        if let Some((code, reason)) = code {
            let p = f.payload();
            p.extend_from_slice(&code.to_be_bytes());
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            p.extend_from_slice(&reason.as_bytes()[..end]);
        }
        self.send(f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A frame as a browser sends it: masked.
    fn client_frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let header = FrameHeader {
            is_final,
            opcode,
            mask: Some(mask),
            ..FrameHeader::default()
        };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        out.extend_from_slice(&body);
        out
    }

    const TEXT: OpCode = OpCode::Data(Data::Text);
    const CONT: OpCode = OpCode::Data(Data::Continue);

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Incoming, ReadError>> {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            // One byte at a time: every frame arrives in pieces.
            for b in bytes {
                if client.write_all(&[b]).await.is_err() {
                    return;
                }
            }
        });
        let mut reader = Reader::new(server, 1024, max);
        let mut got = Vec::new();
        while let Some(r) = reader.next().await {
            let stop = r.is_err();
            got.push(r);
            if stop {
                break;
            }
        }
        got
    }

    #[tokio::test]
    async fn a_fragmented_text_is_whole_and_a_ping_between_its_parts_comes_first() {
        let mut wire = client_frame(TEXT, false, b"{\"type\":");
        wire.extend(client_frame(OpCode::Control(Control::Ping), true, b"hi"));
        wire.extend(client_frame(CONT, true, "\"ping\",\"x\":\"é\"}".as_bytes()));
        wire.extend(client_frame(
            OpCode::Control(Control::Close),
            true,
            &[3, 232],
        ));
        let got = read_all(wire, 1 << 20).await;
        assert!(matches!(&got[0], Ok(Incoming::Ping(p)) if p == b"hi"));
        assert!(matches!(&got[1], Ok(Incoming::Text(t)) if t == "{\"type\":\"ping\",\"x\":\"é\"}"));
        assert!(matches!(&got[2], Ok(Incoming::Close(Some(1000)))));
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn nothing_is_kept_between_messages() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = Reader::new(server, MAX_READ, 1 << 20);
        let offer = "v=0 ".repeat(800);
        client
            .write_all(&client_frame(TEXT, true, offer.as_bytes()))
            .await
            .unwrap();
        assert!(matches!(reader.next().await, Some(Ok(Incoming::Text(t))) if t == offer));
        assert_eq!(
            reader.pending.capacity(),
            0,
            "the read buffer is given back"
        );
        assert!(reader.partial.is_none());
    }

    #[tokio::test]
    async fn broken_frames_get_the_close_code_the_rfc_names() {
        // Unmasked.
        let mut unmasked = Vec::new();
        FrameHeader {
            opcode: TEXT,
            ..FrameHeader::default()
        }
        .format(2, &mut unmasked)
        .unwrap();
        unmasked.extend_from_slice(b"hi");
        let got = read_all(unmasked, 1024).await;
        assert!(matches!(&got[0], Err(e) if e.close_code() == 1002));
        // Not UTF-8.
        let got = read_all(client_frame(TEXT, true, &[0xff, 0xfe]), 1024).await;
        assert!(matches!(&got[0], Err(e) if e.close_code() == 1007));
        // A continuation out of nowhere.
        let got = read_all(client_frame(CONT, true, b"x"), 1024).await;
        assert!(matches!(&got[0], Err(e) if e.close_code() == 1002));
        // A fragmented ping.
        let got = read_all(
            client_frame(OpCode::Control(Control::Ping), false, b"x"),
            1024,
        )
        .await;
        assert!(matches!(&got[0], Err(e) if e.close_code() == 1002));
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_from_its_header_alone() {
        // Only the header is ever sent: the refusal cannot wait for the payload.
        let mut header = Vec::new();
        FrameHeader {
            opcode: TEXT,
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::default()
        }
        .format(5000, &mut header)
        .unwrap();
        let got = read_all(header, 4096).await;
        assert!(matches!(
            &got[0],
            Err(ReadError::TooLarge {
                size: 5000,
                max: 4096
            })
        ));
        // And over several fragments.
        let mut wire = client_frame(TEXT, false, &[b'a'; 3000]);
        wire.extend(client_frame(CONT, true, &[b'a'; 3000]));
        let got = read_all(wire, 4096).await;
        assert!(matches!(
            &got[0],
            Err(ReadError::TooLarge { size: 6000, .. })
        ));
    }

    #[test]
    fn unmask_is_the_xor_of_the_key_in_turn() {
        let mask = [1, 2, 3, 4];
        let plain: Vec<u8> = (0u8..11).collect();
        let mut b = plain.clone();
        unmask(&mut b, mask);
        let want: Vec<u8> = plain
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect();
        assert_eq!(b, want);
    }

    #[test]
    fn frames_carry_a_header_sized_to_the_payload() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let mut f = OutFrame::text(len);
            f.payload().resize(HEADER_ROOM + len, b'a');
            let bytes = f.finish().to_vec();
            let (h, n) = FrameHeader::parse(&mut Cursor::new(&bytes))
                .unwrap()
                .unwrap();
            assert_eq!(n as usize, len);
            assert!(h.is_final && h.mask.is_none());
            assert_eq!(h.opcode, OpCode::Data(Data::Text));
            assert_eq!(bytes.len(), h.len(n) + len);
        }
    }
}
