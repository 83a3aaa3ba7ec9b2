//! A small tokio WebSocket client over any byte stream (TCP, TLS, ...).
//!
//! Used by the Rust SDK and by the load generator, which runs 100k of these in
//! one process. So it keeps one read buffer that starts at
//! [`READ_CHUNK`] bytes and grows only for large frames, encodes each outgoing
//! frame into a buffer sized for that frame, and holds nothing else.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::decode::{Decoder, Limits, Message, ProtocolError, Role};
use crate::frame::{self, Opcode};
use crate::handshake::{self, HandshakeError};

/// Bytes read from the stream at a time, and the read buffer's first size.
pub const READ_CHUNK: usize = 1024;
/// Largest HTTP response head accepted during the handshake.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Largest rejection body kept; longer bodies are cut.
pub const MAX_REJECTION_BODY: usize = 64 * 1024;

/// What went wrong on a client connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The host, path or an extra header cannot be put in a request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The response head was not valid HTTP/1.1 or exceeded [`MAX_RESPONSE_HEAD`].
    #[error("malformed handshake response: {0}")]
    MalformedResponse(String),
    /// The server answered the upgrade with a status other than 101.
    #[error("server rejected the upgrade with status {status}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Response headers (boxed to keep every `Result` of this module small).
        headers: Box<HeaderMap>,
        /// Response body (per Content-Length, at most [`MAX_REJECTION_BODY`]).
        body: Bytes,
    },
    /// The 101 response was not a valid WebSocket accept.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server broke the protocol; we sent a Close with its code.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection ended without a closing handshake.
    #[error("connection closed without a close frame")]
    UnexpectedEof,
    /// A send after the closing handshake started.
    #[error("connection is closing")]
    Closed,
}

/// A client-side WebSocket connection.
#[derive(Debug)]
pub struct WsClient<S> {
    stream: S,
    read_buf: BytesMut,
    decoder: Decoder,
    /// We sent a Close frame.
    close_sent: bool,
    /// The server sent a Close frame.
    close_received: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Performs the upgrade on `stream`: writes `GET path_and_query` with the
    /// WebSocket headers plus `extra_headers` (e.g. the SDK's signature
    /// headers), reads the response head and checks it. Returns the client
    /// and the response headers. A non-101 answer becomes
    /// [`ClientError::Rejected`] with the body, so callers can show the
    /// server's error.
    pub async fn connect(
        mut stream: S,
        host: &str,
        path_and_query: &str,
        extra_headers: &[(String, String)],
    ) -> Result<(WsClient<S>, HeaderMap), ClientError> {
        let key = handshake::client_request_key();
        let request = build_request(host, path_and_query, extra_headers, &key)?;
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;

        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let head_len = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(ClientError::MalformedResponse(
                    "response head too large".into(),
                ));
            }
            buf.reserve(READ_CHUNK);
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(ClientError::MalformedResponse(
                    "connection closed during handshake".into(),
                ));
            }
        };
        let head = buf.split_to(head_len);
        let (status, headers) = parse_response_head(&head)?;
        if status != 101 {
            let body = read_body(&mut stream, buf, &headers).await?;
            return Err(ClientError::Rejected {
                status,
                headers: Box::new(headers),
                body,
            });
        }
        handshake::check_upgrade_response(status, &headers, &key)?;
        // Bytes after the head are the server's first frames.
        let client = WsClient {
            stream,
            read_buf: buf,
            decoder: Decoder::new(Role::Client, Limits::default()),
            close_sent: false,
            close_received: false,
        };
        Ok((client, headers))
    }

    /// Changes the decoder's size limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(Opcode::Text, text.as_bytes()).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send(Opcode::Binary, data).await
    }

    /// Sends a Ping (at most 125 bytes; longer payloads are cut).
    pub async fn send_ping(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send(
            Opcode::Ping,
            &data[..data.len().min(frame::MAX_CONTROL_PAYLOAD)],
        )
        .await
    }

    /// Starts the closing handshake. Keep calling [`recv`](Self::recv) until
    /// it returns `Ok(None)` to see the server's Close and the end of stream.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), ClientError> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        let mut out = BytesMut::new();
        frame::encode_close(code, reason, Some(rand::random()), &mut out);
        self.write(&out).await
    }

    /// The next message. Pings are answered with Pongs and still returned; a
    /// server Close is answered with a Close (echoing the code) and returned.
    /// `Ok(None)` means the stream ended after a Close was received; the
    /// server closes TCP first (RFC 6455 §7.1.1), so wrap calls in a timeout
    /// if the peer may not. A protocol error sends a Close with
    /// [`ProtocolError::close_code`] before it is returned.
    pub async fn recv(&mut self) -> Result<Option<Message>, ClientError> {
        loop {
            let decoded = if self.close_received {
                // Nothing may follow the server's Close; just wait for EOF.
                self.read_buf.clear();
                Ok(None)
            } else {
                self.decoder.decode(&mut self.read_buf)
            };
            match decoded {
                Ok(Some(message)) => {
                    self.shrink_if_idle();
                    self.answer(&message).await?;
                    return Ok(Some(message));
                }
                Ok(None) => {}
                Err(e) => {
                    // Best effort: the connection is being abandoned anyway.
                    let _ = self.close(e.close_code(), "").await;
                    return Err(e.into());
                }
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return if self.close_received {
                    Ok(None)
                } else {
                    Err(ClientError::UnexpectedEof)
                };
            }
        }
    }

    /// The stream under the connection.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    async fn answer(&mut self, message: &Message) -> Result<(), ClientError> {
        match message {
            Message::Ping(data) if !self.close_sent => {
                let mut out = BytesMut::new();
                frame::encode(Opcode::Pong, data, Some(rand::random()), &mut out);
                self.write(&out).await
            }
            Message::Close(frame) => {
                self.close_received = true;
                // 1000 when the server sent no code: an empty Close may not be
                // answered with 1005, which is never sent on the wire.
                let code = frame.as_ref().map_or(crate::close_code::NORMAL, |f| f.code);
                self.close(code, "").await
            }
            _ => Ok(()),
        }
    }

    async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), ClientError> {
        if self.close_sent {
            return Err(ClientError::Closed);
        }
        let mut out = BytesMut::with_capacity(frame::MAX_HEADER_LEN + payload.len());
        frame::encode(opcode, payload, Some(rand::random()), &mut out);
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// After a large message, let the big read buffer go rather than keep it
    /// for a connection that is mostly idle.
    fn shrink_if_idle(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 4 * READ_CHUNK {
            self.read_buf = BytesMut::new();
        }
    }
}

