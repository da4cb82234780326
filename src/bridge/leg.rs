//! One leg of the bridge: a tokio-tungstenite WebSocket (axum's upgrade for Twilio, the
//! tokio-tungstenite client for Vapi) seen as a `Stream + Sink` of [`WsFrame`]s, converted in place
//! (no adaptor futures), and the limits every peer is held to.
//!
//! The WebSocket library answers pings and closes itself. What this layer adds:
//! - a read error (oversized frame or message, protocol violation, invalid UTF-8) ends the stream
//!   and remembers the close code the peer gets when the relay closes the leg (1009, 1002, 1007);
//! - a peer that sends more than [`PING_BUDGET`] pings within a second is cut off with 1008, so a
//!   ping flood costs neither CPU nor memory (tungstenite keeps one pong pending, and the write
//!   buffer is capped by [`config`]).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::ws as axws;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio_tungstenite::tungstenite::{
    self, error::CapacityError, protocol::WebSocketConfig, protocol::frame::coding::CloseCode,
};

use super::relay::WsFrame;

/// Read buffer of each socket, allocated when the socket opens and zero-filled by tungstenite
/// before every read: frames are a few hundred bytes (Twilio `media` ~330, Vapi audio 160–743), a
/// larger one takes several reads.
pub const READ_BUFFER: usize = 1024;

/// Frames collect in the write buffer up to this size before they are written (the relay flushes
/// after each batch anyway). The buffer keeps the capacity it once reached, so a small threshold
/// keeps each socket's share small (measured in docs/PERFORMANCE.md); it grows past it only while
/// the socket does not take what is written.
pub const WRITE_BUFFER: usize = 1024;

/// Most bytes waiting for a peer that does not read: past it the sink waits (and tungstenite keeps
/// one pending pong instead of one per ping).
pub const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// Largest Twilio Media Stream message or frame (Twilio's are under 1 KiB).
pub const TWILIO_MAX_MESSAGE: usize = 64 * 1024;

/// Largest Vapi message or frame: 16 s of µ-law audio in one frame (Vapi's are under 1 KiB).
pub const VAPI_MAX_MESSAGE: usize = 256 * 1024;

/// Pings a peer may send within one second; the next one closes the connection with 1008.
pub const PING_BUDGET: u32 = 20;

/// The WebSocket limits of a leg whose messages are at most `max_message` bytes.
pub fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Why a leg stopped reading, as the close code (and reason) the peer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub code: u16,
    pub reason: &'static str,
}

impl Fault {
    pub const TOO_BIG: Fault = Fault {
        code: 1009,
        reason: "message too big",
    };
    pub const PROTOCOL: Fault = Fault {
        code: 1002,
        reason: "protocol error",
    };
    pub const BAD_DATA: Fault = Fault {
        code: 1007,
        reason: "invalid UTF-8",
    };
    pub const PINGS: Fault = Fault {
        code: 1008,
        reason: "too many pings",
    };
    /// A stream that is not admitted (no or bad token, no `start`).
    pub const REFUSED: Fault = Fault {
        code: 1008,
        reason: "stream refused",
    };

    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self.code {
            1009 => "too_big",
            1002 => "protocol",
            1007 => "bad_data",
            1008 if self.reason == Fault::PINGS.reason => "ping_flood",
            1008 => "refused",
            _ => "other",
        }
    }

    fn of(error: &tungstenite::Error) -> Option<Fault> {
        match error {
            tungstenite::Error::Capacity(
                CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
            ) => Some(Fault::TOO_BIG),
            tungstenite::Error::Protocol(_) => Some(Fault::PROTOCOL),
            tungstenite::Error::Utf8(_) => Some(Fault::BAD_DATA),
            _ => None,
        }
    }
}

/// What one incoming message is for the relay.
#[derive(Debug)]
pub enum Incoming {
    Frame(WsFrame),
    Ping,
    /// Pongs and raw frames: nothing to relay.
    Nothing,
}

/// A WebSocket library's message type.
pub trait WsMessage: Sized {
    type Error;
    fn incoming(self) -> Incoming;
    fn outgoing(frame: WsFrame, fault: Option<Fault>) -> Self;
    fn fault(error: Self::Error) -> Option<Fault>;
}

