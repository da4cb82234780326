//! The audio relay between a Twilio Media Stream and a Vapi `vapi.websocket` call, generic over
//! `Sink + Stream` legs so it runs the same over real sockets and over channels in tests.
//!
//! - Twilio `media` (base64 µ-law) → one binary frame to Vapi with the same bytes.
//! - Vapi binary audio (any size, bursty) → 160-byte (20 ms) chunks → Twilio `media`, in order; the
//!   tail of a turn is flushed and followed by a `mark` when the assistant stops speaking.
//! - Barge-in (`speech-update` user started, or `user-interrupted`) → Twilio `clear`, buffered
//!   downlink audio dropped (including chunks queued but not yet written).
//! - Twilio `dtmf` → an `add-message` telling the assistant which key was pressed.
//! - Twilio `stop` or socket loss → Vapi `end-call`; Vapi ending → the Twilio stream is closed.
//!
//! One future owns both sockets (no `split()`, no lock between halves) and moves frames through one
//! bounded queue per direction. A leg whose socket is not ready for writing only stops its own
//! direction: the relay stops reading the side that feeds the full queue (TCP back-pressure reaches
//! that peer) and keeps relaying the other way. Memory per call is bounded by the two queues.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt as _, Sink, Stream, StreamExt as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::metrics::names;
use crate::twilio::media::{MediaFrame, Outbound};

/// 20 ms of µ-law at 8 kHz.
pub const CHUNK_BYTES: usize = 160;

/// Frames waiting for the Vapi socket before the relay stops reading the caller's (1 s of audio).
pub const UP_QUEUE: usize = 50;

/// Entries waiting for the Twilio socket before the relay stops reading the assistant's (1 s of
/// audio). One Vapi frame is chunked whole, so the queue can exceed this by one frame's chunks; the
/// chunks share the frame's bytes.
pub const DOWN_QUEUE: usize = 50;

/// Entries each queue is allocated with: a healthy call has one or two frames in flight each way,
/// so the queues start small and grow (to the bounds above) only while a socket falls behind. Both
/// allocated whole at their bounds cost about 5 KiB per call (docs/PERFORMANCE.md).
pub const QUEUE_START: usize = 4;

/// How long the last frames (end-call, the turn's tail and mark, closes) may take once the call ends.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    Text(String),
    /// Shared bytes: audio moves between the sockets without a copy.
    Binary(Bytes),
    Close,
}

/// How a bridged call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Twilio sent `stop` or its socket closed: the caller hung up. Vapi was told `end-call`.
    CallerHungUp,
    /// Vapi ended the call (`status-update` ended, or a normal close). The Twilio stream is closed.
    AssistantEnded { reason: Option<String> },
    /// Vapi's socket failed: the Twilio stream is closed so Twilio falls back to `/twilio/stream-ended`
    /// and the IVR continues the lead.
    VapiLost,
    /// Shutdown reached its deadline.
    Cancelled,
}

impl Ending {
    pub fn reason(&self) -> &'static str {
        match self {
            Ending::CallerHungUp => "caller_hung_up",
            Ending::AssistantEnded { .. } => "assistant_ended",
            Ending::VapiLost => "vapi_lost",
            Ending::Cancelled => "shutdown",
        }
    }
}

/// What one call relayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub frames_up: u64,
    pub bytes_up: u64,
    pub frames_down: u64,
    pub bytes_down: u64,
    pub clears: u64,
    pub marks: u64,
}

/// The relay-time histogram records one frame in this many per direction and call: reading the clock
/// twice per frame was a measurable share of the relay's own CPU, and 50 frames a second per call
/// leave the histogram well fed (counters still count every frame).
pub const LATENCY_SAMPLE_EVERY: u32 = 8;

/// Metric handles of one direction, looked up once per call instead of once per frame.
struct Meters {
    frames: metrics::Counter,
    bytes: metrics::Counter,
    relay: metrics::Histogram,
    seen: u32,
}

