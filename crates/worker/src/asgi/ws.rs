//! WebSocket (RFC 6455 over HTTP/1.1) for ASGI apps, on the I/O thread.
//!
//! tungstenite's protocol layer does the framing, sans-I/O: it reads from
//! and writes to an in-memory buffer ([`Mem`]) that this task fills from
//! and drains to the socket. tungstenite reassembles fragments, answers
//! pings, runs the close handshake and enforces the message size limit
//! (`--websocket-max-message-size`, close 1009).
//!
//! The handshake waits for the app: `websocket.accept` sends the 101 (with
//! its subprotocol and headers), `websocket.close` before accept a 403, and
//! `websocket.http.response.*` (the denial extension) a full response.
//!
//! Once open, the server pings every `--websocket-ping-interval` and
//! closes with 1011 when no pong comes within `--websocket-ping-timeout`
//! (uvicorn's keepalive). At most [`WS_INBOX`] messages wait for the app's
//! `receive()`; beyond that the socket is not read until the app catches
//! up, so a client cannot make the worker buffer without bound.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferricorn_http::{HttpError, RequestHead};
use ferricorn_python::asgi::events::{FromApp, Reply, ReplyShared, ToLoop, WRITE_CREDIT};
use ferricorn_python::asgi::scope::ScopeData;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use super::deflate;
use super::response::Response;
use super::AsgiShared;
use crate::exchange::Peer;
use crate::io::AsyncStream;

/// How long the close handshake may take once the app closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest piece read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;
/// Messages handed to the loop and not yet `receive()`d before the socket
/// is left unread (uvicorn's and gunicorn's queue of 32).
const WS_INBOX: usize = 32;

/// The WebSocket settings of an ASGI worker.
#[derive(Clone, Copy, Debug)]
pub struct WsOptions {
    /// `--websocket-max-message-size` (0: no limit).
    pub max_message_size: u64,
    /// `--websocket-ping-interval` (None: no server pings).
    pub ping_interval: Option<Duration>,
    /// `--websocket-ping-timeout` (None: a ping may go unanswered).
    pub ping_timeout: Option<Duration>,
    /// Offer permessage-deflate (`--no-websocket-per-message-deflate` turns it off).
    pub per_message_deflate: bool,
}

impl WsOptions {
    /// The options `settings` ask for; 0 seconds turns a timer off.
    pub fn from_settings(settings: &ferricorn_config::Settings) -> Self {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Self {
            max_message_size: settings.websocket_max_message_size,
            ping_interval: secs(settings.websocket_ping_interval),
            ping_timeout: secs(settings.websocket_ping_timeout),
            per_message_deflate: settings.websocket_per_message_deflate,
        }
    }
}

/// The server's keepalive pings on one open WebSocket.
struct Keepalive {
    every: Option<Duration>,
    within: Option<Duration>,
    /// When the next ping goes out.
    next_ping: Option<Instant>,
    /// The ping in flight: its payload, when it went, when its pong is due.
    pending: Option<([u8; 4], Instant, Option<Instant>)>,
    sequence: u32,
}

impl Keepalive {
    fn new(options: &WsOptions) -> Self {
        let mut keepalive = Self {
            every: options.ping_interval,
            within: options.ping_timeout,
            next_ping: None,
            pending: None,
            sequence: 0,
        };
        keepalive.restart(Instant::now());
        keepalive
    }

    /// Schedules the next ping an interval after `from` and forgets any
    /// ping in flight.
    fn restart(&mut self, from: Instant) {
        self.pending = None;
        self.next_ping = self.every.map(|every| from + every);
    }

    /// Stops pinging while the app is behind: the client is evidently
    /// there (it filled the inbox), and its pongs sit unread behind the
    /// messages the app has not taken yet.
    fn pause(&mut self) {
        self.next_ping = None;
        self.pending = None;
    }

