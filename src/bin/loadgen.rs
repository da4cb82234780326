//! `loadgen`: load for the media bridge, on loopback only.
//!
//! - `loadgen peer --listen 127.0.0.1:7000` plays Vapi: `POST /call` answers a `vapi.websocket`
//!   call whose socket echoes every audio frame back; `/echo` plays a Twilio stream echo for the
//!   direct-echo control (no gateway in the path).
//! - `loadgen run --gateway http://127.0.0.1:8080 --calls 500 --seconds 20 [--gateway-pid PID]`
//!   places N calls through `/twilio/voice`, opens their Media Streams, sends a 160-byte frame every
//!   20 ms per call (each frame carries its number), and measures when each echoed frame comes back.
//!   With `--control ws://127.0.0.1:7000/echo` the same clients talk to the echo directly. With
//!   `--peer-listen 127.0.0.1:7000` the run serves the peer itself, on its own thread, for its
//!   duration: no second process on the load side's core, and the peer stamps when each frame
//!   reached it, so the round trip splits into its two one-way legs (same clock, same process).
//!
//! - `loadgen webhook --gateway http://127.0.0.1:8080 --rate 500 --seconds 20 [--gateway-pid PID]`
//!   loads the Twilio webhooks instead: fresh calls through the speech IVR (`/twilio/voice`, six
//!   `/twilio/gather`, the status callback), every request signed with `TWILIO_AUTH_TOKEN`, sent on
//!   an open-loop schedule; latency is measured from each request's scheduled time.
//!
//! - `loadgen console --leads 100000 --queries 300` fills a fresh SQLite store with that many leads
//!   (realistic columns and conversations, created over two years, a call each) and times the console's list
//!   and search queries (`ConsoleStore::search_leads`) end to end through the store's thread.
//!
//! Reports round-trip latency percentiles, frames lost, and (with `--gateway-pid`) the gateway's
//! CPU time per call-second and resident memory per live call, read from `/proc`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::routing::{get, post};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load for the Twilio ⇄ Vapi bridge and the Twilio webhooks (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A Vapi-like peer that echoes audio, and a direct Twilio-echo for the control run.
    Peer {
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: SocketAddr,
    },
    /// Concurrent simulated calls.
    Run {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Talk to this echo WebSocket directly instead of through the gateway.
        #[arg(long)]
        control: Option<String>,
        #[arg(long, default_value_t = 100)]
        calls: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// The gateway's process id, for CPU and memory.
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// Serve the Vapi-like peer from this process, on this address, for the run.
        #[arg(long)]
        peer_listen: Option<SocketAddr>,
    },
    /// Open-loop webhook load: fresh calls through the speech IVR, every request signed.
    ///
    /// Each call is `/twilio/voice`, six `/twilio/gather` answers (the built-in French caller of
    /// `myriam simulate`) and a `completed` status callback: 8 requests. Requests are sent at fixed
    /// times (`--rate` per second over `--seconds`) whatever the answers; latency is measured from
    /// each request's scheduled time, so a slow gateway cannot slow the load down and hide its own
    /// delay. The signing key is read from `TWILIO_AUTH_TOKEN` and never printed.
    /// The console's list and search queries against a SQLite store of N leads.
    Console {
        #[arg(long, default_value_t = 100_000)]
        leads: usize,
        /// Timed queries per kind (after 10 warm-up ones).
        #[arg(long, default_value_t = 300)]
        queries: usize,
        /// The SQLite file (default: a temporary one, deleted afterwards).
        #[arg(long)]
        database: Option<std::path::PathBuf>,
    },
    Webhook {
        /// The gateway's base URL; several, comma-separated, are used in turn, request by request
        /// (a round-robin load balancer in front of several instances).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// The URL the gateway checks signatures against (its `PUBLIC_BASE_URL`); default --gateway.
        #[arg(long)]
        public_url: Option<String>,
        /// Requests per second (calls per second = rate / 8).
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Time between one call's consecutive requests, in milliseconds (the caller's think time).
        #[arg(long, default_value_t = 200)]
        gap_ms: u64,
        /// `AccountSid` sent with every request (the gateway's `TWILIO_ACCOUNT_SID`).
        #[arg(long, default_value = "AC0123456789abcdef0123456789abcdef")]
        account_sid: String,
        /// The gateway's process id, for CPU per call.
        #[arg(long)]
        gateway_pid: Option<u32>,
    },
}

const FRAME: usize = 160;

fn is_loopback(url: &str) -> bool {
    ["://127.", "://localhost", "://[::1]"]
        .iter()
        .any(|h| url.contains(h))
}

async fn create_call(State(addr): State<SocketAddr>) -> (axum::http::StatusCode, Json<Value>) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (
        axum::http::StatusCode::CREATED,
        Json(json!({"id": id, "status": "queued",
            "transport": {"provider": "vapi.websocket", "websocketCallUrl": format!("ws://{addr}/vapi/{id}")}})),
    )
}

/// Read buffer of the load side's sockets: the frames are a few hundred bytes, and tungstenite
/// zeroes its read buffer's spare room before each read (128 KiB by default).
const SOCKET_BUFFER: usize = 4 * 1024;

/// An echo socket: every frame `keep` accepts comes back unchanged, on the same task (no split).
fn echo(upgrade: WebSocketUpgrade, keep: fn(&AxMessage) -> bool) -> axum::response::Response {
    upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |mut socket| async move {
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, AxMessage::Close(_)) {
                    break;
                }
                if keep(&message) && socket.send(message).await.is_err() {
                    break;
                }
            }
        })
}