impl Meters {
    fn new(direction: &'static str) -> Self {
        Self {
            frames: metrics::counter!(names::BRIDGE_FRAMES, "direction" => direction),
            bytes: metrics::counter!(names::BRIDGE_BYTES, "direction" => direction),
            relay: metrics::histogram!(names::BRIDGE_RELAY_SECONDS, "direction" => direction),
            seen: 0,
        }
    }

    /// The time a frame arrived, when this frame is one the histogram samples.
    fn start(&mut self) -> Option<Instant> {
        self.seen = self.seen.wrapping_add(1);
        (self.seen % LATENCY_SAMPLE_EVERY == 1).then(Instant::now)
    }

    /// Counts a frame handed to the socket (and its relay time, when sampled).
    fn observe(&self, started: Option<Instant>, bytes: usize) {
        self.frames.increment(1);
        self.bytes.increment(bytes as u64);
        if let Some(started) = started {
            self.relay.record(started.elapsed().as_secs_f64());
        }
    }
}

fn dtmf_message(digit: &str) -> String {
    json!({
        "type": "add-message",
        "message": { "role": "user", "content": format!("L'appelant a appuyé sur la touche {digit} du clavier.") },
        "triggerResponseEnabled": true
    })
    .to_string()
}

const END_CALL: &str = r#"{"type":"end-call"}"#;

/// A frame waiting for the Vapi socket.
struct Up {
    frame: WsFrame,
    /// When the caller's audio frame arrived, if the histogram samples it.
    started: Option<Instant>,
}

impl Up {
    /// A frame that is not caller audio (not timed).
    fn control(frame: WsFrame) -> Self {
        Self {
            frame,
            started: None,
        }
    }
}

/// What waits for the Twilio socket; `media` messages are encoded only when the socket takes them.
enum Down {
    /// Up to 160 bytes of the assistant's audio, sharing the bytes of the frame it came in.
    Audio {
        chunk: Bytes,
        started: Option<Instant>,
    },
    Clear,
    Mark(u64),
    Close,
}

/// A leg whose socket failed while writing.
#[derive(Debug)]
struct Broken;

/// Hands queued items to `sink` while it is ready, then flushes. `Ok(true)` when something was
/// written, `Err` when the socket failed.
fn drive<S, T>(
    sink: &mut S,
    queue: &mut VecDeque<T>,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
    mut write_item: impl FnMut(&mut S, T) -> Result<(), Broken>,
) -> Result<bool, Broken>
where
    S: Sink<WsFrame> + Unpin,
{
    let mut wrote = false;
    while !queue.is_empty() {
        match Pin::new(&mut *sink).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Err(Broken),
            Poll::Pending => break,
        }
        let Some(item) = queue.pop_front() else { break };
        write_item(sink, item)?;
        wrote = true;
        *unflushed = true;
    }
    if *unflushed {
        match Pin::new(&mut *sink).poll_flush(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(_)) => return Err(Broken),
            Poll::Pending => {}
        }
    }
    Ok(wrote)
}

/// A leg whose stream ended.
#[derive(Debug)]
struct Ended;

/// The next frame of `side` when its outgoing queue has `room` and it has not answered `Pending`
/// in this wake-up (`idle`); `Ok(None)` when there is nothing to read now.
fn next_frame<S: Stream<Item = WsFrame> + Unpin>(
    side: &mut S,
    idle: &mut bool,
    room: bool,
    cx: &mut Context<'_>,
) -> Result<Option<WsFrame>, Ended> {
    if *idle || !room {
        return Ok(None);
    }
    match side.poll_next_unpin(cx) {
        Poll::Ready(Some(frame)) => Ok(Some(frame)),
        Poll::Ready(None) => Err(Ended),
        Poll::Pending => {
            *idle = true;
            Ok(None)
        }
    }
}

fn send<S: Sink<WsFrame> + Unpin>(sink: &mut S, frame: WsFrame) -> Result<(), Broken> {
    Pin::new(sink).start_send(frame).map_err(|_| Broken)
}