    /// A ping to send now; the pong deadline starts.
    fn ping(&mut self, now: Instant) -> Vec<u8> {
        self.sequence = self.sequence.wrapping_add(1);
        let payload = self.sequence.to_be_bytes();
        let due = self.within.map(|within| now + within);
        self.pending = Some((payload, now, due));
        // Without a timeout the next ping does not wait for this pong.
        self.next_ping = match due {
            Some(_) => None,
            None => self.every.map(|every| now + every),
        };
        payload.to_vec()
    }

    /// A pong came: if it answers the ping in flight, the next ping goes
    /// an interval after that ping was sent (as uvicorn: interval - rtt).
    fn pong(&mut self, data: &[u8]) {
        if let Some((payload, sent, due)) = self.pending {
            if data == payload {
                self.pending = None;
                if due.is_some() {
                    self.restart(sent);
                }
            }
        }
    }

    fn pong_due(&self) -> Option<Instant> {
        self.pending.and_then(|(_, _, due)| due)
    }
}

/// Whether `head` asks for a WebSocket (`Upgrade: websocket`).
pub(crate) fn is_upgrade(head: &RequestHead) -> bool {
    head.header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"))
}

/// tungstenite's view of the socket: bytes already read, bytes to write.
#[derive(Default)]
struct Mem {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        Ok(n)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a WebSocket exchange needs from the HTTP request.
pub(crate) struct Upgrade<'a> {
    pub(crate) head: &'a RequestHead,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) scheme: &'static str,
    pub(crate) leftover: Vec<u8>,
}

/// Serves one WebSocket connection to its end; returns the status for the
/// access log (101, or the refusal's).
pub(crate) async fn serve(
    shared: &AsgiShared,
    stream: &mut AsyncStream,
    peer: &Peer,
    upgrade: Upgrade<'_>,
) -> (u16, u64) {
    let head = upgrade.head;
    let key = head.header("sec-websocket-key").map(<[u8]>::to_vec);
    let version_ok = head.header("sec-websocket-version") == Some(b"13".as_slice());
    let (Some(key), true, "GET") = (key, version_ok, head.method.as_str()) else {
        let error = HttpError::bad_request("invalid WebSocket handshake");
        let _ = stream.write_all(&error.to_response()).await;
        return (400, 0);
    };
    let subprotocols = subprotocols(&upgrade.headers);
    let deflate = if shared.ws.per_message_deflate {
        deflate::negotiate(&upgrade.headers)
    } else {
        None
    };
    let id = shared.next_id();
    let (reply, mut replies, state) = Reply::new(&shared.queue);
    let scope = ScopeData {
        http_version: "1.1",
        method: head.method.clone(),
        scheme: upgrade.scheme,
        raw_path: head.path.clone(),
        query: head.query.clone(),
        headers: upgrade.headers,
        client: peer.remote.map(|a| (a.ip().to_string(), a.port())),
        server: peer.local.map(|a| (a.ip().to_string(), a.port())),
        websocket: Some(subprotocols),
        extensions: Default::default(),
    };
    shared.queue.push(ToLoop::Request {
        id,
        scope: Box::new(scope),
        reply,
    });

    // The handshake: the app decides.
    let mut denial = Response::new(head.version, false, false);
    let mut out = Vec::new();
    loop {
        match replies.recv().await {
            Some(FromApp::WsAccept {
                subprotocol,
                headers,
            }) => {
                let mut answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".to_vec();
                answer
                    .extend_from_slice(tungstenite::handshake::derive_accept_key(&key).as_bytes());
                answer.extend_from_slice(b"\r\n");
                if let Some((_, extension)) = &deflate {
                    answer.extend_from_slice(b"Sec-WebSocket-Extensions: ");
                    answer.extend_from_slice(extension.as_bytes());
                    answer.extend_from_slice(b"\r\n");
                }
                if let Some(protocol) = subprotocol {
                    answer.extend_from_slice(b"Sec-WebSocket-Protocol: ");
                    answer.extend_from_slice(protocol.as_bytes());
                    answer.extend_from_slice(b"\r\n");
                }
                for (name, value) in headers {
                    answer.extend_from_slice(&name);
                    answer.extend_from_slice(b": ");
                    answer.extend_from_slice(&value);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"\r\n");
                if stream.write_all(&answer).await.is_err() {
                    closed(shared, &state, id, 1006, "");
                    return (101, 0);
                }
                break;
            }
            Some(FromApp::WsClose { .. }) => {
                let error = HttpError::new(403, "the application refused the WebSocket");
                let _ = stream.write_all(&error.to_response()).await;
                closed(shared, &state, id, 1000, "");
                return (403, 0);
            }
            Some(FromApp::Start {
                status, headers, ..
            }) => denial.start(status, headers, false),
            Some(FromApp::Body { data, more }) => {
                out.clear();
                denial.body(&data, more, &mut out);
                let _ = stream.write_all(&out).await;
                state.unwritten.fetch_sub(data.len(), Ordering::AcqRel);
                if !more {
                    closed(shared, &state, id, 1000, "");
                    return (denial.status, denial.body_bytes);
                }
            }
            Some(FromApp::WantBody) => {}
            Some(FromApp::Error) | None => {
                if !denial.head_written {
                    let error = HttpError::new(500, "the application failed; see the error log");
                    let _ = stream.write_all(&error.to_response()).await;
                }
                closed(shared, &state, id, 1006, "");
                return (500, 0);
            }
            // The bridge sends no HTTP extension messages on a websocket.
            Some(
                FromApp::Abort
                | FromApp::WsSend { .. }
                | FromApp::Informational { .. }
                | FromApp::Trailers { .. }
                | FromApp::PathSend { .. },
            ) => {
                closed(shared, &state, id, 1006, "");
                return (denial.status, denial.body_bytes);
            }
        }
    }

    run(
        shared,
        stream,
        Open {
            id,
            replies,
            state,
            agreed: deflate.map(|(agreed, _)| agreed),
            leftover: upgrade.leftover,
        },
    )
    .await;
    (101, 0)
}

