use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream, duplex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::handshake::{self, ServerUpgrade};
use super::*;

/// A frame as a peer in `role` would put it on the wire (`fin` chosen, masked with a fixed key when
/// the peer is a client).
fn wire(role: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, role, opcode, payload);
    if !fin {
        out[0] &= 0x7F;
    }
    out
}

/// A server-side connection over an in-memory pipe, and the peer's end of the pipe.
fn server_pair() -> (WsConn<DuplexStream>, DuplexStream) {
    let (ours, theirs) = duplex(1 << 20);
    (WsConn::new(ours, Role::Server, &[], 64, 4096), theirs)
}

/// Everything the connection yields until its stream ends.
async fn drain(conn: &mut WsConn<DuplexStream>) -> Vec<WsFrame> {
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("the stream ends")
    {
        frames.push(frame);
    }
    frames
}

/// The close status the connection sent back, if any.
async fn close_code_sent(peer: &mut DuplexStream) -> Option<u16> {
    let mut out = Vec::new();
    peer.read_to_end(&mut out).await.ok()?;
    // Server frames are unmasked: 0x88, length, code.
    let at = out.windows(2).position(|w| w[0] == 0x88 && w[1] >= 2)?;
    Some(u16::from_be_bytes([out[at + 2], out[at + 3]]))
}

#[test]
fn masking_is_its_own_inverse_and_matches_the_bytewise_definition() {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let original: Vec<u8> = (0..=255).collect();
    let mut data = original.clone();
    apply_mask(&mut data, key);
    for (i, (masked, plain)) in data.iter().zip(&original).enumerate() {
        assert_eq!(*masked, plain ^ key[i % 4]);
    }
    apply_mask(&mut data, key);
    assert_eq!(data, original);
}

#[tokio::test]
async fn messages_of_every_length_class_arrive_whole_through_a_small_buffer() {
    let (mut conn, mut peer) = server_pair();
    let sizes = [0usize, 1, 125, 126, 160, 743, 65_535, 65_536, 200_000];
    let (mut conn_big, mut peer_big) = {
        let (ours, theirs) = duplex(1 << 20);
        (WsConn::new(ours, Role::Server, &[], 64, 1 << 20), theirs)
    };
    for (i, &size) in sizes.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        let payload: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
        peer_big
            .write_all(&wire(Role::Client, true, OP_BINARY, &payload))
            .await
            .unwrap();
        assert_eq!(
            conn_big.next().await,
            Some(WsFrame::Binary(payload.into())),
            "size {size}"
        );
    }
    peer.write_all(&wire(Role::Client, true, OP_TEXT, "élagage 🌳".as_bytes()))
        .await
        .unwrap();
    assert_eq!(conn.next().await, Some(WsFrame::Text("élagage 🌳".into())));
}

#[tokio::test]
async fn fragments_are_reassembled_with_pings_between_them_and_pings_are_answered() {
    let (mut conn, mut peer) = server_pair();
    let mut bytes = wire(Role::Client, false, OP_TEXT, b"bon");
    bytes.extend(wire(Role::Client, true, OP_PING, b"p1"));
    bytes.extend(wire(Role::Client, false, OP_CONTINUATION, b"jour "));
    bytes.extend(wire(
        Role::Client,
        true,
        OP_CONTINUATION,
        "Québec".as_bytes(),
    ));
    peer.write_all(&bytes).await.unwrap();
    assert_eq!(
        conn.next().await,
        Some(WsFrame::Text("bonjour Québec".into()))
    );
    let mut pong = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), peer.read_exact(&mut pong))
        .await
        .expect("a pong is sent")
        .unwrap();
    assert_eq!(pong, [0x8A, 2, b'p', b'1']);
}

