//! Reading a request head on a non-blocking connection, on the event loop,
//! so a slow client never occupies the app.
//!
//! [`HeadReader`] is the sans-I/O part (what do the buffered bytes say?);
//! [`read_head`] drives it with reads, under one deadline for the whole head.

use std::time::Duration;

use ferricorn_config::{AllowList, ProxyProtocol};
use ferricorn_http::proxy::{parse_proxy_header, ProxyParsed};
use ferricorn_http::{BodyKind, HttpError, Parsed, ParserOptions, RequestHead};
use tokio::time::Instant;

use crate::exchange::Peer;
use crate::io::AsyncStream;

/// For the sync class, bodies up to this size are read on the event loop
/// before the app is called, so a slow uploader cannot hold the worker's
/// only app slot. Threaded classes stream bodies instead (no pre-read).
pub const PREREAD_LIMIT: u64 = 1024 * 1024;

/// The PROXY protocol rules for this worker.
#[derive(Debug, Clone)]
pub struct ProxyRules {
    /// Which PROXY header versions are recognised (`--proxy-protocol`).
    pub mode: ProxyProtocol,
    /// Which peers may send one.
    pub allow: AllowList,
}

/// A request head read in full, with what followed it.
pub struct ReadyHead {
    /// The parsed head.
    pub head: RequestHead,
    /// Bytes read past the head (the start of the body, or pipelined data).
    pub pending: Vec<u8>,
}

/// Why no request head came.
#[derive(Debug)]
pub enum HeadError {
    /// The bytes are not a valid request: answer with this error and close.
    Invalid(HttpError),
    /// The client did not finish the head in time (408).
    Timeout,
    /// The client closed the connection (or it failed) before a full head.
    Closed,
}

/// What the buffered bytes amount to so far.
pub enum Progress {
    /// A full head (and, for small bodies, the full body).
    Ready(ReadyHead),
    /// More bytes are needed.
    NeedMore,
    /// The bytes are invalid.
    Invalid(HttpError),
}

/// Sans-I/O state for one connection's head: PROXY header, then request.
pub struct HeadReader<'a> {
    options: &'a ParserOptions,
    proxy: &'a ProxyRules,
    proxy_done: bool,
    /// Largest body read along with the head (0: none).
    preread: u64,
    /// The head once parsed, with its length, while a small body arrives.
    parsed: Option<(RequestHead, usize)>,
    /// Bytes received so far (after any PROXY header).
    pub buf: Vec<u8>,
}

impl<'a> HeadReader<'a> {
    /// A reader for a new connection that also reads bodies of up to
    /// `preread` bytes before reporting the request ready.
    pub fn new(options: &'a ParserOptions, proxy: &'a ProxyRules, preread: u64) -> Self {
        Self {
            options,
            proxy,
            proxy_done: !proxy.mode.enabled(),
            preread,
            parsed: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Looks at the buffered bytes. A PROXY header updates `peer`.
    pub fn advance(&mut self, peer: &mut Peer) -> Progress {
        if !self.proxy_done {
            if self.buf.is_empty() {
                return Progress::NeedMore;
            }
            if !looks_like_proxy(&self.buf, self.proxy.mode) {
                self.proxy_done = true;
            } else {
                let allowed = peer
                    .transport_remote
                    .is_none_or(|addr| self.proxy.allow.allows(addr.ip()));
                if !allowed {
                    return Progress::Invalid(HttpError::new(
                        403,
                        "PROXY header from a peer not in proxy_allow_ips",
                    ));
                }
                match parse_proxy_header(&self.buf) {
                    Ok(ProxyParsed::Partial) => return Progress::NeedMore,
                    Ok(ProxyParsed::Complete { info, consumed }) => {
                        if let Some(info) = info {
                            peer.remote = Some(info.source);
                            peer.local = Some(info.destination);
                        }
                        self.buf.drain(..consumed);
                        self.proxy_done = true;
                    }
                    Err(error) => return Progress::Invalid(error),
                }
            }
        }
        let (head, consumed) = match self.parsed.take() {
            Some(parsed) => parsed,
            None => match ferricorn_http::parse_request_head(&self.buf, self.options) {
                Ok(Parsed::Partial) => return Progress::NeedMore,
                Ok(Parsed::Complete { head, consumed }) => (head, consumed),
                Err(error) => return Progress::Invalid(error),
            },
        };
        if let BodyKind::Length(n) = head.body {
            let have = (self.buf.len() - consumed) as u64;
            if n <= self.preread && !head.expect_continue && have < n {
                self.buf.reserve(usize::try_from(n - have).unwrap_or(0));
                self.parsed = Some((head, consumed));
                return Progress::NeedMore;
            }
        }
        let pending = self.buf.split_off(consumed);
        Progress::Ready(ReadyHead { head, pending })
    }
}

/// Whether `buf` may start a PROXY header of a version `mode` accepts; a
/// header of the other version is left to the HTTP parser (gunicorn's rule),
/// which refuses it.
fn looks_like_proxy(buf: &[u8], mode: ProxyProtocol) -> bool {
    const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    let n = buf.len().min(V2_SIGNATURE.len());
    (mode.accepts_v1() && b"PROXY ".starts_with(&buf[..buf.len().min(6)]))
        || (mode.accepts_v2() && buf[..n] == V2_SIGNATURE[..n])
}

/// Reads until `reader` has a full head, the deadline passes, or the
/// client goes away.
pub async fn read_head(
    stream: &mut AsyncStream,
    reader: &mut HeadReader<'_>,
    peer: &mut Peer,
    deadline: Instant,
) -> Result<ReadyHead, HeadError> {
    loop {
        match reader.advance(peer) {
            Progress::Ready(ready) => return Ok(ready),
            Progress::Invalid(error) => return Err(HeadError::Invalid(error)),
            Progress::NeedMore => {}
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut reader.buf)).await;
        match read {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads whatever is already buffered in the kernel without waiting.
/// Returns false if the client closed the connection.
pub fn read_available(stream: &AsyncStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        match stream.try_read_buf(buf) {
            Ok(0) => return false,
            // A read that did not fill the buffer drained the socket: skip
            // the extra read that would only say EAGAIN.
            Ok(_) if buf.len() < buf.capacity() => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// The 408 answer for a head that did not arrive in time.
pub fn timeout_error(limit: Duration) -> HttpError {
    HttpError::new(
        408,
        format!(
            "the request head did not arrive within {} s",
            limit.as_secs()
        ),
    )
}