impl WsMessage for axws::Message {
    type Error = axum::Error;

    fn incoming(self) -> Incoming {
        match self {
            axws::Message::Text(t) => Incoming::Frame(WsFrame::Text(t.as_str().to_owned())),
            axws::Message::Binary(b) => Incoming::Frame(WsFrame::Binary(b)),
            axws::Message::Close(_) => Incoming::Frame(WsFrame::Close),
            axws::Message::Ping(_) => Incoming::Ping,
            axws::Message::Pong(_) => Incoming::Nothing,
        }
    }

    fn outgoing(frame: WsFrame, fault: Option<Fault>) -> Self {
        match frame {
            WsFrame::Text(t) => axws::Message::Text(t.into()),
            WsFrame::Binary(b) => axws::Message::Binary(b),
            WsFrame::Close => axws::Message::Close(fault.map(|f| axws::CloseFrame {
                code: f.code,
                reason: f.reason.into(),
            })),
        }
    }

    fn fault(error: axum::Error) -> Option<Fault> {
        // axum wraps the tokio-tungstenite error it got (the same tungstenite as ours).
        error
            .into_inner()
            .downcast::<tungstenite::Error>()
            .ok()
            .and_then(|e| Fault::of(&e))
    }
}

impl WsMessage for tungstenite::Message {
    type Error = tungstenite::Error;

    fn incoming(self) -> Incoming {
        match self {
            tungstenite::Message::Text(t) => Incoming::Frame(WsFrame::Text(t.as_str().to_owned())),
            tungstenite::Message::Binary(b) => Incoming::Frame(WsFrame::Binary(b)),
            tungstenite::Message::Close(_) => Incoming::Frame(WsFrame::Close),
            tungstenite::Message::Ping(_) => Incoming::Ping,
            tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_) => Incoming::Nothing,
        }
    }

    fn outgoing(frame: WsFrame, fault: Option<Fault>) -> Self {
        match frame {
            WsFrame::Text(t) => tungstenite::Message::Text(t.into()),
            WsFrame::Binary(b) => tungstenite::Message::Binary(b),
            WsFrame::Close => {
                tungstenite::Message::Close(fault.map(|f| tungstenite::protocol::CloseFrame {
                    code: CloseCode::from(f.code),
                    reason: f.reason.into(),
                }))
            }
        }
    }

    fn fault(error: tungstenite::Error) -> Option<Fault> {
        Fault::of(&error)
    }
}

/// One leg of the bridge. A read error ends the stream (the libraries end it after an error
/// anyway); its close code is sent when the leg is closed.
#[derive(Debug)]
pub struct Leg<S> {
    socket: S,
    fault: Option<Fault>,
    pings: u32,
    window: Instant,
}

impl<S> Leg<S> {
    pub fn new(socket: S) -> Self {
        Self {
            socket,
            fault: None,
            pings: 0,
            window: Instant::now(),
        }
    }

    /// Why the leg stopped reading, when the peer broke a limit.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// The close code the peer gets when the leg is closed.
    pub fn set_fault(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Counts a ping; `false` once the peer is over its budget.
    fn ping_allowed(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.pings = 0;
        }
        self.pings += 1;
        self.pings <= PING_BUDGET
    }
}

