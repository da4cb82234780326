//! The bridge's own WebSocket framing (RFC 6455) for the two legs of a call, written for the relay's
//! traffic: a few hundred bytes per message, fifty messages a second each way, thousands of calls
//! per core. It reads straight from the socket into one reusable buffer (never zeroed per read),
//! unmasks in place, and writes each frame's header and payload into one reusable write buffer, so
//! a 20 ms frame costs one `recv`, one `send` and no allocation beyond the message it yields.
//!
//! Scope: no extensions (a frame with a reserved bit set is a protocol error), no subprotocols.
//! Fragmented messages are reassembled; pings are answered; a close is answered and ends the
//! stream. Protocol errors close the connection with the status code RFC 6455 gives (1002, 1007,
//! 1009) and end the stream. The handshakes are in [`handshake`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::relay::WsFrame;

pub mod handshake;

/// Which end of the connection this is: a server reads masked frames and writes unmasked ones, a
/// client the reverse (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Close status codes (RFC 6455 §7.4.1).
mod status {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Above this many unwritten bytes, `poll_ready` waits for the socket to take some.
const WRITE_HIGH_WATER: usize = 8 * 1024;

/// A read or write buffer that grew past this (a large message) is given back once it is empty.
const SHRINK_ABOVE: usize = 16 * 1024;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("WebSocket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("WebSocket message larger than {0} bytes")]
    TooBig(usize),
    #[error("WebSocket text message is not UTF-8")]
    NotUtf8,
    #[error("the WebSocket connection is closed")]
    Closed,
}

impl WsError {
    fn close_code(&self) -> u16 {
        match self {
            WsError::TooBig(_) => status::TOO_BIG,
            WsError::NotUtf8 => status::INVALID_DATA,
            _ => status::PROTOCOL,
        }
    }
}

/// A complete frame found at the front of the read buffer.
struct FrameHead {
    fin: bool,
    opcode: u8,
    /// Where the (unmasked) payload lies in the read buffer.
    start: usize,
    end: usize,
}

/// Parses the frame header at the front of `buf` (RFC 6455 §5.2) and unmasks its payload in place.
/// `Ok(None)` with `need` set when more bytes are needed.
fn parse_frame(
    buf: &mut [u8],
    role: Role,
    max_frame: usize,
    need: &mut usize,
) -> Result<Option<FrameHead>, WsError> {
    if buf.len() < 2 {
        *need = 2;
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bit set without an extension"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(WsError::Protocol("client frame not masked")),
        (Role::Client, true) => return Err(WsError::Protocol("server frame masked")),
        _ => {}
    }
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(WsError::Protocol("unknown opcode"));
    }
    let control = opcode & 0x8 != 0;
    let (len, mut at) = match b1 & 0x7F {
        0x7E => {
            if buf.len() < 4 {
                *need = 4;
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        0x7F => {
            if buf.len() < 10 {
                *need = 10;
                return Ok(None);
            }
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(raw), 10)
        }
        short => (u64::from(short), 2),
    };
    if control && (len > 125 || !fin) {
        return Err(WsError::Protocol(
            "control frame fragmented or over 125 bytes",
        ));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= max_frame)
        .ok_or(WsError::TooBig(max_frame))?;
    let mask = if masked {
        if buf.len() < at + 4 {
            *need = at + 4;
            return Ok(None);
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    if buf.len() < at + len {
        *need = at + len;
        return Ok(None);
    }
    if let Some(key) = mask {
        apply_mask(&mut buf[at..at + len], key);
    }
    Ok(Some(FrameHead {
        fin,
        opcode,
        start: at,
        end: at + len,
    }))
}

/// XORs `data` with the 4-byte masking key, eight bytes at a time (RFC 6455 §5.3).
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Appends one frame (FIN set) to `out`, masked with a fresh key when `role` is the client.
fn encode_frame(out: &mut Vec<u8>, role: Role, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let mask_bit = if role == Role::Client { 0x80 } else { 0 };
    match payload.len() {
        // The casts are within the ranges the match arms check.
        #[allow(clippy::cast_possible_truncation)]
        len @ 0..=125 => out.push(mask_bit | len as u8),
        #[allow(clippy::cast_possible_truncation)]
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 0x7E);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 0x7F);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if role == Role::Client {
        // RFC 6455 §5.3: an unpredictable key per frame, from a CSPRNG.
        let key: [u8; 4] = rand::random();
        out.extend_from_slice(&key);
        let at = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[at..], key);
    } else {
        out.extend_from_slice(payload);
    }
}

/// A WebSocket connection after its handshake, as a `Stream` and `Sink` of [`WsFrame`]s.
///
/// The stream yields text, binary and close messages (pings are answered, pongs dropped) and ends
/// after a close, at end of file, or at the first error (which closes the connection with its
/// status code when the socket still takes writes).
#[derive(Debug)]
pub struct WsConn<IO> {
    io: IO,
    role: Role,
    max_message: usize,
    /// Bytes read, not yet consumed: `rbuf[rstart..rend]`. Initialised once, reused.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// A message arriving in several frames: its opcode and the payload so far.
    partial: Option<(u8, Vec<u8>)>,
    /// Frames not yet written: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// A close frame was queued (ours or the answer to the peer's): nothing else is sent.
    close_sent: bool,
    /// The stream has ended (close received, end of file or error).
    done: bool,
    read_size: usize,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> WsConn<IO> {
    /// Wraps a connection whose handshake is done. `already_read` holds bytes read past the
    /// handshake (the start of the first frames); `read_size` is the read buffer's usual size.
    pub fn new(
        io: IO,
        role: Role,
        already_read: &[u8],
        read_size: usize,
        max_message: usize,
    ) -> Self {
        let mut rbuf = vec![0; read_size.max(already_read.len())];
        rbuf[..already_read.len()].copy_from_slice(already_read);
        Self {
            io,
            role,
            max_message,
            rbuf,
            rstart: 0,
            rend: already_read.len(),
            partial: None,
            wbuf: Vec::new(),
            wpos: 0,
            close_sent: false,
            done: false,
            read_size,
        }
    }

    /// The socket under the WebSocket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_sent {
            self.close_sent = true;
            encode_frame(&mut self.wbuf, self.role, OP_CLOSE, &code.to_be_bytes());
        }
    }

