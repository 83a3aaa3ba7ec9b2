//! Interop with an independent implementation (tokio-tungstenite), over real
//! TCP on 127.0.0.1, in both directions.

use atoll_ws::frame::{self, Opcode};
use atoll_ws::{handshake, Decoder, Limits, Message, Role};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as TMessage;

fn binary_payload() -> Vec<u8> {
    (0..300u32).map(|i| (i * 7) as u8).collect()
}

/// The server half of the handshake, with this crate's checks. Returns the
/// bytes read past the request head.
async fn accept(stream: &mut TcpStream) -> BytesMut {
    let mut buf = BytesMut::with_capacity(1024);
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        assert!(stream.read_buf(&mut buf).await.unwrap() > 0);
    };
    let head = buf.split_to(head_end);
    let head = std::str::from_utf8(&head).unwrap();
    let mut lines = head.split("\r\n");
    let method = lines.next().unwrap().split(' ').next().unwrap();
    let mut headers = http::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let key = handshake::check_upgrade_request(&method.parse().unwrap(), &headers).unwrap();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        handshake::accept_key(&key)
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    buf
}

/// A tiny server built from this crate: handshake checks, `Decoder`, `frame::encode`.
/// Echoes data, answers pings, sends a fragmented message on request, and
/// returns everything it received.
async fn atoll_server(mut stream: TcpStream) -> Vec<Message> {
    let mut buf = accept(&mut stream).await;
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut received = Vec::new();
    loop {
        while let Some(message) = decoder.decode(&mut buf).unwrap() {
            let mut out = BytesMut::new();
            match &message {
                Message::Text(t) if &t[..] == b"send-fragmented" => {
                    frame::encode_frame(Opcode::Binary, false, b"ab", None, &mut out);
                    frame::encode(Opcode::Ping, b"srv", None, &mut out);
                    frame::encode_frame(Opcode::Continuation, true, b"cd", None, &mut out);
                }
                Message::Text(t) => frame::encode(Opcode::Text, t, None, &mut out),
                Message::Binary(b) => frame::encode(Opcode::Binary, b, None, &mut out),
                Message::Ping(p) => frame::encode(Opcode::Pong, p, None, &mut out),
                Message::Pong(_) => {}
                Message::Close(c) => {
                    let code = c.as_ref().map_or(1000, |c| c.code);
                    frame::encode_close(code, "bye", None, &mut out);
                }
            }
            stream.write_all(&out).await.unwrap();
            let done = matches!(message, Message::Close(_));
            received.push(message);
            if done {
                return received; // dropping the stream ends the TCP connection
            }
        }
        assert!(
            stream.read_buf(&mut buf).await.unwrap() > 0,
            "EOF before close"
        );
    }
}