impl<S, M> Stream for Leg<S>
where
    S: Stream<Item = Result<M, M::Error>> + Unpin,
    M: WsMessage,
{
    type Item = WsFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsFrame>> {
        if self.fault.is_some() {
            return Poll::Ready(None);
        }
        loop {
            match ready!(self.socket.poll_next_unpin(cx)) {
                Some(Ok(message)) => match message.incoming() {
                    Incoming::Frame(frame) => return Poll::Ready(Some(frame)),
                    Incoming::Ping if !self.ping_allowed() => {
                        self.fault = Some(Fault::PINGS);
                        return Poll::Ready(None);
                    }
                    Incoming::Ping | Incoming::Nothing => {}
                },
                Some(Err(error)) => {
                    self.fault = M::fault(error);
                    return Poll::Ready(None);
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<S, M> Sink<WsFrame> for Leg<S>
where
    S: Stream<Item = Result<M, M::Error>> + Sink<M> + Unpin,
    M: WsMessage,
{
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.socket.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: WsFrame) -> Result<(), S::Error> {
        let fault = self.fault;
        self.socket.start_send_unpin(M::outgoing(frame, fault))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.socket.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.socket.poll_close_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    type Msg = Result<tungstenite::Message, tungstenite::Error>;

    fn leg(items: Vec<Msg>) -> Leg<stream::Iter<std::vec::IntoIter<Msg>>> {
        Leg::new(stream::iter(items))
    }

    #[tokio::test]
    async fn frames_pass_and_pongs_are_skipped() {
        let mut l = leg(vec![
            Ok(tungstenite::Message::Pong(Vec::new().into())),
            Ok(tungstenite::Message::Text("hi".into())),
            Ok(tungstenite::Message::Binary(vec![1, 2].into())),
            Ok(tungstenite::Message::Close(None)),
        ]);
        assert_eq!(l.next().await, Some(WsFrame::Text("hi".into())));
        assert_eq!(l.next().await, Some(WsFrame::Binary(vec![1, 2].into())));
        assert_eq!(l.next().await, Some(WsFrame::Close));
        assert_eq!(l.next().await, None);
        assert_eq!(l.fault(), None);
    }

    #[tokio::test]
    async fn a_ping_flood_ends_the_leg_with_1008() {
        let pings = (0..=PING_BUDGET)
            .map(|_| Ok(tungstenite::Message::Ping(Vec::new().into())))
            .chain([Ok(tungstenite::Message::Text("after".into()))])
            .collect();
        let mut l = leg(pings);
        assert_eq!(l.next().await, None);
        assert_eq!(l.fault(), Some(Fault::PINGS));
        // Once faulted, nothing more is read.
        assert_eq!(l.next().await, None);
    }

    #[tokio::test]
    async fn pings_within_the_budget_are_fine() {
        let mut items: Vec<Msg> = (0..PING_BUDGET)
            .map(|_| Ok(tungstenite::Message::Ping(Vec::new().into())))
            .collect();
        items.push(Ok(tungstenite::Message::Text("x".into())));
        assert_eq!(leg(items).next().await, Some(WsFrame::Text("x".into())));
    }

    #[tokio::test]
    async fn read_errors_map_to_close_codes() {
        let cases: Vec<(tungstenite::Error, Option<Fault>)> = vec![
            (
                tungstenite::Error::Capacity(CapacityError::MessageTooLong {
                    size: 10,
                    max_size: 1,
                }),
                Some(Fault::TOO_BIG),
            ),
            (
                tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::UnmaskedFrameFromClient,
                ),
                Some(Fault::PROTOCOL),
            ),
            (tungstenite::Error::ConnectionClosed, None),
        ];
        for (error, fault) in cases {
            let mut l = leg(vec![Err(error)]);
            assert_eq!(l.next().await, None);
            assert_eq!(l.fault(), fault);
        }
    }

    #[test]
    fn the_close_frame_carries_the_fault() {
        let close = tungstenite::Message::outgoing(WsFrame::Close, Some(Fault::TOO_BIG));
        let tungstenite::Message::Close(Some(frame)) = close else {
            panic!("{close:?}")
        };
        assert_eq!(u16::from(frame.code), 1009);
        assert_eq!(
            tungstenite::Message::outgoing(WsFrame::Close, None),
            tungstenite::Message::Close(None)
        );
        let axum = axws::Message::outgoing(WsFrame::Close, Some(Fault::PINGS));
        assert!(
            matches!(axum, axws::Message::Close(Some(ref f)) if f.code == 1008),
            "{axum:?}"
        );
    }

    #[test]
    fn the_config_is_bounded() {
        let c = config(TWILIO_MAX_MESSAGE);
        assert_eq!(c.read_buffer_size, READ_BUFFER);
        assert_eq!(c.max_write_buffer_size, MAX_WRITE_BUFFER);
        assert_eq!(c.max_frame_size, Some(TWILIO_MAX_MESSAGE));
        assert_eq!(c.max_message_size, Some(TWILIO_MAX_MESSAGE));
    }
}
