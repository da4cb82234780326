//! A TCP proxy in front of a Supabase URL that can hold some requests back: a PostgREST that
//! answers slowly for the requests chosen (the request itself is delayed, so the write lands
//! late, after the gateway gave up waiting). It also counts the HTTP requests it forwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct Rule {
    /// A request whose first line starts with this (e.g. `PATCH /rest/v1/leads`) is held.
    prefix: Option<String>,
    delay: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    rule: std::sync::Mutex<Rule>,
    requests: AtomicUsize,
    held: AtomicUsize,
    /// The request line of every request forwarded (`PATCH /rest/v1/leads?id=eq.… HTTP/1.1`).
    lines: std::sync::Mutex<Vec<String>>,
}

/// The proxy; dropped, it stops accepting.
pub struct DelayProxy {
    /// `SUPABASE_URL` for a gateway behind the proxy.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// A proxy to `upstream` (`http://host:port`), holding nothing yet.
    pub async fn start(upstream: &str) -> Self {
        let target: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let accepted = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = Arc::clone(&accepted);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, shared).await;
                    }
                });
            }
        });
        Self { url, shared, task }
    }

    /// Holds every request starting with `prefix` for `delay` before forwarding it.
    pub fn hold(&self, prefix: &str, delay: Duration) {
        *self.shared.rule.lock().unwrap() = Rule {
            prefix: Some(prefix.to_owned()),
            delay,
        };
    }

    /// Forwards everything at once again.
    pub fn release(&self) {
        *self.shared.rule.lock().unwrap() = Rule::default();
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The request lines forwarded after the first `from` (method and target).
    pub fn lines_since(&self, from: usize) -> Vec<String> {
        let lines = self.shared.lines.lock().unwrap();
        lines.get(from..).unwrap_or_default().to_vec()
    }

    /// Requests held back so far.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"PATCH ", b"DELETE ", b"HEAD "];

async fn pipe(mut client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut from_server, mut to_server) = server.into_split();
    let (mut from_client, mut to_client) = client.split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if METHODS.iter().any(|m| chunk.starts_with(m)) {
                let line = chunk.split(|b| *b == b'\r').next().unwrap_or_default();
                shared
                    .lines
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(line).into_owned());
                shared.requests.fetch_add(1, Ordering::SeqCst);
                let delay = {
                    let rule = shared.rule.lock().unwrap();
                    rule.prefix
                        .as_ref()
                        .filter(|p| chunk.starts_with(p.as_bytes()))
                        .map(|_| rule.delay)
                };
                if let Some(delay) = delay {
                    shared.held.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                }
            }
            // Forwarded even if the client gave up meanwhile: the write lands late.
            if to_server.write_all(chunk).await.is_err() {
                break;
            }
        }
        // No half-close towards the server: it would drop a request still in flight.
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::pin!(downstream);
    tokio::select! {
        () = &mut downstream => {}
        () = upstream => {
            // The client is gone or done: let the server finish what it was sent.
            let _ = tokio::time::timeout(Duration::from_secs(30), &mut downstream).await;
        }
    }
}