#[tokio::test]
async fn tungstenite_client_against_atoll_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        tokio::spawn(async move { atoll_server(listener.accept().await.unwrap().0).await });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/device/v1/connect"), tcp)
            .await
            .unwrap();

    ws.send(TMessage::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), TMessage::text("hello"));
    ws.send(TMessage::binary(binary_payload())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::binary(binary_payload())
    );
    ws.send(TMessage::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::Pong(Bytes::from_static(b"p1"))
    );
    // A fragmented text message from the client, split inside "é".
    ws.send(TMessage::Frame(Frame::message(
        &b"frag\xc3"[..],
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(TMessage::Frame(Frame::message(
        &b"\xa9"[..],
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), TMessage::text("fragé"));
    // A fragmented binary message from the server with a Ping in between.
    ws.send(TMessage::text("send-fragmented")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::Ping(Bytes::from_static(b"srv"))
    );
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::binary(&b"abcd"[..])
    );

    ws.close(None).await.unwrap();
    match ws.next().await {
        Some(Ok(TMessage::Close(Some(c)))) => assert_eq!(u16::from(c.code), 1000),
        other => panic!("expected the server's close, got {other:?}"),
    }
    assert!(ws.next().await.is_none());

    let received = server.await.unwrap();
    let text = |s: &str| Message::Text(Bytes::copy_from_slice(s.as_bytes()));
    assert_eq!(
        received,
        [
            text("hello"),
            Message::Binary(binary_payload().into()),
            Message::Ping(Bytes::from_static(b"p1")),
            text("fragé"),
            text("send-fragmented"),
            Message::Pong(Bytes::from_static(b"srv")), // tungstenite's automatic answer
            Message::Close(None),
        ]
    );
}

#[cfg(feature = "client")]
mod client {
    use super::*;
    use atoll_ws::client::{ClientError, WsClient};
    use atoll_ws::CloseFrame;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

    /// A tokio-tungstenite server: checks the signature header, echoes, and
    /// sends a fragmented message with a Ping inside on request.
    /// Returns the Pongs it received.
    async fn tungstenite_server(stream: TcpStream) -> Vec<Bytes> {
        // The callback's signature is tungstenite's, large Err and all.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
            if req
                .headers()
                .get("x-atoll-sig")
                .is_none_or(|v| v != "sig-123")
            {
                let body = r#"{"error":"bad_signature"}"#.to_owned();
                let err = http::Response::builder()
                    .status(401)
                    .header("content-type", "application/json")
                    .header("content-length", body.len())
                    .body(Some(body))
                    .unwrap();
                return Err(err);
            }
            resp.headers_mut()
                .insert("x-server", "tungstenite".parse().unwrap());
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
            return Vec::new();
        };
        let mut pongs = Vec::new();
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                TMessage::Text(t) if t.as_str() == "send-fragmented" => {
                    let start = Frame::message(&b"ab"[..], OpCode::Data(Data::Binary), false);
                    ws.send(TMessage::Frame(start)).await.unwrap();
                    ws.send(TMessage::Ping(Bytes::from_static(b"srv")))
                        .await
                        .unwrap();
                    let end = Frame::message(&b"cd"[..], OpCode::Data(Data::Continue), true);
                    ws.send(TMessage::Frame(end)).await.unwrap();
                }
                m @ (TMessage::Text(_) | TMessage::Binary(_)) => ws.send(m).await.unwrap(),
                TMessage::Pong(p) => pongs.push(p),
                _ => {} // tungstenite answers Pings and Closes itself
            }
        }
        pongs
    }

    #[tokio::test]
    async fn ws_client_against_tungstenite_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            assert!(tungstenite_server(listener.accept().await.unwrap().0)
                .await
                .is_empty());
            tungstenite_server(listener.accept().await.unwrap().0).await
        });

        // Without the signature: a 401 with the server's JSON body.
        let tcp = TcpStream::connect(addr).await.unwrap();
        match WsClient::connect(tcp, &addr.to_string(), "/device/v1/connect", &[]).await {
            Err(ClientError::Rejected {
                status,
                headers,
                body,
            }) => {
                assert_eq!(status, 401);
                assert_eq!(headers["content-type"], "application/json");
                assert_eq!(&body[..], br#"{"error":"bad_signature"}"#);
            }
            other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
        }

        let tcp = TcpStream::connect(addr).await.unwrap();
        let extra = [("X-Atoll-Sig".to_owned(), "sig-123".to_owned())];
        let (mut ws, headers) =
            WsClient::connect(tcp, &addr.to_string(), "/device/v1/connect?v=1", &extra)
                .await
                .unwrap();
        assert_eq!(headers["x-server"], "tungstenite");

        ws.send_text("hello").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("hello"));
        ws.send_binary(&binary_payload()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Binary(binary_payload().into()))
        );
        ws.send_ping(b"p1").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Pong(Bytes::from_static(b"p1")))
        );
        ws.send_text("send-fragmented").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Ping(Bytes::from_static(b"srv")))
        );
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Binary(Bytes::from_static(b"abcd")))
        );

        ws.close(1000, "done").await.unwrap();
        assert!(matches!(
            ws.send_text("late").await,
            Err(ClientError::Closed)
        ));
        let close = ws.recv().await.unwrap();
        assert_eq!(
            close,
            Some(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "done".into()
            })))
        );
        assert_eq!(ws.recv().await.unwrap(), None);
        // WsClient answered the server's Ping by itself.
        assert_eq!(server.await.unwrap(), [Bytes::from_static(b"srv")]);
    }

    /// A server that breaks the protocol gets a Close with the right code; a
    /// server that just hangs up is reported as such.
    #[tokio::test]
    async fn ws_client_protocol_error_and_eof() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            accept(&mut stream).await;
            // A masked frame from a server is a protocol error.
            let mut out = BytesMut::new();
            frame::encode(Opcode::Text, b"x", Some([1, 2, 3, 4]), &mut out);
            stream.write_all(&out).await.unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            let mut reply = BytesMut::from(&reply[..]);
            let close = Decoder::new(Role::Server, Limits::default())
                .decode(&mut reply)
                .unwrap();

            let (mut stream, _) = listener.accept().await.unwrap();
            accept(&mut stream).await;
            drop(stream);
            close
        });

        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut ws, _) = WsClient::connect(tcp, "localhost", "/", &[]).await.unwrap();
        match ws.recv().await {
            Err(ClientError::Protocol(e)) => assert_eq!(e, atoll_ws::ProtocolError::MaskedFrame),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        drop(ws);

        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut ws, _) = WsClient::connect(tcp, "localhost", "/", &[]).await.unwrap();
        assert!(matches!(ws.recv().await, Err(ClientError::UnexpectedEof)));

        let close = server.await.unwrap();
        assert_eq!(
            close,
            Some(Message::Close(Some(CloseFrame {
                code: 1002,
                reason: String::new()
            })))
        );
    }
}
