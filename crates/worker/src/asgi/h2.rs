//! HTTP/2 for ASGI apps through hyper (TLS with ALPN `h2`, or h2c by prior
//! knowledge): one scope per stream, fed by the same queue and reply
//! channel as HTTP/1.x. Request bodies are pulled from hyper only within
//! the read-ahead credit, so HTTP/2 flow control holds the client back;
//! response DATA is pulled by hyper as the stream window allows, which is
//! the app's write credit.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use ferricorn_python::asgi::events::{
    FromApp, Reply, ReplyShared, ToLoop, READ_AHEAD, WRITE_CREDIT,
};
use ferricorn_python::asgi::scope::{Extensions, ScopeData, TlsInfo};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use tokio::sync::{mpsc, Semaphore};

use super::AsgiShared;
use crate::exchange::Peer;
use crate::io::AsyncStream;

/// Serves an HTTP/2 connection until it ends or the worker stops.
/// `tls`: the connection's TLS parameters, for the `tls` extension.
pub(crate) async fn serve(
    shared: Arc<AsgiShared>,
    stream: AsyncStream,
    peer: Peer,
    tls: Option<TlsInfo>,
) {
    let service_shared = Arc::clone(&shared);
    let tls = tls.map(Arc::new);
    // The app calls of one connection, running or queued on the loop: h2
    // bounds open streams, but a stream the client resets is closed at
    // once while its call goes on, so without this bound a reset flood
    // (CVE-2023-44487) would queue calls without end.
    let slots = usize::try_from(shared.options.http2.max_concurrent_streams.max(1));
    let calls = Arc::new(Semaphore::new(slots.unwrap_or(usize::MAX)));
    let service = hyper::service::service_fn(move |request| {
        let calls = Arc::clone(&calls);
        handle(
            Arc::clone(&service_shared),
            peer,
            tls.clone(),
            calls,
            request,
        )
    });
    crate::h2::drive(
        &shared.options.http2,
        true,
        stream,
        service,
        shared.shutdown.clone(),
    )
    .await;
}

async fn handle(
    shared: Arc<AsgiShared>,
    peer: Peer,
    tls: Option<Arc<TlsInfo>>,
    calls: Arc<Semaphore>,
    request: Request<Incoming>,
) -> Result<Response<AppBody>, Infallible> {
    let head_only = request.method() == hyper::Method::HEAD;
    let Ok(mut response) = respond(shared, peer, tls, calls, request).await;
    // RFC 9110 9.3.2: no content in an answer to HEAD (hyper sends what
    // it is given). The app's body is still taken, so its sends return.
    response.body_mut().discard = head_only;
    Ok(response)
}

