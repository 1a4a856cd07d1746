//! One HTTP/1.x exchange of an ASGI worker, on the I/O thread; the
//! connection around it is [`crate::http1`]'s. The app runs on the asyncio
//! loop and talks in ASGI messages, not in framed bytes from a blocking
//! thread, so this is not `threaded.rs`'s relay; it shares the HTTP codec's
//! body decoder and the request policy.
//!
//! While the app runs, the socket is read for the body (at most
//! [`READ_AHEAD`] bytes ahead of the app) and, once the body is in, for EOF,
//! which is the app's `http.disconnect`; bytes of a pipelined next request
//! are kept for it, up to a bound.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferricorn_http::{BodyDecoder, HttpError, Version};
use ferricorn_python::asgi::events::{
    FromApp, Reply, ReplyShared, ToLoop, READ_AHEAD, WRITE_CREDIT,
};
use ferricorn_python::asgi::scope::{Extensions, ScopeData, TlsInfo};
use tokio::time::Instant;

use super::response::Response;
use super::AsgiShared;
use crate::clock::unix_now;
use crate::exchange::Peer;
use crate::head::ReadyHead;
use crate::http1::{Front, Http1Service};
use crate::io::AsyncStream;

/// Largest piece read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;
/// Initial room for one response's framed bytes.
const OUT_CAPACITY: usize = 1000;
/// Room kept for reads that only watch for EOF (or a pipelined request).
const EOF_CHUNK: usize = 4096;
/// Pipelined bytes kept while a response is in progress.
const PIPELINE_LIMIT: usize = 64 * 1024;

impl Http1Service for AsgiShared {
    /// The TLS parameters, for the scope's `tls` extension.
    type Conn = Option<TlsInfo>;

    const PREREAD: u64 = 0;

    fn front(&self) -> Front<'_> {
        Front {
            options: &self.options,
            idle: &self.idle,
            stopping: &self.shutdown,
            tls: self.tls.as_ref(),
            access_format: self.access_format.as_ref(),
        }
    }

    fn serve_h2(
        self: Arc<Self>,
        stream: AsyncStream,
        peer: Peer,
    ) -> impl Future<Output = ()> + Send {
        let tls = super::tls_info::of(&stream);
        super::h2::serve(self, stream, peer, tls)
    }

    fn open(&self, stream: &AsyncStream) -> Option<TlsInfo> {
        super::tls_info::of(stream)
    }

    async fn exchange(
        self: &Arc<Self>,
        conn: &mut Option<TlsInfo>,
        stream: &mut AsyncStream,
        peer: Peer,
        ready: ReadyHead,
        spare: Vec<u8>,
        keep_alive: bool,
    ) -> Option<Vec<u8>> {
        exchange(self, stream, &peer, conn.as_ref(), ready, spare, keep_alive).await
    }

    fn abandon(self: &Arc<Self>, _conn: &mut Option<TlsInfo>) {}
}

/// The request body as it comes off the socket.
struct Body {
    decoder: BodyDecoder,
    /// Raw bytes: undecoded body, then whatever follows it.
    raw: Vec<u8>,
}

impl Body {
    /// Decodes what is buffered; the body bytes found, or the framing error.
    fn decode(&mut self) -> Result<Vec<u8>, HttpError> {
        if self.raw.is_empty() || self.decoder.is_done() {
            return Ok(Vec::new());
        }
        let decoded = self.decoder.decode_in_place(&mut self.raw)?;
        let rest = self.raw.split_off(decoded.consumed);
        self.raw.truncate(decoded.body);
        Ok(std::mem::replace(&mut self.raw, rest))
    }
}

/// How the app's side of an exchange ended.
enum Ending {
    /// The response is complete.
    Complete,
    /// The connection must close (app failure, short body, client gone).
    Close,
}