fn build_request(
    host: &str,
    path_and_query: &str,
    extra_headers: &[(String, String)],
    key: &str,
) -> Result<String, ClientError> {
    let invalid = |what: &str| ClientError::InvalidRequest(what.to_owned());
    // Anything with control characters or spaces could smuggle extra lines
    // into the request.
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid("host"));
    }
    if !path_and_query.starts_with('/') || path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid("path"));
    }
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra_headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("header name"))?;
        HeaderValue::from_str(value).map_err(|_| invalid("header value"))?;
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    Ok(request)
}

/// Length of the response head including the blank line, once it is all in `buf`.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_response_head(head: &[u8]) -> Result<(u16, HeaderMap), ClientError> {
    let bad = |what: &str| ClientError::MalformedResponse(what.to_owned());
    // Work on bytes: header values may carry non-UTF-8 (obs-text) octets.
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    if !parts.next().is_some_and(|v| v.starts_with(b"HTTP/1.")) {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3 && s.iter().all(u8::is_ascii_digit))
        .map(|s| s.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        .ok_or_else(|| bad("bad status code"))?;
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("header line without ':'"))?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| bad("bad header name"))?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| bad("bad header value"))?;
        headers.append(name, value);
    }
    Ok((status, headers))
}

/// Reads a rejection's body: `Content-Length` bytes if given, else up to EOF,
/// in both cases at most [`MAX_REJECTION_BODY`]. A chunked body is returned
/// as it came (Atoll's server always sends a length with its JSON errors).
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: BytesMut,
    headers: &HeaderMap,
) -> Result<Bytes, ClientError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let want = declared.unwrap_or(usize::MAX).min(MAX_REJECTION_BODY);
    while buf.len() < want {
        buf.reserve(READ_CHUNK.min(want - buf.len()));
        if stream.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    buf.truncate(want);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_rejects_header_injection() {
        let key = handshake::client_request_key();
        let ok = build_request("h:1", "/a?b=c", &[("x-sig".into(), "v".into())], &key).unwrap();
        assert!(ok.starts_with("GET /a?b=c HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(ok.ends_with("x-sig: v\r\n\r\n"));
        for (host, path, header) in [
            ("h\r\nx: y", "/", ("a", "b")),
            ("h", "/ HTTP/1.1\r\n", ("a", "b")),
            ("h", "/", ("a\r\nb", "c")),
            ("h", "/", ("a", "b\r\nc: d")),
        ] {
            let extra = [(header.0.to_owned(), header.1.to_owned())];
            assert!(matches!(
                build_request(host, path, &extra, &key),
                Err(ClientError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn parses_response_heads() {
        let (status, headers) = parse_response_head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(status, 101);
        assert_eq!(headers["x-a"], "1");
        assert!(parse_response_head(b"HTTP/1.1 1O1 x\r\n\r\n").is_err());
        assert!(parse_response_head(b"SIP/2.0 101 x\r\n\r\n").is_err());
        assert!(parse_response_head(b"HTTP/1.1 101 x\r\nnocolon\r\n\r\n").is_err());
        let (_, headers) =
            parse_response_head(b"HTTP/1.1 400 Bad\r\nX-B: caf\xc3\xa9\r\n\r\n").unwrap();
        assert_eq!(headers["x-b"].as_bytes(), "café".as_bytes());
        assert_eq!(find_head_end(b"a\r\n\r\nrest"), Some(5));
    }
}