/// Whether the peer shares the load generator's process (and so its [`epoch`]): only then does it
/// stamp the frames it echoes.
static PEER_STAMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Vapi-like: binary audio comes back as binary audio. A peer in the load generator's process
/// writes when the frame reached it into bytes 12..20 of the payload (see [`media_frame`]).
async fn vapi_socket(upgrade: WebSocketUpgrade) -> axum::response::Response {
    upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(|mut socket| async move {
            let stamps = PEER_STAMPS.load(std::sync::atomic::Ordering::Relaxed);
            while let Some(Ok(message)) = socket.next().await {
                let AxMessage::Binary(audio) = message else {
                    if matches!(message, AxMessage::Close(_)) {
                        break;
                    }
                    continue;
                };
                let audio = if stamps && audio.len() >= 20 {
                    let mut stamped = audio.to_vec();
                    stamped[12..20].copy_from_slice(&micros_since_epoch().to_be_bytes());
                    stamped.into()
                } else {
                    audio
                };
                if socket.send(AxMessage::Binary(audio)).await.is_err() {
                    break;
                }
            }
        })
}

/// Twilio-echo for the control: media frames come back unchanged (the client reads the payload of
/// a Twilio `media` message, whichever way it came).
async fn twilio_echo(upgrade: WebSocketUpgrade) -> axum::response::Response {
    echo(
        upgrade,
        |m| matches!(m, AxMessage::Text(t) if t.contains(r#""event":"media""#)),
    )
}

async fn peer(listen: SocketAddr) -> anyhow::Result<()> {
    serve_peer(bind_peer(listen).await?).await
}

async fn bind_peer(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "the peer listens on loopback only"
    );
    Ok(tokio::net::TcpListener::bind(listen).await?)
}

async fn serve_peer(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/call", post(create_call))
        .route("/vapi/{id}", get(vapi_socket))
        .route("/echo", get(twilio_echo))
        .with_state(addr);
    println!("peer listening on {addr}");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

fn parameter(twiml: &str, name: &str) -> Option<String> {
    let needle = format!("<Parameter name=\"{name}\" value=\"");
    let start = twiml.find(&needle)? + needle.len();
    Some(twiml[start..start + twiml[start..].find('"')?].to_owned())
}

#[derive(Debug, Default)]
struct CallResult {
    sent: u64,
    received: u64,
    latencies_us: Vec<u64>,
    /// When each frame of `latencies_us` was sent (µs since [`epoch`]), for the timeline.
    sent_at_us: Vec<u64>,
    /// For each frame of `latencies_us`, how long it took to reach the peer, when the peer stamped
    /// it (an in-process peer); the rest of the round trip is the way back.
    up_us: Vec<Option<u64>>,
}

/// The instant all send times are measured from; frames carry their send time as microseconds
/// since it, so the receiving half needs no shared table.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A Twilio `media` message whose 160-byte payload starts with the frame number and its send time.
fn media_frame(i: u32, b64: &mut String) -> String {
    let mut payload = [0xffu8; FRAME];
    payload[..4].copy_from_slice(&i.to_be_bytes());
    payload[4..12].copy_from_slice(&micros_since_epoch().to_be_bytes());
    b64.clear();
    base64::engine::general_purpose::STANDARD.encode_string(payload, b64);
    format!(
        r#"{{"event":"media","streamSid":"MZ","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{b64}"}}}}"#,
        i + 1,
        u64::from(i) * 20
    )
}

/// A frame that came back: its number, when it was sent and, if the peer stamped it, when it
/// reached the peer (µs since [`epoch`]).
struct Echo {
    frame: u32,
    sent: u64,
    at_peer: Option<u64>,
}

/// The frame number and times carried by a `media` message, if it is one of ours.
fn echoed_frame(text: &str, scratch: &mut [u8; 256]) -> Option<Echo> {
    const KEY: &str = r#""payload":""#;
    if !text.contains(r#""event":"media""#) {
        return None;
    }
    let start = text.find(KEY)? + KEY.len();
    let b64 = &text[start..start + text[start..].find('"')?];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, scratch)
        .ok()?;
    if n < 20 {
        return None;
    }
    let frame = u32::from_be_bytes(scratch[..4].try_into().ok()?);
    let sent = u64::from_be_bytes(scratch[4..12].try_into().ok()?);
    // Unstamped, these bytes are still the payload's 0xff filler.
    let at_peer =
        Some(u64::from_be_bytes(scratch[12..20].try_into().ok()?)).filter(|&t| t != u64::MAX);
    Some(Echo {
        frame,
        sent,
        at_peer,
    })
}

/// Client sockets: small read buffers, every frame written at once, no Nagle.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
}

/// One call: stream frames every 20 ms for `seconds`, record each echo's round trip.
async fn one_call(
    http: reqwest::Client,
    gateway: String,
    control: Option<String>,
    n: usize,
    seconds: u64,
) -> anyhow::Result<CallResult> {
    let sid = format!(
        "CA{:032x}",
        n as u128 + u128::from(std::process::id()) * 1_000_000
    );
    let (url, lead_id, token) = if let Some(control) = &control {
        (control.clone(), String::new(), String::new())
    } else {
        let twiml = http
            .post(format!("{gateway}/twilio/voice"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "CallSid={sid}&AccountSid=AC0&From=%2B15145550199&CallStatus=ringing"
            ))
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(
            twiml.contains("<Connect"),
            "the gateway did not bridge: {twiml}"
        );
        let ws = gateway.replacen("http://", "ws://", 1);
        (
            format!("{ws}/twilio/media"),
            parameter(&twiml, "lead_id").unwrap_or_default(),
            parameter(&twiml, "token").unwrap_or_default(),
        )
    };
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(client_config()), true)
            .await?;
    let (mut out, mut inbound) = socket.split();
    out.send(Message::Text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
    ))
    .await?;
    let start = json!({"event": "start", "streamSid": "MZ", "start": {"streamSid": "MZ", "callSid": sid,
        "customParameters": {"lead_id": lead_id, "call_sid": sid, "token": token},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    out.send(Message::Text(start.to_string().into())).await?;

    let frames = u32::try_from(seconds * 50).unwrap_or(u32::MAX);
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut b64 = String::with_capacity(FRAME * 2);
        for i in 0..frames {
            tick.tick().await;
            if out
                .send(Message::Text(media_frame(i, &mut b64).into()))
                .await
                .is_err()
            {
                break;
            }
        }
        // Let the last echoes come back, then hang up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = out
            .send(Message::Text(
                r#"{"event":"stop","streamSid":"MZ","stop":{"callSid":"CA"}}"#.into(),
            ))
            .await;
        let _ = out.close().await;
    });
    let mut result = CallResult {
        sent: u64::from(frames),
        latencies_us: Vec::with_capacity(frames as usize),
        sent_at_us: Vec::with_capacity(frames as usize),
        up_us: Vec::with_capacity(frames as usize),
        ..CallResult::default()
    };
    let mut seen = vec![false; frames as usize];
    let mut scratch = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(seconds + 3);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline.into(), inbound.next()).await
    {
        let Message::Text(t) = message else { continue };
        let Some(echo) = echoed_frame(&t, &mut scratch) else {
            continue;
        };
        // A frame counts once, and only if it is one this call sent.
        let Some(first) = seen.get_mut(echo.frame as usize).filter(|s| !**s) else {
            continue;
        };
        *first = true;
        result.received += 1;
        result
            .latencies_us
            .push(micros_since_epoch().saturating_sub(echo.sent));
        result.sent_at_us.push(echo.sent);
        result
            .up_us
            .push(echo.at_peer.map(|at| at.saturating_sub(echo.sent)));
        if result.received == result.sent {
            break;
        }
    }
    let _ = sender.await;
    Ok(result)
}

