//! The audio relay between a Twilio Media Stream and a Vapi `vapi.websocket` call, generic over
//! `Sink`/`Stream` so it runs the same over real sockets and over channels in tests.
//!
//! - Twilio `media` (base64 µ-law) → one binary frame to Vapi with the same bytes.
//! - Vapi binary audio (any size, bursty) → 160-byte (20 ms) chunks → Twilio `media`, in order; the
//!   tail of a turn is flushed and followed by a `mark` when the assistant stops speaking.
//! - Barge-in (`speech-update` user started, or `user-interrupted`) → Twilio `clear`, buffered
//!   downlink audio dropped.
//! - Twilio `dtmf` → an `add-message` telling the assistant which key was pressed.
//! - Twilio `stop` or socket loss → Vapi `end-call`; Vapi ending → the Twilio stream is closed.
//!
//! Each direction runs in its own future, so a slow peer on one side never stalls the other; each
//! awaits its sink, so a slow peer slows its own direction (TCP back-pressure) instead of growing a
//! queue: memory per call is bounded by one chunk buffer.

use std::time::Instant;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::twilio::media::{MediaFrame, Outbound};

/// 20 ms of µ-law at 8 kHz.
pub const CHUNK_BYTES: usize = 160;

/// Metric names.
pub mod metric {
    pub const FRAMES: &str = "myriam_bridge_frames_total";
    pub const BYTES: &str = "myriam_bridge_bytes_total";
    pub const RELAY_SECONDS: &str = "myriam_bridge_relay_seconds";
    pub const CLEARS: &str = "myriam_bridge_clears_total";
}

/// A WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    Text(String),
    /// Shared bytes: audio moves between the sockets without a copy.
    Binary(bytes::Bytes),
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
            frames: metrics::counter!(metric::FRAMES, "direction" => direction),
            bytes: metrics::counter!(metric::BYTES, "direction" => direction),
            relay: metrics::histogram!(metric::RELAY_SECONDS, "direction" => direction),
            seen: 0,
        }
    }

    /// The time a frame arrived, when this frame is one the histogram samples.
    fn start(&mut self) -> Option<Instant> {
        self.seen = self.seen.wrapping_add(1);
        (self.seen % LATENCY_SAMPLE_EVERY == 1).then(Instant::now)
    }

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

/// Twilio → Vapi. Returns when the caller side ends.
async fn uplink<TI, VO>(twilio_in: &mut TI, vapi_out: &mut VO, stats: &mut RelayStats) -> Ending
where
    TI: Stream<Item = WsFrame> + Unpin,
    VO: Sink<WsFrame> + Unpin,
{
    let mut meters = Meters::new("up");
    while let Some(frame) = twilio_in.next().await {
        let started = meters.start();
        let WsFrame::Text(text) = frame else {
            if frame == WsFrame::Close {
                break;
            }
            continue; // Twilio sends text only.
        };
        match MediaFrame::parse(&text) {
            Ok(MediaFrame::Media { payload, .. }) => {
                let len = payload.len();
                if vapi_out
                    .send(WsFrame::Binary(payload.into()))
                    .await
                    .is_err()
                {
                    return Ending::VapiLost;
                }
                stats.frames_up += 1;
                stats.bytes_up += len as u64;
                meters.observe(started, len);
            }
            Ok(MediaFrame::Dtmf { digit, .. }) => {
                if vapi_out
                    .send(WsFrame::Text(dtmf_message(&digit)))
                    .await
                    .is_err()
                {
                    return Ending::VapiLost;
                }
            }
            Ok(MediaFrame::Stop { .. }) => break,
            Ok(MediaFrame::Mark { .. } | MediaFrame::Connected | MediaFrame::Start(_)) => {}
            Ok(MediaFrame::Unknown { event }) => {
                tracing::debug!(%event, "unknown Media Stream event ignored");
            }
            Err(error) => tracing::warn!(%error, "malformed Media Stream frame ignored"),
        }
    }
    Ending::CallerHungUp
}

/// Sends `audio` to the caller as one `media` frame and counts it; `false` when Twilio is gone.
async fn send_media<TO>(
    twilio_out: &mut TO,
    stream_sid: &str,
    audio: &[u8],
    stats: &mut RelayStats,
) -> bool
where
    TO: Sink<WsFrame> + Unpin,
{
    let text = Outbound::Media { stream_sid, audio }.to_json();
    if twilio_out.send(WsFrame::Text(text)).await.is_err() {
        return false;
    }
    stats.frames_down += 1;
    stats.bytes_down += audio.len() as u64;
    true
}

