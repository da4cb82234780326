//! `loadgen`: load for the media bridge, on loopback only.
//!
//! - `loadgen peer --listen 127.0.0.1:7000` plays Vapi: `POST /call` answers a `vapi.websocket`
//!   call whose socket echoes every audio frame back; `/echo` plays a Twilio stream echo for the
//!   direct-echo control (no gateway in the path).
//! - `loadgen run --gateway http://127.0.0.1:8080 --calls 500 --seconds 20 [--gateway-pid PID]`
//!   places N calls through `/twilio/voice`, opens their Media Streams, sends a 160-byte frame every
//!   20 ms per call (each frame carries its number), and measures when each echoed frame comes back.
//!   With `--control ws://127.0.0.1:7000/echo` the same clients talk to the echo directly.
//!
//! Reports round-trip latency percentiles, frames lost, and (with `--gateway-pid`) the gateway's
//! CPU time per call-second and resident memory per live call, read from `/proc`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::routing::{get, post};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load for the Twilio ⇄ Vapi bridge (loopback only)"
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

/// Vapi-like: binary audio comes back as binary audio.
async fn vapi_socket(upgrade: WebSocketUpgrade) -> axum::response::Response {
    upgrade.on_upgrade(|socket| async move {
        let (mut out, mut inbound) = socket.split();
        while let Some(Ok(message)) = inbound.next().await {
            match message {
                AxMessage::Binary(b) if out.send(AxMessage::Binary(b.clone())).await.is_err() => {
                    break;
                }
                AxMessage::Close(_) => break,
                _ => {}
            }
        }
    })
}

/// Twilio-echo for the control: media frames come back as media frames.
async fn twilio_echo(upgrade: WebSocketUpgrade) -> axum::response::Response {
    upgrade.on_upgrade(|socket| async move {
        let (mut out, mut inbound) = socket.split();
        while let Some(Ok(message)) = inbound.next().await {
            if let AxMessage::Text(t) = message {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["event"] == "media" {
                    let echo = json!({"event": "media", "streamSid": "MZ", "media": {"payload": v["media"]["payload"]}});
                    if out.send(AxMessage::Text(echo.to_string().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

async fn peer(listen: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "the peer listens on loopback only"
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
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
}

/// One call: stream frames every 20 ms for `seconds`, record each echo's round trip.
#[allow(clippy::too_many_lines)] // one linear script of a call
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
    let (url, lead_id) = if let Some(control) = &control {
        (control.clone(), String::new())
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
        )
    };
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
    let (mut out, mut inbound) = socket.split();
    out.send(Message::Text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
    ))
    .await?;
    let start = json!({"event": "start", "streamSid": "MZ", "start": {"streamSid": "MZ", "callSid": sid,
        "customParameters": {"lead_id": lead_id, "call_sid": sid},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    out.send(Message::Text(start.to_string().into())).await?;

    let sent_at: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let frames = u32::try_from(seconds * 50).unwrap_or(u32::MAX);
    let sender_times = sent_at.clone();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..frames {
            tick.tick().await;
            let mut payload = vec![0xffu8; FRAME];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let frame = json!({"event": "media", "streamSid": "MZ", "media": {"track": "inbound",
                "payload": base64::engine::general_purpose::STANDARD.encode(&payload)}});
            sender_times.lock().await.insert(i, Instant::now());
            if out
                .send(Message::Text(frame.to_string().into()))
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
                json!({"event": "stop", "streamSid": "MZ", "stop": {"callSid": "CA"}})
                    .to_string()
                    .into(),
            ))
            .await;
        let _ = out.close().await;
    });
    let mut result = CallResult {
        sent: u64::from(frames),
        ..CallResult::default()
    };
    let deadline = Instant::now() + Duration::from_secs(seconds + 3);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline.into(), inbound.next()).await
    {
        let Message::Text(t) = message else { continue };
        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
        if v["event"] != "media" {
            continue;
        }
        let Some(payload) = v["media"]["payload"].as_str() else {
            continue;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(payload) else {
            continue;
        };
        if bytes.len() < 4 {
            continue;
        }
        let i = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if let Some(at) = sent_at.lock().await.remove(&i) {
            result.received += 1;
            result
                .latencies_us
                .push(u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        if result.received == result.sent {
            break;
        }
    }
    let _ = sender.await;
    Ok(result)
}

/// utime + stime in clock ticks, and resident set in KiB, of `pid`.
fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
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
async fn run(
    gateway: String,
    control: Option<String>,
    calls: usize,
    seconds: u64,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_loopback(&gateway),
        "load goes to loopback addresses only"
    );
    if let Some(c) = &control {
        anyhow::ensure!(is_loopback(c), "load goes to loopback addresses only");
    }
    let http = reqwest::Client::new();
    let before = pid.and_then(proc_usage);
    let started = Instant::now();
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
    let steady_start = pid.and_then(proc_usage);
    tokio::time::sleep(window / 2).await;
    let peak = pid.and_then(proc_usage);
    tokio::time::sleep(window / 2).await;
    let steady_end = pid.and_then(proc_usage);
    let mut latencies = Vec::new();
    let (mut sent, mut received, mut failed) = (0u64, 0u64, 0usize);
    for task in tasks {
        match task.await? {
            Ok(r) => {
                sent += r.sent;
                received += r.received;
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
    if let (Some((t0, rss0)), Some((_, rss_peak)), Some((t1, _))) = (before, peak, after) {
        // /proc reports clock ticks; Linux's USER_HZ is 100.
        let cpu_s = (t1 - t0) as f64 / 100.0;
        let call_seconds = (calls as f64) * (seconds as f64);
        println!(
            "gateway CPU, whole run (set-up and tear-down included): {cpu_s:.2} s for {call_seconds:.0} call-seconds = {:.3} ms per call-second",
            cpu_s * 1000.0 / call_seconds
        );
        if let (Some((s0, _)), Some((s1, _))) = (steady_start, steady_end) {
            let cpu_s = (s1 - s0) as f64 / 100.0;
            let call_seconds = (calls as f64) * window.as_secs_f64();
            println!(
                "gateway CPU, steady state (all calls live, {:.0} s window): {cpu_s:.2} s for {call_seconds:.0} call-seconds = {:.3} ms per call-second",
                window.as_secs_f64(),
                cpu_s * 1000.0 / call_seconds
            );
        }
        println!(
            "gateway memory:  {rss0} KiB idle, {rss_peak} KiB with {calls} live calls = {:.1} KiB per call",
            (rss_peak.saturating_sub(rss0)) as f64 / calls as f64
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Peer { listen } => peer(listen).await,
        Command::Run {
            gateway,
            control,
            calls,
            seconds,
            gateway_pid,
        } => run(gateway, control, calls, seconds, gateway_pid).await,
    }
}