/// Runs one request through the app. Returns the bytes read past the
/// body when the connection can carry another request. `spare` is a
/// buffer to reuse for them when nothing followed the head.
async fn exchange(
    shared: &AsgiShared,
    stream: &mut AsyncStream,
    peer: &Peer,
    tls: Option<&TlsInfo>,
    ready: ReadyHead,
    mut spare: Vec<u8>,
    keep_alive: bool,
) -> Option<Vec<u8>> {
    let ReadyHead { head, mut pending } = ready;
    if pending.is_empty() {
        spare.clear();
        pending = spare;
    }
    let started = Instant::now();
    let started_unix = unix_now();
    let trusted = peer
        .transport_remote
        .is_none_or(|addr| shared.policy.forwarded_allow_ips.allows(addr.ip()));
    let mut headers = match shared.policy.filter_headers(head.headers.clone(), trusted) {
        Ok(headers) => headers,
        Err(error) => {
            let _ = stream.write_all(&error.to_response()).await;
            return None;
        }
    };
    let scheme = match shared.policy.url_scheme(&headers, trusted, peer.secure) {
        Ok(scheme) => scheme,
        Err(error) => {
            let _ = stream.write_all(&error.to_response()).await;
            return None;
        }
    };
    if super::ws::is_upgrade(&head) {
        let upgrade = super::ws::Upgrade {
            head: &head,
            headers: headers.clone(),
            scheme,
            leftover: pending,
        };
        let (status, bytes) = super::ws::serve(shared, stream, peer, upgrade).await;
        super::Finished {
            peer,
            head: &head,
            headers: &headers,
            status,
            response_headers: &[],
            body_bytes: bytes,
            scheme,
            started,
            started_unix,
        }
        .log(shared);
        return None;
    }
    let id = shared.next_id();
    let (reply, mut replies, state) = Reply::new(&shared.queue);
    let trailers = head.version == Version::HTTP_11 && te_trailers(&headers);
    // Only the access log reads the request's headers after this.
    let scope_headers = if shared.access_format.is_some() {
        headers.clone()
    } else {
        std::mem::take(&mut headers)
    };
    let scope = ScopeData {
        http_version: if head.version == Version::HTTP_10 {
            "1.0"
        } else {
            "1.1"
        },
        method: head.method.clone(),
        scheme,
        raw_path: head.path.clone(),
        query: head.query.clone(),
        headers: scope_headers,
        client: peer.remote.map(|a| (a.ip().to_string(), a.port())),
        server: peer.local.map(|a| (a.ip().to_string(), a.port())),
        websocket: None,
        extensions: Extensions {
            trailers,
            pathsend: true,
            informational: head.version == Version::HTTP_11,
            tls: tls.cloned(),
        },
    };
    let token = shared.heartbeat.request_started([
        head.method.as_bytes(),
        &head.target,
        head.version.as_str().as_bytes(),
    ]);
    shared.queue.push(ToLoop::Request {
        id,
        scope: Box::new(scope),
        reply,
    });

    let mut body = Body {
        decoder: BodyDecoder::new(&head.body),
        raw: pending,
    };
    let mut body_sent = false;
    let mut want_body = !head.expect_continue;
    let mut client_gone = false;
    let mut response = Response::new(
        head.version,
        head.method == "HEAD",
        keep_alive && head.keep_alive,
    );
    // Under 1 KiB: glibc serves larger requests from its large bins, and
    // each such malloc first consolidates the fast bins (a per-request
    // cost in the profile); a head with more fields just grows it.
    let mut out = Vec::with_capacity(OUT_CAPACITY);
    let io_timeout = shared.options.io_timeout;
    let body_timeout = shared.options.body_timeout;
    // A body read that makes no progress for `--body-timeout` is a 408, as
    // on the thread classes; the clock runs only while the app wants body.
    let mut body_deadline = Instant::now() + body_timeout;
    // The request body failed and its 4xx went out in place of the app's
    // response: whatever the app sends afterwards is dropped.
    let mut refused = false;

    let gone = |state: &ReplyShared, client_gone: &mut bool| {
        if !*client_gone {
            *client_gone = true;
            state.closed.store(true, Ordering::Release);
            shared.queue.push(ToLoop::Disconnect { id });
        }
    };

    let ending = loop {
        // Hand over what is buffered, within the read-ahead credit.
        if want_body
            && !body_sent
            && !client_gone
            && state.unread.load(Ordering::Acquire) < READ_AHEAD
        {
            match body.decode() {
                Ok(data) => {
                    let done = body.decoder.is_done();
                    if !data.is_empty() || done {
                        state.unread.fetch_add(data.len(), Ordering::AcqRel);
                        shared.queue.push(ToLoop::Body {
                            id,
                            data,
                            more: !done,
                        });
                        body_sent = done;
                        continue;
                    }
                }
                Err(error) => {
                    refused =
                        refuse_body(stream, peer, &mut response, &error, client_gone, io_timeout)
                            .await;
                    gone(&state, &mut client_gone);
                }
            }
        }
        let credit = state.unread.load(Ordering::Acquire) < READ_AHEAD;
        let read_body = want_body && !body_sent && !client_gone && credit;
        let watch_eof = body_sent && !client_gone && body.raw.len() < PIPELINE_LIMIT;
        let wait_credit = want_body && !body_sent && !client_gone && !credit;
        if read_body {
            body.raw.reserve(READ_CHUNK);
        } else if watch_eof {
            body.raw.reserve(EOF_CHUNK);
        }
        tokio::select! {
            message = replies.recv() => {
                let Some(message) = message else { break Ending::Close };
                match message {
                    FromApp::Start { status, headers, trailers } => {
                        if !refused {
                            response.start(status, headers, trailers);
                        }
                    }
                    FromApp::Informational { status, headers } => {
                        out.clear();
                        response.informational(status, &headers, &mut out);
                        if !client_gone && !refused && !out.is_empty() {
                            let write = tokio::time::timeout(io_timeout, stream.write_all(&out)).await;
                            if !matches!(write, Ok(Ok(()))) {
                                gone(&state, &mut client_gone);
                            }
                        }
                    }
                    FromApp::Trailers { headers, more } => {
                        out.clear();
                        response.trailers(headers, more, &mut out);
                        if !client_gone && !refused && !out.is_empty() {
                            let write = tokio::time::timeout(io_timeout, stream.write_all(&out)).await;
                            if !matches!(write, Ok(Ok(()))) {
                                gone(&state, &mut client_gone);
                            }
                        }
                        if !more {
                            break if client_gone { Ending::Close } else { Ending::Complete };
                        }
                    }
                    FromApp::PathSend { path } => {
                        if refused || client_gone {
                            break Ending::Close;
                        }
                        break send_path(stream, &mut response, &path, io_timeout).await;
                    }
                    FromApp::Body { data, more } => {
                        out.clear();
                        if !refused {
                            response.body(&data, more, &mut out);
                        }
                        if !client_gone && !out.is_empty() {
                            let write = tokio::time::timeout(io_timeout, stream.write_all(&out)).await;
                            if !matches!(write, Ok(Ok(()))) {
                                gone(&state, &mut client_gone);
                            }
                        }
                        let left = state
                            .unwritten
                            .fetch_sub(data.len(), Ordering::AcqRel)
                            .saturating_sub(data.len());
                        if left <= WRITE_CREDIT && state.wants_writable.swap(false, Ordering::AcqRel) {
                            shared.queue.push(ToLoop::Writable { id });
                        }
                        if !more && !response.awaits_trailers() {
                            break if client_gone { Ending::Close } else { Ending::Complete };
                        }
                    }
                    FromApp::WantBody => {
                        if !want_body {
                            want_body = true;
                            body_deadline = Instant::now() + body_timeout;
                            if !body.decoder.is_done() && !client_gone {
                                let cont = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                                if cont.is_err() {
                                    gone(&state, &mut client_gone);
                                }
                            }
                        }
                    }
                    FromApp::Error => {
                        if !response.head_written && !client_gone && !refused {
                            let error = HttpError::new(500, "the application failed; see the error log");
                            let _ = stream.write_all(&error.to_response()).await;
                            response.status = 500;
                        }
                        break Ending::Close;
                    }
                    // WebSocket messages never come on an http scope (the
                    // bridge refuses them there).
                    FromApp::Abort
                    | FromApp::WsAccept { .. }
                    | FromApp::WsSend { .. }
                    | FromApp::WsClose { .. } => break Ending::Close,
                }
            }
            read = stream.read_buf(&mut body.raw), if read_body || watch_eof => match read {
                Ok(n) if n > 0 => body_deadline = Instant::now() + body_timeout,
                Ok(_) => {
                    if read_body {
                        if let Err(error) = body.decoder.end_of_input() {
                            // Half-closed with the body short: the client can
                            // still read its 400.
                            refused = refuse_body(stream, peer, &mut response, &error, client_gone, io_timeout).await;
                        }
                    }
                    gone(&state, &mut client_gone);
                }
                Err(_) => gone(&state, &mut client_gone),
            },
            _ = tokio::time::sleep_until(body_deadline), if read_body && !body_timeout.is_zero() => {
                let error = crate::body::timeout_error();
                refused = refuse_body(stream, peer, &mut response, &error, client_gone, io_timeout).await;
                gone(&state, &mut client_gone);
            }
            _ = state.read_credit.notified(), if wait_credit => {
                body_deadline = Instant::now() + body_timeout;
            }
        }
    };
    shared.heartbeat.request_finished(token);
    super::Finished {
        peer,
        head: &head,
        headers: &headers,
        status: response.status,
        response_headers: &response.headers,
        body_bytes: response.body_bytes,
        scheme,
        started,
        started_unix,
    }
    .log(shared);

    let complete = matches!(ending, Ending::Complete) && response.keep_alive();
    if !complete || client_gone || body.decoder.error().is_some() {
        return None;
    }
    if !body.decoder.is_done() {
        if !want_body {
            // The client may still wait for a 100 Continue that never came.
            return None;
        }
        let mut drained = 0u64;
        while !body.decoder.is_done() {
            let data = body.decode().ok()?;
            drained += data.len() as u64;
            if drained > crate::body::DRAIN_LIMIT {
                return None;
            }
            if body.decoder.is_done() {
                break;
            }
            body.raw.reserve(READ_CHUNK);
            match tokio::time::timeout(io_timeout, stream.read_buf(&mut body.raw)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }
    Some(body.raw)
}

/// Answers a request whose body failed (bad framing, cut short, stalled)
/// with the body's 4xx when the app has not started its response, as the
/// thread classes do; logs gunicorn's `Invalid request` warning. Returns
/// whether the answer went out in place of the app's response.
async fn refuse_body(
    stream: &mut AsyncStream,
    peer: &Peer,
    response: &mut Response,
    error: &HttpError,
    client_gone: bool,
    io_timeout: std::time::Duration,
) -> bool {
    crate::head::warn_invalid(peer, error);
    if response.head_written || client_gone {
        return false;
    }
    let answer = error.to_response();
    let _ = tokio::time::timeout(io_timeout, stream.write_all(&answer)).await;
    response.status = error.status;
    true
}

/// Whether the request's `TE` lists `trailers` (the client takes them).
fn te_trailers(headers: &[(String, Vec<u8>)]) -> bool {
    headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("te")
            && value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// Answers `http.response.pathsend`: the held head with the file's length
/// (unless the app gave one), then the file. A file that cannot be opened
/// is a 500 (logged) while the head is still unsent.
async fn send_path(
    stream: &mut AsyncStream,
    response: &mut Response,
    path: &std::path::Path,
    io_timeout: std::time::Duration,
) -> Ending {
    let (file, len) = match super::pathsend::open(path) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!("http.response.pathsend of {}: {error}", path.display());
            if !response.head_written {
                let error = HttpError::new(500, "the application failed; see the error log");
                let _ =
                    tokio::time::timeout(io_timeout, stream.write_all(&error.to_response())).await;
                response.status = 500;
            }
            return Ending::Close;
        }
    };
    let mut out = Vec::with_capacity(512);
    let count = response.file_head(len, &mut out);
    if !matches!(
        tokio::time::timeout(io_timeout, stream.write_all(&out)).await,
        Ok(Ok(()))
    ) {
        return Ending::Close;
    }
    match super::pathsend::send(stream, &file, count, io_timeout).await {
        Ok(()) => Ending::Complete,
        Err(error) => {
            tracing::debug!(
                "http.response.pathsend of {} cut short: {error}",
                path.display()
            );
            Ending::Close
        }
    }
}
