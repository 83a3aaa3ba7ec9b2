//! One device connection's I/O after the WebSocket upgrade: read and decode
//! the client's frames, write what the hub queued, close with a reason.
//!
//! Memory is the point here: an idle connection holds no read buffer (bytes
//! are read through a stack buffer and kept only while a frame is partial), no
//! write buffer (frames wait in the hub's outbox as shared `Bytes`) and no
//! timer (the hub's sweeper handles idle and acknowledgement timeouts).

use crate::hub::encode_frame;
use crate::{CloseReason, Conn, SyncService};
use atoll_protocol::sync::{ClientFrame, ServerFrame};
use atoll_ws::decode::{Decoder, Limits, Message, Role};
use atoll_ws::frame::Opcode;
use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Largest frame or message a device may send (subscriptions with cursors are
/// the biggest).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Bytes read per system call.
const READ_CHUNK: usize = 4096;

/// Reads what is available into `inbuf` through a stack buffer, so nothing
/// is allocated while the connection waits.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    inbuf: &mut BytesMut,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                inbuf.extend_from_slice(buf.filled());
                Poll::Ready(Ok(buf.filled().len()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

fn control_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    atoll_ws::frame::encode(opcode, payload, None, &mut out);
    out.freeze()
}

fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + reason.len());
    atoll_ws::frame::encode_close(code, reason, None, &mut out);
    out.freeze()
}

fn error_frame(code: &str, detail: impl Into<String>) -> Bytes {
    encode_frame(&ServerFrame::Error {
        code: code.to_owned(),
        detail: detail.into(),
    })
}

/// Push messages one `push_ack` frame may acknowledge.
const MAX_PUSH_ACK_IDS: usize = 100;

/// What reading left the connection in.
enum Input {
    Open,
    /// The client sent a close frame.
    Closed,
    /// The client broke the protocol (close with this code).
    Broken(u16),
}

/// Serves one upgraded connection until it ends.
pub async fn serve<S>(service: Arc<SyncService>, conn: Arc<Conn>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hub = service.hub.clone();
    // Borrowed from the hub, not cloned: every byte per connection counts.
    let settings = hub.settings();
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut decoder = Decoder::new(
        Role::Server,
        Limits {
            max_frame_payload: MAX_CLIENT_MESSAGE,
            max_message: MAX_CLIENT_MESSAGE,
        },
    );
    let mut inbuf = BytesMut::new();
    conn.push(encode_frame(&ServerFrame::Welcome {
        connection_id: conn.display_id(&settings.node),
        heartbeat_secs: settings.heartbeat.as_secs(),
        idle_timeout_secs: settings.idle_timeout.as_secs(),
    }));
    // After the welcome: what the observer sends comes second.
    if let Some(observer) = service.observer() {
        observer.connected(&conn);
    }
    let reason = loop {
        let (frames, closing) = conn.take_outbox();
        if !frames.is_empty() {
            let written = tokio::time::timeout(
                settings.write_timeout,
                Box::pin(write_frames(&mut writer, frames)),
            )
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break CloseReason::ClientClosed,
                Err(_) => {
                    metrics::counter!("atoll_sync_slow_consumers_total").increment(1);
                    break CloseReason::SlowConsumer;
                }
            }
        }
        if let Some(reason) = closing {
            let frame = close_frame(reason.close_code(), reason.label());
            let _ = tokio::time::timeout(settings.write_timeout, async {
                writer.write_all(&frame).await?;
                writer.flush().await?;
                writer.shutdown().await
            })
            .await;
            break reason;
        }
        tokio::select! {
            _ = conn.woken() => {}
            read = read_some(&mut reader, &mut inbuf) => {
                match read {
                    Ok(0) | Err(_) => break CloseReason::ClientClosed,
                    Ok(_) => {
                        conn.touch(hub.now());
                        // Boxed, like the writes below: the task of an idle
                        // connection then holds pointers, not these states.
                        match Box::pin(handle_input(&service, &conn, &mut decoder, &mut inbuf)).await {
                            Input::Open => {}
                            Input::Closed => {
                                conn.close(CloseReason::ClientClosed);
                            }
                            Input::Broken(code) => {
                                let frame = close_frame(code, "protocol error");
                                let _ = tokio::time::timeout(settings.write_timeout, writer.write_all(&frame)).await;
                                break CloseReason::ProtocolError;
                            }
                        }
                        if inbuf.is_empty() {
                            // Give the buffer back: idle connections hold none.
                            inbuf = BytesMut::new();
                        }
                    }
                }
            }
        }
    };
    hub.unregister(&conn, reason);
}

async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: Vec<Bytes>,
) -> std::io::Result<()> {
    if let [frame] = frames.as_slice() {
        writer.write_all(frame).await?;
    } else {
        // One write for a burst: the frames are small and a system call is not.
        let total = frames.iter().map(Bytes::len).sum();
        let mut joined = BytesMut::with_capacity(total);
        for frame in &frames {
            joined.extend_from_slice(frame);
        }
        writer.write_all(&joined).await?;
    }
    writer.flush().await
}

async fn handle_input(
    service: &Arc<SyncService>,
    conn: &Arc<Conn>,
    decoder: &mut Decoder,
    inbuf: &mut BytesMut,
) -> Input {
    loop {
        let message = match decoder.decode(inbuf) {
            Ok(Some(message)) => message,
            Ok(None) => return Input::Open,
            Err(error) => {
                metrics::counter!("atoll_sync_protocol_errors_total").increment(1);
                return Input::Broken(error.close_code());
            }
        };
        match message {
            Message::Text(text) => handle_frame(service, conn, &text).await,
            Message::Binary(_) => {
                conn.push(error_frame(
                    "invalid_frame",
                    "frames are JSON text messages",
                ));
            }
            Message::Ping(payload) => {
                conn.push(control_frame(Opcode::Pong, &payload));
            }
            Message::Pong(_) => {}
            Message::Close(_) => return Input::Closed,
        }
    }
}

async fn handle_frame(service: &Arc<SyncService>, conn: &Arc<Conn>, text: &[u8]) {
    let frame: ClientFrame = match serde_json::from_slice(text) {
        Ok(frame) => frame,
        Err(error) => {
            conn.push(error_frame(
                "invalid_frame",
                format!("not a client frame: {error}"),
            ));
            return;
        }
    };
    match frame {
        ClientFrame::Subscribe { subs, user_id } => {
            // Boxed: the subscription's store queries are the biggest future
            // of a connection, and only live while it runs; inline, every idle
            // connection's task would carry their size.
            let subscribing = Box::pin(service.subscribe(conn, &subs, user_id.as_deref()));
            if let Err(error) = subscribing.await {
                tracing::warn!(%error, "sync subscribe failed");
                let code = error.code();
                conn.push(error_frame(code.as_str(), error.to_string()));
            }
        }
        ClientFrame::PushAck { msg_ids } => match service.observer() {
            Some(observer) if msg_ids.len() <= MAX_PUSH_ACK_IDS => {
                observer.push_acked(conn, msg_ids)
            }
            Some(_) => {
                conn.push(error_frame(
                    "too_many_ids",
                    format!("acknowledge at most {MAX_PUSH_ACK_IDS} push messages per frame"),
                ));
            }
            None => {
                conn.push(error_frame("push_unavailable", "push is not running"));
            }
        },
        ClientFrame::Ack { biz, stream, seq } => {
            if !service.acknowledge(conn, &biz, &stream, seq) {
                conn.push(error_frame(
                    "unknown_stream",
                    format!("not subscribed to {biz} {stream}"),
                ));
            }
        }
    }
}