/// Vapi → Twilio. Returns when the assistant side ends.
async fn downlink<VI, TO>(
    vapi_in: &mut VI,
    twilio_out: &mut TO,
    stream_sid: &str,
    stats: &mut RelayStats,
) -> Ending
where
    VI: Stream<Item = WsFrame> + Unpin,
    TO: Sink<WsFrame> + Unpin,
{
    let mut meters = Meters::new("down");
    let clears = metrics::counter!(metric::CLEARS);
    let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 8);
    let mut turn = 0u64;
    loop {
        let Some(frame) = vapi_in.next().await else {
            return Ending::VapiLost;
        };
        let started = meters.start();
        match frame {
            WsFrame::Binary(audio) => {
                buffer.extend_from_slice(&audio);
                let whole = buffer.len() - buffer.len() % CHUNK_BYTES;
                for chunk in buffer[..whole].chunks(CHUNK_BYTES) {
                    if !send_media(twilio_out, stream_sid, chunk, stats).await {
                        return Ending::CallerHungUp;
                    }
                    meters.observe(started, chunk.len());
                }
                buffer.drain(..whole);
            }
            WsFrame::Text(text) => {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
                let role = v.get("role").and_then(Value::as_str).unwrap_or_default();
                let call_status = v.get("status").and_then(Value::as_str).unwrap_or_default();
                let barge_in = kind == "user-interrupted"
                    || (kind == "speech-update" && role == "user" && call_status == "started");
                let turn_over =
                    kind == "speech-update" && role == "assistant" && call_status == "stopped";
                let ended = kind == "status-update" && call_status == "ended";
                if barge_in {
                    buffer.clear();
                    let text = Outbound::Clear { stream_sid }.to_json();
                    if twilio_out.send(WsFrame::Text(text)).await.is_err() {
                        return Ending::CallerHungUp;
                    }
                    stats.clears += 1;
                    clears.increment(1);
                } else if turn_over || ended {
                    if !buffer.is_empty() {
                        if !send_media(twilio_out, stream_sid, &buffer, stats).await {
                            return Ending::CallerHungUp;
                        }
                        buffer.clear();
                    }
                    turn += 1;
                    let name = format!("turn-{turn}");
                    let mark = Outbound::Mark {
                        stream_sid,
                        name: &name,
                    }
                    .to_json();
                    if twilio_out.send(WsFrame::Text(mark)).await.is_err() {
                        return Ending::CallerHungUp;
                    }
                    stats.marks += 1;
                    if ended {
                        return Ending::AssistantEnded {
                            reason: v
                                .get("endedReason")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        };
                    }
                }
            }
            WsFrame::Close => return Ending::AssistantEnded { reason: None },
        }
    }
}

/// Relays one call until either side ends or `token` is cancelled, then closes the other side.
pub async fn relay<TI, TO, VI, VO>(
    mut twilio_in: TI,
    mut twilio_out: TO,
    mut vapi_in: VI,
    mut vapi_out: VO,
    stream_sid: &str,
    token: &CancellationToken,
) -> (Ending, RelayStats)
where
    TI: Stream<Item = WsFrame> + Unpin,
    TO: Sink<WsFrame> + Unpin,
    VI: Stream<Item = WsFrame> + Unpin,
    VO: Sink<WsFrame> + Unpin,
{
    let mut up = RelayStats::default();
    let mut down = RelayStats::default();
    let ending = tokio::select! {
        ending = uplink(&mut twilio_in, &mut vapi_out, &mut up) => ending,
        ending = downlink(&mut vapi_in, &mut twilio_out, stream_sid, &mut down) => ending,
        () = token.cancelled() => Ending::Cancelled,
    };
    match &ending {
        Ending::CallerHungUp | Ending::Cancelled => {
            // Tell Vapi the call is over, then close its socket; the Twilio side is gone or going.
            let _ = vapi_out.send(WsFrame::Text(END_CALL.to_owned())).await;
            let _ = vapi_out.send(WsFrame::Close).await;
            let _ = twilio_out.send(WsFrame::Close).await;
        }
        Ending::AssistantEnded { .. } | Ending::VapiLost => {
            // Closing the stream makes Twilio request the <Connect action> (hang up or IVR).
            let _ = twilio_out.send(WsFrame::Close).await;
            let _ = vapi_out.send(WsFrame::Close).await;
        }
    }
    let stats = RelayStats {
        frames_up: up.frames_up,
        bytes_up: up.bytes_up,
        frames_down: down.frames_down,
        bytes_down: down.bytes_down,
        clears: down.clears,
        marks: down.marks,
    };
    (ending, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use futures_channel::mpsc;

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

    fn start() -> Harness {
        let (twilio_send, twilio_in) = mpsc::channel(64);
        let (twilio_out, twilio_recv) = mpsc::channel(64);
        let (vapi_send, vapi_in) = mpsc::channel(64);
        let (vapi_out, vapi_recv) = mpsc::channel(64);
        let token = CancellationToken::new();
        let t = token.clone();
        let task = tokio::spawn(async move {
            relay(twilio_in, twilio_out, vapi_in, vapi_out, "MZ1", &t).await
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
}