/// CPU time and memory of a process, read from `/proc`.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// User and system time, in clock ticks.
    user: u64,
    system: u64,
    /// Resident set, KiB.
    rss: u64,
}

impl Usage {
    fn ticks(&self) -> u64 {
        self.user + self.system
    }
}

fn proc_usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let user = fields.get(11)?.parse::<u64>().ok()?;
    let system = fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Usage { user, system, rss })
}

/// Ticks the hypervisor gave to other guests (the `steal` column of `/proc/stat`): CPU figures
/// taken while it grows are less trustworthy.
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

/// Steal ticks of each core (`cpu0`, `cpu1`, … lines of `/proc/stat`).
fn steal_ticks_per_core() -> Vec<u64> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .filter_map(|l| l.split_whitespace().nth(8)?.parse().ok())
        .collect()
}

/// Samples each core's steal once a second, on the seconds of [`epoch`], until aborted: entry `s`
/// holds the ticks (10 ms each) stolen from each core during second `s` of the run.
async fn sample_steal(into: std::sync::Arc<std::sync::Mutex<Vec<Vec<u64>>>>) {
    let mut before = steal_ticks_per_core();
    let mut second = 1u64;
    loop {
        tokio::time::sleep_until((epoch() + Duration::from_secs(second)).into()).await;
        let now = steal_ticks_per_core();
        let stolen = now
            .iter()
            .zip(&before)
            .map(|(n, b)| n.saturating_sub(*b))
            .collect();
        into.lock().expect("not poisoned").push(stolen);
        before = now;
        second += 1;
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[allow(clippy::cast_precision_loss)] // report arithmetic on counts far below 2^52
#[allow(clippy::too_many_lines)] // one linear script: place the calls, sample /proc, report
async fn run(
    gateway: String,
    control: Option<String>,
    calls: usize,
    seconds: u64,
    pid: Option<u32>,
    peer_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_loopback(&gateway),
        "load goes to loopback addresses only"
    );
    if let Some(c) = &control {
        anyhow::ensure!(is_loopback(c), "load goes to loopback addresses only");
    }
    let peer_task = match peer_listen {
        Some(listen) => {
            let listener = bind_peer(listen).await?;
            PEER_STAMPS.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(tokio::spawn(serve_peer(listener)))
        }
        None => None,
    };
    let http = reqwest::Client::new();
    let before = pid.and_then(proc_usage);
    let steal_before = steal_ticks();
    let started = epoch();
    let steal_by_second = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let steal_sampler = tokio::spawn(sample_steal(steal_by_second.clone()));
    let mut tasks = Vec::with_capacity(calls);
    for n in 0..calls {
        let (http, gateway, control) = (http.clone(), gateway.clone(), control.clone());
        tasks.push(tokio::spawn(one_call(http, gateway, control, n, seconds)));
        // Calls arrive over one second rather than all at once.
        tokio::time::sleep(Duration::from_micros(1_000_000 / calls.max(1) as u64)).await;
    }
    // Steady state: every call is placed and streaming. CPU over this window is the relay's cost
    // alone (no call set-up or tear-down); memory in its middle is the footprint of `calls` live calls.
    let window = Duration::from_secs(seconds.saturating_sub(4).max(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steady_from = micros_since_epoch();
    let steady_start = pid.and_then(proc_usage);
    tokio::time::sleep(window / 2).await;
    let peak = pid.and_then(proc_usage);
    tokio::time::sleep(window / 2).await;
    let steady_end = pid.and_then(proc_usage);
    let steady_to = micros_since_epoch();
    let mut latencies = Vec::new();
    // Round trips by the second of the run their frame was sent in, and over the steady window.
    let mut by_second: Vec<Vec<u64>> = Vec::new();
    let mut steady = Vec::new();
    // One-way legs of the frames the peer stamped: (way there, way back), whole run and steady.
    let (mut up, mut down, mut steady_up, mut steady_down) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut sent, mut received, mut failed) = (0u64, 0u64, 0usize);
    // Each call sends on its own 20 ms schedule, started when its stream was set up: how many
    // calls share each millisecond of the period says how bunched the frames reach the gateway.
    let mut phases = [0usize; 20];
    let mut burst: Vec<Vec<u64>> = vec![Vec::new(); 30];
    for task in tasks {
        match task.await? {
            Ok(r) => {
                if let Some(&first) = r.sent_at_us.iter().min() {
                    phases[usize::try_from(first % 20_000 / 1_000).unwrap_or(0)] += 1;
                }
                sent += r.sent;
                received += r.received;
                for ((&latency, &sent), &there) in
                    r.latencies_us.iter().zip(&r.sent_at_us).zip(&r.up_us)
                {
                    let second = usize::try_from(sent / 1_000_000).unwrap_or(usize::MAX);
                    if by_second.len() <= second {
                        by_second.resize_with(second + 1, Vec::new);
                    }
                    by_second[second].push(latency);
                    // The set-up burst in finer steps: the first 3 s by tenth of a second.
                    if let Some(tenth) = usize::try_from(sent / 100_000)
                        .ok()
                        .and_then(|t| burst.get_mut(t))
                    {
                        tenth.push(latency);
                    }
                    let in_steady = (steady_from..steady_to).contains(&sent);
                    if in_steady {
                        steady.push(latency);
                    }
                    if let Some(there) = there {
                        let back = latency.saturating_sub(there);
                        up.push(there);
                        down.push(back);
                        if in_steady {
                            steady_up.push(there);
                            steady_down.push(back);
                        }
                    }
                }
                latencies.extend(r.latencies_us);
            }
            Err(error) => {
                failed += 1;
                eprintln!("call failed: {error:#}");
            }
        }
    }
    let wall = started.elapsed();
    let after = pid.and_then(proc_usage);
    let steal_after = steal_ticks();
    steal_sampler.abort();
    let steal_by_second = std::mem::take(&mut *steal_by_second.lock().expect("not poisoned"));
    latencies.sort_unstable();
    println!(
        "mode:            {}",
        if control.is_some() {
            "direct echo (control)"
        } else {
            "through the gateway"
        }
    );
    println!(
        "calls:           {calls} ({failed} failed), {seconds} s of audio each, wall {:.1} s",
        wall.as_secs_f64()
    );
    println!(
        "frames:          {sent} sent, {received} echoed, {} lost",
        sent.saturating_sub(received)
    );
    println!(
        "round trip (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&latencies, 0.50) as f64 / 1000.0,
        percentile(&latencies, 0.90) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    steady.sort_unstable();
    println!(
        "round trip, steady window only (ms): p50 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&steady, 0.50) as f64 / 1000.0,
        percentile(&steady, 0.99) as f64 / 1000.0,
        steady.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let timeline: Vec<String> = by_second
        .iter_mut()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(second, l)| {
            l.sort_unstable();
            format!("{second}s {:.1}", percentile(l, 0.99) as f64 / 1000.0)
        })
        .collect();
    println!("p99 by second sent (ms): {}", timeline.join(", "));
    let tenths: Vec<String> = burst
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            format!("{:.1}", percentile(l, 0.99) as f64 / 1000.0)
        })
        .collect();
    println!(
        "p99 by tenth of a second, first 3 s (ms): {}",
        tenths.join(" ")
    );
    let slots: Vec<String> = phases.iter().map(ToString::to_string).collect();
    println!(
        "send phase (calls in each 1 ms of the 20 ms period): {} (max {})",
        slots.join(" "),
        phases.iter().max().copied().unwrap_or(0)
    );
    let stolen: Vec<String> = steal_by_second
        .iter()
        .enumerate()
        .map(|(second, cores)| {
            let ms: Vec<String> = cores.iter().map(|t| (t * 10).to_string()).collect();
            format!("{second}s {}", ms.join("/"))
        })
        .collect();
    println!(
        "steal by second (ms per core, cpu0/cpu1/…): {}",
        stolen.join(", ")
    );
    // Frames sent in a second where, in it and the next, the hypervisor took no whole tick from
    // any core: what the path itself adds, with the host's own interruptions set apart.
    let quiet = |second: usize| {
        (second..=second + 1).all(|s| {
            steal_by_second
                .get(s)
                .is_some_and(|cores| cores.iter().all(|&t| t == 0))
        })
    };
    let mut host_quiet: Vec<u64> = by_second
        .iter()
        .enumerate()
        .filter(|&(second, _)| quiet(second))
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    host_quiet.sort_unstable();
    let quiet_seconds = (0..by_second.len()).filter(|&s| quiet(s)).count();
    println!(
        "round trip, seconds without steal ({quiet_seconds} of {}; {} frames) (ms): p50 {:.2}  p99 {:.2}  max {:.2}",
        by_second.len(),
        host_quiet.len(),
        percentile(&host_quiet, 0.50) as f64 / 1000.0,
        percentile(&host_quiet, 0.99) as f64 / 1000.0,
        host_quiet.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    if !up.is_empty() {
        let legs = |label: &str, l: &mut Vec<u64>| {
            l.sort_unstable();
            format!(
                "{label} p50 {:.2} p99 {:.2} max {:.2}",
                percentile(l, 0.50) as f64 / 1000.0,
                percentile(l, 0.99) as f64 / 1000.0,
                l.last().copied().unwrap_or(0) as f64 / 1000.0
            )
        };
        println!(
            "one way, whole run (ms):    {};  {}",
            legs("there (client → peer)", &mut up),
            legs("back (peer → client)", &mut down)
        );
        println!(
            "one way, steady window (ms): {};  {}",
            legs("there", &mut steady_up),
            legs("back", &mut steady_down)
        );
    }
    if let (Some(b), Some(p), Some(a)) = (before, peak, after) {
        // /proc reports clock ticks; Linux's USER_HZ is 100.
        let cpu_s = (a.ticks() - b.ticks()) as f64 / 100.0;
        let call_seconds = (calls as f64) * (seconds as f64);
        println!(
            "gateway CPU, whole run (set-up and tear-down included): {cpu_s:.2} s for {call_seconds:.0} call-seconds = {:.3} ms per call-second",
            cpu_s * 1000.0 / call_seconds
        );
        if let (Some(s0), Some(s1)) = (steady_start, steady_end) {
            let cpu_s = (s1.ticks() - s0.ticks()) as f64 / 100.0;
            let call_seconds = (calls as f64) * window.as_secs_f64();
            let per = |ticks: u64| ticks as f64 * 10.0 / call_seconds;
            println!(
                "gateway CPU, steady state (all calls live, {:.0} s window): {cpu_s:.2} s for {call_seconds:.0} call-seconds = {:.3} ms per call-second (user {:.3}, kernel {:.3})",
                window.as_secs_f64(),
                cpu_s * 1000.0 / call_seconds,
                per(s1.user - s0.user),
                per(s1.system - s0.system),
            );
        }
        println!(
            "gateway memory:  {} KiB idle, {} KiB with {calls} live calls = {:.1} KiB per call",
            b.rss,
            p.rss,
            (p.rss.saturating_sub(b.rss)) as f64 / calls as f64
        );
    }
    if let (Some(s0), Some(s1)) = (steal_before, steal_after) {
        println!(
            "steal time:      {:.2} s of CPU taken by the hypervisor during the run",
            (s1 - s0) as f64 / 100.0
        );
    }
    if let Some(task) = peer_task {
        task.abort();
    }
    Ok(())
}

/// One thread: the load side is pinned to one core, where a single-threaded runtime wastes no work
/// handing tasks between workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Peer { listen } => peer(listen).await,
        Command::Run {
            gateway,
            control,
            calls,
            seconds,
            gateway_pid,
            peer_listen,
        } => run(gateway, control, calls, seconds, gateway_pid, peer_listen).await,
        Command::Console {
            leads,
            queries,
            database,
        } => console::run(leads, queries, database).await,
        Command::Webhook {
            gateway,
            public_url,
            rate,
            seconds,
            gap_ms,
            account_sid,
            gateway_pid,
        } => {
            let token = std::env::var("TWILIO_AUTH_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("TWILIO_AUTH_TOKEN is not set"))?;
            let load = webhook::Load {
                public: public_url
                    .unwrap_or_else(|| gateway.clone())
                    .trim_end_matches('/')
                    .to_owned(),
                gateways: gateway
                    .split(',')
                    .map(|g| g.trim().trim_end_matches('/').to_owned())
                    .filter(|g| !g.is_empty())
                    .collect(),
                next: std::sync::atomic::AtomicUsize::new(0),
                token,
                account_sid,
                rate,
                seconds,
                gap: Duration::from_millis(gap_ms),
            };
            webhook::run(load, gateway_pid).await
        }
    }
}

/// The webhook benchmark: open-loop, signed, fresh calls through the speech IVR.
mod webhook {
    use std::fmt::Write as _;
    use std::time::Duration;

    use myriam::twilio::{signature, twiml};
    use tokio::time::Instant;

    use super::{is_loopback, percentile, proc_usage, steal_ticks};

    /// Requests per call: `/twilio/voice`, six gathers, the status callback.
    pub const PER_CALL: u32 = 8;

    #[derive(Debug)]
    pub struct Load {
        /// The instances, used in turn (round robin, request by request).
        pub gateways: Vec<String>,
        pub next: std::sync::atomic::AtomicUsize,
        pub public: String,
        pub token: String,
        pub account_sid: String,
        pub rate: u32,
        pub seconds: u64,
        pub gap: Duration,
    }

    /// One request's outcome: latency from its scheduled time, or why it failed.
    #[derive(Debug, Default)]
    struct CallOutcome {
        latencies_us: Vec<u64>,
        /// Latency per step (0 = voice, 1..=6 gathers, 7 status).
        by_step_us: Vec<(usize, u64)>,
        errors: Vec<String>,
        /// Requests never sent because an earlier one of the call failed.
        not_sent: u32,
        completed: bool,
    }

    /// What Twilio sends with every webhook of a call (a realistic body size and signature cost).
    fn base_params(sid: &str, account: &str, status: &str) -> Vec<(String, String)> {
        [
            ("AccountSid", account),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", sid),
            ("CallStatus", status),
            ("Called", "+14505550100"),
            ("CalledCountry", "CA"),
            ("CalledState", "QC"),
            ("Caller", "+15145550199"),
            ("CallerCountry", "CA"),
            ("CallerState", "QC"),
            ("Direction", "inbound"),
            ("From", "+15145550199"),
            ("FromCity", "MONTREAL"),
            ("FromCountry", "CA"),
            ("FromState", "QC"),
            ("To", "+14505550100"),
            ("ToCountry", "CA"),
            ("ToState", "QC"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    async fn post(
        http: &reqwest::Client,
        load: &Load,
        target: &str,
        params: &[(String, String)],
    ) -> Result<(u16, String), String> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let sig = signature::sign(
            &load.token,
            &signature::signed_data(&format!("{}{target}", load.public), params),
        );
        let n = load.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gateway = &load.gateways[n % load.gateways.len()];
        let response = http
            .post(format!("{gateway}{target}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| transport_error(&e))?;
        Ok((status, text))
    }

    /// A client-side failure with its causes (reqwest's own message omits them: timeout, reset…).
    fn transport_error(error: &reqwest::Error) -> String {
        let mut text = format!("transport: {error}");
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// One call on its fixed schedule: request k is due at `start + k × gap`.
    async fn one_call(
        http: reqwest::Client,
        load: std::sync::Arc<Load>,
        answers: std::sync::Arc<Vec<String>>,
        start: Instant,
    ) -> CallOutcome {
        let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
        let mut out = CallOutcome::default();
        let mut target = "/twilio/voice".to_owned();
        for step in 0..PER_CALL as usize {
            let due = start + load.gap * u32::try_from(step).unwrap_or(0);
            tokio::time::sleep_until(due).await;
            let last = step + 1 == PER_CALL as usize;
            let mut params = base_params(
                &sid,
                &load.account_sid,
                match step {
                    0 => "ringing",
                    _ if last => "completed",
                    _ => "in-progress",
                },
            );
            if last {
                "/twilio/status".clone_into(&mut target);
                params.push(("CallDuration".to_owned(), "95".to_owned()));
                params.push(("Duration".to_owned(), "2".to_owned()));
                params.push(("SequenceNumber".to_owned(), "3".to_owned()));
                params.push((
                    "Timestamp".to_owned(),
                    "Tue, 01 Dec 2026 12:00:00 +0000".to_owned(),
                ));
            } else if step > 0 {
                params.push(("SpeechResult".to_owned(), answers[step - 1].clone()));
                params.push(("Confidence".to_owned(), "0.91".to_owned()));
                params.push(("Language".to_owned(), "fr-CA".to_owned()));
            }
            let result = post(&http, &load, &target, &params).await;
            let latency = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
            let failure = match result {
                Err(error) => Some(error),
                Ok((status, _)) if !(200..300).contains(&status) => {
                    Some(format!("{target} answered {status}"))
                }
                Ok(_) if last => {
                    out.completed = true;
                    None
                }
                Ok((_, text)) if step == PER_CALL as usize - 2 => {
                    // The sixth answer: the lead is confirmed and the call hung up.
                    (!text.contains("<Hangup"))
                        .then(|| format!("the last gather did not hang up: {}", text.trim()))
                }
                Ok((_, text)) => match twiml::gather_action(&text) {
                    Some(action) => {
                        target = action
                            .strip_prefix(&load.public)
                            .map_or_else(|| action.clone(), str::to_owned);
                        None
                    }
                    None => Some(format!("step {step}: no <Gather>: {}", text.trim())),
                },
            };
            out.latencies_us.push(latency);
            out.by_step_us.push((step, latency));
            if let Some(error) = failure {
                out.errors.push(error);
                out.not_sent = PER_CALL - u32::try_from(step).unwrap_or(0) - 1;
                break;
            }
        }
        out
    }

    fn ms(us: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let v = us as f64 / 1000.0;
        v
    }

    #[allow(clippy::cast_precision_loss)] // report arithmetic on counts far below 2^52
    #[allow(clippy::too_many_lines)] // one linear script: schedule the calls, collect, report
    pub async fn run(load: Load, pid: Option<u32>) -> anyhow::Result<()> {
        anyhow::ensure!(
            !load.gateways.is_empty() && load.gateways.iter().all(|g| is_loopback(g)),
            "load goes to loopback addresses only"
        );
        anyhow::ensure!(load.rate > 0, "--rate must be at least 1");
        let load = std::sync::Arc::new(load);
        let answers = std::sync::Arc::new(myriam::cli::Script::french().answers);
        anyhow::ensure!(answers.len() == 6, "the French script has six answers");
        let calls = u64::from(load.rate) * load.seconds / u64::from(PER_CALL);
        // A new call every PER_CALL / rate seconds, each sending PER_CALL requests: `rate` per second
        // once the first calls are under way.
        let interval = Duration::from_secs_f64(f64::from(PER_CALL) / f64::from(load.rate));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()?;
        // Warm the connections and the gateways (not measured).
        for gateway in &load.gateways {
            let _ = http.get(format!("{gateway}/healthz")).send().await?;
        }
        let before = pid.and_then(proc_usage);
        let steal_before = steal_ticks();
        let t0 = Instant::now() + Duration::from_millis(50);
        let mut tasks = Vec::with_capacity(usize::try_from(calls).unwrap_or(0));
        let mut late_starts = 0u64;
        for n in 0..calls {
            let start = t0 + interval.mul_f64(n as f64);
            tokio::time::sleep_until(start).await;
            if start.elapsed() > Duration::from_millis(5) {
                late_starts += 1;
            }
            tasks.push(tokio::spawn(one_call(
                http.clone(),
                load.clone(),
                answers.clone(),
                start,
            )));
        }
        let mut latencies = Vec::new();
        let mut by_step: Vec<Vec<u64>> = vec![Vec::new(); PER_CALL as usize];
        let (mut errors, mut not_sent, mut completed) = (Vec::new(), 0u64, 0u64);
        for task in tasks {
            let o = task.await?;
            latencies.extend(&o.latencies_us);
            for (step, l) in o.by_step_us {
                by_step[step].push(l);
            }
            errors.extend(o.errors);
            not_sent += u64::from(o.not_sent);
            completed += u64::from(o.completed);
        }
        let wall = t0.elapsed();
        // From the first request's scheduled time to the last one's.
        let ramp = load.gap * (PER_CALL - 1);
        let span = interval.mul_f64(calls.saturating_sub(1) as f64) + ramp;
        let after = pid.and_then(proc_usage);
        let steal_after = steal_ticks();
        latencies.sort_unstable();
        let sent = latencies.len() as u64;
        let mut report = String::new();
        let _ = writeln!(
            report,
            "webhook load:    {} req/s scheduled for {} s ({calls} calls × {PER_CALL} requests, {} ms between a call's requests), signed, open loop",
            load.rate,
            load.seconds,
            load.gap.as_millis()
        );
        let _ = writeln!(
            report,
            "requests:        {sent} sent over a {:.1} s schedule ({:.0} req/s; the first and last {:.1} s ramp up and down), all answered within {:.1} s; {} errors, {not_sent} not sent after an error; {late_starts} calls started > 5 ms late (load side behind)",
            span.as_secs_f64(),
            sent as f64 / span.as_secs_f64(),
            ramp.as_secs_f64(),
            wall.as_secs_f64(),
            errors.len()
        );
        let _ = writeln!(
            report,
            "calls:           {completed} of {calls} completed (six answers, lead confirmed, hung up, status accepted)"
        );
        let _ = writeln!(
            report,
            "latency from the scheduled time (ms): p50 {:.2}  p90 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.90)),
            ms(percentile(&latencies, 0.95)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or(0))
        );
        for (step, name) in [
            "voice", "gather 1", "gather 2", "gather 3", "gather 4", "gather 5", "gather 6",
            "status",
        ]
        .iter()
        .enumerate()
        {
            let l = &mut by_step[step];
            l.sort_unstable();
            let _ = writeln!(
                report,
                "  {name:<9} p50 {:.2}  p99 {:.2}  max {:.2}",
                ms(percentile(l, 0.50)),
                ms(percentile(l, 0.99)),
                ms(l.last().copied().unwrap_or(0))
            );
        }
        if let (Some(b), Some(a)) = (before, after) {
            // /proc reports clock ticks; Linux's USER_HZ is 100.
            let cpu_s = (a.ticks() - b.ticks()) as f64 / 100.0;
            let _ = writeln!(
                report,
                "gateway CPU:     {cpu_s:.2} s over {:.1} s ({:.0} % of one core) = {:.2} ms per call, {:.3} ms per request (user {:.2} s, kernel {:.2} s); RSS {} KiB",
                wall.as_secs_f64(),
                cpu_s * 100.0 / wall.as_secs_f64(),
                cpu_s * 1000.0 / calls.max(1) as f64,
                cpu_s * 1000.0 / sent.max(1) as f64,
                (a.user - b.user) as f64 / 100.0,
                (a.system - b.system) as f64 / 100.0,
                a.rss
            );
        }
        if let (Some(s0), Some(s1)) = (steal_before, steal_after) {
            let _ = writeln!(
                report,
                "steal time:      {:.2} s of CPU taken by the hypervisor during the run",
                (s1 - s0) as f64 / 100.0
            );
        }
        let mut kinds: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for e in &errors {
            let key: String = e.chars().take(120).collect();
            *kinds.entry(key).or_default() += 1;
        }
        for (kind, n) in kinds {
            let _ = writeln!(report, "  error × {n}: {kind}");
        }
        print!("{report}");
        Ok(())
    }
}

mod console {
    //! `loadgen console`: the console's queries against a SQLite store of N leads.

    use std::path::PathBuf;
    use std::time::Instant;

    use myriam::console::dashboard::{Period, PeriodQuery};
    use myriam::domain::{BusinessHours, DEFAULT_HOURS, DEFAULT_TIMEZONE, LeadId, LeadStatus};
    use myriam::store::console::{ConsoleStore, FollowUp, LeadFilter, SearchTerm};
    use myriam::store::sqlite::SqliteStore;
    use myriam::store::stats::StatsStore;
    use time::OffsetDateTime;

    use super::percentile;

    const FIRST: [&str; 12] = [
        "Marie", "Jean", "Sophie", "Luc", "Anne", "Pierre", "Julie", "Marc", "Isabelle", "Éric",
        "Nathalie", "Gédéon",
    ];
    const LAST: [&str; 12] = [
        "Tremblay",
        "Gagnon",
        "Roy",
        "Côté",
        "Bouchard",
        "Gauthier",
        "Morin",
        "Lavoie",
        "Fortin",
        "Gagné",
        "Ouellet",
        "Pelletier",
    ];
    const STREETS: [&str; 8] = [
        "rue Saint-Denis",
        "boulevard Saint-Laurent",
        "avenue du Parc",
        "chemin des Érables",
        "rue Sherbrooke",
        "rue King",
        "boulevard René-Lévesque",
        "rue Principale",
    ];
    const CITIES: [&str; 6] = [
        "Montréal",
        "Laval",
        "Québec",
        "Sherbrooke",
        "Longueuil",
        "Gatineau",
    ];
    const SERVICES: [&str; 8] = [
        "elagage",
        "abattage",
        "essouchement",
        "haie",
        "urgence_tempete",
        "plantation",
        "evaluation",
        "autre",
    ];
    const STATUSES: [&str; 4] = ["qualifie", "qualifie", "abandonne", "en_cours"];

    /// A deterministic pseudo-random sequence (xorshift), so runs are comparable.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        #[allow(clippy::cast_possible_truncation)] // below the slice's length
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    #[allow(clippy::too_many_lines)] // one row of each table per lead, read top to bottom
    async fn fill(store: &SqliteStore, leads: usize) -> anyhow::Result<()> {
        store
            .call(move |conn| {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare(
                        "INSERT INTO leads (id, nom_complet, telephone, telephone_raw, \
                         adresse_complete, type_service, description, urgence, status, language, \
                         offered_phone, attempts, conversation, created_at, updated_at, suivi, \
                         suivi_first_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'fr', ?3, '{}', ?10, \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?11), \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?11), ?12, \
                         CASE WHEN ?12 = 'nouveau' THEN NULL \
                              ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?11, ?13) END)",
                    )?;
                    // One inbound call per lead (the dashboard's calls), a transfer one in eight,
                    // a voicemail one in sixteen; an SMS alert per urgent lead.
                    let mut call = tx.prepare(
                        "INSERT INTO calls (id, lead_id, call_sid, direction, mode, status, \
                         dial_status, recording_sid, created_at, updated_at) \
                         VALUES (?1, ?2, ?3, 'inbound', ?4, 'completed', ?5, ?6, \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?7), \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?7))",
                    )?;
                    let mut alert = tx.prepare(
                        "INSERT INTO alerts (id, lead_id, event, recipient, status, \
                         delivery_status, created_at, updated_at) \
                         VALUES (?1, ?2, 'qualified', '+15145550100', 'sent', 'delivered', \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3), \
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3))",
                    )?;
                    let mut rng = Rng(0x5eed_1234_abcd_ef01);
                    for i in 0..leads {
                        let name = format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST));
                        let phone = format!("+1514{}{:06}", 2 + rng.next() % 8, rng.next() % 1_000_000);
                        let address = format!(
                            "{} {}, {}",
                            1 + rng.next() % 9999,
                            rng.pick(&STREETS),
                            rng.pick(&CITIES)
                        );
                        let description = "Un grand érable penche vers la maison après la tempête";
                        let conversation = serde_json::json!([
                            {"speaker": "myriam", "field": "nom_complet", "text": "Bonjour, vous êtes bien chez BP Émondage. Quel est votre nom complet?"},
                            {"speaker": "caller", "field": "nom_complet", "text": format!("je m'appelle {name}"), "accepted": true},
                            {"speaker": "myriam", "field": "telephone", "text": "Merci. Peut-on vous rappeler à ce numéro?"},
                            {"speaker": "caller", "field": "telephone", "text": "oui", "accepted": true},
                            {"speaker": "myriam", "field": "adresse_complete", "text": "Quelle est l'adresse des travaux?"},
                            {"speaker": "caller", "field": "adresse_complete", "text": address, "accepted": true},
                            {"speaker": "myriam", "field": "description", "text": "Pouvez-vous décrire la situation?"},
                            {"speaker": "caller", "field": "description", "text": description, "accepted": true},
                        ])
                        .to_string();
                        // Spread over two years, oldest first, so rowid order is time order.
                        let minutes_ago = (leads - i) * (2 * 365 * 24 * 60) / leads.max(1);
                        let urgent = rng.next() % 10 == 0;
                        let suivi = if rng.next() % 3 == 0 { "contacte" } else { "nouveau" };
                        let id = LeadId::new().to_string();
                        let ago = format!("-{minutes_ago} minutes");
                        insert.execute(rusqlite::params![
                            id,
                            name,
                            phone,
                            phone,
                            address,
                            rng.pick(&SERVICES),
                            description,
                            urgent,
                            rng.pick(&STATUSES),
                            conversation,
                            ago,
                            suivi,
                            format!("+{} minutes", 5 + rng.next() % 2000),
                        ])?;
                        let r = rng.next();
                        call.execute(rusqlite::params![
                            uuid::Uuid::new_v4().to_string(),
                            id,
                            format!("CA{i:032x}"),
                            if r % 2 == 0 { "bridge" } else { "ivr" },
                            match r % 16 {
                                0 => Some("no-answer"),
                                1 => Some("answered"),
                                _ => None,
                            },
                            (r % 16 == 0).then(|| format!("RE{i:032x}")),
                            ago,
                        ])?;
                        if urgent {
                            alert.execute(rusqlite::params![
                                uuid::Uuid::new_v4().to_string(),
                                id,
                                ago
                            ])?;
                        }
                    }
                }
                tx.commit()?;
                conn.execute_batch("ANALYZE")?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    fn search(term: &str) -> Option<SearchTerm> {
        SearchTerm::try_from(term).ok()
    }

    #[allow(clippy::too_many_lines)] // the list of timed queries
    pub async fn run(
        leads: usize,
        queries: usize,
        database: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let dir = tempfile_dir()?;
        let path = database.unwrap_or_else(|| dir.join("console-bench.db"));
        let store = SqliteStore::open(&path)?;
        let started = Instant::now();
        fill(&store, leads).await?;
        println!(
            "filled {leads} leads in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            path.display()
        );
        // A cursor 20 pages deep.
        let mut deep = LeadFilter::default();
        for _ in 0..20 {
            let page = store.search_leads(&deep).await?;
            deep.cursor = page.next;
        }
        let month_ago = OffsetDateTime::now_utc() - time::Duration::days(30);
        let kinds: Vec<(&str, LeadFilter)> = vec![
            ("first page (50, newest first)", LeadFilter::default()),
            (
                "urgent only",
                LeadFilter {
                    urgent: Some(true),
                    ..LeadFilter::default()
                },
            ),
            (
                "status qualifie + suivi nouveau",
                LeadFilter {
                    status: Some(LeadStatus::Qualifie),
                    suivi: Some(FollowUp::Nouveau),
                    ..LeadFilter::default()
                },
            ),
            (
                "created in the last 30 days",
                LeadFilter {
                    created_from: Some(month_ago),
                    ..LeadFilter::default()
                },
            ),
            ("page 21 (cursor)", deep.clone()),
            (
                "search name \"Gédéon Pelletier\"",
                LeadFilter {
                    search: search("Gédéon Pelletier"),
                    ..LeadFilter::default()
                },
            ),
            (
                "search street \"avenue du Parc\"",
                LeadFilter {
                    search: search("avenue du Parc"),
                    ..LeadFilter::default()
                },
            ),
            (
                "search phone digits \"514 512\"",
                LeadFilter {
                    search: search("514 512"),
                    ..LeadFilter::default()
                },
            ),
            (
                "search, no match",
                LeadFilter {
                    search: search("Zzyzx"),
                    ..LeadFilter::default()
                },
            ),
        ];
        println!(
            "{:<36} {:>6} {:>9} {:>9} {:>9}",
            "query", "rows", "p50 ms", "p99 ms", "max ms"
        );
        for (name, filter) in kinds {
            let mut rows = 0;
            for _ in 0..10 {
                rows = store.search_leads(&filter).await?.leads.len();
            }
            let mut micros = Vec::with_capacity(queries);
            for _ in 0..queries {
                let t = Instant::now();
                store.search_leads(&filter).await?;
                micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            micros.sort_unstable();
            #[allow(clippy::cast_precision_loss)]
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "{name:<36} {rows:>6} {:>9.2} {:>9.2} {:>9.2}",
                ms(percentile(&micros, 0.5)),
                ms(percentile(&micros, 0.99)),
                ms(*micros.last().unwrap_or(&0))
            );
        }
        dashboard(&store, queries).await?;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// The dashboard's sums (`StatsStore::stats`) for the last 30 local days, as
    /// `/console/tableau?from=…&to=…` asks them: calls, leads, funnel, transfers, follow-up, alerts.
    async fn dashboard(store: &SqliteStore, queries: usize) -> anyhow::Result<()> {
        let hours = BusinessHours::parse(DEFAULT_HOURS, DEFAULT_TIMEZONE)?;
        let now = OffsetDateTime::now_utc();
        let today = hours
            .local_date(now)
            .ok_or_else(|| anyhow::anyhow!("today is out of range"))?;
        let iso =
            |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
        let period = Period::resolve(
            &PeriodQuery {
                from: Some(iso(today - time::Duration::days(29))),
                to: Some(iso(today)),
                ..PeriodQuery::default()
            },
            today,
        )?;
        let query = period.query(&hours, now)?;
        let mut calls = 0;
        for _ in 0..10 {
            calls = store
                .stats(&query)
                .await?
                .days
                .iter()
                .map(|d| d.calls)
                .sum::<u64>();
        }
        let mut micros = Vec::with_capacity(queries);
        for _ in 0..queries {
            let t = Instant::now();
            store.stats(&query).await?;
            micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        micros.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "{:<36} {calls:>6} {:>9.2} {:>9.2} {:>9.2}",
            "dashboard, last 30 days (calls)",
            ms(percentile(&micros, 0.5)),
            ms(percentile(&micros, 0.99)),
            ms(*micros.last().unwrap_or(&0))
        );
        Ok(())
    }

    fn tempfile_dir() -> anyhow::Result<PathBuf> {
        let dir =
            std::env::temp_dir().join(format!("myriam-console-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}
