//! HTTP/1.1 response framing for what the app produces through the WSGI
//! bridge, over any blocking [`Transport`]: the socket itself (sync) or a
//! connection's bounded buffer ([`crate::outbuf`]), in every class.
//!
//! The framing is chosen when the head is sent: the app's `Content-Length`,
//! else a length computed from a body known in full, else chunked on
//! HTTP/1.1, else the end of the connection marks the end of the body.

use std::io::{self, IoSlice, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferricorn_http::response::{encode_chunk, write_header, write_status_line, LAST_CHUNK};
use ferricorn_http::Version;
use ferricorn_python::response::ResponseSink;

use crate::clock::write_date_header;

/// Where framed response bytes go.
pub trait Transport: Write + Send {
    /// Sends `count` bytes of file `fd` from `offset`, in order after what
    /// was written before; the caller may close `fd` once this returns.
    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<()>;

    /// Whether a small write may wait for the peer or the event loop.
    fn may_block(&self) -> bool {
        true
    }

    /// Whether the transport's buffer has room (see
    /// [`ResponseSink::wants_more`]).
    fn wants_more(&self) -> bool {
        true
    }

    /// Waits for room in the buffer (see [`ResponseSink::wait_for_room`]).
    fn wait_for_room(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bodies up to this size are copied next to the head and sent in one
/// write; larger ones go out with a vectored write, without the copy.
const COALESCE_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    /// Body runs until the connection closes (HTTP/1.0 without a length).
    UntilClose,
}

/// A [`ResponseSink`] writing HTTP/1.1 onto a blocking [`Transport`].
pub struct HttpSink<T: Transport> {
    stream: T,
    version: Version,
    head_request: bool,
    framing: Framing,
    buf: Vec<u8>,
    /// Set when the response forces the connection to close.
    close_after: bool,
    /// Set once the app asked for the request body; see
    /// [`HttpSink::close_unless_body_requested`].
    body_requested: Option<Arc<AtomicBool>>,
}

impl<T: Transport> HttpSink<T> {
    /// A sink for a response to a request of `version`; `head_request` for
    /// HEAD; `keep_alive` whether the connection may be reused afterwards.
    pub fn new(stream: T, version: Version, head_request: bool, keep_alive: bool) -> Self {
        Self {
            stream,
            version,
            head_request,
            framing: Framing::None,
            buf: Vec::with_capacity(512),
            close_after: !keep_alive,
            body_requested: None,
        }
    }

    /// For a request whose body is read only once the app asks for it
    /// (`Expect: 100-continue` answered on demand): unless `requested` is
    /// set by the time the head goes out, the body will never come and the
    /// connection cannot carry another request, so the head says
    /// `Connection: close`.
    pub fn close_unless_body_requested(mut self, requested: Arc<AtomicBool>) -> Self {
        self.body_requested = Some(requested);
        self
    }

    fn write_all_vectored(&mut self, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
        while !head.is_empty() || !body.is_empty() {
            let n = self
                .stream
                .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(head.len());
            head = &head[from_head..];
            body = &body[n - from_head..];
        }
        Ok(())
    }

    fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.clear();
        if data.len() <= COALESCE_LIMIT {
            encode_chunk(&mut self.buf, data);
            let out = std::mem::take(&mut self.buf);
            let result = self.stream.write_all(&out);
            self.buf = out;
            return result;
        }
        self.buf
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        let size_line = std::mem::take(&mut self.buf);
        let result = self
            .write_all_vectored(&size_line, data)
            .and_then(|()| self.stream.write_all(b"\r\n"));
        self.buf = size_line;
        result
    }
}

impl<T: Transport> ResponseSink for HttpSink<T> {
    fn send_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        complete: bool,
    ) -> io::Result<()> {
        if let Some(requested) = &self.body_requested {
            if !requested.load(Ordering::Acquire) {
                self.close_after = true;
            }
        }
        let bodyless = self.head_request || status < 200 || status == 204 || status == 304;
        let has = |wanted: &str| {
            headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
        };
        let has_length = has("content-length");
        self.framing = if bodyless {
            Framing::None
        } else if has_length || complete {
            Framing::Length
        } else if self.version == Version::HTTP_11 {
            Framing::Chunked
        } else {
            self.close_after = true;
            Framing::UntilClose
        };

        let mut head = std::mem::take(&mut self.buf);
        head.clear();
        write_status_line(&mut head, self.version, status, reason);
        // The app's own Server or Date replaces ours rather than adding a
        // second one.
        if !has("server") {
            write_header(&mut head, "Server", "ferricorn");
        }
        if !has("date") {
            write_date_header(&mut head);
        }
        let connection = if self.close_after {
            "close"
        } else {
            "keep-alive"
        };
        write_header(&mut head, "Connection", connection);
        for (name, value) in headers {
            write_header(&mut head, name, value);
        }
        match self.framing {
            Framing::Length if !has_length => {
                write_header(&mut head, "Content-Length", &body.len().to_string());
            }
            Framing::None if self.head_request && complete && !has_length && !body.is_empty() => {
                // HEAD answers with the length a GET would have had.
                write_header(&mut head, "Content-Length", &body.len().to_string());
            }
            Framing::Chunked => write_header(&mut head, "Transfer-Encoding", "chunked"),
            _ => {}
        }
        head.extend_from_slice(b"\r\n");

        let result = match self.framing {
            Framing::None => self.stream.write_all(&head),
            Framing::Chunked if !body.is_empty() => {
                encode_chunk(&mut head, body);
                self.stream.write_all(&head)
            }
            Framing::Chunked => self.stream.write_all(&head),
            Framing::Length | Framing::UntilClose if body.len() <= COALESCE_LIMIT => {
                head.extend_from_slice(body);
                self.stream.write_all(&head)
            }
            Framing::Length | Framing::UntilClose => self.write_all_vectored(&head, body),
        };
        self.buf = head;
        result
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        match self.framing {
            Framing::None => Ok(()),
            Framing::Chunked => self.send_chunk(data),
            Framing::Length | Framing::UntilClose => self.stream.write_all(data),
        }
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<bool> {
        match self.framing {
            Framing::None => Ok(true),
            Framing::Chunked => {
                let size_line = format!("{count:x}\r\n");
                self.stream.write_all(size_line.as_bytes())?;
                self.stream.send_file(fd, offset, count)?;
                self.stream.write_all(b"\r\n")?;
                Ok(true)
            }
            Framing::Length | Framing::UntilClose => {
                self.stream.send_file(fd, offset, count)?;
                Ok(true)
            }
        }
    }

    fn send_informational(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
    ) -> io::Result<()> {
        // HTTP/1.0 has no interim responses (RFC 9110 §15.2).
        if (self.version.major, self.version.minor) < (1, 1) {
            return Ok(());
        }
        let mut head = std::mem::take(&mut self.buf);
        head.clear();
        write_status_line(&mut head, self.version, status, reason);
        for (name, value) in headers {
            write_header(&mut head, name, value);
        }
        head.extend_from_slice(b"\r\n");
        let result = self.stream.write_all(&head);
        self.buf = head;
        result
    }

    fn keeps_connection(&self) -> bool {
        !self.close_after
    }

    fn close_connection(&mut self) {
        self.close_after = true;
    }

    fn may_block(&self) -> bool {
        self.stream.may_block()
    }

    fn wants_more(&self) -> bool {
        self.stream.wants_more()
    }

    fn wait_for_room(&mut self) -> io::Result<()> {
        self.stream.wait_for_room()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            self.stream.write_all(LAST_CHUNK)?;
        }
        Ok(())
    }
}
