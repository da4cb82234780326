//! Every Media Stream peer is bounded, whatever it sends or refuses to read. The gateway runs as its
//! own process (so its resident memory can be read from `/proc`), attackers speak raw TCP with
//! hand-made frames (no WebSocket library on the attacking side), and a genuine bridged call runs
//! alongside each attack and must lose no frame. The Vapi leg is held to the same limits.

mod helpers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use helpers::fake_vapi::{Behaviour, FakeVapi};
use helpers::process::GatewayProcess;
use helpers::twiml_parameter;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// Most the gateway's resident memory may grow during an attack.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// The gateway as a separate process on a free loopback port.
struct Gateway {
    process: GatewayProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Gateway {
    async fn start(vapi: &FakeVapi) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("myriam.db");
        let process = GatewayProcess::start(
            dir.path(),
            &[
                ("STORE", "sqlite"),
                ("DATABASE_PATH", db.to_str().unwrap()),
                ("CALL_MODE", "bridge"),
                ("PUBLIC_BASE_URL", "https://gw.bp.test"),
                ("TWILIO_ACCOUNT_SID", ACCOUNT),
                ("TWILIO_AUTH_TOKEN", "d1e5e15ec2e7ba5eba11f00dcafe7357"),
                ("VAPI_PRIVATE_KEY", "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42"),
                ("VAPI_ASSISTANT_ID", "0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b"),
                ("VAPI_BASE_URL", &vapi.base),
                ("DRAIN_TIMEOUT_SECS", "1"),
            ],
        )
        .await;
        Self {
            addr: process.addr,
            client: process.client.clone(),
            process,
            _dir: dir,
        }
    }

    /// Resident memory of the gateway process.
    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// `/twilio/voice` for a new call; returns the `start` frame Twilio would send for it.
    async fn call(&self, n: u32) -> Message {
        let sid = format!("CA{n:032x}");
        let twiml = self
            .client
            .post(format!("http://{}/twilio/voice", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "CallSid={sid}&AccountSid={ACCOUNT}&From=%2B15145550199&CallStatus=ringing"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Message::Text(
            json!({"event": "start", "streamSid": format!("MZ{n}"),
                "start": {"streamSid": format!("MZ{n}"), "callSid": sid, "accountSid": ACCOUNT,
                    "customParameters": {"call_sid": sid, "lead_id": twiml_parameter(&twiml, "lead_id"),
                                         "token": twiml_parameter(&twiml, "token")}}})
            .to_string()
            .into(),
        )
    }
}

/// A genuine bridged call: `frames` distinct 20 ms frames paced like Twilio's; returns how many of
/// them the echoing assistant sent back intact.
async fn bridged_call(gateway: &Gateway, n: u32, frames: u32) -> u32 {
    let start = gateway.call(n).await;
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/twilio/media", gateway.addr))
            .await
            .unwrap();
    let (mut tx, mut rx) = socket.split();
    tx.send(Message::Text(r#"{"event":"connected"}"#.into()))
        .await
        .unwrap();
    tx.send(start).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut intact = 0;
        let mut expected = 0u32;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(3), rx.next()).await
        {
            let Message::Text(text) = message else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["event"] != "media" {
                continue;
            }
            let audio = base64::engine::general_purpose::STANDARD
                .decode(v["media"]["payload"].as_str().unwrap())
                .unwrap();
            if audio == frame_audio(expected) {
                intact += 1;
            }
            expected += 1;
            if expected == frames {
                break;
            }
        }
        intact
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..frames {
        tick.tick().await;
        let payload = base64::engine::general_purpose::STANDARD.encode(frame_audio(i));
        let media = json!({"event": "media", "streamSid": format!("MZ{n}"),
            "media": {"track": "inbound", "chunk": i.to_string(), "timestamp": "0", "payload": payload}});
        tx.send(Message::Text(media.to_string().into()))
            .await
            .unwrap();
    }
    let intact = reader.await.unwrap();
    let _ = tx
        .send(Message::Text(
            json!({"event": "stop", "streamSid": format!("MZ{n}")})
                .to_string()
                .into(),
        ))
        .await;
    intact
}

fn frame_audio(i: u32) -> Vec<u8> {
    let [a, b, ..] = i.to_le_bytes();
    (0..160u8).map(|k| k ^ a ^ b.rotate_left(3)).collect()
}

/// Runs `attack` while a genuine call is bridged; asserts the call lost nothing and the gateway's
/// memory stayed within bounds.
async fn under_attack<F, Fut>(name: &str, attack: F)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = ()>,
{
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let gateway = Gateway::start(&vapi).await;
    let attack = attack(gateway.addr);
    // Warm up: the first call's one-time allocations are not the attack's.
    assert_eq!(bridged_call(&gateway, 1, 25).await, 25);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = gateway.rss_kib();

    let mut peak = baseline;
    let call = bridged_call(&gateway, 2, 250);
    let mut call = std::pin::pin!(call);
    let mut attack = std::pin::pin!(attack);
    let (mut intact, mut attacked) = (None, false);
    let mut sample = tokio::time::interval(Duration::from_millis(25));
    while intact.is_none() || !attacked {
        tokio::select! {
            n = &mut call, if intact.is_none() => intact = Some(n),
            () = &mut attack, if !attacked => attacked = true,
            _ = sample.tick() => peak = peak.max(gateway.rss_kib()),
        }
    }
    let growth = peak.saturating_sub(baseline);
    eprintln!("{name}: RSS {baseline} KiB -> peak {peak} KiB (+{growth} KiB)");
    assert!(
        growth < MAX_GROWTH_KIB,
        "{name}: the gateway grew by {growth} KiB"
    );
    // Every frame came back from the echoing assistant intact: none was lost either way.
    assert_eq!(intact, Some(250), "{name}: the bridged call lost frames");
}

/// Opens `/twilio/media` by hand and returns the socket after the `101`.
async fn raw_handshake(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /twilio/media HTTP/1.1\r\nHost: gw.bp.test\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// A masked client frame (RFC 6455 §5.2), written by hand.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    header(fin, opcode, payload.len() as u64)
        .into_iter()
        .chain(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]))
        .collect()
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short < 0x7e => out.push(0x80 | short),
        (_, Ok(medium)) => {
            out.push(0x80 | 0x7e);
            out.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            out.push(0x80 | 0x7f);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out
}

/// Reads server frames until a close; its code, or `None` if the connection ended without one.
async fn server_close_code(tcp: &mut TcpStream, within: Duration) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await.ok()?;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await.ok()?;
                len = u64::from(u16::from_be_bytes(ext));
            } else if len == 127 {
                let mut ext = [0u8; 8];
                tcp.read_exact(&mut ext).await.ok()?;
                len = u64::from_be_bytes(ext);
            }
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            tcp.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the gateway ends the connection in time")
}