/// One call's relay state: both legs, the queue towards each, and what was relayed.
struct Relay<'a, T, V> {
    twilio: T,
    vapi: V,
    stream_sid: &'a str,
    /// Towards Vapi.
    up: VecDeque<Up>,
    up_unflushed: bool,
    /// Towards Twilio.
    down: VecDeque<Down>,
    down_unflushed: bool,
    /// The assistant's audio that does not fill a chunk yet.
    carry: Vec<u8>,
    turn: u64,
    stats: RelayStats,
    up_meters: Meters,
    down_meters: Meters,
    clears: metrics::Counter,
}

impl<'a, T, V> Relay<'a, T, V>
where
    T: Stream<Item = WsFrame> + Sink<WsFrame> + Unpin,
    V: Stream<Item = WsFrame> + Sink<WsFrame> + Unpin,
{
    fn new(twilio: T, vapi: V, stream_sid: &'a str) -> Self {
        Self {
            twilio,
            vapi,
            stream_sid,
            up: VecDeque::with_capacity(QUEUE_START),
            up_unflushed: false,
            down: VecDeque::with_capacity(QUEUE_START),
            down_unflushed: false,
            carry: Vec::with_capacity(CHUNK_BYTES),
            turn: 0,
            stats: RelayStats::default(),
            up_meters: Meters::new("up"),
            down_meters: Meters::new("down"),
            clears: metrics::counter!(names::BRIDGE_CLEARS),
        }
    }

    /// Writes what the Vapi socket will take.
    fn drive_up(&mut self, cx: &mut Context<'_>) -> Result<bool, Broken> {
        let (stats, meters) = (&mut self.stats, &self.up_meters);
        drive(
            &mut self.vapi,
            &mut self.up,
            &mut self.up_unflushed,
            cx,
            |vapi, Up { frame, started }| {
                let audio = match &frame {
                    WsFrame::Binary(audio) => Some(audio.len()),
                    _ => None,
                };
                send(vapi, frame)?;
                if let Some(len) = audio {
                    stats.frames_up += 1;
                    stats.bytes_up += len as u64;
                    meters.observe(started, len);
                }
                Ok(())
            },
        )
    }

    /// Writes what the Twilio socket will take, encoding `media` messages as it goes.
    fn drive_down(&mut self, cx: &mut Context<'_>) -> Result<bool, Broken> {
        let stream_sid = self.stream_sid;
        let (stats, meters, clears) = (&mut self.stats, &self.down_meters, &self.clears);
        drive(
            &mut self.twilio,
            &mut self.down,
            &mut self.down_unflushed,
            cx,
            |twilio, item| {
                match item {
                    Down::Audio { chunk, started } => {
                        let audio = &chunk[..];
                        send(
                            twilio,
                            WsFrame::Text(Outbound::Media { stream_sid, audio }.to_json()),
                        )?;
                        stats.frames_down += 1;
                        stats.bytes_down += audio.len() as u64;
                        meters.observe(started, audio.len());
                    }
                    Down::Clear => {
                        send(
                            twilio,
                            WsFrame::Text(Outbound::Clear { stream_sid }.to_json()),
                        )?;
                        stats.clears += 1;
                        clears.increment(1);
                    }
                    Down::Mark(turn) => {
                        let name = format!("turn-{turn}");
                        let mark = Outbound::Mark {
                            stream_sid,
                            name: &name,
                        };
                        send(twilio, WsFrame::Text(mark.to_json()))?;
                        stats.marks += 1;
                    }
                    Down::Close => send(twilio, WsFrame::Close)?,
                }
                Ok(())
            },
        )
    }

    /// A frame from Twilio; `Some` when it ends the call.
    fn on_twilio(&mut self, frame: WsFrame) -> Option<Ending> {
        let started = self.up_meters.start();
        let text = match frame {
            WsFrame::Text(text) => text,
            WsFrame::Close => return Some(Ending::CallerHungUp),
            WsFrame::Binary(_) => return None, // Twilio sends text only.
        };
        match MediaFrame::parse(&text) {
            Ok(MediaFrame::Media { payload, .. }) => self.up.push_back(Up {
                frame: WsFrame::Binary(payload.into()),
                started,
            }),
            Ok(MediaFrame::Dtmf { digit, .. }) => self
                .up
                .push_back(Up::control(WsFrame::Text(dtmf_message(&digit)))),
            Ok(MediaFrame::Stop { .. }) => return Some(Ending::CallerHungUp),
            Ok(MediaFrame::Mark { .. } | MediaFrame::Connected | MediaFrame::Start(_)) => {}
            Ok(MediaFrame::Unknown { event }) => {
                tracing::debug!(%event, "unknown Media Stream event ignored");
            }
            Err(error) => tracing::warn!(%error, "malformed Media Stream frame ignored"),
        }
        None
    }

    /// Queues the assistant's audio as 160-byte chunks; what does not fill a chunk waits in `carry`.
    fn queue_audio(&mut self, mut audio: Bytes, started: Option<Instant>) {
        if !self.carry.is_empty() {
            let need = CHUNK_BYTES - self.carry.len();
            if audio.len() < need {
                self.carry.extend_from_slice(&audio);
                return;
            }
            self.carry.extend_from_slice(&audio[..need]);
            self.down.push_back(Down::Audio {
                chunk: Bytes::copy_from_slice(&self.carry),
                started,
            });
            self.carry.clear();
            audio = audio.slice(need..);
        }
        while audio.len() >= CHUNK_BYTES {
            self.down.push_back(Down::Audio {
                chunk: audio.split_to(CHUNK_BYTES),
                started,
            });
        }
        self.carry.extend_from_slice(&audio);
    }

    /// A frame from Vapi; `Some` when it ends the call.
    fn on_vapi(&mut self, frame: WsFrame) -> Option<Ending> {
        let text = match frame {
            WsFrame::Binary(audio) => {
                let started = self.down_meters.start();
                self.queue_audio(audio, started);
                return None;
            }
            WsFrame::Close => return Some(Ending::AssistantEnded { reason: None }),
            WsFrame::Text(text) => text,
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default();
        let (kind, role, status) = (field("type"), field("role"), field("status"));
        let barge_in = kind == "user-interrupted"
            || (kind == "speech-update" && role == "user" && status == "started");
        let turn_over = kind == "speech-update" && role == "assistant" && status == "stopped";
        let ended = kind == "status-update" && status == "ended";
        if barge_in {
            // Whatever the caller has not heard yet is dropped; Twilio drops what it buffered.
            self.carry.clear();
            self.down.retain(|item| !matches!(item, Down::Audio { .. }));
            self.down.push_back(Down::Clear);
        } else if turn_over || ended {
            if !self.carry.is_empty() {
                self.down.push_back(Down::Audio {
                    chunk: Bytes::copy_from_slice(&self.carry),
                    started: None,
                });
                self.carry.clear();
            }
            self.turn += 1;
            self.down.push_back(Down::Mark(self.turn));
            if ended {
                return Some(Ending::AssistantEnded {
                    reason: v
                        .get("endedReason")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
        }
        None
    }

    /// Relays until one side ends. Each round writes what the sockets take, then reads one frame
    /// from each side whose outgoing queue has room. A side that answered `Pending` has registered
    /// the task's waker and is not polled again in this call (each poll of a WebSocket registers
    /// wakers and checks readiness again); the call returns once no side has anything to read.
    fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        let (mut twilio_idle, mut vapi_idle) = (false, false);
        loop {
            if self.drive_up(cx).is_err() {
                return Poll::Ready(Ending::VapiLost);
            }
            if self.drive_down(cx).is_err() {
                return Poll::Ready(Ending::CallerHungUp);
            }
            let mut read = false;
            let room = self.up.len() < UP_QUEUE;
            match next_frame(&mut self.twilio, &mut twilio_idle, room, cx) {
                Err(Ended) => return Poll::Ready(Ending::CallerHungUp),
                Ok(Some(frame)) => {
                    if let Some(ending) = self.on_twilio(frame) {
                        return Poll::Ready(ending);
                    }
                    read = true;
                }
                Ok(None) => {}
            }
            let room = self.down.len() < DOWN_QUEUE;
            match next_frame(&mut self.vapi, &mut vapi_idle, room, cx) {
                Err(Ended) => return Poll::Ready(Ending::VapiLost),
                Ok(Some(frame)) => {
                    if let Some(ending) = self.on_vapi(frame) {
                        return Poll::Ready(ending);
                    }
                    read = true;
                }
                Ok(None) => {}
            }
            if !read {
                // Everything read so far was handed to the writers at the top of this round.
                return Poll::Pending;
            }
        }
    }

    /// Queues the last frames each side gets for `ending`.
    fn queue_goodbyes(&mut self, ending: &Ending) {
        match ending {
            Ending::CallerHungUp | Ending::Cancelled => {
                // Tell Vapi the call is over, then close its socket; the caller is gone or going,
                // so the assistant's queued audio is dropped.
                if *ending == Ending::Cancelled {
                    self.up.clear();
                }
                self.up
                    .push_back(Up::control(WsFrame::Text(END_CALL.to_owned())));
                self.up.push_back(Up::control(WsFrame::Close));
                self.down.clear();
                self.down.push_back(Down::Close);
            }
            Ending::AssistantEnded { .. } => {
                // The turn's tail and mark go out before the close; closing the stream makes
                // Twilio request the <Connect action> (hang up or IVR).
                self.down.push_back(Down::Close);
                self.up.clear();
                self.up.push_back(Up::control(WsFrame::Close));
            }
            Ending::VapiLost => {
                self.down.clear();
                self.down.push_back(Down::Close);
                self.up.clear();
                self.up.push_back(Up::control(WsFrame::Close));
            }
        }
    }

    /// Writes both queues out; a side whose socket fails is given up.
    fn poll_goodbyes(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut progress = false;
            if let Ok(wrote) = self.drive_up(cx) {
                progress |= wrote;
            } else {
                self.up.clear();
                self.up_unflushed = false;
            }
            if let Ok(wrote) = self.drive_down(cx) {
                progress |= wrote;
            } else {
                self.down.clear();
                self.down_unflushed = false;
            }
            let done = self.up.is_empty()
                && self.down.is_empty()
                && !self.up_unflushed
                && !self.down_unflushed;
            if done {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// Relays one call until either side ends or `token` is cancelled, then sends each side its last
/// frames (within [`CLOSE_TIMEOUT`]).
pub async fn relay<T, V>(
    twilio: T,
    vapi: V,
    stream_sid: &str,
    token: &CancellationToken,
) -> (Ending, RelayStats)
where
    T: Stream<Item = WsFrame> + Sink<WsFrame> + Unpin,
    V: Stream<Item = WsFrame> + Sink<WsFrame> + Unpin,
{
    let mut relay = Relay::new(twilio, vapi, stream_sid);
    let mut cancelled = pin!(token.cancelled());
    let ending = poll_fn(|cx| {
        if cancelled.poll_unpin(cx).is_ready() {
            return Poll::Ready(Ending::Cancelled);
        }
        relay.poll_relay(cx)
    })
    .await;
    relay.queue_goodbyes(&ending);
    let goodbyes = poll_fn(|cx| relay.poll_goodbyes(cx));
    if tokio::time::timeout(CLOSE_TIMEOUT, goodbyes).await.is_err() {
        tracing::debug!("a bridge leg did not take its last frames in time");
    }
    (ending, relay.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use futures_channel::mpsc;
    use futures_util::SinkExt as _;

    fn media(bytes: &[u8]) -> WsFrame {
        WsFrame::Text(format!(
            r#"{{"event":"media","streamSid":"MZ1","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    fn decode_media(frame: &WsFrame) -> Option<Vec<u8>> {
        let WsFrame::Text(t) = frame else { return None };
        let v: Value = serde_json::from_str(t).ok()?;
        (v["event"] == "media").then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(v["media"]["payload"].as_str().unwrap())
                .unwrap()
        })
    }

    struct Harness {
        twilio_send: mpsc::Sender<WsFrame>,
        twilio_recv: mpsc::Receiver<WsFrame>,
        vapi_send: mpsc::Sender<WsFrame>,
        vapi_recv: mpsc::Receiver<WsFrame>,
        token: CancellationToken,
        task: tokio::task::JoinHandle<(Ending, RelayStats)>,
    }

    /// One leg over channels: what the relay reads comes from `rx`, what it writes goes to `tx`.
    struct Duplex {
        rx: mpsc::Receiver<WsFrame>,
        tx: mpsc::Sender<WsFrame>,
    }

    impl Stream for Duplex {
        type Item = WsFrame;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsFrame>> {
            self.rx.poll_next_unpin(cx)
        }
    }

    impl Sink<WsFrame> for Duplex {
        type Error = mpsc::SendError;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            self.tx.poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, frame: WsFrame) -> Result<(), Self::Error> {
            self.tx.start_send(frame)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.tx).poll_flush(cx)
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.tx).poll_close(cx)
        }
    }

    /// A relay over channels whose outgoing sides hold `capacity` frames (a slow peer has a small one).
    fn start_with(twilio_capacity: usize, vapi_capacity: usize) -> Harness {
        let (twilio_send, twilio_in) = mpsc::channel(64);
        let (twilio_out, twilio_recv) = mpsc::channel(twilio_capacity);
        let (vapi_send, vapi_in) = mpsc::channel(64);
        let (vapi_out, vapi_recv) = mpsc::channel(vapi_capacity);
        let token = CancellationToken::new();
        let t = token.clone();
        let task = tokio::spawn(async move {
            let twilio = Duplex {
                rx: twilio_in,
                tx: twilio_out,
            };
            let vapi = Duplex {
                rx: vapi_in,
                tx: vapi_out,
            };
            relay(twilio, vapi, "MZ1", &t).await
        });
        Harness {
            twilio_send,
            twilio_recv,
            vapi_send,
            vapi_recv,
            token,
            task,
        }
    }

    fn start() -> Harness {
        start_with(64, 64)
    }

    #[tokio::test]
    async fn audio_passes_both_ways_identical_and_in_order() {
        let mut h = start();
        let caller: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 160]).collect();
        for frame in &caller {
            h.twilio_send.send(media(frame)).await.unwrap();
        }
        for expected in &caller {
            assert_eq!(
                h.vapi_recv.next().await.unwrap(),
                WsFrame::Binary(expected.clone().into())
            );
        }
        // Bursty assistant audio: 400 bytes then 250 bytes → 4 chunks of 160 and a tail of 10.
        let assistant: Vec<u8> = (0..650u32).map(|i| (i % 251) as u8).collect();
        h.vapi_send
            .send(WsFrame::Binary(assistant[..400].to_vec().into()))
            .await
            .unwrap();
        h.vapi_send
            .send(WsFrame::Binary(assistant[400..].to_vec().into()))
            .await
            .unwrap();
        h.vapi_send
            .send(WsFrame::Text(
                r#"{"type":"speech-update","role":"assistant","status":"stopped","turn":0}"#.into(),
            ))
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let frame = h.twilio_recv.next().await.unwrap();
            if let Some(bytes) = decode_media(&frame) {
                sizes.push(bytes.len());
                received.extend(bytes);
            } else {
                assert_eq!(
                    frame,
                    WsFrame::Text(
                        r#"{"event":"mark","mark":{"name":"turn-1"},"streamSid":"MZ1"}"#.into()
                    )
                );
                break;
            }
        }
        assert_eq!(received, assistant);
        assert_eq!(sizes, [160, 160, 160, 160, 10]);
        h.twilio_send
            .send(WsFrame::Text(
                r#"{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#.into(),
            ))
            .await
            .unwrap();
        let (ending, stats) = h.task.await.unwrap();
        assert_eq!(ending, Ending::CallerHungUp);
        assert_eq!(
            h.vapi_recv.next().await.unwrap(),
            WsFrame::Text(END_CALL.into()),
            "stop → end-call"
        );
        assert_eq!(h.vapi_recv.next().await.unwrap(), WsFrame::Close);
        assert_eq!((stats.frames_up, stats.bytes_up), (10, 1600));
        assert_eq!(
            (stats.frames_down, stats.bytes_down, stats.marks),
            (5, 650, 1)
        );
    }

    #[tokio::test]
    async fn barge_in_clears_and_drops_buffered_audio() {
        let mut h = start();
        h.vapi_send
            .send(WsFrame::Binary(vec![7; 100].into()))
            .await
            .unwrap();
        h.vapi_send
            .send(WsFrame::Text(
                r#"{"type":"speech-update","role":"user","status":"started"}"#.into(),
            ))
            .await
            .unwrap();
        assert_eq!(
            h.twilio_recv.next().await.unwrap(),
            WsFrame::Text(r#"{"event":"clear","streamSid":"MZ1"}"#.into())
        );
        h.vapi_send
            .send(WsFrame::Text(r#"{"type":"user-interrupted"}"#.into()))
            .await
            .unwrap();
        assert_eq!(
            h.twilio_recv.next().await.unwrap(),
            WsFrame::Text(r#"{"event":"clear","streamSid":"MZ1"}"#.into())
        );
        // The 100 dropped bytes never reach the caller.
        h.vapi_send
            .send(WsFrame::Binary(vec![9; 160].into()))
            .await
            .unwrap();
        assert_eq!(
            decode_media(&h.twilio_recv.next().await.unwrap()).unwrap(),
            vec![9; 160]
        );
        h.token.cancel();
        let (ending, stats) = h.task.await.unwrap();
        assert_eq!(ending, Ending::Cancelled);
        assert_eq!(stats.clears, 2);
    }

    #[tokio::test]
    async fn dtmf_becomes_an_add_message() {
        let mut h = start();
        h.twilio_send
            .send(WsFrame::Text(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"5"}}"#.into()))
            .await
            .unwrap();
        let WsFrame::Text(t) = h.vapi_recv.next().await.unwrap() else {
            panic!("text")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["type"], "add-message");
        assert_eq!(v["message"]["role"], "user");
        assert!(
            v["message"]["content"]
                .as_str()
                .unwrap()
                .contains("touche 5")
        );
        h.token.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test]
    async fn vapi_ending_closes_the_twilio_stream() {
        let mut h = start();
        h.vapi_send
            .send(WsFrame::Text(
                r#"{"type":"status-update","status":"ended","endedReason":"assistant-ended-call"}"#
                    .into(),
            ))
            .await
            .unwrap();
        let (ending, _) = h.task.await.unwrap();
        assert_eq!(
            ending,
            Ending::AssistantEnded {
                reason: Some("assistant-ended-call".into())
            }
        );
        assert!(
            matches!(h.twilio_recv.next().await.unwrap(), WsFrame::Text(t) if t.contains("\"mark\""))
        );
        assert_eq!(h.twilio_recv.next().await.unwrap(), WsFrame::Close);
    }

    #[tokio::test]
    async fn a_lost_vapi_socket_hands_the_caller_back_to_the_ivr() {
        let mut h = start();
        drop(h.vapi_send);
        let (ending, _) = h.task.await.unwrap();
        assert_eq!(ending, Ending::VapiLost);
        assert_eq!(h.twilio_recv.next().await.unwrap(), WsFrame::Close);
    }

    #[tokio::test]
    async fn malformed_and_unknown_frames_are_ignored() {
        let mut h = start();
        for junk in [
            "not json",
            r#"{"event":"future-thing"}"#,
            r#"{"event":"media","media":{"payload":"***"},"streamSid":"MZ1"}"#,
        ] {
            h.twilio_send
                .send(WsFrame::Text(junk.into()))
                .await
                .unwrap();
        }
        h.twilio_send
            .send(WsFrame::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
        h.twilio_send.send(media(&[5; 160])).await.unwrap();
        assert_eq!(
            h.vapi_recv.next().await.unwrap(),
            WsFrame::Binary(vec![5; 160].into())
        );
        h.token.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_stalled_twilio_leg_does_not_stop_the_caller_audio_and_memory_stays_bounded() {
        // Twilio's outgoing side holds one frame and nobody reads it: the assistant's audio backs up.
        let mut h = start_with(0, 64);
        let mut vapi_sent = 0usize;
        // Far more assistant audio than the down queue holds: the relay must stop reading it
        // (the channel towards the relay fills and `try_send` refuses) instead of buffering it all.
        loop {
            match h.vapi_send.try_send(WsFrame::Binary(vec![3; 160].into())) {
                Ok(()) => vapi_sent += 1,
                Err(e) if e.is_full() => break,
                Err(e) => panic!("{e}"),
            }
            tokio::task::yield_now().await;
            assert!(
                vapi_sent < 10_000,
                "the relay kept reading a stalled direction"
            );
        }
        assert!(
            vapi_sent <= DOWN_QUEUE + 64 + 2 + 1,
            "read {vapi_sent} frames towards a stalled leg"
        );
        // The caller's audio still reaches Vapi, in order.
        for i in 0u8..20 {
            h.twilio_send.send(media(&[i; 160])).await.unwrap();
            assert_eq!(
                h.vapi_recv.next().await.unwrap(),
                WsFrame::Binary(vec![i; 160].into())
            );
        }
        // Once Twilio reads again, the assistant's audio arrives whole and in order.
        let mut chunks = 0;
        while chunks < vapi_sent {
            let frame = h.twilio_recv.next().await.unwrap();
            assert_eq!(decode_media(&frame).unwrap(), vec![3; 160]);
            chunks += 1;
        }
        // Twilio's side keeps reading until the relay closes it.
        let mut twilio_recv = h.twilio_recv;
        tokio::spawn(async move { while twilio_recv.next().await.is_some() {} });
        h.token.cancel();
        let (ending, stats) = h.task.await.unwrap();
        assert_eq!(ending, Ending::Cancelled);
        assert_eq!(stats.frames_up, 20);
        assert_eq!(usize::try_from(stats.frames_down).unwrap(), vapi_sent);
    }

    #[tokio::test]
    async fn barge_in_drops_audio_queued_for_a_slow_twilio_leg() {
        let mut h = start_with(0, 64);
        for _ in 0..10 {
            h.vapi_send
                .send(WsFrame::Binary(vec![4; 160].into()))
                .await
                .unwrap();
        }
        h.vapi_send
            .send(WsFrame::Text(r#"{"type":"user-interrupted"}"#.into()))
            .await
            .unwrap();
        h.vapi_send
            .send(WsFrame::Binary(vec![8; 160].into()))
            .await
            .unwrap();
        // Let the relay read everything while Twilio is not reading.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        // At most the one frame the channel already held was written before the clear.
        let mut frames = Vec::new();
        loop {
            let frame = h.twilio_recv.next().await.unwrap();
            let audio = decode_media(&frame);
            frames.push(frame);
            if audio == Some(vec![8; 160]) {
                break;
            }
        }
        let clear = WsFrame::Text(r#"{"event":"clear","streamSid":"MZ1"}"#.into());
        let before_clear = frames.iter().take_while(|f| **f != clear).count();
        assert!(before_clear <= 1, "{frames:?}");
        assert_eq!(frames.len(), before_clear + 2, "{frames:?}");
        let mut twilio_recv = h.twilio_recv;
        tokio::spawn(async move { while twilio_recv.next().await.is_some() {} });
        h.token.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test]
    async fn the_last_frames_are_given_up_when_a_leg_never_takes_them() {
        // Vapi's outgoing side is full and never read: end-call can never be written.
        let mut h = start_with(64, 0);
        h.twilio_send.send(media(&[1; 160])).await.unwrap();
        h.twilio_send.send(media(&[2; 160])).await.unwrap();
        h.twilio_send
            .send(WsFrame::Text(
                r#"{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#.into(),
            ))
            .await
            .unwrap();
        let (ending, _) = h.task.await.unwrap();
        assert_eq!(ending, Ending::CallerHungUp);
        // The relay returned (after CLOSE_TIMEOUT) instead of waiting forever.
        assert_eq!(
            h.vapi_recv.next().await.unwrap(),
            WsFrame::Binary(vec![1; 160].into())
        );
    }
}
