//! Reading a request head on a non-blocking connection, on the event loop,
//! so a slow client never occupies the app.
//!
//! [`HeadReader`] is the sans-I/O part (what do the buffered bytes say?);
//! [`read_head`] drives it with reads, under one deadline for the whole head.
//! [`refuse_head`] is how every worker class answers a head it refuses, and
//! [`log_refused`] how every refusal is logged, as gunicorn 27 does.

use std::time::Duration;

use ferricorn_config::{AllowList, ProxyProtocol};
use ferricorn_http::proxy::{parse_proxy_header, ProxyParsed};
use ferricorn_http::{
    BodyDecoder, BodyKind, HttpError, Parsed, ParserOptions, RequestHead, RequestLine,
};
use tokio::time::Instant;

use crate::access_log::{AccessFormat, AccessRecord};
use crate::clock::unix_now;
use crate::exchange::Peer;
use crate::io::AsyncStream;

/// Bodies up to this size (with a `Content-Length`, or chunked) are read on
/// the event loop before the app is called, in every class, so a slow
/// uploader cannot hold an app thread (or the sync worker's only app slot).
/// Larger bodies stream to the app as they arrive.
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

impl HeadError {
    /// The answer to send before closing: a refused head is logged and
    /// answered with its 4xx ([`refuse_head`]), a late one with 408
    /// (`header_timeout` is the limit it names); a client that left gets
    /// nothing. `buf` holds the bytes received.
    pub fn answer(
        &self,
        access: Option<&AccessFormat>,
        peer: &Peer,
        buf: &[u8],
        header_timeout: Duration,
    ) -> Option<Vec<u8>> {
        match self {
            HeadError::Invalid(error) => Some(refuse_head(access, peer, error, buf)),
            HeadError::Timeout => Some(timeout_error(header_timeout).to_response()),
            HeadError::Closed => None,
        }
    }
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

/// A chunked body read ahead with its head, decoded as it arrives only to
/// tell when it is complete.
struct ChunkProbe {
    decoder: BodyDecoder,
    /// Raw body bytes decoded so far.
    seen: usize,
    /// Body bytes they held.
    body: u64,
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
    /// How far a chunked body being read ahead has been decoded.
    probe: Option<ChunkProbe>,
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
            probe: None,
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
        match head.body {
            BodyKind::Length(n) if !head.expect_continue => {
                let have = (self.buf.len() - consumed) as u64;
                if n <= self.preread && have < n {
                    self.buf.reserve(usize::try_from(n - have).unwrap_or(0));
                    self.parsed = Some((head, consumed));
                    return Progress::NeedMore;
                }
            }
            BodyKind::Chunked
                if !head.expect_continue
                    && self.preread > 0
                    && self.chunked_needs_more(&head, consumed) =>
            {
                self.parsed = Some((head, consumed));
                return Progress::NeedMore;
            }
            _ => {}
        }
        self.probe = None;
        let pending = self.buf.split_off(consumed);
        Progress::Ready(ReadyHead { head, pending })
    }

    /// Whether a chunked body is still arriving and, so far, small enough
    /// to read ahead: decodes only the bytes new since the last look (on a
    /// scratch copy; the raw bytes stay for the body reader). A framing
    /// error ends the read-ahead: the body reader reports it.
    fn chunked_needs_more(&mut self, head: &RequestHead, consumed: usize) -> bool {
        let probe = self.probe.get_or_insert_with(|| ChunkProbe {
            decoder: BodyDecoder::new(&head.body),
            seen: 0,
            body: 0,
        });
        let start = consumed + probe.seen;
        let mut fresh = self.buf.get(start..).unwrap_or_default().to_vec();
        match probe.decoder.decode_in_place(&mut fresh) {
            Ok(decoded) => {
                probe.seen += decoded.consumed;
                probe.body += decoded.body as u64;
            }
            Err(_) => return false,
        }
        // Framing can outweigh the data (one-byte chunks): bound the raw
        // bytes held, too.
        let raw_limit = usize::try_from(self.preread.saturating_mul(2)).unwrap_or(usize::MAX);
        !probe.decoder.is_done() && probe.body <= self.preread && probe.seen <= raw_limit
    }

    /// When the connection ends while a pre-read body is still arriving:
    /// the 400 the body decoder gives a body cut short, so the client gets
    /// an answer instead of silence.
    fn truncated_body(&self) -> Option<HttpError> {
        let (head, consumed) = self.parsed.as_ref()?;
        let mut decoder = BodyDecoder::new(&head.body);
        let mut rest = self.buf.get(*consumed..)?.to_vec();
        decoder.decode_in_place(&mut rest).ok()?;
        decoder.end_of_input().err()
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
            Err(_) if reader.parsed.is_some() => {
                // The head arrived; its pre-read body stalled.
                return Err(HeadError::Invalid(crate::body::timeout_error()));
            }
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) => {
                return Err(reader
                    .truncated_body()
                    .map_or(HeadError::Closed, HeadError::Invalid))
            }
            Ok(Err(_)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
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

/// The request line of a refused request, as far as it could be read.
pub struct RequestLineText<'a> {
    /// The method; empty when unknown.
    pub method: &'a str,
    /// The target as sent; empty when unknown.
    pub target: &'a [u8],
    /// `HTTP/1.1` etc.; empty when unknown.
    pub protocol: &'a str,
    /// The request's headers, when they were parsed.
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> RequestLineText<'a> {
    /// The request line at the start of `buf` (after any empty lines),
    /// if it arrived whole and is three words: what a refused head's
    /// access-log line shows. Nothing for an over-long or garbled line.
    pub fn sniff(buf: &'a [u8]) -> Self {
        const LONGEST: usize = 8192;
        let unknown = RequestLineText {
            method: "",
            target: b"",
            protocol: "",
            headers: &[],
        };
        let start = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(buf.len());
        let rest = &buf[start..];
        let window = &rest[..rest.len().min(LONGEST + 2)];
        let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
            return unknown;
        };
        let mut words = rest[..end].split(|&b| b == b' ');
        let (Some(method), Some(target), Some(protocol), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return unknown;
        };
        match (std::str::from_utf8(method), std::str::from_utf8(protocol)) {
            (Ok(method), Ok(protocol)) if !method.is_empty() && !target.is_empty() => {
                RequestLineText {
                    method,
                    target,
                    protocol,
                    headers: &[],
                }
            }
            _ => unknown,
        }
    }
}