    /// Writes what is buffered; `Ready(Ok)` once all of it is written and flushed.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = Vec::new();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// The next complete frame in the read buffer, reading from the socket as needed.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<FrameHead>, WsError>> {
        loop {
            let mut need = 0;
            let max_frame = self.max_message;
            if let Some(head) = parse_frame(
                &mut self.rbuf[self.rstart..self.rend],
                self.role,
                max_frame,
                &mut need,
            )? {
                let base = self.rstart;
                self.rstart += head.end;
                return Poll::Ready(Ok(Some(FrameHead {
                    start: base + head.start,
                    end: base + head.end,
                    ..head
                })));
            }
            // Make room for `need` bytes from `rstart`: move the partial frame to the front, and
            // grow the buffer only for a frame larger than it.
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
                if self.rbuf.len() > SHRINK_ABOVE {
                    self.rbuf = vec![0; self.read_size];
                }
            } else if self.rstart + need > self.rbuf.len() || self.rend == self.rbuf.len() {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if need > self.rbuf.len() {
                self.rbuf.resize(need, 0);
            }
            let mut read = ReadBuf::new(&mut self.rbuf[self.rend..]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(if self.rstart == self.rend && self.partial.is_none() {
                    Ok(None)
                } else {
                    Err(WsError::Protocol("connection closed inside a frame"))
                });
            }
            self.rend += n;
        }
    }

    /// The next message, answering pings and closes on the way.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<WsFrame>, WsError>> {
        loop {
            let Some(head) = ready!(self.poll_frame(cx))? else {
                return Poll::Ready(Ok(None));
            };
            let payload = &self.rbuf[head.start..head.end];
            match head.opcode {
                OP_PING => {
                    if !self.close_sent {
                        encode_frame(&mut self.wbuf, self.role, OP_PONG, payload);
                        // Sent with the next write, or now if the socket takes it.
                        let _ = self.poll_write_out(cx);
                    }
                }
                OP_PONG => {}
                OP_CLOSE => {
                    if payload.len() == 1 {
                        return Poll::Ready(Err(WsError::Protocol("close frame of one byte")));
                    }
                    if !self.close_sent {
                        // Echo the peer's status code (RFC 6455 §5.5.1).
                        let code = if payload.len() >= 2 {
                            u16::from_be_bytes([payload[0], payload[1]])
                        } else {
                            status::NORMAL
                        };
                        self.queue_close(code);
                    }
                    return Poll::Ready(Ok(Some(WsFrame::Close)));
                }
                OP_CONTINUATION => {
                    let Some((opcode, mut message)) = self.partial.take() else {
                        return Poll::Ready(Err(WsError::Protocol("continuation without a start")));
                    };
                    if message.len() + payload.len() > self.max_message {
                        return Poll::Ready(Err(WsError::TooBig(self.max_message)));
                    }
                    message.extend_from_slice(payload);
                    if head.fin {
                        return Poll::Ready(message_frame(opcode, message).map(Some));
                    }
                    self.partial = Some((opcode, message));
                }
                opcode => {
                    if self.partial.is_some() {
                        return Poll::Ready(Err(WsError::Protocol(
                            "new message inside a fragmented one",
                        )));
                    }
                    if !head.fin {
                        self.partial = Some((opcode, payload.to_vec()));
                    } else if opcode == OP_BINARY {
                        return Poll::Ready(Ok(Some(WsFrame::Binary(Bytes::copy_from_slice(
                            payload,
                        )))));
                    } else {
                        let text = std::str::from_utf8(payload).map_err(|_| WsError::NotUtf8)?;
                        return Poll::Ready(Ok(Some(WsFrame::Text(text.to_owned()))));
                    }
                }
            }
        }
    }
}