/// The subprotocols the client offers (`Sec-WebSocket-Protocol`).
pub(crate) fn subprotocols(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A WebSocket the app accepted, ready for messages.
pub(crate) struct Open {
    /// The connection id on the loop queue.
    pub(crate) id: u64,
    /// What the app sends.
    pub(crate) replies: mpsc::UnboundedReceiver<FromApp>,
    /// The reply's shared counters.
    pub(crate) state: Arc<ReplyShared>,
    /// permessage-deflate, if agreed.
    pub(crate) agreed: Option<deflate::Agreed>,
    /// Bytes read past the handshake.
    pub(crate) leftover: Vec<u8>,
}

/// Runs an open WebSocket on `stream` (a socket after the 101, or an
/// HTTP/2 stream after the 200 to an extended CONNECT) until it closes.
pub(crate) async fn run<S>(shared: &AsgiShared, stream: &mut S, open: Open)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Open {
        id,
        mut replies,
        state,
        agreed,
        leftover,
    } = open;
    let options = shared.ws;
    let max = usize::try_from(options.max_message_size).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        .max_message_size((max > 0).then_some(max))
        .max_frame_size((max > 0).then_some(max));
    // With permessage-deflate the client's bytes go through the frame
    // splitter first; tungstenite gets only the frames it can handle.
    let (mut inbound, mem) = match agreed {
        Some(agreed) => (
            Some(deflate::Inbound::new(leftover, agreed, max)),
            Mem::default(),
        ),
        None => (
            None,
            Mem {
                input: leftover,
                ..Mem::default()
            },
        ),
    };
    let mut ws = WebSocket::from_raw_socket(mem, Role::Server, Some(config));
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut closing: Option<Instant> = None;
    let mut shutdown = shared.shutdown.clone();
    let mut stopping = *shutdown.borrow();
    let mut keepalive = Keepalive::new(&options);
    let mut paused = false;
    loop {
        // Everything complete in what was read goes to the app, up to
        // WS_INBOX messages it has not taken yet.
        let ended = loop {
            let full = state.unread.load(Ordering::Acquire) >= WS_INBOX;
            if full != paused {
                paused = full;
                if paused {
                    keepalive.pause();
                } else {
                    keepalive.restart(Instant::now());
                }
            }
            if paused {
                break None;
            }
            let message = match ws.read() {
                Ok(Message::Text(text)) => ToLoop::WsMessage {
                    id,
                    text: Some(text.as_str().to_string()),
                    bytes: None,
                },
                Ok(Message::Binary(data)) => ToLoop::WsMessage {
                    id,
                    text: None,
                    bytes: Some(data.to_vec()),
                },
                Ok(Message::Pong(data)) => {
                    keepalive.pong(&data);
                    continue;
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_string())
                    });
                    // tungstenite queued the reply to the client's close.
                    let _ = ws.flush();
                    break Some((code, reason));
                }
                Ok(_) => continue,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // tungstenite has used up its frames: the next one.
                    match inbound.as_mut().and_then(deflate::Inbound::next) {
                        None => break None,
                        Some(deflate::Step::Pass(frame)) => {
                            ws.get_mut().input.extend_from_slice(&frame);
                            continue;
                        }
                        Some(deflate::Step::Message { text: true, data }) => ToLoop::WsMessage {
                            id,
                            text: Some(String::from_utf8_lossy(&data).into_owned()),
                            bytes: None,
                        },
                        Some(deflate::Step::Message { text: false, data }) => ToLoop::WsMessage {
                            id,
                            text: None,
                            bytes: Some(data),
                        },
                        Some(deflate::Step::Fail(code, reason)) => {
                            let _ = ws.close(Some(CloseFrame {
                                code: CloseCode::from(code),
                                reason: reason.into(),
                            }));
                            let _ = ws.flush();
                            break Some((code, reason.to_string()));
                        }
                    }
                }
                Err(WsError::Capacity(_)) => {
                    let _ = ws.close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message too big".into(),
                    }));
                    let _ = ws.flush();
                    break Some((1009, "message too big".into()));
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    break Some((1000, String::new()))
                }
                Err(error) => {
                    tracing::debug!("WebSocket protocol error: {error}");
                    let _ = ws.close(Some(CloseFrame {
                        code: CloseCode::Protocol,
                        reason: "protocol error".into(),
                    }));
                    let _ = ws.flush();
                    break Some((1002, "protocol error".into()));
                }
            };
            state.unread.fetch_add(1, Ordering::AcqRel);
            shared.queue.push(message);
        };
        let pending = std::mem::take(&mut ws.get_mut().output);
        if !pending.is_empty() && stream.write_all(&pending).await.is_err() {
            closed(shared, &state, id, 1006, "");
            return;
        }
        if let Some((code, reason)) = ended {
            closed(shared, &state, id, code, &reason);
            return;
        }
        let far = Instant::now() + Duration::from_secs(86_400);
        let close_at = closing.unwrap_or(far);
        let live = closing.is_none() && !paused;
        let ping_at = keepalive.next_ping.filter(|_| live);
        let pong_due = keepalive.pong_due().filter(|_| live);
        buf.reserve(READ_CHUNK);
        tokio::select! {
            message = replies.recv(), if closing.is_none() => {
                let outgoing = match message {
                    Some(FromApp::WsSend { text, bytes }) => {
                        let len = text.as_ref().map_or(0, String::len) + bytes.as_ref().map_or(0, Vec::len);
                        let sent = match (text, bytes, inbound.is_some()) {
                            (Some(text), _, true) => ws.send(compressed(OpData::Text, text.as_bytes())),
                            (None, Some(bytes), true) => ws.send(compressed(OpData::Binary, &bytes)),
                            (Some(text), _, false) => ws.send(Message::Text(text.into())),
                            (None, Some(bytes), false) => ws.send(Message::Binary(bytes.into())),
                            (None, None, _) => Ok(()),
                        };
                        let left = state.unwritten.fetch_sub(len, Ordering::AcqRel).saturating_sub(len);
                        if left <= WRITE_CREDIT && state.wants_writable.swap(false, Ordering::AcqRel) {
                            shared.queue.push(ToLoop::Writable { id });
                        }
                        sent.is_ok()
                    }
                    Some(FromApp::WsClose { code, reason }) => {
                        let _ = ws.close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }));
                        closing = Some(Instant::now() + CLOSE_TIMEOUT);
                        true
                    }
                    // The app ended (or failed) without closing: 1011.
                    Some(FromApp::Error | FromApp::Abort) | None => {
                        let _ = ws.close(Some(CloseFrame { code: CloseCode::Error, reason: "".into() }));
                        closing = Some(Instant::now() + CLOSE_TIMEOUT);
                        true
                    }
                    Some(_) => true,
                };
                let _ = ws.flush();
                if !outgoing {
                    closing = Some(Instant::now() + CLOSE_TIMEOUT);
                }
            }
            read = stream.read_buf(&mut buf), if !paused => match read {
                Ok(n) if n > 0 => match &mut inbound {
                    Some(inbound) => {
                        inbound.push(&buf);
                        buf.clear();
                    }
                    None => ws.get_mut().input.append(&mut buf),
                },
                _ => {
                    closed(shared, &state, id, 1006, "");
                    return;
                }
            },
            // A graceful stop closes open WebSockets with 1012 (as uvicorn),
            // and the app hears of it as its disconnect.
            _ = shutdown.changed(), if !stopping && closing.is_none() => {
                stopping = true;
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Restart, reason: "server shutting down".into() }));
                let _ = ws.flush();
                closing = Some(Instant::now() + CLOSE_TIMEOUT);
                closed(shared, &state, id, 1012, "server shutting down");
            }
            // The app took a message: reading may resume.
            _ = state.read_credit.notified(), if paused => {}
            _ = tokio::time::sleep_until(ping_at.unwrap_or(far)), if ping_at.is_some() => {
                let payload = keepalive.ping(Instant::now());
                let _ = ws.send(Message::Ping(payload.into()));
            }
            _ = tokio::time::sleep_until(pong_due.unwrap_or(far)), if pong_due.is_some() => {
                // As uvicorn: close 1011 and drop the connection at once;
                // a peer that does not pong will not finish a handshake.
                let reason = "keepalive ping timeout";
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Error, reason: reason.into() }));
                let _ = ws.flush();
                let _ = stream.write_all(&std::mem::take(&mut ws.get_mut().output)).await;
                closed(shared, &state, id, 1011, reason);
                return;
            }
            _ = tokio::time::sleep_until(close_at), if closing.is_some() => {
                closed(shared, &state, id, 1006, "");
                return;
            }
        }
    }
}

/// One message as a permessage-deflate frame (RSV1 set).
fn compressed(opcode: OpData, data: &[u8]) -> Message {
    let mut frame = Frame::message(deflate::compress(data), OpCode::Data(opcode), true);
    frame.header_mut().rsv1 = true;
    Message::Frame(frame)
}

/// The WebSocket is over: `send()` raises and the app gets its disconnect.
pub(crate) fn closed(shared: &AsgiShared, state: &ReplyShared, id: u64, code: u16, reason: &str) {
    if !state.closed.swap(true, Ordering::AcqRel) {
        shared.queue.push(ToLoop::WsClosed {
            id,
            code,
            reason: reason.to_string(),
        });
    }
}