/// gunicorn 27's warning for a request it refuses:
/// `Invalid request from ip=ADDR: REASON`.
pub fn warn_invalid(peer: &Peer, error: &HttpError) {
    let ip = peer
        .remote
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    tracing::warn!("Invalid request from ip={ip}: {}", error.detail);
}

/// Logs a request refused before the app saw it as gunicorn 27's
/// `handle_error` does: `Invalid request from ip=ADDR: REASON` at warning
/// level, and an access-log line with the status sent. (gunicorn writes
/// that line only when it had parsed the request line; here every
/// refusal gets one, with `-` for what could not be read.)
pub fn log_refused(
    access: Option<&AccessFormat>,
    peer: &Peer,
    error: &HttpError,
    line: &RequestLineText<'_>,
) {
    warn_invalid(peer, error);
    let Some(format) = access else {
        return;
    };
    let (path, query) = match line.target.iter().position(|&b| b == b'?') {
        Some(q) => (&line.target[..q], &line.target[q + 1..]),
        None => (line.target, &b""[..]),
    };
    let text = format.format(&AccessRecord {
        remote: peer.remote,
        line: RequestLine {
            method: line.method,
            target: line.target,
            path,
            query,
            version: line.protocol,
        },
        script_name: "",
        request_headers: line.headers,
        status: error.status,
        response_headers: &[],
        bytes_sent: error_body_len(error),
        elapsed: Duration::ZERO,
        started_unix: unix_now(),
        environ: &[],
    });
    tracing::info!(target: "ferricorn.access", "{text}");
}

/// Logs a refused head ([`log_refused`]) and returns the error response to
/// send before closing. `buf` holds the bytes received, from which the
/// request line is shown when it is readable.
pub fn refuse_head(
    access: Option<&AccessFormat>,
    peer: &Peer,
    error: &HttpError,
    buf: &[u8],
) -> Vec<u8> {
    // A 414's line is too long to show, by definition.
    let line = if error.status == 414 {
        RequestLineText::sniff(b"")
    } else {
        RequestLineText::sniff(buf)
    };
    log_refused(access, peer, error, &line);
    error.to_response()
}

/// The length of the body of `error`'s response.
fn error_body_len(error: &HttpError) -> u64 {
    let response = error.to_response();
    let head_end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(0, |i| i + 4);
    (response.len() - head_end) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            remote: None,
            local: None,
            transport_remote: None,
            secure: false,
        }
    }

    #[test]
    fn a_small_chunked_body_is_read_ahead_in_full() {
        let options = ParserOptions::default();
        let proxy = ProxyRules {
            mode: ProxyProtocol::Off,
            allow: AllowList::all(),
        };
        let mut reader = HeadReader::new(&options, &proxy, 16);
        let head = &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"[..];
        let body = &b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"[..];
        reader.buf.extend_from_slice(head);
        // Byte by byte: not ready until the last chunk's CRLF.
        for &b in body {
            assert!(matches!(reader.advance(&mut peer()), Progress::NeedMore));
            reader.buf.push(b);
        }
        reader.buf.extend_from_slice(b"GET /next");
        let Progress::Ready(ready) = reader.advance(&mut peer()) else {
            panic!("not ready with the whole body");
        };
        // The raw bytes stay for the body reader, the next request with them.
        assert_eq!(ready.pending, [body, b"GET /next"].concat());
    }

    #[test]
    fn a_large_chunked_body_is_left_to_the_app() {
        let options = ParserOptions::default();
        let proxy = ProxyRules {
            mode: ProxyProtocol::Off,
            allow: AllowList::all(),
        };
        let mut reader = HeadReader::new(&options, &proxy, 4);
        reader.buf.extend_from_slice(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        );
        assert!(matches!(reader.advance(&mut peer()), Progress::NeedMore));
        reader.buf.extend_from_slice(b"lo");
        assert!(matches!(reader.advance(&mut peer()), Progress::Ready(_)));
    }

    #[test]
    fn sniffing_a_request_line() {
        let line = RequestLineText::sniff(b"\r\nPOST /a?b HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(
            (line.method, line.target, line.protocol),
            ("POST", &b"/a?b"[..], "HTTP/1.1")
        );
        for garbled in [
            &b"GET /a b HTTP/1.1\r\n"[..],
            b"GET /a HTTP/1.1",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"GET  HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(RequestLineText::sniff(garbled).method, "", "{garbled:?}");
        }
    }
}