async fn respond(
    shared: Arc<AsgiShared>,
    peer: Peer,
    tls: Option<Arc<TlsInfo>>,
    calls: Arc<Semaphore>,
    request: Request<Incoming>,
) -> Result<Response<AppBody>, Infallible> {
    // A stream reset while waiting here is dropped with this future: its
    // call never reaches the app.
    let Ok(slot) = calls.acquire_owned().await else {
        // Never closed; answered as a worker that cannot take the call.
        let mut response = Response::new(AppBody::fixed(Vec::new()));
        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        return Ok(response);
    };
    let (mut parts, incoming) = request.into_parts();
    let websocket = is_websocket(&parts);
    // `:authority` becomes `host`, at the front (the ASGI spec's rule).
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(parts.headers.len() + 1);
    if !parts.headers.contains_key(hyper::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.push(("host".into(), authority.as_str().as_bytes().to_vec()));
        }
    }
    for (name, value) in &parts.headers {
        headers.push((name.as_str().to_string(), value.as_bytes().to_vec()));
    }
    let trusted = peer
        .transport_remote
        .is_none_or(|addr| shared.policy.forwarded_allow_ips.allows(addr.ip()));
    let refused = |error: ferricorn_http::HttpError| {
        let mut response = Response::new(AppBody::fixed(error.detail.into_bytes()));
        *response.status_mut() =
            hyper::StatusCode::from_u16(error.status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        response
    };
    let head_headers = headers
        .into_iter()
        .map(|(name, value)| ferricorn_http::Header { name, value })
        .collect();
    let headers = match shared.policy.filter_headers(head_headers, trusted) {
        Ok(headers) => headers,
        Err(error) => return Ok(refused(error)),
    };
    let scheme = match shared.policy.url_scheme(&headers, trusted, peer.secure) {
        Ok(scheme) => scheme,
        Err(error) => return Ok(refused(error)),
    };
    let log = Access {
        shared: Arc::clone(&shared),
        peer,
        head: crate::h2::request_head(&parts, Vec::new(), ferricorn_http::BodyKind::Empty),
        headers: headers.clone(),
        scheme,
        started: tokio::time::Instant::now(),
        started_unix: crate::clock::unix_now(),
        status: 0,
        response_headers: Vec::new(),
        body_bytes: 0,
        token: None,
    };
    let token = shared.heartbeat.request_started([
        log.head.method.as_bytes(),
        &log.head.target,
        b"HTTP/2.0",
    ]);
    let mut log = log;
    log.token = token;
    let id = shared.next_id();
    let (mut reply, mut replies, state) = Reply::new(&shared.queue);
    reply.hold(slot);
    let scope = ScopeData {
        http_version: "2",
        method: parts.method.as_str().to_string(),
        scheme,
        raw_path: parts.uri.path().as_bytes().to_vec(),
        query: parts.uri.query().unwrap_or("").as_bytes().to_vec(),
        headers,
        client: peer.remote.map(|a| (a.ip().to_string(), a.port())),
        server: peer.local.map(|a| (a.ip().to_string(), a.port())),
        websocket: websocket.then(|| super::ws::subprotocols(&log.headers)),
        extensions: Extensions {
            // HTTP/2 carries trailers on any response (a HEADERS frame
            // after the DATA); hyper's server sends no 1xx.
            trailers: !websocket,
            pathsend: !websocket,
            informational: false,
            tls: tls.as_deref().cloned(),
        },
    };
    shared.queue.push(ToLoop::Request {
        id,
        scope: Box::new(scope),
        reply,
    });
    if websocket {
        let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        return Ok(open_websocket(shared, replies, state, id, upgrade, log).await);
    }
    tokio::spawn(pump_body(
        Arc::clone(&shared),
        id,
        incoming,
        Arc::clone(&state),
    ));

    // Wait for the head (held until the first body, as on HTTP/1.1).
    let mut start = None;
    let mut trailers = false;
    let first = loop {
        match replies.recv().await {
            Some(FromApp::Start {
                status,
                headers,
                trailers: announced,
            }) => {
                start = Some((status, headers));
                trailers = announced;
            }
            Some(FromApp::Informational { .. }) => {}
            Some(FromApp::Body { data, more }) => break Some(First::Data(data, more)),
            Some(FromApp::PathSend { path }) if start.is_some() => match FileBody::open(&path) {
                Ok(file) => break Some(First::File(file)),
                Err(error) => {
                    tracing::error!("http.response.pathsend of {}: {error}", path.display());
                    break None;
                }
            },
            Some(FromApp::WantBody) => {}
            Some(FromApp::Error) | None => break None,
            Some(
                FromApp::Abort
                | FromApp::Trailers { .. }
                | FromApp::PathSend { .. }
                | FromApp::WsAccept { .. }
                | FromApp::WsSend { .. }
                | FromApp::WsClose { .. },
            ) => {
                let mut body = AppBody::fixed(Vec::new());
                body.failed = true;
                body.access = Some(log);
                return Ok(Response::new(body));
            }
        }
    };
    let mut log = log;
    let (Some((status, mut app_headers)), Some(mut first)) = (start, first) else {
        let mut body = AppBody::fixed(b"Internal Server Error\n".to_vec());
        log.status = 500;
        body.access = Some(log);
        let mut response = Response::new(body);
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    };
    if let First::File(file) = &mut first {
        file.frame(&mut app_headers);
    }
    log.status = status;
    log.response_headers = app_headers
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let link = Link {
        replies,
        state,
        shared: Arc::clone(&shared),
        id,
    };
    let mut body = AppBody::fixed(Vec::new());
    match first {
        First::Data(data, more) => {
            body.first = Some(Bytes::from(data));
            body.more = more;
            body.trailers = trailers;
            body.link = Some(link);
        }
        // The app is done with its reply channel: the file is the body.
        First::File(file) => body.file = Some(file),
    }
    body.access = Some(log);
    let mut response = Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    for (name, value) in app_headers {
        let Ok(name) = hyper::header::HeaderName::from_bytes(&name) else {
            continue;
        };
        if name == hyper::header::TRANSFER_ENCODING || name == hyper::header::CONNECTION {
            continue;
        }
        if let Ok(value) = hyper::header::HeaderValue::from_bytes(&value) {
            map.append(name, value);
        }
    }
    map.entry(hyper::header::SERVER)
        .or_insert(hyper::header::HeaderValue::from_static("ferricorn"));
    Ok(response)
}

