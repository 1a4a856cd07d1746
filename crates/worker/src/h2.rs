//! HTTP/2 through hyper's server, feeding the same dispatch path as
//! HTTP/1.1: each stream becomes an [`Exchange`] run on the app pool, with
//! the body streamed in and the response streamed out through channels.
//!
//! HTTP/2 framing is hyper's; what reaches the app obeys the same header
//! policy as HTTP/1.1, and `SERVER_PROTOCOL` is `HTTP/2`.

use std::convert::Infallible;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use ferricorn_http::{BodyKind, Header, HttpError, RequestHead, Version};
use ferricorn_python::response::ResponseSink;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::channel_io::{BodyChunk, ChannelBody};
use crate::exchange::{self, BodyError, Exchange, Peer};
use crate::io::AsyncStream;
use crate::threaded::Shared;

/// HTTP/2 protocol limits from the configuration.
#[derive(Debug, Clone)]
pub struct Http2Options {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// Initial stream window.
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: u32,
}

/// The HTTP/2 client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves an HTTP/2 connection until it ends or the worker stops.
pub async fn serve(shared: Arc<Shared>, stream: AsyncStream, peer: Peer) {
    let limits = &shared.options.http2;
    let service_shared = Arc::clone(&shared);
    // Streams whose app call has not finished, at most as many as may be
    // open at once. A client that resets each stream right after opening
    // it (rapid reset, CVE-2023-44487) frees its stream slot at once, but
    // not the app call: without this bound it could queue app calls
    // without limit. A stream reset while waiting here costs no call.
    let calls = Arc::new(Semaphore::new(
        usize::try_from(limits.max_concurrent_streams.max(1)).unwrap_or(usize::MAX),
    ));
    let service = hyper::service::service_fn(move |request| {
        handle(
            Arc::clone(&service_shared),
            Arc::clone(&calls),
            peer,
            request,
        )
    });
    drive(limits, false, stream, service, shared.shutdown.clone()).await;
}

/// Runs hyper's HTTP/2 server on `stream` with `service` and the
/// configured limits, until the connection ends or `shutdown` changes;
/// then sends GOAWAY and lets in-flight streams finish. Shared by the WSGI
/// and ASGI drivers. `connect_protocol` advertises RFC 8441's extended
/// CONNECT (WebSockets over HTTP/2; ASGI only).
pub(crate) async fn drive<S, B>(
    limits: &Http2Options,
    connect_protocol: bool,
    stream: AsyncStream,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_stream_window_size(limits.initial_window_size)
        .max_frame_size(limits.max_frame_size)
        .max_header_list_size(limits.max_header_list_size);
    if connect_protocol {
        builder.enable_connect_protocol();
    }
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!("HTTP/2 connection ended: {error}");
            }
            return;
        }
        _ = shutdown.changed() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

async fn handle(
    shared: Arc<Shared>,
    calls: Arc<Semaphore>,
    peer: Peer,
    request: Request<Incoming>,
) -> Result<Response<OutBody>, Infallible> {
    let head_only = request.method() == hyper::Method::HEAD;
    let Ok(mut response) = respond(shared, calls, peer, request).await;
    // RFC 9110 9.3.2: no content in an answer to HEAD (hyper sends what
    // it is given). The app's body is still drained, so its iterable ends.
    response.body_mut().discard = head_only;
    Ok(response)
}

async fn respond(
    shared: Arc<Shared>,
    calls: Arc<Semaphore>,
    peer: Peer,
    request: Request<Incoming>,
) -> Result<Response<OutBody>, Infallible> {
    let Ok(call) = calls.acquire_owned().await else {
        return Ok(plain_response(503, "the connection is closing\n"));
    };
    let (parts, incoming) = request.into_parts();
    let mut headers: Vec<Header> = parts
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_string(),
            value: value.as_bytes().to_vec(),
        })
        .collect();
    if !parts.headers.contains_key(hyper::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.push(Header {
                name: "host".into(),
                value: authority.as_str().as_bytes().to_vec(),
            });
        }
    }
    let has_body = !incoming.is_end_stream();
    let body = if has_body {
        BodyKind::Chunked
    } else {
        BodyKind::Empty
    };
    let head = request_head(&parts, headers, body);

    let body_error = BodyError::default();
    let body_rx = has_body.then(|| {
        let (body_tx, body_rx) = mpsc::channel::<BodyChunk>(4);
        tokio::spawn(pump_body(incoming, body_tx, Arc::clone(&body_error)));
        body_rx
    });
    let (head_tx, head_rx) = oneshot::channel();
    let (data_tx, data_rx) = mpsc::channel::<Bytes>(16);
    let head_slot = Arc::new(Mutex::new(Some(head_tx)));
    let sink = H2Sink {
        head: Arc::clone(&head_slot),
        data: Some(data_tx.clone()),
    };
    let request = Exchange {
        peer,
        head,
        body: Box::new(ChannelBody::new(body_rx, None)),
        sink: Box::new(sink),
        body_error,
    };
    let ctx = Arc::clone(&shared.ctx);
    shared.submit(Box::new(move || {
        let _call = call;
        if stream_reset(&head_slot) {
            // The client reset the stream while the call waited for a
            // thread: nobody would read the answer.
            return;
        }
        let mut reject = |error: &HttpError| {
            let body = format!("{}: {}\n", error.reason, error.detail);
            let head = vec![("content-type".to_string(), "text/plain".to_string())];
            if send_head(&head_slot, error.status, head) {
                let _ = data_tx.blocking_send(Bytes::from(body));
            }
        };
        exchange::serve_to_end(&ctx, request, &mut reject);
    }));

    let Ok((status, headers)) = head_rx.await else {
        return Ok(plain_response(500, "the application sent no response\n"));
    };
    let mut response = Response::new(OutBody::new(data_rx));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_bytes(&latin1(&value)),
        ) {
            map.append(name, value);
        }
    }
    // The app's Server wins; hyper likewise adds Date only when absent.
    map.entry(hyper::header::SERVER)
        .or_insert(hyper::header::HeaderValue::from_static("ferricorn"));
    Ok(response)
}