/// Whether the gateway closed `tcp` (EOF or reset) within `within`, reading whatever comes.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

const ATTACKERS: usize = 8;

#[tokio::test]
async fn a_ping_flood_without_reading_is_cut_off_with_1008() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let gateway = Gateway::start(&vapi).await;
    // The code: one ping over the budget, then read (nothing left unread, so the gateway's close
    // is not overtaken by a reset).
    let mut tcp = raw_handshake(gateway.addr).await;
    let ping = frame(true, 0x9, &[0x55; 125]);
    for _ in 0..=myriam::bridge::leg::PING_BUDGET {
        tcp.write_all(&ping).await.unwrap();
    }
    assert_eq!(
        server_close_code(&mut tcp, Duration::from_secs(3)).await,
        Some(1008)
    );
    drop(gateway);

    // The memory: floods that never read, for 3 s.
    under_attack("ping flood", |addr| async move {
        let floods = (0..ATTACKERS).map(|_| async {
            let mut tcp = raw_handshake(addr).await;
            let burst: Vec<u8> = frame(true, 0x9, &[0x55; 125]).repeat(64);
            let until = Instant::now() + Duration::from_secs(3);
            // Never read: pongs have nowhere to go but the gateway's buffers.
            while Instant::now() < until && tcp.write_all(&burst).await.is_ok() {}
            assert!(
                Instant::now() < until,
                "the flood was cut off before its end"
            );
        });
        futures_util::future::join_all(floods).await;
    })
    .await;
}

#[tokio::test]
async fn endless_fragments_are_cut_off_with_1009() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let gateway = Gateway::start(&vapi).await;
    let mut tcp = raw_handshake(gateway.addr).await;
    let chunk = vec![b'a'; 8 * 1024];
    tcp.write_all(&frame(false, 0x1, &chunk)).await.unwrap();
    for _ in 0..8 {
        // Continuations past the 64 KiB message limit.
        tcp.write_all(&frame(false, 0x0, &chunk)).await.unwrap();
    }
    assert_eq!(
        server_close_code(&mut tcp, Duration::from_secs(3)).await,
        Some(1009)
    );
    drop(gateway);

    under_attack("endless fragments", |addr| async move {
        let attackers = (0..ATTACKERS).map(|_| async {
            let mut tcp = raw_handshake(addr).await;
            let _ = tcp.write_all(&frame(false, 0x1, &chunk)).await;
            let continuation = frame(false, 0x0, &chunk);
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until && tcp.write_all(&continuation).await.is_ok() {}
            assert!(
                Instant::now() < until,
                "the fragments were cut off before their end"
            );
        });
        futures_util::future::join_all(attackers).await;
    })
    .await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_from_its_header_with_1009() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let gateway = Gateway::start(&vapi).await;
    let mut tcp = raw_handshake(gateway.addr).await;
    // A header announcing 1 GiB: refused before any of it arrives.
    tcp.write_all(&header(true, 0x2, 1 << 30)).await.unwrap();
    assert_eq!(
        server_close_code(&mut tcp, Duration::from_secs(3)).await,
        Some(1009)
    );
    drop(gateway);

    under_attack("oversized frames", |addr| async move {
        let attackers = (0..ATTACKERS * 4).map(|_| async {
            let mut tcp = raw_handshake(addr).await;
            let _ = tcp.write_all(&header(true, 0x2, 1 << 40)).await;
            let body = vec![0u8; 16 * 1024];
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && tcp.write_all(&body).await.is_ok() {}
        });
        futures_util::future::join_all(attackers).await;
    })
    .await;
}