fn message_frame(opcode: u8, message: Vec<u8>) -> Result<WsFrame, WsError> {
    if opcode == OP_BINARY {
        Ok(WsFrame::Binary(message.into()))
    } else {
        String::from_utf8(message)
            .map(WsFrame::Text)
            .map_err(|_| WsError::NotUtf8)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Stream for WsConn<IO> {
    type Item = WsFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsFrame>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(this.poll_message(cx)) {
            Ok(Some(frame)) => {
                if frame == WsFrame::Close {
                    this.done = true;
                    // The answer to the peer's close goes out now if the socket takes it.
                    let _ = this.poll_write_out(cx);
                }
                Poll::Ready(Some(frame))
            }
            Ok(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Err(error) => {
                tracing::debug!(%error, "WebSocket read failed");
                this.done = true;
                if !matches!(error, WsError::Io(_)) {
                    this.queue_close(error.close_code());
                    let _ = this.poll_write_out(cx);
                }
                Poll::Ready(None)
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Sink<WsFrame> for WsConn<IO> {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = &mut *self;
        if this.wbuf.len() - this.wpos >= WRITE_HIGH_WATER {
            // Ready again once the socket has taken everything buffered.
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, frame: WsFrame) -> Result<(), WsError> {
        let this = &mut *self;
        if this.close_sent {
            // A second close is a no-op; anything else after a close is refused.
            return if frame == WsFrame::Close {
                Ok(())
            } else {
                Err(WsError::Closed)
            };
        }
        match frame {
            WsFrame::Text(text) => {
                encode_frame(&mut this.wbuf, this.role, OP_TEXT, text.as_bytes());
            }
            WsFrame::Binary(bytes) => encode_frame(&mut this.wbuf, this.role, OP_BINARY, &bytes),
            WsFrame::Close => this.queue_close(status::NORMAL),
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.poll_write_out(cx).map_err(WsError::from)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = &mut *self;
        this.queue_close(status::NORMAL);
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(WsError::from)
    }
}

#[cfg(test)]
mod tests;