/// A header value as its latin-1 bytes (PEP 3333), as on HTTP/1.1.
fn latin1(value: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len());
    ferricorn_http::response::push_latin1(&mut bytes, value);
    bytes
}

/// An HTTP/2 request as the HTTP/1.x code sees it: the request line from
/// the pseudo-headers, with `headers` and `body` as given.
pub(crate) fn request_head(
    parts: &hyper::http::request::Parts,
    headers: Vec<Header>,
    body: BodyKind,
) -> RequestHead {
    RequestHead {
        method: parts.method.as_str().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or(b"/".to_vec(), |pq| pq.as_str().as_bytes().to_vec()),
        path: parts.uri.path().as_bytes().to_vec(),
        query: parts.uri.query().unwrap_or("").as_bytes().to_vec(),
        version: Version { major: 2, minor: 0 },
        headers,
        body,
        keep_alive: true,
        expect_continue: false,
    }
}

/// Feeds the stream's DATA frames to the app. A stream error (a
/// content-length mismatch, a reset) is recorded as the exchange's body
/// error, so a response not yet started becomes a 400, as on HTTP/1.1.
async fn pump_body(
    mut incoming: Incoming,
    body_tx: mpsc::Sender<BodyChunk>,
    body_error: BodyError,
) {
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if body_tx.send(Ok(data.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                let _ = body_error.set(HttpError::bad_request(format!(
                    "invalid request body: {error}"
                )));
                let _ = body_tx.send(Err(error.to_string())).await;
                return;
            }
        }
    }
}

fn plain_response(status: u16, text: &'static str) -> Response<OutBody> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Bytes::from_static(text.as_bytes()));
    let mut response = Response::new(OutBody::new(rx));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

type HeadSlot = Arc<Mutex<Option<oneshot::Sender<(u16, Vec<(String, String)>)>>>>;

/// Whether the stream's response can no longer be delivered (hyper
/// dropped the stream's service future: the client reset it).
fn stream_reset(slot: &HeadSlot) -> bool {
    slot.lock()
        .ok()
        .is_some_and(|s| s.as_ref().is_some_and(oneshot::Sender::is_closed))
}

/// Sends the response head once; false if it was already sent.
fn send_head(slot: &HeadSlot, status: u16, headers: Vec<(String, String)>) -> bool {
    let sender = slot.lock().ok().and_then(|mut s| s.take());
    match sender {
        Some(sender) => sender.send((status, headers)).is_ok(),
        None => false,
    }
}

/// The response side of one HTTP/2 stream.
struct H2Sink {
    head: HeadSlot,
    data: Option<mpsc::Sender<Bytes>>,
}

impl H2Sink {
    fn send(&self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match &self.data {
            Some(tx) => tx
                .blocking_send(Bytes::copy_from_slice(data))
                .map_err(|_| io::ErrorKind::BrokenPipe.into()),
            None => Ok(()),
        }
    }
}

impl ResponseSink for H2Sink {
    fn send_head(
        &mut self,
        status: u16,
        _reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        complete: bool,
    ) -> io::Result<()> {
        let mut headers = headers.to_vec();
        let has_length = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        if complete && !has_length && status != 204 && status != 304 {
            headers.push(("content-length".into(), body.len().to_string()));
        }
        if !send_head(&self.head, status, headers) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.send(body)
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.send(data)
    }

    fn send_file(&mut self, _fd: RawFd, _offset: u64, _count: u64) -> io::Result<bool> {
        Ok(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.data = None;
        Ok(())
    }
}

/// A response body fed by the app thread.
pub struct OutBody {
    rx: Option<mpsc::Receiver<Bytes>>,
    /// Read the app's body but send none of it (HEAD).
    discard: bool,
}

impl OutBody {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx: Some(rx),
            discard: false,
        }
    }
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let discard = self.discard;
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(_)) if discard => {}
                Poll::Ready(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Poll::Ready(None) => {
                    self.rx = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads until the bytes either start the HTTP/2 preface (true) or cannot
/// (false); `None` if the client went away first.
pub(crate) async fn sniff_preface(
    stream: &mut AsyncStream,
    buf: &mut Vec<u8>,
    limit: std::time::Duration,
) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let n = buf.len().min(PREFACE.len());
        if buf[..n] != PREFACE[..n] {
            return Some(false);
        }
        if n == PREFACE.len() {
            return Some(true);
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(read)) if read > 0 => {}
            _ => return None,
        }
    }
}