#[tokio::test]
async fn a_slowloris_handshake_is_cut_off() {
    under_attack("slowloris", |addr| async move {
        let attackers = (0..50).map(|_| async {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET /twilio/media HTTP/1.1\r\nHost: gw.bp.test\r\n")
                .await
                .unwrap();
            let started = Instant::now();
            // One header byte a second: never done, always "making progress".
            loop {
                let mut probe = [0u8; 1];
                tokio::select! {
                    _ = tcp.read(&mut probe) => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if tcp.write_all(b"X").await.is_err() {
                            break;
                        }
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "still open after 15 s"
                );
            }
            assert!(closed_within(&mut tcp, Duration::from_secs(2)).await);
            // hyper's header read timeout is 10 s (startup::HEADER_READ_TIMEOUT).
            assert!(
                started.elapsed() >= Duration::from_secs(9),
                "{:?}",
                started.elapsed()
            );
        });
        futures_util::future::join_all(attackers).await;
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_never_starts_is_closed_with_1008() {
    under_attack("no start", |addr| async move {
        let attackers = (0..20).map(|i| async move {
            let mut tcp = raw_handshake(addr).await;
            if i % 2 == 0 {
                tcp.write_all(&frame(true, 0x1, br#"{"event":"connected"}"#))
                    .await
                    .unwrap();
            }
            let started = Instant::now();
            assert_eq!(
                server_close_code(&mut tcp, Duration::from_secs(8)).await,
                Some(1008)
            );
            // START_TIMEOUT is 5 s.
            assert!(
                started.elapsed() >= Duration::from_secs(4),
                "{:?}",
                started.elapsed()
            );
        });
        futures_util::future::join_all(attackers).await;
    })
    .await;
}

/// A bridged call whose Vapi leg misbehaves: the gateway closes that leg with `code`, and the
/// Twilio stream is closed (the call continues in the IVR).
async fn hostile_vapi(behaviour: Behaviour, code: u16) {
    let vapi = FakeVapi::start(behaviour).await;
    let gateway = Gateway::start(&vapi).await;
    let baseline = gateway.rss_kib();
    let start = gateway.call(7).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/twilio/media", gateway.addr))
            .await
            .unwrap();
    socket.send(start).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the Twilio stream was closed");
    for _ in 0..100 {
        if !vapi.closes().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(vapi.closes(), vec![Some(code)]);
    let growth = gateway.rss_kib().saturating_sub(baseline);
    assert!(growth < MAX_GROWTH_KIB, "the gateway grew by {growth} KiB");
}

#[tokio::test]
async fn the_vapi_leg_is_bounded_too() {
    hostile_vapi(Behaviour::Oversized(300 * 1024), 1009).await;
    hostile_vapi(Behaviour::PingFlood, 1008).await;
}

#[tokio::test]
async fn a_bridged_twilio_peer_that_never_reads_stays_bounded() {
    under_attack("slow reader", |addr| async move {
        let client = reqwest::Client::new();
        let readers = (0..4u32).map(|i| {
            let client = client.clone();
            async move {
                let sid = format!("CA{:032x}", 0x5100 + i);
                let twiml = client
                    .post(format!("http://{addr}/twilio/voice"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("CallSid={sid}&AccountSid={ACCOUNT}&CallStatus=ringing"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let start = json!({"event": "start", "streamSid": "MZS",
                    "start": {"streamSid": "MZS", "callSid": sid, "accountSid": ACCOUNT,
                        "customParameters": {"token": twiml_parameter(&twiml, "token")}}});
                let mut tcp = raw_handshake(addr).await;
                tcp.write_all(&frame(true, 0x1, start.to_string().as_bytes()))
                    .await
                    .unwrap();
                // A genuine call whose caller side sends audio as fast as it can and never reads
                // what the (echoing) assistant says back.
                let media = json!({"event": "media", "streamSid": "MZS",
                    "media": {"payload": base64::engine::general_purpose::STANDARD.encode([0x55u8; 160])}});
                let media = frame(true, 0x1, media.to_string().as_bytes()).repeat(50);
                let until = Instant::now() + Duration::from_secs(4);
                while Instant::now() < until {
                    if tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&media))
                        .await
                        .is_ok_and(|r| r.is_err())
                    {
                        break;
                    }
                }
            }
        });
        futures_util::future::join_all(readers).await;
    })
    .await;
}