/// Hands the stream's DATA to the loop within the read-ahead credit.
async fn pump_body(
    shared: Arc<AsgiShared>,
    id: u64,
    mut incoming: Incoming,
    state: Arc<ReplyShared>,
) {
    if incoming.is_end_stream() {
        shared.queue.push(ToLoop::Body {
            id,
            data: Vec::new(),
            more: false,
        });
        return;
    }
    loop {
        while state.unread.load(Ordering::Acquire) >= READ_AHEAD {
            state.read_credit.notified().await;
        }
        match incoming.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    state.unread.fetch_add(data.len(), Ordering::AcqRel);
                    let more = !incoming.is_end_stream();
                    shared.queue.push(ToLoop::Body {
                        id,
                        data: data.to_vec(),
                        more,
                    });
                    if !more {
                        return;
                    }
                }
            }
            None => {
                shared.queue.push(ToLoop::Body {
                    id,
                    data: Vec::new(),
                    more: false,
                });
                return;
            }
            Some(Err(error)) => {
                tracing::debug!("HTTP/2 request body failed: {error}");
                if !state.closed.swap(true, Ordering::AcqRel) {
                    shared.queue.push(ToLoop::Disconnect { id });
                }
                return;
            }
        }
    }
}

/// What the app sent after its response head.
enum First {
    /// The first `http.response.body`, and whether more follows.
    Data(Vec<u8>, bool),
    /// `http.response.pathsend`: the whole body is this file.
    File(FileBody),
}

/// A file sent as a response body (`http.response.pathsend`), read a piece
/// at a time as hyper pulls, so the stream's window bounds the memory.
struct FileBody {
    file: std::fs::File,
    offset: u64,
    /// Bytes still to send.
    left: u64,
}

impl FileBody {
    /// Opens `path`, a regular file.
    fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let (file, left) = super::pathsend::open(path)?;
        Ok(Self {
            file,
            offset: 0,
            left,
        })
    }

    /// Fits the file to the app's head: its `Content-Length` caps what is
    /// sent (as on HTTP/1.x), or the file's length is added as one.
    fn frame(&mut self, headers: &mut RawHeaders) {
        let given = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
            .map(|(_, value)| {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
            });
        match given {
            Some(Some(length)) => self.left = self.left.min(length),
            // hyper refuses an unparsable length; the file goes as framed.
            Some(None) => {}
            None => headers.push((
                b"content-length".to_vec(),
                self.left.to_string().into_bytes(),
            )),
        }
    }

    /// The next piece; empty once the file is sent. A file that shrank
    /// under us fails the stream rather than sending short.
    fn next(&mut self) -> std::io::Result<Vec<u8>> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(super::pathsend::FILE_CHUNK);
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; want];
        let n = super::pathsend::read_at(&self.file, self.offset, &mut buf)?;
        buf.truncate(n);
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(buf)
    }
}

/// A response body pulled from the app's reply channel (or a file).
pub(crate) struct AppBody {
    first: Option<Bytes>,
    /// The file of an `http.response.pathsend`.
    file: Option<FileBody>,
    /// Take the app's body but send none of it (HEAD).
    discard: bool,
    more: bool,
    /// `http.response.trailers` announced and not all received yet.
    trailers: bool,
    /// Trailer fields received with `more_trailers`.
    trailer_map: hyper::HeaderMap,
    link: Option<Link>,
    failed: bool,
    access: Option<Access>,
}

/// What the access log line of a stream needs, written when its body ends.
struct Access {
    shared: Arc<AsgiShared>,
    peer: Peer,
    head: ferricorn_http::RequestHead,
    headers: Vec<(String, Vec<u8>)>,
    scheme: &'static str,
    started: tokio::time::Instant,
    started_unix: u64,
    status: u16,
    response_headers: Vec<(String, String)>,
    body_bytes: u64,
    /// The heartbeat's `--request-timeout` token.
    token: Option<usize>,
}