#[tokio::test]
async fn a_close_is_answered_with_the_same_code_and_ends_the_stream() {
    let (mut conn, mut peer) = server_pair();
    peer.write_all(&wire(Role::Client, true, OP_CLOSE, &4000u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(drain(&mut conn).await, vec![WsFrame::Close]);
    // Sending after the close is refused; a second close is a no-op.
    assert!(conn.send(WsFrame::Text("x".into())).await.is_err());
    conn.send(WsFrame::Close).await.unwrap();
    drop(conn);
    assert_eq!(close_code_sent(&mut peer).await, Some(4000));
}

#[tokio::test]
async fn protocol_errors_end_the_stream_with_their_status_code() {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "unmasked client frame",
            wire(Role::Server, true, OP_TEXT, b"hi"),
            1002,
        ),
        (
            "reserved bit",
            {
                let mut f = wire(Role::Client, true, OP_TEXT, b"hi");
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("unknown opcode", wire(Role::Client, true, 0x3, b"hi"), 1002),
        (
            "fragmented ping",
            wire(Role::Client, false, OP_PING, b"hi"),
            1002,
        ),
        (
            "continuation without a start",
            wire(Role::Client, true, OP_CONTINUATION, b"hi"),
            1002,
        ),
        (
            "text that is not UTF-8",
            wire(Role::Client, true, OP_TEXT, &[0xC3, 0x28]),
            1007,
        ),
        (
            "frame over the limit",
            wire(Role::Client, true, OP_BINARY, &[0; 4097]),
            1009,
        ),
        (
            "fragments over the limit",
            [
                wire(Role::Client, false, OP_BINARY, &[0; 3000]),
                wire(Role::Client, true, OP_CONTINUATION, &[0; 3000]),
            ]
            .concat(),
            1009,
        ),
    ];
    for (name, bytes, code) in cases {
        let (mut conn, mut peer) = server_pair();
        peer.write_all(&bytes).await.unwrap();
        assert_eq!(drain(&mut conn).await, vec![], "{name}");
        drop(conn);
        assert_eq!(close_code_sent(&mut peer).await, Some(code), "{name}");
    }
}

#[tokio::test]
async fn end_of_file_inside_a_frame_ends_the_stream() {
    let (mut conn, mut peer) = server_pair();
    let frame = wire(Role::Client, true, OP_BINARY, &[9; 100]);
    peer.write_all(&frame[..50]).await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(drain(&mut conn).await, vec![]);
}

#[tokio::test]
async fn a_full_socket_makes_the_sink_wait_instead_of_buffering_without_bound() {
    // A pipe that holds 1 KiB and a peer that never reads.
    let (ours, _peer) = duplex(1024);
    let mut conn = WsConn::new(ours, Role::Server, &[], 64, 4096);
    let mut sent = 0;
    for _ in 0..10_000 {
        let frame = WsFrame::Binary(vec![1; 160].into());
        match tokio::time::timeout(Duration::from_millis(100), conn.feed(frame)).await {
            Ok(result) => {
                result.unwrap();
                sent += 1;
            }
            Err(_) => break, // the sink waited for the socket
        }
    }
    assert!(sent < 10_000, "the sink never waited");
    // 1 KiB in the pipe plus at most the high-water mark plus one frame in the write buffer.
    assert!(
        sent * 162 <= 1024 + WRITE_HIGH_WATER + 162,
        "{sent} frames accepted"
    );
}

/// An axum server on port 0 whose `/ws` echoes every message through [`ServerUpgrade`], reporting
/// whether it got the plain TCP socket back from hyper.
async fn echo_server() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<bool>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let app = Router::new().route(
        "/ws",
        get(move |upgrade: ServerUpgrade| {
            let tx = tx.clone();
            async move {
                upgrade.on_upgrade(64, 1 << 20, move |mut conn| async move {
                    let _ = tx.send(matches!(conn.get_ref(), Either::Left(_))).await;
                    while let Some(frame) = conn.next().await {
                        if frame == WsFrame::Close {
                            break;
                        }
                        if conn.send(frame).await.is_err() {
                            break;
                        }
                    }
                    let _ = conn.close().await;
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::startup::serve_http1(listener, app, token));
    (addr, rx)
}

use tokio_util::either::Either;

#[tokio::test]
async fn our_server_interoperates_with_tungstenite_and_gets_the_raw_socket() {
    let (addr, mut raw) = echo_server().await;
    let (mut client, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("tungstenite accepts our handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(
        raw.recv().await,
        Some(true),
        "hyper handed back the TcpStream"
    );
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for message in [
        Message::Text("{\"event\":\"media\"}".into()),
        Message::Binary(big.into()),
        Message::Binary(vec![0xFF; 160].into()),
    ] {
        client.send(message.clone()).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), message);
    }
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .unwrap();
    assert!(matches!(
        client.next().await,
        Some(Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            ..
        }))))
    ));
}

#[tokio::test]
async fn bad_handshakes_are_refused_with_their_status() {
    let (addr, _) = echo_server().await;
    let base = format!("http://{addr}/ws");
    let http = reqwest::Client::new();
    let plain = http.get(&base).send().await.unwrap();
    assert_eq!(plain.status(), 400);
    let old = http
        .get(&base)
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
}

#[test]
fn the_accept_key_is_the_rfc_example() {
    // RFC 6455 §1.3.
    assert_eq!(
        handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// A tungstenite server on port 0 that echoes, pings once first, and closes with 4001 on "bye".
async fn tungstenite_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                        response| {
            assert_eq!(request.headers()["authorization"], "Bearer k");
            assert_eq!(request.uri().query(), Some("call=1"));
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .unwrap();
        ws.send(Message::Ping(b"hello".to_vec().into()))
            .await
            .unwrap();
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(t) if t.as_str() == "bye" => {
                    ws.close(Some(CloseFrame {
                        code: CloseCode::from(4001),
                        reason: "".into(),
                    }))
                    .await
                    .unwrap();
                }
                Message::Text(_) | Message::Binary(_) => ws.send(message).await.unwrap(),
                Message::Pong(p) => ws
                    .send(Message::Text(format!("pong {}", p.len()).into()))
                    .await
                    .unwrap(),
                _ => {}
            }
        }
    });
    addr
}