/// The app end of a streamed body.
struct Link {
    replies: mpsc::UnboundedReceiver<FromApp>,
    state: Arc<ReplyShared>,
    shared: Arc<AsgiShared>,
    id: u64,
}

impl Link {
    /// `n` more bytes went to hyper: the app may go on once below credit.
    fn credit(&self, n: usize) {
        let left = self
            .state
            .unwritten
            .fetch_sub(n, Ordering::AcqRel)
            .saturating_sub(n);
        if left <= WRITE_CREDIT && self.state.wants_writable.swap(false, Ordering::AcqRel) {
            self.shared.queue.push(ToLoop::Writable { id: self.id });
        }
    }
}

impl AppBody {
    fn fixed(data: Vec<u8>) -> Self {
        Self {
            first: Some(Bytes::from(data)),
            file: None,
            discard: false,
            more: false,
            trailers: false,
            trailer_map: hyper::HeaderMap::new(),
            link: None,
            failed: false,
            access: None,
        }
    }
}

fn aborted() -> std::io::Error {
    std::io::Error::other("the application failed mid-response")
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(data) = self.first.take() {
            if let Some(link) = &self.link {
                link.credit(data.len());
            }
            if let Some(access) = self.access.as_mut() {
                access.body_bytes += data.len() as u64;
            }
            if !data.is_empty() && !self.discard {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
        if self.failed {
            return Poll::Ready(Some(Err(aborted())));
        }
        if self.discard && self.file.take().is_some() {
            return Poll::Ready(None);
        }
        if let Some(file) = self.file.as_mut() {
            return match file.next() {
                Ok(data) if data.is_empty() => Poll::Ready(None),
                Ok(data) => {
                    if let Some(access) = self.access.as_mut() {
                        access.body_bytes += data.len() as u64;
                    }
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
                }
                Err(error) => {
                    tracing::debug!("http.response.pathsend cut short: {error}");
                    self.file = None;
                    self.failed = true;
                    Poll::Ready(Some(Err(error)))
                }
            };
        }
        loop {
            if !self.more && !self.trailers {
                return Poll::Ready(None);
            }
            let Some(link) = self.link.as_mut() else {
                return Poll::Ready(None);
            };
            match link.replies.poll_recv(cx) {
                Poll::Ready(Some(FromApp::Body { data, more })) => {
                    link.credit(data.len());
                    self.more = more;
                    if let Some(access) = self.access.as_mut() {
                        access.body_bytes += data.len() as u64;
                    }
                    if !data.is_empty() && !self.discard {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))));
                    }
                }
                Poll::Ready(Some(FromApp::Trailers { headers, more })) if !self.more => {
                    for (name, value) in headers {
                        let name = hyper::header::HeaderName::from_bytes(&name);
                        let value = hyper::header::HeaderValue::from_bytes(&value);
                        if let (Ok(name), Ok(value)) = (name, value) {
                            self.trailer_map.append(name, value);
                        }
                    }
                    if !more {
                        self.trailers = false;
                        let map = std::mem::take(&mut self.trailer_map);
                        return Poll::Ready(Some(Ok(Frame::trailers(map))));
                    }
                }
                Poll::Ready(Some(
                    FromApp::Start { .. } | FromApp::WantBody | FromApp::Informational { .. },
                )) => {}
                Poll::Ready(
                    Some(
                        FromApp::Error
                        | FromApp::Abort
                        | FromApp::Trailers { .. }
                        | FromApp::PathSend { .. }
                        | FromApp::WsAccept { .. }
                        | FromApp::WsSend { .. }
                        | FromApp::WsClose { .. },
                    )
                    | None,
                ) => {
                    self.failed = true;
                    return Poll::Ready(Some(Err(aborted())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for AppBody {
    fn drop(&mut self) {
        if let Some(access) = &self.access {
            access.shared.heartbeat.request_finished(access.token);
            super::Finished {
                peer: &access.peer,
                head: &access.head,
                headers: &access.headers,
                status: access.status,
                response_headers: &access.response_headers,
                body_bytes: access.body_bytes,
                scheme: access.scheme,
                started: access.started,
                started_unix: access.started_unix,
            }
            .log(&access.shared);
        }
        // Dropped before the end: the stream was reset or the client left.
        if let Some(link) = &self.link {
            let unfinished = self.more || self.trailers;
            if unfinished && !link.state.closed.swap(true, Ordering::AcqRel) {
                link.shared.queue.push(ToLoop::Disconnect { id: link.id });
            }
        }
    }
}

/// Response headers as the app gave them.
type RawHeaders = Vec<(Vec<u8>, Vec<u8>)>;

/// An RFC 8441 extended CONNECT asking for a WebSocket.
fn is_websocket(parts: &hyper::http::request::Parts) -> bool {
    parts.method == hyper::Method::CONNECT
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The app's answer to a WebSocket over HTTP/2: `websocket.accept` is a
/// 200 and the stream then carries frames, served as on HTTP/1.1 by
/// [`super::ws::run`]; a close before accept is a 403, the denial
/// extension any response, a failure a 500. The access log line is
/// written when the WebSocket ends.
async fn open_websocket(
    shared: Arc<AsgiShared>,
    mut replies: mpsc::UnboundedReceiver<FromApp>,
    state: Arc<ReplyShared>,
    id: u64,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    mut log: Access,
) -> Response<AppBody> {
    let agreed = if shared.ws.per_message_deflate {
        super::deflate::negotiate(&log.headers)
    } else {
        None
    };
    let mut denial: Option<(u16, RawHeaders)> = None;
    let mut denial_body = Vec::new();
    let answer =
        |status: u16, headers: Vec<(Vec<u8>, Vec<u8>)>, body: Vec<u8>, log: Option<Access>| {
            let size = body.len() as u64;
            let mut body = AppBody::fixed(body);
            body.access = log.map(|mut log| {
                log.status = status;
                log.body_bytes = size;
                log
            });
            let mut response = Response::new(body);
            *response.status_mut() = hyper::StatusCode::from_u16(status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    hyper::header::HeaderName::from_bytes(&name),
                    hyper::header::HeaderValue::from_bytes(&value),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            response
        };
    loop {
        match replies.recv().await {
            Some(FromApp::WsAccept {
                subprotocol,
                headers,
            }) => {
                let Some(upgrade) = upgrade else {
                    super::ws::closed(&shared, &state, id, 1006, "");
                    return answer(500, Vec::new(), Vec::new(), Some(log));
                };
                let mut extra = Vec::new();
                if let Some((_, extension)) = &agreed {
                    extra.push((
                        b"sec-websocket-extensions".to_vec(),
                        extension.clone().into_bytes(),
                    ));
                }
                if let Some(protocol) = subprotocol {
                    extra.push((b"sec-websocket-protocol".to_vec(), protocol.into_bytes()));
                }
                extra.extend(headers);
                log.status = 200;
                let response = answer(200, extra, Vec::new(), None);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    // Logged when dropped, at the WebSocket's end.
                    let mut access = AppBody::fixed(Vec::new());
                    access.access = Some(log);
                    match upgrade.await {
                        Ok(upgraded) => {
                            let mut io = hyper_util::rt::TokioIo::new(upgraded);
                            let open = super::ws::Open {
                                id,
                                replies,
                                state,
                                agreed: agreed.map(|(agreed, _)| agreed),
                                leftover: Vec::new(),
                            };
                            super::ws::run(&shared, &mut io, open).await;
                        }
                        Err(_) => super::ws::closed(&shared, &state, id, 1006, ""),
                    }
                    drop(access);
                });
                return response;
            }
            Some(FromApp::WsClose { .. }) => {
                super::ws::closed(&shared, &state, id, 1000, "");
                return answer(403, Vec::new(), Vec::new(), Some(log));
            }
            Some(FromApp::Start {
                status, headers, ..
            }) => denial = Some((status, headers)),
            Some(FromApp::Body { data, more }) => {
                state.unwritten.fetch_sub(data.len(), Ordering::AcqRel);
                denial_body.extend_from_slice(&data);
                if !more {
                    super::ws::closed(&shared, &state, id, 1000, "");
                    let (status, headers) = denial.take().unwrap_or((500, Vec::new()));
                    return answer(status, headers, denial_body, Some(log));
                }
            }
            Some(FromApp::WantBody) => {}
            Some(
                FromApp::Error
                | FromApp::Abort
                | FromApp::WsSend { .. }
                | FromApp::Informational { .. }
                | FromApp::Trailers { .. }
                | FromApp::PathSend { .. },
            )
            | None => {
                super::ws::closed(&shared, &state, id, 1006, "");
                return answer(500, Vec::new(), Vec::new(), Some(log));
            }
        }
    }
}