#[tokio::test]
async fn our_client_interoperates_with_tungstenite() {
    let addr = tungstenite_server().await;
    let mut conn = handshake::connect(
        &format!("ws://{addr}/call?call=1"),
        &[("Authorization", "Bearer k")],
        64,
        1 << 20,
    )
    .await
    .expect("handshake");
    // The server's ping was answered: it tells us it saw a 5-byte pong.
    assert_eq!(conn.next().await, Some(WsFrame::Text("pong 5".into())));
    let audio: Vec<u8> = (0..743u32).map(|i| i.to_le_bytes()[0]).collect();
    conn.send(WsFrame::Binary(audio.clone().into()))
        .await
        .unwrap();
    assert_eq!(conn.next().await, Some(WsFrame::Binary(audio.into())));
    conn.send(WsFrame::Text("bye".into())).await.unwrap();
    assert_eq!(conn.next().await, Some(WsFrame::Close));
    assert_eq!(conn.next().await, None);
}

#[tokio::test]
async fn the_client_refuses_a_server_that_does_not_upgrade() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        tcp.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let error = handshake::connect(&format!("ws://{addr}/x?token=secret"), &[], 64, 1024)
        .await
        .unwrap_err();
    assert!(matches!(error, handshake::ConnectError::Status(403)));
    assert!(!error.to_string().contains("secret"));
    assert!(matches!(
        handshake::connect("https://example.com/", &[], 64, 1024).await,
        Err(handshake::ConnectError::BadUrl)
    ));
}

/// A self-signed certificate for `localhost`, made by the `openssl` command line.
fn localhost_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        // An end-entity certificate: webpki refuses a CA certificate used as a server's.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line is installed");
    assert!(status.success(), "openssl made the certificate");
    (cert, key)
}

#[tokio::test]
async fn wss_works_against_a_trusted_certificate_and_refuses_an_untrusted_one() {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = localhost_certificate(dir.path());
    let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
    let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_binary() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let url = format!("wss://localhost:{port}/call");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusting = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut conn = handshake::connect_with(&url, &[], 64, 1 << 20, trusting)
        .await
        .expect("TLS and WebSocket handshakes");
    assert!(matches!(conn.get_ref(), Either::Right(_)), "a TLS socket");
    let audio: Vec<u8> = (0..1000u32).map(|i| i.to_le_bytes()[0]).collect();
    conn.send(WsFrame::Binary(audio.clone().into()))
        .await
        .unwrap();
    assert_eq!(conn.next().await, Some(WsFrame::Binary(audio.into())));

    // The production configuration (webpki roots) refuses the self-signed certificate.
    assert!(matches!(
        handshake::connect(&url, &[], 64, 1024).await,
        Err(handshake::ConnectError::Io(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes from the peer, up to 64 KiB, in any read sizes: no panic, and the stream ends.
    #[test]
    fn any_bytes_end_the_stream_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..65_536),
        role in prop_oneof![Just(Role::Server), Just(Role::Client)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (ours, mut theirs) = duplex(1 << 17);
            let mut conn = WsConn::new(ours, role, &[], 64, 8192);
            theirs.write_all(&bytes).await.unwrap();
            theirs.shutdown().await.unwrap();
            let mut n = 0;
            while conn.next().await.is_some() {
                n += 1;
                prop_assert!(n <= bytes.len() / 2 + 1);
            }
            Ok(())
        })?;
    }

    /// Messages framed by a peer, split at any points, come out identical and in order.
    #[test]
    fn framed_messages_survive_any_split(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..8),
        fragment in 1usize..300,
        cut in 1usize..97,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut bytes = Vec::new();
            for message in &messages {
                let pieces: Vec<&[u8]> = if message.is_empty() { vec![&[]] } else { message.chunks(fragment).collect() };
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = if i == 0 { OP_BINARY } else { OP_CONTINUATION };
                    bytes.extend(wire(Role::Client, i + 1 == pieces.len(), opcode, piece));
                }
            }
            let (ours, mut theirs) = duplex(1 << 17);
            let mut conn = WsConn::new(ours, Role::Server, &[], 64, 8192);
            let writer = tokio::spawn(async move {
                for piece in bytes.chunks(cut) {
                    theirs.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
                theirs
            });
            for message in &messages {
                prop_assert_eq!(conn.next().await, Some(WsFrame::Binary(message.clone().into())));
            }
            drop(writer.await.unwrap());
            prop_assert_eq!(conn.next().await, None);
            Ok(())
        })?;
    }
}
